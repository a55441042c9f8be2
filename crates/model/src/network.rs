//! The classifier: its config (the kind, convolution blocks for a CNN, the fully
//! connected widths, activation, dropout, input standardisation) and the Burn module
//! it builds.

use burn::module::Param;
use burn::nn::{Dropout, DropoutConfig, Linear, LinearConfig};
use burn::prelude::*;
use kernels::linear::linear_forward;
use serde::{Deserialize, Serialize};

use crate::activation::Activation;
use crate::conv::{ConvBlock, ConvBlockConfig};
use crate::normalization::Normalization;

/// The side of the square image `input_size` pixels make, row by row; `None` when
/// `input_size` is not a square.
pub fn square_side(input_size: usize) -> Option<usize> {
    let side = (input_size as f64).sqrt().round() as usize;
    (side * side == input_size).then_some(side)
}

/// What kind of network it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NetworkKind {
    /// Fully connected layers over the flattened image: the tutorial's network.
    #[default]
    Mlp,
    /// Convolution blocks over the image (`input_shape`, by default a 1-channel
    /// square), then fully connected layers over the flattened feature maps.
    Cnn,
}

/// Why a config describes no network that can be built: the dotted key within the
/// model config, and the reason.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{key} {reason}")]
pub struct NetworkError {
    pub key: String,
    pub reason: String,
}

/// Shape of the network. The defaults are the PyTorch tutorial's 784-64-64-10
/// multilayer perceptron.
#[derive(Config, Debug)]
pub struct NetworkConfig {
    /// `"mlp"`, or `"cnn"` for convolution blocks (`conv`) before the fully connected
    /// layers.
    #[config(default = "NetworkKind::Mlp")]
    pub kind: NetworkKind,
    /// Features per input row: 28 * 28 pixels for MNIST. Training sets it from the
    /// data's image size. A CNN sees them as a square image, row by row.
    #[config(default = 784)]
    pub input_size: usize,
    /// The image the `input_size` features are, as `[channels, height, width]`, its
    /// channels one plane after another, each row by row. Training sets it for data of
    /// pictures; without it the input is a 1-channel square, as MNIST's.
    #[config(default = "None")]
    pub input_shape: Option<[usize; 3]>,
    /// A CNN's convolution blocks, in order; an MLP has none.
    #[config(default = "Vec::new()")]
    pub conv: Vec<ConvBlockConfig>,
    /// Width of each hidden fully connected layer, in order; each is followed by the
    /// activation.
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
    /// std), `{"standard": {"mean": m, "std": s}}`, `"dataset"` (each channel's, from
    /// the training split) or `{"channels": {"mean": [..], "std": [..]}}`.
    #[config(default = "Normalization::Unit")]
    pub normalization: Normalization,
}

/// Convolution blocks (none in an MLP), then fully connected layers with a
/// non-linearity (and optionally dropout) between them; the last layer yields logits.
#[derive(Module, Debug)]
pub struct Network {
    /// Empty in an MLP, so that MLPs keep the record layout they always had.
    conv: Vec<ConvBlock>,
    hidden: Vec<Linear>,
    output: Linear,
    /// Absent without dropout, so that such models keep the record layout of the
    /// plain network.
    dropout: Option<Dropout>,
    #[module(skip)]
    pub(crate) activation: Activation,
    #[module(skip)]
    pub(crate) normalization: Normalization,
    /// The `[channels, height, width]` of the input: the image the convolutions see,
    /// or for an MLP the image its features are (`[1, 1, input_size]` if none).
    #[module(skip)]
    pub(crate) shape: [usize; 3],
}

impl NetworkConfig {
    /// The layers from input to logits: `784-64-64-10` for an MLP;
    /// `conv32k3bn-conv32k3bn+pool2-6272-128-10` for a CNN, the number after the
    /// blocks being the features the fully connected layers take.
    pub fn architecture(&self) -> String {
        self.conv
            .iter()
            .map(ConvBlockConfig::label)
            .chain(self.widths().iter().map(usize::to_string))
            .collect::<Vec<_>>()
            .join("-")
    }

    /// Parameters of the network: each layer's weights and biases, and the batch
    /// norms' scales and shifts.
    pub fn num_params(&self) -> usize {
        let channels = std::iter::once(self.image_shape().map_or(1, |[c, _, _]| c))
            .chain(self.conv.iter().map(|block| block.channels));
        let conv: usize = self
            .conv
            .iter()
            .zip(channels)
            .map(|(block, in_channels)| block.num_params(in_channels))
            .sum();
        conv + self
            .widths()
            .windows(2)
            .map(|w| w[0] * w[1] + w[1])
            .sum::<usize>()
    }

