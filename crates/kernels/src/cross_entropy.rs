//! Cross-entropy from logits as one op, forward and backward: a Burn backend extension
//! whose flex kernel computes each row's log-sum-exp and the batch mean in one pass,
//! and whose backward writes `(softmax - one_hot) / batch` in one more, where Burn's
//! `CrossEntropyLoss` runs about ten tensor ops (the log-softmax's max, shift, exp,
//! sum, log and difference, a gather, a mean), each with an output and an autodiff
//! node of its own, and as many again backward. Other backends run Burn's ops.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::tensor::{FloatTensor, IntTensor};
use burn::backend::{Autodiff, Backend, Dispatch, Scalar, TensorMetadata};
use burn::prelude::*;
use burn::tensor::{FloatDType, IndexingUpdateOp};

differentiable_extension! {
    /// The mean over the batch of `-log softmax(logits)[target]`.
    pub trait CrossEntropyOps: Backend {
        /// Burn's `CrossEntropyLoss` (from logits, unweighted): where no kernel is written.
        ///
        /// # Shapes
        /// - `logits`: `[batch, classes]`
        /// - `targets`: `[batch]`, each below `classes`
        /// - returns: `[1]`
        fn cross_entropy(logits: FloatTensor<Self>, targets: IntTensor<Self>) -> FloatTensor<Self> {
            composed::<Self>(logits, targets)
        }
    }
}

/// The backward half of [`CrossEntropyOps::cross_entropy`] on a backend without
/// autodiff.
pub trait CrossEntropyBackward: Backend {
    /// The gradient of the logits, `(softmax(logits) - one_hot(targets)) * grad / batch`
    /// for the loss's gradient `grad`: by Burn's ops where no kernel is written.
    ///
    /// # Shapes
    /// - `logits` and the result: `[batch, classes]`
    /// - `targets`: `[batch]`
    /// - `grad`: `[1]`
    fn cross_entropy_backward(
        logits: FloatTensor<Self>,
        targets: IntTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        composed_backward::<Self>(logits, targets, grad)
    }
}

fn composed<B: Backend>(logits: FloatTensor<B>, targets: IntTensor<B>) -> FloatTensor<B> {
    let [batch] = targets.shape().dims();
    let picked = B::float_gather(
        1,
        B::log_softmax(logits, 1),
        B::int_reshape(targets, [batch, 1].into()),
    );
    B::float_neg(B::float_mean(picked))
}

fn composed_backward<B: Backend>(
    logits: FloatTensor<B>,
    targets: IntTensor<B>,
    grad: FloatTensor<B>,
) -> FloatTensor<B> {
    let [batch, classes] = logits.shape().dims();
    let probabilities = B::softmax(logits, 1);
    let (device, dtype) = (
        probabilities.device(),
        FloatDType::from(probabilities.dtype()),
    );
    let one_hot = B::float_scatter(
        1,
        B::float_zeros([batch, classes].into(), &device, dtype),
        B::int_reshape(targets, [batch, 1].into()),
        B::float_ones([batch, 1].into(), &device, dtype),
        IndexingUpdateOp::Add,
    );
    let scale = B::float_div_scalar(
        B::float_reshape(grad, [1, 1].into()),
        Scalar::from(batch as f32),
    );
    B::float_mul(B::float_sub(probabilities, one_hot), scale)
}

/// [`CrossEntropyOps::cross_entropy`] of `logits` against `targets`.
///
/// # Shapes
/// - `logits`: `[batch, classes]`
/// - `targets`: `[batch]`
/// - returns: `[1]`
pub fn cross_entropy(logits: Tensor<2>, targets: Tensor<1, Int>) -> Tensor<1> {
    Tensor::from_dispatch(<Dispatch as CrossEntropyOps>::cross_entropy(
        logits.into_dispatch(),
        targets.into_dispatch(),
    ))
}

impl<B: CrossEntropyOps + CrossEntropyBackward, C: CheckpointStrategy> CrossEntropyOps
    for Autodiff<B, C>
{
    fn cross_entropy(logits: FloatTensor<Self>, targets: IntTensor<Self>) -> FloatTensor<Self> {
        /// The logits and the targets: the softmax is computed again backward, which
        /// is cheaper than keeping it.
        #[derive(Debug)]
        struct CrossEntropyGrad;

        impl<B: CrossEntropyBackward> Backward<B, 1> for CrossEntropyGrad {
            type State = (FloatTensor<B>, IntTensor<B>);

            fn backward(
                self,
                ops: Ops<Self::State, 1>,
                grads: &mut Gradients,
                _checkpointer: &mut Checkpointer,
            ) {
                let [node_logits] = ops.parents;
                let grad = grads.consume::<B>(&ops.node);
                let (logits, targets) = ops.state;
                if let Some(node) = node_logits {
                    grads.register::<B>(node.id, B::cross_entropy_backward(logits, targets, grad));
                }
            }
        }

        match CrossEntropyGrad
            .prepare::<C>([logits.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let logits = logits.into_primitive();
                let loss = B::cross_entropy(logits.clone(), targets.clone());
                prep.finish((logits, targets), loss)
            }
            OpsKind::UnTracked(prep) => {
                prep.finish(B::cross_entropy(logits.into_primitive(), targets))
            }
        }
    }
}

generic_paths!(CrossEntropyOps, CrossEntropyBackward);

#[cfg(feature = "flex")]
mod flex {
    use burn::backend::Flex;
    use burn::backend::flex::FlexTensor;
    use burn::tensor::DType;

