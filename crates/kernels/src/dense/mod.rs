//! An MLP's inference as plain loops over its weights on the CPU: each layer's matrix
//! product, bias and activation in one pass, in the widest vectors the CPU has, with no
//! per-operation dispatch, no intermediate tensors, and the rows of zero inputs (most
//! of an MNIST digit's pixels, half of a ReLU layer's) skipped; every layer is computed
//! for a few images at a time. Batches are split over the cores. One image takes about
//! a microsecond (7-9 through Burn's tensors), and a batch of a thousand MNIST digits
//! goes at 2-2.5M images a second on two cores. A CNN's convolution blocks run before
//! such layers in [`ConvNetwork`].

use pulp::Simd;
use rayon::prelude::*;

mod convolutional;
mod nonzero;
mod sums;

pub use convolutional::{ConvBlockWeights, ConvNetwork};
use nonzero::{LIST_SLACK, list_nonzero};
use sums::sum_tile;

/// Each layer's outputs are padded with zeros to a multiple of the widest vector
/// (AVX-512's 16 floats), so that a row of weights is whole vectors for every
/// instruction set pulp may pick.
const PADDED_TO: usize = 16;

/// Vectors of outputs a tile sums together, for each of its images, in registers.
const BLOCK: usize = 4;

/// Images a thread takes through the network together, layer by layer: a multiple of
/// every tile's images.
const GROUP: usize = 12;

/// Images per task when a batch is split over the cores: enough to make a task's
/// scheduling cost small beside its work, few enough to share 1000 images evenly, and
/// whole groups.
const IMAGES_PER_TASK: usize = 3 * GROUP;

/// A trained network as plain loops: an MLP's layers, or a CNN's blocks before them.
#[derive(Debug, Clone)]
pub enum PlainNetwork {
    Mlp(DenseNetwork),
    Cnn(ConvNetwork),
}

impl PlainNetwork {
    /// Maps images to unnormalised class scores (see [`DenseNetwork::forward`] and
    /// [`ConvNetwork::forward`]).
    pub fn forward(&self, images: &[f32]) -> Vec<f32> {
        match self {
            Self::Mlp(network) => network.forward(images),
            Self::Cnn(network) => network.forward(images),
        }
    }
}

/// The logits of `images` (`[inputs, classes]` floats each), computed by `forward`
/// (images, their logits) on this thread for at most `per_task` images, else in tasks
/// of `per_task` images over rayon's threads.
fn split_over_cores(
    images: &[f32],
    [inputs, classes]: [usize; 2],
    per_task: usize,
    forward: impl Fn(&[f32], &mut [f32]) + Sync,
) -> Vec<f32> {
    let inputs = inputs.max(1);
    let mut logits = vec![0.0; images.len() / inputs * classes];
    if classes == 0 {
        return logits;
    }
    if images.len() <= per_task * inputs {
        forward(images, &mut logits);
    } else {
        images
            .par_chunks(per_task * inputs)
            .zip(logits.par_chunks_mut(per_task * classes))
            .for_each(|(images, logits)| forward(images, logits));
    }
    logits
}

/// The activation between two layers (none after the last).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    Relu,
    Tanh,
    Sigmoid,
}

/// One fully connected layer's parameters, laid out as Burn's `Linear` keeps them.
#[derive(Debug, Clone)]
pub struct LayerWeights {
    /// `[inputs, outputs]`, row-major.
    pub weight: Vec<f32>,
    /// `[outputs]`; `None` for a layer without bias.
    pub bias: Option<Vec<f32>>,
    pub inputs: usize,
    pub outputs: usize,
}

/// A stack of fully connected layers with one activation between them, ready to map
/// images to class scores.
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

/// One thread's buffers for a group's activations between layers, each image's
/// `widest` floats apart, and a list of nonzero inputs.
struct Scratch {
    current: Vec<f32>,
    next: Vec<f32>,
    nonzero: Vec<u32>,
}

