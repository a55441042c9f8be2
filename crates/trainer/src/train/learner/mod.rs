//! Burn's Learner assembled for a prepared run: the loaders, the metrics and the
//! renderer that records them, the checkpointers, early stopping, and the training
//! loop ([`ResumableTraining`], or Burn's DDP where the backend has collectives).

pub(crate) mod classifier;
pub(crate) mod early_stopping;
pub(crate) mod optimizer;
pub(crate) mod schedule;
pub(crate) mod strategy;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use burn::data::dataset::Dataset;
use burn::tensor::distributed::{DistributedConfig, ReduceOperation};
use burn::train::checkpoint::KeepLastNCheckpoints;
use burn::train::logger::InMemoryMetricLogger;
use burn::train::metric::{AccuracyMetric, LearningRateMetric, LossMetric, Metric};
use burn::train::{ExecutionStrategy, Interrupter, Learner, SupervisedTraining, TrainingStrategy};
use data::{Augmentation, EpochLoader, MnistDataset};
use model::Network;

use self::classifier::CrossEntropyClassifier;
use self::early_stopping::Patience;
use self::optimizer::optimizer;
use self::schedule::Schedule;
use self::strategy::ResumableTraining;
use super::Prepared;
use super::checkpoint::SealedFile;
use super::logger::history::{EpochHook, EpochRecorder, History, SharedRunningMetrics};
use super::logger::run_log::{RunLog, SharedRunLog};
use super::renderer::{DivergenceSlot, EpochRenderer, FirstStep, MetricNames, StepReporting};
use crate::TrainerError;
use crate::config::TrainingConfig;
use crate::console::Console;
use crate::epoch::EpochSummary;
use crate::report::training_curves;
use crate::run_dir::CHECKPOINT_RECORDS;
use crate::stop::StopSignals;

/// What the Learner left: the last epoch's model and every epoch's record.
pub(crate) struct Launched {
    pub(crate) model: Network,
    pub(crate) all_epochs: Vec<EpochSummary>,
    pub(crate) first_step: Option<Instant>,
    pub(crate) run_log: SharedRunLog,
    pub(crate) steps_per_epoch: usize,
}

