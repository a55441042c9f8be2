//! Winograd's minimal filtering F(2x2, 3x3) and F(2x2, 5x5) for the convolutions of
//! [`super::flex`] whose input has channels enough to fill a vector: each 2x2 block
//! of outputs from a 4x4 or 6x6 tile of input in 16 or 36 multiplies per channel
//! pair where direct convolution takes 36 or 100. The forward pass, the input's
//! gradient and the weight's gradient are each one small matrix product per point
//! of the tile, between transforms; the backward passes are the forward's exact
//! adjoint. Channels lie in the vectors' lanes.

mod image;
mod matrices;
mod weights;

use std::cell::RefCell;

use pulp::{Simd, WithSimd};
use rayon::prelude::*;

use super::direct::{Geometry, WEIGHT_GRAD_PARTS};
use image::{Lhs, Product};
use matrices::{F2x3, F2x5, Filter, OUTPUTS};
use weights::{transform_kernels, weight_grad};

/// Input channels from which a vector of channels is full enough for the transforms
/// to pay (the first layer of an image network has one to three).
const MIN_IN_CHANNELS: usize = 8;
/// Rows of the point-wise products computed together; channel counts are padded to
/// a multiple of it.
const ROW_BLOCK: usize = 8;
/// The most floats one thread's buffers may take (256 MiB): an image's transformed
/// tiles are about nine times its output, so large maps over many channels are left
/// to the direct convolution, which needs one padded copy of the image.
const MAX_SCRATCH_FLOATS: usize = 64 << 20;

/// How one convolution is tiled and laid out for the CPU's vectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Layout {
    g: Geometry,
    lanes: usize,
    /// Kernel side: 3 or 5.
    kernel: usize,
    /// Tiles down and across.
    tiles: [usize; 2],
    /// The tile count padded to a multiple of `row_block`: the products' rows.
    tile_rows: usize,
    row_block: usize,
    /// Input and output channels padded to whole vectors and row blocks.
    in_width: usize,
    out_width: usize,
    /// Rows and columns of the padded planes: the input with its padding, and zeros
    /// to the last tile's edge.
    padded: [usize; 2],
}

impl Layout {
    /// The layout for `g` where Winograd covers it (a square 3x3 or 5x5 kernel and at
    /// least [`MIN_IN_CHANNELS`] input channels).
    pub(crate) fn new(g: &Geometry) -> Option<Self> {
        let kernel = match g.kernel {
            [3, 3] => 3,
            [5, 5] => 5,
            _ => return None,
        };
        if g.in_channels < MIN_IN_CHANNELS {
            return None;
        }
        let lanes = pulp::Arch::new().dispatch(Lanes);
        let [out_height, out_width] = g.output();
        let tiles = [out_height.div_ceil(OUTPUTS), out_width.div_ceil(OUTPUTS)];
        let count = tiles[0] * tiles[1];
        // 7 rows at a time where that pads less (7x7 tiles of a 14x14 output).
        let (row_block, tile_rows) = [ROW_BLOCK, 7]
            .map(|block| (block, count.next_multiple_of(block)))
            .into_iter()
            .min_by_key(|&(_, rows)| rows)?;
        let width = |channels: usize| channels.next_multiple_of(lanes.max(ROW_BLOCK));
        let layout = Self {
            g: *g,
            lanes,
            kernel,
            tiles,
            tile_rows,
            row_block,
            in_width: width(g.in_channels),
            out_width: width(g.out_channels),
            padded: tiles.map(|count| count * OUTPUTS + kernel - 1),
        };
        (layout.scratch_floats() <= MAX_SCRATCH_FLOATS).then_some(layout)
    }

    /// The floats of one thread's [`Scratch`].
    fn scratch_floats(&self) -> usize {
        let tiles = self.tile_floats(self.in_width) + self.tile_floats(self.out_width);
        2 * self.plane_floats() + self.grid_floats() + tiles + self.kernel_floats()
    }

    /// The padded planes of one image: `[group][row][column][lane]`.
    fn plane_floats(&self) -> usize {
        self.in_width * self.padded[0] * self.padded[1]
    }

    /// The output's gradient over whole tiles, as [`Layout::grid_into`] lays it out.
    fn grid_floats(&self) -> usize {
        self.out_width * self.tile_count() * OUTPUTS * OUTPUTS
    }

