//! A 2-d convolution with stride 1, no dilation and one group (the CNN's), forward and
//! backward: a Burn backend extension whose flex kernel runs Winograd's minimal
//! filtering for 3x3 and 5x5 kernels over enough channels (`winograd`), and otherwise
//! convolves directly, image by image on both cores, each output row as vectors of 16
//! columns for 8 output channels at once, from a zero-padded copy of the image; the
//! input's gradient is the same convolution of the output's gradient with the flipped
//! kernels, the weight's a sum of row products. Flex instead writes every image's patches out (im2col, 25 times the
//! input), multiplies, and copies between layouts around each step. Other backends run
//! Burn's own ops; the values are those of Burn's `conv2d`.

use burn::backend::TensorMetadata;
use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch};
use burn::nn::PaddingConfig2d;
use burn::nn::conv::Conv2d;
use burn::prelude::*;
use burn::tensor::ops::ConvOptions;

/// Zero padding before and after the rows, then the columns: `[(top, bottom), (left,
/// right)]`.
pub type Padding = [(usize, usize); 2];

fn options(padding: Padding) -> ConvOptions<2> {
    ConvOptions::new_with_padding([1, 1], padding, [1, 1], 1)
}

differentiable_extension! {
    /// `x` convolved with `weight`, plus `bias`.
    pub trait Conv2dOps: Backend {
        /// Burn's `conv2d` where no kernel is written. Returns `[batch, out_channels,
        /// height + top + bottom - kernel_height + 1, width + left + right - kernel_width
        /// + 1]`.
        fn conv2d_stride1(
            x: FloatTensor<Self>,      // [batch, in_channels, height, width]
            weight: FloatTensor<Self>, // [out_channels, in_channels, kernel_height, kernel_width]
            bias: FloatTensor<Self>,   // [out_channels]
            padding: Padding,
        ) -> FloatTensor<Self> {
            Self::conv2d(x, weight, Some(bias), options(padding))
        }
    }
}

/// The backward half of [`Conv2dOps::conv2d_stride1`] on a backend without autodiff.
pub trait Conv2dBackward: Backend {
    /// The gradients of `x` (when `needed.x`), of the weight and of the bias (when
    /// `needed.bias`: the zeros before a batch norm want none), given the output's
    /// gradient: Burn's `conv2d_*_backward` where no kernel is written.
    fn conv2d_stride1_backward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        padding: Padding,
        needed: Needed,
    ) -> (
        Option<FloatTensor<Self>>,
        FloatTensor<Self>,
        Option<FloatTensor<Self>>,
    ) {
        composed_backward::<Self>(x, weight, grad, padding, needed)
    }
}

/// Which inputs of a convolution want a gradient besides the weight.
#[derive(Debug, Clone, Copy)]
pub struct Needed {
    pub x: bool,
    pub bias: bool,
}

fn composed_backward<B: Backend>(
    x: FloatTensor<B>,
    weight: FloatTensor<B>,
    grad: FloatTensor<B>,
    padding: Padding,
    needed: Needed,
) -> (
    Option<FloatTensor<B>>,
    FloatTensor<B>,
    Option<FloatTensor<B>>,
) {
    let out_channels = weight.shape()[0];
    let grad_bias = needed.bias.then(|| {
        // Summed over the batch and the positions: [1, out_channels, 1, 1] -> [out_channels].
        let sums = [0, 2, 3]
            .into_iter()
            .fold(grad.clone(), |sum, dim| B::float_sum_dim(sum, dim));
        B::float_reshape(sums, [out_channels].into())
    });
    let grad_x = needed
        .x
        .then(|| B::conv2d_x_backward(x.clone(), weight.clone(), grad.clone(), options(padding)));
    let grad_weight = B::conv2d_weight_backward(x, weight, grad, options(padding));
    (grad_x, grad_weight, grad_bias)
}

/// `conv.forward(maps)`, through [`Conv2dOps`] for a convolution it covers (stride 1, no
/// dilation, one group, explicit padding). A convolution without a bias (one followed
/// by a batch norm) adds zeros, which changes no value and trains nothing.
///
/// # Shapes
/// - `maps`: `[batch, in_channels, height, width]`
/// - returns: `[batch, out_channels, height', width']`
pub fn conv2d_forward(conv: &Conv2d, maps: Tensor<4>) -> Tensor<4> {
    let covered = conv.stride == [1, 1] && conv.dilation == [1, 1] && conv.groups == 1;
    let PaddingConfig2d::Explicit(top, left, bottom, right) = conv.padding else {
        return conv.forward(maps);
    };
    if !covered {
        return conv.forward(maps);
    }
    let weight = conv.weight.val();
    let bias = match &conv.bias {
        Some(bias) => bias.val(),
        None => Tensor::zeros([weight.dims()[0]], &weight.device()),
    };
    Tensor::from_dispatch(<Dispatch as Conv2dOps>::conv2d_stride1(
        maps.into_dispatch(),
        weight.into_dispatch(),
        bias.into_dispatch(),
        [(top, bottom), (left, right)],
    ))
}

impl<B: Conv2dOps + Conv2dBackward, C: CheckpointStrategy> Conv2dOps for Autodiff<B, C> {
    fn conv2d_stride1(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        padding: Padding,
    ) -> FloatTensor<Self> {
        /// What the backward pass needs: `x` and the weight, and whether `x` wants a
        /// gradient (an image batch does not; the maps of a later block do).
        #[derive(Debug)]
        struct Conv2dGrad;

        impl<B: Conv2dBackward> Backward<B, 3> for Conv2dGrad {
            type State = (NodeId, NodeId, Padding);

            fn backward(
                self,
                Ops {
                    parents,
                    node,
                    state,
                    ..
                }: Ops<Self::State, 3>,
                gradients: &mut Gradients,
                saved: &mut Checkpointer,
            ) {
                let (x, weight, padding) = state;
                let x = saved.retrieve_node_output::<FloatTensor<B>>(x);
                let weight = saved.retrieve_node_output::<FloatTensor<B>>(weight);
                let grad = gradients.consume::<B>(&node);
                let [node_x, node_weight, node_bias] = parents;
                let needed = Needed {
                    x: node_x.is_some(),
                    bias: node_bias.is_some(),
                };
                let (grad_x, grad_weight, grad_bias) =
                    B::conv2d_stride1_backward(x, weight, grad, padding, needed);
                let registered = [
                    (node_x, grad_x),
                    (node_weight, Some(grad_weight)),
                    (node_bias, grad_bias),
                ];
                for (parent, grad) in registered {
                    if let (Some(parent), Some(grad)) = (parent, grad) {
                        gradients.register::<B>(parent.id, grad);
                    }
                }
            }
        }

        let convolve = |x: Self::FloatTensorPrimitive,
                        weight: Self::FloatTensorPrimitive,
                        bias: Self::FloatTensorPrimitive| {
            B::conv2d_stride1(
                x.into_primitive(),
                weight.into_primitive(),
                bias.into_primitive(),
                padding,
            )
        };
        match Conv2dGrad
            .prepare::<C>([x.node(), weight.node(), bias.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(mut prep) => {
                let state = (prep.checkpoint(&x), prep.checkpoint(&weight), padding);
                prep.finish(state, convolve(x, weight, bias))
            }
            OpsKind::UnTracked(prep) => prep.finish(convolve(x, weight, bias)),
        }
    }
}

generic_paths!(Conv2dOps, Conv2dBackward);

pub(crate) mod direct;
#[cfg(feature = "flex")]
mod flex;
#[cfg(feature = "flex")]
mod winograd;
