//! The passes of the flex kernels ([`super::flex`]), each over one channel or one
//! image, compiled for the CPU's widest vectors through [`pulp`]: the statistics, the
//! normalised and pooled output, and the two halves of the gradients. A window's
//! maximum is found in the forward pass and again in the backward's first half, which
//! keeps each winner's position for the second.

use pulp::Simd;

/// The sum of `values`, and of their squared distances from `mean`, each in vectors
/// of partial sums (a fixed order: the same numbers give the same sums).
#[inline(always)]
fn sums<S: Simd>(simd: S, values: &[f32], mean: f32) -> (f32, f32) {
    let (head, tail) = S::as_simd_f32s(values);
    let (mut sum, mut squares) = (simd.splat_f32s(0.0), simd.splat_f32s(0.0));
    let centre = simd.splat_f32s(mean);
    for &vector in head {
        sum = simd.add_f32s(sum, vector);
        let distance = simd.sub_f32s(vector, centre);
        squares = simd.mul_add_e_f32s(distance, distance, squares);
    }
    let (mut sum, mut squares) = (simd.reduce_sum_f32s(sum), simd.reduce_sum_f32s(squares));
    for &value in tail {
        sum += value;
        squares += (value - mean) * (value - mean);
    }
    (sum, squares)
}

/// A channel's normalisation as `x * scale + shift`, and `1 / sqrt(variance + epsilon)`.
#[derive(Clone, Copy)]
pub(super) struct Affine {
    pub(super) scale: f32,
    pub(super) shift: f32,
    pub(super) mean: f32,
    pub(super) inv_std: f32,
}

impl Affine {
    pub(super) fn new(gamma: f32, beta: f32, mean: f32, variance: f32, epsilon: f64) -> Self {
        let inv_std = (1.0 / (f64::from(variance) + epsilon).sqrt()) as f32;
        let scale = gamma * inv_std;
        Self {
            scale,
            shift: beta - mean * scale,
            mean,
            inv_std,
        }
    }
}

/// `out` = `map * affine.scale + affine.shift`; `out` is as long as `map`.
#[inline(always)]
fn normalise<S: Simd>(simd: S, map: &[f32], affine: Affine, out: &mut [f32]) {
    let (scale, shift) = (simd.splat_f32s(affine.scale), simd.splat_f32s(affine.shift));
    let (to_head, to_tail) = S::as_mut_simd_f32s(out);
    let (head, tail) = S::as_simd_f32s(map);
    for (to, &vector) in to_head.iter_mut().zip(head) {
        *to = simd.mul_add_e_f32s(vector, scale, shift);
    }
    for (to, &value) in to_tail.iter_mut().zip(tail) {
        *to = value * affine.scale + affine.shift;
    }
}

/// Each pooling window of a normalised map (`[height, width]`): the position of its
/// largest value (the first of equals), with that value; every position, without
/// pooling.
#[inline(always)]
fn windows(
    normed: &[f32],
    [height, width]: [usize; 2],
    pool: usize,
    mut visit: impl FnMut(usize, f32),
) {
    if pool == 0 {
        normed
            .iter()
            .enumerate()
            .for_each(|(position, &value)| visit(position, value));
        return;
    }
    if pool == 2 {
        return pairs_of_rows(normed, [height, width], visit);
    }
    for y in 0..height / pool {
        let rows = &normed[y * pool * width..][..pool * width];
        for x in 0..width / pool {
            let mut best = (x * pool, rows[x * pool]);
            for row in 0..pool {
                for column in 0..pool {
                    let position = row * width + x * pool + column;
                    if rows[position] > best.1 {
                        best = (position, rows[position]);
                    }
                }
            }
            visit(y * pool * width + best.0, best.1);
        }
    }
}

