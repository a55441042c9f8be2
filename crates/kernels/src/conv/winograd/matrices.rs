//! The matrices of Winograd's minimal filtering F(2, r) (Lavin and Gray 2015), built
//! at compile time by the Toom-Cook construction from r + 1 interpolation points (r
//! finite ones and infinity), in f64 and then rounded: two outputs of an r-tap
//! correlation from r + 1 inputs with r + 1 multiplies, where the direct way takes 2r.
//! Each matrix is applied as a [`Transform`]: the matrix itself, or for F(2, 5)'s
//! input a factored form of fewer operations.

use pulp::Simd;

/// Outputs per tile side.
pub(crate) const OUTPUTS: usize = 2;

/// F(2, `R`) with `A` = `R` + 1 points (`A` spelled out: array lengths cannot be
/// computed from a generic yet). With `d` the `A` inputs and `g` the `R` taps,
/// `y = output · ((kernel · g) ⊙ (input · d))` is their correlation, `y_i = Σ_k g_k
/// d_(i+k)`; in two dimensions each matrix multiplies on both sides.
#[derive(Debug)]
pub(crate) struct Transforms<const R: usize, const A: usize> {
    /// `Aᵀ`, `[2][A]`: the products back to outputs.
    pub(crate) output: [[f32; A]; OUTPUTS],
    /// `A`, `[A][2]`: the outputs' gradient to the products'.
    pub(crate) output_t: [[f32; OUTPUTS]; A],
    /// `G`, `[A][R]`: the taps to their evaluations.
    pub(crate) kernel: [[f32; R]; A],
    /// `Gᵀ`, `[R][A]`: the evaluations' gradient to the taps'.
    pub(crate) kernel_t: [[f32; A]; R],
    /// `Bᵀ`, `[A][A]`: the inputs to their evaluations.
    pub(crate) input: [[f32; A]; A],
    /// `B`, `[A][A]`: the evaluations' gradient to the inputs'.
    pub(crate) input_t: [[f32; A]; A],
}

/// An F(2, `R`) whose matrices are known where its transforms are compiled: their
/// zero and unit entries then cost nothing (passed at run time, each entry is a
/// load and a comparison).
pub(crate) trait Filter<const R: usize, const A: usize>: Copy + Send + Sync {
    const T: Transforms<R, A>;
    /// `Bᵀ` as applied to the input's tiles.
    type Input: Transform<A, A>;
    const INPUT: Self::Input;
    /// `B` as applied to their gradient's.
    type InputT: Transform<A, A>;
    const INPUT_T: Self::InputT;
}

/// A linear map of `Q` vectors to `P`, applied to a tile's columns and then its rows.
pub(crate) trait Transform<const P: usize, const Q: usize> {
    fn apply<S: Simd>(&self, simd: S, x: [S::f32s; Q]) -> [S::f32s; P];
}

/// A matrix, entry by entry.
impl<const P: usize, const Q: usize> Transform<P, Q> for [[f32; Q]; P] {
    #[inline(always)]
    fn apply<S: Simd>(&self, simd: S, x: [S::f32s; Q]) -> [S::f32s; P] {
        let mut out = [simd.splat_f32s(0.0); P];
        for (out, row) in out.iter_mut().zip(self) {
            for (&c, &x) in row.iter().zip(&x) {
                *out = term(simd, c, x, *out);
            }
        }
        out
    }
}

/// `sum + c · x`.
#[inline(always)]
fn times<S: Simd>(simd: S, c: f32, x: S::f32s, sum: S::f32s) -> S::f32s {
    simd.mul_add_e_f32s(simd.splat_f32s(c), x, sum)
}

/// `sum + c · x`, with the multiply left out where `c` is 0 or ±1 (the constant
/// matrices' entries are known where this is inlined).
#[inline(always)]
fn term<S: Simd>(simd: S, c: f32, x: S::f32s, sum: S::f32s) -> S::f32s {
    if c == 0.0 {
        sum
    } else if c == 1.0 {
        simd.add_f32s(sum, x)
    } else if c == -1.0 {
        simd.sub_f32s(sum, x)
    } else {
        times(simd, c, x, sum)
    }
}

/// F(2, 3): 16 multiplies per 2x2 outputs where direct convolution takes 36.
#[derive(Debug, Clone, Copy)]
pub(crate) struct F2x3;

