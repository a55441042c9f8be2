//! The test set a trained run is judged on: the test split of the data it trained on
//! (unless another directory is named), read without the training split.

use std::path::PathBuf;

use burn::data::dataset::Dataset;
use burn::prelude::*;
use data::{Mnist, MnistDataset, MnistItem, MnistSource};
use model::Network;

use super::{Evaluation, evaluate};
use crate::TrainerError;
use crate::config::TrainingConfig;
use crate::console::Console;
use crate::run_dir::RunDir;

/// The test images of a data set, and where they were found.
#[derive(Debug, Clone)]
pub struct TestSet {
    pub(crate) images: MnistDataset,
    pub(crate) source: MnistSource,
}

impl TestSet {
    /// The test set of the data `run` trained on, unless `data_dir` names another.
    pub fn of(run: &RunDir, data_dir: Option<PathBuf>) -> Result<Self, TrainerError> {
        let (test, source) = Mnist::load_test(run.data_dir(data_dir)?.as_deref())?;
        Ok(Self {
            images: MnistDataset::new(test),
            source,
        })
    }

    /// Image `index`, or an error saying which indices there are.
    pub(crate) fn item(&self, index: usize) -> Result<MnistItem, TrainerError> {
        let len = self.images.len();
        self.images
            .item(index)
            .ok_or(TrainerError::TestIndex { index, len })
    }

    /// Scores the model of `run`, already loaded as `(config, model)`, saying first
    /// what is scored on what.
    pub fn score(
        &self,
        run: &RunDir,
        (config, model): &(TrainingConfig, Network),
        device: &Device,
        console: Console,
    ) -> Result<Evaluation, TrainerError> {
        check_model_fits(config, &self.images)?;
        console.line(format_args!(
            "model {} ({}), test set {} ({} images)",
            run.root().display(),
            config.model.architecture(),
            self.source,
            self.images.len()
        ));
        evaluate(model, &self.images, config.eval_batch_size(), device)
    }
}

/// Checks that the data suits the configured network before any time is spent.
pub(crate) fn check_model_fits(
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
