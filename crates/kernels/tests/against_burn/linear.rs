//! The fused linear op ([`kernels::linear::linear_forward`]: matrix product, bias and
//! ReLU in one op, with its own backward; flex's kernel) against Burn's `Linear` and
//! `relu` on layers of random shapes: outputs and the gradients of input, weight and
//! bias.

use burn::nn::LinearConfig;
use burn::prelude::*;
use burn::tensor::{Distribution, activation};
use kernels::linear::linear_forward;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// What one way of computing a layer gives: its output and the gradients of
/// `sum(output * upstream)` for the input (if tracked), the weight and the bias.
#[derive(Debug, Clone)]
pub struct Computed {
    pub output: Vec<f32>,
    pub input_grad: Option<Vec<f32>>,
    pub weight_grad: Vec<f32>,
    pub bias_grad: Vec<f32>,
}

/// A random layer and input for `seed` (a fifth of the inputs zero, as after a ReLU),
/// computed by the fused op and by Burn's ops on `device` (an autodiff one).
pub fn side_by_side(seed: u64, relu: bool, input_tracked: bool, device: &Device) -> [Computed; 2] {
    let mut rng = StdRng::seed_from_u64(seed);
    let (batch, inputs, outputs) = (
        rng.random_range(1..70),
        rng.random_range(1..200),
        rng.random_range(1..90),
    );
    device.seed(seed);
    let layer = LinearConfig::new(inputs, outputs).init(device);
    let values = Tensor::<2>::random([batch, inputs], Distribution::Normal(0.0, 1.0), device);
    let keep = Tensor::<2>::random([batch, inputs], Distribution::Uniform(0.0, 1.0), device)
        .greater_elem(0.2)
        .float();
    let input = (values * keep).detach();
    let upstream = Tensor::<2>::random([batch, outputs], Distribution::Normal(0.0, 1.0), device);
    let compute = |fused: bool| {
        let input = if input_tracked {
            input.clone().require_grad()
        } else {
            input.clone()
        };
        let output = if fused {
            linear_forward(&layer, input.clone(), relu)
        } else {
            let output = layer.forward(input.clone());
            if relu {
                activation::relu(output)
            } else {
                output
            }
        };
        let grads = (output.clone() * upstream.clone()).sum().backward();
        let numbers = |t: Tensor<2>| t.into_data().try_to_vec::<f32>().expect("f32");
        Computed {
            output: numbers(output),
            input_grad: input.grad(&grads).map(numbers),
            weight_grad: numbers(layer.weight.grad(&grads).expect("weight grad")),
            bias_grad: layer
                .bias
                .as_ref()
                .and_then(|b| b.grad(&grads))
                .expect("bias grad")
                .into_data()
                .try_to_vec::<f32>()
                .expect("f32"),
        }
    };
    [compute(true), compute(false)]
}

/// Every number of `ours` within `tolerance` (relative, absolute below 1) of Burn's.
pub fn assert_close(ours: &Computed, burns: &Computed, tolerance: f32, case: &str) {
    each_quantity(ours, burns, case, |a, b, case| {
        for (x, y) in a.iter().zip(b.iter()) {
            assert!(
                (x - y).abs() <= tolerance * y.abs().max(1.0),
                "{case}: {x} against Burn's {y}"
            );
        }
    });
}

/// `check(ours, burns, what)` for the output and each gradient, once both sides are
/// known to have it, of the same length.
pub fn each_quantity(
    ours: &Computed,
    burns: &Computed,
    case: &str,
    mut check: impl FnMut(&[f32], &[f32], &str),
) {
    let pairs = [
        ("output", &ours.output, &burns.output),
        ("weight gradient", &ours.weight_grad, &burns.weight_grad),
        ("bias gradient", &ours.bias_grad, &burns.bias_grad),
    ];
    assert_eq!(
        ours.input_grad.is_some(),
        burns.input_grad.is_some(),
        "{case}"
    );
    let input = ours.input_grad.iter().zip(&burns.input_grad);
    let input = input.map(|(a, b)| ("input gradient", a, b));
    for (what, a, b) in pairs.into_iter().chain(input) {
        assert_eq!(a.len(), b.len(), "{case}: {what}");
        check(a, b, &format!("{case}: {what}"));
    }
}

#[test]
fn the_fused_linear_computes_and_differentiates_as_burns_linear_and_relu() {
    let device = Device::flex().autodiff();
    for seed in 0..16 {
        for relu in [true, false] {
            for input_tracked in [true, false] {
                let [ours, burns] = side_by_side(seed, relu, input_tracked, &device);
                let case = format!("seed {seed}, relu {relu}, input tracked {input_tracked}");
                assert_close(&ours, &burns, 1e-5, &case);
            }
        }
    }
}

#[test]
fn without_autodiff_the_fused_linear_is_burns_linear_and_relu() {
    let device = Device::flex();
    device.seed(4);
    let layer = burn::nn::LinearConfig::new(30, 9).init(&device);
    let input = Tensor::<2>::random(
        [5, 30],
        burn::tensor::Distribution::Normal(0.0, 1.0),
        &device,
    );
    let ours = linear_forward(&layer, input.clone(), true);
    let burns = burn::tensor::activation::relu(layer.forward(input));
    assert_eq!(
        ours.into_data().try_to_vec::<f32>().expect("f32"),
        burns.into_data().try_to_vec::<f32>().expect("f32")
    );
}
