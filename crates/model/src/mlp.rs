//! The multilayer perceptron: its config (widths, activation, dropout, input
//! standardisation) and the Burn module it builds.

use burn::module::Param;
use burn::nn::{Dropout, DropoutConfig, Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation;
use serde::{Deserialize, Serialize};

/// The non-linearity after each hidden layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    #[default]
    Relu,
    Gelu,
    Tanh,
    Sigmoid,
}

impl Activation {
    fn apply(self, x: Tensor<2>) -> Tensor<2> {
        match self {
            Self::Relu => activation::relu(x),
            Self::Gelu => activation::gelu(x),
            Self::Tanh => activation::tanh(x),
            Self::Sigmoid => activation::sigmoid(x),
        }
    }
}

/// How input pixels, already scaled to [0, 1], are standardised before the first layer.
/// It is part of the network so that every consumer of a trained model (evaluation,
/// prediction, serving, export) feeds it the same way.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
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
}

impl Normalization {
    /// `(mean, std)`, or `None` when pixels pass through unchanged.
    pub fn statistics(self) -> Option<(f32, f32)> {
        match self {
            Self::Unit => None,
            Self::Mnist => Some((0.1307, 0.3081)),
            Self::Standard { mean, std } => Some((mean, std)),
        }
    }
}

/// Shape of the multilayer perceptron. The defaults are the PyTorch tutorial's
/// 784-64-64-10 network.
#[derive(Config, Debug)]
pub struct MlpConfig {
    /// Features per input row: 28 * 28 pixels for MNIST. Training sets it from the
    /// data's image size.
    #[config(default = 784)]
    pub input_size: usize,
    /// Width of each hidden layer, in order; each is followed by a ReLU.
    #[config(default = "vec![64, 64]")]
    pub hidden_sizes: Vec<usize>,
    /// Number of classes, the width of the output logits. Training sets it from the
    /// labels, or from the training config's `num_classes`.
    #[config(default = 10)]
    pub num_classes: usize,
    /// The non-linearity after each hidden layer: relu, gelu, tanh or sigmoid.
    #[config(default = "Activation::Relu")]
    pub activation: Activation,
    /// Probability of zeroing each hidden activation while training; 0 disables it.
    #[config(default = 0.0)]
    pub dropout: f64,
    /// Input standardisation: `"unit"` (pixels / 255), `"mnist"` (MNIST's mean and
    /// std) or `{"standard": {"mean": m, "std": s}}`.
    #[config(default = "Normalization::Unit")]
    pub normalization: Normalization,
}

/// Fully connected layers with a non-linearity (and optionally dropout) between
/// them; the last layer yields logits.
#[derive(Module, Debug)]
pub struct Mlp {
    hidden: Vec<Linear>,
    output: Linear,
    /// Absent without dropout, so that such models keep the record layout of the
    /// plain network.
    dropout: Option<Dropout>,
    #[module(skip)]
    activation: Activation,
    #[module(skip)]
    normalization: Normalization,
}

impl MlpConfig {
    /// The layer widths from input to logits, e.g. `784-64-64-10`.
    pub fn architecture(&self) -> String {
        self.widths()
            .iter()
            .map(usize::to_string)
            .collect::<Vec<_>>()
            .join("-")
    }

    /// Parameters of the network: each layer's weights and biases.
    pub fn num_params(&self) -> usize {
        self.widths().windows(2).map(|w| w[0] * w[1] + w[1]).sum()
    }

    /// Every layer's width: the input, the hidden layers, the classes.
    pub fn widths(&self) -> Vec<usize> {
        std::iter::once(self.input_size)
            .chain(self.hidden_sizes.iter().copied())
            .chain(std::iter::once(self.num_classes))
            .collect()
    }