    /// The side of the square image a CNN sees, if `input_size` is a square.
    pub fn image_side(&self) -> Option<usize> {
        square_side(self.input_size)
    }

    /// The `[channels, height, width]` of the input: `input_shape` when set (if it
    /// holds `input_size` features), else a 1-channel square; `None` if neither fits.
    pub fn image_shape(&self) -> Option<[usize; 3]> {
        match self.input_shape {
            Some(shape) => (shape.iter().product::<usize>() == self.input_size).then_some(shape),
            None => self.image_side().map(|side| [1, side, side]),
        }
    }

    /// Every convolution block's output `[channels, height, width]`, in order, or the
    /// first key that makes the network impossible.
    pub fn feature_maps(&self) -> Result<Vec<[usize; 3]>, NetworkError> {
        let error = |key: &str, reason: String| NetworkError {
            key: key.to_string(),
            reason,
        };
        match (self.kind, self.conv.is_empty()) {
            (NetworkKind::Mlp, false) => {
                return Err(error(
                    "conv",
                    "is set, but kind is \"mlp\"; set kind to \"cnn\" or drop conv".into(),
                ));
            }
            (NetworkKind::Cnn, true) => {
                return Err(error(
                    "conv",
                    "is empty; a \"cnn\" needs at least one block, e.g. [{\"channels\": 32}]"
                        .into(),
                ));
            }
            (NetworkKind::Mlp, true) => return Ok(Vec::new()),
            (NetworkKind::Cnn, false) => {}
        }
        let mut shape = self.image_shape().ok_or_else(|| match self.input_shape {
            Some(shape) => error(
                "input_shape",
                format!(
                    "is {shape:?}, which is not input_size {} features",
                    self.input_size
                ),
            ),
            None => error(
                "input_size",
                format!(
                    "is {}, not a square image, which a \"cnn\" needs without input_shape",
                    self.input_size
                ),
            ),
        })?;
        self.conv
            .iter()
            .enumerate()
            .map(|(index, block)| {
                shape = block
                    .output_shape(shape)
                    .map_err(|e| error(&format!("conv[{index}].{}", e.key), e.reason))?;
                Ok(shape)
            })
            .collect()
    }

    /// The features the fully connected layers take: the input size of an MLP, the
    /// flattened maps of the last block of a CNN (0 if the blocks are impossible).
    pub fn features(&self) -> usize {
        if self.conv.is_empty() {
            return self.input_size;
        }
        self.feature_maps()
            .ok()
            .and_then(|maps| maps.last().map(|[c, h, w]| c * h * w))
            .unwrap_or(0)
    }

    /// Every fully connected layer's width: the features, the hidden layers, the
    /// classes.
    pub fn widths(&self) -> Vec<usize> {
        std::iter::once(self.features())
            .chain(self.hidden_sizes.iter().copied())
            .chain(std::iter::once(self.num_classes))
            .collect()
    }

    /// The layers with parameters in forward order, each as its module path in the
    /// [`Network`] record and its name in the equivalent PyTorch module (the
    /// tutorial's `Net` for an MLP, see the README for a CNN): `("conv.0.conv",
    /// "conv1")`, `("conv.0.norm", "bn1")`, ..., `("hidden.0", "fc1")`, ...,
    /// `("output", "fcN")`. Exchanging weights with PyTorch renames along these.
    pub fn layer_names(&self) -> Vec<(String, String)> {
        let mut names = Vec::new();
        for (index, block) in self.conv.iter().enumerate() {
            names.push((format!("conv.{index}.conv"), format!("conv{}", index + 1)));
            if block.batch_norm {
                names.push((format!("conv.{index}.norm"), format!("bn{}", index + 1)));
            }
        }
        let layers = self.hidden_sizes.len() + 1;
        names.extend((0..layers).map(|index| {
            let burn = if index + 1 < layers {
                format!("hidden.{index}")
            } else {
                "output".to_string()
            };
            (burn, format!("fc{}", index + 1))
        }));
        names
    }

