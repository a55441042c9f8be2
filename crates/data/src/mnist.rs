//! Loading the data set: both splits, or the test split alone, from wherever
//! [`locate`] finds them.

use std::path::Path;

use crate::{
    DataError, IdxLabels, LabelledImages, MnistFiles, MnistSource, SplitConfig, SplitIndices,
    locate, locate_test,
};

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

    /// Finds and reads the test split alone: all that evaluating or predicting needs,
    /// so that a directory holding only its two files serves them.
    pub fn load_test(data_dir: Option<&Path>) -> Result<(LabelledImages, MnistSource), DataError> {
        let (files, source) = locate_test(data_dir)?;
        let test = LabelledImages::read(&files.images, &files.labels)?;
        Ok((test, source))
    }

    /// Finds and reads the four files; see [`locate`] for where it looks.
    pub fn load(data_dir: Option<&Path>) -> Result<Self, DataError> {
        let (files, source) = locate(data_dir)?;
        let train = LabelledImages::read(&files.train.images, &files.train.labels)?;
        Self::with_test(train, files, source)
    }

    /// Finds the four files as [`Mnist::load`] does and reads them for a run that
    /// `split` divides and `limit` limits: of the training images only the pixels of
    /// those it validates or trains on, so that a run of a few thousand images holds
    /// a few thousand however many the file has. Returns the split too, or why the
    /// data cannot be split so: that is for the caller to tell after what else is
    /// wrong with the data, as it is no fault of the files (they are read whole to
    /// find their faults then).
    pub fn load_split(
        data_dir: Option<&Path>,
        split: &SplitConfig,
        limit: Option<usize>,
    ) -> Result<(Self, Result<SplitIndices, DataError>), DataError> {
        let (files, source) = locate(data_dir)?;
        let labels = IdxLabels::read(&files.train.labels)?;
        let indices = split.indices(labels.0.len(), limit);
        let held = indices.as_ref().ok().map(SplitIndices::used);
        let train =
            LabelledImages::read_images(&files.train.images, labels, &files.train.labels, held)?;
        Ok((Self::with_test(train, files, source)?, indices))
    }

    /// `train` with the test split of `files`, which must share its image size.
    fn with_test(
        train: LabelledImages,
        files: MnistFiles,
        source: MnistSource,
    ) -> Result<Self, DataError> {
        let test = LabelledImages::read(&files.test.images, &files.test.labels)?;
        if (train.rows(), train.cols()) != (test.rows(), test.cols()) {
            return Err(DataError::SizeMismatch {
                train: files.train.images,
                train_size: (train.rows(), train.cols()),
                test: files.test.images,
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
