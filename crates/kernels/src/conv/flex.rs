//! The flex kernels of [`Conv2dOps`] and [`Conv2dBackward`]: the batch's images
//! convolved on both cores, by [`super::winograd`] where it covers the convolution,
//! else by [`super::direct`].

use burn::backend::Flex;
use burn::backend::flex::FlexTensor;
use burn::backend::ops::ModuleOps;
use burn::tensor::{DType, TensorData};
use rayon::prelude::*;

use super::direct::{Convolve, Geometry, WEIGHT_GRAD_PARTS, WeightGrad, packed};
use super::winograd;
use super::{Conv2dBackward, Conv2dOps, Needed, Padding, composed_backward, options};
use crate::flex::{contiguous, values};

/// The sizes of a convolution this kernel covers: f32 tensors of the right ranks
/// and matching channels, and an output of at least one position. With the batch.
fn geometry(x: &FlexTensor, weight: &FlexTensor, padding: Padding) -> Option<(usize, Geometry)> {
    if x.dtype() != DType::F32 || weight.dtype() != DType::F32 {
        return None;
    }
    if x.layout().shape().num_dims() != 4 || weight.layout().shape().num_dims() != 4 {
        return None;
    }
    let [batch, in_channels, height, width] = x.layout().shape().dims::<4>();
    let [out_channels, weight_in, kernel_height, kernel_width] =
        weight.layout().shape().dims::<4>();
    let g = Geometry {
        in_channels,
        height,
        width,
        out_channels,
        kernel: [kernel_height, kernel_width],
        padding,
    };
    let [out_height, out_width] = g.output();
    let fits = weight_in == in_channels
        && kernel_height > 0
        && kernel_width > 0
        && out_height > 0
        && out_width > 0
        && height + padding[0].0 + padding[0].1 >= kernel_height
        && width + padding[1].0 + padding[1].1 >= kernel_width;
    fits.then_some((batch, g))
}

/// Convolves every image of `x` (contiguous `[batch, ...]`) on both cores.
fn convolve_batch(
    x: &[f32],
    kernels: &[f32],
    bias: Option<&[f32]>,
    batch: usize,
    g: &Geometry,
) -> Vec<f32> {
    let [in_size, out_size] = g.image_sizes();
    let mut out = vec![0.0f32; batch * out_size];
    // One padded copy per rayon task, its zero borders kept from image to image.
    out.par_chunks_mut(out_size.max(1))
        .zip(x.par_chunks(in_size.max(1)))
        .for_each_init(
            || vec![0.0f32; g.padded_len()],
            |planes, (out, image)| {
                g.pad_into(image, planes);
                pulp::Arch::new().dispatch(Convolve {
                    planes,
                    kernels,
                    bias,
                    g,
                    out,
                });
            },
        );
    out
}

impl Conv2dOps for Flex {
    fn conv2d_stride1(
        x: FlexTensor,
        weight: FlexTensor,
        bias: FlexTensor,
        padding: Padding,
    ) -> FlexTensor {
        let Some((batch, g)) =
            geometry(&x, &weight, padding).filter(|_| bias.dtype() == DType::F32)
        else {
            return Flex::conv2d(x, weight, Some(bias), options(padding));
        };
        let (x, weight, bias) = (contiguous(x), contiguous(weight), contiguous(bias));
        let (x, weight, bias) = (values(&x), values(&weight), Some(values(&bias)));
        let out = match winograd::Layout::new(&g) {
            Some(layout) => winograd::forward(&layout, x, weight, bias, batch),
            None => convolve_batch(x, &packed(weight, &g, false), bias, batch, &g),
        };
        let [out_height, out_width] = g.output();
        FlexTensor::from_data(TensorData::new(
            out,
            [batch, g.out_channels, out_height, out_width],
        ))
    }
}

