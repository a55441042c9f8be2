//! The record of a run's epochs: what each scored and took, shared between the
//! renderer that collects it on Burn's thread and the code that launched training.

use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::epoch::EpochSummary;

/// Epoch summaries shared between the renderer, which Burn runs on its own thread,
/// and the code that launched training.
pub(crate) type History = Arc<Mutex<Vec<EpochSummary>>>;

/// Called with the whole history after each epoch, to persist it; an error stops
/// training.
pub(crate) type EpochHook =
    Box<dyn Fn(&[EpochSummary]) -> Result<(), crate::TrainerError> + Send + Sync>;

/// Adds each finished epoch to the [`History`] and persists the history through its
/// hook (metrics.csv, the curves), so that a kill after any epoch loses nothing.
pub(crate) struct EpochRecorder {
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
    pub(crate) fn new(history: History, persist: EpochHook) -> Self {
        Self { history, persist }
    }

    pub(crate) fn record(&self, epoch: EpochSummary) -> Result<(), crate::TrainerError> {
        let Ok(mut history) = self.history.lock() else {
            return Ok(());
        };
        history.push(epoch);
        (self.persist)(&history)
    }
}

/// The training metrics of the epoch under way, summed as Burn's metrics sum them
/// (each batch's value times its size, in batch order), so that an epoch resumed from
/// a checkpoint within it reports the same numbers as an uninterrupted one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct RunningMetrics {
    /// The training steps the sums cover.
    pub(crate) steps: usize,
    pub(crate) loss: RunningMean,
    pub(crate) accuracy: RunningMean,
}

/// A mean over items, kept as its sum and count.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct RunningMean {
    #[serde(with = "exact_f64")]
    sum: f64,
    count: usize,
}

impl RunningMean {
    /// Adds a batch of `count` items whose mean is `value`.
    pub(crate) fn add(&mut self, value: f64, count: usize) {
        if count > 0 {
            self.sum += value * count as f64;
            self.count += count;
        }
    }

    pub(crate) fn mean(&self) -> f64 {
        self.sum / self.count as f64
    }
}

/// Written by the renderer as batches are processed, seeded and read by the training
/// loop.
pub(crate) type SharedRunningMetrics = Arc<Mutex<RunningMetrics>>;

/// A float as the shortest decimal that reads back to the same bits (JSON numbers
/// are read back only to within a unit in the last place).
mod exact_f64 {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(value: &f64, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(value)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
        String::deserialize(deserializer)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn running_means_read_back_to_the_same_bits() {
        let mut metrics = RunningMetrics::default();
        for (value, count) in [(0.1, 64), (2.0 / 3.0, 64), (1e-17, 7)] {
            metrics.loss.add(value, count);
            metrics.accuracy.add(value * 100.0, count);
        }
        metrics.steps = 3;
        let json = serde_json::to_string(&metrics).expect("serializes");
        let back: RunningMetrics = serde_json::from_str(&json).expect("parses");
        assert_eq!(back.loss.mean().to_bits(), metrics.loss.mean().to_bits());
        assert_eq!(back, metrics);
    }
}
