//! The fused Adam (`trainer::train::optimizer`, Adam's one-pass flex kernel) against
//! Burn's own `Adam` on layers of random shapes: the same parameters bit for bit after
//! every step, with and without an L2 penalty, also where moments decay into the
//! subnormal floats, and optimizer records that load into either optimizer and
//! continue as the other would have.

mod common;

use burn::nn::{Linear, LinearConfig};
use burn::optim::ModuleOptimizer;
use burn::prelude::*;
use common::adam::{burns_adam, random_layer, side_by_side, step, values};
use trainer::train::optimizer::OptimizerConfig;

fn device() -> Device {
    Device::flex().autodiff()
}

#[test]
fn the_fused_adam_steps_bit_for_bit_as_burns_adam() {
    for weight_decay in [0.0, 0.01] {
        let config = OptimizerConfig::new().with_weight_decay(weight_decay);
        for seed in 0..12 {
            for (index, (ours, theirs)) in side_by_side(&config, seed, 6, &device())
                .into_iter()
                .enumerate()
            {
                assert_eq!(
                    ours.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                    theirs.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                    "layer {seed}, weight decay {weight_decay}: step {} differs",
                    index + 1
                );
            }
        }
    }
}

#[test]
fn parameters_stay_burns_bit_for_bit_while_their_moments_decay_through_the_subnormals() {
    // The first input is lit in the first batch only: its weight's gradient is zero
    // after that, and its first moment decays by beta_1 a step, below 1.2e-38 (where
    // the fused Adam flushes it to zero) after about 830 steps.
    let device = device();
    let config = OptimizerConfig::new();
    let layer = LinearConfig::new(2, 1).init(&device);
    let (mut fused, mut reference) = (config.init(), burns_adam(&config));
    let (mut ours, mut theirs) = (layer.clone(), layer);
    for index in 0..1000 {
        let lit = if index == 0 { 1.0 } else { 0.0 };
        let input = Tensor::from_data(TensorData::new(vec![lit, 1.0f32], [1, 2]), &device);
        ours = step(&mut fused, ours, input.clone(), 1e-3);
        theirs = step(&mut reference, theirs, input, 1e-3);
        let bits = |layer: &Linear| {
            values(layer)
                .iter()
                .map(|v| v.to_bits())
                .collect::<Vec<_>>()
        };
        assert_eq!(bits(&ours), bits(&theirs), "step {}", index + 1);
    }
}

#[test]
fn either_adams_record_continues_in_the_other_as_it_would_have() {
    let device = device();
    let config = OptimizerConfig::new();
    let (layer, [inputs, _]) = random_layer(7, &device);
    for (first, second) in [
        (config.init(), burns_adam(&config)),
        (burns_adam(&config), config.init()),
    ] {
        let mut trained = layer.clone();
        let mut before = first;
        for seed in 0..3 {
            trained = step(&mut before, trained, batch(seed, inputs, &device), 1e-2);
        }
        let record = before.to_record();
        let mut continued: ModuleOptimizer = second.load_record(record);
        let (next_input, lr) = (batch(99, inputs, &device), 1e-2);
        let uninterrupted = values(&step(&mut before, trained.clone(), next_input.clone(), lr));
        let switched = values(&step(&mut continued, trained, next_input, lr));
        assert_eq!(uninterrupted, switched);
    }
}

/// A batch of 8 inputs, the same for the same seed.
fn batch(seed: u64, inputs: usize, device: &Device) -> Tensor<2> {
    let values: Vec<f32> = (0..8 * inputs)
        .map(|i| ((i as u64 * 2654435761 + seed * 40503) % 1000) as f32 / 500.0 - 1.0)
        .collect();
    Tensor::from_data(TensorData::new(values, [8, inputs]), device)
}
