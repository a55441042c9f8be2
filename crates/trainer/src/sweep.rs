//! Hyperparameter search. A sweep file names a base config, the config fields to vary
//! and how (every combination, or a seeded random sample within a trial budget). Each
//! trial is an ordinary run directory under the sweep's directory, trained by a child
//! `trainer train` process without a test-set evaluation. With `seeds`, every
//! configuration is trained once per seed. Configurations are ranked by validation
//! accuracy (the median over their seeds), and only the winner is scored on the test
//! set.
//!
//! ```text
//! <sweep>/sweep.json              the sweep file as run
//! <sweep>/trial-NNN/trial.json    the trial's planned config
//! <sweep>/trial-NNN/train.log     the child process's output
//! <sweep>/trial-NNN/...           an ordinary run directory
//! <sweep>/leaderboard.{csv,md}    configurations by validation accuracy
//! <sweep>/best.json               the winner and its test-set scores
//! ```
//!
//! Rerunning a sweep skips trials that finished, resumes those that were interrupted
//! from their last checkpoint, and retries those that failed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::TrainerError;
use crate::config::{ConfigError, TrainingConfig};
use crate::run_dir::RunDir;
use crate::stats::median;

/// Grids larger than this are surely a mistake in the sweep file.
const MAX_TRIALS: usize = 10_000;
const PLAN: &str = "trial.json";
const LOG: &str = "train.log";

/// How the trials are chosen.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// Every combination of the listed values.
    #[default]
    Grid,
    /// `trials` draws, each value picked at random from its list or range.
    Random,
}

/// The values one config field takes.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Domain {
    /// These values (any JSON: numbers, strings, lists).
    Values(Vec<Value>),
    /// A number drawn from a range (random sweeps only).
    Range(Range),
}

/// A number between `min` and `max`: uniform, or with `log` log-uniform; with
/// `integer`, a whole number, each equally likely.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Range {
    pub min: f64,
    pub max: f64,
    #[serde(default)]
    pub log: bool,
    #[serde(default)]
    pub integer: bool,
}

/// A sweep file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SweepSpec {
    /// The config every trial starts from: a path (relative to the sweep file) or an
    /// inline config object; the built-in defaults if absent.
    #[serde(default)]
    pub base: Option<Value>,
    #[serde(default)]
    pub method: Method,
    /// How many trials a random sweep draws.
    #[serde(default)]
    pub trials: Option<usize>,
    /// Seed of a random sweep's draws.
    #[serde(default)]
    pub seed: u64,
    /// Train every configuration once with each of these values of the config's
    /// `seed`, and rank configurations by the median of their validation accuracies:
    /// differences smaller than the spread between seeds are noise.
    #[serde(default)]
    pub seeds: Vec<u64>,
    /// Dotted config keys (`lr`, `optimizer.name`, `model.dropout`, ...) and the values
    /// each takes.
    pub parameters: BTreeMap<String, Domain>,
}

/// A sweep that cannot run, and why.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error("cannot read sweep file {path}: {error}; pass --config with an existing JSON file")]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("sweep file {path} is not valid: {reason}")]
    Invalid { path: PathBuf, reason: String },
    #[error("trial {trial} of sweep {path} is not a valid config: {error}")]
    Trial {
        path: PathBuf,
        trial: usize,
        error: ConfigError,
    },
    #[error(
        "{dir} holds a trial with another config or data directory than this sweep plans for it; run the sweep into another --artifacts directory, or delete {dir}"
    )]
    Changed { dir: PathBuf },
    #[error("cannot start `{exe}`: {error}")]
    Spawn { exe: PathBuf, error: std::io::Error },
    #[error("no trial of the sweep finished; see the train.log of each trial in {0}")]
    NothingFinished(PathBuf),
}

/// One planned trial: its number (from 1), settings and full config.
#[derive(Debug, Clone)]
pub struct Trial {
    pub number: usize,
    /// The configuration it belongs to (from 0): trials differing only in `seed`
    /// share one.
    pub configuration: usize,
    /// The values the sweep sets, the seed last when the sweep has `seeds`.
    pub settings: Vec<(String, Value)>,
    pub config: TrainingConfig,
}

impl Trial {
    /// `trial-007`.
    pub fn name(&self) -> String {
        format!("trial-{:03}", self.number)
    }

    pub fn dir(&self, sweep_dir: &Path) -> PathBuf {
        sweep_dir.join(self.name())
    }

    /// `lr=0.003 optimizer.name=adamw`.
    pub fn describe(&self) -> String {
        describe(&self.settings)
    }
}

