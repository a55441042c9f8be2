//! Adam in one pass: a Burn backend extension whose flex kernel reads a parameter, its
//! gradient and both moments once and writes all three back, where Burn's `Adam` runs
//! about 13 tensor ops per parameter (each a pass and, mostly, an allocation). Other
//! backends get the same arithmetic op by op, which their fusion can merge. The result
//! is bit-identical to Burn's `Adam`, but for moments Burn would leave subnormal, which
//! are zero here (see `flushed`), and its state is Burn's `AdamState`, so checkpoints
//! of either optimizer load into the other.

use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, Dispatch, Scalar, backend_extension};
use burn::optim::{AdamState, AdaptiveMomentumState, LearningRate, Optimizer};
use burn::prelude::*;

/// The per-step constants of one Adam update, computed once per parameter tensor as
/// Burn's `Adam` computes them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamStep {
    /// The first step of this parameter: the moments start from the gradient alone.
    pub first: bool,
    /// The L2 penalty folded into the gradient (`param * penalty + grad`), if any.
    pub penalty: Option<f32>,
    pub beta_1: f32,
    pub beta_2: f32,
    /// `sqrt(1 - beta_2^t) / (1 - beta_1^t)`.
    pub combined_factor: f32,
    /// `epsilon * sqrt(1 - beta_2^t)`, added to `sqrt(moment_2)`.
    pub guard: f32,
    pub lr: f32,
}

/// One Adam update of a parameter tensor: `(param, moment_1, moment_2)` after it.
#[backend_extension(
    Flex: cfg(feature = "flex"),
    NdArray: cfg(feature = "ndarray"),
    Cube: cfg(any(feature = "wgpu", feature = "cuda")),
)]
pub trait AdamStepOps: Backend {
    /// The update by Burn's tensor ops, in `Adam`'s order: where no kernel is written.
    ///
    /// # Shapes
    /// - all four inputs and the three outputs: the parameter's shape
    fn adam_step(
        param: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        moment_1: FloatTensor<Self>,
        moment_2: FloatTensor<Self>,
        step: AdamStep,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        composed::<Self>(param, grad, moment_1, moment_2, step)
    }
}

/// Burn's `Adam::step` and `AdaptiveMomentum::transform`, op for op.
fn composed<B: Backend>(
    param: FloatTensor<B>,
    grad: FloatTensor<B>,
    moment_1: FloatTensor<B>,
    moment_2: FloatTensor<B>,
    step: AdamStep,
) -> (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>) {
    let scalar = |value: f32| Scalar::from(value);
    let grad = match step.penalty {
        Some(penalty) => B::float_add(B::float_mul_scalar(param.clone(), scalar(penalty)), grad),
        None => grad,
    };
    let grad_share = B::float_mul_scalar(grad.clone(), scalar(1.0 - step.beta_1));
    let square_share =
        B::float_mul_scalar(B::float_mul(grad.clone(), grad), scalar(1.0 - step.beta_2));
    let (moment_1, moment_2) = if step.first {
        (grad_share, square_share)
    } else {
        (
            B::float_add(
                B::float_mul_scalar(moment_1, scalar(step.beta_1)),
                grad_share,
            ),
            B::float_add(
                B::float_mul_scalar(moment_2, scalar(step.beta_2)),
                square_share,
            ),
        )
    };
    let update = B::float_div(
        B::float_mul_scalar(moment_1.clone(), scalar(step.combined_factor)),
        B::float_add_scalar(B::float_sqrt(moment_2.clone()), scalar(step.guard)),
    );
    let param = B::float_sub(param, B::float_mul_scalar(update, scalar(step.lr)));
    (param, moment_1, moment_2)
}

generic_paths!(AdamStepOps);

#[cfg(feature = "flex")]
mod flex {
    use burn::backend::Flex;
    use burn::backend::flex::FlexTensor;
    use burn::tensor::DType;

    use super::*;
    use crate::flex::{contiguous, values_mut};

