//! A block's batch norm, ReLU and max pooling as one op
//! ([`kernels::norm_relu_pool::norm_relu_pool`]; flex's kernel) against Burn's
//! `BatchNorm`, `relu` and `MaxPool2d` in training: outputs, the gradients of input,
//! gamma and beta, and the running statistics after the step, on random shapes,
//! poolings and norms.

use burn::module::Param;
use burn::nn::pool::MaxPool2dConfig;
use burn::nn::{BatchNorm, BatchNormConfig};
use burn::prelude::*;
use burn::tensor::{Distribution, activation};
use kernels::norm_relu_pool::norm_relu_pool;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::linear::Computed;

fn numbers<const D: usize>(tensor: Tensor<D>) -> Vec<f32> {
    tensor.into_data().try_to_vec::<f32>().expect("f32")
}

/// A random norm (gamma and beta off their start), input and pooling for `seed`,
/// computed by the op and by Burn's modules on `device` (an autodiff one); with each,
/// the running mean and variance after the step.
pub fn side_by_side(seed: u64, device: &Device) -> [(Computed, Vec<f32>); 2] {
    let mut rng = StdRng::seed_from_u64(seed);
    let (batch, channels) = (rng.random_range(1..9), rng.random_range(1..12));
    let [height, width] = [rng.random_range(2..20), rng.random_range(2..20)];
    let pool = rng.random_range(0..4).min(height.min(width));
    device.seed(seed);
    let random = |shape: [usize; 1], mean| {
        Tensor::<1>::random(shape, Distribution::Normal(mean, 0.5), device)
    };
    let (gamma, beta) = (random([channels], 1.0), random([channels], 0.0));
    // A norm of its own for each side: clones share their running statistics.
    let norm = || BatchNorm {
        gamma: Param::from_tensor(gamma.clone()),
        beta: Param::from_tensor(beta.clone()),
        ..BatchNormConfig::new(channels).init(device)
    };
    let input = Tensor::<4>::random(
        [batch, channels, height, width],
        Distribution::Normal(0.3, 2.0),
        device,
    );
    let output_shape = match pool {
        0 => [batch, channels, height, width],
        pool => [batch, channels, height / pool, width / pool],
    };
    let upstream = Tensor::<4>::random(output_shape, Distribution::Normal(0.0, 1.0), device);
    let compute = |ours: bool| {
        let norm = norm();
        let input = input.clone().require_grad();
        let output = if ours {
            norm_relu_pool(&norm, input.clone(), pool)
        } else {
            let activated = activation::relu(norm.forward(input.clone()));
            match pool {
                0 => activated,
                pool => MaxPool2dConfig::new([pool, pool]).init().forward(activated),
            }
        };
        let grads = (output.clone() * upstream.clone()).sum().backward();
        let running = [
            norm.running_mean.value_sync(),
            norm.running_var.value_sync(),
        ];
        (
            Computed {
                output: numbers(output),
                input_grad: input.grad(&grads).map(numbers),
                weight_grad: numbers(norm.gamma.grad(&grads).expect("gamma grad")),
                bias_grad: numbers(norm.beta.grad(&grads).expect("beta grad")),
            },
            running.into_iter().flat_map(numbers).collect(),
        )
    };
    [compute(true), compute(false)]
}

/// Gamma's and beta's gradients each sum a channel's every pixel of the batch: Burn
/// in f32, in the order its threads take them, ours in f64 in a fixed order. They
/// agree within this, relative to each value (at least 1).
const SUM_TOLERANCE: f32 = 1e-4;

/// Both sides agree within `tolerance`, relative to each value (at least 1); gamma's
/// and beta's gradients within [`SUM_TOLERANCE`].
pub fn assert_close(
    [(ours, our_running), (burns, burns_running)]: &[(Computed, Vec<f32>); 2],
    tolerance: f32,
    case: &str,
) {
    let without_sums = |computed: &Computed| Computed {
        weight_grad: Vec::new(),
        bias_grad: Vec::new(),
        ..computed.clone()
    };
    crate::linear::assert_close(&without_sums(ours), &without_sums(burns), tolerance, case);
    for (what, a, b) in [
        ("gamma gradient", &ours.weight_grad, &burns.weight_grad),
        ("beta gradient", &ours.bias_grad, &burns.bias_grad),
    ] {
        assert_eq!(a.len(), b.len(), "{case}: {what}");
        for (x, y) in a.iter().zip(b) {
            assert!(
                (x - y).abs() <= SUM_TOLERANCE.max(tolerance) * y.abs().max(1.0),
                "{case}: {what} {x} against Burn's {y}"
            );
        }
    }
    for (x, y) in our_running.iter().zip(burns_running) {
        assert!(
            (x - y).abs() <= tolerance * y.abs().max(1.0),
            "{case}: running statistic {x} against Burn's {y}"
        );
    }
}

#[test]
fn norm_relu_pool_computes_and_differentiates_as_burns_modules() {
    let device = Device::flex().autodiff();
    for seed in 0..32 {
        let computed = side_by_side(seed, &device);
        assert_close(&computed, 1e-5, &format!("seed {seed}"));
    }
}

#[test]
fn in_inference_the_op_is_burns_modules() {
    let device = Device::flex();
    device.seed(2);
    let norm = BatchNormConfig::new(3).init(&device);
    let input = Tensor::<4>::random([2, 3, 6, 6], Distribution::Normal(0.0, 1.0), &device);
    let ours = numbers(norm_relu_pool(&norm, input.clone(), 2));
    let burns = MaxPool2dConfig::new([2, 2])
        .init()
        .forward(activation::relu(norm.forward(input)));
    assert_eq!(ours, numbers(burns));
}
