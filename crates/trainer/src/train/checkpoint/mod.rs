//! Checkpoints: a run's records after each epoch ([`resume`] decides where a run
//! continues from them) and within one ([`step`]), each sealed with a checksum when
//! written ([`SealedFile`]) and read and checked before Burn loads it, since Burn
//! panics on a bad one.

pub(crate) mod resume;
pub(crate) mod step;

use std::path::{Path, PathBuf};

use burn::lr_scheduler::LrSchedulerRecord;
use burn::optim::OptimizerRecord;
use burn::prelude::*;
use burn::store::ModuleRecord;
use burn::train::checkpoint::{Checkpoint, Checkpointer, CheckpointerError};
use model::Network;

use super::learner::classifier::CrossEntropyClassifier;
use crate::TrainerError;
use crate::config::TrainingConfig;
use crate::run_dir::RunDir;

/// Reads the model, optimizer and scheduler records of one checkpoint (`path` names
/// each record's file), checking that the model is the network `config` describes;
/// `unreadable` makes the error for a file that is not.
pub(crate) fn check_records(
    config: &TrainingConfig,
    device: &Device,
    path: impl Fn(&str) -> PathBuf,
    unreadable: impl Fn(PathBuf, String) -> TrainerError,
) -> Result<(), TrainerError> {
    let model = path("model");
    load_model_record(config, &model, device).map_err(|reason| unreadable(model, reason))?;
    let optim = path("optim");
    read_record::<OptimizerRecord>(&optim).map_err(|reason| unreadable(optim, reason))?;
    let scheduler = path("scheduler");
    read_record::<LrSchedulerRecord>(&scheduler).map_err(|reason| unreadable(scheduler, reason))?;
    Ok(())
}

/// The network saved in the checkpoint of `epoch`.
pub(crate) fn load_checkpoint_model(
    run_dir: &RunDir,
    config: &TrainingConfig,
    epoch: usize,
    device: &Device,
) -> Result<Network, TrainerError> {
    let path = run_dir.checkpoint_path("model", epoch);
    load_model_record(config, &path, device)
        .map_err(|reason| TrainerError::BadCheckpoint { path, reason })
}

fn load_model_record(
    config: &TrainingConfig,
    path: &std::path::Path,
    device: &Device,
) -> Result<Network, String> {
    let record = read_record::<ModuleRecord>(path)?;
    CrossEntropyClassifier {
        mlp: config.model.init(device),
    }
    .try_load_record(record)
    .map(|classifier| classifier.mlp)
    .map_err(|e| e.to_string())
}

/// The record sealed in the file at `path`, its checksum verified, or why not.
fn read_record<R: Checkpoint>(path: &Path) -> Result<R, String> {
    let bytes = crate::seal::read(path).map_err(|error| error.to_string())?;
    R::checkpoint_from_bytes(bytes).map_err(|error| error.to_string())
}

/// Burn's file checkpointer (`<dir>/<name>-<epoch>.bpk`), with each file sealed
/// by a checksum and written atomically.
#[derive(Debug)]
pub(crate) struct SealedFile {
    dir: PathBuf,
    name: &'static str,
}

impl SealedFile {
    pub(crate) fn new(dir: &Path, name: &'static str) -> Self {
        Self {
            dir: dir.to_path_buf(),
            name,
        }
    }

    fn path(&self, epoch: usize) -> PathBuf {
        self.dir.join(format!("{}-{epoch}.bpk", self.name))
    }
}

impl<R: Checkpoint> Checkpointer<R> for SealedFile {
    fn save(&self, epoch: usize, record: R) -> Result<(), CheckpointerError> {
        let bytes = record
            .checkpoint_into_bytes()
            .map_err(CheckpointerError::Record)?;
        std::fs::create_dir_all(&self.dir).map_err(CheckpointerError::IOError)?;
        crate::seal::write(&self.path(epoch), &bytes).map_err(CheckpointerError::IOError)
    }

    fn restore(&self, epoch: usize) -> Result<R, CheckpointerError> {
        read_record(&self.path(epoch)).map_err(CheckpointerError::Unknown)
    }

    fn delete(&self, epoch: usize) -> Result<(), CheckpointerError> {
        match std::fs::remove_file(self.path(epoch)) {
            Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
                Err(CheckpointerError::IOError(error))
            }
            _ => Ok(()),
        }
    }
}
