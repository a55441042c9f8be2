//! An MLP's inference as plain loops over its weights on the CPU: each layer's matrix
//! product, bias and activation in one pass, in the widest vectors the CPU has, with no
//! per-operation dispatch, no intermediate tensors, and the rows of zero inputs (most
//! of an MNIST digit's pixels, half of a ReLU layer's) skipped. Batches are split over
//! the cores. One image takes about a microsecond (7-9 through Burn's tensors), and a
//! batch of a thousand goes at about twice the images a second of flex's blocked
//! matrix products.

use pulp::Simd;
use rayon::prelude::*;

use crate::{Activation, Network};

/// Each layer's outputs are padded with zeros to a multiple of the widest vector
/// (AVX-512's 16 floats), so that a row of weights is whole vectors for every
/// instruction set pulp may pick.
const PADDED_TO: usize = 16;

/// Vectors of outputs summed together over the nonzero inputs, each in [`PARTIALS`]
/// interleaved partial sums: eight independent multiply-add chains hide the latency
/// of each (with four, a 64-wide layer waited on them: 1.37M against 1.76M MNIST
/// images a second at batch 1000), and 64 floats of each partial stay in registers.
const BLOCK: usize = 4;
const PARTIALS: usize = 2;

/// Images per task when a batch is split over the cores: enough to make a task's
/// scheduling cost small beside its work, few enough to share 1000 images evenly.
const IMAGES_PER_TASK: usize = 32;

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
    /// `outputs` rounded up to [`PADDED_TO`].
    stride: usize,
    /// `[inputs, stride]`, row-major (Burn's `Linear` layout), zeros past `outputs`.
    weight: Vec<f32>,
    /// `[stride]`; zeros for a layer without bias and past `outputs`.
    bias: Vec<f32>,
}

/// One thread's buffers for the activations between layers.
struct Scratch {
    current: Vec<f32>,
    next: Vec<f32>,
    nonzero: Vec<u32>,
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
                Some(DenseLayer::padded(inputs, outputs, &weight, &bias))
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

    /// Maps images to unnormalised class scores, as [`Network::forward`] does. A batch
    /// larger than a task is split over rayon's threads; a smaller one runs on this
    /// thread, so that serving one image never waits for another thread.
    ///
    /// # Shapes
    /// - `images`: `[batch * input_size]`, row-major
    /// - returns: `[batch * num_classes]`, row-major
    pub fn forward(&self, images: &[f32]) -> Vec<f32> {
        let input_size = self.input_size().max(1);
        let classes = self.num_classes();
        let mut logits = vec![0.0; images.len() / input_size * classes];
        if classes == 0 {
            return logits;
        }
        if images.len() <= IMAGES_PER_TASK * input_size {
            self.forward_on_this_thread(images, &mut logits);
        } else {
            images
                .par_chunks(IMAGES_PER_TASK * input_size)
                .zip(logits.par_chunks_mut(IMAGES_PER_TASK * classes))
                .for_each(|(images, logits)| self.forward_on_this_thread(images, logits));
        }
        logits
    }

    fn forward_on_this_thread(&self, images: &[f32], logits: &mut [f32]) {
        let widest = self.layers.iter().map(|l| l.stride).max().unwrap_or(0);
        let scratch = Scratch {
            current: vec![0.0; widest],
            next: vec![0.0; widest],
            nonzero: vec![0; self.layers.iter().map(|l| l.inputs).max().unwrap_or(0) + LIST_SLACK],
        };
        pulp::Arch::new().dispatch(Forward {
            network: self,
            images,
            logits,
            scratch,
        });
    }
}

/// The loops over a run of images, compiled again for each instruction set pulp
/// detects at run time (inlined into its `#[target_feature]` functions).
struct Forward<'a> {
    network: &'a DenseNetwork,
    images: &'a [f32],
    logits: &'a mut [f32],
    scratch: Scratch,
}

impl pulp::WithSimd for Forward<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        let Self {
            network,
            images,
            logits,
            scratch: mut buffers,
        } = self;
        let input_size = network.input_size().max(1);
        let classes = network.num_classes();
        let last = network.layers.len().saturating_sub(1);
        for (image, out) in images.chunks(input_size).zip(logits.chunks_mut(classes)) {
            let Scratch {
                current,
                next,
                nonzero,
            } = &mut buffers;
            let mut input: &[f32] = image;
            for (index, layer) in network.layers.iter().enumerate() {
                let output = &mut next[..layer.stride];
                layer.apply(simd, input, nonzero, output);
                if index < last {
                    network
                        .activation
                        .apply_in_place(&mut output[..layer.outputs]);
                }
                std::mem::swap(current, next);
                input = &current[..layer.outputs];
            }
            out.copy_from_slice(input);
        }
    }
}

impl DenseLayer {
    fn padded(inputs: usize, outputs: usize, weight: &[f32], bias: &[f32]) -> Self {
        let stride = outputs.div_ceil(PADDED_TO) * PADDED_TO;
        let mut padded_weight = vec![0.0; inputs * stride];
        if outputs > 0 {
            for (padded, row) in padded_weight.chunks_mut(stride).zip(weight.chunks(outputs)) {
                padded[..outputs].copy_from_slice(row);
            }
        }
        let mut padded_bias = vec![0.0; stride];
        padded_bias[..outputs].copy_from_slice(bias);
        Self {
            inputs,
            outputs,
            stride,
            weight: padded_weight,
            bias: padded_bias,
        }
    }