impl Conv2dBackward for Flex {
    fn conv2d_stride1_backward(
        x: FlexTensor,
        weight: FlexTensor,
        grad: FlexTensor,
        padding: Padding,
        needed: Needed,
    ) -> (Option<FlexTensor>, FlexTensor, Option<FlexTensor>) {
        let covered = geometry(&x, &weight, padding).filter(|_| grad.dtype() == DType::F32);
        let Some((batch, g)) = covered else {
            return composed_backward::<Flex>(x, weight, grad, padding, needed);
        };
        let method = match (winograd::Layout::new(&g), g.transposed()) {
            (Some(layout), _) => Ok(layout),
            (None, Some(transposed)) => Err(transposed),
            (None, None) => return composed_backward::<Flex>(x, weight, grad, padding, needed),
        };
        let [out_height, out_width] = g.output();
        let positions = out_height * out_width;
        let (x, weight, grad) = (contiguous(x), contiguous(weight), contiguous(grad));
        let (x_values, weight_values, grad_values) = (values(&x), values(&weight), values(&grad));
        let grad_bias = needed.bias.then(|| {
            let mut sums = vec![0.0f32; g.out_channels];
            for image in grad_values.chunks_exact((g.out_channels * positions).max(1)) {
                for (map, sum) in image.chunks_exact(positions.max(1)).zip(&mut sums) {
                    *sum += map.iter().sum::<f32>();
                }
            }
            FlexTensor::from_data(TensorData::new(sums, [g.out_channels]))
        });
        // Winograd's layout, or the direct input gradient's convolution.
        let (grad_x, grad_weight) = match method {
            Ok(layout) => winograd::backward(
                &layout,
                x_values,
                weight_values,
                grad_values,
                batch,
                needed.x,
            ),
            Err(transposed) => (
                needed.x.then(|| {
                    let kernels = packed(weight_values, &transposed, true);
                    convolve_batch(grad_values, &kernels, None, batch, &transposed)
                }),
                direct_weight_grad(x_values, grad_values, batch, &g),
            ),
        };
        let grad_x = grad_x.map(|dx| {
            FlexTensor::from_data(TensorData::new(
                dx,
                [batch, g.in_channels, g.height, g.width],
            ))
        });
        let grad_weight = FlexTensor::from_data(TensorData::new(
            grad_weight,
            [g.out_channels, g.in_channels, g.kernel[0], g.kernel[1]],
        ));
        (grad_x, grad_weight, grad_bias)
    }
}

/// The weight's gradient of a direct convolution, summed over the batch in a fixed
/// order, in a fixed number of parts, whatever the threads: a resumed run must add
/// the same numbers in the same order as an uninterrupted one.
fn direct_weight_grad(x: &[f32], out_grad: &[f32], batch: usize, g: &Geometry) -> Vec<f32> {
    let [in_size, out_size] = g.image_sizes();
    let taps = g.out_channels * g.in_channels * g.kernel_size();
    let part = batch.div_ceil(WEIGHT_GRAD_PARTS).max(1);
    let parts: Vec<Vec<f32>> = x
        .par_chunks((part * in_size).max(1))
        .zip(out_grad.par_chunks((part * out_size).max(1)))
        .map(|(images, out_grads)| {
            let mut sum = vec![0.0f32; taps];
            // Scratch kept from image to image: their zeros stay where they are.
            let mut planes = vec![0.0f32; g.padded_len()];
            let mut rows = Vec::new();
            for (image, out_grad) in images
                .chunks_exact(in_size.max(1))
                .zip(out_grads.chunks_exact(out_size.max(1)))
            {
                g.pad_into(image, &mut planes);
                pulp::Arch::new().dispatch(WeightGrad {
                    planes: &planes,
                    out_grad,
                    g,
                    rows: &mut rows,
                    grad: &mut sum,
                });
            }
            sum
        })
        .collect();
    parts.into_iter().fold(vec![0.0f32; taps], |mut sum, part| {
        sum.iter_mut().zip(part).for_each(|(s, p)| *s += p);
        sum
    })
}
