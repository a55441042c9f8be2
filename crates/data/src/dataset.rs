//! Burn datasets over MNIST held in memory as bytes: the test set, and the training
//! set split into training and validation parts. Views and splits only; turning items
//! into tensors is the batcher's job.

use std::borrow::Cow;
use std::sync::Arc;

use burn::data::dataset::{Dataset, DatasetError};
use burn::prelude::*;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use crate::{DataError, IndexOutOfRange, LabelledImages, UnreadablePictures};

/// The most images held out for validation by default: MNIST's 5,000.
const DEFAULT_MAX_VALID: usize = 5_000;

/// How the training images are divided into training and validation parts.
#[derive(Config, Debug)]
pub struct SplitConfig {
    /// Images held out of the training set to validate on after each epoch; without
    /// it, a twelfth of them up to 5,000 (MNIST's 5,000 of 60,000), so that a small
    /// data set is not mostly held out and a large one not validated at length.
    #[config(default = "None")]
    pub valid_size: Option<usize>,
    /// Seed of the shuffle that picks the validation images.
    #[config(default = 42)]
    pub seed: u64,
}

impl SplitConfig {
    /// Which of `count` training images a run validates and trains on: their indices
    /// shuffled with `seed`, the first `valid_size` held out for validation, and of
    /// the rest the first `limit` (all of them without a limit) to train on.
    pub fn indices(&self, count: usize, limit: Option<usize>) -> Result<SplitIndices, DataError> {
        let valid_size = self.valid_count(count);
        if valid_size >= count {
            return Err(DataError::ValidationTooLarge {
                valid_size,
                available: count,
            });
        }
        let mut valid: Vec<usize> = (0..count).collect();
        valid.shuffle(&mut StdRng::seed_from_u64(self.seed));
        let mut train = valid.split_off(valid_size);
        valid.shrink_to_fit();
        if let Some(limit) = limit {
            train.truncate(limit);
            train.shrink_to_fit();
        }
        Ok(SplitIndices { train, valid })
    }

    /// How many of `count` training images are held out: `valid_size`, or a twelfth
    /// of them, rounded, at least one and at most 5,000.
    pub fn valid_count(&self, count: usize) -> usize {
        self.valid_size
            .unwrap_or(((count + 6) / 12).min(DEFAULT_MAX_VALID))
            .max(1)
    }
}

/// The training images a run uses, by their index in the training files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitIndices {
    pub train: Vec<usize>,
    pub valid: Vec<usize>,
}

impl SplitIndices {
    /// Every image either part uses, ascending: those whose pixels must be read.
    pub fn used(&self) -> Vec<usize> {
        let mut used: Vec<usize> = self.train.iter().chain(&self.valid).copied().collect();
        used.sort_unstable();
        used
    }
}

/// One image, as its raw pixel bytes (row-major), and its label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MnistItem {
    pub pixels: Vec<u8>,
    pub label: u8,
}

/// A view of some items of a [`LabelledImages`] set, which it shares rather than copies.
#[derive(Debug, Clone)]
pub struct MnistDataset {
    set: Arc<LabelledImages>,
    indices: Vec<usize>,
}

impl MnistDataset {
    /// Every item of `set`, in file order.
    pub fn new(set: LabelledImages) -> Self {
        let indices = (0..set.len()).collect();
        Self {
            set: Arc::new(set),
            indices,
        }
    }

    /// The training and validation views of `set` that `split` picks from it.
    pub fn train_valid(set: LabelledImages, split: SplitIndices) -> (Self, Self) {
        let set = Arc::new(set);
        let valid = Self {
            set: set.clone(),
            indices: split.valid,
        };
        let train = Self {
            set,
            indices: split.train,
        };
        (train, valid)
    }

    /// The items in `range` of this view (clamped to its length).
    pub fn slice(&self, range: std::ops::Range<usize>) -> Self {
        let end = range.end.min(self.indices.len());
        let start = range.start.min(end);
        Self {
            set: self.set.clone(),
            indices: self.indices[start..end].to_vec(),
        }
    }

