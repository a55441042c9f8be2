//! Whether a run may write into its directory, and from where it continues: a new
//! run, a replaced one, or a resumed one (after an epoch, or from a step within the
//! next) whose checkpoints are checked before Burn loads them (and panics on a bad
//! one).

use burn::prelude::*;

use super::check_records;
use super::step::{self, EpochProgress};
use crate::TrainerError;
use crate::config::TrainingConfig;
use crate::console::Console;
use crate::run_dir::RunDir;

/// Where a run continues from.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct ResumePoint {
    /// The last finished epoch's checkpoint (`None`: none, the run starts at epoch 1).
    pub(crate) after_epoch: Option<usize>,
    /// A checkpoint taken within the epoch after it.
    pub(crate) within: Option<EpochProgress>,
}

impl ResumePoint {
    pub(crate) fn epochs_done(&self) -> usize {
        self.after_epoch.unwrap_or(0)
    }
}

/// Decides whether training may write into `run_dir`, and where it continues.
pub(crate) fn prepare_run_dir(
    run_dir: &RunDir,
    config: &TrainingConfig,
    resume: bool,
    overwrite: bool,
    console: Console,
) -> Result<ResumePoint, TrainerError> {
    if resume {
        let after_epoch = run_dir.last_checkpoint();
        let within = step::find(run_dir, after_epoch.unwrap_or(0))?;
        let Some(last) = after_epoch else {
            if !run_dir.config_path().is_file() {
                return Err(TrainerError::NothingToResume(run_dir.root().to_path_buf()));
            }
            if within.is_some() {
                return Ok(ResumePoint {
                    after_epoch,
                    within,
                });
            }
            // The run died within its first epoch: continuing it is starting it over.
            console.line(format_args!(
                "{} holds no complete checkpoint yet; starting the run over",
                run_dir.root().display()
            ));
            return Ok(ResumePoint::default());
        };
        // A run killed after its last checkpoint but before saving its model resumes
        // with no epoch left to train, and just finishes.
        if last >= config.epochs && run_dir.model_path().is_file() {
            return Err(TrainerError::AlreadyFinished {
                dir: run_dir.root().to_path_buf(),
                epochs: last,
            });
        }
        return Ok(ResumePoint {
            after_epoch,
            within,
        });
    }
    if run_dir.holds_run() {
        if !overwrite {
            return Err(TrainerError::RunExists(run_dir.root().to_path_buf()));
        }
        run_dir.clear()?;
    }
    run_dir.create()?;
    Ok(ResumePoint::default())
}

/// Checks that the checkpoint records to resume from are readable and that the model
/// they hold is the one `config` describes.
pub(crate) fn check_resumable(
    run_dir: &RunDir,
    config: &TrainingConfig,
    from: &ResumePoint,
    device: &Device,
) -> Result<(), TrainerError> {
    let saved = run_dir.load_config()?;
    if saved.model.to_string() != config.model.to_string() {
        return Err(TrainerError::ResumeMismatch {
            dir: run_dir.root().to_path_buf(),
            checkpoint: saved.model.architecture(),
            config: config.model.architecture(),
        });
    }
    if let Some(within) = &from.within {
        step::check(run_dir, config, within, device)?;
    }
    if let Some(epoch) = from.after_epoch {
        let unreadable = |path, reason| TrainerError::BadCheckpoint { path, reason };
        let path = |record: &str| run_dir.checkpoint_path(record, epoch);
        check_records(config, device, path, unreadable)?;
    }
    Ok(())
}

/// Starts `target` as a copy of `source` at its last checkpoint: the config it was
/// trained with, the checkpoint's records, its history up to there and its facts, so
/// that resuming `target` continues from that checkpoint as a run of its own.
pub(crate) fn fork(source: &RunDir, target: &RunDir) -> Result<(), TrainerError> {
    let Some(epoch) = source.last_checkpoint() else {
        return Err(TrainerError::NothingToFork(source.root().to_path_buf()));
    };
    if target.holds_run() || target.model_path().exists() {
        return Err(TrainerError::RunExists(target.root().to_path_buf()));
    }
    target.create()?;
    target.save_config(&source.load_config()?)?;
    target.save_info(&source.load_info()?)?;
    target.save_metrics(&source.load_metrics(epoch)?)?;
    for record in ["model", "optim", "scheduler"] {
        let (from, to) = (
            source.checkpoint_path(record, epoch),
            target.checkpoint_path(record, epoch),
        );
        let bytes = std::fs::read(&from).map_err(|e| TrainerError::BadCheckpoint {
            path: from.clone(),
            reason: e.to_string(),
        })?;
        if let Some(dir) = to.parent() {
            std::fs::create_dir_all(dir).map_err(|error| TrainerError::Write {
                path: dir.to_path_buf(),
                error,
            })?;
        }
        crate::fs::write_atomically(&to, &bytes)?;
    }
    Ok(())
}
