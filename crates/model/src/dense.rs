//! An MLP's inference as plain loops over its weights on the CPU: each layer's matrix
//! product, bias and activation in one pass, in the widest vectors the CPU has, with no
//! per-operation dispatch, no intermediate tensors, and the rows of zero inputs (most
//! of an MNIST digit's pixels, half of a ReLU layer's) skipped; a layer too large for
//! the L1 cache is computed for a few images at a time. Batches are split over the
//! cores. One image takes about a microsecond (7-9 through Burn's tensors), and a
//! batch of a thousand MNIST digits goes at 1.7-2.3M images a second on two cores.

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

/// A layer whose weights take more bytes than this no longer stays in the L1 cache
/// (32-48 KiB) from one image to the next, and is computed a tile of images at a time
/// (see [`DenseLayer::apply_tiles`]).
const ROWS_IN_CACHE: usize = 32 * 1024;

/// Images a thread takes through the network together, layer by layer: a multiple of
/// every tile's images.
const GROUP: usize = 12;

/// Images per task when a batch is split over the cores: enough to make a task's
/// scheduling cost small beside its work, few enough to share 1000 images evenly, and
/// whole groups.
const IMAGES_PER_TASK: usize = 3 * GROUP;

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
    /// Whether its weights outgrow the L1 cache, so that it is computed in tiles.
    tiled: bool,
    /// `[inputs, stride]`, row-major (Burn's `Linear` layout), zeros past `outputs`.
    weight: Vec<f32>,
    /// `[stride]`; zeros for a layer without bias and past `outputs`.
    bias: Vec<f32>,
}

/// One thread's buffers for a group's activations between layers, each image's
/// `widest` floats apart, and a list of nonzero inputs.
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

    /// The widest layer's padded outputs: how far apart a group's images' activations
    /// lie in [`Scratch`].
    fn widest(&self) -> usize {
        self.layers.iter().map(|l| l.stride).max().unwrap_or(0)
    }

    fn forward_on_this_thread(&self, images: &[f32], logits: &mut [f32]) {
        let widest = self.widest();
        let group = GROUP.min(images.len() / self.input_size().max(1));
        let scratch = Scratch {
            current: vec![0.0; group * widest],
            next: vec![0.0; group * widest],
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
        let widest = network.widest();
        let last = network.layers.len().saturating_sub(1);
        for (images, logits) in images
            .chunks(GROUP * input_size)
            .zip(logits.chunks_mut(GROUP * classes))
        {
            let count = images.len() / input_size;
            let Scratch {
                current,
                next,
                nonzero,
            } = &mut buffers;
            for (index, layer) in network.layers.iter().enumerate() {
                let input = match index {
                    0 => Activations::new(images, input_size),
                    _ => Activations::new(current, widest),
                };
                let output = Outputs::new(next, widest);
                layer.apply(simd, input, count, nonzero, output);
                if index < last {
                    for output in next.chunks_mut(widest).take(count) {
                        network
                            .activation
                            .apply_in_place(&mut output[..layer.outputs]);
                    }
                }
                std::mem::swap(current, next);
            }
            for (out, scores) in logits.chunks_mut(classes).zip(current.chunks(widest)) {
                out.copy_from_slice(&scores[..classes]);
            }
        }
    }
}

/// A group's inputs to a layer: image `i`'s are `values[i * stride..]`.
#[derive(Clone, Copy)]
struct Activations<'a> {
    values: &'a [f32],
    stride: usize,
}

impl<'a> Activations<'a> {
    fn new(values: &'a [f32], stride: usize) -> Self {
        Self { values, stride }
    }

    #[inline(always)]
    fn of(self, image: usize, inputs: usize) -> &'a [f32] {
        &self.values[image * self.stride..][..inputs]
    }
}

/// A group's outputs of a layer: image `i`'s are `values[i * stride..]`.
struct Outputs<'a> {
    values: &'a mut [f32],
    stride: usize,
}

impl<'a> Outputs<'a> {
    fn new(values: &'a mut [f32], stride: usize) -> Self {
        Self { values, stride }
    }