    impl AdamStepOps for Flex {
        fn adam_step(
            param: FlexTensor,
            grad: FlexTensor,
            moment_1: FlexTensor,
            moment_2: FlexTensor,
            step: AdamStep,
        ) -> (FlexTensor, FlexTensor, FlexTensor) {
            let len = param.layout().shape().num_elements();
            let fits = [&param, &grad, &moment_1, &moment_2]
                .iter()
                .all(|t| t.dtype() == DType::F32 && t.layout().shape().num_elements() == len);
            if !fits {
                return composed::<Self>(param, grad, moment_1, moment_2, step);
            }
            let (param, grad) = (contiguous(param), contiguous(grad));
            let (mut moment_1, mut moment_2) = (contiguous(moment_1), contiguous(moment_2));
            let (Some(param_values), Some(grad_values)) =
                (param.as_slice::<f32>(), grad.as_slice::<f32>())
            else {
                return composed::<Self>(param, grad, moment_1, moment_2, step);
            };
            // The updated parameter goes to a buffer of its own (zero-filled: a loop
            // over slices vectorises, `extend` from an iterator was compiled apart from
            // the target-feature function, for SSE2): Burn's Learner still holds the
            // model being stepped, so the parameter's buffer is shared, and updating it
            // in place would first copy it whole.
            let mut updated = vec![0.0; len];
            pulp::Arch::new().dispatch(Update {
                param: param_values,
                grad: grad_values,
                moment_1: values_mut(&mut moment_1),
                moment_2: values_mut(&mut moment_2),
                step,
                updated: &mut updated,
            });
            let shape = param.layout().shape().clone();
            let param = FlexTensor::from_data(TensorData::new(updated, shape));
            (param, moment_1, moment_2)
        }
    }

    /// The kernel's loop over one parameter tensor, compiled again for each
    /// instruction set pulp detects at run time (inlined into its `#[target_feature]`
    /// functions, which a closure this large is not), so that it runs in the widest
    /// vectors the CPU has.
    struct Update<'a> {
        param: &'a [f32],
        grad: &'a [f32],
        moment_1: &'a mut [f32],
        moment_2: &'a mut [f32],
        step: AdamStep,
        /// Where the updated parameter goes, as long as `param`.
        updated: &'a mut [f32],
    }

    impl pulp::WithSimd for Update<'_> {
        type Output = ();

        #[inline(always)]
        fn with_simd<S: pulp::Simd>(self, _: S) {
            update(
                self.param,
                self.grad,
                self.moment_1,
                self.moment_2,
                self.step,
                self.updated,
            );
        }
    }

    /// The branches on the step's kind are taken outside the loop, so that each
    /// variant vectorises.
    #[inline(always)]
    fn update(
        param: &[f32],
        grad: &[f32],
        moment_1: &mut [f32],
        moment_2: &mut [f32],
        step: AdamStep,
        updated: &mut [f32],
    ) {
        let elements = updated
            .iter_mut()
            .zip(param.iter().zip(grad))
            .zip(moment_1.iter_mut().zip(moment_2.iter_mut()));
        let (keep_1, keep_2) = (1.0 - step.beta_1, 1.0 - step.beta_2);
        match (step.first, step.penalty) {
            (true, None) => {
                for ((out, (&p, &g)), (m_1, m_2)) in elements {
                    (*m_1, *m_2) = (flushed(g * keep_1), flushed((g * g) * keep_2));
                    *out = stepped(p, *m_1, *m_2, step);
                }
            }
            (false, None) => {
                for ((out, (&p, &g)), (m_1, m_2)) in elements {
                    *m_1 = flushed(*m_1 * step.beta_1 + g * keep_1);
                    *m_2 = flushed(*m_2 * step.beta_2 + (g * g) * keep_2);
                    *out = stepped(p, *m_1, *m_2, step);
                }
            }
            (first, Some(penalty)) => {
                for ((out, (&p, &g)), (m_1, m_2)) in elements {
                    let g = p * penalty + g;
                    if first {
                        (*m_1, *m_2) = (flushed(g * keep_1), flushed((g * g) * keep_2));
                    } else {
                        *m_1 = flushed(*m_1 * step.beta_1 + g * keep_1);
                        *m_2 = flushed(*m_2 * step.beta_2 + (g * g) * keep_2);
                    }
                    *out = stepped(p, *m_1, *m_2, step);
                }
            }
        }
    }

    /// `value`, or zero where it is subnormal (below 1.2e-38 in magnitude).
    ///
    /// Adam makes subnormal moments as a matter of course: a weight of a pixel that is
    /// almost always blank gets a gradient now and then, and its first moment then
    /// decays by `beta_1` a step for hundreds of steps, through the subnormals, where
    /// every multiply, divide and square root on it costs the CPU a microcode assist
    /// (on this project's machine they took the kernel from a tenth of a training
    /// epoch to a third). Such a moment moves its parameter by less than 1e-38 times
    /// the learning rate; XLA and TensorFlow flush subnormals on CPUs by default,
    /// PyTorch on request (`torch.set_flush_denormal`). NaN and infinities stay.
    #[inline(always)]
    fn flushed(value: f32) -> f32 {
        if value.abs() < f32::MIN_POSITIVE {
            0.0
        } else {
            value
        }
    }

    /// The parameter after its update. A function, not a closure, so that it is
    /// inlined into the vectorised loops (a closure was compiled apart, for SSE2).
    #[inline(always)]
    fn stepped(param: f32, moment_1: f32, moment_2: f32, step: AdamStep) -> f32 {
        let update = (moment_1 * step.combined_factor) / (moment_2.sqrt() + step.guard);
        param - update * step.lr
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        fn tensor(values: &[f32]) -> FlexTensor {
            FlexTensor::from_data(TensorData::new(values.to_vec(), [values.len()]))
        }

        fn floats(tensor: FlexTensor) -> Vec<f32> {
            tensor.into_data().try_to_vec::<f32>().expect("f32")
        }

        #[test]
        fn moments_decaying_into_subnormals_become_zero_and_the_rest_is_burns_bit_for_bit() {
            // The first two moments decay (no gradient) to 0.9 * 1.3e-38, a subnormal.
            let (param, grad) = ([0.5, -0.25, 1.0], [0.0, 0.0, 0.1]);
            let (moment_1, moment_2) = ([1.3e-38, -1.3e-38, 0.02], [1e-6, 1e-6, 1e-4]);
            let step = AdamStep {
                first: false,
                penalty: None,
                beta_1: 0.9,
                beta_2: 0.999,
                combined_factor: 1.5,
                guard: 1e-8,
                lr: 1e-3,
            };
            let run = |fused: bool| {
                let inputs = (tensor(&param), tensor(&grad));
                let moments = (tensor(&moment_1), tensor(&moment_2));
                let (p, m_1, m_2) = if fused {
                    Flex::adam_step(inputs.0, inputs.1, moments.0, moments.1, step)
                } else {
                    composed::<Flex>(inputs.0, inputs.1, moments.0, moments.1, step)
                };
                (floats(p), floats(m_1), floats(m_2))
            };
            let (ours, burns) = (run(true), run(false));
            assert!(burns.1[..2].iter().all(|m| m.is_subnormal()), "{burns:?}");
            assert_eq!(ours.1[..2], [0.0, 0.0]);
            assert_eq!(ours.1[2].to_bits(), burns.1[2].to_bits());
            let bits = |values: &[f32]| values.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&ours.0), bits(&burns.0), "the parameters");
            assert_eq!(bits(&ours.2), bits(&burns.2), "the second moments");
        }
    }
}

