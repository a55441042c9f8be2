//! A run directory made of an imported state dict: the network it describes, its
//! weights, and what its data needs recorded, so that every command takes it as a
//! trained run.

use std::path::{Path, PathBuf};

use burn::prelude::*;
use model::NetworkConfig;

use super::InteropError;
use super::pytorch::import_state_dict;
use crate::config::TrainingConfig;
use crate::run_dir::{RunDir, RunInfo};

/// Imports a state dict (see [`import_state_dict`]) into a new run directory that
/// `eval`, `predict` and `serve` take like a trained one, recording `data_dir` as the
/// data it is evaluated on. An existing run there is replaced only with `overwrite`,
/// and only once the file has been read successfully; never while another process
/// writes the run (a training run holds its lock), and no other writes it meanwhile.
pub fn import_run(
    from: &Path,
    network: Option<NetworkConfig>,
    run: &RunDir,
    data_dir: Option<PathBuf>,
    overwrite: bool,
    device: &Device,
) -> Result<TrainingConfig, InteropError> {
    let existed = run.root().exists();
    let _lock = run.lock_for_writing()?;
    // Once the run is locked.
    let write_run = || -> Result<TrainingConfig, InteropError> {
        let occupied = run.holds_run() || run.model_path().exists();
        if occupied && !overwrite {
            return Err(InteropError::TargetExists(run.root().to_path_buf()));
        }
        let (network, model) = import_state_dict(from, network, device)?;
        if occupied {
            run.clear()?;
        }
        let config = pictures_of(
            TrainingConfig::new().with_model(network),
            data_dir.as_deref(),
        );
        run.create()?;
        run.save_config(&config)?;
        run.save_info(&RunInfo {
            data_dir: data_dir.map(|dir| std::fs::canonicalize(&dir).unwrap_or(dir)),
            ..RunInfo::default()
        })?;
        run.save_model(&model)?;
        Ok(config)
    };
    let imported = write_run();
    // A directory made only to be locked is not left behind.
    if imported.is_err() && !existed {
        run.discard()?;
    }
    imported
}

/// The config with what a network of pictures needs to read its test data: the
/// channels and size its `input_shape` says and, when `data_dir` is a folder of
/// pictures with as many classes as the network tells apart, their names.
fn pictures_of(mut config: TrainingConfig, data_dir: Option<&Path>) -> TrainingConfig {
    let (Some([channels, height, width]), Some(dir)) = (config.model.input_shape, data_dir) else {
        return config;
    };
    if !data::is_image_folder(dir) {
        return config;
    }
    config.data.channels = Some(channels);
    config.data.image_size = Some([height, width]);
    if let Ok(names) = data::class_names(dir)
        && names.len() == config.model.num_classes
    {
        config.class_names = Some(names);
    }
    config
}
