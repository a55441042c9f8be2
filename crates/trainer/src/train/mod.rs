//! Training with Burn's Learner: the configured optimizer and learning-rate schedule,
//! cross-entropy, loss and accuracy on the training and validation splits, a
//! checkpoint and the training curves every epoch, optional early stopping, and at the
//! end the final model, its configuration and its test-set scores in the run directory.
//! [`train`] runs in three steps: [`prepare`] (data, config, run directory), [`launch`]
//! (the Learner, in its own module) and [`finish`] (the kept model, saved and tested).

mod checkpoint;
mod dry_run;
mod learner;
mod loading;
mod logger;
mod options;
mod renderer;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use burn::data::dataset::Dataset;
use data::MnistDataset;
use model::Network;

use self::checkpoint::load_checkpoint_model;
use self::checkpoint::resume::{ResumePoint, check_resumable, prepare_run_dir};
pub use self::dry_run::{DryRun, dry_run};
use self::learner::early_stopping::{best_epoch, stops_after};
use self::learner::{Launched, launch};
use self::loading::{Loaded, load};
pub use self::options::TrainOptions;
use crate::TrainerError;
use crate::backend::Backend;
use crate::config::TrainingConfig;
use crate::console::Console;
use crate::epoch::EpochSummary;
use crate::infer::{Evaluation, evaluate};
use crate::run_dir::{RunDir, RunInfo, RunLock};
use crate::stop::StopSignals;

/// What to train and where.
#[derive(Debug, Clone)]
pub struct TrainRequest {
    pub config: TrainingConfig,
    /// Where the MNIST files are; `None` looks in Burn's cache and downloads there.
    pub data_dir: Option<PathBuf>,
    pub run_dir: RunDir,
    /// Continue the run in `run_dir` from its last checkpoint.
    pub resume: bool,
    /// Replace a run already in `run_dir`.
    pub overwrite: bool,
    /// Score the final model on the test set. Sweeps turn this off for their trials
    /// and test only the winner, so that the test set plays no part in the choice.
    pub test: bool,
    /// Where progress lines go.
    pub console: Console,
    /// Asks the run to stop, checkpointed where it is.
    pub stop: StopSignals,
}

/// What a finished run achieved.
#[derive(Debug, Clone)]
pub struct TrainReport {
    /// The epochs trained by this invocation (not those before a resume).
    pub epochs: Vec<EpochSummary>,
    /// The test-set scores, unless the request turned testing off.
    pub test: Option<Evaluation>,
    pub model: Network,
    /// Images per training epoch.
    pub(crate) train_images: usize,
    /// The test split of the data it trained on.
    pub(crate) test_set: MnistDataset,
    /// Time spent finding and reading the data.
    pub(crate) data_load: Duration,
    /// When the first training step finished.
    pub(crate) first_step: Option<Instant>,
}

/// Trains as `request` says, printing a line per epoch, then saves the model and
/// reports its test-set scores.
pub fn train(request: TrainRequest, backend: &Backend) -> Result<TrainReport, TrainerError> {
    let prepared = prepare(request, backend)?;
    let launched = match launch(&prepared) {
        Ok(launched) => launched,
        // A run that failed before its first checkpoint leaves nothing behind.
        Err(error) if !prepared.run_dir.holds_checkpoint() => {
            prepared.run_dir.discard()?;
            return Err(error);
        }
        Err(error) => return Err(error),
    };
    finish(prepared, launched, backend)
}

/// A run ready to train: its data split, its directory claimed, its history so far.
struct Prepared {
    config: TrainingConfig,
    /// Where training runs: the first device steps the optimizer.
    devices: Vec<burn::prelude::Device>,
    /// Train with Burn's DDP, the devices syncing gradients with collectives.
    ddp: bool,
    run_dir: RunDir,
    console: Console,
    run_test: bool,
    train_set: MnistDataset,
    valid_set: MnistDataset,
    test_set: MnistDataset,
    data_load: Duration,
    /// The epochs a resumed run had finished.
    epochs_done: usize,
    from: ResumePoint,
    /// The epoch count to give the Learner: the config's, or for a run that had
    /// already stopped early, the epochs it had (so that it only finishes).
    epochs_to_train: usize,
    earlier_epochs: Vec<EpochSummary>,
    info: RunInfo,
    stop: StopSignals,
    /// Held until the run is finished: no other process writes it meanwhile.
    _lock: RunLock,
}