/// Assembles Burn's Learner for the prepared run and trains.
pub(crate) fn launch(prepared: &Prepared) -> Result<Launched, TrainerError> {
    let Prepared {
        config,
        run_dir,
        console,
        ..
    } = prepared;
    let devices = &prepared.devices;
    let main_device = devices[0].clone();
    main_device.seed(config.seed);
    let classifier = CrossEntropyClassifier {
        mlp: config.model.init(&main_device.clone().autodiff()),
    };
    let steps_per_epoch = config.steps_per_epoch(prepared.train_set.len());
    let within = prepared.from.within;
    let steps_done = within.map_or(0, |progress| progress.running.steps);
    // Each device takes a contiguous share of the epoch and a batch from it per step:
    // `batch_size / N` each keeps a step `batch_size` images, as on one device.
    let train_loader = EpochLoader::new(
        prepared.train_set.clone(),
        config.batch_size / devices.len(),
        main_device.clone(),
    )
    .shuffled(config.seed)
    .starting_after(prepared.epochs_done)
    .skipping_batches(steps_done)
    .gathered_ahead();
    let train_loader = match augmentation(config, &prepared.train_set) {
        Some(augmentation) => train_loader.augmented(augmentation),
        None => train_loader,
    };
    let valid_loader = EpochLoader::new(
        prepared.valid_set.clone(),
        config.eval_batch_size(),
        main_device.clone(),
    );

    let history: History = Arc::new(Mutex::new(prepared.earlier_epochs.clone()));
    let run_log: SharedRunLog = Arc::new(Mutex::new(RunLog::open(
        run_dir,
        (prepared.epochs_done * steps_per_epoch + steps_done) as u64,
    )));
    let metrics_dir = run_dir.clone();
    let epoch_log = run_log.clone();
    let persist: EpochHook = Box::new(move |epochs| {
        metrics_dir.save_metrics(epochs)?;
        if let (Some(last), Ok(mut log)) = (epochs.last(), epoch_log.lock()) {
            log.epoch((last.epoch * steps_per_epoch) as u64, last);
        }
        // The picture only shows what metrics.csv holds: failing to draw it is no
        // reason to stop training.
        if let Err(error) = training_curves(epochs, &metrics_dir.curves_path()) {
            Console::warn(error);
        }
        Ok(())
    });
    let (accuracy, loss, learning_rate) = (
        AccuracyMetric::new(),
        LossMetric::new(),
        LearningRateMetric::new(),
    );
    let names = MetricNames {
        loss: loss.name(),
        accuracy: accuracy.name(),
        learning_rate: learning_rate.name(),
    };
    let checkpoints = run_dir.checkpoint_dir();
    let [model_record, optim_record, scheduler_record] = CHECKPOINT_RECORDS;
    let mut training = SupervisedTraining::new(
        run_dir.root(),
        Arc::new(train_loader),
        Arc::new(valid_loader),
    )
    .metrics((accuracy, loss))
    .metric_train_numeric(learning_rate)
    // Per-epoch metrics go to metrics.csv, written atomically; Burn's file logger
    // appends per batch and its application logger installs a process-wide panic
    // hook, so neither is used.
    .with_metric_logger(InMemoryMetricLogger::default())
    .with_application_logger(None)
    .with_custom_checkpointers(
        SealedFile::new(&checkpoints, model_record),
        SealedFile::new(&checkpoints, optim_record),
        SealedFile::new(&checkpoints, scheduler_record),
    )
    .with_checkpointing_strategy(KeepLastNCheckpoints::new(usize::MAX))
    .num_epochs(prepared.epochs_to_train);
    if let Some(patience) = config.patience {
        training = training.early_stopping(Patience::new(history.clone(), patience));
    }
    let running = SharedRunningMetrics::default();
    let autodiff_devices = devices
        .iter()
        .map(|device| device.clone().autodiff())
        .collect();
    training = training.with_training_strategy(if prepared.ddp {
        // Summed, as the gradients of the other strategy are.
        let config = DistributedConfig {
            all_reduce_op: ReduceOperation::Sum,
        };
        ExecutionStrategy::ddp(autodiff_devices, config).into()
    } else {
        TrainingStrategy::Custom(Arc::new(ResumableTraining {
            devices: autodiff_devices,
            stop: prepared.stop.clone(),
            run_dir: run_dir.clone(),
            resume: within,
            running: running.clone(),
        }))
    });
    let first_step = FirstStep::default();
    let divergence = DivergenceSlot::default();
    let schedule = Schedule::new(
        &config.lr_schedule,
        config.lr,
        steps_per_epoch,
        config.epochs,
    );
    let renderer = EpochRenderer::new(
        EpochRecorder::new(history.clone(), persist),
        training.interrupter(),
        names,
        divergence.clone(),
        first_step.clone(),
        *console,
        StepReporting {
            log_interval: config.log_interval,
            steps_per_epoch,
            run_log: run_log.clone(),
            running: running.clone(),
        },
    );
    training = training.renderer(Box::new(renderer));
    match (prepared.from.after_epoch, within) {
        (_, Some(progress)) => console.line(format_args!(
            "resuming epoch {} after step {steps_done}/{steps_per_epoch} from {}",
            progress.epoch,
            run_dir.root().display()
        )),
        (Some(epoch), None) => console.line(format_args!(
            "resuming after epoch {epoch} from {}",
            run_dir.root().display()
        )),
        (None, None) => {}
    }
    if let Some(epoch) = prepared.from.after_epoch {
        // Burn loads this epoch's checkpoint; a checkpoint within the next replaces it.
        training = training.checkpoint(epoch);
    }
    let learner = Learner::new(classifier, optimizer(&config.optimizer), schedule);
    let interrupter = training.interrupter();
    let training_done = AtomicBool::new(false);
    let result = std::thread::scope(|scope| {
        // Burn's DDP loop does not look at the stop signals: it is stopped (losing
        // the epoch under way) through its interrupter.
        if prepared.ddp {
            scope.spawn(|| pass_on_stops(&prepared.stop, &interrupter, &training_done));
        }
        let result = training.launch(learner);
        training_done.store(true, Ordering::SeqCst);
        result
    });
    if let Some(error) = result.error {
        return Err(TrainerError::Training(error.to_string()));
    }
    if let Some(interruption) = result.interrupted {
        if let Some(divergence) = divergence.lock().ok().and_then(|slot| *slot) {
            return Err(TrainerError::Diverged {
                loss: divergence.loss,
                epoch: divergence.epoch,
                step: divergence.step,
                dir: run_dir.root().to_path_buf(),
            });
        }
        return Err(TrainerError::Interrupted {
            reason: interruption.reason.unwrap_or_else(|| "interrupted".into()),
            dir: run_dir.root().to_path_buf(),
        });
    }
    let all_epochs = history.lock().map(|all| all.clone()).unwrap_or_default();
    Ok(Launched {
        model: result.model.mlp,
        all_epochs,
        first_step: first_step.get().copied(),
        run_log,
        steps_per_epoch,
    })
}

fn pass_on_stops(stop: &StopSignals, interrupter: &Interrupter, training_done: &AtomicBool) {
    while !training_done.load(Ordering::SeqCst) {
        if let Some(signal) = stop.received() {
            interrupter.stop(Some(&format!("{signal} received")));
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The training images' augmentation `config` asks for, if any: seeded by the run's
/// seed, so that the warps follow from (seed, epoch, image).
pub(crate) fn augmentation(
    config: &TrainingConfig,
    train_set: &MnistDataset,
) -> Option<Augmentation> {
    let augment = &config.data.augment;
    augment.is_on().then(|| Augmentation {
        ranges: augment.ranges(),
        seed: config.seed,
        shape: train_set.image_shape(),
    })
}
