//! A trained network handed to the kernels' plain-loop inference ([`PlainNetwork`]):
//! its weights read back from the device; an MLP's input standardisation folded into
//! its first layer, a CNN's batch norms into their convolutions.

use burn::nn::PaddingConfig2d;
use burn::nn::conv::Conv2d;
use burn::prelude::*;
use kernels::dense::{
    self, ConvBlockWeights, ConvNetwork, DenseNetwork, LayerWeights, PlainNetwork,
};

use crate::conv::ConvBlock;
use crate::{Activation, Network};

impl Network {
    /// The network as plain loops over its weights, or `None` for one those loops do
    /// not compute: one with GELU (whose `erf` the standard library lacks), or with a
    /// convolution or pooling other than the blocks' own (stride 1, even padding).
    pub fn dense(&self) -> Option<PlainNetwork> {
        if self.conv_blocks().is_empty() {
            let folded = self.clone().with_normalization_folded()?;
            return Some(PlainNetwork::Mlp(folded.head()?));
        }
        let blocks = self
            .conv_blocks()
            .iter()
            .map(ConvBlock::plain)
            .collect::<Option<Vec<_>>>()?;
        let standardization = self
            .normalization
            .per_channel(self.shape[0])
            .map(|standardization| (standardization.mean, standardization.std));
        ConvNetwork::new(self.shape, standardization, &blocks, self.head()?).map(PlainNetwork::Cnn)
    }

    /// The fully connected layers.
    fn head(&self) -> Option<DenseNetwork> {
        let layers = self
            .layers()
            .map(|linear| {
                let [inputs, outputs] = linear.weight.val().dims();
                Some(LayerWeights {
                    weight: values(linear.weight.val())?,
                    bias: match &linear.bias {
                        Some(bias) => Some(values(bias.val())?),
                        None => None,
                    },
                    inputs,
                    outputs,
                })
            })
            .collect::<Option<Vec<_>>>()?;
        DenseNetwork::new(&layers, plain(self.activation)?)
    }
}

impl ConvBlock {
    /// The block in eval mode with its batch norm folded in: with the norm's `scale =
    /// gamma / sqrt(running variance + epsilon)`, kernels times `scale` and bias
    /// `(bias - running mean) * scale + beta`, per output channel.
    fn plain(&self) -> Option<ConvBlockWeights> {
        let conv = &self.conv;
        let [out_channels, in_channels, kernel_size, kernel_width] = conv.weight.dims();
        let padding = symmetric_padding(conv)?;
        let plain_conv = conv.stride == [1, 1]
            && conv.dilation == [1, 1]
            && conv.groups == 1
            && kernel_size == kernel_width;
        let pool = self.square_pool()?;
        if !plain_conv {
            return None;
        }
        let device = conv.weight.device();
        let bias = match &conv.bias {
            Some(bias) => bias.val(),
            None => Tensor::zeros([out_channels], &device),
        };
        let (weight, bias) = match &self.norm {
            None => (conv.weight.val(), bias),
            Some(norm) => {
                let scale =
                    norm.gamma.val() / norm.running_var.value().add_scalar(norm.epsilon).sqrt();
                let weight = conv.weight.val() * scale.clone().reshape([out_channels, 1, 1, 1]);
                let bias = (bias - norm.running_mean.value()) * scale + norm.beta.val();
                (weight, bias)
            }
        };
        Some(ConvBlockWeights {
            weight: values(weight)?,
            bias: values(bias)?,
            in_channels,
            out_channels,
            kernel_size,
            padding,
            activation: plain(self.activation)?,
            pool,
        })
    }
}

/// The padding on every side, where it is the same on all four.
fn symmetric_padding(conv: &Conv2d) -> Option<usize> {
    match conv.padding {
        PaddingConfig2d::Valid => Some(0),
        PaddingConfig2d::Explicit(top, left, bottom, right)
            if top == left && top == bottom && top == right =>
        {
            Some(top)
        }
        _ => None,
    }
}

fn plain(activation: Activation) -> Option<dense::Activation> {
    match activation {
        Activation::Relu => Some(dense::Activation::Relu),
        Activation::Tanh => Some(dense::Activation::Tanh),
        Activation::Sigmoid => Some(dense::Activation::Sigmoid),
        Activation::Gelu => None,
    }
}

fn values<const D: usize>(tensor: Tensor<D>) -> Option<Vec<f32>> {
    tensor.into_data().try_to_vec::<f32>().ok()
}

#[cfg(test)]
mod tests {
    use burn::prelude::*;
    use burn::tensor::Distribution;

    use super::*;
    use crate::{ConvBlockConfig, NetworkConfig, NetworkKind, Normalization};

