//! A Burn [`DataLoader`] whose batch order is a pure function of the seed and the
//! epoch, so that a run resumed after epoch `k` sees exactly the batches an
//! uninterrupted run would have seen from epoch `k + 1` on. (Burn's own loader
//! reshuffles from a random generator that advances with each epoch and starts over
//! when the process does.)

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, sync_channel};

use burn::data::dataloader::{DataLoader, DataLoaderIterator, Progress};
use burn::data::dataset::{Dataset, DatasetError};
use burn::prelude::*;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use crate::{Augmentation, MnistBatch, MnistBatcher, MnistDataset};

/// Batches of an [`MnistDataset`], in file order or shuffled anew each epoch.
#[derive(Debug)]
pub struct EpochLoader {
    dataset: MnistDataset,
    batch_size: usize,
    device: Device,
    shuffle_seed: Option<u64>,
    /// The epoch the next call to `iter` serves, counted from 0.
    next_epoch: AtomicUsize,
    /// Batches the first epoch served leaves out, already trained on before a resume.
    skip_batches: AtomicUsize,
    /// Gather each batch ahead on a thread of its own.
    ahead: bool,
    /// Warp each image at random, by epoch and position (training only).
    augmentation: Option<Augmentation>,
}

impl EpochLoader {
    /// Serves `dataset` in file order, `batch_size` items at a time (the last batch
    /// may be smaller).
    pub fn new(dataset: MnistDataset, batch_size: usize, device: Device) -> Self {
        Self {
            dataset,
            batch_size: batch_size.max(1),
            device,
            shuffle_seed: None,
            next_epoch: AtomicUsize::new(0),
            skip_batches: AtomicUsize::new(0),
            ahead: false,
            augmentation: None,
        }
    }

    /// Warps every image at random as `augmentation` says, the warp a function of
    /// the run's seed, the epoch and the image's position, so that a resumed run
    /// sees what an uninterrupted one saw.
    pub fn augmented(mut self, augmentation: Augmentation) -> Self {
        self.augmentation = Some(augmentation);
        self
    }

    /// Gathers each batch on a thread of its own while the caller works on the one
    /// before, in the same order: for training, whose steps are short enough that
    /// gathering (each image read from wherever it lies in the data set, waiting on
    /// memory more than computing) was a tenth of them.
    pub fn gathered_ahead(mut self) -> Self {
        self.ahead = true;
        self
    }

    /// Shuffles before every epoch, with an order determined by `seed` and the epoch.
    pub fn shuffled(mut self, seed: u64) -> Self {
        self.shuffle_seed = Some(seed);
        self
    }

    /// Makes the first epoch served the `epochs_done + 1`-th, as when resuming.
    pub fn starting_after(self, epochs_done: usize) -> Self {
        self.next_epoch.store(epochs_done, Ordering::SeqCst);
        self
    }

    /// Makes the first epoch served start after its first `batches` batches, as when
    /// resuming from a step within it.
    pub fn skipping_batches(self, batches: usize) -> Self {
        self.skip_batches.store(batches, Ordering::SeqCst);
        self
    }

    /// The item order of epoch `epoch` (counted from 0).
    pub fn order(&self, epoch: usize) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.dataset.len()).collect();
        if let Some(seed) = self.shuffle_seed {
            order.shuffle(&mut StdRng::seed_from_u64(epoch_seed(seed, epoch)));
        }
        order
    }

    fn with(&self, dataset: MnistDataset, device: Device) -> Self {
        Self {
            dataset,
            batch_size: self.batch_size,
            device,
            shuffle_seed: self.shuffle_seed,
            next_epoch: AtomicUsize::new(self.next_epoch.load(Ordering::SeqCst)),
            skip_batches: AtomicUsize::new(self.skip_batches.load(Ordering::SeqCst)),
            ahead: self.ahead,
            augmentation: self.augmentation,
        }
    }
}

/// Mixes the epoch into the seed (SplitMix64's finaliser), so that neighbouring
/// epochs and seeds get unrelated orders.
fn epoch_seed(seed: u64, epoch: usize) -> u64 {
    let mut z = seed ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl DataLoader<MnistBatch> for EpochLoader {
    fn iter<'a>(&'a self) -> Box<dyn DataLoaderIterator<MnistBatch> + 'a> {
        let epoch = self.next_epoch.fetch_add(1, Ordering::SeqCst);
        let skipped = self.skip_batches.swap(0, Ordering::SeqCst);
        let order = self.order(epoch);
        let position = (skipped * self.batch_size).min(order.len());
        Box::new(EpochIterator::new(self, order, position, epoch))
    }

    fn num_items(&self) -> usize {
        self.dataset.len()
    }

    fn to_device(&self, device: &Device) -> Arc<dyn DataLoader<MnistBatch>> {
        Arc::new(self.with(self.dataset.clone(), device.clone()))
    }

    fn slice(&self, start: usize, end: usize) -> Arc<dyn DataLoader<MnistBatch>> {
        Arc::new(self.with(self.dataset.slice(start..end), self.device.clone()))
    }
}

