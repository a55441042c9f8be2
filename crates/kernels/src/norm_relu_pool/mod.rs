//! A CNN block's batch norm (training mode: the batch's own statistics), ReLU and max
//! pooling as one op, forward and backward: a Burn backend extension whose flex kernel
//! takes the statistics in one pass per channel and writes the pooled output in one
//! more, and whose backward finds each window's maximum again (no indices kept) and
//! writes the input's gradient in two passes. Burn's ops take about twenty passes
//! with their own copies and layout changes for the same values. Other backends run
//! Burn's ops (`batch_norm_train`, `relu`, `max_pool2d`).

use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, TensorMetadata, get_or_init_device_settings};
use burn::nn::BatchNorm;
use burn::prelude::*;

#[cfg(feature = "flex")]
mod flex;
#[cfg(feature = "flex")]
mod passes;

differentiable_extension! {
    /// `max_pool(relu(batch_norm(x)))` with the batch's statistics, and those
    /// statistics.
    pub trait NormReluPoolOps: Backend {
        /// Burn's `batch_norm_train`, `relu` and `max_pool2d` (a `pool` square of stride
        /// `pool`, none for 0) where no kernel is written. Returns the output (`[batch,
        /// channels, height / pool, width / pool]`), the batch's mean and its biased
        /// variance (each `[channels]`), as `batch_norm_train` returns them.
        fn norm_relu_pool(
            x: FloatTensor<Self>,     // [batch, channels, height, width]
            gamma: FloatTensor<Self>, // [channels]
            beta: FloatTensor<Self>,  // [channels]
            epsilon: f64,
            pool: usize,
        ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
            composed::<Self>(x, gamma, beta, epsilon, pool)
        }
    }
}

/// The backward half of [`NormReluPoolOps::norm_relu_pool`] on a backend without
/// autodiff.
pub trait NormReluPoolBackward: Backend {
    /// The gradients of `x`, `gamma` and `beta` given the output's gradient `grad`
    /// and the batch statistics the forward returned: by Burn's ops where no kernel is
    /// written.
    #[allow(clippy::too_many_arguments)]
    fn norm_relu_pool_backward(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        mean: FloatTensor<Self>,
        variance: FloatTensor<Self>,
        epsilon: f64,
        pool: usize,
        grad: FloatTensor<Self>,
    ) -> [FloatTensor<Self>; 3] {
        composed_backward::<Self>(x, gamma, beta, mean, variance, epsilon, pool, grad)
    }
}

fn pooled<B: Backend>(maps: FloatTensor<B>, pool: usize) -> FloatTensor<B> {
    match pool {
        0 => maps,
        pool => B::max_pool2d(maps, [pool, pool], [pool, pool], [0, 0], [1, 1], false),
    }
}

fn composed<B: Backend>(
    x: FloatTensor<B>,
    gamma: FloatTensor<B>,
    beta: FloatTensor<B>,
    epsilon: f64,
    pool: usize,
) -> (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>) {
    let normed = B::batch_norm_train(x, gamma, beta, epsilon);
    let output = pooled::<B>(B::relu(normed.output), pool);
    (output, normed.mean, normed.variance)
}

#[allow(clippy::too_many_arguments)]
fn composed_backward<B: Backend>(
    x: FloatTensor<B>,
    gamma: FloatTensor<B>,
    beta: FloatTensor<B>,
    mean: FloatTensor<B>,
    variance: FloatTensor<B>,
    epsilon: f64,
    pool: usize,
    grad: FloatTensor<B>,
) -> [FloatTensor<B>; 3] {
    let normed = B::batch_norm(
        x.clone(),
        gamma.clone(),
        beta,
        mean.clone(),
        variance.clone(),
        epsilon,
    );
    let activated = B::relu(normed);
    let activated_grad = match pool {
        0 => grad,
        pool => {
            let settings = get_or_init_device_settings::<B>(&activated.device());
            // Kernel, stride, padding and dilation of Burn's MaxPool2d as blocks build it.
            let (k, s, p, d) = ([pool, pool], [pool, pool], [0, 0], [1, 1]);
            let int = settings.int_dtype;
            let indices = B::max_pool2d_with_indices(activated.clone(), k, s, p, d, false, int);
            let indices = indices.indices;
            B::max_pool2d_with_indices_backward(activated.clone(), k, s, p, d, false, grad, indices)
                .x_grad
        }
    };
    let normed_grad = B::relu_backward(activated, activated_grad);
    let grads = B::batch_norm_train_backward(x, gamma, mean, variance, epsilon, normed_grad);
    [grads.x_grad, grads.gamma_grad, grads.beta_grad]
}

