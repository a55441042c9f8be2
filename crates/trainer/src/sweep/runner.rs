//! Training the trials: each in a child `trainer train` process in its own run
//! directory, several at once on worker threads, skipping those that finished and
//! resuming those that were interrupted.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal};

use super::plan::Trial;
use super::ranking::Outcome;
use super::{SweepError, SweepRequest};
use crate::TrainerError;
use crate::config::TrainingConfig;
use crate::run_dir::RunDir;
use crate::stop::{SWEEP_RUNNER, StopSignals};

const PLAN: &str = "trial.json";
const LOG: &str = "train.log";

/// Runs every trial not finished yet, `request.jobs` at a time, and returns how each
/// ended, in plan order (`None` for those not run because the sweep had to stop).
pub(crate) fn run_all(
    request: &SweepRequest,
    trials: &[Trial],
) -> Result<Vec<Option<Outcome>>, SweepError> {
    let next = AtomicUsize::new(0);
    let outcomes: Mutex<Vec<Option<Outcome>>> = Mutex::new(vec![None; trials.len()]);
    let failure: Mutex<Option<SweepError>> = Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..request.jobs.max(1).min(trials.len()) {
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
    Ok(outcomes.into_inner().unwrap_or_default())
}

/// Writes a trial's directory and the config planned for it, returning the config's
/// path.
pub(crate) fn prepare(request: &SweepRequest, trial: &Trial) -> Result<PathBuf, SweepError> {
    let dir = trial.dir(&request.dir);
    std::fs::create_dir_all(&dir).map_err(|error| TrainerError::Write {
        path: dir.clone(),
        error,
    })?;
    let plan = dir.join(PLAN);
    crate::fs::write_atomically(&plan, trial.config.to_string().as_bytes())?;
    Ok(plan)
}

/// How a trial stands without training it: finished, failed (it started, by its log,
/// and did not finish), or not run (`None`).
pub(crate) fn outcome_so_far(
    request: &SweepRequest,
    trial: &Trial,
) -> Result<Option<Outcome>, SweepError> {
    let dir = trial.dir(&request.dir);
    let run = RunDir::new(&dir);
    match finished(&run) {
        Ok(Some(outcome)) => Ok(Some(outcome)),
        Err(damaged) => Ok(Some(Outcome::Failed(damaged.to_string()))),
        Ok(None) if dir.join(LOG).is_file() => {
            let log = dir.join(LOG);
            let reason = last_error_line(&log, 0)
                .unwrap_or_else(|| format!("it did not finish; see {}", log.display()));
            Ok(Some(Outcome::Failed(reason)))
        }
        Ok(None) => Ok(None),
    }
}

/// Trains one trial in a child process unless it finished before, and reads its
/// result from its run directory.
pub(crate) fn run_trial(
    request: &SweepRequest,
    trial: &Trial,
    total: usize,
) -> Result<Outcome, SweepError> {
    let dir = trial.dir(&request.dir);
    let run = RunDir::new(&dir);
    let label = format!("trial {}/{total}", trial.number);
    // A damaged trial is trained again, and its failure names the damaged file.
    if let Ok(Some(outcome)) = finished(&run) {
        request.console.line(format_args!(
            "{label} finished earlier: {}  {}",
            summary(&outcome),
            trial.describe()
        ));
        return Ok(outcome);
    }
    let write_error = |path: PathBuf| move |error| TrainerError::Write { path, error };
    let plan = prepare(request, trial)?;
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
    command.env(SWEEP_RUNNER, std::process::id().to_string());
    command.arg("train").arg("--run").arg(&dir).arg("--no-test");
    if run.holds_checkpoint() {
        // Continue an interrupted trial where it stopped.
        command.arg("--resume");
    } else {
        command.arg("--config").arg(&plan).arg("--overwrite");
    }
    if let Some(data_dir) = &request.data_dir {
        command.arg("--data-dir").arg(data_dir);
    }
    if let Some(device) = &request.device {
        command.arg("--device").arg(device);
    }
    let started = Instant::now();
    let spawn_error = |error| SweepError::Spawn {
        exe: request.trainer.clone(),
        error,
    };
    let mut child = command
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err)
        .spawn()
        .map_err(spawn_error)?;
    let status = wait_passing_on_stops(&mut child, &request.stop).map_err(spawn_error)?;
    if let Some(signal) = request.stop.received() {
        return Err(SweepError::Stopped {
            signal,
            trial: trial.number,
            dir,
        });
    }
    let outcome = match (status.success(), finished(&run)) {
        (true, Ok(Some(outcome))) => outcome,
        (true, Err(damaged)) => Outcome::Failed(damaged.to_string()),
        _ => Outcome::Failed(last_error(&log_path, attempt_start, status)),
    };
    request.console.line(format_args!(
        "{label} {} in {:.1}s  {}",
        summary(&outcome),
        started.elapsed().as_secs_f64(),
        trial.describe()
    ));
    Ok(outcome)
}

