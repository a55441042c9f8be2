//! The record of a run's epochs: what each scored and took, shared between the
//! renderer that collects it on Burn's thread and the code that launched training.

use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The scores of one finished epoch.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EpochSummary {
    pub epoch: usize,
    pub train_loss: f64,
    pub train_accuracy: f64,
    pub valid_loss: f64,
    pub valid_accuracy: f64,
    /// The whole epoch: training, validation and checkpointing.
    pub duration: Duration,
    /// The training pass alone (not kept in `metrics.csv`).
    pub train_duration: Duration,
}

impl std::fmt::Display for EpochSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "train loss {:.4}  train acc {:.2}%  valid loss {:.4}  valid acc {:.2}%  {:.1}s",
            self.train_loss,
            self.train_accuracy,
            self.valid_loss,
            self.valid_accuracy,
            self.duration.as_secs_f64()
        )
    }
}

/// Epoch summaries shared between the renderer, which Burn runs on its own thread,
/// and the code that launched training.
pub type History = Arc<Mutex<Vec<EpochSummary>>>;

/// Called with the whole history after each epoch, to persist it; an error stops
/// training.
pub type EpochHook = Box<dyn Fn(&[EpochSummary]) -> Result<(), crate::TrainerError> + Send + Sync>;

/// Adds each finished epoch to the [`History`] and persists the history through its
/// hook (metrics.csv, the curves), so that a kill after any epoch loses nothing.
pub struct EpochRecorder {
    history: History,
    persist: EpochHook,
}

impl std::fmt::Debug for EpochRecorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EpochRecorder").finish_non_exhaustive()
    }
}

impl EpochRecorder {
    /// `history` starts with the epochs of an earlier run being resumed.
    pub fn new(history: History, persist: EpochHook) -> Self {
        Self { history, persist }
    }

    pub fn record(&self, epoch: EpochSummary) -> Result<(), crate::TrainerError> {
        let Ok(mut history) = self.history.lock() else {
            return Ok(());
        };
        history.push(epoch);
        (self.persist)(&history)
    }
}