    /// The file the images are read from as batches need them, for pictures too many
    /// for memory; `None` when they are in memory.
    pub fn pixels_file(&self) -> Option<&std::path::Path> {
        self.set.pixels_file()
    }

    /// Pixels per image.
    pub fn image_len(&self) -> usize {
        self.set.image_len()
    }

    /// `[channels, height, width]` of every image.
    pub fn image_shape(&self) -> [usize; 3] {
        [self.set.channels(), self.set.rows(), self.set.cols()]
    }

    /// Height and width of every image.
    pub fn image_size(&self) -> (usize, usize) {
        (self.set.rows(), self.set.cols())
    }

    /// One more than the largest label in the whole underlying set: the number of
    /// classes a model needs to tell them all apart.
    pub fn num_classes(&self) -> usize {
        self.set.num_classes()
    }

    /// The pixels and label of each item at `positions`, borrowed from the shared set
    /// without copying (read from its file, for pictures too many for memory);
    /// `None` if a position is past the end, or its pixels cannot be read.
    pub fn items_at(&self, positions: &[usize]) -> Option<Vec<(Cow<'_, [u8]>, u8)>> {
        positions
            .iter()
            .map(|&position| {
                let &source = self.indices.get(position)?;
                Some((self.set.image(source)?, self.set.label(source)?))
            })
            .collect()
    }

    /// Why the items at `positions` are not to be had: their pictures' file cannot be
    /// read, or a position is past the end.
    pub fn unavailable(&self, positions: &[usize]) -> DatasetError {
        let index = positions.iter().copied().max().unwrap_or_default();
        match self.pixels_file() {
            Some(path) if index < self.len() => {
                DatasetError::new(UnreadablePictures(path.to_path_buf()))
            }
            _ => DatasetError::new(IndexOutOfRange {
                index,
                len: self.len(),
            }),
        }
    }

    /// Each channel's mean and standard deviation over the pixels of this view's
    /// images, scaled to [0, 1] as the batcher scales them: what a network
    /// standardises its input by. Sums are exact integers, so the order of the
    /// images does not change the result.
    pub fn channel_statistics(&self) -> Vec<(f64, f64)> {
        let [channels, height, width] = self.image_shape();
        let plane = height * width;
        let mut sums = vec![(0u64, 0u64); channels];
        for &source in &self.indices {
            let Some(image) = self.set.image(source) else {
                continue;
            };
            let image: &[u8] = &image;
            for (pixels, (sum, squares)) in image.chunks_exact(plane.max(1)).zip(&mut sums) {
                for &pixel in pixels {
                    *sum += u64::from(pixel);
                    *squares += u64::from(pixel) * u64::from(pixel);
                }
            }
        }
        let count = (self.indices.len() * plane).max(1) as f64;
        sums.into_iter()
            .map(|(sum, squares)| {
                let mean = sum as f64 / count;
                let variance = (squares as f64 / count - mean * mean).max(0.0);
                (mean / 255.0, variance.sqrt() / 255.0)
            })
            .collect()
    }

    /// Where the item at `position` lies in the whole underlying set: the same for
    /// an image whichever slice of the set (a device's share) holds it.
    pub fn source_index(&self, position: usize) -> Option<usize> {
        self.indices.get(position).copied()
    }

    /// The item at `index`, or `None` past the end.
    pub fn item(&self, index: usize) -> Option<MnistItem> {
        let &source = self.indices.get(index)?;
        Some(MnistItem {
            pixels: self.set.image(source)?.to_vec(),
            label: self.set.label(source)?,
        })
    }
}

impl Dataset<MnistItem> for MnistDataset {
    fn get(&self, index: usize) -> Result<MnistItem, DatasetError> {
        self.item(index).ok_or_else(|| {
            DatasetError::new(IndexOutOfRange {
                index,
                len: self.len(),
            })
        })
    }

