//! A fully connected layer and its ReLU as one op, forward and backward: a Burn backend
//! extension whose flex kernel adds the bias and applies the ReLU in place on the
//! matrix product's output (where Burn runs the add and the ReLU as two more passes,
//! each with an output of its own and, in training, an autodiff node of its own), and
//! whose backward masks the gradient and sums the bias gradient in one pass. Other
//! backends run Burn's own ops. The values are those of Burn's `Linear` and `relu`.

use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch};
use burn::nn::Linear;
use burn::prelude::*;

differentiable_extension! {
    /// `x W + b`, then the ReLU if `relu`.
    pub trait FusedLinearOps: Backend {
        /// Burn's `linear` and `relu`: where no kernel is written. Returns
        /// `[batch, d_output]`.
        fn fused_linear(
            x: FloatTensor<Self>,      // [batch, d_input]
            weight: FloatTensor<Self>, // [d_input, d_output]
            bias: FloatTensor<Self>,   // [d_output]
            relu: bool,
        ) -> FloatTensor<Self> {
            composed::<Self>(x, weight, bias, relu)
        }
    }
}

/// The backward half of [`FusedLinearOps::fused_linear`] on a backend without
/// autodiff: the gradient of the pre-activation sum and of the bias.
pub trait FusedLinearBackward: Backend {
    /// `(grad_z, grad_bias)` for `z = x W + b`, given the op's `output` (after the ReLU;
    /// `None` without one) and its gradient: Burn's `relu_backward` and
    /// `linear_bias_backward` where no kernel is written.
    ///
    /// # Shapes
    /// - `output`, `grad` and the first result: `[batch, d_output]`
    /// - the second result: `[d_output]`
    fn fused_linear_output_backward(
        output: Option<FloatTensor<Self>>,
        grad: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        composed_backward::<Self>(output, grad)
    }
}

fn composed_backward<B: Backend>(
    output: Option<FloatTensor<B>>,
    grad: FloatTensor<B>,
) -> (FloatTensor<B>, FloatTensor<B>) {
    let grad = match output {
        Some(output) => B::relu_backward(output, grad),
        None => grad,
    };
    (grad.clone(), B::linear_bias_backward(grad))
}

fn composed<B: Backend>(
    x: FloatTensor<B>,
    weight: FloatTensor<B>,
    bias: FloatTensor<B>,
    relu: bool,
) -> FloatTensor<B> {
    let output = B::linear(x, weight, Some(bias));
    if relu { B::relu(output) } else { output }
}

/// `activation(layer(x))` through [`FusedLinearOps`] when `relu` or when there is no
/// activation (`relu == false`), for a layer with a bias; Burn's `Linear` otherwise.
///
/// # Shapes
/// - `x`: `[batch, d_input]`
/// - returns: `[batch, d_output]`
pub fn linear_forward(layer: &Linear, x: Tensor<2>, relu: bool) -> Tensor<2> {
    match &layer.bias {
        Some(bias) => Tensor::from_dispatch(<Dispatch as FusedLinearOps>::fused_linear(
            x.into_dispatch(),
            layer.weight.val().into_dispatch(),
            bias.val().into_dispatch(),
            relu,
        )),
        None => {
            let output = layer.forward(x);
            if relu {
                burn::tensor::activation::relu(output)
            } else {
                output
            }
        }
    }
}

