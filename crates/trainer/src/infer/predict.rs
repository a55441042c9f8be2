//! Predicting digits with a trained model.

use burn::prelude::*;
use burn::tensor::activation::softmax;
use model::Network;

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

    /// The `k` most probable classes with their probabilities, most probable first.
    pub fn top(&self, k: usize) -> Vec<(usize, f32)> {
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
    predict_scaled(model, &scaled, device)
}

/// Pixel bytes (0-255) as the network takes them, in [0, 1], like the training batches.
pub fn scale_pixels(image: &[u8]) -> Vec<f32> {
    image.iter().map(|&p| data::pixel_value(p)).collect()
}

/// Predicts the class of each image, given as pixels already scaled to 0..1 the way
/// the network takes them, each of the model's input size. [`predict`] runs this after
/// scaling bytes; the HTTP API runs it on the pixels clients send, so no rounding to
/// bytes comes between a client and the model.
pub fn predict_scaled(
    model: &Network,
    images: &[Vec<f32>],
    device: &Device,
) -> Result<Vec<Prediction>, TrainerError> {
    let Some(first) = images.first() else {
        return Ok(Vec::new());
    };
    let pixels: Vec<f32> = images.concat();
    let input =
        Tensor::<2>::from_data(TensorData::new(pixels, [images.len(), first.len()]), device);
    // [batch, pixels] -> [batch, classes]
    let probabilities = softmax(model.forward(input), 1);
    let classes = probabilities.dims()[1];
    let flat = probabilities.try_into_vec_as::<f32>()?;
    Ok(flat
        .chunks(classes)
        .map(|row| Prediction {
            probabilities: row.to_vec(),
        })
        .collect())
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
    fn predictions_are_distributions_one_per_image() {
        let device = Device::flex();
        let model = model::NetworkConfig::new().init(&device);
        let predictions =
            predict(&model, &[vec![0; 784], vec![255; 784]], &device).expect("predicts");
        assert_eq!(predictions.len(), 2);
        for prediction in predictions {
            assert_eq!(prediction.probabilities.len(), 10);
            let sum: f32 = prediction.probabilities.iter().sum();
            assert!((sum - 1.0).abs() < 1e-5, "{sum}");
        }
    }
}
