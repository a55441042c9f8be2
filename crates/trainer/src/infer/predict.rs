//! Predicting digits with a trained model.

use burn::prelude::*;
use model::Network;

use super::Classifier;
use crate::TrainerError;

/// The model's belief about one image.
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    /// Softmax of the logits: one probability per class, summing to 1.
    pub probabilities: Vec<f32>,
}

impl Prediction {
    /// The most probable class.
    pub fn class(&self) -> usize {
        self.top(1).first().map_or(0, |&(class, _)| class)
    }

    /// `predicted 7  (top 3: 7 99.7%, 3 0.2%, 2 0.1%)`, with classes named by `name`.
    pub fn summary(&self, name: impl Fn(usize) -> String) -> String {
        let top: Vec<String> = self
            .top(3)
            .iter()
            .map(|&(class, p)| format!("{} {:.1}%", name(class), 100.0 * p))
            .collect();
        format!(
            "predicted {}  (top 3: {})",
            name(self.class()),
            top.join(", ")
        )
    }

    /// The probability of the most probable class.
    pub fn confidence(&self) -> f32 {
        self.top(1).first().map_or(0.0, |&(_, p)| p)
    }

    /// The `k` most probable classes with their probabilities, most probable first.
    pub(crate) fn top(&self, k: usize) -> Vec<(usize, f32)> {
        let mut ranked: Vec<(usize, f32)> =
            self.probabilities.iter().copied().enumerate().collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
        ranked.truncate(k);
        ranked
    }
}

/// Predicts the class of each image, given as raw pixel bytes (0-255, MNIST-style:
/// light digit on black) of the model's input size.
pub fn predict(
    model: &Network,
    images: &[Vec<u8>],
    device: &Device,
) -> Result<Vec<Prediction>, TrainerError> {
    let scaled: Vec<Vec<f32>> = images.iter().map(|image| scale_pixels(image)).collect();
    Classifier::new(model.clone(), device).predict_scaled(&scaled)
}

/// Pixel bytes (0-255) as the network takes them, in [0, 1], like the training batches.
pub fn scale_pixels(image: &[u8]) -> Vec<f32> {
    kernels::gather::scaled_pixels(std::iter::once(image), image.len())
}

/// `exp(x - max) / sum`, as Burn's softmax computes it.
pub(super) fn softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<f32> = logits.iter().map(|&x| (x - max).exp()).collect();
    let sum: f32 = exps.iter().sum();
    exps.iter().map(|&e| e / sum).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_ranks_classes_by_probability() {
        let prediction = Prediction {
            probabilities: vec![0.1, 0.6, 0.05, 0.25],
        };
        assert_eq!(prediction.class(), 1);
        assert_eq!(prediction.top(3), vec![(1, 0.6), (3, 0.25), (0, 0.1)]);
        assert_eq!(
            prediction.summary(|class| format!("c{class}")),
            "predicted c1  (top 3: c1 60.0%, c3 25.0%, c0 10.0%)"
        );
    }

    #[test]
    fn predictions_are_burns_softmax_of_the_logits_one_per_image() {
        let device = Device::flex();
        let model = model::NetworkConfig::new().init(&device);
        let images = [
            vec![0; 784],
            vec![255; 784],
            (0..784).map(|i| (i * 7 % 256) as u8).collect(),
        ];
        let predictions = predict(&model, &images, &device).expect("predicts");
        let pixels: Vec<f32> = images
            .iter()
            .flat_map(|image| scale_pixels(image))
            .collect();
        let input = Tensor::<2>::from_data(TensorData::new(pixels, [3, 784]), &device);
        let burn = burn::tensor::activation::softmax(model.forward(input), 1)
            .try_into_vec_as::<f32>()
            .expect("floats");
        assert_eq!(predictions.len(), 3);
        for (prediction, expected) in predictions.iter().zip(burn.chunks(10)) {
            assert_eq!(prediction.probabilities.len(), 10);
            let sum: f32 = prediction.probabilities.iter().sum();
            assert!((sum - 1.0).abs() < 1e-5, "{sum}");
            for (p, e) in prediction.probabilities.iter().zip(expected) {
                assert!(
                    (p - e).abs() <= 1e-5 * e.max(1e-3),
                    "{p} against Burn's {e}"
                );
            }
        }
    }
}
