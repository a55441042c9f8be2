//! Training with Burn's Learner: the configured optimizer and learning-rate schedule,
//! cross-entropy, loss and accuracy on the training and validation splits, a
//! checkpoint and the training curves every epoch, optional early stopping, and at the
//! end the final model, its configuration and its test-set scores in the run directory.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use burn::data::dataset::Dataset;
use burn::lr_scheduler::LrSchedulerRecord;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::OptimizerRecord;
use burn::prelude::*;
use burn::train::checkpoint::KeepLastNCheckpoints;
use burn::train::logger::InMemoryMetricLogger;
use burn::train::metric::{AccuracyMetric, LossMetric};
use burn::train::{
    ClassificationOutput, InferenceStep, Learner, SupervisedTraining, TrainOutput, TrainStep,
};
use data::{EpochLoader, Mnist, MnistBatch, MnistDataset};
use model::Mlp;

use crate::TrainerError;
use crate::backend::Backend;
use crate::config::TrainingConfig;
use crate::early_stopping::{Patience, best_epoch, stops_after};
use crate::evaluation::{Evaluation, evaluate};
use crate::plots::training_curves;
use crate::renderer::{Console, EpochHook, EpochRenderer, EpochSummary, FirstStep, History};
use crate::run_dir::{RunDir, RunInfo};

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
}

/// What a finished run achieved.
#[derive(Debug, Clone)]
pub struct TrainReport {
    /// The epochs trained by this invocation (not those before a resume).
    pub epochs: Vec<EpochSummary>,
    /// The test-set scores, unless the request turned testing off.
    pub test: Option<Evaluation>,
    pub model: Mlp,
    /// Images per training epoch.
    pub train_images: usize,
    /// Time spent finding and reading the data.
    pub data_load: std::time::Duration,
    /// When the first training step finished.
    pub first_step: Option<std::time::Instant>,
}

/// The [`Mlp`] as the Learner trains it: a classifier scored by cross-entropy.
/// It lives here rather than in the `model` crate because Burn's training traits are
/// a concern of training, not of the network.
#[derive(Module, Debug)]
struct Classifier {
    mlp: Mlp,
}

impl Classifier {
    fn classify(&self, batch: MnistBatch) -> ClassificationOutput {
        let logits = self.mlp.forward(batch.images);
        let loss = CrossEntropyLossConfig::new()
            .init(&logits.device())
            .forward(logits.clone(), batch.targets.clone());
        ClassificationOutput::new(loss, logits, batch.targets)
    }
}

impl TrainStep for Classifier {
    type Input = MnistBatch;
    type Output = ClassificationOutput;

    fn step(&self, batch: MnistBatch) -> TrainOutput<ClassificationOutput> {
        let output = self.classify(batch);
        TrainOutput::new(self, output.loss.backward(), output)
    }
}

impl InferenceStep for Classifier {
    type Input = MnistBatch;
    type Output = ClassificationOutput;

    fn step(&self, batch: MnistBatch) -> ClassificationOutput {
        self.classify(batch)
    }
}

