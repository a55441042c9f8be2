//! Gathers MNIST items straight into batch tensors.

use burn::data::dataloader::batcher::Batcher;
use burn::prelude::*;
use kernels::gather::scaled_pixels;

use crate::{Augmentation, MnistDataset, MnistItem};

/// Turns items into a [`MnistBatch`], scaling pixels to `[0, 1]` as torchvision's
/// `ToTensor` does ([`kernels::gather`]), so that the network sees what the PyTorch tutorial's does.
#[derive(Debug, Clone, Copy, Default)]
pub struct MnistBatcher;

/// A batch of flattened images and their labels.
#[derive(Debug, Clone)]
pub struct MnistBatch {
    /// `[batch, pixels]`, values in `[0, 1]`.
    pub images: Tensor<2>,
    /// `[batch]`, class indices.
    pub targets: Tensor<1, Int>,
}

impl MnistBatch {
    /// The batch of `images`, each its `image_len` pixel bytes (row-major) and label.
    pub fn from_images<'a>(
        images: impl ExactSizeIterator<Item = (&'a [u8], u8)>,
        image_len: usize,
        device: &Device,
    ) -> Self {
        let count = images.len();
        let (images, labels): (Vec<&[u8]>, Vec<u8>) = images.unzip();
        let pixels = scaled_pixels(images.into_iter(), image_len);
        let targets: Vec<i64> = labels.into_iter().map(i64::from).collect();
        Self {
            images: Tensor::from_data(TensorData::new(pixels, [count, image_len]), device),
            targets: Tensor::from_data(TensorData::new(targets, [count]), device),
        }
    }
}

impl MnistBatcher {
    /// The batch of the items of `dataset` at `positions`, gathered straight from its
    /// shared bytes; `None` if a position is past the end.
    pub fn gather(
        &self,
        dataset: &MnistDataset,
        positions: &[usize],
        device: &Device,
    ) -> Option<MnistBatch> {
        let images = dataset.items_at(positions)?;
        Some(MnistBatch::from_images(
            images.iter().map(|(image, label)| (image.as_ref(), *label)),
            dataset.image_len(),
            device,
        ))
    }

    /// [`MnistBatcher::gather`] with each image warped by `augmentation` as that
    /// image (its index in the whole set, whichever device's share holds it) in epoch
    /// `epoch`.
    pub fn gather_augmented(
        &self,
        dataset: &MnistDataset,
        positions: &[usize],
        (augmentation, epoch): (&Augmentation, usize),
        device: &Device,
    ) -> Option<MnistBatch> {
        let items = dataset.items_at(positions)?;
        let image_len = dataset.image_len();
        let mut pixels = vec![0.0f32; items.len() * image_len];
        for (((image, _), &position), out) in items
            .iter()
            .zip(positions)
            .zip(pixels.chunks_exact_mut(image_len.max(1)))
        {
            let image_index = dataset.source_index(position)?;
            augmentation.apply(image, epoch, image_index, out);
        }
        let targets: Vec<i64> = items.iter().map(|&(_, label)| i64::from(label)).collect();
        Some(MnistBatch {
            images: Tensor::from_data(TensorData::new(pixels, [items.len(), image_len]), device),
            targets: Tensor::from_data(TensorData::new(targets, [items.len()]), device),
        })
    }
}

impl Batcher<MnistItem, MnistBatch> for MnistBatcher {
    fn batch(&self, items: Vec<MnistItem>, device: &Device) -> MnistBatch {
        let image_len = items.first().map_or(0, |item| item.pixels.len());
        let images = items
            .iter()
            .map(|item| (item.pixels.as_slice(), item.label));
        MnistBatch::from_images(images, image_len, device)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_scale_pixels_and_keep_labels_in_order() {
        let device = Device::flex();
        let items = vec![
            MnistItem {
                pixels: vec![0, 255, 51],
                label: 3,
            },
            MnistItem {
                pixels: vec![255, 0, 102],
                label: 9,
            },
        ];
        let batch = MnistBatcher.batch(items, &device);
        assert_eq!(batch.images.dims(), [2, 3]);
        let pixels = batch.images.try_into_vec_as::<f32>().expect("f32 data");
        assert_eq!(pixels, vec![0.0, 1.0, 0.2, 1.0, 0.0, 0.4]);
        let labels = batch.targets.try_into_vec_as::<i64>().expect("int data");
        assert_eq!(labels, vec![3, 9]);
    }
}
