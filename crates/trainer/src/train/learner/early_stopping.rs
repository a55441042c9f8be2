//! Early stopping on the validation loss, decided from the run's own epoch history
//! (which a resumed run reloads from `metrics.csv`), so that an interrupted run stops
//! at the same epoch as an uninterrupted one.
//!
//! The history is filled by the renderer, so this relies on an order Burn keeps: its
//! training loop (burn-train 0.22.1, `learner/supervised/strategies/single/strategy.rs`)
//! sends the end of an epoch to the renderer and flushes its event processor before it
//! asks [`EarlyStoppingStrategy::should_stop`]. Should that change, a history without
//! the epoch being judged makes [`Patience`] keep training rather than stop on stale
//! data.

use burn::train::EarlyStoppingStrategy;
use burn::train::metric::store::EventStoreClient;

use crate::epoch::EpochSummary;
use crate::train::logger::history::History;

/// Stops once `patience` epochs have passed without a lower validation loss.
#[derive(Debug, Clone)]
pub(crate) struct Patience {
    history: History,
    patience: usize,
}

impl Patience {
    pub(crate) fn new(history: History, patience: usize) -> Self {
        Self { history, patience }
    }

    /// Whether the run should end after `epoch`, given the history so far.
    fn stops_after(&self, epoch: usize) -> bool {
        let Ok(history) = self.history.lock() else {
            return false;
        };
        let judged = history.last().is_some_and(|last| last.epoch == epoch);
        judged && stops_after(&history, epoch, self.patience)
    }
}

/// Whether a run with `patience` whose epochs so far are `history` ends after `epoch`.
pub(crate) fn stops_after(history: &[EpochSummary], epoch: usize, patience: usize) -> bool {
    best_epoch(history).is_some_and(|best| epoch >= best.epoch + patience)
}

impl EarlyStoppingStrategy for Patience {
    fn should_stop(&mut self, epoch: usize, _: &EventStoreClient) -> bool {
        self.stops_after(epoch)
    }
}

/// The epoch with the lowest validation loss (the earliest among equals), ignoring
/// epochs whose loss is not a number.
pub(crate) fn best_epoch(history: &[EpochSummary]) -> Option<&EpochSummary> {
    history.iter().filter(|e| e.valid_loss.is_finite()).fold(
        None,
        |best: Option<&EpochSummary>, e| match best {
            Some(b) if b.valid_loss <= e.valid_loss => Some(b),
            _ => Some(e),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn history(losses: &[f64]) -> Vec<EpochSummary> {
        losses
            .iter()
            .enumerate()
            .map(|(i, &valid_loss)| EpochSummary {
                epoch: i + 1,
                valid_loss,
                ..EpochSummary::default()
            })
            .collect()
    }

    #[test]
    fn best_is_the_lowest_validation_loss_and_the_earliest_of_ties() {
        let epochs = history(&[0.5, 0.3, f64::NAN, 0.3, 0.4]);
        assert_eq!(best_epoch(&epochs).map(|e| e.epoch), Some(2));
        assert_eq!(best_epoch(&[]).map(|e| e.epoch), None);
    }

    #[test]
    fn stops_after_patience_epochs_without_improvement() {
        let shared: History = Default::default();
        let patience = Patience::new(shared.clone(), 2);
        let losses = [0.5, 0.3, 0.35, 0.32, 0.2];
        let mut stopped_at = None;
        for (epoch, summary) in history(&losses).into_iter().enumerate() {
            shared.lock().expect("lock").push(summary);
            let epoch = epoch + 1;
            if patience.stops_after(epoch) {
                stopped_at = Some(epoch);
                break;
            }
        }
        assert_eq!(
            stopped_at,
            Some(4),
            "best was epoch 2, then two worse epochs"
        );
    }
}
