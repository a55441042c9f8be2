//! The flex kernels of [`NormReluPoolOps`] and [`NormReluPoolBackward`]: the statistics
//! channel by channel, everything else image by image, on both cores. Sums are taken
//! in a fixed order whatever the threads, so that a resumed run adds the same numbers
//! as an uninterrupted one.

use burn::backend::Flex;
use burn::backend::flex::FlexTensor;
use burn::tensor::{DType, TensorData};
use rayon::prelude::*;

use super::passes::{
    Affine, ChannelStatistics, ForwardImage, ImageInputGrad, ImageParamGrads, Maps,
};
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
        let Some(shape) = covered(&x, &[&gamma, &beta], pool) else {
            return composed::<Flex>(x, gamma, beta, epsilon, pool);
        };
        let maps = Maps { shape, pool };
        let [_, channels, _, _] = shape;
        let (x, gamma, beta) = (contiguous(x), contiguous(gamma), contiguous(beta));
        let (xs, gammas, betas) = (values(&x), values(&gamma), values(&beta));
        let statistics: Vec<(f32, f32)> = (0..channels)
            .into_par_iter()
            .map(|c| pulp::Arch::new().dispatch(ChannelStatistics { xs, maps, c }))
            .collect();
        let affines: Vec<Affine> = statistics
            .iter()
            .zip(gammas.iter().zip(betas))
            .map(|(&(mean, variance), (&gamma, &beta))| {
                Affine::new(gamma, beta, mean, variance, epsilon)
            })
            .collect();
        let out_shape = maps.out_shape();
        let mut out = vec![0.0f32; out_shape.iter().product()];
        out.par_chunks_mut(channels * maps.out_plane())
            .zip(xs.par_chunks(channels * maps.plane()))
            .for_each(|(out, image)| {
                pulp::Arch::new().dispatch(ForwardImage {
                    image,
                    out,
                    affines: &affines,
                    maps,
                });
            });
        let (means, variances) = statistics.into_iter().unzip();
        (
            tensor(out, out_shape),
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
        let covered = covered(&x, &per_channel, pool).filter(|_| grad.dtype() == DType::F32);
        let Some(shape) = covered else {
            return composed_backward::<Flex>(x, gamma, beta, mean, variance, epsilon, pool, grad);
        };
        let maps = Maps { shape, pool };
        let [batch, channels, _, _] = shape;
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
        let (image_size, out_size) = (channels * maps.plane(), channels * maps.out_plane());
        let (partial, winners): (Vec<Vec<_>>, Vec<Vec<_>>) = xs
            .par_chunks(image_size)
            .zip(grads.par_chunks(out_size))
            .map(|(image, out_grad)| {
                pulp::Arch::new().dispatch(ImageParamGrads {
                    image,
                    out_grad,
                    affines: &affines,
                    maps,
                })
            })
            .unzip();
        // Summed image by image in order, whatever the threads.
        let mut param_grads = vec![(0.0f64, 0.0f64); channels];
        for image in &partial {
            for (total, &(sum, sum_normed)) in param_grads.iter_mut().zip(image) {
                total.0 += sum;
                total.1 += sum_normed;
            }
        }
        let count = (batch * maps.plane()) as f64;
        let means: Vec<(f32, f32)> = param_grads
            .iter()
            .map(|&(sum, sum_normed)| ((sum / count) as f32, (sum_normed / count) as f32))
            .collect();
        let mut x_grad = vec![0.0f32; xs.len()];
        x_grad
            .par_chunks_mut(image_size)
            .zip(xs.par_chunks(image_size))
            .zip(&winners)
            .for_each(|((x_grad, image), winners)| {
                pulp::Arch::new().dispatch(ImageInputGrad {
                    image,
                    winners,
                    x_grad,
                    affines: &affines,
                    means: &means,
                    maps,
                });
            });
        let (beta_grad, gamma_grad): (Vec<f32>, Vec<f32>) = param_grads
            .into_iter()
            .map(|(sum, sum_normed)| (sum as f32, sum_normed as f32))
            .unzip();
        [
            tensor(x_grad, shape),
            tensor(gamma_grad, [channels]),
            tensor(beta_grad, [channels]),
        ]
    }
}