impl<B: FusedLinearOps + FusedLinearBackward, C: CheckpointStrategy> FusedLinearOps
    for Autodiff<B, C>
{
    fn fused_linear(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        relu: bool,
    ) -> FloatTensor<Self> {
        /// What the backward pass needs: `x` for the weight's gradient, the weight for
        /// `x`'s, the output for the ReLU's mask.
        #[derive(Debug)]
        struct FusedLinearGrad;

        impl<B: FusedLinearBackward> Backward<B, 3> for FusedLinearGrad {
            type State = (Option<NodeId>, Option<NodeId>, Option<FloatTensor<B>>);

            fn backward(
                self,
                ops: Ops<Self::State, 3>,
                grads: &mut Gradients,
                checkpointer: &mut Checkpointer,
            ) {
                let [node_x, node_weight, node_bias] = ops.parents;
                let grad = grads.consume::<B>(&ops.node);
                let (x, weight, output) = ops.state;
                let (grad_z, grad_bias) = B::fused_linear_output_backward(output, grad);
                if let (Some(node), Some(weight)) = (node_x, weight) {
                    let weight = checkpointer.retrieve_node_output::<FloatTensor<B>>(weight);
                    grads.register::<B>(node.id, B::linear_x_backward(weight, grad_z.clone()));
                }
                if let (Some(node), Some(x)) = (node_weight, x) {
                    let x = checkpointer.retrieve_node_output::<FloatTensor<B>>(x);
                    grads.register::<B>(node.id, B::linear_weight_backward(x, grad_z));
                }
                if let Some(node) = node_bias {
                    grads.register::<B>(node.id, grad_bias);
                }
            }
        }

        let x_tracked = x.is_tracked();
        let weight_tracked = weight.is_tracked();
        match FusedLinearGrad
            .prepare::<C>([x.node(), weight.node(), bias.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(mut prep) => {
                // x is needed only for the weight's gradient, and the weight only for x's.
                let x_state = weight_tracked.then(|| prep.checkpoint(&x));
                let weight_state = x_tracked.then(|| prep.checkpoint(&weight));
                let output = B::fused_linear(
                    x.into_primitive(),
                    weight.into_primitive(),
                    bias.into_primitive(),
                    relu,
                );
                let mask = relu.then(|| output.clone());
                prep.finish((x_state, weight_state, mask), output)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::fused_linear(
                x.into_primitive(),
                weight.into_primitive(),
                bias.into_primitive(),
                relu,
            )),
        }
    }
}

generic_paths!(FusedLinearOps, FusedLinearBackward);

#[cfg(feature = "flex")]
mod flex {
    use burn::backend::Flex;
    use burn::backend::flex::FlexTensor;
    use burn::backend::ops::FloatTensorOps;
    use burn::tensor::{DType, TensorData};

    use super::*;
    use crate::flex::{contiguous, values_mut};

    impl FusedLinearOps for Flex {
        fn fused_linear(
            x: FlexTensor,
            weight: FlexTensor,
            bias: FlexTensor,
            relu: bool,
        ) -> FlexTensor {
            let [d_output] = bias.layout().shape().dims();
            let shapes_fit = x.layout().shape().num_dims() == 2
                && weight.layout().shape().num_dims() == 2
                && weight.layout().shape().dims::<2>()[1] == d_output;
            if !shapes_fit || [&x, &weight, &bias].iter().any(|t| t.dtype() != DType::F32) {
                return composed::<Flex>(x, weight, bias, relu);
            }
            let bias = contiguous(bias);
            let Some(bias_values) = bias.as_slice::<f32>() else {
                return composed::<Flex>(x, weight, bias, relu);
            };
            // A product Flex has just allocated: contiguous, and its own.
            let mut output = contiguous(Flex::float_matmul(x, weight));
            let rows = values_mut(&mut output).chunks_exact_mut(d_output.max(1));
            pulp::Arch::new().dispatch(|| {
                for row in rows {
                    for (value, &b) in row.iter_mut().zip(bias_values) {
                        let z = *value + b;
                        *value = if relu { relu_of(z) } else { z };
                    }
                }
            });
            output
        }
    }

    impl FusedLinearBackward for Flex {
        fn fused_linear_output_backward(
            output: Option<FlexTensor>,
            grad: FlexTensor,
        ) -> (FlexTensor, FlexTensor) {
            let dims = grad.layout().shape().dims::<2>();
            let fits = grad.layout().shape().num_dims() == 2
                && grad.dtype() == DType::F32
                && output.as_ref().is_none_or(|o| {
                    o.dtype() == DType::F32 && o.layout().shape().dims::<2>() == dims
                });
            if !fits {
                return composed_backward::<Flex>(output, grad);
            }
            let [_, d_output] = dims;
            let mut grad = contiguous(grad);
            let output = output.map(contiguous);
            let mask = output.as_ref().and_then(|o| o.as_slice::<f32>());
            if output.is_some() && mask.is_none() {
                return composed_backward::<Flex>(output, grad);
            }
            let mut bias_grad = vec![0.0f32; d_output];
            let rows = values_mut(&mut grad).chunks_exact_mut(d_output.max(1));
            // Compiled again for each instruction set pulp detects at run time, so that
            // the loops run in the widest vectors the CPU has.
            pulp::Arch::new().dispatch(|| match mask {
                Some(mask) => {
                    for (row, outputs) in rows.zip(mask.chunks_exact(d_output.max(1))) {
                        for ((g, &out), sum) in row.iter_mut().zip(outputs).zip(&mut bias_grad) {
                            // Flex's `relu_backward`: kept where the output is positive or NaN.
                            *g = if out <= 0.0 { 0.0 } else { *g };
                            *sum += *g;
                        }
                    }
                }
                None => {
                    for row in rows {
                        for (g, sum) in row.iter().zip(&mut bias_grad) {
                            *sum += *g;
                        }
                    }
                }
            });
            let bias_grad = FlexTensor::from_data(TensorData::new(bias_grad, [d_output]));
            (grad, bias_grad)
        }
    }

    /// Flex's ReLU: NaN stays NaN, as in PyTorch.
    #[inline(always)]
    fn relu_of(z: f32) -> f32 {
        if z.is_nan() || z > 0.0 { z } else { 0.0 }
    }
}