impl DenseNetwork {
    /// The network of `layers`, applied in order with `activation` after each but the
    /// last; `None` when their sizes do not chain or a weight or bias is not as long
    /// as its layer's sizes say.
    pub fn new(layers: &[LayerWeights], activation: Activation) -> Option<Self> {
        let chained = layers
            .windows(2)
            .all(|pair| pair[0].outputs == pair[1].inputs);
        let sized = layers.iter().all(|layer| {
            layer.weight.len() == layer.inputs * layer.outputs
                && layer.bias.as_ref().is_none_or(|b| b.len() == layer.outputs)
        });
        (chained && sized).then(|| Self {
            layers: layers.iter().map(DenseLayer::padded).collect(),
            activation,
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

    /// Maps images to unnormalised class scores, as the layers would through Burn. A batch
    /// larger than a task is split over rayon's threads; a smaller one runs on this
    /// thread, so that serving one image never waits for another thread.
    ///
    /// # Shapes
    /// - `images`: `[batch * input_size]`, row-major
    /// - returns: `[batch * num_classes]`, row-major
    pub fn forward(&self, images: &[f32]) -> Vec<f32> {
        let sizes = [self.input_size(), self.num_classes()];
        split_over_cores(images, sizes, IMAGES_PER_TASK, |images, logits| {
            self.forward_on_this_thread(images, logits)
        })
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

    /// Image `image`'s first `floats` outputs, as vectors.
    #[inline(always)]
    fn of<S: Simd>(&mut self, image: usize, floats: usize) -> &mut [S::f32s] {
        S::as_mut_simd_f32s(&mut self.values[image * self.stride..][..floats]).0
    }
}

impl DenseLayer {
    fn padded(layer: &LayerWeights) -> Self {
        let LayerWeights {
            inputs, outputs, ..
        } = *layer;
        let stride = outputs.div_ceil(PADDED_TO) * PADDED_TO;
        let mut padded_weight = vec![0.0; inputs * stride];
        if outputs > 0 {
            for (padded, row) in padded_weight
                .chunks_mut(stride)
                .zip(layer.weight.chunks(outputs))
            {
                padded[..outputs].copy_from_slice(row);
            }
        }
        let mut padded_bias = vec![0.0; stride];
        if let Some(bias) = &layer.bias {
            padded_bias[..outputs].copy_from_slice(bias);
        }
        Self {
            inputs,
            outputs,
            stride,
            weight: padded_weight,
            bias: padded_bias,
        }
    }

    /// Input `row`'s weights, as vectors.
    #[inline(always)]
    fn row<S: Simd>(&self, row: usize) -> &[S::f32s] {
        S::as_simd_f32s(&self.weight[row * self.stride..][..self.stride]).0
    }

    /// `output = input W + b` for each of a group's `count` images, in tiles; `nonzero`
    /// has room for every input and [`LIST_SLACK`] more.
    #[inline(always)]
    fn apply<S: Simd>(
        &self,
        simd: S,
        input: Activations<'_>,
        count: usize,
        nonzero: &mut [u32],
        mut output: Outputs<'_>,
    ) {
        // AVX2 has 16 registers: a tile of two images' 4 x 8 floats fills half, six
        // images' would spill. AVX-512 and NEON have 32: six images' 4 x 16 (4 x 4)
        // floats take 24. The images left over go one by one in the same order of
        // sums, so that an image's scores do not depend on the batch it came in.
        let tiled = match S::F32_LANES {
            8 => self.apply_tiles::<S, 2>(simd, input, 0..count, nonzero, &mut output),
            _ => self.apply_tiles::<S, 6>(simd, input, 0..count, nonzero, &mut output),
        };
        self.apply_tiles::<S, 1>(simd, input, tiled..count, nonzero, &mut output);
    }

    /// `output = input W + b` for a group's `images` in whole tiles of `R`, and where
    /// the tiles end. A tile sums the rows where any of its images has a nonzero input,
    /// each row read once for all of them, its `R` images' [`BLOCK`] vectors of outputs
    /// in registers: weights that miss the L1 cache are read from L2 once per tile
    /// rather than once per image, each vector of weights feeds `R` multiply-adds, and
    /// the listing of nonzero inputs and the loop's overhead are paid once per tile.
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
                    output.of::<S>(first + i, self.stride)[start..start + BLOCK]
                        .copy_from_slice(sums);
                }
                start += BLOCK;
            }
            while start < vectors {
                let weights = |r| &self.row::<S>(r)[start..start + 1];
                let sums = sum_tile::<S, 1, R>(simd, &xs, rows, &bias[start..], weights);
                for (i, sums) in sums.iter().enumerate() {
                    output.of::<S>(first + i, self.stride)[start] = sums[0];
                }
                start += 1;
            }
        }
        end
    }
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
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A layer of `inputs` x `outputs` with weights and bias spread over [-1, 1].
    fn layer(inputs: usize, outputs: usize, seed: usize) -> LayerWeights {
        let value = |i: usize| ((i * 7919 + seed * 104_729) % 2001) as f32 / 1000.0 - 1.0;
        LayerWeights {
            weight: (0..inputs * outputs).map(value).collect(),
            bias: Some((0..outputs).map(|i| value(i + 13)).collect()),
            inputs,
            outputs,
        }
    }

    #[test]
    fn a_batch_split_over_threads_and_tiles_gives_each_image_the_scores_it_gets_alone() {
        let layers = [layer(50, 200, 1), layer(200, 20, 2), layer(20, 10, 3)];
        let network = DenseNetwork::new(&layers, Activation::Relu).expect("chained layers");
        // Four in five pixels zero, as in MNIST.
        let pixels: Vec<f32> = (0..(IMAGES_PER_TASK * 3 + 5) * 50)
            .map(|i| {
                if i % 5 == 0 {
                    (i % 97) as f32 / 97.0
                } else {
                    0.0
                }
            })
            .collect();
        let alone: Vec<f32> = pixels
            .chunks(50)
            .flat_map(|image| network.forward(image))
            .collect();
        assert_eq!(network.forward(&pixels), alone);
    }

    #[test]
    fn layers_whose_sizes_do_not_chain_or_fit_are_refused() {
        let activation = Activation::Relu;
        assert!(DenseNetwork::new(&[layer(4, 3, 0), layer(2, 1, 0)], activation).is_none());
        let mut short = layer(4, 3, 0);
        short.weight.pop();
        assert!(DenseNetwork::new(&[short], activation).is_none());
        let mut no_bias = layer(4, 3, 0);
        no_bias.bias = None;
        assert!(DenseNetwork::new(&[no_bias], activation).is_some());
    }
}