/// [`windows`] of 2x2: each pair's larger value picked by selects rather than
/// branches (a window's winner is as random as its pixels), then the larger pair's.
#[inline(always)]
fn pairs_of_rows(normed: &[f32], [height, width]: [usize; 2], mut visit: impl FnMut(usize, f32)) {
    for y in 0..height / 2 {
        let (top, bottom) = normed[2 * y * width..][..2 * width].split_at(width);
        let windows = top.chunks_exact(2).zip(bottom.chunks_exact(2));
        for (x, (top, bottom)) in windows.take(width / 2).enumerate() {
            let (top_right, top_best) = larger(top[0], top[1]);
            let (bottom_right, bottom_best) = larger(bottom[0], bottom[1]);
            let (position, best) = if bottom_best > top_best {
                (width + bottom_right, bottom_best)
            } else {
                (top_right, top_best)
            };
            visit(2 * (y * width + x) + position, best);
        }
    }
}

/// Whether `right` is larger than `left` (0 or 1: the first of equals wins), and the
/// larger.
#[inline(always)]
fn larger(left: f32, right: f32) -> (usize, f32) {
    let right_wins = right > left;
    (
        usize::from(right_wins),
        if right_wins { right } else { left },
    )
}

/// Each window's winner, by [`ImageParamGrads`]: its position in its plane, and the
/// gradient that reaches it (zero where the ReLU stopped it).
#[derive(Clone, Copy, Default)]
pub(super) struct Winner {
    position: u32,
    grad: f32,
}

/// The maps' sizes: `[batch, channels, height, width]`, and the pooling's side.
#[derive(Clone, Copy)]
pub(super) struct Maps {
    pub(super) shape: [usize; 4],
    pub(super) pool: usize,
}

impl Maps {
    pub(super) fn plane(&self) -> usize {
        self.shape[2] * self.shape[3]
    }

    pub(super) fn out_shape(&self) -> [usize; 4] {
        let [batch, channels, height, width] = self.shape;
        match self.pool {
            0 => self.shape,
            pool => [batch, channels, height / pool, width / pool],
        }
    }

    pub(super) fn out_plane(&self) -> usize {
        let [_, _, height, width] = self.out_shape();
        height * width
    }

    /// Channel `c`'s map in each image of `xs`.
    fn channel(self, xs: &[f32], c: usize) -> impl Iterator<Item = &[f32]> {
        let [batch, channels, _, _] = self.shape;
        let plane = self.plane();
        (0..batch).map(move |n| &xs[(n * channels + c) * plane..][..plane])
    }
}

/// Channel `c`'s mean and biased variance over the batch, in two passes.
pub(super) struct ChannelStatistics<'a> {
    pub(super) xs: &'a [f32],
    pub(super) maps: Maps,
    pub(super) c: usize,
}

impl pulp::WithSimd for ChannelStatistics<'_> {
    type Output = (f32, f32);

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) -> (f32, f32) {
        let Self { xs, maps, c } = self;
        let count = (maps.shape[0] * maps.plane()) as f64;
        let mut sum = 0.0f64;
        for map in maps.channel(xs, c) {
            sum += f64::from(sums(simd, map, 0.0).0);
        }
        let mean = (sum / count) as f32;
        let mut squares = 0.0f64;
        for map in maps.channel(xs, c) {
            squares += f64::from(sums(simd, map, mean).1);
        }
        (mean, (squares / count) as f32)
    }
}

/// One image's output: each channel normalised, its windows' maxima through the ReLU.
pub(super) struct ForwardImage<'a> {
    pub(super) image: &'a [f32],
    pub(super) out: &'a mut [f32],
    pub(super) affines: &'a [Affine],
    pub(super) maps: Maps,
}

impl pulp::WithSimd for ForwardImage<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        let Self {
            image,
            out,
            affines,
            maps,
        } = self;
        let [_, _, height, width] = maps.shape;
        let mut normed = vec![0.0f32; maps.plane()];
        for ((out, map), &affine) in out
            .chunks_exact_mut(maps.out_plane())
            .zip(image.chunks_exact(maps.plane()))
            .zip(affines)
        {
            normalise(simd, map, affine, &mut normed);
            let mut slots = out.iter_mut();
            windows(&normed, [height, width], maps.pool, |_, value| {
                if let Some(slot) = slots.next() {
                    *slot = value.max(0.0);
                }
            });
        }
    }
}