/// Reads the data, fits the config to it, and claims the run directory: only once the
/// data is known to be good may an earlier run there be replaced.
fn prepare(request: TrainRequest, backend: &Backend) -> Result<Prepared, TrainerError> {
    let TrainRequest {
        config,
        data_dir,
        run_dir,
        resume,
        overwrite,
        test: run_test,
        console,
        stop,
    } = request;
    // Before the data is read, so that a device that is not there is said first.
    let devices = match &config.devices {
        Some(spec) => crate::backend::open_all(spec)?,
        None => vec![backend.device.clone()],
    };
    let Loaded {
        config,
        train_set,
        valid_set,
        test_set,
        data_load,
    } = load(config, data_dir.as_deref(), console)?;

    let existed = run_dir.root().exists();
    let lock = run_dir.lock_for_writing()?;
    let from = match prepare_run_dir(&run_dir, &config, resume, overwrite, console) {
        Ok(from) => from,
        Err(error) => {
            // A directory made only to be locked is not left behind.
            if !existed {
                run_dir.discard()?;
            }
            return Err(error);
        }
    };
    let epochs_done = from.epochs_done();
    let earlier_epochs = run_dir.load_metrics(epochs_done)?;
    let stopped_early = config
        .patience
        .is_some_and(|patience| stops_after(&earlier_epochs, epochs_done, patience));
    if stopped_early && run_dir.model_path().is_file() {
        return Err(TrainerError::StoppedEarly {
            dir: run_dir.root().to_path_buf(),
            epoch: epochs_done,
        });
    }
    // A run that had stopped early, killed before it saved its model, trains no
    // further: it only finishes.
    let epochs_to_train = if stopped_early {
        epochs_done
    } else {
        config.epochs
    };
    let resumed = from != ResumePoint::default();
    if resumed {
        check_resumable(&run_dir, &config, &from, &backend.device)?;
    }
    let info = RunInfo {
        data_dir: data_dir.map(|dir| std::fs::canonicalize(&dir).unwrap_or(dir)),
        backend: backend.name.to_string(),
        ..RunInfo::default()
    };
    let saved = run_dir
        .save_config(&config)
        .and_then(|()| run_dir.save_info(&info));
    if let Err(error) = saved {
        if !resumed {
            run_dir.discard()?;
        }
        return Err(error);
    }
    Ok(Prepared {
        config,
        ddp: devices.len() > 1 && backend.has_collectives(),
        devices,
        run_dir,
        console,
        run_test,
        train_set,
        valid_set,
        test_set,
        data_load,
        epochs_done,
        from,
        epochs_to_train,
        earlier_epochs,
        info,
        stop,
        _lock: lock,
    })
}

/// Keeps the best epoch's model (with early stopping) or the last one, saves it with
/// the run's scores, and tests it.
fn finish(
    prepared: Prepared,
    launched: Launched,
    backend: &Backend,
) -> Result<TrainReport, TrainerError> {
    let Prepared {
        config,
        run_dir,
        console,
        mut info,
        ..
    } = prepared;
    let Launched {
        model: last_model,
        all_epochs,
        first_step,
        run_log,
        steps_per_epoch,
    } = launched;
    let last_epoch = all_epochs.last().map_or(prepared.epochs_done, |e| e.epoch);
    // With early stopping the run keeps its best epoch, as selected on validation.
    let kept = match config.patience {
        Some(_) => best_epoch(&all_epochs),
        None => all_epochs.last(),
    };
    let model = match kept {
        Some(best) if best.epoch != last_epoch => {
            console.line(format_args!(
                "keeping epoch {}, which had the lowest validation loss ({:.4})",
                best.epoch, best.valid_loss
            ));
            load_checkpoint_model(&run_dir, &config, best.epoch, &backend.device)?
        }
        _ => last_model,
    };
    if last_epoch < config.epochs {
        console.line(format_args!(
            "stopped early after epoch {last_epoch}: no lower validation loss for {} epochs",
            config.patience.unwrap_or_default()
        ));
    }
    // The scores first, then the model: a run whose model.bpk exists has them (sweeps
    // rely on it), and one killed in between resumes and finishes.
    info.kept_epoch = kept.map(|e| e.epoch);
    info.valid_loss = kept.map(|e| e.valid_loss);
    info.valid_accuracy = kept.map(|e| e.valid_accuracy);
    run_dir.save_info(&info)?;
    run_dir.save_model(&model)?;
    checkpoint::step::discard(&run_dir)?;

    let test_scores = if prepared.run_test {
        let scores = evaluate(
            &model,
            &prepared.test_set,
            config.eval_batch_size(),
            &backend.device,
        )?;
        if let Ok(mut log) = run_log.lock() {
            log.test((last_epoch * steps_per_epoch) as u64, &scores);
        }
        info.test_loss = Some(scores.loss);
        info.test_accuracy = Some(scores.accuracy());
        run_dir.save_info(&info)?;
        console.line(format_args!(
            "test loss {:.4}  test accuracy {:.2}%  ({} images)",
            scores.loss,
            scores.accuracy(),
            scores.total
        ));
        Some(scores)
    } else {
        None
    };
    console.line(format_args!("saved {}", run_dir.model_path().display()));
    Ok(TrainReport {
        epochs: all_epochs
            .into_iter()
            .filter(|e| e.epoch > prepared.epochs_done)
            .collect(),
        test: test_scores,
        model,
        train_images: prepared.train_set.len(),
        test_set: prepared.test_set,
        data_load: prepared.data_load,
        first_step,
    })
}
