//! The matrices of Winograd's minimal filtering F(2, r) (Lavin and Gray 2015), built
//! at compile time by the Toom-Cook construction from r + 1 interpolation points (r
//! finite ones and infinity), in f64 and then rounded: two outputs of an r-tap
//! correlation from r + 1 inputs with r + 1 multiplies, where the direct way takes 2r.

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
}

/// F(2, 3): 16 multiplies per 2x2 outputs where direct convolution takes 36.
#[derive(Debug, Clone, Copy)]
pub(crate) struct F2x3;

impl Filter<3, 4> for F2x3 {
    const T: Transforms<3, 4> = transforms([0.0, 1.0, -1.0]);
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct F2x5;

/// F(2, 5): 36 multiplies per 2x2 outputs where direct convolution takes 100. Points
/// 0, ±1, 1/2, -2: against Burn's convolution on 24 random shapes the weight's
/// gradient is off by at most 3.1 millionths of its largest value, where ±1/2 gives
/// 14.6 and ±2 gives 7.9 (forward and input gradient: under 4 with each).
impl Filter<5, 6> for F2x5 {
    const T: Transforms<5, 6> = transforms([0.0, 1.0, -1.0, 0.5, -2.0]);
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
}
