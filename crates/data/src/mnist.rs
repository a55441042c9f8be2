//! Loading the data set: both splits, or the test split alone, from wherever
//! [`locate`] finds them, or from a folder of pictures ([`FolderData`]).

use std::path::Path;

use crate::{
    DataConfig, DataError, FolderData, IdxLabels, LabelledImages, MnistDataset, MnistFiles,
    MnistSource, Skipped, SplitConfig, SplitIndices, is_image_folder, locate, locate_test,
};

/// The training and test splits of MNIST (or of a data set in its format, or of
/// pictures in folders).
#[derive(Debug, Clone)]
pub struct Mnist {
    pub train: LabelledImages,
    pub test: LabelledImages,
    /// A validation split of its own (a folder data set's `valid/`); without it,
    /// validation images are held out of the training split.
    pub valid: Option<LabelledImages>,
    /// Where the files were found, for telling the user.
    pub source: MnistSource,
    /// The classes' names, for a data set that names them (a folder's class folders).
    pub class_names: Option<Vec<String>>,
    /// Pictures left out as bad, with `skip_bad_images`.
    pub skipped: Vec<Skipped>,
}

/// The test split of a data set, read alone.
#[derive(Debug, Clone)]
pub struct TestSplit {
    pub test: LabelledImages,
    pub source: MnistSource,
    /// As [`Mnist::class_names`].
    pub class_names: Option<Vec<String>>,
    pub skipped: Vec<Skipped>,
}

impl Mnist {
    /// The classes a model needs: those named, else one more than the largest label
    /// of either split.
    pub fn num_classes(&self) -> usize {
        match &self.class_names {
            Some(names) => names.len(),
            None => self.train.num_classes().max(self.test.num_classes()),
        }
    }

    /// Finds and reads the test split alone: all that evaluating or predicting needs,
    /// so that a directory holding only its two files serves them. Pictures are made
    /// what `pictures` says, which for a trained run is what it recorded.
    pub fn load_test(
        data_dir: Option<&Path>,
        pictures: &DataConfig,
    ) -> Result<TestSplit, DataError> {
        if let Some(dir) = data_dir.filter(|dir| is_image_folder(dir)) {
            let folder = FolderData::read_test(dir, pictures)?;
            let source = folder.source(dir);
            return Ok(TestSplit {
                test: folder.test,
                source,
                class_names: Some(folder.classes),
                skipped: folder.skipped,
            });
        }
        let (files, source) = locate_test(data_dir)?;
        let test = LabelledImages::read(&files.images, &files.labels)?;
        Ok(TestSplit {
            test,
            source,
            class_names: None,
            skipped: Vec::new(),
        })
    }

    /// The training, validation and test sets `split` (from [`Mnist::load_split`])
    /// makes of the data: validation held out of the training split, or the data's
    /// own.
    pub fn into_sets(self, split: SplitIndices) -> (MnistDataset, MnistDataset, MnistDataset) {
        let test = MnistDataset::new(self.test);
        match self.valid {
            Some(valid) => {
                let (train, _) = MnistDataset::train_valid(self.train, split);
                (train, MnistDataset::new(valid), test)
            }
            None => {
                let (train, valid) = MnistDataset::train_valid(self.train, split);
                (train, valid, test)
            }
        }
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
    ///
    /// A folder of pictures (`data_dir` laid out as [`is_image_folder`] says) is read
    /// whole, its pictures made what `pictures` says; with a `valid/` split of its own
    /// nothing is held out.
    pub fn load_split(
        data_dir: Option<&Path>,
        split: &SplitConfig,
        limit: Option<usize>,
        pictures: &DataConfig,
    ) -> Result<(Self, Result<SplitIndices, DataError>), DataError> {
        if let Some(dir) = data_dir.filter(|dir| is_image_folder(dir)) {
            return Self::load_folder(dir, split, limit, pictures);
        }
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
            valid: None,
            source,
            class_names: None,
            skipped: Vec::new(),
        })
    }

    /// [`Mnist::load_split`] of the folder data set at `dir`.
    fn load_folder(
        dir: &Path,
        split: &SplitConfig,
        limit: Option<usize>,
        pictures: &DataConfig,
    ) -> Result<(Self, Result<SplitIndices, DataError>), DataError> {
        let (folder, train) = FolderData::read(dir, pictures)?;
        let source = folder.source(dir);
        let indices = match &folder.valid {
            Some(_) => Ok(SplitIndices {
                train: (0..train.len().min(limit.unwrap_or(usize::MAX))).collect(),
                valid: Vec::new(),
            }),
            None => split.indices(train.len(), limit),
        };
        let mnist = Self {
            train,
            test: folder.test,
            valid: folder.valid,
            source,
            class_names: Some(folder.classes),
            skipped: folder.skipped,
        };
        Ok((mnist, indices))
    }
}