    /// The Linear layers in forward order, each as its module path in the [`Mlp`]
    /// record and its name in the PyTorch tutorial's `Net`: `("hidden.0", "fc1")`,
    /// ..., `("output", "fcN")`. Exchanging weights with PyTorch renames along these.
    pub fn layer_names(&self) -> Vec<(String, String)> {
        let layers = self.hidden_sizes.len() + 1;
        (0..layers)
            .map(|index| {
                let burn = if index + 1 < layers {
                    format!("hidden.{index}")
                } else {
                    "output".to_string()
                };
                (burn, format!("fc{}", index + 1))
            })
            .collect()
    }

    /// Builds the network with freshly initialised weights on `device`.
    pub fn init(&self, device: &Device) -> Mlp {
        let widths = self.widths();
        // The input and the classes are always there: the last pair is the output layer.
        let (last, features) = (widths.len() - 1, widths.len() - 2);
        let hidden = widths[..last]
            .windows(2)
            .map(|pair| LinearConfig::new(pair[0], pair[1]).init(device))
            .collect();
        Mlp {
            hidden,
            output: LinearConfig::new(widths[features], widths[last]).init(device),
            dropout: (self.dropout > 0.0).then(|| DropoutConfig::new(self.dropout).init()),
            activation: self.activation,
            normalization: self.normalization,
        }
    }
}

impl Mlp {
    /// Maps a batch of flattened images to unnormalised class scores (logits);
    /// apply softmax only when probabilities are wanted.
    ///
    /// # Shapes
    /// - `images`: `[batch, input_size]`
    /// - returns: `[batch, num_classes]`
    pub fn forward(&self, images: Tensor<2>) -> Tensor<2> {
        let images = match self.normalization.statistics() {
            Some((mean, std)) => images.sub_scalar(mean).div_scalar(std),
            None => images,
        };
        let features = self.hidden.iter().fold(images, |x, layer| {
            // [batch, in] -> [batch, width]
            let x = self.activation.apply(layer.forward(x));
            match &self.dropout {
                Some(dropout) => dropout.forward(x),
                None => x,
            }
        });
        // [batch, last width] -> [batch, num_classes]
        self.output.forward(features)
    }

    /// The same function with the input standardisation folded into the first layer,
    /// for consumers that feed pixels in [0, 1] straight to the first Linear layer (the
    /// tutorial's PyTorch `Net`): with `x' = (x - mean) / std`,
    /// `x' W + b = x (W / std) + (b - (mean / std) * column sums of W)`.
    pub fn with_normalization_folded(mut self) -> Self {
        let Some((mean, std)) = self.normalization.statistics() else {
            return self;
        };
        let first = match self.hidden.first_mut() {
            Some(layer) => layer,
            None => &mut self.output,
        };
        // [input_size, width]
        let weight = first.weight.val();
        let width = weight.dims()[1];
        // [input_size, width] -> [width]
        let shift = weight.clone().sum_dim(0).reshape([width]) * (mean / std);
        first.bias = Some(Param::from_tensor(match first.bias.take() {
            Some(bias) => bias.val() - shift,
            None => shift.neg(),
        }));
        first.weight = Param::from_tensor(weight / std);
        self.normalization = Normalization::Unit;
        self
    }

    /// The Linear layers in forward order: the hidden ones, then the output.
    pub fn layers(&self) -> impl Iterator<Item = &Linear> {
        self.hidden.iter().chain(std::iter::once(&self.output))
    }