/// One epoch's batches, from `position` on.
struct EpochIterator<'a> {
    loader: &'a EpochLoader,
    order: Arc<[usize]>,
    position: usize,
    epoch: usize,
    /// Batches gathered ahead, in order; `None` gathers each one when it is asked for.
    ahead: Option<Receiver<Result<MnistBatch, DatasetError>>>,
}

impl<'a> EpochIterator<'a> {
    fn new(loader: &'a EpochLoader, order: Vec<usize>, position: usize, epoch: usize) -> Self {
        let order: Arc<[usize]> = order.into();
        let ahead = loader
            .ahead
            .then(|| gather_ahead(loader, order.clone(), position, epoch))
            .flatten();
        Self {
            loader,
            order,
            position,
            epoch,
            ahead,
        }
    }
}

/// Starts a thread gathering the batches of `order` from `position` on, one batch
/// ahead of the receiver; `None` if no thread could be started.
fn gather_ahead(
    loader: &EpochLoader,
    order: Arc<[usize]>,
    position: usize,
    epoch: usize,
) -> Option<Receiver<Result<MnistBatch, DatasetError>>> {
    let (sender, batches) = sync_channel(1);
    let (dataset, device, batch_size) = (
        loader.dataset.clone(),
        loader.device.clone(),
        loader.batch_size,
    );
    let augmentation = loader
        .augmentation
        .map(|augmentation| (augmentation, epoch));
    std::thread::Builder::new()
        .name("batches".into())
        .spawn(move || {
            for positions in order.get(position..).unwrap_or_default().chunks(batch_size) {
                // A closed channel: the epoch ended early, and so does this.
                let batch = gather(&dataset, positions, augmentation.as_ref(), &device);
                if sender.send(batch).is_err() {
                    return;
                }
            }
        })
        .ok()?;
    Some(batches)
}

fn gather(
    dataset: &MnistDataset,
    positions: &[usize],
    augmentation: Option<&(Augmentation, usize)>,
    device: &Device,
) -> Result<MnistBatch, DatasetError> {
    let batch = match augmentation {
        Some((augmentation, epoch)) => {
            MnistBatcher.gather_augmented(dataset, positions, (augmentation, *epoch), device)
        }
        None => MnistBatcher.gather(dataset, positions, device),
    };
    batch.ok_or_else(|| dataset.unavailable(positions))
}

impl Iterator for EpochIterator<'_> {
    type Item = Result<MnistBatch, DatasetError>;

    fn next(&mut self) -> Option<Self::Item> {
        let end = (self.position + self.loader.batch_size).min(self.order.len());
        let positions = self
            .order
            .get(self.position..end)
            .filter(|p| !p.is_empty())?;
        let batch = match &self.ahead {
            Some(batches) => batches.recv().ok()?,
            None => {
                let augmentation = self.loader.augmentation.map(|a| (a, self.epoch));
                let dataset = &self.loader.dataset;
                gather(
                    dataset,
                    positions,
                    augmentation.as_ref(),
                    &self.loader.device,
                )
            }
        };
        self.position = end;
        Some(batch)
    }
}

