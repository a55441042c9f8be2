//! The sweep's verdict: the winning configuration's trials scored on the test set,
//! once each, and `best.json`.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;
use serde_json::Value;

use super::ranking::Ranked;
use crate::TrainerError;
use crate::infer::Evaluation;
use crate::stats::median;

/// What `best.json` records about the winner.
#[derive(Debug, Clone, Serialize)]
pub struct Best {
    /// The winning configuration's finished trials, each scored on the test set.
    pub(crate) trials: Vec<String>,
    pub(crate) settings: BTreeMap<String, Value>,
    /// Medians over those trials.
    pub(crate) valid_accuracy: f64,
    pub(crate) test_accuracy: f64,
    pub(crate) test_loss: f64,
    /// Each trial's test accuracy, in the order of `trials`.
    pub(crate) test_accuracies: Vec<f64>,
}

impl Best {
    /// The verdict on `winner` from the test scores of its finished trials, by name.
    pub fn new(winner: &Ranked, valid_accuracy: f64, scores: &[(String, Evaluation)]) -> Self {
        let test_accuracies: Vec<f64> = scores.iter().map(|(_, s)| s.accuracy()).collect();
        let mut losses: Vec<f64> = scores.iter().map(|(_, s)| s.loss).collect();
        Self {
            trials: scores.iter().map(|(name, _)| name.clone()).collect(),
            settings: winner.settings.iter().cloned().collect(),
            valid_accuracy,
            test_accuracy: median(&mut test_accuracies.clone()),
            test_loss: median(&mut losses),
            test_accuracies,
        }
    }

    /// The line a sweep ends with, e.g. `best: trial-004 (lr=0.002)  valid acc ...`.
    pub(crate) fn summary(&self, description: &str) -> String {
        let per_seed = if self.test_accuracies.len() > 1 {
            let each: Vec<String> = self
                .test_accuracies
                .iter()
                .map(|a| format!("{a:.2}%"))
                .collect();
            format!("  (medians; test acc per seed {})", each.join(", "))
        } else {
            String::new()
        };
        format!(
            "best: {} ({description})  valid acc {:.2}%  test acc {:.2}%  test loss {:.4}{per_seed}",
            self.trials.join(" "),
            self.valid_accuracy,
            self.test_accuracy,
            self.test_loss
        )
    }

    pub(crate) fn save(&self, sweep_dir: &Path) -> Result<(), TrainerError> {
        let json = serde_json::to_vec_pretty(self).unwrap_or_default();
        crate::fs::write_atomically(&sweep_dir.join("best.json"), &json)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scores(accuracy_percent: usize, loss: f64) -> Evaluation {
        Evaluation {
            loss,
            correct: accuracy_percent,
            total: 100,
            confusion: Vec::new(),
        }
    }

    #[test]
    fn the_winner_is_reported_by_the_medians_of_its_seeds() {
        let winner = Ranked {
            settings: vec![("lr".into(), Value::from(0.002))],
            trials: Vec::new(),
        };
        let best = Best::new(
            &winner,
            97.5,
            &[
                ("trial-004".into(), scores(98, 0.07)),
                ("trial-005".into(), scores(96, 0.09)),
                ("trial-006".into(), scores(97, 0.08)),
            ],
        );
        assert_eq!(best.test_accuracy, 97.0);
        assert_eq!(best.test_loss, 0.08);
        assert_eq!(best.test_accuracies, [98.0, 96.0, 97.0]);
        assert_eq!(
            best.summary("lr=0.002"),
            "best: trial-004 trial-005 trial-006 (lr=0.002)  valid acc 97.50%  test acc 97.00%  test loss 0.0800  (medians; test acc per seed 98.00%, 96.00%, 97.00%)"
        );
        let single = Best::new(&winner, 97.5, &[("trial-001".into(), scores(98, 0.07))]);
        assert!(!single.summary("lr=0.002").contains("medians"));
    }
}
