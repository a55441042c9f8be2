//! The direct convolution on plain slices: an image zero-padded once, kernels packed by
//! blocks of output channels, and the loops of the output and of the weight gradient,
//! compiled for the CPU's widest vectors through [`pulp`]. Training (flex) and a CNN's
//! plain-loop inference ([`crate::dense`]) share them.
// Without flex only inference uses these loops, not the gradients' half.
#![cfg_attr(not(feature = "flex"), allow(dead_code))]

use super::Padding;

/// Output channels computed together: one vector accumulator each.
pub(crate) const BLOCK: usize = 8;
/// Output columns per vector: 16 f32 lanes, one AVX-512 register.
pub(crate) const LANES: usize = 16;
/// The parts of a batch whose weight gradients are summed apart (on as many threads
/// as there are cores), then together.
pub(crate) const WEIGHT_GRAD_PARTS: usize = 8;

/// The sizes of one convolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Geometry {
    pub(crate) in_channels: usize,
    pub(crate) height: usize,
    pub(crate) width: usize,
    pub(crate) out_channels: usize,
    pub(crate) kernel: [usize; 2],
    pub(crate) padding: Padding,
}

impl Geometry {
    pub(crate) fn output(&self) -> [usize; 2] {
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
    pub(crate) fn transposed(&self) -> Option<Self> {
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

    /// The floats of an image's padded planes.
    pub(crate) fn padded_len(&self) -> usize {
        self.in_channels * self.padded_rows() * self.pitch()
    }

    /// Copies `image` (`[in_channels, height, width]`) inside the borders of `planes`
    /// ([`Geometry::padded_len`] floats), whose borders are left as they are: zero.
    pub(crate) fn pad_into(&self, image: &[f32], planes: &mut [f32]) {
        let [(top, _), (left, _)] = self.padding;
        let (pitch, rows) = (self.pitch(), self.padded_rows());
        for (plane, channel) in planes
            .chunks_exact_mut(rows * pitch)
            .zip(image.chunks_exact(self.height * self.width))
        {
            for (y, row) in channel.chunks_exact(self.width).enumerate() {
                plane[(top + y) * pitch + left..][..self.width].copy_from_slice(row);
            }
        }
    }

    /// The floats of one image's input and of its output.
    pub(crate) fn image_sizes(&self) -> [usize; 2] {
        let [out_height, out_width] = self.output();
        [
            self.in_channels * self.height * self.width,
            self.out_channels * out_height * out_width,
        ]
    }

    pub(crate) fn kernel_size(&self) -> usize {
        self.kernel[0] * self.kernel[1]
    }
}

/// The kernels as `[out block, in_channels, kernel row, kernel column, BLOCK]`, the
/// `BLOCK` output channels of a block side by side, zero past the last channel; with
/// `flipped`, each kernel turned half a turn and in and out channels swapped: the
/// kernels of [`Geometry::transposed`].
pub(crate) fn packed(weight: &[f32], g: &Geometry, flipped: bool) -> Vec<f32> {
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
pub(crate) fn load<S: pulp::Simd>(simd: S, values: &[f32]) -> S::f32s {
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
pub(crate) fn convolve<S: pulp::Simd>(
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
                    let shift = simd.splat_f32s(bias.map_or(0.0, |bias| bias[channel]));
                    let to = &mut out[(channel * out_height + y) * out_width + x0..][..columns];
                    // The row's last vector may be partial: a masked store.
                    simd.partial_store_f32s(to, simd.add_f32s(sum, shift));
                }
            }
        }
    }
}

