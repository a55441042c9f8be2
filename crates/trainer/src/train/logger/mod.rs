//! What a run records as it trains: the epochs' scores and the running metrics of the
//! epoch under way ([`history`]), and the log files of the run directory ([`run_log`]).

pub(crate) mod history;
pub(crate) mod run_log;
