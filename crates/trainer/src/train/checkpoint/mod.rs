//! Checkpoints: a run's records after each epoch ([`resume`] decides where a run
//! continues from them) and within one ([`step`]), each read and checked before Burn
//! loads it, since Burn panics on a bad one.

pub(crate) mod resume;
pub(crate) mod step;

use std::path::PathBuf;

use burn::lr_scheduler::LrSchedulerRecord;
use burn::optim::OptimizerRecord;
use burn::prelude::*;
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
    OptimizerRecord::load(optim.clone()).map_err(|e| unreadable(optim, e.to_string()))?;
    let scheduler = path("scheduler");
    LrSchedulerRecord::load(scheduler.clone()).map_err(|e| unreadable(scheduler, e.to_string()))?;
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
    CrossEntropyClassifier {
        mlp: config.model.init(device),
    }
    .try_load_file(path)
    .map(|classifier| classifier.mlp)
    .map_err(|e| e.to_string())
}
