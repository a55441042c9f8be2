//! Training with Burn's Learner: Adam, cross-entropy, loss and accuracy on the
//! training and validation splits, a checkpoint every epoch, and at the end the final
//! model, its configuration and its test-set scores in the run directory.

use std::path::PathBuf;
use std::sync::Arc;

use burn::data::dataset::Dataset;
use burn::data::dataloader::DataLoaderBuilder;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::prelude::*;
use burn::train::checkpoint::KeepLastNCheckpoints;
use burn::train::metric::{AccuracyMetric, LossMetric};
use burn::train::{
    ClassificationOutput, InferenceStep, Learner, SupervisedTraining, TrainOutput, TrainStep,
};
use data::{Mnist, MnistBatch, MnistBatcher, MnistDataset};
use model::Mlp;

use crate::backend::Backend;
use crate::config::TrainingConfig;
use crate::evaluation::{Evaluation, evaluate};
use crate::renderer::{EpochRenderer, EpochSummary, History};
use crate::run_dir::{RunDir, RunInfo};
use crate::TrainerError;

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
    let loader = |dataset: MnistDataset, shuffle: bool| {
        let builder = DataLoaderBuilder::new(MnistBatcher)
            .batch_size(config.batch_size)
            .num_workers(config.num_workers)
            .set_device(backend.device.clone());
        let builder = if shuffle { builder.shuffle(config.seed) } else { builder };
        builder.build(dataset)
    };
    let history = History::default();
    let mut training = SupervisedTraining::new(
        run_dir.root(),
        loader(train_set, true),
        loader(valid_set, false),
    )
    .metrics((AccuracyMetric::new(), LossMetric::new()))
    .with_default_checkpointers()
    .with_checkpointing_strategy(KeepLastNCheckpoints::new(usize::MAX))
    .num_epochs(config.epochs)
    .renderer(Box::new(EpochRenderer::new(history.clone())));
    if let Some(epoch) = resume_from {
        println!("resuming after epoch {epoch} from {}", run_dir.root().display());
        training = training.checkpoint(epoch);
    }
    let optimizer = config.optimizer.init();
    let result = training.launch(Learner::new(classifier, optimizer, config.lr));
    if let Some(error) = result.error {
        return Err(TrainerError::Training(error.to_string()));
    }
    if let Some(interruption) = result.interrupted {
        let reason = interruption.reason.unwrap_or_else(|| "interrupted".into());
        return Err(TrainerError::Training(format!(
            "{reason}; checkpoints so far are in {}, continue with --resume",
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
    let epochs = Arc::try_unwrap(history)
        .map(|history| history.into_inner().unwrap_or_default())
        .unwrap_or_else(|shared| shared.lock().map(|h| h.clone()).unwrap_or_default());
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
        let last = run_dir
            .last_checkpoint()
            .ok_or_else(|| TrainerError::NothingToResume(run_dir.root().to_path_buf()))?;
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
