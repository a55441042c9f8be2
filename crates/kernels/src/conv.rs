//! A 2-d convolution with stride 1, no dilation and one group (the CNN's), forward and
//! backward: a Burn backend extension whose flex kernel convolves directly, image by
//! image on both cores, each output row as vectors of 16 columns for 8 output channels
//! at once, from a zero-padded copy of the image; the input's gradient is the same
//! convolution of the output's gradient with the flipped kernels, the weight's a sum of
//! row products. Flex instead writes every image's patches out (im2col, 25 times the
//! input), multiplies, and copies between layouts around each step. Other backends run
//! Burn's own ops; the values are those of Burn's `conv2d`.

use burn::backend::TensorMetadata;
use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, backend_extension};
use burn::nn::PaddingConfig2d;
use burn::nn::conv::Conv2d;
use burn::prelude::*;
use burn::tensor::ops::ConvOptions;

/// Zero padding before and after the rows, then the columns: `[(top, bottom), (left,
/// right)]`.
pub type Padding = [(usize, usize); 2];

fn options(padding: Padding) -> ConvOptions<2> {
    ConvOptions::new_with_padding([1, 1], padding, [1, 1], 1)
}

/// `x` convolved with `weight`, plus `bias`.
#[backend_extension(
    Flex: cfg(feature = "flex"),
    NdArray: cfg(feature = "ndarray"),
    Cube: cfg(any(feature = "wgpu", feature = "cuda")),
    Autodiff,
)]
pub trait Conv2dOps: Backend {
    /// Burn's `conv2d` where no kernel is written. Returns `[batch, out_channels,
    /// height + top + bottom - kernel_height + 1, width + left + right - kernel_width
    /// + 1]`.
    fn conv2d_stride1(
        x: FloatTensor<Self>,      // [batch, in_channels, height, width]
        weight: FloatTensor<Self>, // [out_channels, in_channels, kernel_height, kernel_width]
        bias: FloatTensor<Self>,   // [out_channels]
        padding: Padding,
    ) -> FloatTensor<Self> {
        Self::conv2d(x, weight, Some(bias), options(padding))
    }
}

/// The backward half of [`Conv2dOps::conv2d_stride1`] on a backend without autodiff.
pub trait Conv2dBackward: Backend {
    /// The gradients of `x` (when `x_needed`), of the weight and of the bias, given the
    /// output's gradient: Burn's `conv2d_*_backward` where no kernel is written.
    fn conv2d_stride1_backward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        padding: Padding,
        x_needed: bool,
    ) -> (
        Option<FloatTensor<Self>>,
        FloatTensor<Self>,
        FloatTensor<Self>,
    ) {
        composed_backward::<Self>(x, weight, grad, padding, x_needed)
    }
}

fn composed_backward<B: Backend>(
    x: FloatTensor<B>,
    weight: FloatTensor<B>,
    grad: FloatTensor<B>,
    padding: Padding,
    x_needed: bool,
) -> (Option<FloatTensor<B>>, FloatTensor<B>, FloatTensor<B>) {
    let out_channels = weight.shape()[0];
    // Summed over the batch and the positions: [1, out_channels, 1, 1] -> [out_channels].
    let sums = [0, 2, 3]
        .into_iter()
        .fold(grad.clone(), |sum, dim| B::float_sum_dim(sum, dim));
    let grad_bias = B::float_reshape(sums, [out_channels].into());
    let grad_x = x_needed
        .then(|| B::conv2d_x_backward(x.clone(), weight.clone(), grad.clone(), options(padding)));
    let grad_weight = B::conv2d_weight_backward(x, weight, grad, options(padding));
    (grad_x, grad_weight, grad_bias)
}