/// Adam (with an optional L2 penalty, as PyTorch's `Adam(weight_decay=..)`) stepping
/// each parameter tensor through [`AdamStepOps::adam_step`].
#[derive(Debug, Clone)]
pub struct FusedAdam {
    pub beta_1: f32,
    pub beta_2: f32,
    pub epsilon: f32,
    pub penalty: Option<f32>,
}

impl Optimizer for FusedAdam {
    type State<const D: usize> = AdamState<D>;

    fn step<const D: usize>(
        &self,
        lr: LearningRate,
        tensor: Tensor<D>,
        grad: Tensor<D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<D>, Option<Self::State<D>>) {
        let (time, moment_1, moment_2) = match state {
            Some(AdamState { momentum }) => {
                (momentum.time + 1, momentum.moment_1, momentum.moment_2)
            }
            None => (1, tensor.zeros_like(), tensor.zeros_like()),
        };
        // Burn's `Adam` counts steps in an i32 power; so does this.
        let power = i32::try_from(time).unwrap_or(i32::MAX);
        let bias_correction2_sqrt = (1.0 - self.beta_2.powi(power)).sqrt();
        let (param, moment_1, moment_2) = <Dispatch as AdamStepOps>::adam_step(
            tensor.into_dispatch(),
            grad.into_dispatch(),
            moment_1.into_dispatch(),
            moment_2.into_dispatch(),
            AdamStep {
                first: time == 1,
                penalty: self.penalty,
                beta_1: self.beta_1,
                beta_2: self.beta_2,
                combined_factor: bias_correction2_sqrt / (1.0 - self.beta_1.powi(power)),
                guard: self.epsilon * bias_correction2_sqrt,
                lr: lr as f32,
            },
        );
        let momentum = AdaptiveMomentumState::new(
            time,
            Tensor::from_dispatch(moment_1),
            Tensor::from_dispatch(moment_2),
        );
        (Tensor::from_dispatch(param), Some(AdamState::new(momentum)))
    }

    fn to_device<const D: usize>(mut state: Self::State<D>, device: &Device) -> Self::State<D> {
        state.momentum = state.momentum.to_device(device);
        state
    }
}
