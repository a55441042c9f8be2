//! An MLP's inference as plain loops over its weights on the CPU: each layer's matrix
//! product, bias and activation in one pass, with no per-operation dispatch, no
//! intermediate tensors, and the rows of zero inputs (most of an MNIST digit's
//! pixels) skipped. A one-image prediction takes about 2.5 us, where the tensor path
//! takes 7-9; for large batches a tensor backend's blocked matrix products win.

use crate::{Activation, Network};

/// The fully connected layers of a [`Network`] without convolutions, with its input
/// standardisation folded into the first layer.
#[derive(Debug, Clone)]
pub struct DenseNetwork {
    layers: Vec<DenseLayer>,
    activation: Activation,
}

#[derive(Debug, Clone)]
struct DenseLayer {
    inputs: usize,
    outputs: usize,
    /// `[inputs, outputs]`, row-major, as Burn's `Linear` holds it.
    weight: Vec<f32>,
    /// `[outputs]`; zeros for a layer without bias.
    bias: Vec<f32>,
}

impl DenseNetwork {
    /// The network's layers read back from its device, or `None` for a network these
    /// loops do not compute: one with convolutions, or with GELU (whose `erf` the
    /// standard library lacks).
    pub fn of(network: &Network) -> Option<Self> {
        if !network.conv_blocks().is_empty() || network.activation == Activation::Gelu {
            return None;
        }
        let folded = network.clone().with_normalization_folded()?;
        let layers = folded
            .layers()
            .map(|linear| {
                let [inputs, outputs] = linear.weight.val().dims();
                let weight = linear.weight.val().into_data().try_to_vec::<f32>().ok()?;
                let bias = match &linear.bias {
                    Some(bias) => bias.val().into_data().try_to_vec::<f32>().ok()?,
                    None => vec![0.0; outputs],
                };
                Some(DenseLayer {
                    inputs,
                    outputs,
                    weight,
                    bias,
                })
            })
            .collect::<Option<Vec<_>>>()?;
        Some(Self {
            layers,
            activation: network.activation,
        })
    }

    /// The features each image has.
    pub fn input_size(&self) -> usize {
        self.layers.first().map_or(0, |layer| layer.inputs)
    }

    /// The class scores each image gets.
    pub fn num_classes(&self) -> usize {
        self.layers.last().map_or(0, |layer| layer.outputs)
    }

    /// Maps images to unnormalised class scores, as [`Network::forward`] does, one
    /// image after the other on this thread.
    ///
    /// # Shapes
    /// - `images`: `[batch * input_size]`, row-major
    /// - returns: `[batch * num_classes]`, row-major
    pub fn forward(&self, images: &[f32]) -> Vec<f32> {
        let widest = self.layers.iter().map(|l| l.outputs).max().unwrap_or(0);
        let (mut current, mut next) = (vec![0.0; widest], vec![0.0; widest]);
        let mut nonzero = vec![0; self.layers.iter().map(|l| l.inputs).max().unwrap_or(0)];
        let input_size = self.input_size().max(1);
        let classes = self.num_classes();
        let mut logits = vec![0.0; images.len() / input_size * classes];
        let last = self.layers.len().saturating_sub(1);
        for (image, out) in images.chunks(input_size).zip(logits.chunks_mut(classes)) {
            let mut input: &[f32] = image;
            for (index, layer) in self.layers.iter().enumerate() {
                let output = &mut next[..layer.outputs];
                layer.apply(input, &mut nonzero, output);
                if index < last {
                    self.activation.apply_in_place(output);
                }
                std::mem::swap(&mut current, &mut next);
                input = &current[..layer.outputs];
            }
            out.copy_from_slice(input);
        }
        logits
    }
}

impl DenseLayer {
    /// `output = input W + b` for one image, row by row of `W`, skipping the rows of
    /// zero inputs. Those are found first without branching (`nonzero` has room for
    /// every input), as a branch per input mispredicts on a digit's strokes.
    fn apply(&self, input: &[f32], nonzero: &mut [u32], output: &mut [f32]) {
        let mut found = 0;
        for (index, &x) in input.iter().enumerate() {
            nonzero[found] = index as u32;
            found += usize::from(x != 0.0);
        }
        output.copy_from_slice(&self.bias);
        for &index in &nonzero[..found] {
            let index = index as usize;
            let x = input[index];
            let row = &self.weight[index * self.outputs..(index + 1) * self.outputs];
            for (out, &w) in output.iter_mut().zip(row) {
                *out += x * w;
            }
        }
    }
}

impl Activation {
    fn apply_in_place(self, values: &mut [f32]) {
        let f: fn(f32) -> f32 = match self {
            Self::Relu => |x| x.max(0.0),
            Self::Tanh => f32::tanh,
            Self::Sigmoid => |x| 1.0 / (1.0 + (-x).exp()),
            // Refused by `DenseNetwork::of`.
            Self::Gelu => |x| x,
        };
        values.iter_mut().for_each(|x| *x = f(*x));
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
            let dense = DenseNetwork::of(&network).expect("an MLP");
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
        assert!(DenseNetwork::of(&gelu).is_none());
        let cnn = NetworkConfig::new()
            .with_kind(NetworkKind::Cnn)
            .with_conv(vec![ConvBlockConfig::new(4).with_pool(2)])
            .init(&device);
        assert!(DenseNetwork::of(&cnn).is_none());
    }
}
