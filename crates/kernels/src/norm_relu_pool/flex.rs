//! The flex kernels of [`NormReluPoolOps`] and [`NormReluPoolBackward`]: the statistics
//! channel by channel, everything else image by image, on both cores. Sums are taken
//! in a fixed order whatever the threads, so that a resumed run adds the same numbers
//! as an uninterrupted one.

use burn::backend::Flex;
use burn::backend::flex::FlexTensor;
use burn::tensor::{DType, TensorData};
use rayon::prelude::*;

use super::{NormReluPoolBackward, NormReluPoolOps, composed, composed_backward};
use crate::flex::{contiguous, values};

/// `[batch, channels, height, width]` of a covered op: f32 maps of rank 4, per-channel
/// tensors of `channels` f32s, a pooling window no larger than the maps.
fn covered(x: &FlexTensor, per_channel: &[&FlexTensor], pool: usize) -> Option<[usize; 4]> {
    let shape = x.layout().shape();
    if x.dtype() != DType::F32 || shape.num_dims() != 4 {
        return None;
    }
    let [batch, channels, height, width] = shape.dims::<4>();
    let per_channel_fits = per_channel.iter().all(|tensor| {
        tensor.dtype() == DType::F32 && tensor.layout().shape().dims::<1>() == [channels]
    });
    let fits = per_channel_fits && pool <= height.min(width) && batch * channels > 0;
    fits.then_some([batch, channels, height, width])
}

/// The sum of `values`, sixteen partial sums at a time (which the compiler keeps in
/// one vector), in f64 past the partial sums.
fn sum_of(values: impl Iterator<Item = f32>) -> f64 {
    let mut lanes = [0.0f32; 16];
    for (index, value) in values.enumerate() {
        lanes[index % 16] += value;
    }
    lanes.iter().map(|&lane| f64::from(lane)).sum()
}

/// A channel's normalisation as `x * scale + shift`, and `1 / sqrt(variance + epsilon)`.
#[derive(Clone, Copy)]
struct Affine {
    scale: f32,
    shift: f32,
    mean: f32,
    inv_std: f32,
}

impl Affine {
    fn new(gamma: f32, beta: f32, mean: f32, variance: f32, epsilon: f64) -> Self {
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

/// `normed` = one channel's map normalised by `affine`.
#[inline(always)]
fn normalise(map: &[f32], affine: Affine, normed: &mut Vec<f32>) {
    normed.clear();
    normed.extend(map.iter().map(|&v| v * affine.scale + affine.shift));
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

fn tensor(values: Vec<f32>, shape: impl Into<Vec<usize>>) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape.into()))
}

impl NormReluPoolOps for Flex {
    fn norm_relu_pool(
        x: FlexTensor,
        gamma: FlexTensor,
        beta: FlexTensor,
        epsilon: f64,
        pool: usize,
    ) -> (FlexTensor, FlexTensor, FlexTensor) {
        let Some([batch, channels, height, width]) = covered(&x, &[&gamma, &beta], pool) else {
            return composed::<Flex>(x, gamma, beta, epsilon, pool);
        };
        let (x, gamma, beta) = (contiguous(x), contiguous(gamma), contiguous(beta));
        let (xs, gammas, betas) = (values(&x), values(&gamma), values(&beta));
        let plane = height * width;
        let count = (batch * plane) as f64;
        let channel_planes =
            |c: usize| (0..batch).map(move |n| &xs[(n * channels + c) * plane..][..plane]);
        let statistics: Vec<(f32, f32)> = (0..channels)
            .into_par_iter()
            .map(|c| {
                let sum: f64 = channel_planes(c)
                    .map(|map| sum_of(map.iter().copied()))
                    .sum();
                let mean = (sum / count) as f32;
                let squares: f64 = channel_planes(c)
                    .map(|map| sum_of(map.iter().map(|&v| (v - mean) * (v - mean))))
                    .sum();
                (mean, (squares / count) as f32)
            })
            .collect();
        let affines: Vec<Affine> = statistics
            .iter()
            .zip(gammas.iter().zip(betas))
            .map(|(&(mean, variance), (&gamma, &beta))| {
                Affine::new(gamma, beta, mean, variance, epsilon)
            })
            .collect();
        let [out_height, out_width] = match pool {
            0 => [height, width],
            pool => [height / pool, width / pool],
        };
        let out_plane = out_height * out_width;
        let mut out = vec![0.0f32; batch * channels * out_plane];
        out.par_chunks_mut(channels * out_plane)
            .zip(xs.par_chunks(channels * plane))
            .for_each(|(out, image)| {
                let mut normed = Vec::with_capacity(plane);
                for ((out, map), &affine) in out
                    .chunks_exact_mut(out_plane)
                    .zip(image.chunks_exact(plane))
                    .zip(&affines)
                {
                    normalise(map, affine, &mut normed);
                    let mut slots = out.iter_mut();
                    windows(&normed, [height, width], pool, |_, value| {
                        if let Some(slot) = slots.next() {
                            *slot = value.max(0.0);
                        }
                    });
                }
            });
        let (means, variances) = statistics.into_iter().unzip();
        (
            tensor(out, [batch, channels, out_height, out_width]),
            tensor(means, [channels]),
            tensor(variances, [channels]),
        )
    }
}