    /// Builds the network with freshly initialised weights on `device`. The config
    /// must pass [`NetworkConfig::feature_maps`].
    pub fn init(&self, device: &Device) -> Network {
        let shape = match self.conv.is_empty() {
            true => self.image_shape().unwrap_or([1, 1, self.input_size]),
            false => self.image_shape().unwrap_or([0; 3]),
        };
        let channels =
            std::iter::once(shape[0]).chain(self.conv.iter().map(|block| block.channels));
        let conv = self
            .conv
            .iter()
            .zip(channels)
            .map(|(block, in_channels)| block.init(in_channels, device))
            .collect();
        let widths = self.widths();
        // The input and the classes are always there: the last pair is the output layer.
        let (last, features) = (widths.len() - 1, widths.len() - 2);
        let hidden = widths[..last]
            .windows(2)
            .map(|pair| LinearConfig::new(pair[0], pair[1]).init(device))
            .collect();
        Network {
            conv,
            hidden,
            output: LinearConfig::new(widths[features], widths[last]).init(device),
            dropout: (self.dropout > 0.0).then(|| DropoutConfig::new(self.dropout).init()),
            activation: self.activation,
            normalization: self.normalization.clone(),
            shape,
        }
    }
}

impl Network {
    /// Maps a batch of flattened images to unnormalised class scores (logits);
    /// apply softmax only when probabilities are wanted.
    ///
    /// # Shapes
    /// - `images`: `[batch, input_size]`
    /// - returns: `[batch, num_classes]`
    pub fn forward(&self, images: Tensor<2>) -> Tensor<2> {
        let images = self.standardized(images);
        let features = match self.conv.is_empty() {
            true => images,
            false => {
                let [batch, _] = images.dims();
                // [batch, channels * height * width] -> [batch, channels, height, width]
                let [channels, height, width] = self.shape;
                let maps = images.reshape([batch, channels, height, width]);
                let maps = self.conv.iter().fold(maps, |x, block| block.forward(x));
                // [batch, channels, height, width] -> [batch, channels * height * width]
                maps.flatten(1, 3)
            }
        };
        let features = self.hidden.iter().fold(features, |x, layer| {
            // [batch, in] -> [batch, width]
            let x = match self.activation {
                Activation::Relu => linear_forward(layer, x, true),
                activation => activation.apply(layer.forward(x)),
            };
            match &self.dropout {
                Some(dropout) => dropout.forward(x),
                None => x,
            }
        });
        // [batch, last width] -> [batch, num_classes]
        linear_forward(&self.output, features, false)
    }

    /// `images` as the first layer sees them: each channel's pixels less its mean, over
    /// its standard deviation.
    fn standardized(&self, images: Tensor<2>) -> Tensor<2> {
        let [channels, height, width] = self.shape;
        let Some(standardization) = self.normalization.per_channel(channels) else {
            return images;
        };
        if let Some((mean, std)) = standardization.uniform() {
            return images.sub_scalar(mean).div_scalar(std);
        }
        let (mean, std) = standardization.per_feature(height * width);
        let device = images.device();
        let row = |values: Vec<f32>| {
            let features = values.len();
            Tensor::<2>::from_data(TensorData::new(values, [1, features]), &device)
        };
        images.sub(row(mean)).div(row(std))
    }

    /// The same function with the input standardisation folded into the first layer,
    /// for consumers that feed pixels in [0, 1] straight to the first Linear layer (the
    /// tutorial's PyTorch `Net`): with `x'_i = (x_i - mean_i) / std_i` per input
    /// feature, `x' W + b = x (W_i / std_i) + (b - sum_i (mean_i / std_i) W_i)`. A CNN's
    /// first convolution pads its input with zeros, which would no longer be the mean,
    /// so a CNN with an input standardisation cannot be folded and is `None`.
    pub fn with_normalization_folded(mut self) -> Option<Self> {
        let [channels, height, width] = self.shape;
        let Some(standardization) = self.normalization.per_channel(channels) else {
            return Some(self);
        };
        if !self.conv.is_empty() {
            return None;
        }
        let first = match self.hidden.first_mut() {
            Some(layer) => layer,
            None => &mut self.output,
        };
        // [input_size, width]
        let weight = first.weight.val();
        let [inputs, outputs] = weight.dims();
        let device = weight.device();
        let (mean, std) = standardization.per_feature(height * width);
        let column = |values: Vec<f32>| {
            Tensor::<2>::from_data(TensorData::new(values, [inputs, 1]), &device)
        };
        let shift = column(mean.iter().zip(&std).map(|(m, s)| m / s).collect());
        // [input_size, width] -> [width]
        let shift = (weight.clone() * shift).sum_dim(0).reshape([outputs]);
        first.bias = Some(Param::from_tensor(match first.bias.take() {
            Some(bias) => bias.val() - shift,
            None => shift.neg(),
        }));
        first.weight = Param::from_tensor(weight / column(std));
        self.normalization = Normalization::Unit;
        Some(self)
    }