    #[inline(always)]
    fn of<S: Simd>(&mut self, image: usize, vectors: usize) -> &mut [S::f32s] {
        let floats = vectors * S::F32_LANES;
        S::as_mut_simd_f32s(&mut self.values[image * self.stride..][..floats]).0
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
            tiled: inputs * stride * size_of::<f32>() > ROWS_IN_CACHE,
            weight: padded_weight,
            bias: padded_bias,
        }
    }

    /// Input `row`'s weights, as vectors.
    #[inline(always)]
    fn row<S: Simd>(&self, row: usize) -> &[S::f32s] {
        S::as_simd_f32s(&self.weight[row * self.stride..][..self.stride]).0
    }

    /// `output = input W + b` for each of a group's `count` images, summing the rows of
    /// `W` whose input is nonzero; `nonzero` has room for every input and
    /// [`LIST_SLACK`] more.
    #[inline(always)]
    fn apply<S: Simd>(
        &self,
        simd: S,
        input: Activations<'_>,
        count: usize,
        nonzero: &mut [u32],
        mut output: Outputs<'_>,
    ) {
        if self.tiled {
            // AVX2 has 16 registers: a tile of two images' 4 x 8 floats fills half, six
            // images' would spill. AVX-512 and NEON have 32: six images' 4 x 16 (4 x 4)
            // floats take 24. The images left over go one by one in the same order of
            // sums, so that an image's scores do not depend on the batch it came in.
            let tiled = match S::F32_LANES {
                8 => self.apply_tiles::<S, 2>(simd, input, 0..count, nonzero, &mut output),
                _ => self.apply_tiles::<S, 6>(simd, input, 0..count, nonzero, &mut output),
            };
            self.apply_tiles::<S, 1>(simd, input, tiled..count, nonzero, &mut output);
            return;
        }
        let vectors = self.stride / S::F32_LANES;
        for image in 0..count {
            let x = input.of(image, self.inputs);
            let found = list_nonzero(&[x], nonzero);
            let rows = &nonzero[..found];
            let out = output.of::<S>(image, vectors);
            let (bias, _) = S::as_simd_f32s(&self.bias);
            let mut start = 0;
            while start + BLOCK <= vectors {
                let weights = |r| &self.row::<S>(r)[start..start + BLOCK];
                let sums = sum_rows::<S, BLOCK, PARTIALS>(simd, x, rows, &bias[start..], weights);
                out[start..start + BLOCK].copy_from_slice(&sums);
                start += BLOCK;
            }
            while start < vectors {
                let weights = |r| &self.row::<S>(r)[start..start + 1];
                let sums = sum_rows::<S, 1, BLOCK>(simd, x, rows, &bias[start..], weights);
                out[start] = sums[0];
                start += 1;
            }
        }
    }

    /// `output = input W + b` for a group's `images` in whole tiles of `R`, and where
    /// the tiles end. A tile sums the rows where any of its images has a nonzero input,
    /// each row read once for all of them, its `R` images' [`BLOCK`] vectors of outputs
    /// in registers: weights that miss the L1 cache are read from L2 once per tile
    /// rather than once per image, and each vector of weights feeds `R` multiply-adds.
    /// An image's zero inputs add exact zeros, so its scores are the same in any tile.
    #[inline(always)]
    fn apply_tiles<S: Simd, const R: usize>(
        &self,
        simd: S,
        input: Activations<'_>,
        images: std::ops::Range<usize>,
        nonzero: &mut [u32],
        output: &mut Outputs<'_>,
    ) -> usize {
        let vectors = self.stride / S::F32_LANES;
        let (bias, _) = S::as_simd_f32s(&self.bias);
        let end = images.start + images.len() / R * R;
        for first in (images.start..end).step_by(R) {
            let xs: [&[f32]; R] = std::array::from_fn(|i| input.of(first + i, self.inputs));
            let found = list_nonzero(&xs, nonzero);
            let rows = &nonzero[..found];
            let mut start = 0;
            while start + BLOCK <= vectors {
                let weights = |r| &self.row::<S>(r)[start..start + BLOCK];
                let sums = sum_tile::<S, BLOCK, R>(simd, &xs, rows, &bias[start..], weights);
                for (i, sums) in sums.iter().enumerate() {
                    output.of::<S>(first + i, vectors)[start..start + BLOCK].copy_from_slice(sums);
                }
                start += BLOCK;
            }
            while start < vectors {
                let weights = |r| &self.row::<S>(r)[start..start + 1];
                let sums = sum_tile::<S, 1, R>(simd, &xs, rows, &bias[start..], weights);
                for (i, sums) in sums.iter().enumerate() {
                    output.of::<S>(first + i, vectors)[start] = sums[0];
                }
                start += 1;
            }
        }
        end
    }
}

/// `bias[..W]` plus `input[row]` times each of `rows` of the weights (`weights(row)`,
/// `W` vectors), summed in `W` registers for each of `P` interleaved partial sums
/// (`W * P` independent multiply-add chains), added up at the end.
#[inline(always)]
fn sum_rows<'w, S: Simd, const W: usize, const P: usize>(
    simd: S,
    input: &[f32],
    rows: &[u32],
    bias: &[S::f32s],
    weights: impl Fn(usize) -> &'w [S::f32s],
) -> [S::f32s; W] {
    let mut sums = [[simd.splat_f32s(0.0); W]; P];
    sums[0].copy_from_slice(&bias[..W]);
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
    first[0]
}