/// `conv.forward(maps)`, through [`Conv2dOps`] for a convolution it covers (stride 1, no
/// dilation, one group, explicit padding). A convolution without a bias (one followed
/// by a batch norm) adds zeros, which changes no value and trains nothing.
///
/// # Shapes
/// - `maps`: `[batch, in_channels, height, width]`
/// - returns: `[batch, out_channels, height', width']`
pub fn conv2d_forward(conv: &Conv2d, maps: Tensor<4>) -> Tensor<4> {
    let covered = conv.stride == [1, 1] && conv.dilation == [1, 1] && conv.groups == 1;
    let PaddingConfig2d::Explicit(top, left, bottom, right) = conv.padding else {
        return conv.forward(maps);
    };
    if !covered {
        return conv.forward(maps);
    }
    let weight = conv.weight.val();
    let bias = match &conv.bias {
        Some(bias) => bias.val(),
        None => Tensor::zeros([weight.dims()[0]], &weight.device()),
    };
    Tensor::from_dispatch(<Dispatch as Conv2dOps>::conv2d_stride1(
        maps.into_dispatch(),
        weight.into_dispatch(),
        bias.into_dispatch(),
        [(top, bottom), (left, right)],
    ))
}

impl<B: Conv2dOps + Conv2dBackward, C: CheckpointStrategy> Conv2dOps for Autodiff<B, C> {
    fn conv2d_stride1(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        padding: Padding,
    ) -> FloatTensor<Self> {
        /// What the backward pass needs: `x` and the weight, and whether `x` wants a
        /// gradient (an image batch does not; the maps of a later block do).
        #[derive(Debug)]
        struct Conv2dGrad;

        impl<B: Conv2dBackward> Backward<B, 3> for Conv2dGrad {
            type State = (NodeId, NodeId, Padding);

            fn backward(
                self,
                ops: Ops<Self::State, 3>,
                grads: &mut Gradients,
                checkpointer: &mut Checkpointer,
            ) {
                let [node_x, node_weight, node_bias] = ops.parents;
                let grad = grads.consume::<B>(&ops.node);
                let (x, weight, padding) = ops.state;
                let x = checkpointer.retrieve_node_output::<FloatTensor<B>>(x);
                let weight = checkpointer.retrieve_node_output::<FloatTensor<B>>(weight);
                let (grad_x, grad_weight, grad_bias) =
                    B::conv2d_stride1_backward(x, weight, grad, padding, node_x.is_some());
                if let (Some(node), Some(grad_x)) = (node_x, grad_x) {
                    grads.register::<B>(node.id, grad_x);
                }
                if let Some(node) = node_weight {
                    grads.register::<B>(node.id, grad_weight);
                }
                if let Some(node) = node_bias {
                    grads.register::<B>(node.id, grad_bias);
                }
            }
        }

        match Conv2dGrad
            .prepare::<C>([x.node(), weight.node(), bias.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(mut prep) => {
                let state = (prep.checkpoint(&x), prep.checkpoint(&weight), padding);
                let output = B::conv2d_stride1(
                    x.into_primitive(),
                    weight.into_primitive(),
                    bias.into_primitive(),
                    padding,
                );
                prep.finish(state, output)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::conv2d_stride1(
                x.into_primitive(),
                weight.into_primitive(),
                bias.into_primitive(),
                padding,
            )),
        }
    }
}

#[cfg(feature = "ndarray")]
impl Conv2dOps for burn::backend::NdArray {}
#[cfg(feature = "ndarray")]
impl Conv2dBackward for burn::backend::NdArray {}

#[cfg(any(feature = "wgpu", feature = "cuda"))]
impl Conv2dOps for burn::backend::Cube {}
#[cfg(any(feature = "wgpu", feature = "cuda"))]
impl Conv2dBackward for burn::backend::Cube {}

/// Output channels computed together: one vector accumulator each.
const BLOCK: usize = 8;
/// Output columns per vector: 16 f32 lanes, one AVX-512 register.
const LANES: usize = 16;
/// The parts of a batch whose weight gradients are summed apart (on as many threads
/// as there are cores), then together.
const WEIGHT_GRAD_PARTS: usize = 8;

/// The sizes of one convolution.
#[derive(Debug, Clone, Copy)]
struct Geometry {
    in_channels: usize,
    height: usize,
    width: usize,
    out_channels: usize,
    kernel: [usize; 2],
    padding: Padding,
}

impl Geometry {
    fn output(&self) -> [usize; 2] {
        let [(top, bottom), (left, right)] = self.padding;
        [
            (self.height + top + bottom + 1).saturating_sub(self.kernel[0]),
            (self.width + left + right + 1).saturating_sub(self.kernel[1]),
        ]
    }

