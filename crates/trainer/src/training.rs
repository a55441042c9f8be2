//! Training with Burn's Learner: Adam, cross-entropy, loss and accuracy on the
//! training and validation splits, a checkpoint every epoch, and at the end the final
//! model, its configuration and its test-set scores in the run directory.

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
use crate::evaluation::{Evaluation, evaluate};
use crate::renderer::{EpochHook, EpochRenderer, EpochSummary, History};
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
}

/// What a finished run achieved.
#[derive(Debug, Clone)]
pub struct TrainReport {
    /// The epochs trained by this invocation (not those before a resume).
    pub epochs: Vec<EpochSummary>,
    pub test: Evaluation,
    pub model: Mlp,
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
    } = request;
    config.validate()?;
    let mnist = Mnist::load(data_dir.as_deref())?;
    println!(
        "data {}: {} training and {} test images of {}x{}",
        mnist.source,
        mnist.train.len(),
        mnist.test.len(),
        mnist.train.rows(),
        mnist.train.cols()
    );
    let test = MnistDataset::new(mnist.test);
    let (train_set, valid_set) = MnistDataset::train_valid(mnist.train, &config.split)?;
    let train_set = match config.limit_train {
        Some(limit) => train_set.limit(limit),
        None => train_set,
    };
    check_model_fits(&config, &train_set)?;
    check_model_fits(&config, &test)?;
    println!(
        "training on {} images, validating on {}; model {} ({} parameters)",
        train_set.len(),
        valid_set.len(),
        architecture(&config),
        config.model.init(&backend.device).num_params()
    );

    // Only now that the data is known to be good may an earlier run be replaced.
    let resume_from = prepare_run_dir(&run_dir, &config, resume, overwrite)?;
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
    let epochs_done = resume_from.unwrap_or(0);
    let train_loader = EpochLoader::new(train_set, config.batch_size, backend.device.clone())
        .shuffled(config.seed)
        .starting_after(epochs_done);
    let valid_loader =
        EpochLoader::new(valid_set, eval_batch_size(&config), backend.device.clone());

    let history: History = Arc::new(Mutex::new(run_dir.load_metrics(epochs_done)));
    let metrics_dir = run_dir.clone();
    let save_metrics: EpochHook =
        Box::new(move |epochs| metrics_dir.save_metrics(epochs).map_err(|e| e.to_string()));
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
    .num_epochs(config.epochs);
    let renderer = EpochRenderer::new(history.clone(), save_metrics, training.interrupter());
    training = training.renderer(Box::new(renderer));
    if let Some(epoch) = resume_from {
        println!(
            "resuming after epoch {epoch} from {}",
            run_dir.root().display()
        );
        training = training.checkpoint(epoch);
    }
    let optimizer = config.optimizer.init();
    let result = training.launch(Learner::new(classifier, optimizer, config.lr));
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
    let model = result.model.mlp;
    run_dir.save_model(&model)?;

    let test_scores = evaluate(&model, &test, eval_batch_size(&config), &backend.device)?;
    info.test_loss = Some(test_scores.loss);
    info.test_accuracy = Some(test_scores.accuracy());
    run_dir.save_info(&info)?;
    println!(
        "test loss {:.4}  test accuracy {:.2}%  ({} images)",
        test_scores.loss,
        test_scores.accuracy(),
        test_scores.total
    );
    println!("saved {}", run_dir.model_path().display());
    let epochs = history
        .lock()
        .map(|all| {
            all.iter()
                .filter(|e| e.epoch > epochs_done)
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    Ok(TrainReport {
        epochs,
        test: test_scores,
        model,
    })
}

/// Decides whether training may write into `run_dir`, and from which epoch.
fn prepare_run_dir(
    run_dir: &RunDir,
    config: &TrainingConfig,
    resume: bool,
    overwrite: bool,
) -> Result<Option<usize>, TrainerError> {
    if resume {
        let Some(last) = run_dir.last_checkpoint() else {
            if !run_dir.config_path().is_file() {
                return Err(TrainerError::NothingToResume(run_dir.root().to_path_buf()));
            }
            // The run died within its first epoch: continuing it is starting it over.
            println!(
                "{} holds no complete checkpoint yet; starting the run over",
                run_dir.root().display()
            );
            return Ok(None);
        };
        if last >= config.epochs {
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
    let model_path = run_dir.checkpoint_path("model", epoch);
    Classifier {
        mlp: config.model.init(device),
    }
    .try_load_file(&model_path)
    .map_err(|e| unreadable(model_path, e.to_string()))?;
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