    /// `output = input W + b` for one image (`output` is `stride` long), summing the
    /// rows of `W` whose input is nonzero.
    #[inline(always)]
    fn apply<S: Simd>(&self, simd: S, input: &[f32], nonzero: &mut [u32], output: &mut [f32]) {
        let found = list_nonzero(&input[..self.inputs], nonzero);
        let rows = &nonzero[..found];
        let (output, _) = S::as_mut_simd_f32s(output);
        let vectors = output.len();
        let mut start = 0;
        while start + BLOCK <= vectors {
            self.sum_rows::<S, BLOCK, PARTIALS>(simd, input, rows, start, output);
            start += BLOCK;
        }
        while start < vectors {
            self.sum_rows::<S, 1, BLOCK>(simd, input, rows, start, output);
            start += 1;
        }
    }

    /// Vectors `start..start + W` of the output: the bias plus `input[row]` times each
    /// of `rows` of the weights, summed in `W` registers for each of `P` interleaved
    /// partial sums (`W * P` independent multiply-add chains), added up at the end.
    #[inline(always)]
    fn sum_rows<S: Simd, const W: usize, const P: usize>(
        &self,
        simd: S,
        input: &[f32],
        rows: &[u32],
        start: usize,
        output: &mut [S::f32s],
    ) {
        let weights = |row: usize| {
            let (weights, _) =
                S::as_simd_f32s(&self.weight[row * self.stride..(row + 1) * self.stride]);
            &weights[start..start + W]
        };
        let (bias, _) = S::as_simd_f32s(&self.bias);
        let mut sums = [[simd.splat_f32s(0.0); W]; P];
        sums[0].copy_from_slice(&bias[start..start + W]);
        let groups = rows.chunks_exact(P);
        let rest = groups.remainder();
        for group in groups {
            for (partial, &row) in sums.iter_mut().zip(group) {
                let row = row as usize;
                let x = simd.splat_f32s(input[row]);
                for (sum, &w) in partial.iter_mut().zip(weights(row)) {
                    *sum = simd.mul_add_e_f32s(x, w, *sum);
                }
            }
        }
        for &row in rest {
            let row = row as usize;
            let x = simd.splat_f32s(input[row]);
            for (sum, &w) in sums[0].iter_mut().zip(weights(row)) {
                *sum = simd.mul_add_e_f32s(x, w, *sum);
            }
        }
        let (first, others) = sums.split_at_mut(1);
        for partial in others {
            for (sum, &other) in first[0].iter_mut().zip(partial.iter()) {
                *sum = simd.add_f32s(*sum, other);
            }
        }
        output[start..start + W].copy_from_slice(&first[0]);
    }
}

/// Writes the positions of `values` that are not zero into `nonzero` and says how
/// many there are; `nonzero` has room for all of them and [`LIST_SLACK`] more. Without
/// a branch per value, which mispredicts on a digit's strokes: with AVX-512, sixteen
/// at a time, a compare's mask compressing their positions into one store; elsewhere
/// one by one. (Both a per-value loop and a loop over each mask's bits were about half
/// of an MNIST forward pass.)
#[inline(always)]
fn list_nonzero(values: &[f32], nonzero: &mut [u32]) -> usize {
    #[cfg(target_arch = "x86_64")]
    if let Some(simd) = pulp::x86::V4::try_new() {
        return simd.vectorize(|| {
            let zero = simd.splat_f32x16(0.0);
            let sixteen = simd.splat_u32x16(16);
            let mut positions = pulp::u32x16(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
            let (blocks, rest) = pulp::as_arrays::<16, f32>(values);
            let mut found = 0;
            for &block in blocks {
                let mask = !simd.cmp_eq_f32x16(pulp::cast(block), zero).0;
                let listed = simd
                    .avx512f
                    ._mm512_maskz_compress_epi32(mask, pulp::cast(positions));
                let listed: [u32; 16] = pulp::cast(listed);
                nonzero[found..found + 16].copy_from_slice(&listed);
                found += mask.count_ones() as usize;
                positions = simd.wrapping_add_u32x16(positions, sixteen);
            }
            let offset = blocks.len() * 16;
            found + list_nonzero_one_by_one(rest, offset, &mut nonzero[found..])
        });
    }
    list_nonzero_one_by_one(values, 0, nonzero)
}

/// Room past the last input that [`list_nonzero`] may write to.
const LIST_SLACK: usize = 16;

#[inline(always)]
fn list_nonzero_one_by_one(values: &[f32], offset: usize, nonzero: &mut [u32]) -> usize {
    let mut found = 0;
    for (index, &x) in values.iter().enumerate() {
        nonzero[found] = (offset + index) as u32;
        found += usize::from(x != 0.0);
    }
    found
}

impl Activation {
    #[inline(always)]
    fn apply_in_place(self, values: &mut [f32]) {
        match self {
            Self::Relu => values.iter_mut().for_each(|x| *x = x.max(0.0)),
            Self::Tanh => values.iter_mut().for_each(|x| *x = x.tanh()),
            Self::Sigmoid => values
                .iter_mut()
                .for_each(|x| *x = 1.0 / (1.0 + (-*x).exp())),
            // Refused by `DenseNetwork::of`.
            Self::Gelu => {}
        }
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
    fn a_batch_split_over_threads_gives_each_image_the_scores_it_gets_alone() {
        let device = Device::flex();
        device.seed(5);
        let network = NetworkConfig::new()
            .with_input_size(50)
            .with_hidden_sizes(vec![40, 20])
            .init(&device);
        let dense = DenseNetwork::of(&network).expect("an MLP");
        let pixels = images(IMAGES_PER_TASK * 3 + 5, 50, &device)
            .try_into_vec_as::<f32>()
            .expect("floats");
        let alone: Vec<f32> = pixels
            .chunks(50)
            .flat_map(|image| dense.forward(image))
            .collect();
        assert_eq!(dense.forward(&pixels), alone);
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
