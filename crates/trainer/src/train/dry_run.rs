//! `--dry-run`: one training step and one validation batch of a run as configured, on
//! its real data, with nothing written, to check a setup before a long run, as
//! PyTorch's examples use their `--dry-run`.

use burn::data::dataloader::DataLoader;
use burn::prelude::*;
use burn::train::{ClassificationOutput, InferenceStep, TrainStep};
use data::{EpochLoader, MnistBatch};

use super::TrainRequest;
use super::classifier::CrossEntropyMlp;
use super::loading::{Loaded, load};
use crate::TrainerError;
use crate::backend::Backend;

/// What the two batches gave.
#[derive(Debug, Clone, PartialEq)]
pub struct DryRun {
    pub train_images: usize,
    pub train_loss: f64,
    pub valid_images: usize,
    pub valid_loss: f64,
    /// In percent.
    pub valid_accuracy: f64,
}

/// Loads the data as [`super::train`] would, then takes one optimisation step on the
/// first training batch and scores the first validation batch. The run directory is
/// not touched.
pub fn dry_run(request: TrainRequest, backend: &Backend) -> Result<DryRun, TrainerError> {
    let console = request.console;
    let Loaded {
        config,
        train_set,
        valid_set,
        ..
    } = load(request.config, request.data_dir.as_deref(), console)?;
    backend.device.seed(config.seed);
    let device = backend.device.clone().autodiff();
    let model = CrossEntropyMlp {
        mlp: config.model.init(&device),
    };
    let train_loader = EpochLoader::new(train_set, config.batch_size, device).shuffled(config.seed);
    let batch = first_batch(&train_loader)?;
    let train_images = batch.targets.dims()[0];
    let output = TrainStep::step(&model, batch);
    let train_loss = output.item.loss.clone().into_scalar::<f64>();
    let schedule = config.lr_schedule.init(config.lr, 1, config.epochs);
    let model = config
        .optimizer
        .init()
        .step(schedule.lr_at(0), model, output.grads);

    let valid_loader =
        EpochLoader::new(valid_set, config.eval_batch_size(), backend.device.clone());
    let (valid_images, valid_loss, valid_accuracy) = match first_batch(&valid_loader) {
        Ok(batch) => score(&InferenceStep::step(&model.valid(), batch)),
        // Without a validation split there is nothing to score.
        Err(_) => (0, f64::NAN, f64::NAN),
    };
    let result = DryRun {
        train_images,
        train_loss,
        valid_images,
        valid_loss,
        valid_accuracy,
    };
    console.line(format_args!(
        "dry run: one training step on {} images (loss {:.4}), one validation batch of {} images (loss {:.4}, accuracy {:.2}%); nothing written",
        result.train_images, result.train_loss, result.valid_images, result.valid_loss, result.valid_accuracy
    ));
    Ok(result)
}

fn first_batch(loader: &EpochLoader) -> Result<MnistBatch, TrainerError> {
    match loader.iter().next() {
        Some(batch) => batch.map_err(|e| TrainerError::Batch(e.to_string())),
        None => Err(TrainerError::Batch("the split holds no images".into())),
    }
}

/// Images, loss and accuracy (percent) of one scored batch.
fn score(output: &ClassificationOutput) -> (usize, f64, f64) {
    let count = output.targets.dims()[0];
    let predicted = output.output.clone().argmax(1).reshape([count]);
    let correct = predicted
        .equal(output.targets.clone())
        .int()
        .sum()
        .into_scalar::<i64>();
    let loss = output.loss.clone().into_scalar::<f64>();
    (count, loss, 100.0 * correct as f64 / count.max(1) as f64)
}