/// `max_pool(relu(norm(maps)))` for a block's batch norm in training (on an autodiff
/// device, the norm not frozen), through [`NormReluPoolOps`], its running statistics
/// updated as Burn's `BatchNorm` updates them; in inference, Burn's own ops.
///
/// # Shapes
/// - `maps`: `[batch, channels, height, width]`
/// - returns: `[batch, channels, height / pool, width / pool]`; `pool` 0 pools nothing
pub fn norm_relu_pool(norm: &BatchNorm, maps: Tensor<4>, pool: usize) -> Tensor<4> {
    if !(maps.device().is_autodiff() && norm.training.is_enabled()) {
        let activated = burn::tensor::activation::relu(norm.forward(maps));
        return match pool {
            0 => activated,
            pool => Tensor::from_dispatch(pooled::<Dispatch>(activated.into_dispatch(), pool)),
        };
    }
    let (output, mean, variance) = <Dispatch as NormReluPoolOps>::norm_relu_pool(
        maps.into_dispatch(),
        norm.gamma.val().into_dispatch(),
        norm.beta.val().into_dispatch(),
        norm.epsilon,
        pool,
    );
    let device = norm.gamma.device();
    let momentum = norm.momentum;
    let running = |state: &burn::module::RunningState<Tensor<1>>, batch: FloatTensor<Dispatch>| {
        let batch = Tensor::<1>::from_dispatch(batch).detach();
        let updated = state
            .value_sync()
            .to_device(&device)
            .mul_scalar(1.0 - momentum)
            .add(batch.mul_scalar(momentum));
        state.update(updated.detach());
    };
    running(&norm.running_mean, mean);
    running(&norm.running_var, variance);
    Tensor::from_dispatch(output)
}

impl<B, C> NormReluPoolOps for Autodiff<B, C>
where
    B: NormReluPoolOps + NormReluPoolBackward,
    C: CheckpointStrategy,
{
    fn norm_relu_pool(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
        pool: usize,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        /// What the backward pass needs: the input, gamma and beta, the batch's
        /// statistics as the forward computed them.
        #[derive(Debug)]
        struct NormReluPoolGrad;

        type Statistics<B> = (FloatTensor<B>, FloatTensor<B>);

        impl<B: NormReluPoolBackward> Backward<B, 3> for NormReluPoolGrad {
            type State = (NodeId, NodeId, NodeId, Statistics<B>, f64, usize);

            fn backward(
                self,
                ops: Ops<Self::State, 3>,
                gradients: &mut Gradients,
                saved: &mut Checkpointer,
            ) {
                let (x, gamma, beta, (mean, variance), epsilon, pool) = ops.state;
                let [x, gamma, beta] =
                    [x, gamma, beta].map(|id| saved.retrieve_node_output::<FloatTensor<B>>(id));
                let grad = gradients.consume::<B>(&ops.node);
                let grads =
                    B::norm_relu_pool_backward(x, gamma, beta, mean, variance, epsilon, pool, grad);
                for (parent, grad) in ops.parents.into_iter().zip(grads) {
                    if let Some(parent) = parent {
                        gradients.register::<B>(parent.id, grad);
                    }
                }
            }
        }

        let untracked = FloatTensor::<Self>::new;
        let compute = |x: FloatTensor<Self>, gamma: FloatTensor<Self>, beta: FloatTensor<Self>| {
            let primitives = [x, gamma, beta].map(|tensor| tensor.into_primitive());
            let [x, gamma, beta] = primitives;
            B::norm_relu_pool(x, gamma, beta, epsilon, pool)
        };
        match NormReluPoolGrad
            .prepare::<C>([x.node(), gamma.node(), beta.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(mut prep) => {
                let saved = (
                    prep.checkpoint(&x),
                    prep.checkpoint(&gamma),
                    prep.checkpoint(&beta),
                );
                let (output, mean, variance) = compute(x, gamma, beta);
                let statistics = (mean.clone(), variance.clone());
                let output = prep.finish(
                    (saved.0, saved.1, saved.2, statistics, epsilon, pool),
                    output,
                );
                (output, untracked(mean), untracked(variance))
            }
            OpsKind::UnTracked(prep) => {
                let (output, mean, variance) = compute(x, gamma, beta);
                (prep.finish(output), untracked(mean), untracked(variance))
            }
        }
    }
}

generic_paths!(NormReluPoolOps, NormReluPoolBackward);
