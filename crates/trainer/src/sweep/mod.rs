//! Hyperparameter search. A sweep file names a base config, the config fields to vary
//! and how (every combination, or a seeded random sample within a trial budget). Each
//! trial is an ordinary run directory under the sweep's directory, trained by a child
//! `trainer train` process without a test-set evaluation. With `seeds`, every
//! configuration is trained once per seed. Configurations are ranked by validation
//! accuracy (the median over their seeds), and only the winner is scored on the test
//! set. The directory's layout is in the README; rerunning a sweep skips trials that
//! finished, resumes those that were interrupted, and retries those that failed.
//!
//! A sweep also runs in three stages, for a cluster's scheduler: [`plan_sweep`]
//! writes every trial's directory and config, [`train_trial`] trains one (a task of
//! a job array, on any machine that sees the directory), and [`collect_sweep`] ranks
//! what finished as a local sweep does. A trial writes only its own directory; only
//! planning and collecting write the sweep's own files.

mod error;
mod leaderboard;
mod plan;
mod ranking;
mod runner;
mod slurm;
mod spec;
mod winner;

use std::path::PathBuf;

pub use self::error::{SlurmError, SweepError};
pub(crate) use self::plan::Trial;
pub use self::ranking::{Outcome, Ranked};
pub use self::slurm::{SlurmOptions, Submitted, submit_to_slurm};
pub(crate) use self::spec::{Method, SweepSpec};
pub(crate) use self::winner::Best;
use crate::TrainerError;
use crate::backend;
use crate::console::Console;
use crate::infer::TestSet;
use crate::run_dir::RunDir;
use crate::stop::StopSignals;

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
    pub console: Console,
    /// Stops the sweep, each trial under way checkpointed where it is.
    pub stop: StopSignals,
}

/// Runs every trial not finished yet, writes the leaderboards, scores the winner's
/// trials on the test set and writes `best.json`.
pub fn run_sweep(request: &SweepRequest) -> Result<Best, SweepError> {
    let (spec, trials) = planned(request)?;
    announce(request, &spec, &trials);
    write_plan(request, &spec)?;
    let outcomes = runner::run_all(request, &trials)?;
    let ranked = rank(request, &spec, trials, outcomes)?;
    score(request, &ranked)
}

/// Writes the sweep's directory, its `sweep.json` and every trial's directory and
/// config, trains nothing, and returns how many trials there are.
pub fn plan_sweep(request: &SweepRequest) -> Result<usize, SweepError> {
    let (spec, trials) = planned(request)?;
    write_plan(request, &spec)?;
    for trial in &trials {
        runner::prepare(request, trial)?;
    }
    Ok(trials.len())
}

/// Trains trial `number` (from 1, as its directory `trial-NNN` is numbered) alone,
/// resuming it if it was interrupted; writes nothing outside its directory.
pub fn train_trial(request: &SweepRequest, number: usize) -> Result<Outcome, SweepError> {
    let (_, trials) = planned(request)?;
    let trial =
        trials
            .iter()
            .find(|trial| trial.number == number)
            .ok_or(SweepError::NoSuchTrial {
                number,
                count: trials.len(),
            })?;
    runner::run_trial(request, trial, trials.len())
}

/// Ranks the trials that finished, as [`run_sweep`] does at its end; a trial that
/// started and did not finish counts as failed, one never started as not run.
pub fn collect_sweep(request: &SweepRequest) -> Result<Best, SweepError> {
    let (spec, trials) = planned(request)?;
    let outcomes = trials
        .iter()
        .map(|trial| runner::outcome_so_far(request, trial))
        .collect::<Result<Vec<_>, _>>()?;
    write_plan(request, &spec)?;
    let not_run: Vec<String> = trials
        .iter()
        .zip(&outcomes)
        .filter(|(_, outcome)| outcome.is_none())
        .map(|(trial, _)| trial.name())
        .collect();
    let total = trials.len();
    let ranked = rank(request, &spec, trials, outcomes)?;
    if !not_run.is_empty() {
        return Err(SweepError::NotRun {
            total,
            trials: not_run,
        });
    }
    score(request, &ranked)
}

/// The sweep's trials, once its directory is known to hold no other sweep's.
fn planned(request: &SweepRequest) -> Result<(SweepSpec, Vec<Trial>), SweepError> {
    let (spec, trials) = SweepSpec::plan(&request.spec_path)?;
    runner::check_trials_are_ours(request, &trials)?;
    Ok((spec, trials))
}

fn announce(request: &SweepRequest, spec: &SweepSpec, trials: &[Trial]) {
    request.console.line(format_args!(
        "sweep {}: {} trials ({}), {} at a time, in {}",
        request.spec_path.display(),
        trials.len(),
        match spec.method {
            Method::Grid => "grid".to_string(),
            Method::Random => format!("random, seed {}", spec.seed),
        },
        request.jobs.max(1),
        request.dir.display()
    ));
}

/// The sweep's directory and its `sweep.json`.
fn write_plan(request: &SweepRequest, spec: &SweepSpec) -> Result<(), SweepError> {
    std::fs::create_dir_all(&request.dir).map_err(|error| TrainerError::Write {
        path: request.dir.clone(),
        error,
    })?;
    let spec_json = serde_json::to_vec_pretty(spec).unwrap_or_default();
    Ok(crate::fs::write_atomically(
        &request.dir.join("sweep.json"),
        &spec_json,
    )?)
}

/// Writes and prints the leaderboards.
fn rank(
    request: &SweepRequest,
    spec: &SweepSpec,
    trials: Vec<Trial>,
    outcomes: Vec<Option<Outcome>>,
) -> Result<Vec<Ranked>, SweepError> {
    let ranked = ranking::rank(trials, outcomes, !spec.seeds.is_empty());
    let markdown = leaderboard::write_leaderboards(&request.dir, &ranked, spec.parameters.keys())?;
    request.console.line(format_args!(
        "leaderboard (by validation accuracy):\n{markdown}"
    ));
    Ok(ranked)
}

/// Scores the winner's trials on the test set and writes `best.json`.
fn score(request: &SweepRequest, ranked: &[Ranked]) -> Result<Best, SweepError> {
    let console = request.console;
    let Some((winner, valid_accuracy)) = ranked
        .first()
        .and_then(|entry| Some((entry, entry.valid_accuracy()?)))
    else {
        return Err(SweepError::NothingFinished(request.dir.clone()));
    };
    // The device is opened only now, so that it is free while the trials train.
    let backend = backend::open(request.device.as_deref()).map_err(TrainerError::from)?;
    console.line(&backend);
    // The test set is consulted once, for the winner only (each of its seeds); the
    // trials share their data, so it is read once.
    let finished: Vec<&Trial> = winner.finished().collect();
    let first = RunDir::new(finished[0].dir(&request.dir));
    let test = TestSet::of(&first, &first.load_config()?, request.data_dir.clone())?;
    let mut scores = Vec::with_capacity(finished.len());
    for trial in finished {
        let run = RunDir::new(trial.dir(&request.dir));
        let model = run.load_model(&backend.device)?;
        scores.push((
            trial.name(),
            test.score(&run, &model, &backend.device, console)?,
        ));
    }
    let best = Best::new(winner, valid_accuracy, &scores);
    console.line(best.summary(&winner.describe()));
    best.save(&request.dir)?;
    console.line(format_args!(
        "wrote {}",
        request.dir.join("best.json").display()
    ));
    Ok(best)
}