/// `lr=0.003 optimizer.name=adamw`.
fn describe(settings: &[(String, Value)]) -> String {
    settings
        .iter()
        .map(|(key, value)| format!("{key}={}", show(value)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A JSON value as a user would write it on the command line.
fn show(value: &Value) -> String {
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
                if config.split.valid_size == 0 {
                    return Err(trial_error(ConfigError::Invalid {
                        field: "split.valid_size",
                        rule: "above 0 in a sweep, which ranks trials on the validation set",
                        value: "0".into(),
                    }));
                }
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

/// How to run a sweep.
#[derive(Debug, Clone)]
pub struct SweepRequest {
    pub spec_path: PathBuf,
    pub dir: PathBuf,
    /// Trials trained at once.
    pub jobs: usize,
    /// The `trainer` executable that trains each trial.
    pub trainer: PathBuf,
    /// Passed on to each trial.
    pub data_dir: Option<PathBuf>,
    pub device: Option<String>,
}

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
    pub settings: Vec<(String, Value)>,
    pub trials: Vec<(Trial, Outcome)>,
}

impl Ranked {
    /// The trials that finished.
    pub fn finished(&self) -> impl Iterator<Item = &Trial> {
        self.trials
            .iter()
            .filter(|(_, outcome)| matches!(outcome, Outcome::Finished { .. }))
            .map(|(trial, _)| trial)
    }

    /// The median over its finished trials of the validation accuracy, or `None`
    /// when none finished.
    pub fn valid_accuracy(&self) -> Option<f64> {
        self.median_of(|outcome| match outcome {
            Outcome::Finished { valid_accuracy, .. } => Some(*valid_accuracy),
            Outcome::Failed(_) => None,
        })
    }

    fn valid_loss(&self) -> Option<f64> {
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
    pub fn trial_names(&self) -> String {
        self.trials
            .iter()
            .map(|(trial, _)| trial.name())
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// `lr=0.003 optimizer.name=adamw`.
    pub fn describe(&self) -> String {
        describe(&self.settings)
    }
}

/// Runs every trial not finished yet, then writes and returns the leaderboard, best
/// first. Scoring the winner on the test set is left to the caller.
pub fn run_sweep(request: &SweepRequest) -> Result<Vec<Ranked>, TrainerError> {
    let (spec, trials) = SweepSpec::plan(&request.spec_path)?;
    let jobs = request.jobs.max(1);
    println!(
        "sweep {}: {} trials ({}), {} at a time, in {}",
        request.spec_path.display(),
        trials.len(),
        match spec.method {
            Method::Grid => "grid".to_string(),
            Method::Random => format!("random, seed {}", spec.seed),
        },
        jobs,
        request.dir.display()
    );
    check_trials_are_ours(request, &trials)?;
    let write_error = |path: PathBuf| move |error| TrainerError::Write { path, error };
    std::fs::create_dir_all(&request.dir).map_err(write_error(request.dir.clone()))?;
    let spec_json = serde_json::to_vec_pretty(&spec).unwrap_or_default();
    let spec_copy = request.dir.join("sweep.json");
    data::write_atomically(&spec_copy, &spec_json).map_err(write_error(spec_copy.clone()))?;

    let next = AtomicUsize::new(0);
    let outcomes: Mutex<Vec<Option<Outcome>>> = Mutex::new(vec![None; trials.len()]);
    let failure: Mutex<Option<TrainerError>> = Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..jobs.min(trials.len()) {
            scope.spawn(|| {
                loop {
                    let index = next.fetch_add(1, Ordering::SeqCst);
                    let Some(trial) = trials.get(index) else {
                        return;
                    };
                    match run_trial(request, trial, trials.len()) {
                        Ok(outcome) => {
                            if let Ok(mut all) = outcomes.lock() {
                                all[index] = Some(outcome);
                            }
                        }
                        Err(error) => {
                            // A sweep-level problem (the trial's directory belongs to
                            // another sweep, the trainer cannot start): stop handing
                            // out trials.
                            next.store(trials.len(), Ordering::SeqCst);
                            if let Ok(mut first) = failure.lock() {
                                first.get_or_insert(error);
                            }
                            return;
                        }
                    }
                }
            });
        }
    });
    if let Some(error) = failure.into_inner().ok().flatten() {
        return Err(error);
    }
    let outcomes = outcomes.into_inner().unwrap_or_default();
    let mut ranked: Vec<Ranked> = Vec::new();
    for (trial, outcome) in trials.into_iter().zip(outcomes) {
        let Some(outcome) = outcome else { continue };
        match ranked.last_mut() {
            Some(group) if group.trials[0].0.configuration == trial.configuration => {
                group.trials.push((trial, outcome));
            }
            _ => {
                let seeded = usize::from(!spec.seeds.is_empty());
                let shared = trial.settings.len() - seeded;
                ranked.push(Ranked {
                    settings: trial.settings[..shared].to_vec(),
                    trials: vec![(trial, outcome)],
                });
            }
        }
    }
    // Configurations all of whose trials finished come first, so that one lucky seed
    // of a half-failed configuration cannot win; those with none finished come last.
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
    write_leaderboards(&request.dir, &ranked, spec.parameters.keys())?;
    Ok(ranked)
}

/// Trains one trial in a child process unless it finished before, and reads its
/// result from its run directory.
fn run_trial(request: &SweepRequest, trial: &Trial, total: usize) -> Result<Outcome, TrainerError> {
    let dir = trial.dir(&request.dir);
    let run = RunDir::new(&dir);
    let label = format!("trial {}/{total}", trial.number);
    if let Some(outcome) = finished(&run) {
        println!(
            "{label} finished earlier: {}  {}",
            summary(&outcome),
            trial.describe()
        );
        return Ok(outcome);
    }
    let write_error = |path: PathBuf| move |error| TrainerError::Write { path, error };
    std::fs::create_dir_all(&dir).map_err(write_error(dir.clone()))?;
    let plan = dir.join(PLAN);
    data::write_atomically(&plan, trial.config.to_string().as_bytes())
        .map_err(write_error(plan.clone()))?;
    let log_path = dir.join(LOG);
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(write_error(log_path.clone()))?;
    let log_err = log.try_clone().map_err(write_error(log_path.clone()))?;
    // Earlier attempts' output stays in the log; only this one's explains its end.
    let attempt_start = log.metadata().map_or(0, |m| m.len());

    let mut command = Command::new(&request.trainer);
    command
        .arg("train")
        .arg("--artifacts")
        .arg(&dir)
        .arg("--no-test");
    match run.last_checkpoint() {
        // Continue an interrupted trial where it stopped.
        Some(_) => command.arg("--resume"),
        None => command.arg("--config").arg(&plan).arg("--overwrite"),
    };
    if let Some(data_dir) = &request.data_dir {
        command.arg("--data-dir").arg(data_dir);
    }
    if let Some(device) = &request.device {
        command.arg("--device").arg(device);
    }
    let started = Instant::now();
    let status = command
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err)
        .status()
        .map_err(|error| SweepError::Spawn {
            exe: request.trainer.clone(),
            error,
        })?;
    let outcome = match (status.success(), finished(&run)) {
        (true, Some(outcome)) => outcome,
        _ => Outcome::Failed(last_error(&log_path, attempt_start, status)),
    };
    println!(
        "{label} {} in {:.1}s  {}",
        summary(&outcome),
        started.elapsed().as_secs_f64(),
        trial.describe()
    );
    Ok(outcome)
}

/// Whether `saved` (a trial's config as its run wrote it, with the network's input
/// size and class count filled in from the data) is the config planned for it.
fn same_plan(saved: &TrainingConfig, planned: &TrainingConfig) -> bool {
    let mut planned = planned.clone();
    planned.model.input_size = saved.model.input_size;
    planned.model.num_classes = saved.model.num_classes;
    planned.to_string() == saved.to_string()
}

/// The result of a trial whose run completed: its final model exists and its
/// validation scores are recorded.
fn finished(run: &RunDir) -> Option<Outcome> {
    if !run.model_path().is_file() {
        return None;
    }
    let info = run.load_info();
    let epoch = info.kept_epoch?;
    let seconds = run
        .load_metrics(usize::MAX)
        .iter()
        .map(|e| e.duration.as_secs_f64())
        .sum();
    Some(Outcome::Finished {
        valid_accuracy: info.valid_accuracy?,
        valid_loss: info.valid_loss?,
        epoch,
        seconds,
    })
}

fn summary(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Finished {
            valid_accuracy,
            valid_loss,
            ..
        } => format!("valid acc {valid_accuracy:.2}%  valid loss {valid_loss:.4}"),
        Outcome::Failed(reason) => format!("FAILED ({reason})"),
    }
}

/// The child's error line, for the leaderboard.
/// The child's error line, from what the attempt that began at byte `start` of the
/// log wrote, for the leaderboard.
fn last_error(log: &Path, start: u64, status: std::process::ExitStatus) -> String {
    let written = std::fs::read(log)
        .ok()
        .and_then(|bytes| bytes.get(start as usize..).map(<[u8]>::to_vec))
        .unwrap_or_default();
    String::from_utf8_lossy(&written)
        .lines()
        .rev()
        .find(|line| line.starts_with("error:"))
        .map(str::to_string)
        .unwrap_or_else(|| format!("the trainer ended with {status}; see {}", log.display()))
}

/// Refuses, before any training, a sweep directory holding trials another sweep
/// planned differently, or trained on other data.
fn check_trials_are_ours(request: &SweepRequest, trials: &[Trial]) -> Result<(), TrainerError> {
    let wanted_data = request
        .data_dir
        .as_ref()
        .map(|dir| std::fs::canonicalize(dir).unwrap_or(dir.clone()));
    for trial in trials {
        let run = RunDir::new(trial.dir(&request.dir));
        if !run.config_path().is_file() {
            continue;
        }
        let trained_on = run.load_info().data_dir;
        let other_data =
            matches!((&wanted_data, &trained_on), (Some(wanted), Some(used)) if wanted != used);
        if other_data || !same_plan(&run.load_config()?, &trial.config) {
            return Err(SweepError::Changed {
                dir: run.root().to_path_buf(),
            }
            .into());
        }
    }
    Ok(())
}

/// Writes `leaderboard.csv` and `leaderboard.md`, and prints the latter: a row per
/// configuration, with the medians over its finished trials.
fn write_leaderboards<'a>(
    dir: &Path,
    ranked: &[Ranked],
    keys: impl Iterator<Item = &'a String>,
) -> Result<(), TrainerError> {
    let keys: Vec<&String> = keys.collect();
    let mut header = vec!["rank".to_string(), "trials".to_string()];
    header.extend(keys.iter().map(|k| k.to_string()));
    header.extend(
        [
            "valid_accuracy",
            "valid_loss",
            "finished",
            "seconds",
            "status",
        ]
        .map(String::from),
    );
    let rows: Vec<Vec<String>> = ranked
        .iter()
        .enumerate()
        .map(|(rank, entry)| {
            let mut row = vec![(rank + 1).to_string(), entry.trial_names()];
            row.extend(entry.settings.iter().map(|(_, value)| show(value)));
            let finished = entry.finished().count();
            let seconds: f64 = entry
                .trials
                .iter()
                .map(|(_, outcome)| match outcome {
                    Outcome::Finished { seconds, .. } => *seconds,
                    Outcome::Failed(_) => 0.0,
                })
                .sum();
            let failure = entry
                .trials
                .iter()
                .find_map(|(trial, outcome)| match outcome {
                    Outcome::Failed(reason) => Some(format!("{} failed: {reason}", trial.name())),
                    Outcome::Finished { .. } => None,
                });
            row.extend([
                entry
                    .valid_accuracy()
                    .map_or_else(String::new, |a| format!("{a:.2}")),
                entry
                    .valid_loss()
                    .map_or_else(String::new, |l| format!("{l:.4}")),
                format!("{finished}/{}", entry.trials.len()),
                format!("{seconds:.1}"),
                failure.unwrap_or_else(|| "finished".into()),
            ]);
            row
        })
        .collect();
    let csv_field = |field: &String| {
        if field.contains([',', '"', '\n', '\r']) {
            format!("\"{}\"", field.replace('"', "\"\""))
        } else {
            field.clone()
        }
    };
    let csv: String = std::iter::once(&header)
        .chain(&rows)
        .map(|row| row.iter().map(csv_field).collect::<Vec<_>>().join(",") + "\n")
        .collect();
    let md_cell = |cell: &String| cell.replace('|', "\\|").replace(['\n', '\r'], " ");
    let md_row = |row: &Vec<String>| {
        let cells: Vec<String> = row.iter().map(md_cell).collect();
        format!("| {} |\n", cells.join(" | "))
    };
    let markdown: String = std::iter::once(md_row(&header))
        .chain(std::iter::once(format!(
            "|{}\n",
            "---|".repeat(header.len())
        )))
        .chain(rows.iter().map(md_row))
        .collect();
    for (name, contents) in [("leaderboard.csv", &csv), ("leaderboard.md", &markdown)] {
        let path = dir.join(name);
        data::write_atomically(&path, contents.as_bytes())
            .map_err(|error| TrainerError::Write { path, error })?;
    }
    println!("leaderboard (by validation accuracy):\n{markdown}");
    Ok(())
}

/// What `best.json` records about the winner.
#[derive(Debug, Clone, Serialize)]
pub struct Best {
    /// The winning configuration's finished trials, each scored on the test set.
    pub trials: Vec<String>,
    pub settings: BTreeMap<String, Value>,
    /// Medians over those trials.
    pub valid_accuracy: f64,
    pub test_accuracy: f64,
    pub test_loss: f64,
    /// Each trial's test accuracy, in the order of `trials`.
    pub test_accuracies: Vec<f64>,
}

impl Best {
    pub fn save(&self, sweep_dir: &Path) -> Result<(), TrainerError> {
        let path = sweep_dir.join("best.json");
        let json = serde_json::to_vec_pretty(self).unwrap_or_default();
        data::write_atomically(&path, &json).map_err(|error| TrainerError::Write { path, error })
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
