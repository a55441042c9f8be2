//! What a run records as it trains: the epochs' scores and the running metrics of the
//! epoch under way ([`history`]), and the log files of the run directory ([`run_log`]).

pub mod history;
pub mod run_log;