/// One image's part of the gradients of beta and gamma, channel by channel: the sums
/// of the gradient reaching the norm's output (through the windows' maxima and the
/// ReLU), and of it times the normalised input; and each window's [`Winner`], for
/// [`ImageInputGrad`].
pub(super) struct ImageParamGrads<'a> {
    pub(super) image: &'a [f32],
    pub(super) out_grad: &'a [f32],
    pub(super) affines: &'a [Affine],
    pub(super) maps: Maps,
}

impl pulp::WithSimd for ImageParamGrads<'_> {
    type Output = (Vec<(f64, f64)>, Vec<Winner>);

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) -> (Vec<(f64, f64)>, Vec<Winner>) {
        let Self {
            image,
            out_grad,
            affines,
            maps,
        } = self;
        let [_, _, height, width] = maps.shape;
        let mut normed = vec![0.0f32; maps.plane()];
        let mut sums = Vec::with_capacity(affines.len());
        let mut winners = vec![Winner::default(); out_grad.len()];
        for (((map, map_grad), winners), &affine) in image
            .chunks_exact(maps.plane())
            .zip(out_grad.chunks_exact(maps.out_plane()))
            .zip(winners.chunks_exact_mut(maps.out_plane()))
            .zip(affines)
        {
            normalise(simd, map, affine, &mut normed);
            let mut slots = map_grad.iter().zip(winners.iter_mut());
            windows(&normed, [height, width], maps.pool, |position, value| {
                if let Some((&g, winner)) = slots.next() {
                    // A select, not a branch: whether a window passes the ReLU is as
                    // random as its pixels.
                    let g = if value > 0.0 { g } else { 0.0 };
                    *winner = Winner {
                        position: position as u32,
                        grad: g,
                    };
                }
            });
            // Four running sums each, in a fixed order: one would wait on its last add.
            let (mut sum, mut centred) = ([0.0f32; 4], [0.0f32; 4]);
            for four in winners.chunks(4) {
                for ((winner, sum), centred) in four.iter().zip(&mut sum).zip(&mut centred) {
                    *sum += winner.grad;
                    let x = map.get(winner.position as usize).copied().unwrap_or(0.0);
                    *centred += winner.grad * (x - affine.mean);
                }
            }
            let sum: f32 = sum.iter().sum();
            let sum_normed = centred.iter().sum::<f32>() * affine.inv_std;
            sums.push((f64::from(sum), f64::from(sum_normed)));
        }
        (sums, winners)
    }
}

/// One image's input gradient: `scale * (dy - mean(dy) - x̂ * mean(dy * x̂))` per
/// channel, `dy` being the gradient at the norm's output (nonzero at the windows'
/// positive maxima only: `winners`).
pub(super) struct ImageInputGrad<'a> {
    pub(super) image: &'a [f32],
    pub(super) winners: &'a [Winner],
    pub(super) x_grad: &'a mut [f32],
    pub(super) affines: &'a [Affine],
    /// Per channel: the means over the batch of `dy` and of `dy * x̂`.
    pub(super) means: &'a [(f32, f32)],
    pub(super) maps: Maps,
}

impl pulp::WithSimd for ImageInputGrad<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        let Self {
            image,
            winners,
            x_grad,
            affines,
            means,
            maps,
        } = self;
        let planes = x_grad
            .chunks_exact_mut(maps.plane())
            .zip(image.chunks_exact(maps.plane()));
        for (((grad, map), winners), (&affine, &(mean_grad, mean_normed_grad))) in planes
            .zip(winners.chunks_exact(maps.out_plane()))
            .zip(affines.iter().zip(means))
        {
            let k = affine.scale;
            // -k * (mean_grad + (v - mean) * inv_std * mean_normed_grad), as v * a + b.
            let a = -k * affine.inv_std * mean_normed_grad;
            let b = -k * (mean_grad - affine.mean * affine.inv_std * mean_normed_grad);
            let plain = Affine {
                scale: a,
                shift: b,
                ..affine
            };
            normalise(simd, map, plain, grad);
            for winner in winners {
                if let Some(to) = grad.get_mut(winner.position as usize) {
                    *to += k * winner.grad;
                }
            }
        }
    }
}