    /// The convolution whose output is this one's input gradient: of the output's
    /// gradient with the flipped kernels, padded by the kernel's reach less the
    /// padding; `None` where a padding is wider than that (then the input gradient is
    /// left to Burn).
    fn transposed(&self) -> Option<Self> {
        let [out_height, out_width] = self.output();
        let [(top, bottom), (left, right)] = self.padding;
        let [reach_y, reach_x] = [self.kernel[0] - 1, self.kernel[1] - 1];
        Some(Self {
            in_channels: self.out_channels,
            height: out_height,
            width: out_width,
            out_channels: self.in_channels,
            kernel: self.kernel,
            padding: [
                (reach_y.checked_sub(top)?, reach_y.checked_sub(bottom)?),
                (reach_x.checked_sub(left)?, reach_x.checked_sub(right)?),
            ],
        })
    }

    /// The width of a padded row: the input with its padding, and enough zeros beyond
    /// for whole-vector loads at every kernel column of the last block of outputs.
    fn pitch(&self) -> usize {
        let [(_, _), (left, right)] = self.padding;
        let [_, out_width] = self.output();
        (self.width + left + right).max(out_width.div_ceil(LANES) * LANES + self.kernel[1] - 1)
    }

    /// Rows of a padded plane.
    fn padded_rows(&self) -> usize {
        let [(top, bottom), _] = self.padding;
        self.height + top + bottom
    }