    /// Images with about four in five pixels zero, as in MNIST.
    fn images(batch: usize, size: usize, device: &Device) -> Tensor<2> {
        let values = Tensor::<2>::random([batch, size], Distribution::Uniform(0.0, 1.0), device);
        let keep = Tensor::<2>::random([batch, size], Distribution::Uniform(0.0, 1.0), device)
            .greater_elem(0.8)
            .float();
        values * keep
    }

    fn assert_close(dense: &[f32], burn: &[f32]) {
        assert_eq!(dense.len(), burn.len());
        for (d, b) in dense.iter().zip(burn) {
            let scale = b.abs().max(1.0);
            assert!((d - b).abs() <= 1e-5 * scale, "{d} against Burn's {b}");
        }
    }

    #[test]
    fn dense_inference_equals_burns_forward_on_random_networks() {
        let device = Device::flex();
        device.seed(11);
        let cases = [
            (vec![64, 64], Activation::Relu, Normalization::Unit, 1),
            (vec![64, 64], Activation::Relu, Normalization::Mnist, 1000),
            (vec![], Activation::Relu, Normalization::Unit, 3),
            (vec![128, 7, 33], Activation::Tanh, Normalization::Unit, 130),
            (vec![70], Activation::Relu, Normalization::Mnist, 33),
            // 304 outputs: whole and one-vector column blocks; 13 images: two tiles and
            // one image left over.
            (vec![300], Activation::Relu, Normalization::Mnist, 13),
            (
                vec![20],
                Activation::Sigmoid,
                Normalization::Standard {
                    mean: 0.2,
                    std: 0.5,
                },
                65,
            ),
        ];
        for (hidden, activation, normalization, batch) in cases {
            let network = NetworkConfig::new()
                .with_input_size(100)
                .with_num_classes(7)
                .with_hidden_sizes(hidden.clone())
                .with_activation(activation)
                .with_normalization(normalization)
                .init(&device);
            let dense = network.dense().expect("an MLP");
            let input = images(batch, 100, &device);
            let expected = network
                .forward(input.clone())
                .try_into_vec_as::<f32>()
                .expect("floats");
            let pixels = input.try_into_vec_as::<f32>().expect("floats");
            assert_close(&dense.forward(&pixels), &expected);
        }
    }

    #[test]
    fn cnn_inference_with_batch_norms_folded_equals_burns_forward() {
        let device = Device::flex();
        device.seed(5);
        let block = |channels, kernel_size, padding, pool| {
            ConvBlockConfig::new(channels)
                .with_kernel_size(kernel_size)
                .with_padding(padding)
                .with_batch_norm(true)
                .with_pool(pool)
        };
        // A grey square image, and a colour one wider than high.
        for shape in [None, Some([3, 14, 22])] {
            let features = shape.map_or(400, |shape: [usize; 3]| shape.iter().product());
            let config = NetworkConfig::new()
                .with_kind(NetworkKind::Cnn)
                .with_input_size(features)
                .with_input_shape(shape)
                .with_conv(vec![
                    block(6, 5, 2, 2),
                    block(11, 3, 0, 0),
                    block(9, 3, 1, 3),
                ])
                .with_hidden_sizes(vec![30])
                .with_dropout(0.2)
                .with_normalization(Normalization::Mnist);
            // Training passes move the norms' running statistics off their start (0
            // and 1), so that folding them in is tested.
            let training = device.clone().autodiff();
            let network = config.init(&training);
            for _ in 0..3 {
                let input = images(16, features, &training)
                    .mul_scalar(3.0)
                    .add_scalar(0.5);
                let _ = network.forward(input);
            }
            let network = network.valid();
            let plain = network.dense().expect("a CNN of plain blocks");
            for batch in [1, 9, 40] {
                let input = images(batch, features, &device);
                let expected = network
                    .forward(input.clone())
                    .try_into_vec_as::<f32>()
                    .expect("floats");
                let pixels = input.try_into_vec_as::<f32>().expect("floats");
                assert_close(&plain.forward(&pixels), &expected);
            }
        }
    }

    #[test]
    fn networks_the_loops_do_not_compute_are_refused() {
        let device = Device::flex();
        let gelu = NetworkConfig::new()
            .with_activation(Activation::Gelu)
            .init(&device);
        assert!(gelu.dense().is_none());
        let gelu_blocks = NetworkConfig::new()
            .with_kind(NetworkKind::Cnn)
            .with_conv(vec![ConvBlockConfig {
                activation: Activation::Gelu,
                ..ConvBlockConfig::new(4).with_pool(2)
            }])
            .init(&device);
        assert!(gelu_blocks.dense().is_none());
    }
}
