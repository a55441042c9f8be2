//! The fused Adam against Burn's own `Adam`: the same random models, inputs and
//! learning rates, stepped side by side.

use burn::nn::{Linear, LinearConfig};
use burn::optim::decay::WeightDecayConfig;
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use burn::tensor::Distribution;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use trainer::train::optimizer::OptimizerConfig;

/// A layer of random shape, the same one on every call with the same seed.
pub fn random_layer(seed: u64, device: &Device) -> (Linear, [usize; 2]) {
    let mut rng = StdRng::seed_from_u64(seed);
    let (inputs, outputs) = (rng.random_range(1..300), rng.random_range(1..70));
    let layer = LinearConfig::new(inputs, outputs).init(device);
    (layer, [inputs, outputs])
}

/// Burn's `Adam` configured as `OptimizerConfig` configures the fused one.
pub fn burns_adam(config: &OptimizerConfig) -> ModuleOptimizer {
    AdamConfig::new()
        .with_beta_1(config.beta_1)
        .with_beta_2(config.beta_2)
        .with_epsilon(config.epsilon)
        .with_weight_decay((config.weight_decay > 0.0).then_some(WeightDecayConfig {
            penalty: config.weight_decay,
        }))
        .init()
}

/// One step of `optimizer` on `layer` for the loss `sum(layer(input)^2)`.
pub fn step(optimizer: &mut ModuleOptimizer, layer: Linear, input: Tensor<2>, lr: f64) -> Linear {
    let loss = layer.forward(input).powi_scalar(2).sum();
    let grads = GradientsParams::from_grads(loss.backward(), &layer);
    optimizer.step(lr, layer, grads)
}

/// The layer's weights and biases, as numbers.
pub fn values(layer: &Linear) -> Vec<f32> {
    let mut values = layer
        .weight
        .val()
        .into_data()
        .try_to_vec::<f32>()
        .expect("f32 weights");
    if let Some(bias) = &layer.bias {
        values.extend(
            bias.val()
                .into_data()
                .try_to_vec::<f32>()
                .expect("f32 bias"),
        );
    }
    values
}

/// Steps a random layer `steps` times with the fused Adam of `config` and with
/// Burn's, each on its own copy; returns both layers' values after every step.
pub fn side_by_side(
    config: &OptimizerConfig,
    seed: u64,
    steps: usize,
    device: &Device,
) -> Vec<(Vec<f32>, Vec<f32>)> {
    let (layer, [inputs, _]) = random_layer(seed, device);
    let (mut fused, mut reference) = (config.init(), burns_adam(config));
    let (mut ours, mut theirs) = (layer.clone(), layer);
    let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed);
    // One batch size per layer: a GPU backend tunes its kernels once per shape.
    let batch = rng.random_range(1..40);
    (0..steps)
        .map(|_| {
            let input =
                Tensor::<2>::random([batch, inputs], Distribution::Normal(0.0, 1.0), device);
            let lr = rng.random_range(1e-4..1e-1);
            ours = step(&mut fused, ours.clone(), input.clone(), lr);
            theirs = step(&mut reference, theirs.clone(), input, lr);
            (values(&ours), values(&theirs))
        })
        .collect()
}
