//! How input pixels are standardised before the first layer: the config's choices and
//! the per-channel statistics each of them amounts to.

use serde::{Deserialize, Serialize};

/// How input pixels, already scaled to [0, 1], are standardised before the first layer.
/// It is part of the network so that every consumer of a trained model (evaluation,
/// prediction, serving, export) feeds it the same way.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Normalization {
    /// Pixels as they are, in [0, 1] (the tutorial's `ToTensor`).
    #[default]
    Unit,
    /// MNIST's training-set mean 0.1307 and standard deviation 0.3081, as in PyTorch's
    /// MNIST example (`transforms.Normalize((0.1307,), (0.3081,))`).
    Mnist,
    /// `(x - mean) / std` with the given statistics, for other data sets.
    Standard { mean: f32, std: f32 },
    /// Each channel's mean and standard deviation over the training split, computed
    /// when training starts; the run records them as `channels`. Until then pixels
    /// pass unchanged.
    Dataset,
    /// `(x - mean[c]) / std[c]` for the pixels of channel `c`: one value per channel
    /// (torchvision's `Normalize(mean, std)`).
    Channels { mean: Vec<f32>, std: Vec<f32> },
}

impl Normalization {
    /// What it does to an input of `channels` channels: one `(mean, std)` pair per
    /// channel, or `None` when pixels pass through unchanged. The single-value kinds
    /// give every channel the same pair.
    pub fn per_channel(&self, channels: usize) -> Option<Standardization> {
        let same = |mean: f32, std: f32| Standardization {
            mean: vec![mean; channels],
            std: vec![std; channels],
        };
        match self {
            Self::Unit | Self::Dataset => None,
            Self::Mnist => Some(same(0.1307, 0.3081)),
            &Self::Standard { mean, std } => Some(same(mean, std)),
            Self::Channels { mean, std } => Some(Standardization {
                mean: mean.clone(),
                std: std.clone(),
            }),
        }
    }

    /// Why it cannot standardise an input of `channels` channels (any number, when
    /// not yet known), if it cannot: a standard deviation that is zero or not finite,
    /// a mean that is not finite, or per-channel values that are not one per channel.
    pub fn invalid(&self, channels: Option<usize>) -> Option<String> {
        let Standardization { mean, std } = self.per_channel(channels.unwrap_or(1))?;
        let counted = mean.len() == std.len() && !mean.is_empty();
        if !counted || channels.is_some_and(|channels| mean.len() != channels) {
            let wanted = channels.map_or("one".to_string(), |c| c.to_string());
            return Some(format!(
                "has {} means and {} standard deviations; it needs {wanted} of each, one per input channel",
                mean.len(),
                std.len()
            ));
        }
        if let Some(bad) = std.iter().find(|s| !s.is_finite() || **s == 0.0) {
            return Some(format!(
                "has standard deviation {bad}; it must be finite and non-zero"
            ));
        }
        if let Some(bad) = mean.iter().find(|m| !m.is_finite()) {
            return Some(format!("has mean {bad}; it must be finite"));
        }
        None
    }
}

/// `(x - mean[c]) / std[c]` for each pixel `x` of channel `c`.
#[derive(Debug, Clone, PartialEq)]
pub struct Standardization {
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
}

impl Standardization {
    /// The `(mean, std)` of every channel, when all channels share one.
    pub fn uniform(&self) -> Option<(f32, f32)> {
        let (&mean, &std) = (self.mean.first()?, self.std.first()?);
        let same = self.mean.iter().all(|&m| m == mean) && self.std.iter().all(|&s| s == std);
        same.then_some((mean, std))
    }

    /// The mean and standard deviation of each input feature, for channels of
    /// `plane` pixels each, laid one after another.
    pub fn per_feature(&self, plane: usize) -> (Vec<f32>, Vec<f32>) {
        let spread = |values: &[f32]| {
            values
                .iter()
                .flat_map(|&value| std::iter::repeat_n(value, plane))
                .collect()
        };
        (spread(&self.mean), spread(&self.std))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_reads_and_amounts_to_its_statistics() {
        let read = |json: &str| serde_json::from_str::<Normalization>(json).expect(json);
        assert_eq!(read(r#""dataset""#), Normalization::Dataset);
        assert_eq!(read(r#""unit""#).per_channel(3), None);
        assert_eq!(read(r#""dataset""#).per_channel(3), None);
        let mnist = read(r#""mnist""#).per_channel(2).expect("standardises");
        assert_eq!(mnist.uniform(), Some((0.1307, 0.3081)));
        let channels = read(r#"{"channels": {"mean": [0.5, 0.25], "std": [0.5, 0.125]}}"#);
        let standardization = channels.per_channel(2).expect("standardises");
        assert_eq!(standardization.uniform(), None);
        assert_eq!(
            standardization.per_feature(2),
            (vec![0.5, 0.5, 0.25, 0.25], vec![0.5, 0.5, 0.125, 0.125])
        );
        assert_eq!(channels.invalid(Some(2)), None);
        assert_eq!(channels.invalid(None), None);
        let reason = channels
            .invalid(Some(3))
            .expect("two values for three channels");
        assert!(
            reason.contains("2 means and 2 standard deviations; it needs 3"),
            "{reason}"
        );
        let uneven = Normalization::Channels {
            mean: vec![0.5, 0.5],
            std: vec![0.5],
        };
        assert!(uneven.invalid(None).is_some());
        let flat = Normalization::Channels {
            mean: vec![0.0],
            std: vec![0.0],
        };
        assert!(
            flat.invalid(Some(1))
                .expect("zero std")
                .contains("standard deviation 0")
        );
        let standard = Normalization::Standard {
            mean: f32::NAN,
            std: 1.0,
        };
        assert!(
            standard
                .invalid(Some(3))
                .expect("NaN mean")
                .contains("mean NaN")
        );
        assert_eq!(Normalization::Mnist.invalid(Some(3)), None);
        assert_eq!(Normalization::Dataset.invalid(Some(3)), None);
    }
}
