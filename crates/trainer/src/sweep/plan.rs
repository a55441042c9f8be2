//! Planning a sweep's trials from its file: every combination of a grid, or a seeded
//! random sample, each repeated once per seed, each a complete config checked before
//! anything trains.

use std::path::{Path, PathBuf};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;

use super::SweepError;
use super::spec::{Domain, Method, Range, SweepSpec};
use crate::config::{ConfigError, TrainingConfig};

/// Grids larger than this are surely a mistake in the sweep file.
const MAX_TRIALS: usize = 10_000;

/// One planned trial: its number (from 1), settings and full config.
#[derive(Debug, Clone)]
pub(crate) struct Trial {
    pub(crate) number: usize,
    /// The configuration it belongs to (from 0): trials differing only in `seed`
    /// share one.
    pub(crate) configuration: usize,
    /// The values the sweep sets, the seed last when the sweep has `seeds`.
    pub(crate) settings: Vec<(String, Value)>,
    pub(crate) config: TrainingConfig,
}

impl Trial {
    /// `trial-007`.
    pub(crate) fn name(&self) -> String {
        format!("trial-{:03}", self.number)
    }

    pub(crate) fn dir(&self, sweep_dir: &Path) -> PathBuf {
        sweep_dir.join(self.name())
    }

    /// `lr=0.003 optimizer.name=adamw`.
    pub(crate) fn describe(&self) -> String {
        describe(&self.settings)
    }
}

