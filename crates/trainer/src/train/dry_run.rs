//! `--dry-run`: one training step and one validation batch of a run as configured, on
//! its real data, with nothing written to the run directory, to check a setup before
//! a long run, as PyTorch's examples use their `--dry-run`. (Data missing from Burn's
//! cache is downloaded into it as for a real run.)

use burn::data::dataloader::DataLoader;
use burn::data::dataset::Dataset;
use burn::prelude::*;
use burn::train::TrainStep;
use data::EpochLoader;

use std::path::Path;

use super::TrainRequest;
use super::learner::augmentation;
use super::learner::classifier::CrossEntropyClassifier;
use super::learner::optimizer::optimizer;
use super::learner::schedule::Schedule;
use super::loading::{Loaded, load};
use crate::TrainerError;
use crate::backend::Backend;
use crate::infer::evaluate;
use crate::report::sample_grid;

/// What the two batches gave.
#[derive(Debug, Clone, PartialEq)]
pub struct DryRun {
    pub(crate) train_images: usize,
    pub(crate) train_loss: f64,
    pub(crate) valid_images: usize,
    pub(crate) valid_loss: f64,
    /// In percent.
    pub(crate) valid_accuracy: f64,
}

/// Opens the devices and loads the data as [`super::train`] would, then takes one
/// optimisation step on the first training batch (on the first device) and scores
/// the first validation batch. The run directory is not touched; `samples`, if given,
/// receives the first training batch as a PNG grid, augmented as training would.
pub fn dry_run(
    request: TrainRequest,
    backend: &Backend,
    samples: Option<&Path>,
) -> Result<DryRun, TrainerError> {
    let console = request.console;
    if let Some(spec) = &request.config.devices {
        crate::backend::open_all(spec)?;
    }
    let Loaded {
        config,
        train_set,
        valid_set,
        ..
    } = load(request.config, request.data_dir.as_deref(), console)?;
    backend.device.seed(config.seed);
    let device = backend.device.clone().autodiff();
    let model = CrossEntropyClassifier {
        mlp: config.model.init(&device),
    };
    let steps_per_epoch = config.steps_per_epoch(train_set.len());
    let augmentation = augmentation(&config, &train_set);
    let shape = train_set.image_shape();
    let train_loader = EpochLoader::new(train_set, config.batch_size, device).shuffled(config.seed);
    let train_loader = match augmentation {
        Some(augmentation) => train_loader.augmented(augmentation),
        None => train_loader,
    };
    let batch = match train_loader.iter().next() {
        Some(batch) => batch.map_err(|e| TrainerError::Batch(e.to_string()))?,
        None => {
            return Err(TrainerError::Batch(
                "the training split holds no images".into(),
            ));
        }
    };
    let train_images = batch.targets.dims()[0];
    if let Some(path) = samples {
        let pixels = batch.images.clone().try_into_vec_as::<f32>()?;
        let shown = sample_grid(path, &pixels, train_images, shape)?;
        console.line(format_args!(
            "wrote {} ({shown} training images as the network sees them)",
            path.display()
        ));
    }
    let output = TrainStep::step(&model, batch);
    let train_loss = output.item.loss.clone().into_scalar::<f64>();
    // The first step's rate, as the run's schedule gives it.
    let schedule = Schedule::new(
        &config.lr_schedule,
        config.lr,
        steps_per_epoch,
        config.epochs,
    );
    let model = optimizer(&config.optimizer).step(schedule.lr_at(0), model, output.grads);

    let first_batch = valid_set.slice(0..config.eval_batch_size().min(valid_set.len()));
    let scores = evaluate(
        &model.valid().mlp,
        &first_batch,
        config.eval_batch_size(),
        &backend.device,
    )?;
    let result = DryRun {
        train_images,
        train_loss,
        valid_images: scores.total,
        valid_loss: scores.loss,
        valid_accuracy: scores.accuracy(),
    };
    console.line(format_args!(
        "dry run: one training step on {} images (loss {:.4}), one validation batch of {} images (loss {:.4}, accuracy {:.2}%); nothing written",
        result.train_images,
        result.train_loss,
        result.valid_images,
        result.valid_loss,
        result.valid_accuracy
    ));
    if !request.resume && !request.overwrite && request.run_dir.holds_run() {
        console.line(format_args!(
            "note: {} already holds a run; the real run needs --resume or --overwrite",
            request.run_dir.root().display()
        ));
    }
    Ok(result)
}