    fn len(&self) -> usize {
        self.indices.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `count` 1x2 images whose pixels are their index, labelled `index % 10`.
    fn numbered(count: usize) -> LabelledImages {
        let pixels = (0..count).flat_map(|i| [i as u8; 2]).collect();
        let labels = (0..count).map(|i| (i % 10) as u8).collect();
        LabelledImages::from_parts(1, 2, pixels, labels).expect("consistent parts")
    }

    fn ids(dataset: &MnistDataset) -> Vec<u8> {
        (0..dataset.len())
            .filter_map(|index| dataset.item(index))
            .map(|item| item.pixels[0])
            .collect()
    }

    #[test]
    fn whole_set_in_file_order() {
        let dataset = MnistDataset::new(numbered(4));
        assert_eq!(dataset.len(), 4);
        assert_eq!(ids(&dataset), vec![0, 1, 2, 3]);
        assert_eq!(dataset.item(3).map(|i| i.label), Some(3));
        assert!(dataset.get(4).is_err());
    }

    fn split(count: usize, split: &SplitConfig) -> (MnistDataset, MnistDataset) {
        let indices = split.indices(count, None).expect("fits");
        MnistDataset::train_valid(numbered(count), indices)
    }

    #[test]
    fn split_is_disjoint_complete_sized_and_seeded() {
        let config = SplitConfig::new().with_valid_size(Some(30)).with_seed(7);
        let (train, valid) = split(100, &config);
        assert_eq!((train.len(), valid.len()), (70, 30));
        let mut all: Vec<u8> = ids(&train).into_iter().chain(ids(&valid)).collect();
        all.sort_unstable();
        assert_eq!(all, (0..100).collect::<Vec<u8>>());

        let (_, same) = split(100, &config);
        assert_eq!(ids(&same), ids(&valid));
        let (_, other) = split(100, &config.clone().with_seed(8));
        assert_ne!(ids(&other), ids(&valid));
    }

    #[test]
    fn channel_statistics_are_each_planes_over_the_views_images() {
        // Two 2-channel 1x2 images: channel 0 holds 0 and 255, channel 1 holds 51.
        let pixels = vec![0, 255, 51, 51, 255, 0, 51, 51];
        let set = LabelledImages::from_planes(2, 1, 2, pixels, vec![0, 1]).expect("consistent");
        let statistics = MnistDataset::new(set).channel_statistics();
        assert_eq!(statistics, [(0.5, 0.5), (0.2, 0.0)]);
    }

    #[test]
    fn without_a_size_a_twelfth_is_held_out() {
        let split = SplitConfig::new();
        assert_eq!(split.valid_count(60_000), 5_000);
        assert_eq!(split.valid_count(6_000), 500);
        assert_eq!(split.valid_count(5), 1);
        assert_eq!(split.valid_count(1_000_000), 5_000);
        let indices = split.indices(1_200, None).expect("fits");
        assert_eq!((indices.train.len(), indices.valid.len()), (1_100, 100));
        assert!(split.indices(1, None).is_err(), "one image cannot be split");
    }

    #[test]
    fn validation_must_leave_training_items() {
        let split = SplitConfig::new().with_valid_size(Some(10));
        let err = split.indices(10, None).expect_err("nothing left");
        assert!(matches!(err, DataError::ValidationTooLarge { .. }), "{err}");
    }

    #[test]
    fn a_limit_keeps_the_first_training_items_and_the_same_validation() {
        let split = SplitConfig::new().with_valid_size(Some(5));
        let whole = split.indices(50, None).expect("fits");
        let limited = split.indices(50, Some(8)).expect("fits");
        assert_eq!(limited.train, whole.train[..8]);
        assert_eq!(limited.valid, whole.valid);
        assert_eq!(split.indices(50, Some(100)).expect("fits"), whole);
        let used = limited.used();
        assert_eq!(used.len(), 13);
        assert!(used.windows(2).all(|pair| pair[0] < pair[1]), "{used:?}");
    }

    #[test]
    fn classes_are_counted_from_the_labels() {
        assert_eq!(MnistDataset::new(numbered(3)).num_classes(), 3);
        assert_eq!(MnistDataset::new(numbered(30)).num_classes(), 10);
    }
}
