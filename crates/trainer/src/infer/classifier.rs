//! A trained network ready to classify. On the CPU backend images run in its plain
//! form ([`PlainNetwork`]: fused loops over the weights, an MLP's or a CNN's with its
//! batch norms folded in, faster than the tensor path for one image and for a
//! thousand); a GPU, or a network those loops do not compute (GELU), goes through
//! Burn's forward.

use burn::prelude::*;
use kernels::dense::PlainNetwork;
use model::Network;

use super::Prediction;
use super::predict::softmax;
use crate::TrainerError;

#[derive(Debug, Clone)]
pub struct Classifier {
    network: Network,
    device: Device,
    dense: Option<PlainNetwork>,
}

impl Classifier {
    /// Readies `network`, which lives on `device`.
    pub fn new(network: Network, device: &Device) -> Self {
        let dense = on_the_cpu(device).then(|| network.dense()).flatten();
        Self {
            network,
            device: device.clone(),
            dense,
        }
    }

    /// The unnormalised class scores of `batch` images.
    ///
    /// # Shapes
    /// - `pixels`: `[batch * input_size]`, scaled as the network takes them
    /// - returns: `[batch * num_classes]`
    pub(crate) fn logits(&self, pixels: &[f32], batch: usize) -> Result<Vec<f32>, TrainerError> {
        if let Some(dense) = &self.dense {
            return Ok(dense.forward(pixels));
        }
        let features = pixels.len() / batch.max(1);
        let input = Tensor::<2>::from_data(
            TensorData::new(pixels.to_vec(), [batch, features]),
            &self.device,
        );
        Ok(self.network.forward(input).try_into_vec_as::<f32>()?)
    }

    /// Predicts the class of each image, given as pixels already scaled to 0..1 the
    /// way the network takes them, each of the model's input size. `predict` runs this
    /// after scaling bytes; the HTTP API runs it on the pixels clients send, so no
    /// rounding to bytes comes between a client and the model.
    pub fn predict_scaled(&self, images: &[Vec<f32>]) -> Result<Vec<Prediction>, TrainerError> {
        if images.is_empty() {
            return Ok(Vec::new());
        }
        let logits = self.logits(&images.concat(), images.len())?;
        let classes = logits.len() / images.len();
        Ok(logits
            .chunks(classes.max(1))
            .map(|row| Prediction {
                probabilities: softmax(row),
            })
            .collect())
    }
}

/// The class with the highest score, the first of equals (as Burn's and PyTorch's
/// `argmax`).
pub fn most_likely(logits: &[f32]) -> usize {
    logits
        .iter()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |(best, top), (class, &score)| {
            if score > top {
                (class, score)
            } else {
                (best, top)
            }
        })
        .0
}

/// Whether `device` is a CPU backend's, where the dense loops beat a tensor backend's
/// dispatch.
fn on_the_cpu(device: &Device) -> bool {
    let device = device.clone().inner();
    #[cfg(feature = "flex")]
    if device == Device::flex() {
        return true;
    }
    #[cfg(feature = "ndarray")]
    #[allow(deprecated)]
    if device == Device::ndarray() {
        return true;
    }
    let _ = device;
    false
}