    /// One image's transformed tiles, `[point][tile][channel]` of `width` channels.
    fn tile_floats(&self, width: usize) -> usize {
        self.points() * self.tile_rows * width
    }

    /// The transformed kernels, or their gradient: `[point][in][out]`.
    fn kernel_floats(&self) -> usize {
        self.points() * self.in_width * self.out_width
    }

    fn points(&self) -> usize {
        (self.kernel + 1).pow(2)
    }

    /// A pass's point-wise product, and its operands' steps from one point to the
    /// next.
    fn product(&self, pass: Pass) -> (Product, [usize; 3]) {
        let (tiles, c, k) = (self.tile_rows, self.in_width, self.out_width);
        let (rows, inner, cols, lhs, steps) = match pass {
            Pass::Forward => (
                tiles,
                c,
                k,
                Lhs::Rows { stride: c },
                [tiles * c, c * k, tiles * k],
            ),
            Pass::InputGrad => (
                tiles,
                k,
                c,
                Lhs::Rows { stride: k },
                [tiles * k, k * c, tiles * c],
            ),
            // Over the real tiles only: the padded rows' values are never read.
            Pass::KernelGrad => {
                let inner = self.tile_count();
                (
                    c,
                    inner,
                    k,
                    Lhs::Columns { stride: c },
                    [tiles * c, tiles * k, c * k],
                )
            }
        };
        let row_block = match pass {
            Pass::KernelGrad => ROW_BLOCK,
            Pass::Forward | Pass::InputGrad => self.row_block,
        };
        let product = Product {
            rows,
            inner,
            cols,
            lhs,
            row_block,
        };
        (product, steps)
    }

    fn tile_count(&self) -> usize {
        self.tiles[0] * self.tiles[1]
    }
}

/// The point-wise products of a tile: `V · U` forward, `dM · Uᵀ` for the input's
/// gradient, `Vᵀ · dM` for the transformed kernels'.
#[derive(Debug, Clone, Copy)]
enum Pass {
    Forward,
    InputGrad,
    KernelGrad,
}

/// The f32 lanes of the CPU's widest vectors.
struct Lanes;

impl WithSimd for Lanes {
    type Output = usize;

    #[inline(always)]
    fn with_simd<S: Simd>(self, _: S) -> usize {
        S::F32_LANES
    }
}

/// One thread's buffers, kept from call to call for one layout: what is never
/// written (padding, padded rows and channels) stays zero.
#[derive(Debug)]
struct Scratch {
    layout: Layout,
    planes: Vec<f32>,
    grad_planes: Vec<f32>,
    grid: Vec<f32>,
    /// `[point][tile][in channel]`: the input's tiles transformed, or their gradient.
    transformed: Vec<f32>,
    /// `[point][tile][out channel]`: the products, or their gradient.
    products: Vec<f32>,
    /// `[point][in channel][out channel]`: an image's part of the transformed
    /// kernels' gradient.
    kernel_grads: Vec<f32>,
}

impl Scratch {
    fn new(layout: Layout) -> Self {
        Self {
            layout,
            planes: vec![0.0; layout.plane_floats()],
            grad_planes: vec![0.0; layout.plane_floats()],
            grid: vec![0.0; layout.grid_floats()],
            transformed: vec![0.0; layout.tile_floats(layout.in_width)],
            products: vec![0.0; layout.tile_floats(layout.out_width)],
            kernel_grads: vec![0.0; layout.kernel_floats()],
        }
    }

    /// `transformed` = the tiles of `image` (`[channel][row][column]`) through `Bᵀ`.
    #[inline(always)]
    fn transform_image<S: Simd, F: Filter<R, A>, const R: usize, const A: usize>(
        &mut self,
        simd: S,
        image: &[f32],
    ) {
        let layout = self.layout;
        layout.pad_into(image, &mut self.planes);
        let planes = (&self.planes[..], layout.padded);
        let to = &mut self.transformed;
        layout.transform_tiles(simd, &F::INPUT, planes, layout.in_width, to);
    }