    /// The Linear layers in forward order: the hidden ones, then the output.
    pub fn layers(&self) -> impl Iterator<Item = &Linear> {
        self.hidden.iter().chain(std::iter::once(&self.output))
    }

    /// The convolution blocks in forward order; none in an MLP.
    pub fn conv_blocks(&self) -> &[ConvBlock] {
        &self.conv
    }

    /// The weights of the first layer, which sees the pixels, one column per unit: an
    /// MLP's first Linear layer (each column a template over the whole image), a
    /// CNN's first convolution (each column a filter, a `kernel_size` square), with
    /// the side of the square a column shows.
    ///
    /// # Shapes
    /// - returns: `[side * side, units]`, `side` being the image's or the kernel's
    pub fn input_weights(&self) -> (Tensor<2>, usize) {
        match self.conv.first() {
            Some(block) => {
                // A filter over several input channels (RGB) shows as its mean over them.
                // [channels, in, k, k] -> [channels, 1, k, k] -> [channels, k * k] -> [k * k, channels]
                let [channels, _, side, _] = block.conv.weight.dims();
                let filters = block
                    .conv
                    .weight
                    .val()
                    .mean_dim(1)
                    .reshape([channels, side * side]);
                (filters.transpose(), side)
            }
            None => {
                let weight = self.hidden.first().unwrap_or(&self.output).weight.val();
                let pixels = weight.dims()[0];
                (weight, (pixels as f64).sqrt().round() as usize)
            }
        }
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
        let config = NetworkConfig::new().with_hidden_sizes(vec![32, 16, 8]);
        assert_eq!(config.architecture(), "784-32-16-8-10");
        let names = config.layer_names();
        assert_eq!(names.len(), 4);
        assert_eq!(names[0], ("hidden.0".to_string(), "fc1".to_string()));
        assert_eq!(names[3], ("output".to_string(), "fc4".to_string()));
        let linear = NetworkConfig::new().with_hidden_sizes(vec![]);
        assert_eq!(linear.architecture(), "784-10");
        assert_eq!(linear.layer_names(), [("output".into(), "fc1".into())]);
    }

    #[test]
    fn default_is_the_tutorial_network_with_55050_parameters() {
        let mlp = NetworkConfig::new().init(&device());
        // 784*64+64 + 64*64+64 + 64*10+10
        assert_eq!(mlp.num_params(), 55_050);
        assert_eq!(
            NetworkConfig::new().num_params(),
            55_050,
            "counted without building it"
        );
    }

    #[test]
    fn forward_maps_a_batch_to_one_logit_per_class() {
        let device = device();
        let mlp = NetworkConfig::new().init(&device);
        let logits = mlp.forward(Tensor::zeros([3, 784], &device));
        assert_eq!(logits.dims(), [3, 10]);
    }

    #[test]
    fn hidden_sizes_are_honoured() {
        let device = device();
        let config = NetworkConfig::new()
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
        let mlp = NetworkConfig::new().with_hidden_sizes(vec![]).init(&device);
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
        // Each activation, its definition, and the tolerance it is computed within.
        type Case<'a> = (Activation, &'a dyn Fn(f64) -> f64, f64);
        let functions: [Case; 4] = [
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
            let mut mlp = NetworkConfig::new()
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
        let mlp = NetworkConfig::new().with_dropout(0.5).init(&training);
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
        let mlp = NetworkConfig::new()
            .with_hidden_sizes(vec![3])
            .with_activation(Activation::Sigmoid)
            .init(&device);
        let hidden = mlp
            .activation
            .apply(mlp.hidden[0].forward(Tensor::<2>::ones([1, 784], &device) * 100.0));
        let values = hidden.try_into_vec_as::<f32>().expect("floats");
        assert!(values.iter().all(|v| (0.0..=1.0).contains(v)), "{values:?}");
    }

