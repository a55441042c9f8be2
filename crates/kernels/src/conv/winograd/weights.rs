//! The kernels' side of the transforms: the weight to its transformed kernels, and
//! the transformed kernels' gradient back to the weight's, a vector of channel pairs
//! at a time.

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
    let len = layout.kernel_floats();
    let (c_width, k_width) = (layout.in_width, layout.out_width);
    let in_channels = layout.g.in_channels;
    let (mut forward, mut backward) = (vec![0.0; len], vec![0.0; len]);
    pulp::Arch::new().dispatch(PairTransform {
        layout,
        m: &F::T.kernel,
        value: |k, c, tap| weight[(k * in_channels + c) * R * R + tap],
        put: |k, c, point, value| {
            forward[(point * c_width + c) * k_width + k] = value;
            backward[(point * k_width + k) * c_width + c] = value;
        },
    });
    Kernels { forward, backward }
}

/// The weight's gradient (`len` floats, `[out][in][row][column]`) from the transformed
/// kernels' (`[point][in][out]`): `Gᵀ · dU · G`.
pub(super) fn weight_grad<F: Filter<R, A>, const R: usize, const A: usize>(
    layout: &Layout,
    sums: &[f32],
    len: usize,
) -> Vec<f32> {
    let (c_width, k_width) = (layout.in_width, layout.out_width);
    let in_channels = layout.g.in_channels;
    let mut grad = vec![0.0f32; len];
    pulp::Arch::new().dispatch(PairTransform {
        layout,
        m: &F::T.kernel_t,
        value: |k, c, point| sums[(point * c_width + c) * k_width + k],
        put: |k, c, tap, value| grad[(k * in_channels + c) * R * R + tap] = value,
    });
    grad
}

/// `m · x · mᵀ` for each (out, in) channel pair of a `[out][in][..]` weight, a vector
/// of pairs at a time: `x`'s entry `i` (row by row) of pair `(k, c)` is `value(k, c,
/// i)`, and `put(k, c, i, ..)` takes the result's.
struct PairTransform<'a, const P: usize, const Q: usize, Value, Put> {
    layout: &'a Layout,
    m: &'a [[f32; Q]; P],
    value: Value,
    put: Put,
}

impl<const P: usize, const Q: usize, Value, Put> WithSimd for PairTransform<'_, P, Q, Value, Put>
where
    Value: Fn(usize, usize, usize) -> f32,
    Put: FnMut(usize, usize, usize, f32),
{
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(mut self, simd: S) {
        let g = self.layout.g;
        let count = g.out_channels * g.in_channels;
        let mut lanes = [0.0f32; 16];
        for first in (0..count).step_by(S::F32_LANES) {
            let pairs: Vec<(usize, usize)> = (first..count.min(first + S::F32_LANES))
                .map(|p| (p / g.in_channels, p % g.in_channels))
                .collect();
            let mut x = [[simd.splat_f32s(0.0); Q]; Q];
            for (i, vector) in x.iter_mut().flatten().enumerate() {
                for (lane, &(k, c)) in lanes.iter_mut().zip(&pairs) {
                    *lane = (self.value)(k, c, i);
                }
                *vector = load_at(simd, &lanes, 0);
            }
            let y = sandwich(simd, self.m, &x);
            for (i, &vector) in y.iter().flatten().enumerate() {
                store::<S>(&mut lanes, vector);
                for (&value, &(k, c)) in lanes.iter().zip(&pairs) {
                    (self.put)(k, c, i, value);
                }
            }
        }
    }
}
