//! The multiply-adds of a layer's product: a tile's sums over the rows of its nonzero
//! inputs, in registers.

use pulp::Simd;

/// For each of `R` images, `bias[..W]` plus its `inputs[i][row]` times each of `rows`
/// of the weights (`weights(row)`, `W` vectors): `R * W` independent multiply-add
/// chains, each row's weights loaded once for all of them.
#[inline(always)]
pub(super) fn sum_tile<'w, S: Simd, const W: usize, const R: usize>(
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