    #[test]
    fn normalization_standardises_the_input() {
        let device = device();
        let unit = NetworkConfig::new().init(&device);
        let mnist = NetworkConfig::new()
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
        let json = NetworkConfig::new()
            .with_normalization(standard.clone())
            .to_string();
        let restored = NetworkConfig::load_binary(json.as_bytes()).expect("round trip");
        assert_eq!(restored.normalization, standard, "{json}");
    }

    #[test]
    fn each_channel_is_standardised_by_its_own_statistics() {
        let device = device();
        let shape = [3, 2, 2];
        let config = NetworkConfig::new()
            .with_input_size(12)
            .with_input_shape(Some(shape));
        let unit = config.init(&device);
        let channels = Normalization::Channels {
            mean: vec![0.25, 0.5, 0.75],
            std: vec![0.5, 0.25, 0.125],
        };
        let standardised = config
            .clone()
            .with_normalization(channels)
            .init(&device)
            .load_record(unit.clone().into_record());
        // Each channel at its own mean is what the plain network sees as black.
        let at_means: Vec<f32> = [0.25f32, 0.5, 0.75]
            .iter()
            .flat_map(|&mean| [mean; 4])
            .collect();
        let at_means = Tensor::<2>::from_data(TensorData::new(at_means, [1, 12]), &device);
        let black = Tensor::<2>::zeros([1, 12], &device);
        let expected = unit.forward(black).into_data();
        standardised
            .forward(at_means.clone())
            .into_data()
            .assert_approx_eq::<f32>(&expected, Default::default());
        // A step of one standard deviation in the last channel alone is a step of one
        // in the plain network's last four inputs.
        let step: Vec<f32> = [0.0f32, 0.0, 0.125].iter().flat_map(|&s| [s; 4]).collect();
        let stepped = at_means + Tensor::<2>::from_data(TensorData::new(step, [1, 12]), &device);
        let ones: Vec<f32> = [0.0f32, 0.0, 1.0].iter().flat_map(|&s| [s; 4]).collect();
        let ones = Tensor::<2>::from_data(TensorData::new(ones, [1, 12]), &device);
        let expected = unit.forward(ones).into_data();
        standardised
            .clone()
            .forward(stepped.clone())
            .into_data()
            .assert_approx_eq::<f32>(&expected, Default::default());
        let folded = standardised
            .with_normalization_folded()
            .expect("an MLP folds");
        folded
            .forward(stepped)
            .into_data()
            .assert_approx_eq::<f32>(&expected, burn::tensor::Tolerance::absolute(1e-5));
    }

    #[test]
    fn folding_the_normalization_keeps_the_function() {
        let device = device();
        for hidden_sizes in [vec![16, 8], vec![]] {
            let mlp = NetworkConfig::new()
                .with_hidden_sizes(hidden_sizes)
                .with_normalization(Normalization::Mnist)
                .init(&device);
            let input = Tensor::<2>::random([4, 784], burn::tensor::Distribution::Default, &device);
            let expected = mlp.forward(input.clone()).into_data();
            let folded = mlp.with_normalization_folded().expect("an MLP folds");
            assert_eq!(folded.normalization, Normalization::Unit);
            folded
                .forward(input)
                .into_data()
                .assert_approx_eq::<f32>(&expected, burn::tensor::Tolerance::absolute(1e-4));
        }
    }

    #[test]
    fn a_cnn_folds_no_standardisation_into_its_padded_convolution() {
        let device = device();
        let unit = cnn().init(&device);
        assert!(
            unit.with_normalization_folded().is_some(),
            "nothing to fold"
        );
        let mnist = cnn().with_normalization(Normalization::Mnist).init(&device);
        assert!(mnist.with_normalization_folded().is_none());
    }

    #[test]
    fn config_round_trips_through_json() {
        let config = NetworkConfig::new().with_hidden_sizes(vec![128, 32]);
        let restored = NetworkConfig::load_binary(&config.to_string().into_bytes());
        assert_eq!(restored.map(|c| c.hidden_sizes).ok(), Some(vec![128, 32]));
    }

    fn cnn() -> NetworkConfig {
        NetworkConfig::new()
            .with_kind(NetworkKind::Cnn)
            .with_conv(vec![
                ConvBlockConfig::new(4).with_batch_norm(true).with_pool(2),
                ConvBlockConfig::new(8)
                    .with_kernel_size(5)
                    .with_padding(0)
                    .with_pool(2),
            ])
            .with_hidden_sizes(vec![16])
    }

