//! What the network looks at: the saliency map of one image, the gradient of the
//! predicted class's logit with respect to each input pixel, by Burn's autodiff.

use burn::prelude::*;
use burn::tensor::activation::softmax;
use kernels::planes::mean_planes;
use model::Network;

use super::predict::scale_pixels;
use crate::TrainerError;

/// One image, what the network made of it, and where its decision is sensitive.
#[derive(Debug, Clone)]
pub struct Explanation {
    /// The input as the network takes it, in [0, 1].
    pub(crate) pixels: Vec<f32>,
    /// d logit[predicted] / d pixel, per pixel.
    pub(crate) saliency: Vec<f32>,
    pub(crate) probabilities: Vec<f32>,
    pub(crate) predicted: usize,
}

impl Explanation {
    /// The explanation of an image of `channels` planes as one plane, to be drawn in
    /// grey: the image and its saliency averaged over the channels.
    pub fn in_one_plane(self, channels: usize) -> Self {
        Self {
            pixels: mean_planes(&self.pixels, channels),
            saliency: mean_planes(&self.saliency, channels),
            ..self
        }
    }

    /// `test image 0 (label 7): predicted 7 with probability 99.7%`, for the image
    /// named `what`, with classes named by `name`.
    pub fn title(&self, what: &str, name: impl Fn(usize) -> String) -> String {
        format!(
            "{what}: predicted {} with probability {:.1}%",
            name(self.predicted),
            100.0 * self.probabilities[self.predicted]
        )
    }
}

/// Runs `image` (raw bytes, 0-255) through `model` and back-propagates the predicted
/// class's logit to the input. `model` must live on an autodiff device.
pub fn explain(
    model: &Network,
    image: &[u8],
    device: &Device,
) -> Result<Explanation, TrainerError> {
    // On an autodiff device dropout would be active, as in training; frozen, the
    // network computes what `predict` computes, and only the input takes gradients.
    let model = model.clone().freeze();
    let pixels = scale_pixels(image);
    let input = Tensor::<2>::from_data(TensorData::new(pixels.clone(), [1, pixels.len()]), device)
        .require_grad();
    // [1, pixels] -> [1, classes]
    let logits = model.forward(input.clone());
    let probabilities = softmax(logits.clone().detach(), 1).try_into_vec_as::<f32>()?;
    let predicted = probabilities
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map_or(0, |(class, _)| class);
    // [1, classes] -> [1, 1]: the logit whose sensitivity is wanted.
    let chosen = logits.slice([0..1, predicted..predicted + 1]).sum();
    let gradients = chosen.backward();
    let saliency = input
        .grad(&gradients)
        .ok_or_else(|| TrainerError::TensorRead("autodiff kept no input gradient".into()))?
        .try_into_vec_as::<f32>()?;
    Ok(Explanation {
        pixels,
        saliency,
        probabilities,
        predicted,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use model::NetworkConfig;

    #[test]
    fn saliency_is_the_gradient_of_the_predicted_logit() {
        let device = Device::flex().autodiff();
        let model = NetworkConfig::new().init(&device);
        let blank = vec![0u8; 784];
        let explanation = explain(&model, &blank, &device).expect("explains");
        assert_eq!(explanation.saliency.len(), 784);
        assert!(explanation.saliency.iter().all(|g| g.is_finite()));
        assert!(explanation.saliency.iter().any(|&g| g != 0.0));
        // A linear model's gradient is its weight column, whatever the input.
        let linear = NetworkConfig::new().with_hidden_sizes(vec![]).init(&device);
        let explanation = explain(&linear, &blank, &device).expect("explains");
        let weights = linear
            .input_weights()
            .0
            .try_into_vec_as::<f32>()
            .expect("floats");
        let column: Vec<f32> = (0..784)
            .map(|pixel| weights[pixel * 10 + explanation.predicted])
            .collect();
        let largest_gap = column
            .iter()
            .zip(&explanation.saliency)
            .map(|(w, g)| (w - g).abs())
            .fold(0.0f32, f32::max);
        assert!(largest_gap < 1e-6, "{largest_gap}");
    }

    #[test]
    fn dropout_plays_no_part_in_an_explanation() {
        let device = Device::flex().autodiff();
        let model = NetworkConfig::new().with_dropout(0.5).init(&device);
        let image: Vec<u8> = (0..784).map(|i| (i * 7 % 256) as u8).collect();
        let first = explain(&model, &image, &device).expect("explains");
        let second = explain(&model, &image, &device).expect("explains");
        assert_eq!(first.probabilities, second.probabilities);
        assert_eq!(first.saliency, second.saliency);
        // The same weights off the autodiff device, as `predict` runs them.
        let plain =
            super::super::predict(&model.valid(), &[image], &Device::flex()).expect("predicts");
        let largest_gap = plain[0]
            .probabilities
            .iter()
            .zip(&first.probabilities)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(
            largest_gap < 1e-6,
            "dropout changed the output by {largest_gap}"
        );
    }
}