/// Adds one image's weight gradient to `grad` (`[out_channels, in_channels, kernel
/// row, kernel column]`): for each tap, the sum over output positions of the output's
/// gradient times the input under that tap.
#[inline(always)]
pub(crate) fn accumulate_weight_grad<S: pulp::Simd>(
    simd: S,
    planes: &[f32],
    out_grad: &[f32],
    g: &Geometry,
    grads: &mut Vec<f32>,
    grad: &mut [f32],
) {
    let [kernel_height, kernel_width] = g.kernel;
    let [out_height, out_width] = g.output();
    let (pitch, rows) = (g.pitch(), g.padded_rows());
    let blocks = g.out_channels.div_ceil(BLOCK);
    // The output's gradient in rows of whole vectors, zero past the last column and
    // the last channel, so that every lane and channel of a block can be multiplied
    // (zeros that a `grads` already this long for this geometry still holds).
    let row_width = out_width.div_ceil(LANES) * LANES;
    grads.resize(blocks * BLOCK * out_height * row_width, 0.0);
    for (o, map) in out_grad.chunks_exact(out_height * out_width).enumerate() {
        for (y, row) in map.chunks_exact(out_width).enumerate() {
            grads[(o * out_height + y) * row_width..][..out_width].copy_from_slice(row);
        }
    }
    let block_length = BLOCK * out_height * row_width;
    let rows = Rows {
        planes,
        pitch,
        plane_rows: rows,
        out_height,
        row_width,
    };
    for (block, block_grads) in grads.chunks_exact(block_length).enumerate() {
        for c in 0..g.in_channels {
            for i in 0..kernel_height {
                for quad in 0..BLOCK / QUAD {
                    let quad_grads = &block_grads[quad * QUAD * out_height * row_width..];
                    let tap = Tap {
                        first: block * BLOCK + quad * QUAD,
                        c,
                        i,
                    };
                    match kernel_width {
                        1 => tap.add(g, 0, &rows.tap_sums::<S, 1>(simd, quad_grads, c, i), grad),
                        2 => tap.add(g, 0, &rows.tap_sums::<S, 2>(simd, quad_grads, c, i), grad),
                        3 => tap.add(g, 0, &rows.tap_sums::<S, 3>(simd, quad_grads, c, i), grad),
                        4 => tap.add(g, 0, &rows.tap_sums::<S, 4>(simd, quad_grads, c, i), grad),
                        5 => tap.add(g, 0, &rows.tap_sums::<S, 5>(simd, quad_grads, c, i), grad),
                        _ => {
                            for j in 0..kernel_width {
                                let sums = rows.tap_sum(simd, quad_grads, c, i, j);
                                tap.add(g, j, &[sums], grad);
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Where a quad's sums for input channel `c` and kernel row `i` go in the weight's
/// gradient.
struct Tap {
    /// The quad's first output channel.
    first: usize,
    c: usize,
    i: usize,
}

impl Tap {
    /// Adds `columns` (kernel columns from `j0` on, each the quad's sums) to `grad`,
    /// past the last output channel nothing.
    #[inline(always)]
    fn add(&self, g: &Geometry, j0: usize, columns: &[[f32; QUAD]], grad: &mut [f32]) {
        let [kernel_height, kernel_width] = g.kernel;
        for (j, sums) in (j0..).zip(columns) {
            for (channel, &sum) in (self.first..g.out_channels).zip(sums) {
                let tap = ((channel * g.in_channels + self.c) * kernel_height + self.i)
                    * kernel_width
                    + j;
                grad[tap] += sum;
            }
        }
    }
}

/// Output channels whose weight gradients are summed together: four, so that the
/// sums of five kernel columns (20 vectors) and the four gradient rows stay in
/// AVX-512's 32 registers.
const QUAD: usize = 4;

/// One image's padded planes and its output gradient laid out in whole vectors, for
/// the weight gradient's sums.
struct Rows<'a> {
    planes: &'a [f32],
    pitch: usize,
    plane_rows: usize,
    out_height: usize,
    row_width: usize,
}

impl Rows<'_> {
    /// For input channel `c` and kernel row `i`, the sums over output positions of
    /// each of [`QUAD`] output channels' gradients (`grads`, channel by channel)
    /// times the input under each of the `KW` kernel columns: each gradient vector
    /// and each input vector loaded once for all the sums it takes part in.
    #[inline(always)]
    fn tap_sums<S: pulp::Simd, const KW: usize>(
        &self,
        simd: S,
        grads: &[f32],
        c: usize,
        i: usize,
    ) -> [[f32; QUAD]; KW] {
        let lanes = S::F32_LANES;
        let channel_grads = self.out_height * self.row_width;
        let mut sums = [[simd.splat_f32s(0.0); QUAD]; KW];
        for y in 0..self.out_height {
            let row = &self.planes[(c * self.plane_rows + y + i) * self.pitch..];
            for x0 in (0..self.row_width).step_by(lanes) {
                let from = y * self.row_width + x0;
                let mut g = [simd.splat_f32s(0.0); QUAD];
                for (o, g) in g.iter_mut().enumerate() {
                    *g = load(simd, &grads[o * channel_grads + from..][..lanes]);
                }
                for (j, column) in sums.iter_mut().enumerate() {
                    let inputs = load(simd, &row[x0 + j..x0 + j + lanes]);
                    for (sum, &g) in column.iter_mut().zip(&g) {
                        *sum = simd.mul_add_e_f32s(g, inputs, *sum);
                    }
                }
            }
        }
        // Plain loops: `array::map`'s closures would not be compiled for the vector
        // instructions the caller was.
        let mut totals = [[0.0f32; QUAD]; KW];
        for (totals, column) in totals.iter_mut().zip(&sums) {
            for (total, &sum) in totals.iter_mut().zip(column) {
                *total = simd.reduce_sum_f32s(sum);
            }
        }
        totals
    }

    /// [`Rows::tap_sums`] for kernel column `j` alone, for kernels too wide to keep
    /// every column's sums in registers.
    #[inline(always)]
    fn tap_sum<S: pulp::Simd>(
        &self,
        simd: S,
        grads: &[f32],
        c: usize,
        i: usize,
        j: usize,
    ) -> [f32; QUAD] {
        let lanes = S::F32_LANES;
        let channel_grads = self.out_height * self.row_width;
        let mut sums = [simd.splat_f32s(0.0); QUAD];
        for y in 0..self.out_height {
            let row = &self.planes[(c * self.plane_rows + y + i) * self.pitch + j..];
            for x0 in (0..self.row_width).step_by(lanes) {
                let inputs = load(simd, &row[x0..x0 + lanes]);
                let from = y * self.row_width + x0;
                for (o, sum) in sums.iter_mut().enumerate() {
                    let g = load(simd, &grads[o * channel_grads + from..][..lanes]);
                    *sum = simd.mul_add_e_f32s(g, inputs, *sum);
                }
            }
        }
        let mut totals = [0.0f32; QUAD];
        for (total, &sum) in totals.iter_mut().zip(&sums) {
            *total = simd.reduce_sum_f32s(sum);
        }
        totals
    }
}

/// [`convolve`] as work for [`pulp`]'s dispatch, which compiles it for the CPU's
/// widest vectors.
pub(crate) struct Convolve<'a> {
    pub(crate) planes: &'a [f32],
    pub(crate) kernels: &'a [f32],
    pub(crate) bias: Option<&'a [f32]>,
    pub(crate) g: &'a Geometry,
    pub(crate) out: &'a mut [f32],
}

impl pulp::WithSimd for Convolve<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, simd: S) {
        convolve(simd, self.planes, self.kernels, self.bias, self.g, self.out);
    }
}

/// [`accumulate_weight_grad`] as work for [`pulp`]'s dispatch, as [`Convolve`].
pub(crate) struct WeightGrad<'a> {
    pub(crate) planes: &'a [f32],
    pub(crate) out_grad: &'a [f32],
    pub(crate) g: &'a Geometry,
    /// Scratch for the output's gradient in whole vectors, kept between images of
    /// one geometry.
    pub(crate) rows: &'a mut Vec<f32>,
    pub(crate) grad: &'a mut [f32],
}

impl pulp::WithSimd for WeightGrad<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, simd: S) {
        accumulate_weight_grad(
            simd,
            self.planes,
            self.out_grad,
            self.g,
            self.rows,
            self.grad,
        );
    }
}