    /// Runs `work` with this thread's scratch for `layout`.
    fn with<T>(layout: &Layout, work: impl FnOnce(&mut Scratch) -> T) -> T {
        thread_local! {
            static SCRATCH: RefCell<Option<Scratch>> = const { RefCell::new(None) };
        }
        SCRATCH.with_borrow_mut(|scratch| {
            if scratch.as_ref().is_none_or(|s| s.layout != *layout) {
                *scratch = Some(Scratch::new(*layout));
            }
            work(scratch.as_mut().expect("just made"))
        })
    }
}

/// The batch `x` (`[batch, in, height, width]`) convolved with `weight` (`[out, in,
/// kernel, kernel]`) plus `bias`: `[batch, out, height', width']`.
pub(crate) fn forward(
    layout: &Layout,
    x: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    batch: usize,
) -> Vec<f32> {
    let operands = Operands { x, weight, batch };
    match layout.kernel {
        3 => forward_with(F2x3, layout, operands, bias),
        _ => forward_with(F2x5, layout, operands, bias),
    }
}

/// The gradients of `x` (when `x_needed`) and of the weight, given the output's.
pub(crate) fn backward(
    layout: &Layout,
    x: &[f32],
    weight: &[f32],
    out_grad: &[f32],
    batch: usize,
    x_needed: bool,
) -> (Option<Vec<f32>>, Vec<f32>) {
    let operands = Operands { x, weight, batch };
    match layout.kernel {
        3 => backward_with(F2x3, layout, operands, out_grad, x_needed),
        _ => backward_with(F2x5, layout, operands, out_grad, x_needed),
    }
}

/// A batch of inputs and the convolution's weight.
#[derive(Clone, Copy)]
struct Operands<'a> {
    x: &'a [f32],
    weight: &'a [f32],
    batch: usize,
}

fn forward_with<F: Filter<R, A>, const R: usize, const A: usize>(
    filter: F,
    layout: &Layout,
    Operands { x, weight, batch }: Operands,
    bias: Option<&[f32]>,
) -> Vec<f32> {
    let kernels = transform_kernels::<F, R, A>(layout, weight);
    let mut shifts = vec![0.0f32; layout.out_width];
    if let Some(bias) = bias {
        shifts[..bias.len()].copy_from_slice(bias);
    }
    let [in_size, out_size] = layout.g.image_sizes();
    let mut out = vec![0.0f32; batch * out_size];
    out.par_chunks_mut(out_size.max(1))
        .zip(x.par_chunks(in_size.max(1)))
        .for_each(|(out, image)| {
            Scratch::with(layout, |scratch| {
                pulp::Arch::new().dispatch(ImagePasses {
                    filter,
                    image,
                    kernels: &kernels.forward,
                    scratch,
                    direction: Direction::Forward { bias: &shifts, out },
                })
            })
        });
    out
}

fn backward_with<F: Filter<R, A>, const R: usize, const A: usize>(
    filter: F,
    layout: &Layout,
    Operands { x, weight, batch }: Operands,
    out_grad: &[f32],
    x_needed: bool,
) -> (Option<Vec<f32>>, Vec<f32>) {
    let kernels = transform_kernels::<F, R, A>(layout, weight);
    let [in_size, out_size] = layout.g.image_sizes();
    let part = batch.div_ceil(WEIGHT_GRAD_PARTS).max(1);
    let mut x_grad = x_needed.then(|| vec![0.0f32; batch * in_size]);
    let x_grads: Vec<Option<&mut [f32]>> = match &mut x_grad {
        Some(grad) => grad.chunks_mut((part * in_size).max(1)).map(Some).collect(),
        None => x.chunks((part * in_size).max(1)).map(|_| None).collect(),
    };
    let sums_len = layout.kernel_floats();
    // Summed in a fixed number of parts, in a fixed order, whatever the threads: a
    // resumed run adds the same numbers in the same order as an uninterrupted one.
    let parts: Vec<Vec<f64>> = x
        .par_chunks((part * in_size).max(1))
        .zip(out_grad.par_chunks((part * out_size).max(1)))
        .zip(x_grads)
        .map(|((images, out_grads), mut x_grads)| {
            let mut sums = vec![0.0f64; sums_len];
            Scratch::with(layout, |scratch| {
                for (i, (image, out_grad)) in images
                    .chunks_exact(in_size.max(1))
                    .zip(out_grads.chunks_exact(out_size.max(1)))
                    .enumerate()
                {
                    let x_grad = x_grads
                        .as_deref_mut()
                        .map(|grads| &mut grads[i * in_size..][..in_size]);
                    pulp::Arch::new().dispatch(ImagePasses {
                        filter,
                        image,
                        kernels: &kernels.backward,
                        scratch: &mut *scratch,
                        direction: Direction::Backward {
                            out_grad,
                            x_grad,
                            sums: &mut sums,
                        },
                    });
                }
            });
            sums
        })
        .collect();
    let sums = parts
        .into_iter()
        .fold(vec![0.0f64; sums_len], |mut sum, part| {
            sum.iter_mut().zip(part).for_each(|(s, p)| *s += p);
            sum
        });
    let sums: Vec<f32> = sums.iter().map(|&s| s as f32).collect();
    let weight_grad = weight_grad::<F, R, A>(layout, &sums, weight.len());
    (x_grad, weight_grad)
}