/// For each of `R` images, `bias[..W]` plus its `inputs[i][row]` times each of `rows`
/// of the weights (`weights(row)`, `W` vectors): `R * W` independent multiply-add
/// chains, each row's weights loaded once for all of them.
#[inline(always)]
fn sum_tile<'w, S: Simd, const W: usize, const R: usize>(
    simd: S,
    inputs: &[&[f32]; R],
    rows: &[u32],
    bias: &[S::f32s],
    weights: impl Fn(usize) -> &'w [S::f32s],
) -> [[S::f32s; W]; R] {
    let mut first = [simd.splat_f32s(0.0); W];
    first.copy_from_slice(&bias[..W]);
    let mut sums = [first; R];
    // Cut to one length, so that a row's bounds are checked once for all images.
    let length = inputs.iter().map(|input| input.len()).min().unwrap_or(0);
    let inputs: [&[f32]; R] = std::array::from_fn(|i| &inputs[i][..length]);
    for &row in rows {
        let row = row as usize;
        let mut w = [simd.splat_f32s(0.0); W];
        w.copy_from_slice(&weights(row)[..W]);
        for (image, input) in sums.iter_mut().zip(inputs) {
            let x = simd.splat_f32s(input[row]);
            for (sum, &w) in image.iter_mut().zip(&w) {
                *sum = simd.mul_add_e_f32s(x, w, *sum);
            }
        }
    }
    sums
}

/// Writes the positions where any of `images` is not zero into `nonzero` and says how
/// many there are; `nonzero` has room for all of them and [`LIST_SLACK`] more. Without
/// a branch per value, which mispredicts on a digit's strokes: with AVX-512, sixteen
/// at a time, a compare's mask compressing their positions into one store; elsewhere
/// one by one. (Both a per-value loop and a loop over each mask's bits were about half
/// of an MNIST forward pass.)
#[inline(always)]
fn list_nonzero<const N: usize>(images: &[&[f32]; N], nonzero: &mut [u32]) -> usize {
    let length = images.first().map_or(0, |image| image.len());
    #[cfg(target_arch = "x86_64")]
    if let Some(simd) = pulp::x86::V4::try_new() {
        return simd.vectorize(|| {
            let zero = simd.splat_f32x16(0.0);
            let sixteen = simd.splat_u32x16(16);
            let mut positions = pulp::u32x16(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
            let blocks = length / 16;
            let mut found = 0;
            for block in 0..blocks {
                let mask = images.iter().fold(0, |mask, image| {
                    let values: [f32; 16] = pulp::as_arrays::<16, f32>(image).0[block];
                    mask | !simd.cmp_eq_f32x16(pulp::cast(values), zero).0
                });
                let listed = simd
                    .avx512f
                    ._mm512_maskz_compress_epi32(mask, pulp::cast(positions));
                let listed: [u32; 16] = pulp::cast(listed);
                nonzero[found..found + 16].copy_from_slice(&listed);
                found += mask.count_ones() as usize;
                positions = simd.wrapping_add_u32x16(positions, sixteen);
            }
            found + list_nonzero_one_by_one(images, blocks * 16, &mut nonzero[found..])
        });
    }
    list_nonzero_one_by_one(images, 0, nonzero)
}

/// Room past the last input that [`list_nonzero`] may write to.
const LIST_SLACK: usize = 16;

/// [`list_nonzero`] from position `from` on, one position at a time.
#[inline(always)]
fn list_nonzero_one_by_one<const N: usize>(
    images: &[&[f32]; N],
    from: usize,
    nonzero: &mut [u32],
) -> usize {
    let length = images.first().map_or(0, |image| image.len());
    let mut found = 0;
    for position in from..length {
        nonzero[found] = position as u32;
        found += usize::from(images.iter().any(|image| image[position] != 0.0));
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
            // Tiled (100 x 304 floats of weights outgrow the L1 cache), with whole and
            // one-vector column blocks, and a group's images left over from its tiles.
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
    fn a_batch_split_over_threads_and_tiles_gives_each_image_the_scores_it_gets_alone() {
        let device = Device::flex();
        device.seed(5);
        let network = NetworkConfig::new()
            .with_input_size(50)
            // Tiled: 50 x 208 floats of weights outgrow the L1 cache.
            .with_hidden_sizes(vec![200, 20])
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