/// Waits for a trial's process, passing a stop sent to this one on to it (as SIGTERM,
/// which makes it checkpoint where it is).
fn wait_passing_on_stops(child: &mut Child, stop: &StopSignals) -> std::io::Result<ExitStatus> {
    let mut passed_on = false;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(status);
        }
        if !passed_on && stop.sent_to_this_process() {
            rustix::process::kill_process(Pid::from_child(child), Signal::TERM)?;
            passed_on = true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether `saved` (a trial's config as its run wrote it, with what training fits to
/// the data filled in) is the config planned for it.
fn same_plan(saved: &TrainingConfig, planned: &TrainingConfig) -> bool {
    let mut planned = planned.clone();
    planned.fit_like(saved);
    planned.to_string() == saved.to_string()
}

/// The result of a trial whose run completed: its final model exists and its
/// validation scores are recorded.
fn finished(run: &RunDir) -> Result<Option<Outcome>, SweepError> {
    if !run.model_path().is_file() {
        return Ok(None);
    }
    let info = run.load_info()?;
    let seconds = run
        .load_metrics(usize::MAX)?
        .iter()
        .map(|e| e.duration.as_secs_f64())
        .sum();
    let (Some(epoch), Some(valid_accuracy), Some(valid_loss)) =
        (info.kept_epoch, info.valid_accuracy, info.valid_loss)
    else {
        return Ok(None);
    };
    Ok(Some(Outcome::Finished {
        valid_accuracy,
        valid_loss,
        epoch,
        seconds,
    }))
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

/// The child's error line, from what the attempt that began at byte `start` of the
/// log wrote, for the leaderboard.
fn last_error(log: &Path, start: u64, status: std::process::ExitStatus) -> String {
    last_error_line(log, start)
        .unwrap_or_else(|| format!("the trainer ended with {status}; see {}", log.display()))
}

/// The last `error:` line the log holds after byte `start`.
fn last_error_line(log: &Path, start: u64) -> Option<String> {
    let written = std::fs::read(log)
        .ok()
        .and_then(|bytes| bytes.get(start as usize..).map(<[u8]>::to_vec))
        .unwrap_or_default();
    String::from_utf8_lossy(&written)
        .lines()
        .rev()
        .find(|line| line.starts_with("error:"))
        .map(str::to_string)
}

/// Refuses, before any training, a sweep directory holding trials another sweep
/// planned differently, or trained on other data.
pub(crate) fn check_trials_are_ours(
    request: &SweepRequest,
    trials: &[Trial],
) -> Result<(), SweepError> {
    let wanted_data = request
        .data_dir
        .as_ref()
        .map(|dir| std::fs::canonicalize(dir).unwrap_or(dir.clone()));
    for trial in trials {
        let run = RunDir::new(trial.dir(&request.dir));
        if !run.config_path().is_file() {
            continue;
        }
        let trained_on = run.load_info()?.data_dir;
        let other_data =
            matches!((&wanted_data, &trained_on), (Some(wanted), Some(used)) if wanted != used);
        if other_data || !same_plan(&run.load_config()?, &trial.config) {
            return Err(SweepError::Changed {
                dir: run.root().to_path_buf(),
            });
        }
    }
    Ok(())
}
