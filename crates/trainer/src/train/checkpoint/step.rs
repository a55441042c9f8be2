//! The checkpoint a run takes within an epoch when asked to stop: the learner's
//! model, optimizer and scheduler records, how many of the epoch's steps they have
//! taken, and the epoch's training metrics so far. Batch order being a function of
//! seed and epoch, a run resumed from it ends exactly as an uninterrupted one.
//!
//! It lives in `checkpoint/step/`, written whole into `checkpoint/step.partial/` and
//! then renamed, and counts only while no later epoch checkpoint exists.

use std::path::{Path, PathBuf};

use burn::prelude::*;
use burn::train::checkpoint::{
    AsyncCheckpointer, Checkpoint, CheckpointingAction, CheckpointingStrategy,
};
use burn::train::metric::store::EventStoreClient;
use burn::train::{Interrupter, Learner, LearningCheckpointer};
use serde::{Deserialize, Serialize};

use super::{SealedFile, check_records};
use crate::TrainerError;
use crate::config::TrainingConfig;
use crate::run_dir::{CHECKPOINT_RECORDS, RunDir};
use crate::train::learner::classifier::CrossEntropyClassifier;
use crate::train::logger::history::RunningMetrics;

const PROGRESS: &str = "progress.json";

/// Where within an epoch a step checkpoint was taken.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub(crate) struct EpochProgress {
    /// The epoch under way, counted from 1.
    pub(crate) epoch: usize,
    /// Its training steps taken, and their metrics.
    pub(crate) running: RunningMetrics,
}

/// The step checkpoint to resume from after `epochs_done` finished epochs, if the run
/// took one since.
pub(crate) fn find(
    run_dir: &RunDir,
    epochs_done: usize,
) -> Result<Option<EpochProgress>, TrainerError> {
    let path = run_dir.step_checkpoint_dir().join(PROGRESS);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(unreadable(path, error.to_string())),
    };
    let progress: EpochProgress =
        serde_json::from_slice(&bytes).map_err(|error| unreadable(path, error.to_string()))?;
    Ok((progress.epoch == epochs_done + 1).then_some(progress))
}

/// Checks that the records of `progress` are readable and hold the network `config`
/// describes, before Burn loads them (and panics on a bad one).
pub(crate) fn check(
    run_dir: &RunDir,
    config: &TrainingConfig,
    progress: &EpochProgress,
    device: &Device,
) -> Result<(), TrainerError> {
    let dir = run_dir.step_checkpoint_dir();
    let path = |record: &str| record_path(&dir, record, progress.epoch);
    check_records(config, device, path, unreadable)
}

/// Saves `learner` as it stands `progress` into its epoch, replacing any step
/// checkpoint before it.
pub(crate) fn save(
    run_dir: &RunDir,
    learner: &Learner<CrossEntropyClassifier>,
    progress: &EpochProgress,
    store: &EventStoreClient,
) -> Result<(), TrainerError> {
    let dir = run_dir.step_checkpoint_dir();
    let partial = dir.with_extension("partial");
    let write_error = |path: &Path| {
        let path = path.to_path_buf();
        move |error| TrainerError::Write { path, error }
    };
    match std::fs::remove_dir_all(&partial) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
            return Err(write_error(&partial)(error));
        }
        _ => {}
    }
    std::fs::create_dir_all(&partial).map_err(write_error(&partial))?;
    let failures = Interrupter::new();
    // Dropping the checkpointer waits for its writer threads to finish.
    {
        let mut checkpointer = checkpointer(&partial, Some(&failures));
        checkpointer.checkpoint(learner, progress.epoch, store);
    }
    if let Some(error) = failures.error() {
        return Err(TrainerError::Write {
            path: partial,
            error: std::io::Error::other(error.to_string()),
        });
    }
    let json = serde_json::to_vec_pretty(progress).map_err(|error| TrainerError::Write {
        path: partial.join(PROGRESS),
        error: error.into(),
    })?;
    crate::fs::write_atomically(&partial.join(PROGRESS), &json)?;
    discard(run_dir)?;
    std::fs::rename(&partial, &dir).map_err(write_error(&dir))
}

/// `learner` with the records of the step checkpoint of `epoch`, which [`check`]
/// found readable.
pub(crate) fn restore(
    run_dir: &RunDir,
    learner: Learner<CrossEntropyClassifier>,
    epoch: usize,
) -> Learner<CrossEntropyClassifier> {
    checkpointer(&run_dir.step_checkpoint_dir(), None).load_checkpoint(learner, epoch)
}

/// Removes the step checkpoint, once a later checkpoint has made it useless.
pub(crate) fn discard(run_dir: &RunDir) -> Result<(), TrainerError> {
    let dir = run_dir.step_checkpoint_dir();
    match std::fs::remove_dir_all(&dir) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
            Err(TrainerError::Write { path: dir, error })
        }
        _ => Ok(()),
    }
}

fn checkpointer(
    dir: &Path,
    failures: Option<&Interrupter>,
) -> LearningCheckpointer<CrossEntropyClassifier> {
    let [model, optim, scheduler] = CHECKPOINT_RECORDS;
    LearningCheckpointer::new(
        writer(dir, model, failures),
        writer(dir, optim, failures),
        writer(dir, scheduler, failures),
        Box::new(SaveOnce),
    )
}

fn writer<R: Checkpoint>(
    dir: &Path,
    name: &'static str,
    failures: Option<&Interrupter>,
) -> AsyncCheckpointer<R> {
    let writer = AsyncCheckpointer::new(SealedFile::new(dir, name));
    match failures {
        Some(failures) => writer.with_interrupter(failures.clone()),
        None => writer,
    }
}

/// Saves whenever asked: there is one step checkpoint, replaced as a whole.
struct SaveOnce;

impl CheckpointingStrategy for SaveOnce {
    fn checkpointing(&mut self, _: usize, _: &EventStoreClient) -> Vec<CheckpointingAction> {
        vec![CheckpointingAction::Save]
    }
}

fn record_path(dir: &Path, record: &str, epoch: usize) -> PathBuf {
    dir.join(format!("{record}-{epoch}.bpk"))
}

fn unreadable(path: PathBuf, reason: String) -> TrainerError {
    TrainerError::BadStepCheckpoint { path, reason }
}