impl NormReluPoolBackward for Flex {
    fn norm_relu_pool_backward(
        x: FlexTensor,
        gamma: FlexTensor,
        beta: FlexTensor,
        mean: FlexTensor,
        variance: FlexTensor,
        epsilon: f64,
        pool: usize,
        grad: FlexTensor,
    ) -> [FlexTensor; 3] {
        let per_channel = [&gamma, &beta, &mean, &variance];
        let Some([batch, channels, height, width]) =
            covered(&x, &per_channel, pool).filter(|_| grad.dtype() == DType::F32)
        else {
            return composed_backward::<Flex>(x, gamma, beta, mean, variance, epsilon, pool, grad);
        };
        let (x, grad) = (contiguous(x), contiguous(grad));
        let [gamma, beta, mean, variance] = [gamma, beta, mean, variance].map(contiguous);
        let affines: Vec<Affine> = (0..channels)
            .map(|c| {
                let value = |tensor: &FlexTensor| values(tensor)[c];
                Affine::new(
                    value(&gamma),
                    value(&beta),
                    value(&mean),
                    value(&variance),
                    epsilon,
                )
            })
            .collect();
        let (xs, grads) = (values(&x), values(&grad));
        let plane = height * width;
        let out_plane = grads.len() / (batch * channels);
        // Per image and channel: the sums of the gradient reaching the norm's output
        // (through the pooling's maxima and the ReLU), and of it times the normalised
        // input.
        let partial: Vec<Vec<(f64, f64)>> = xs
            .par_chunks(channels * plane)
            .zip(grads.par_chunks(channels * out_plane))
            .map(|(image, image_grad)| {
                let mut normed = Vec::with_capacity(plane);
                image
                    .chunks_exact(plane)
                    .zip(image_grad.chunks_exact(out_plane))
                    .zip(&affines)
                    .map(|((map, map_grad), &affine)| {
                        normalise(map, affine, &mut normed);
                        let (mut sum, mut sum_normed) = (0.0f32, 0.0f32);
                        let mut grads = map_grad.iter();
                        windows(&normed, [height, width], pool, |position, value| {
                            let g = grads.next().copied().unwrap_or(0.0);
                            if value > 0.0 {
                                sum += g;
                                sum_normed += g * (map[position] - affine.mean) * affine.inv_std;
                            }
                        });
                        (f64::from(sum), f64::from(sum_normed))
                    })
                    .collect()
            })
            .collect();
        let mut beta_grad = vec![0.0f64; channels];
        let mut gamma_grad = vec![0.0f64; channels];
        for image in &partial {
            for (c, &(sum, sum_normed)) in image.iter().enumerate() {
                beta_grad[c] += sum;
                gamma_grad[c] += sum_normed;
            }
        }
        let count = (batch * plane) as f64;
        let mut x_grad = vec![0.0f32; xs.len()];
        x_grad
            .par_chunks_mut(channels * plane)
            .zip(xs.par_chunks(channels * plane))
            .zip(grads.par_chunks(channels * out_plane))
            .for_each(|((image_grad, image), out_grad)| {
                let mut normed = Vec::with_capacity(plane);
                for (c, ((grad, map), map_grad)) in image_grad
                    .chunks_exact_mut(plane)
                    .zip(image.chunks_exact(plane))
                    .zip(out_grad.chunks_exact(out_plane))
                    .enumerate()
                {
                    let affine = affines[c];
                    let k = affine.scale;
                    let mean_grad = (beta_grad[c] / count) as f32;
                    let mean_normed_grad = (gamma_grad[c] / count) as f32;
                    for (g, &v) in grad.iter_mut().zip(map) {
                        let normed = (v - affine.mean) * affine.inv_std;
                        *g = -k * (mean_grad + normed * mean_normed_grad);
                    }
                    normalise(map, affine, &mut normed);
                    let mut grads = map_grad.iter();
                    windows(&normed, [height, width], pool, |position, value| {
                        let out = grads.next().copied().unwrap_or(0.0);
                        if value > 0.0 {
                            grad[position] += k * out;
                        }
                    });
                }
            });
        let per_channel =
            |sums: Vec<f64>| tensor(sums.into_iter().map(|s| s as f32).collect(), [channels]);
        [
            tensor(x_grad, [batch, channels, height, width]),
            per_channel(gamma_grad),
            per_channel(beta_grad),
        ]
    }
}