    fn kernel_size(&self) -> usize {
        self.kernel[0] * self.kernel[1]
    }
}

/// One image (`[in_channels, height, width]`) in zero-padded planes of
/// [`Geometry::pitch`] columns.
fn padded(image: &[f32], g: &Geometry) -> Vec<f32> {
    let [(top, _), (left, _)] = g.padding;
    let (pitch, rows) = (g.pitch(), g.padded_rows());
    let mut planes = vec![0.0f32; g.in_channels * rows * pitch];
    for (plane, channel) in planes
        .chunks_exact_mut(rows * pitch)
        .zip(image.chunks_exact(g.height * g.width))
    {
        for (y, row) in channel.chunks_exact(g.width).enumerate() {
            plane[(top + y) * pitch + left..][..g.width].copy_from_slice(row);
        }
    }
    planes
}

/// The kernels as `[out block, in_channels, kernel row, kernel column, BLOCK]`, the
/// `BLOCK` output channels of a block side by side, zero past the last channel; with
/// `flipped`, each kernel turned half a turn and in and out channels swapped: the
/// kernels of [`Geometry::transposed`].
fn packed(weight: &[f32], g: &Geometry, flipped: bool) -> Vec<f32> {
    let [kernel_height, kernel_width] = g.kernel;
    let blocks = g.out_channels.div_ceil(BLOCK);
    let mut packed = vec![0.0f32; blocks * g.in_channels * g.kernel_size() * BLOCK];
    for o in 0..g.out_channels {
        for c in 0..g.in_channels {
            for i in 0..kernel_height {
                for j in 0..kernel_width {
                    // `weight` is [out, in, kh, kw] of the convolution as given.
                    let from = if flipped {
                        ((c * g.out_channels + o) * kernel_height + kernel_height - 1 - i)
                            * kernel_width
                            + kernel_width
                            - 1
                            - j
                    } else {
                        ((o * g.in_channels + c) * kernel_height + i) * kernel_width + j
                    };
                    let to = (((o / BLOCK * g.in_channels + c) * kernel_height + i) * kernel_width
                        + j)
                        * BLOCK
                        + o % BLOCK;
                    packed[to] = weight[from];
                }
            }
        }
    }
    packed
}

/// The vector of the first `S::F32_LANES` values of `values`, which holds at least
/// that many: a plain load (pulp's partial load checks the length at every call).
#[inline(always)]
fn load<S: pulp::Simd>(simd: S, values: &[f32]) -> S::f32s {
    match S::as_simd_f32s(values).0 {
        [vector, ..] => *vector,
        [] => simd.partial_load_f32s(values),
    }
}

/// Convolves one padded image with packed kernels into `out` (`[out_channels,
/// out_height, out_width]`), adding `bias` (one per output channel, or none): each
/// output row in vectors of columns, [`BLOCK`] output channels at a time, one fused
/// multiply-add per kernel tap and channel.
#[inline(always)]
fn convolve<S: pulp::Simd>(
    simd: S,
    planes: &[f32],
    kernels: &[f32],
    bias: Option<&[f32]>,
    g: &Geometry,
    out: &mut [f32],
) {
    let lanes = S::F32_LANES;
    let [kernel_height, kernel_width] = g.kernel;
    let [out_height, out_width] = g.output();
    let (pitch, rows) = (g.pitch(), g.padded_rows());
    let block_size = g.in_channels * g.kernel_size() * BLOCK;
    let mut stored = [0.0f32; LANES];
    for (block, weights) in kernels.chunks_exact(block_size).enumerate() {
        for y in 0..out_height {
            for x0 in (0..out_width).step_by(lanes) {
                let mut sums = [simd.splat_f32s(0.0); BLOCK];
                for c in 0..g.in_channels {
                    for i in 0..kernel_height {
                        let row = &planes[(c * rows + y + i) * pitch + x0..];
                        let taps = &weights[(c * kernel_height + i) * kernel_width * BLOCK..];
                        for j in 0..kernel_width {
                            let inputs = load(simd, &row[j..j + lanes]);
                            for (sum, &tap) in sums.iter_mut().zip(&taps[j * BLOCK..][..BLOCK]) {
                                *sum = simd.mul_add_e_f32s(simd.splat_f32s(tap), inputs, *sum);
                            }
                        }
                    }
                }
                let columns = lanes.min(out_width - x0);
                for (o, &sum) in sums.iter().enumerate() {
                    let channel = block * BLOCK + o;
                    if channel >= g.out_channels {
                        break;
                    }
                    simd.partial_store_f32s(&mut stored[..lanes], sum);
                    let shift = bias.map_or(0.0, |bias| bias[channel]);
                    let to = &mut out[(channel * out_height + y) * out_width + x0..][..columns];
                    for (value, s) in to.iter_mut().zip(&stored) {
                        *value = s + shift;
                    }
                }
            }
        }
    }
}

/// Adds one image's weight gradient to `grad` (`[out_channels, in_channels, kernel
/// row, kernel column]`): for each tap, the sum over output positions of the output's
/// gradient times the input under that tap.
#[inline(always)]
fn accumulate_weight_grad<S: pulp::Simd>(
    simd: S,
    planes: &[f32],
    out_grad: &[f32],
    g: &Geometry,
    grad: &mut [f32],
) {
    let lanes = S::F32_LANES;
    let [kernel_height, kernel_width] = g.kernel;
    let [out_height, out_width] = g.output();
    let (pitch, rows) = (g.pitch(), g.padded_rows());
    let blocks = g.out_channels.div_ceil(BLOCK);
    // The output's gradient in rows of whole vectors, zero past the last column and
    // the last channel, so that every lane and channel of a block can be multiplied.
    let row_width = out_width.div_ceil(LANES) * LANES;
    let mut grads = vec![0.0f32; blocks * BLOCK * out_height * row_width];
    for (o, map) in out_grad.chunks_exact(out_height * out_width).enumerate() {
        for (y, row) in map.chunks_exact(out_width).enumerate() {
            grads[(o * out_height + y) * row_width..][..out_width].copy_from_slice(row);
        }
    }
    let block_length = BLOCK * out_height * row_width;
    for (block, block_grads) in grads.chunks_exact(block_length).enumerate() {
        for c in 0..g.in_channels {
            for i in 0..kernel_height {
                for j in 0..kernel_width {
                    let mut sums = [simd.splat_f32s(0.0); BLOCK];
                    for y in 0..out_height {
                        let row = &planes[(c * rows + y + i) * pitch + j..];
                        for x0 in (0..row_width).step_by(lanes) {
                            let inputs = load(simd, &row[x0..x0 + lanes]);
                            for (o, sum) in sums.iter_mut().enumerate() {
                                let from = (o * out_height + y) * row_width + x0;
                                let g_row = load(simd, &block_grads[from..from + lanes]);
                                *sum = simd.mul_add_e_f32s(g_row, inputs, *sum);
                            }
                        }
                    }
                    for (o, &sum) in sums.iter().enumerate() {
                        let channel = block * BLOCK + o;
                        if channel < g.out_channels {
                            let tap = ((channel * g.in_channels + c) * kernel_height + i)
                                * kernel_width
                                + j;
                            grad[tap] += simd.reduce_sum_f32s(sum);
                        }
                    }
                }
            }
        }
    }
}

/// [`convolve`] as work for [`pulp`]'s dispatch, which compiles it for the CPU's
/// widest vectors.
struct Convolve<'a> {
    planes: &'a [f32],
    kernels: &'a [f32],
    bias: Option<&'a [f32]>,
    g: &'a Geometry,
    out: &'a mut [f32],
}

