//! The test set a trained run is judged on: the test split of the data it trained on
//! (unless another directory is named), read without the training split.

use std::path::PathBuf;

use burn::data::dataset::Dataset;
use burn::prelude::*;
use data::{Mnist, MnistDataset, MnistItem, MnistSource, Skipped};
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
    /// The test set of the data `run` (with `config`) trained on, unless `data_dir`
    /// names another; pictures are made what the run's were. A folder whose classes
    /// are not the run's is refused, as its labels would mean other classes.
    pub fn of(
        run: &RunDir,
        config: &TrainingConfig,
        data_dir: Option<PathBuf>,
    ) -> Result<Self, TrainerError> {
        let split = Mnist::load_test(run.data_dir(data_dir)?.as_deref(), &config.data)?;
        warn_skipped(&split.skipped);
        // A run of pictures records their size; its classes are its folders'.
        let trained = config
            .data
            .image_size
            .map(|_| config.class_names.clone().unwrap_or_default());
        if split.class_names != trained {
            let classes = |names: Option<Vec<String>>| match names {
                Some(names) => format!("the folders {}", names.join(", ")),
                None => "the labels of IDX files".to_string(),
            };
            return Err(TrainerError::OtherClasses {
                data: split.source.to_string(),
                found: classes(split.class_names),
                trained: classes(trained),
            });
        }
        Ok(Self {
            images: MnistDataset::new(split.test),
            source: split.source,
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

/// Tells the user, in one line, how many pictures were left out as bad and why the
/// first was.
pub(crate) fn warn_skipped(skipped: &[Skipped]) {
    if let Some(first) = skipped.first() {
        crate::console::Console::warn(format_args!(
            "left out {} bad picture{}; the first, {}: {}",
            skipped.len(),
            if skipped.len() == 1 { "" } else { "s" },
            first.path.display(),
            first.reason
        ));
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