impl DataLoaderIterator<MnistBatch> for EpochIterator<'_> {
    fn progress(&self) -> Progress {
        Progress::new(self.position, self.order.len(), Some("items".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::LabelledImages;

    fn loader(count: usize, batch_size: usize) -> EpochLoader {
        let pixels = (0..count).map(|i| i as u8).collect();
        let labels = (0..count).map(|i| (i % 10) as u8).collect();
        let set = LabelledImages::from_parts(1, 1, pixels, labels).expect("parts agree");
        EpochLoader::new(MnistDataset::new(set), batch_size, Device::flex())
    }

    fn epoch_ids(loader: &dyn DataLoader<MnistBatch>) -> Vec<Vec<u8>> {
        loader
            .iter()
            .map(|batch| {
                let images = batch.expect("batch").images;
                images
                    .try_into_vec_as::<f32>()
                    .expect("floats")
                    .iter()
                    .map(|p| (p * 255.0).round() as u8)
                    .collect()
            })
            .collect()
    }

    #[test]
    fn file_order_in_batches_with_a_short_last_one() {
        let loader = loader(7, 3);
        assert_eq!(
            epoch_ids(&loader),
            vec![vec![0, 1, 2], vec![3, 4, 5], vec![6]]
        );
        assert_eq!(
            epoch_ids(&loader),
            epoch_ids(&loader),
            "no shuffle, same order"
        );
    }

    #[test]
    fn each_epoch_is_a_new_permutation() {
        let loader = loader(50, 50).shuffled(7);
        let first: Vec<u8> = epoch_ids(&loader).concat();
        let second: Vec<u8> = epoch_ids(&loader).concat();
        assert_ne!(first, second);
        let mut sorted = first.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..50).collect::<Vec<u8>>());
    }

    #[test]
    fn a_resumed_loader_continues_where_an_uninterrupted_one_is() {
        let uninterrupted = loader(40, 8).shuffled(3);
        let epochs: Vec<Vec<Vec<u8>>> = (0..3).map(|_| epoch_ids(&uninterrupted)).collect();
        let resumed = loader(40, 8).shuffled(3).starting_after(2);
        assert_eq!(epoch_ids(&resumed), epochs[2]);
        let moved = loader(40, 8)
            .shuffled(3)
            .starting_after(1)
            .to_device(&Device::flex());
        assert_eq!(epoch_ids(moved.as_ref()), epochs[1]);
    }

    #[test]
    fn a_loader_resumed_within_an_epoch_skips_only_that_epochs_first_batches() {
        let uninterrupted = loader(40, 8).shuffled(3);
        let epochs: Vec<Vec<Vec<u8>>> = (0..3).map(|_| epoch_ids(&uninterrupted)).collect();
        let resumed = loader(40, 8)
            .shuffled(3)
            .starting_after(1)
            .skipping_batches(2)
            .slice(0, 40)
            .to_device(&Device::flex());
        assert_eq!(epoch_ids(resumed.as_ref()), epochs[1][2..]);
        assert_eq!(epoch_ids(resumed.as_ref()), epochs[2]);
        let past_the_end = loader(40, 8).skipping_batches(9);
        assert!(epoch_ids(&past_the_end).is_empty());
        assert_eq!(epoch_ids(&past_the_end).len(), 5);
    }

    /// `count` 6x6 images of distinct gradients, augmented with every transform.
    fn augmented(count: usize, seed: u64) -> EpochLoader {
        let pixels = (0..count * 36).map(|i| (i * 7 % 251) as u8).collect();
        let labels = (0..count).map(|i| (i % 10) as u8).collect();
        let set = LabelledImages::from_parts(6, 6, pixels, labels).expect("parts agree");
        let ranges = crate::AugmentConfig::new()
            .with_rotation(20.0)
            .with_translate(0.1)
            .with_scale([0.9, 1.1])
            .with_shear(5.0)
            .with_crop_padding(1)
            .ranges();
        EpochLoader::new(MnistDataset::new(set), 4, Device::flex())
            .shuffled(seed)
            .augmented(Augmentation {
                ranges,
                seed,
                shape: [1, 6, 6],
            })
    }

    fn epoch_pixels(loader: &dyn DataLoader<MnistBatch>) -> Vec<Vec<f32>> {
        loader
            .iter()
            .map(|batch| {
                batch
                    .expect("batch")
                    .images
                    .try_into_vec_as::<f32>()
                    .expect("f32")
            })
            .collect()
    }

    #[test]
    fn augmented_epochs_differ_and_a_resumed_run_sees_the_same_pictures() {
        let uninterrupted = augmented(12, 5);
        let epochs: Vec<_> = (0..3).map(|_| epoch_pixels(&uninterrupted)).collect();
        assert_ne!(epochs[0], epochs[1], "each epoch draws new warps");
        let mut plain = augmented(12, 5);
        plain.augmentation = None;
        assert_ne!(epoch_pixels(&plain), epochs[0], "the pictures are warped");
        let resumed = augmented(12, 5).starting_after(2).gathered_ahead();
        assert_eq!(epoch_pixels(&resumed), epochs[2]);
        let within = augmented(12, 5).starting_after(1).skipping_batches(1);
        assert_eq!(epoch_pixels(&within), epochs[1][1..]);
        assert_ne!(
            epoch_pixels(&augmented(12, 6)),
            epochs[0],
            "another seed, other warps"
        );
    }

    #[test]
    fn an_image_is_warped_alike_in_the_whole_set_and_in_a_devices_share() {
        let unshuffled = || {
            let mut loader = augmented(12, 5);
            loader.shuffle_seed = None;
            loader
        };
        let whole = epoch_pixels(&unshuffled()).concat();
        // The second half, as the second of two devices takes it.
        let share = unshuffled().slice(6, 12);
        assert_eq!(epoch_pixels(share.as_ref()).concat(), whole[6 * 36..]);
    }

    #[test]
    fn progress_counts_items() {
        let loader = loader(5, 2);
        let mut iterator = loader.iter();
        assert_eq!(iterator.progress().items_processed, 0);
        iterator.next();
        assert_eq!(iterator.progress().items_processed, 2);
        assert_eq!(iterator.progress().items_total, 5);
    }

    #[test]
    fn batches_gathered_ahead_are_those_gathered_when_asked_for() {
        let here = loader(100, 8)
            .shuffled(3)
            .starting_after(1)
            .skipping_batches(4);
        let ahead = loader(100, 8)
            .shuffled(3)
            .starting_after(1)
            .skipping_batches(4)
            .gathered_ahead();
        for _ in 0..3 {
            assert_eq!(epoch_ids(&ahead), epoch_ids(&here));
        }
        let sliced = ahead.slice(10, 50).to_device(&Device::flex());
        assert_eq!(
            epoch_ids(sliced.as_ref()),
            epoch_ids(here.slice(10, 50).as_ref())
        );
        // An epoch left early stops its gathering thread; the next one starts afresh.
        let mut early = ahead.iter();
        early.next();
        assert_eq!(early.progress().items_processed, 8);
        drop(early);
        drop(here.iter());
        assert_eq!(epoch_ids(&ahead), epoch_ids(&here));
    }
}