impl pulp::WithSimd for Convolve<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, simd: S) {
        convolve(simd, self.planes, self.kernels, self.bias, self.g, self.out);
    }
}

/// [`accumulate_weight_grad`] as work for [`pulp`]'s dispatch, as [`Convolve`].
struct WeightGrad<'a> {
    planes: &'a [f32],
    out_grad: &'a [f32],
    g: &'a Geometry,
    grad: &'a mut [f32],
}

impl pulp::WithSimd for WeightGrad<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, simd: S) {
        accumulate_weight_grad(simd, self.planes, self.out_grad, self.g, self.grad);
    }
}

#[cfg(feature = "flex")]
mod flex {
    use burn::backend::Flex;
    use burn::backend::flex::FlexTensor;
    use burn::backend::ops::ModuleOps;
    use burn::tensor::{DType, TensorData};
    use rayon::prelude::*;

    use super::*;
    use crate::flex::contiguous;

    /// The sizes of a convolution this kernel covers: f32 tensors of the right ranks
    /// and matching channels, and an output of at least one position. With the batch.
    fn geometry(
        x: &FlexTensor,
        weight: &FlexTensor,
        padding: Padding,
    ) -> Option<(usize, Geometry)> {
        if x.dtype() != DType::F32 || weight.dtype() != DType::F32 {
            return None;
        }
        if x.layout().shape().num_dims() != 4 || weight.layout().shape().num_dims() != 4 {
            return None;
        }
        let [batch, in_channels, height, width] = x.layout().shape().dims::<4>();
        let [out_channels, weight_in, kernel_height, kernel_width] =
            weight.layout().shape().dims::<4>();
        let g = Geometry {
            in_channels,
            height,
            width,
            out_channels,
            kernel: [kernel_height, kernel_width],
            padding,
        };
        let [out_height, out_width] = g.output();
        let fits = weight_in == in_channels
            && kernel_height > 0
            && kernel_width > 0
            && out_height > 0
            && out_width > 0
            && height + padding[0].0 + padding[0].1 >= kernel_height
            && width + padding[1].0 + padding[1].1 >= kernel_width;
        fits.then_some((batch, g))
    }

    fn values(tensor: &FlexTensor) -> &[f32] {
        tensor.as_slice::<f32>().unwrap_or_default()
    }

    /// Convolves every image of `x` (contiguous `[batch, ...]`) on both cores.
    fn convolve_batch(
        x: &[f32],
        kernels: &[f32],
        bias: Option<&[f32]>,
        batch: usize,
        g: &Geometry,
    ) -> Vec<f32> {
        let [out_height, out_width] = g.output();
        let out_size = g.out_channels * out_height * out_width;
        let mut out = vec![0.0f32; batch * out_size];
        let in_size = g.in_channels * g.height * g.width;
        out.par_chunks_mut(out_size.max(1))
            .zip(x.par_chunks(in_size.max(1)))
            .for_each(|(out, image)| {
                let planes = padded(image, g);
                pulp::Arch::new().dispatch(Convolve {
                    planes: &planes,
                    kernels,
                    bias,
                    g,
                    out,
                });
            });
        out
    }

