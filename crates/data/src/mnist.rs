//! Loading the whole data set: both splits, from wherever [`locate`] finds them.

use std::path::Path;

use crate::{DataError, LabelledImages, MnistSource, locate};

/// The training and test splits of MNIST (or of a data set in its format).
#[derive(Debug, Clone)]
pub struct Mnist {
    pub train: LabelledImages,
    pub test: LabelledImages,
    /// Where the files were found, for telling the user.
    pub source: MnistSource,
}

impl Mnist {
    /// One more than the largest label of either split: the classes a model needs.
    pub fn num_classes(&self) -> usize {
        self.train.num_classes().max(self.test.num_classes())
    }

    /// Finds the four files as [`Mnist::load`] does, and reads only the test split: all
    /// that evaluating or predicting needs.
    pub fn load_test(data_dir: Option<&Path>) -> Result<(LabelledImages, MnistSource), DataError> {
        let (files, source) = locate(data_dir)?;
        let test = LabelledImages::read(&files.test_images, &files.test_labels)?;
        Ok((test, source))
    }

    /// Finds and reads the four files; see [`locate`] for where it looks.
    pub fn load(data_dir: Option<&Path>) -> Result<Self, DataError> {
        let (files, source) = locate(data_dir)?;
        let train = LabelledImages::read(&files.train_images, &files.train_labels)?;
        let test = LabelledImages::read(&files.test_images, &files.test_labels)?;
        if (train.rows(), train.cols()) != (test.rows(), test.cols()) {
            return Err(DataError::SizeMismatch {
                train: files.train_images,
                train_size: (train.rows(), train.cols()),
                test: files.test_images,
                test_size: (test.rows(), test.cols()),
            });
        }
        Ok(Self {
            train,
            test,
            source,
        })
    }
}