/// One image's passes: `image` with `kernels` transformed for the direction.
struct ImagePasses<'a, F: Filter<R, A>, const R: usize, const A: usize> {
    filter: F,
    image: &'a [f32],
    /// `[point][in][out]` forward, `[point][out][in]` backward.
    kernels: &'a [f32],
    scratch: &'a mut Scratch,
    direction: Direction<'a>,
}

enum Direction<'a> {
    /// `out` = the convolution plus `bias`.
    Forward { bias: &'a [f32], out: &'a mut [f32] },
    /// `x_grad` (where wanted) and the transformed kernels' gradient, added to
    /// `sums` (`[point][in][out]`), from the output's gradient.
    Backward {
        out_grad: &'a [f32],
        x_grad: Option<&'a mut [f32]>,
        sums: &'a mut [f64],
    },
}

impl<F: Filter<R, A>, const R: usize, const A: usize> WithSimd for ImagePasses<'_, F, R, A> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        let s = self.scratch;
        let layout = s.layout;
        match self.direction {
            Direction::Forward { bias, out } => {
                s.transform_image::<S, F, R, A>(simd, self.image);
                let (product, steps) = layout.product(Pass::Forward);
                let operands = [&s.transformed[..], self.kernels];
                product.run_points(simd, A * A, steps, operands, &mut s.products);
                layout.transform_outputs(simd, self.filter, &s.products, bias, out);
            }
            Direction::Backward {
                out_grad,
                x_grad,
                sums,
            } => {
                layout.grid_into(out_grad, &mut s.grid);
                let grid = (&s.grid[..], layout.grid());
                let to = &mut s.products;
                layout.transform_tiles(simd, &F::T.output_t, grid, layout.out_width, to);
                if let Some(x_grad) = x_grad {
                    let (product, steps) = layout.product(Pass::InputGrad);
                    let operands = [&s.products[..], self.kernels];
                    product.run_points(simd, A * A, steps, operands, &mut s.transformed);
                    s.grad_planes.fill(0.0);
                    let planes = &mut s.grad_planes;
                    layout.transform_input_grads(simd, self.filter, &s.transformed, planes);
                    layout.crop_from(&s.grad_planes, x_grad);
                }
                s.transform_image::<S, F, R, A>(simd, self.image);
                let (product, steps) = layout.product(Pass::KernelGrad);
                let operands = [&s.transformed[..], &s.products[..]];
                product.run_points(simd, A * A, steps, operands, &mut s.kernel_grads);
                // Added up in f64: in f32, the images' sums, added one after the other,
                // lose three times the digits that the transforms do.
                for (sum, &image) in sums.iter_mut().zip(&s.kernel_grads) {
                    *sum += f64::from(image);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn geometry(channels: usize, side: usize) -> Geometry {
        Geometry {
            in_channels: channels,
            height: side,
            width: side,
            out_channels: channels,
            kernel: [5, 5],
            padding: [(2, 2), (2, 2)],
        }
    }

    #[test]
    fn maps_too_large_for_the_buffers_are_left_to_the_direct_convolution() {
        // The CNN's second block: Winograd's, its buffers a few hundred KB.
        let small = Layout::new(&geometry(16, 14)).expect("covered");
        assert!(small.scratch_floats() < 1 << 20);
        // 256 channels on 224x224: over a gigabyte of transformed tiles a thread.
        assert!(Layout::new(&geometry(256, 224)).is_none());
        // Too few input channels to fill a vector.
        assert!(Layout::new(&geometry(3, 28)).is_none());
    }
}