    use super::*;

    /// The logits' values, their class count and the targets as indices, when the
    /// kernels can take them: contiguous f32 logits, and every target a class.
    fn rows_and_classes<'a>(
        logits: &'a FlexTensor,
        targets: &FlexTensor,
    ) -> Option<(&'a [f32], Vec<usize>, usize)> {
        let dims = logits.layout().shape();
        if dims.num_dims() != 2 || logits.dtype() != DType::F32 {
            return None;
        }
        let [batch, classes] = dims.dims::<2>();
        let values = logits.as_slice::<f32>()?;
        let classes_of: Vec<usize> = targets
            .clone()
            .into_data()
            .convert::<i64>()
            .iter::<i64>()
            .map(|target| usize::try_from(target).ok().filter(|&t| t < classes))
            .collect::<Option<_>>()?;
        (classes_of.len() == batch && classes > 0).then_some((values, classes_of, classes))
    }

    /// Each row's log-sum-exp, shifted by its max as Burn's `log_softmax` is.
    fn log_sum_exp(row: &[f32]) -> (f32, f32) {
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let sum: f32 = row.iter().map(|&x| (x - max).exp()).sum();
        (max, sum.ln())
    }

    impl CrossEntropyOps for Flex {
        fn cross_entropy(logits: FlexTensor, targets: FlexTensor) -> FlexTensor {
            let Some((values, classes_of, classes)) = rows_and_classes(&logits, &targets) else {
                return composed::<Flex>(logits, targets);
            };
            let total: f32 = values
                .chunks_exact(classes)
                .zip(&classes_of)
                .map(|(row, &target)| {
                    let (max, log_sum) = log_sum_exp(row);
                    log_sum - (row[target] - max)
                })
                .sum();
            let mean = total / classes_of.len() as f32;
            FlexTensor::from_data(TensorData::new(vec![mean], [1]))
        }
    }

    impl CrossEntropyBackward for Flex {
        fn cross_entropy_backward(
            logits: FlexTensor,
            targets: FlexTensor,
            grad: FlexTensor,
        ) -> FlexTensor {
            let Some((values, classes_of, classes)) = rows_and_classes(&logits, &targets) else {
                return composed_backward::<Flex>(logits, targets, grad);
            };
            // The gradient is written over a copy of the logits.
            let mut values = values.to_vec();
            let loss_grad = (grad.dtype() == DType::F32)
                .then(|| grad.as_slice::<f32>().and_then(|g| g.first().copied()))
                .flatten();
            let Some(loss_grad) = loss_grad else {
                return composed_backward::<Flex>(logits, targets, grad);
            };
            let scale = loss_grad / classes_of.len() as f32;
            for (row, &target) in values.chunks_exact_mut(classes).zip(&classes_of) {
                let (max, log_sum) = log_sum_exp(row);
                for value in row.iter_mut() {
                    *value = (*value - max - log_sum).exp() * scale;
                }
                row[target] -= scale;
            }
            FlexTensor::from_data(TensorData::new(values, logits.layout().shape().clone()))
        }
    }
}

#[cfg(all(test, feature = "flex"))]
mod tests {
    use burn::backend::Flex;
    use burn::backend::flex::FlexTensor;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    use super::*;

    fn assert_close(ours: &[f32], burns: &[f32], what: &str) {
        assert_eq!(ours.len(), burns.len(), "{what}");
        for (a, b) in ours.iter().zip(burns) {
            assert!(
                (a - b).abs() <= 1e-6 + 1e-5 * b.abs(),
                "{what}: {a} against {b}"
            );
        }
    }

    /// Random logits (for some seeds large, so that the shift by the max matters) and
    /// targets, of a random batch and class count.
    fn case(seed: u64) -> (TensorData, TensorData) {
        let mut rng = StdRng::seed_from_u64(seed);
        let (batch, classes) = (rng.random_range(1..70), rng.random_range(1..20));
        let spread = if seed.is_multiple_of(3) { 80.0 } else { 4.0 };
        let logits: Vec<f32> = (0..batch * classes)
            .map(|_| rng.random_range(-spread..spread))
            .collect();
        let targets: Vec<i64> = (0..batch)
            .map(|_| rng.random_range(0..classes as i64))
            .collect();
        (
            TensorData::new(logits, [batch, classes]),
            TensorData::new(targets, [batch]),
        )
    }

    fn floats(data: TensorData) -> Vec<f32> {
        data.try_to_vec::<f32>().expect("f32")
    }

    #[test]
    fn the_flex_kernels_compute_as_the_generic_path_other_backends_run() {
        for seed in 0..24 {
            let (logits, targets) = case(seed);
            let (logits, targets) = (
                FlexTensor::from_data(logits),
                FlexTensor::from_data(targets),
            );
            let grad = FlexTensor::from_data(TensorData::new(vec![0.5f32], [1]));
            let (l, t) = (logits.clone(), targets.clone());
            assert_close(
                &floats(Flex::cross_entropy(l.clone(), t.clone()).into_data()),
                &floats(composed::<Flex>(l, t).into_data()),
                &format!("seed {seed}: the loss"),
            );
            let (l, t, g) = (logits, targets, grad);
            assert_close(
                &floats(Flex::cross_entropy_backward(l.clone(), t.clone(), g.clone()).into_data()),
                &floats(composed_backward::<Flex>(l, t, g).into_data()),
                &format!("seed {seed}: the gradient"),
            );
        }
    }
}
