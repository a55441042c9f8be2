//! The kernels' side of the transforms: the weight to its transformed kernels, and
//! the transformed kernels' gradient back to the weight's, a vector of channel pairs
//! at a time.

use std::marker::PhantomData;

use pulp::{Simd, WithSimd};

use super::Layout;
use super::image::{load_at, sandwich, store};
use super::matrices::Filter;

/// The kernels transformed, `G · g · Gᵀ`, laid out for the forward product
/// (`[point][in][out]`) and for the input gradient's (`[point][out][in]`).
pub(super) struct Kernels {
    pub(super) forward: Vec<f32>,
    pub(super) backward: Vec<f32>,
}

pub(super) fn transform_kernels<F: Filter<R, A>, const R: usize, const A: usize>(
    layout: &Layout,
    weight: &[f32],
) -> Kernels {
    let len = layout.points() * layout.in_width * layout.out_width;
    let mut kernels = Kernels {
        forward: vec![0.0; len],
        backward: vec![0.0; len],
    };
    pulp::Arch::new().dispatch(KernelTransform {
        filter: PhantomData::<F>,
        layout,
        weight,
        kernels: &mut kernels,
    });
    kernels
}

/// The (out, in) channel pairs of a `[out][in][..]` weight, a vector's worth at a
/// time: for each, its lanes' pairs.
fn pair_blocks(layout: &Layout, lanes: usize) -> impl Iterator<Item = Vec<(usize, usize)>> {
    let g = layout.g;
    let pairs = g.out_channels * g.in_channels;
    (0..pairs).step_by(lanes).map(move |first| {
        (first..pairs.min(first + lanes))
            .map(|p| (p / g.in_channels, p % g.in_channels))
            .collect()
    })
}

/// A `Q` x `Q` square of vectors, lane `l` holding `value(k, c, i)` of `pairs[l]` for
/// each position `i` of the square, row by row.
#[inline(always)]
fn gather<S: Simd, const Q: usize>(
    simd: S,
    pairs: &[(usize, usize)],
    value: impl Fn(usize, usize, usize) -> f32,
) -> [[S::f32s; Q]; Q] {
    let mut lanes = [0.0f32; 16];
    let mut square = [[simd.splat_f32s(0.0); Q]; Q];
    for (i, vector) in square.iter_mut().flatten().enumerate() {
        for (lane, &(k, c)) in lanes.iter_mut().zip(pairs) {
            *lane = value(k, c, i);
        }
        *vector = load_at(simd, &lanes, 0);
    }
    square
}

struct KernelTransform<'a, F: Filter<R, A>, const R: usize, const A: usize> {
    filter: PhantomData<F>,
    layout: &'a Layout,
    weight: &'a [f32],
    kernels: &'a mut Kernels,
}

impl<F: Filter<R, A>, const R: usize, const A: usize> WithSimd for KernelTransform<'_, F, R, A> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        let layout = self.layout;
        let (c_width, k_width) = (layout.in_width, layout.out_width);
        let in_channels = layout.g.in_channels;
        let mut lanes = [0.0f32; 16];
        for pairs in pair_blocks(layout, S::F32_LANES) {
            let taps: [[S::f32s; R]; R] = gather(simd, &pairs, |k, c, tap| {
                self.weight[(k * in_channels + c) * R * R + tap]
            });
            let transformed = sandwich(simd, &F::T.kernel, &taps);
            for (point, &vector) in transformed.iter().flatten().enumerate() {
                store::<S>(&mut lanes, vector);
                for (&value, &(k, c)) in lanes.iter().zip(&pairs) {
                    self.kernels.forward[(point * c_width + c) * k_width + k] = value;
                    self.kernels.backward[(point * k_width + k) * c_width + c] = value;
                }
            }
        }
    }
}

/// The weight's gradient from the products' summed over the batch: `Gᵀ · dU · G`.
struct KernelGrads<'a, F: Filter<R, A>, const R: usize, const A: usize> {
    filter: PhantomData<F>,
    layout: &'a Layout,
    /// `[point][in][out]`.
    sums: &'a [f32],
    grad: &'a mut [f32],
}

impl<F: Filter<R, A>, const R: usize, const A: usize> WithSimd for KernelGrads<'_, F, R, A> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        let layout = self.layout;
        let (c_width, k_width) = (layout.in_width, layout.out_width);
        let in_channels = layout.g.in_channels;
        let mut lanes = [0.0f32; 16];
        for pairs in pair_blocks(layout, S::F32_LANES) {
            let sums: [[S::f32s; A]; A] = gather(simd, &pairs, |k, c, point| {
                self.sums[(point * c_width + c) * k_width + k]
            });
            let taps = sandwich(simd, &F::T.kernel_t, &sums);
            for (tap, &vector) in taps.iter().flatten().enumerate() {
                store::<S>(&mut lanes, vector);
                for (&value, &(k, c)) in lanes.iter().zip(&pairs) {
                    self.grad[(k * in_channels + c) * R * R + tap] = value;
                }
            }
        }
    }
}

/// The weight's gradient (`len` floats, `[out][in][row][column]`) from the transformed
/// kernels' (`[point][in][out]`).
pub(super) fn weight_grad<F: Filter<R, A>, const R: usize, const A: usize>(
    layout: &Layout,
    sums: &[f32],
    len: usize,
) -> Vec<f32> {
    let mut grad = vec![0.0f32; len];
    pulp::Arch::new().dispatch(KernelGrads {
        filter: PhantomData::<F>,
        layout,
        sums,
        grad: &mut grad,
    });
    grad
}