    /// The weights of the first layer, which sees the pixels: one column per unit,
    /// each a template over the input image.
    ///
    /// # Shapes
    /// - returns: `[input_size, width of the first layer]`
    pub fn input_weights(&self) -> Tensor<2> {
        self.hidden.first().unwrap_or(&self.output).weight.val()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device() -> Device {
        Device::flex()
    }

    #[test]
    fn layers_are_named_in_forward_order_for_burn_and_pytorch() {
        let config = MlpConfig::new().with_hidden_sizes(vec![32, 16, 8]);
        assert_eq!(config.architecture(), "784-32-16-8-10");
        let names = config.layer_names();
        assert_eq!(names.len(), 4);
        assert_eq!(names[0], ("hidden.0".to_string(), "fc1".to_string()));
        assert_eq!(names[3], ("output".to_string(), "fc4".to_string()));
        let linear = MlpConfig::new().with_hidden_sizes(vec![]);
        assert_eq!(linear.architecture(), "784-10");
        assert_eq!(linear.layer_names(), [("output".into(), "fc1".into())]);
    }

    #[test]
    fn default_is_the_tutorial_network_with_55050_parameters() {
        let mlp = MlpConfig::new().init(&device());
        // 784*64+64 + 64*64+64 + 64*10+10
        assert_eq!(mlp.num_params(), 55_050);
        assert_eq!(
            MlpConfig::new().num_params(),
            55_050,
            "counted without building it"
        );
    }

    #[test]
    fn forward_maps_a_batch_to_one_logit_per_class() {
        let device = device();
        let mlp = MlpConfig::new().init(&device);
        let logits = mlp.forward(Tensor::zeros([3, 784], &device));
        assert_eq!(logits.dims(), [3, 10]);
    }

    #[test]
    fn hidden_sizes_are_honoured() {
        let device = device();
        let config = MlpConfig::new()
            .with_input_size(12)
            .with_hidden_sizes(vec![7, 5, 3])
            .with_num_classes(4);
        let mlp = config.init(&device);
        assert_eq!(mlp.hidden.len(), 3);
        assert_eq!(
            mlp.num_params(),
            (12 * 7 + 7) + (7 * 5 + 5) + (5 * 3 + 3) + (3 * 4 + 4)
        );
        assert_eq!(mlp.forward(Tensor::ones([2, 12], &device)).dims(), [2, 4]);
    }

    #[test]
    fn no_hidden_layer_is_a_linear_classifier() {
        let device = device();
        let mlp = MlpConfig::new().with_hidden_sizes(vec![]).init(&device);
        assert_eq!(mlp.num_params(), 784 * 10 + 10);
        assert_eq!(
            mlp.forward(Tensor::zeros([1, 784], &device)).dims(),
            [1, 10]
        );
    }

    #[test]
    fn each_activation_computes_its_own_function() {
        let device = device();
        // A 1-1-1 network with unit weights and no bias computes its activation.
        let unit = |layer: &mut Linear| {
            layer.weight = Param::from_tensor(Tensor::ones([1, 1], &device));
            layer.bias = Some(Param::from_tensor(Tensor::zeros([1], &device)));
        };
        let gelu = |x: f64| {
            // The tanh form, within 1e-3 of the exact erf form Burn computes.
            let inner = (2.0 / std::f64::consts::PI).sqrt() * (x + 0.044715 * x.powi(3));
            0.5 * x * (1.0 + inner.tanh())
        };
        let functions: [(Activation, &dyn Fn(f64) -> f64, f64); 4] = [
            (Activation::Relu, &|x: f64| x.max(0.0), 1e-6),
            (Activation::Gelu, &gelu, 2e-3),
            (Activation::Tanh, &f64::tanh, 1e-6),
            (
                Activation::Sigmoid,
                &|x: f64| 1.0 / (1.0 + (-x).exp()),
                1e-6,
            ),
        ];
        let inputs = [-2.0f32, -0.5, 0.3, 1.5];
        let x = Tensor::<2>::from_data(TensorData::new(inputs.to_vec(), [4, 1]), &device);
        for (activation, _, tolerance) in functions {
            let mut mlp = MlpConfig::new()
                .with_input_size(1)
                .with_hidden_sizes(vec![1])
                .with_num_classes(1)
                .with_activation(activation)
                .init(&device);
            unit(&mut mlp.hidden[0]);
            unit(&mut mlp.output);
            let got = mlp
                .forward(x.clone())
                .try_into_vec_as::<f64>()
                .expect("floats");
            for (other, f, _) in &functions {
                let gap = inputs
                    .iter()
                    .zip(&got)
                    .map(|(&input, &out)| (f(f64::from(input)) - out).abs())
                    .fold(0.0, f64::max);
                if *other == activation {
                    assert!(gap < tolerance, "{activation:?}: off its formula by {gap}");
                } else {
                    assert!(gap > 0.05, "{activation:?} computes like {other:?}");
                }
            }
        }
    }

    #[test]
    fn dropout_drops_in_training_and_not_in_inference() {
        // Training runs on an autodiff device: half the hidden units are dropped,
        // anew each pass.
        let training = device().autodiff();
        let mlp = MlpConfig::new().with_dropout(0.5).init(&training);
        assert_eq!(mlp.num_params(), 55_050, "dropout adds no parameters");
        let input = Tensor::<2>::ones([4, 784], &training);
        let first = mlp
            .forward(input.clone())
            .try_into_vec_as::<f32>()
            .expect("floats");
        let second = mlp.forward(input).try_into_vec_as::<f32>().expect("floats");
        assert_ne!(first, second, "each training pass drops other units");
        // Inference, the same weights off autodiff: dropout is the identity.
        let inference = mlp.valid();
        let input = Tensor::<2>::ones([4, 784], &device());
        let once = inference
            .forward(input.clone())
            .try_into_vec_as::<f32>()
            .expect("floats");
        let again = inference
            .forward(input)
            .try_into_vec_as::<f32>()
            .expect("floats");
        assert_eq!(once, again, "inference drops nothing");
        assert_ne!(once, first, "training and inference differ");
    }

    #[test]
    fn sigmoid_hidden_layers_are_bounded() {
        let device = device();
        let mlp = MlpConfig::new()
            .with_hidden_sizes(vec![3])
            .with_activation(Activation::Sigmoid)
            .init(&device);
        let hidden = mlp
            .activation
            .apply(mlp.hidden[0].forward(Tensor::ones([1, 784], &device) * 100.0));
        let values = hidden.try_into_vec_as::<f32>().expect("floats");
        assert!(values.iter().all(|v| (0.0..=1.0).contains(v)), "{values:?}");
    }

    #[test]
    fn normalization_standardises_the_input() {
        let device = device();
        let unit = MlpConfig::new().init(&device);
        let mnist = MlpConfig::new()
            .with_normalization(Normalization::Mnist)
            .init(&device)
            .load_record(unit.clone().into_record());
        // A pixel at the mean becomes 0, so the MNIST-normalised network sees for it
        // what the plain one sees for a black pixel.
        let at_mean = Tensor::<2>::full([1, 784], 0.1307, &device);
        let black = Tensor::<2>::zeros([1, 784], &device);
        mnist
            .forward(at_mean)
            .into_data()
            .assert_approx_eq::<f32>(&unit.forward(black).into_data(), Default::default());
        let standard = Normalization::Standard {
            mean: 0.5,
            std: 0.25,
        };
        let json = MlpConfig::new().with_normalization(standard).to_string();
        let restored = MlpConfig::load_binary(json.as_bytes()).expect("round trip");
        assert_eq!(restored.normalization, standard, "{json}");
    }

    #[test]
    fn folding_the_normalization_keeps_the_function() {
        let device = device();
        for hidden_sizes in [vec![16, 8], vec![]] {
            let mlp = MlpConfig::new()
                .with_hidden_sizes(hidden_sizes)
                .with_normalization(Normalization::Mnist)
                .init(&device);
            let input = Tensor::<2>::random([4, 784], burn::tensor::Distribution::Default, &device);
            let expected = mlp.forward(input.clone()).into_data();
            let folded = mlp.with_normalization_folded();
            assert_eq!(folded.normalization, Normalization::Unit);
            folded
                .forward(input)
                .into_data()
                .assert_approx_eq::<f32>(&expected, burn::tensor::Tolerance::absolute(1e-4));
        }
    }

    #[test]
    fn config_round_trips_through_json() {
        let config = MlpConfig::new().with_hidden_sizes(vec![128, 32]);
        let restored = MlpConfig::load_binary(&config.to_string().into_bytes());
        assert_eq!(restored.map(|c| c.hidden_sizes).ok(), Some(vec![128, 32]));
    }
}
