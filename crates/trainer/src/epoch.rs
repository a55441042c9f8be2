//! The scores of one finished epoch: what the epoch lines print, `metrics.csv` keeps
//! and the curves draw.

use std::time::Duration;

/// The scores of one finished epoch.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EpochSummary {
    pub epoch: usize,
    pub train_loss: f64,
    pub(crate) train_accuracy: f64,
    pub valid_loss: f64,
    pub valid_accuracy: f64,
    /// The whole epoch: training, validation and checkpointing.
    pub(crate) duration: Duration,
    /// The training pass alone (not kept in `metrics.csv`).
    pub(crate) train_duration: Duration,
}

impl std::fmt::Display for EpochSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "train loss {:.4} acc {:.2}%  valid loss {:.4} acc {:.2}%  {:.1}s",
            self.train_loss,
            self.train_accuracy,
            self.valid_loss,
            self.valid_accuracy,
            self.duration.as_secs_f64()
        )
    }
}
