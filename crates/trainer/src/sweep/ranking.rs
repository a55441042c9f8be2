//! How the trials ended, grouped by configuration and ranked by their median
//! validation accuracy.

use serde_json::Value;

use super::plan::{Trial, describe};
use crate::stats::median;

/// How one trial ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Finished {
        valid_accuracy: f64,
        valid_loss: f64,
        epoch: usize,
        seconds: f64,
    },
    Failed(String),
}

/// A configuration of the sweep and how its trials (one per seed) ended.
#[derive(Debug, Clone)]
pub struct Ranked {
    /// The values the sweep sets for it, without the seed.
    pub(crate) settings: Vec<(String, Value)>,
    pub(crate) trials: Vec<(Trial, Outcome)>,
}

impl Ranked {
    /// The trials that finished.
    pub(crate) fn finished(&self) -> impl Iterator<Item = &Trial> {
        self.trials
            .iter()
            .filter(|(_, outcome)| matches!(outcome, Outcome::Finished { .. }))
            .map(|(trial, _)| trial)
    }

    /// The median over its finished trials of the validation accuracy, or `None`
    /// when none finished.
    pub(crate) fn valid_accuracy(&self) -> Option<f64> {
        self.median_of(|outcome| match outcome {
            Outcome::Finished { valid_accuracy, .. } => Some(*valid_accuracy),
            Outcome::Failed(_) => None,
        })
    }

    pub(crate) fn valid_loss(&self) -> Option<f64> {
        self.median_of(|outcome| match outcome {
            Outcome::Finished { valid_loss, .. } => Some(*valid_loss),
            Outcome::Failed(_) => None,
        })
    }

    fn median_of(&self, value: impl Fn(&Outcome) -> Option<f64>) -> Option<f64> {
        let mut values: Vec<f64> = self.trials.iter().filter_map(|(_, o)| value(o)).collect();
        (!values.is_empty()).then(|| median(&mut values))
    }

    /// `trial-001 trial-002`.
    pub(crate) fn trial_names(&self) -> String {
        self.trials
            .iter()
            .map(|(trial, _)| trial.name())
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// `lr=0.003 optimizer.name=adamw`.
    pub(crate) fn describe(&self) -> String {
        describe(&self.settings)
    }
}

/// Groups `trials`, in plan order, with their outcomes (`None`: not run) into
/// configurations, best first: those all of whose trials finished come first, so that
/// one lucky seed of a half-failed configuration cannot win; those with none finished
/// come last. `seeded` says whether the last setting of each trial is its seed.
pub fn rank(trials: Vec<Trial>, outcomes: Vec<Option<Outcome>>, seeded: bool) -> Vec<Ranked> {
    let mut ranked: Vec<Ranked> = Vec::new();
    for (trial, outcome) in trials.into_iter().zip(outcomes) {
        let Some(outcome) = outcome else { continue };
        match ranked.last_mut() {
            Some(group) if group.trials[0].0.configuration == trial.configuration => {
                group.trials.push((trial, outcome));
            }
            _ => {
                let shared = trial.settings.len() - usize::from(seeded);
                ranked.push(Ranked {
                    settings: trial.settings[..shared].to_vec(),
                    trials: vec![(trial, outcome)],
                });
            }
        }
    }
    let key = |entry: &Ranked| {
        let complete = entry.finished().count() == entry.trials.len();
        (
            complete,
            entry.valid_accuracy().unwrap_or(f64::NEG_INFINITY),
        )
    };
    ranked.sort_by(|a, b| {
        let (a, b) = (key(a), key(b));
        b.0.cmp(&a.0).then(b.1.total_cmp(&a.1))
    });
    ranked
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TrainingConfig;

    fn trial(number: usize, configuration: usize, lr: f64, seed: u64) -> Trial {
        Trial {
            number,
            configuration,
            settings: vec![
                ("lr".to_string(), Value::from(lr)),
                ("seed".to_string(), Value::from(seed)),
            ],
            config: TrainingConfig::new(),
        }
    }

    fn finished(valid_accuracy: f64) -> Option<Outcome> {
        Some(Outcome::Finished {
            valid_accuracy,
            valid_loss: 1.0 - valid_accuracy / 100.0,
            epoch: 1,
            seconds: 1.0,
        })
    }

    #[test]
    fn configurations_rank_by_median_and_complete_ones_first() {
        let trials = vec![
            trial(1, 0, 0.1, 1),
            trial(2, 0, 0.1, 2),
            trial(3, 0, 0.1, 3),
            trial(4, 1, 0.2, 1),
            trial(5, 1, 0.2, 2),
            trial(6, 1, 0.2, 3),
            trial(7, 2, 0.3, 1),
            trial(8, 2, 0.3, 2),
            trial(9, 2, 0.3, 3),
        ];
        let outcomes = vec![
            finished(90.0),
            finished(99.0),
            finished(91.0),
            finished(95.0),
            finished(92.0),
            finished(93.0),
            // One lucky seed of a configuration whose other seeds failed.
            finished(99.9),
            Some(Outcome::Failed("NaN".into())),
            None,
        ];
        let ranked = rank(trials, outcomes, true);
        assert_eq!(ranked.len(), 3);
        assert_eq!(ranked[0].describe(), "lr=0.2", "median 93 beats median 91");
        assert_eq!(ranked[0].valid_accuracy(), Some(93.0));
        assert_eq!(ranked[1].describe(), "lr=0.1");
        assert_eq!(ranked[2].describe(), "lr=0.3", "incomplete goes last");
        assert_eq!(ranked[2].trial_names(), "trial-007 trial-008");
    }
}
