//! The fused cross-entropy ([`kernels::cross_entropy::cross_entropy`]: the loss from
//! logits as one op with its own backward; flex's kernel) against Burn's
//! `CrossEntropyLoss` on random batches and class counts: the loss and the logits'
//! gradient.

use burn::nn::loss::CrossEntropyLossConfig;
use burn::prelude::*;
use burn::tensor::Distribution;
use kernels::cross_entropy::cross_entropy;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// The loss and the logits' gradient, as numbers.
pub type Computed = (Vec<f32>, Vec<f32>);

/// Random logits (for some seeds large, so that the shift by the max matters) and
/// targets of a random batch and class count, through the fused op and through
/// Burn's loss on `device` (an autodiff one).
pub fn side_by_side(seed: u64, device: &Device) -> [Computed; 2] {
    let mut rng = StdRng::seed_from_u64(seed);
    let (batch, classes) = (rng.random_range(1..70), rng.random_range(1..20));
    let spread = if seed.is_multiple_of(3) { 80.0 } else { 4.0 };
    device.seed(seed);
    let logits = Tensor::<2>::random(
        [batch, classes],
        Distribution::Uniform(-spread, spread),
        device,
    );
    let targets: Vec<i64> = (0..batch)
        .map(|_| rng.random_range(0..classes as i64))
        .collect();
    let targets = Tensor::<1, Int>::from_data(TensorData::new(targets, [batch]), device);
    let compute = |fused: bool| {
        let logits = logits.clone().detach().require_grad();
        let loss = if fused {
            cross_entropy(logits.clone(), targets.clone())
        } else {
            CrossEntropyLossConfig::new()
                .init(device)
                .forward(logits.clone(), targets.clone())
        };
        let grads = loss.backward();
        let grad = logits.grad(&grads).expect("the logits' gradient");
        let numbers = |data: TensorData| data.try_to_vec::<f32>().expect("f32");
        (numbers(loss.into_data()), numbers(grad.into_data()))
    };
    [compute(true), compute(false)]
}

/// Every number of `ours` within `tolerance` (relative, absolute below 1) of Burn's.
pub fn assert_close(ours: &Computed, burns: &Computed, tolerance: f32, case: &str) {
    for (what, a, b) in [("loss", &ours.0, &burns.0), ("gradient", &ours.1, &burns.1)] {
        assert_eq!(a.len(), b.len(), "{case}: {what}");
        for (x, y) in a.iter().zip(b) {
            assert!(
                (x - y).abs() <= tolerance * y.abs().max(1.0),
                "{case}: {what} {x} against Burn's {y}"
            );
        }
    }
}

#[test]
fn the_fused_loss_and_its_gradient_are_burns_cross_entropy() {
    let device = Device::flex().autodiff();
    for seed in 0..24 {
        let [ours, burns] = side_by_side(seed, &device);
        assert_close(&ours, &burns, 1e-5, &format!("seed {seed}"));
    }
}