/// `lr=0.003 optimizer.name=adamw`.
pub(super) fn describe(settings: &[(String, Value)]) -> String {
    settings
        .iter()
        .map(|(key, value)| format!("{key}={}", show(value)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A JSON value as a user would write it on the command line.
pub(super) fn show(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

impl SweepSpec {
    /// Reads a sweep file and plans its trials, checking each trial's config.
    pub fn plan(path: &Path) -> Result<(Self, Vec<Trial>), SweepError> {
        let invalid = |reason: String| SweepError::Invalid {
            path: path.to_path_buf(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|error| SweepError::Read {
            path: path.to_path_buf(),
            error,
        })?;
        crate::config::check_unique_keys(&text).map_err(invalid)?;
        let spec: Self =
            serde_path_to_error::deserialize(&mut serde_json::Deserializer::from_str(&text))
                .map_err(|e| invalid(format!("`{}`: {}", e.path(), e.inner())))?;
        let base = spec.base_config(path)?;
        let configurations = spec.assignments().map_err(invalid)?;
        let seeds: Vec<Option<u64>> = if spec.seeds.is_empty() {
            vec![None]
        } else {
            spec.seeds.iter().copied().map(Some).collect()
        };
        let planned =
            configurations
                .into_iter()
                .enumerate()
                .flat_map(|(configuration, settings)| {
                    seeds.iter().map(move |seed| {
                        let mut settings = settings.clone();
                        settings.extend(seed.map(|seed| ("seed".to_string(), Value::from(seed))));
                        (configuration, settings)
                    })
                });
        let planned: Vec<_> = planned.collect();
        if planned.len() > MAX_TRIALS {
            return Err(invalid(format!(
                "{} trials (configurations times seeds) is more than {MAX_TRIALS}",
                planned.len()
            )));
        }
        let trials = planned
            .into_iter()
            .enumerate()
            .map(|(index, (configuration, settings))| {
                let number = index + 1;
                let trial_error = |error| SweepError::Trial {
                    path: path.to_path_buf(),
                    trial: number,
                    error,
                };
                let config = settings
                    .iter()
                    .try_fold(base.clone(), |config, (key, value)| {
                        config.with_value(key, value.clone())
                    })
                    .map_err(trial_error)?;
                config.validate().map_err(trial_error)?;
                Ok(Trial {
                    number,
                    configuration,
                    settings,
                    config,
                })
            })
            .collect::<Result<Vec<_>, SweepError>>()?;
        Ok((spec, trials))
    }

    fn base_config(&self, sweep_path: &Path) -> Result<TrainingConfig, SweepError> {
        let config_error = |error: ConfigError| SweepError::Invalid {
            path: sweep_path.to_path_buf(),
            reason: format!("`base`: {error}"),
        };
        match &self.base {
            None => Ok(TrainingConfig::new()),
            Some(Value::String(base)) => {
                let beside = sweep_path.parent().unwrap_or(Path::new(".")).join(base);
                let path = if beside.is_file() {
                    beside
                } else {
                    PathBuf::from(base)
                };
                TrainingConfig::from_file(&path).map_err(config_error)
            }
            Some(inline) => TrainingConfig::new()
                .overlaid(inline.clone(), "`base`")
                .map_err(config_error),
        }
    }

    /// The settings of each trial, in trial order.
    fn assignments(&self) -> Result<Vec<Vec<(String, Value)>>, String> {
        if self.parameters.is_empty() {
            return Err("`parameters` names no config field to vary".into());
        }
        if !self.seeds.is_empty() && self.parameters.contains_key("seed") {
            return Err("`seed` is both a parameter and given by `seeds`; keep one".into());
        }
        let mut distinct = self.seeds.clone();
        distinct.sort_unstable();
        distinct.dedup();
        if distinct.len() != self.seeds.len() {
            return Err("`seeds` lists a seed twice".into());
        }
        for (key, domain) in &self.parameters {
            match domain {
                Domain::Values(values) if values.is_empty() => {
                    return Err(format!("`parameters.{key}` lists no values"));
                }
                Domain::Range(_) if self.method == Method::Grid => {
                    return Err(format!(
                        "`parameters.{key}` is a range, which only a random sweep can draw from; list the values, or set \"method\": \"random\""
                    ));
                }
                Domain::Range(range) => {
                    if !(range.min.is_finite() && range.max.is_finite() && range.min <= range.max) {
                        return Err(format!("`parameters.{key}` needs finite min <= max"));
                    }
                    if range.log && range.min <= 0.0 {
                        return Err(format!("`parameters.{key}`: a log range needs min > 0"));
                    }
                    if range.integer && range.min.ceil() > range.max.floor() {
                        return Err(format!("`parameters.{key}` holds no whole number"));
                    }
                }
                Domain::Values(_) => {}
            }
        }
        match self.method {
            Method::Grid => {
                if self.trials.is_some() {
                    return Err(
                        "`trials` applies to random sweeps; a grid tries every combination".into(),
                    );
                }
                self.grid()
            }
            Method::Random => {
                let trials = self
                    .trials
                    .filter(|&n| (1..=MAX_TRIALS).contains(&n))
                    .ok_or_else(|| {
                        format!("a random sweep needs `trials` between 1 and {MAX_TRIALS}")
                    })?;
                Ok(self.random(trials))
            }
        }
    }

    /// Every combination, the last parameter (in key order) varying fastest.
    fn grid(&self) -> Result<Vec<Vec<(String, Value)>>, String> {
        let mut combinations: Vec<Vec<(String, Value)>> = vec![Vec::new()];
        for (key, domain) in &self.parameters {
            let Domain::Values(values) = domain else {
                unreachable!("ranges were rejected for grids above");
            };
            if combinations.len() * values.len() > MAX_TRIALS {
                return Err(format!("the grid has more than {MAX_TRIALS} combinations"));
            }
            combinations = combinations
                .into_iter()
                .flat_map(|partial| {
                    values.iter().map(move |value| {
                        let mut next = partial.clone();
                        next.push((key.clone(), value.clone()));
                        next
                    })
                })
                .collect();
        }
        Ok(combinations)
    }

    fn random(&self, trials: usize) -> Vec<Vec<(String, Value)>> {
        let mut rng = StdRng::seed_from_u64(self.seed);
        (0..trials)
            .map(|_| {
                self.parameters
                    .iter()
                    .map(|(key, domain)| (key.clone(), draw(domain, &mut rng)))
                    .collect()
            })
            .collect()
    }
}

fn draw(domain: &Domain, rng: &mut StdRng) -> Value {
    match domain {
        Domain::Values(values) => values[rng.random_range(0..values.len())].clone(),
        Domain::Range(range) if range.integer && !range.log => {
            Value::from(rng.random_range(range.min.ceil() as i64..=range.max.floor() as i64))
        }
        Domain::Range(range) => {
            let Range { min, max, .. } = *range;
            let unit: f64 = rng.random();
            let value = if range.log {
                (min.ln() + unit * (max.ln() - min.ln())).exp()
            } else {
                min + unit * (max - min)
            };
            if range.integer {
                // Log-uniform whole numbers: rounded, kept within the range.
                Value::from((value.round() as i64).clamp(min.ceil() as i64, max.floor() as i64))
            } else {
                // Six significant digits keep configs and leaderboards readable.
                let rounded: f64 = format!("{value:.5e}").parse().unwrap_or(value);
                Value::from(rounded)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(json: &str) -> Result<Vec<Trial>, SweepError> {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("sweep.json");
        std::fs::write(&path, json).expect("write");
        SweepSpec::plan(&path).map(|(_, trials)| trials)
    }

    #[test]
    fn a_grid_tries_every_combination() {
        let trials = plan(
            r#"{"base": {"epochs": 2}, "parameters": {"lr": [0.001, 0.01],
                "optimizer.name": ["adam", "sgd", "adamw"]}}"#,
        )
        .expect("valid");
        assert_eq!(trials.len(), 6);
        assert!(trials.iter().all(|t| t.config.epochs == 2));
        let described: Vec<String> = trials.iter().map(Trial::describe).collect();
        assert_eq!(described[0], "lr=0.001 optimizer.name=adam");
        assert_eq!(described[5], "lr=0.01 optimizer.name=adamw");
        assert_eq!(trials[4].config.lr, 0.01);
    }

    #[test]
    fn a_random_sweep_draws_its_budget_reproducibly_within_ranges() {
        let json = r#"{"method": "random", "trials": 20, "seed": 7, "parameters": {
            "lr": {"min": 1e-4, "max": 1e-2, "log": true},
            "epochs": {"min": 1, "max": 3, "integer": true},
            "model.dropout": [0.0, 0.1]}}"#;
        let first = plan(json).expect("valid");
        let again = plan(json).expect("valid");
        assert_eq!(first.len(), 20);
        for (a, b) in first.iter().zip(&again) {
            assert_eq!(a.config.to_string(), b.config.to_string());
            assert!((1e-4..=1e-2).contains(&a.config.lr), "{}", a.config.lr);
            assert!((1..=3).contains(&a.config.epochs));
        }
        let distinct: std::collections::BTreeSet<String> =
            first.iter().map(|t| t.config.lr.to_string()).collect();
        assert!(distinct.len() > 10, "{distinct:?}");
    }

    #[test]
    fn seeds_repeat_every_configuration() {
        let trials =
            plan(r#"{"seeds": [7, 8, 9], "parameters": {"lr": [0.001, 0.01]}}"#).expect("valid");
        assert_eq!(trials.len(), 6);
        let configurations: Vec<usize> = trials.iter().map(|t| t.configuration).collect();
        assert_eq!(configurations, [0, 0, 0, 1, 1, 1]);
        let seeds: Vec<u64> = trials.iter().map(|t| t.config.seed).collect();
        assert_eq!(seeds, [7, 8, 9, 7, 8, 9]);
        assert_eq!(trials[4].describe(), "lr=0.01 seed=8");
        assert_eq!(trials[4].config.lr, 0.01);
    }

    #[test]
    fn mistakes_in_the_sweep_file_are_named() {
        let cases = [
            (r#"{"parameters": {}}"#, "no config field"),
            (r#"{"parameters": {"lr": []}}"#, "parameters.lr"),
            (
                r#"{"parameters": {"lr": {"min": 0.1, "max": 1}}}"#,
                "only a random sweep",
            ),
            (
                r#"{"method": "random", "parameters": {"lr": [1]}}"#,
                "trials",
            ),
            (r#"{"paramters": {"lr": [1]}}"#, "paramters"),
            (r#"{"parameters": {"lr": [-1]}}"#, "trial 1"),
            (
                r#"{"parameters": {"optimizer.nmae": ["sgd"]}}"#,
                "optimizer.nmae",
            ),
            (
                r#"{"seeds": [1], "parameters": {"seed": [1, 2]}}"#,
                "keep one",
            ),
            (r#"{"seeds": [1, 1], "parameters": {"lr": [0.1]}}"#, "twice"),
            (
                r#"{"method": "random", "trials": 2, "parameters": {"epochs": {"min": 1.2, "max": 1.8, "integer": true}}}"#,
                "no whole number",
            ),
            (
                r#"{"method": "random", "trials": 2, "parameters": {"lr": {"min": 0.1, "max": 1, "lgo": true}}}"#,
                "parameters.lr",
            ),
            (
                r#"{"base": {"split": {"valid_size": 0}}, "parameters": {"lr": [0.1]}}"#,
                "split.valid_size",
            ),
        ];
        for (json, expected) in cases {
            let err = plan(json).expect_err(json);
            assert!(err.to_string().contains(expected), "{json}: {err}");
        }
    }
}