    #[test]
    fn a_cnn_maps_flattened_images_to_logits_through_its_blocks() {
        let device = device();
        let config = cnn();
        // 28 -> conv 28 -> pool 14 -> conv 10 -> pool 5: 8 x 5 x 5 features.
        assert_eq!(config.feature_maps(), Ok(vec![[4, 14, 14], [8, 5, 5]]));
        assert_eq!(config.widths(), [200, 16, 10]);
        assert_eq!(
            config.architecture(),
            "conv4k3bn+pool2-conv8k5+pool2-200-16-10"
        );
        let network = config.init(&device);
        // conv1 36 weights + batch norm 8, conv2 800 + 8 bias, fc 200*16+16, 16*10+10.
        assert_eq!(config.num_params(), 36 + 8 + 800 + 8 + 3216 + 170);
        // Burn also counts the batch norm's running mean and variance.
        assert_eq!(network.num_params(), config.num_params() + 2 * 4);
        let logits = network.forward(Tensor::zeros([3, 784], &device));
        assert_eq!(logits.dims(), [3, 10]);
        let (filters, side) = network.input_weights();
        assert_eq!((filters.dims(), side), ([9, 4], 3));
        let names: Vec<String> = config
            .layer_names()
            .into_iter()
            .map(|(_, torch)| torch)
            .collect();
        assert_eq!(names, ["conv1", "bn1", "conv2", "fc1", "fc2"]);
    }

    #[test]
    fn a_cnn_takes_colour_pictures_of_any_shape_as_planes() {
        let device = device();
        // 3 x 12 x 20 -> conv 12 x 20 -> pool 6 x 10 -> conv 2 x 6 -> pool 1 x 3.
        let config = cnn()
            .with_input_size(3 * 12 * 20)
            .with_input_shape(Some([3, 12, 20]));
        assert_eq!(config.feature_maps(), Ok(vec![[4, 6, 10], [8, 1, 3]]));
        // conv1 now has 3 input channels: 4 * 3 * 9 weights.
        assert_eq!(
            config.num_params(),
            108 + 8 + 800 + 8 + (24 * 16 + 16) + 170
        );
        let network = config.init(&device);
        let logits = network.forward(Tensor::zeros([2, 720], &device));
        assert_eq!(logits.dims(), [2, 10]);
        let (filters, side) = network.input_weights();
        assert_eq!((filters.dims(), side), ([9, 4], 3));
        // A shape that is not the input size is named, not guessed around.
        let wrong = config.with_input_shape(Some([3, 12, 21]));
        let error = wrong.feature_maps().expect_err("3 x 12 x 21 is not 720");
        assert_eq!(error.key, "input_shape");
    }

    #[test]
    fn impossible_networks_name_the_key() {
        let key = |config: NetworkConfig| config.feature_maps().map_err(|e| e.key);
        assert_eq!(key(cnn().with_conv(Vec::new())), Err("conv".to_string()));
        assert_eq!(
            key(cnn().with_kind(NetworkKind::Mlp)),
            Err("conv".to_string())
        );
        assert_eq!(
            key(cnn().with_input_size(780)),
            Err("input_size".to_string())
        );
        let too_deep = cnn().with_conv(vec![
            ConvBlockConfig::new(4).with_pool(4),
            ConvBlockConfig::new(4).with_kernel_size(9).with_padding(0),
        ]);
        let error = too_deep
            .feature_maps()
            .expect_err("a 9x9 kernel on 7x7 maps");
        assert_eq!(error.key, "conv[1].kernel_size");
        assert!(error.to_string().contains("7x7"), "{error}");
        assert_eq!(key(NetworkConfig::new()), Ok(Vec::new()));
    }

    #[test]
    fn a_cnn_config_round_trips_and_refuses_unknown_block_keys() {
        let config = cnn();
        let restored = NetworkConfig::load_binary(config.to_string().as_bytes()).expect("json");
        assert_eq!(restored.conv, config.conv);
        let block: Result<ConvBlockConfig, _> =
            serde_json::from_str(r#"{"channels": 4, "kernel": 3}"#);
        assert!(
            block
                .expect_err("a misspelt key")
                .to_string()
                .contains("kernel")
        );
        let block: ConvBlockConfig = serde_json::from_str(r#"{"channels": 4}"#).expect("defaults");
        assert_eq!(block, ConvBlockConfig::new(4));
    }
}