/// Trains as `request` says, printing a line per epoch, then saves the model and
/// reports its test-set scores.
pub fn train(request: TrainRequest, backend: &Backend) -> Result<TrainReport, TrainerError> {
    let TrainRequest {
        config,
        data_dir,
        run_dir,
        resume,
        overwrite,
        test: run_test,
        console,
    } = request;
    config.validate()?;
    let loading = std::time::Instant::now();
    let mnist = Mnist::load(data_dir.as_deref())?;
    let data_load = loading.elapsed();
    console.line(format_args!(
        "data {}: {} training and {} test images of {}x{}, {} classes",
        mnist.source,
        mnist.train.len(),
        mnist.test.len(),
        mnist.train.rows(),
        mnist.train.cols(),
        mnist.num_classes()
    ));
    let config = fit_to_data(config, &mnist)?;
    let test = MnistDataset::new(mnist.test);
    let (train_set, valid_set) = MnistDataset::train_valid(mnist.train, &config.split)?;
    let train_set = match config.limit_train {
        Some(limit) => train_set.limit(limit),
        None => train_set,
    };
    if config.patience.is_some() && valid_set.len() == 0 {
        return Err(TrainerError::Config(crate::config::ConfigError::Invalid {
            field: "patience",
            rule: "used with a validation set (split.valid_size above 0)",
            value: format!("{:?}", config.patience),
        }));
    }
    console.line(format_args!(
        "training on {} images, validating on {}; model {} ({} parameters)",
        train_set.len(),
        valid_set.len(),
        architecture(&config),
        config.model.init(&backend.device).num_params()
    ));

    // Only now that the data is known to be good may an earlier run be replaced.
    let resume_from = prepare_run_dir(&run_dir, &config, resume, overwrite, console)?;
    let epochs_done = resume_from.unwrap_or(0);
    let earlier_epochs = run_dir.load_metrics(epochs_done);
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
    if let Some(epoch) = resume_from {
        check_resumable(&run_dir, &config, epoch, &backend.device)?;
    }
    run_dir.save_config(&config)?;
    let mut info = RunInfo {
        data_dir: data_dir.map(|dir| std::fs::canonicalize(&dir).unwrap_or(dir)),
        backend: backend.name.to_string(),
        ..RunInfo::default()
    };
    run_dir.save_info(&info)?;

    backend.device.seed(config.seed);
    let classifier = Classifier {
        mlp: config.model.init(&backend.device.clone().autodiff()),
    };
    let train_images = train_set.len();
    let steps_per_epoch = train_images.div_ceil(config.batch_size);
    let train_loader = EpochLoader::new(train_set, config.batch_size, backend.device.clone())
        .shuffled(config.seed)
        .starting_after(epochs_done);
    let valid_loader =
        EpochLoader::new(valid_set, eval_batch_size(&config), backend.device.clone());

    let history: History = Arc::new(Mutex::new(earlier_epochs));
    let metrics_dir = run_dir.clone();
    let save_metrics: EpochHook = Box::new(move |epochs| {
        metrics_dir.save_metrics(epochs)?;
        // The picture only shows what metrics.csv holds: failing to draw it is no
        // reason to stop training.
        if let Err(error) = training_curves(epochs, &metrics_dir.curves_path()) {
            eprintln!("warning: {error}");
        }
        Ok(())
    });
    let mut training = SupervisedTraining::new(
        run_dir.root(),
        Arc::new(train_loader),
        Arc::new(valid_loader),
    )
    .metrics((AccuracyMetric::new(), LossMetric::new()))
    // Per-epoch metrics go to metrics.csv, written atomically; Burn's file logger
    // appends per batch and its application logger installs a process-wide panic
    // hook, so neither is used.
    .with_metric_logger(InMemoryMetricLogger::default())
    .with_application_logger(None)
    .with_default_checkpointers()
    .with_checkpointing_strategy(KeepLastNCheckpoints::new(usize::MAX))
    .num_epochs(epochs_to_train);
    if let Some(patience) = config.patience {
        training = training.early_stopping(Patience::new(history.clone(), patience));
    }
    let first_step = FirstStep::default();
    let renderer = EpochRenderer::new(
        history.clone(),
        save_metrics,
        training.interrupter(),
        first_step.clone(),
        console,
    );
    training = training.renderer(Box::new(renderer));
    if let Some(epoch) = resume_from {
        console.line(format_args!(
            "resuming after epoch {epoch} from {}",
            run_dir.root().display()
        ));
        training = training.checkpoint(epoch);
    }
    let schedule = config
        .lr_schedule
        .init(config.lr, steps_per_epoch, config.epochs);
    let learner = Learner::new(classifier, config.optimizer.init(), schedule);
    let result = training.launch(learner);
    if let Some(error) = result.error {
        return Err(TrainerError::Training(format!(
            "{error}; fix the cause, then continue from the last checkpoint with --resume"
        )));
    }
    if let Some(interruption) = result.interrupted {
        let reason = interruption.reason.unwrap_or_else(|| "interrupted".into());
        return Err(TrainerError::Training(format!(
            "{reason} (checkpoints are in {})",
            run_dir.root().display()
        )));
    }
    let all_epochs = history.lock().map(|all| all.clone()).unwrap_or_default();
    let last_epoch = all_epochs.last().map_or(epochs_done, |e| e.epoch);
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
        _ => result.model.mlp,
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

    let test_scores = if run_test {
        let scores = evaluate(&model, &test, eval_batch_size(&config), &backend.device)?;
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
            .filter(|e| e.epoch > epochs_done)
            .collect(),
        test: test_scores,
        model,
        train_images,
        data_load,
        first_step: first_step.get().copied(),
    })
}

/// The config with the network's input size and class count taken from the data:
/// the pixels per image, and `num_classes` if configured, else the largest label
/// plus one.
fn fit_to_data(mut config: TrainingConfig, mnist: &Mnist) -> Result<TrainingConfig, TrainerError> {
    let needed = mnist.num_classes();
    let classes = config.num_classes.unwrap_or(needed);
    if classes < needed {
        return Err(TrainerError::TooFewClasses {
            max_label: needed - 1,
            classes,
            needed,
        });
    }
    if let Some(names) = &config.class_names
        && names.len() != classes
    {
        return Err(TrainerError::Config(crate::config::ConfigError::Invalid {
            field: "class_names",
            rule: "one name per class of the data",
            value: format!("{} names for {classes} classes", names.len()),
        }));
    }
    config.model.input_size = mnist.train.image_len();
    config.model.num_classes = classes;
    Ok(config)
}