    impl Conv2dOps for Flex {
        fn conv2d_stride1(
            x: FlexTensor,
            weight: FlexTensor,
            bias: FlexTensor,
            padding: Padding,
        ) -> FlexTensor {
            let Some((batch, g)) =
                geometry(&x, &weight, padding).filter(|_| bias.dtype() == DType::F32)
            else {
                return Flex::conv2d(x, weight, Some(bias), options(padding));
            };
            let (x, weight, bias) = (contiguous(x), contiguous(weight), contiguous(bias));
            let kernels = packed(values(&weight), &g, false);
            let out = convolve_batch(values(&x), &kernels, Some(values(&bias)), batch, &g);
            let [out_height, out_width] = g.output();
            FlexTensor::from_data(TensorData::new(
                out,
                [batch, g.out_channels, out_height, out_width],
            ))
        }
    }

    impl Conv2dBackward for Flex {
        fn conv2d_stride1_backward(
            x: FlexTensor,
            weight: FlexTensor,
            grad: FlexTensor,
            padding: Padding,
            x_needed: bool,
        ) -> (Option<FlexTensor>, FlexTensor, FlexTensor) {
            let covered = geometry(&x, &weight, padding)
                .filter(|_| grad.dtype() == DType::F32)
                .and_then(|(batch, g)| Some((batch, g, g.transposed()?)));
            let Some((batch, g, transposed)) = covered else {
                return composed_backward::<Flex>(x, weight, grad, padding, x_needed);
            };
            let [out_height, out_width] = g.output();
            let positions = out_height * out_width;
            let (x, weight, grad) = (contiguous(x), contiguous(weight), contiguous(grad));
            let grad_values = values(&grad);
            let mut grad_bias = vec![0.0f32; g.out_channels];
            for image in grad_values.chunks_exact((g.out_channels * positions).max(1)) {
                for (map, sum) in image.chunks_exact(positions.max(1)).zip(&mut grad_bias) {
                    *sum += map.iter().sum::<f32>();
                }
            }
            let grad_x = x_needed.then(|| {
                let kernels = packed(values(&weight), &transposed, true);
                let dx = convolve_batch(grad_values, &kernels, None, batch, &transposed);
                FlexTensor::from_data(TensorData::new(
                    dx,
                    [batch, g.in_channels, g.height, g.width],
                ))
            });
            let in_size = g.in_channels * g.height * g.width;
            let out_size = g.out_channels * positions;
            let taps = g.out_channels * g.in_channels * g.kernel_size();
            // Summed in a fixed order, in a fixed number of parts, whatever the threads:
            // a resumed run must add the same numbers in the same order as an
            // uninterrupted one.
            let part = batch.div_ceil(WEIGHT_GRAD_PARTS).max(1);
            let parts: Vec<Vec<f32>> = values(&x)
                .par_chunks((part * in_size).max(1))
                .zip(grad_values.par_chunks((part * out_size).max(1)))
                .map(|(images, out_grads)| {
                    let mut sum = vec![0.0f32; taps];
                    for (image, out_grad) in images
                        .chunks_exact(in_size.max(1))
                        .zip(out_grads.chunks_exact(out_size.max(1)))
                    {
                        let planes = padded(image, &g);
                        pulp::Arch::new().dispatch(WeightGrad {
                            planes: &planes,
                            out_grad,
                            g: &g,
                            grad: &mut sum,
                        });
                    }
                    sum
                })
                .collect();
            let grad_weight = parts.into_iter().fold(vec![0.0f32; taps], |mut sum, part| {
                sum.iter_mut().zip(part).for_each(|(s, p)| *s += p);
                sum
            });
            let grad_weight = FlexTensor::from_data(TensorData::new(
                grad_weight,
                [g.out_channels, g.in_channels, g.kernel[0], g.kernel[1]],
            ));
            let grad_bias = FlexTensor::from_data(TensorData::new(grad_bias, [g.out_channels]));
            (grad_x, grad_weight, grad_bias)
        }
    }
}
