//! A trained MLP handed to the kernels' plain-loop inference ([`DenseNetwork`]): its
//! weights read back from the device, its input standardisation folded in.

use kernels::dense::{self, DenseNetwork, LayerWeights};

use crate::{Activation, Network};

impl Network {
    /// The network as plain loops over its weights, or `None` for one those loops do
    /// not compute: one with convolutions, or with GELU (whose `erf` the standard
    /// library lacks).
    pub fn dense(&self) -> Option<DenseNetwork> {
        let activation = match self.activation {
            Activation::Relu => dense::Activation::Relu,
            Activation::Tanh => dense::Activation::Tanh,
            Activation::Sigmoid => dense::Activation::Sigmoid,
            Activation::Gelu => return None,
        };
        if !self.conv_blocks().is_empty() {
            return None;
        }
        let folded = self.clone().with_normalization_folded()?;
        let layers = folded
            .layers()
            .map(|linear| {
                let [inputs, outputs] = linear.weight.val().dims();
                Some(LayerWeights {
                    weight: linear.weight.val().into_data().try_to_vec::<f32>().ok()?,
                    bias: match &linear.bias {
                        Some(bias) => Some(bias.val().into_data().try_to_vec::<f32>().ok()?),
                        None => None,
                    },
                    inputs,
                    outputs,
                })
            })
            .collect::<Option<Vec<_>>>()?;
        DenseNetwork::new(&layers, activation)
    }
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
    fn networks_the_loops_do_not_compute_are_refused() {
        let device = Device::flex();
        let gelu = NetworkConfig::new()
            .with_activation(Activation::Gelu)
            .init(&device);
        assert!(gelu.dense().is_none());
        let cnn = NetworkConfig::new()
            .with_kind(NetworkKind::Cnn)
            .with_conv(vec![ConvBlockConfig::new(4).with_pool(2)])
            .init(&device);
        assert!(cnn.dense().is_none());
    }
}