impl Filter<3, 4> for F2x3 {
    const T: Transforms<3, 4> = transforms([0.0, 1.0, -1.0]);
    type Input = [[f32; 4]; 4];
    const INPUT: Self::Input = Self::T.input;
    type InputT = [[f32; 4]; 4];
    const INPUT_T: Self::InputT = Self::T.input_t;
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct F2x5;

/// F(2, 5): 36 multiplies per 2x2 outputs where direct convolution takes 100. Points
/// 0, ±1, 1/2, -2: against Burn's convolution on 24 random shapes the weight's
/// gradient is off by at most 3.1 millionths of its largest value, where ±1/2 gives
/// 14.6 and ±2 gives 7.9 (forward and input gradient: under 4 with each).
impl Filter<5, 6> for F2x5 {
    const T: Transforms<5, 6> = transforms([0.0, 1.0, -1.0, 0.5, -2.0]);
    type Input = F2x5Input;
    const INPUT: F2x5Input = F2x5Input;
    type InputT = F2x5InputT;
    const INPUT_T: F2x5InputT = F2x5InputT;
}

/// F(2, 5)'s `Bᵀ` in 16 operations where its 26 nonzero entries take 26: its rows
/// share `a = d1 - d3` and `s = d4 - d2`,
///
/// ```text
/// r0 = d0 - d2 + s - 1.5 a    r3 = s - 2 a
/// r1 = s - a + 1.5 (d2 + d3)  r4 = s + 0.5 a
/// r2 = s + a + 1.5 (d3 - d2)  r5 = d5 - d3 + a + 1.5 s
/// ```
#[derive(Debug, Clone, Copy)]
pub(crate) struct F2x5Input;

impl Transform<6, 6> for F2x5Input {
    #[inline(always)]
    fn apply<S: Simd>(&self, simd: S, [d0, d1, d2, d3, d4, d5]: [S::f32s; 6]) -> [S::f32s; 6] {
        // Plain calls: a closure's body would lose the vectors' target features.
        let (a, s) = (simd.sub_f32s(d1, d3), simd.sub_f32s(d4, d2));
        [
            times(simd, -1.5, a, simd.add_f32s(simd.sub_f32s(d0, d2), s)),
            times(simd, 1.5, simd.add_f32s(d2, d3), simd.sub_f32s(s, a)),
            times(simd, 1.5, simd.sub_f32s(d3, d2), simd.add_f32s(s, a)),
            times(simd, -2.0, a, s),
            times(simd, 0.5, a, s),
            times(simd, 1.5, s, simd.add_f32s(simd.sub_f32s(d5, d3), a)),
        ]
    }
}

/// F(2, 5)'s `B`, the transpose of [`F2x5Input`]'s steps taken backwards: with
/// `sum = v0 + v1 + v2 + v3 + v4 + 1.5 v5` and `a = v2 - v1 - 1.5 v0 - 2 v3 + 0.5 v4 +
/// v5`, the outputs are `v0, a, 1.5 (v1 - v2) - v0 - sum, 1.5 (v1 + v2) - v5 - a, sum,
/// v5`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct F2x5InputT;

impl Transform<6, 6> for F2x5InputT {
    #[inline(always)]
    fn apply<S: Simd>(&self, simd: S, [v0, v1, v2, v3, v4, v5]: [S::f32s; 6]) -> [S::f32s; 6] {
        let pairs = simd.add_f32s(simd.add_f32s(v0, v1), simd.add_f32s(v2, v3));
        let sum = times(simd, 1.5, v5, simd.add_f32s(pairs, v4));
        let a = times(simd, -1.5, v0, simd.sub_f32s(v2, v1));
        let a = times(simd, 0.5, v4, times(simd, -2.0, v3, a));
        let a = simd.add_f32s(a, v5);
        let (v0_and_sum, v5_and_a) = (simd.add_f32s(v0, sum), simd.add_f32s(v5, a));
        let three_halves = simd.splat_f32s(1.5);
        [
            v0,
            a,
            simd.sub_f32s(
                simd.mul_f32s(three_halves, simd.sub_f32s(v1, v2)),
                v0_and_sum,
            ),
            simd.sub_f32s(simd.mul_f32s(three_halves, simd.add_f32s(v1, v2)), v5_and_a),
            sum,
            v5,
        ]
    }
}

/// The matrices for the `R` finite points `points` and infinity.
const fn transforms<const R: usize, const A: usize>(points: [f64; R]) -> Transforms<R, A> {
    assert!(A == R + 1 && OUTPUTS == 2);
    let finite = A - 1;
    let mut output = [[0.0f32; A]; OUTPUTS];
    let mut kernel = [[0.0f32; R]; A];
    let mut input = [[0.0f32; A]; A];
    let mut j = 0;
    while j < finite {
        // y's polynomial at point j, scaled by the Lagrange denominator here rather
        // than in the input transform, so that Bᵀ stays in small integers' reach.
        let mut denominator = 1.0;
        let mut l = 0;
        while l < finite {
            if l != j {
                denominator *= points[j] - points[l];
            }
            l += 1;
        }
        let mut i = 0;
        while i < OUTPUTS {
            output[i][j] = power(points[j], i) as f32;
            i += 1;
        }
        let mut k = 0;
        while k < R {
            kernel[j][k] = (power(points[j], k) / denominator) as f32;
            k += 1;
        }
        let others: [f64; A] = product_of_roots(&points, finite, j);
        let mut p = 0;
        while p < A {
            input[j][p] = others[p] as f32;
            p += 1;
        }
        j += 1;
    }
    // Infinity: the leading coefficients.
    output[OUTPUTS - 1][A - 1] = 1.0;
    kernel[A - 1][R - 1] = 1.0;
    let all: [f64; A] = product_of_roots(&points, finite, finite);
    let mut p = 0;
    while p < A {
        input[A - 1][p] = all[p] as f32;
        p += 1;
    }
    Transforms {
        output,
        output_t: transpose(&output),
        kernel,
        kernel_t: transpose(&kernel),
        input,
        input_t: transpose(&input),
    }
}

const fn power(x: f64, n: usize) -> f64 {
    let mut value = 1.0;
    let mut i = 0;
    while i < n {
        value *= x;
        i += 1;
    }
    value
}

/// The coefficients, lowest power first, of `Π (x - points[l])` over the first
/// `count` points but `skip`.
const fn product_of_roots<const N: usize, const A: usize>(
    points: &[f64; N],
    count: usize,
    skip: usize,
) -> [f64; A] {
    let mut coefficients = [0.0f64; A];
    coefficients[0] = 1.0;
    let mut l = 0;
    while l < count {
        if l != skip {
            // Times (x - points[l]), from the highest power down.
            let mut p = A - 1;
            while p > 0 {
                coefficients[p] = coefficients[p - 1] - points[l] * coefficients[p];
                p -= 1;
            }
            coefficients[0] *= -points[l];
        }
        l += 1;
    }
    coefficients
}

const fn transpose<const P: usize, const Q: usize>(m: &[[f32; Q]; P]) -> [[f32; P]; Q] {
    let mut t = [[0.0f32; P]; Q];
    let mut i = 0;
    while i < P {
        let mut j = 0;
        while j < Q {
            t[j][i] = m[i][j];
            j += 1;
        }
        i += 1;
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    fn multiply<const P: usize, const Q: usize>(m: &[[f32; Q]; P], v: &[f64]) -> Vec<f64> {
        m.iter()
            .map(|row| row.iter().zip(v).map(|(&a, &b)| f64::from(a) * b).sum())
            .collect()
    }

    fn correlates<const R: usize, const A: usize>(t: &Transforms<R, A>) {
        for seed in 0..20u32 {
            let value = |i: usize| f64::from((seed * 31 + i as u32 * 17) % 23) / 7.0 - 1.5;
            let taps: Vec<f64> = (0..R).map(value).collect();
            let inputs: Vec<f64> = (0..A).map(|i| value(i + 40)).collect();
            let products: Vec<f64> = multiply(&t.kernel, &taps)
                .iter()
                .zip(multiply(&t.input, &inputs))
                .map(|(a, b)| a * b)
                .collect();
            let winograd = multiply(&t.output, &products);
            for (i, y) in winograd.iter().enumerate() {
                let direct: f64 = (0..R).map(|k| taps[k] * inputs[i + k]).sum();
                assert!(
                    (y - direct).abs() < 1e-5,
                    "F(2,{R}) y{i}: {y} against {direct}"
                );
            }
        }
    }

    #[test]
    fn each_transform_computes_the_correlation() {
        correlates(&F2x3::T);
        correlates(&F2x5::T);
    }

    #[test]
    fn the_factored_input_transforms_are_the_matrices() {
        let simd = pulp::Scalar::new();
        for seed in 0..50u32 {
            let value = |i: u32| (f64::from((seed * 37 + i * 11) % 29) / 3.0 - 4.0) as f32;
            let x = [0, 1, 2, 3, 4, 5].map(value);
            let pairs = [
                (F2x5::INPUT.apply(simd, x), F2x5::T.input.apply(simd, x)),
                (F2x5::INPUT_T.apply(simd, x), F2x5::T.input_t.apply(simd, x)),
            ];
            for (factored, matrix) in pairs {
                for (f, m) in factored.iter().zip(&matrix) {
                    assert!(
                        (f - m).abs() <= 1e-5 * m.abs().max(1.0),
                        "{factored:?} against {matrix:?}"
                    );
                }
            }
        }
    }
}