/// The network saved in the checkpoint of `epoch`.
fn load_checkpoint_model(
    run_dir: &RunDir,
    config: &TrainingConfig,
    epoch: usize,
    device: &Device,
) -> Result<Mlp, TrainerError> {
    let path = run_dir.checkpoint_path("model", epoch);
    Classifier {
        mlp: config.model.init(device),
    }
    .try_load_file(&path)
    .map(|classifier| classifier.mlp)
    .map_err(|e| TrainerError::BadCheckpoint {
        path,
        reason: e.to_string(),
    })
}

/// Decides whether training may write into `run_dir`, and from which epoch.
fn prepare_run_dir(
    run_dir: &RunDir,
    config: &TrainingConfig,
    resume: bool,
    overwrite: bool,
    console: Console,
) -> Result<Option<usize>, TrainerError> {
    if resume {
        let Some(last) = run_dir.last_checkpoint() else {
            if !run_dir.config_path().is_file() {
                return Err(TrainerError::NothingToResume(run_dir.root().to_path_buf()));
            }
            // The run died within its first epoch: continuing it is starting it over.
            console.line(format_args!(
                "{} holds no complete checkpoint yet; starting the run over",
                run_dir.root().display()
            ));
            return Ok(None);
        };
        // A run killed after its last checkpoint but before saving its model resumes
        // with no epoch left to train, and just finishes.
        if last >= config.epochs && run_dir.model_path().is_file() {
            return Err(TrainerError::AlreadyFinished {
                dir: run_dir.root().to_path_buf(),
                epochs: last,
            });
        }
        return Ok(Some(last));
    }
    if run_dir.holds_run() {
        if !overwrite {
            return Err(TrainerError::RunExists(run_dir.root().to_path_buf()));
        }
        run_dir.clear()?;
    }
    run_dir.create()?;
    Ok(None)
}

/// Checks, before Burn loads them (and panics on a bad one), that the checkpoint
/// records of `epoch` are readable and that the model they hold is the one `config`
/// describes.
fn check_resumable(
    run_dir: &RunDir,
    config: &TrainingConfig,
    epoch: usize,
    device: &Device,
) -> Result<(), TrainerError> {
    let saved = run_dir.load_config()?;
    if saved.model.to_string() != config.model.to_string() {
        return Err(TrainerError::ResumeMismatch {
            dir: run_dir.root().to_path_buf(),
            checkpoint: architecture(&saved),
            config: architecture(config),
        });
    }
    let unreadable = |path: PathBuf, reason: String| TrainerError::BadCheckpoint { path, reason };
    load_checkpoint_model(run_dir, config, epoch, device)?;
    let optim_path = run_dir.checkpoint_path("optim", epoch);
    OptimizerRecord::load(optim_path.clone()).map_err(|e| unreadable(optim_path, e.to_string()))?;
    let scheduler_path = run_dir.checkpoint_path("scheduler", epoch);
    LrSchedulerRecord::load(scheduler_path.clone())
        .map_err(|e| unreadable(scheduler_path, e.to_string()))?;
    Ok(())
}

/// Checks that the data suits the configured network before any time is spent.
pub fn check_model_fits(
    config: &TrainingConfig,
    dataset: &MnistDataset,
) -> Result<(), TrainerError> {
    if dataset.image_len() != config.model.input_size {
        return Err(TrainerError::InputSizeMismatch {
            expected: config.model.input_size,
            found: dataset.image_len(),
        });
    }
    let needed = dataset.num_classes();
    if needed > config.model.num_classes {
        return Err(TrainerError::TooFewClasses {
            max_label: needed - 1,
            classes: config.model.num_classes,
            needed,
        });
    }
    Ok(())
}

/// Evaluation keeps no gradients, so it can take bigger batches than training.
pub fn eval_batch_size(config: &TrainingConfig) -> usize {
    config.batch_size.max(1000)
}

/// The layer widths, e.g. `784-64-64-10`.
pub fn architecture(config: &TrainingConfig) -> String {
    std::iter::once(config.model.input_size)
        .chain(config.model.hidden_sizes.iter().copied())
        .chain(std::iter::once(config.model.num_classes))
        .map(|width| width.to_string())
        .collect::<Vec<_>>()
        .join("-")
}
