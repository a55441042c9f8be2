//! The fused Adam ([`kernels::adam::FusedAdam`], Adam's one-pass flex kernel) against
//! Burn's own `Adam` on layers of random shapes: the same parameters bit for bit after
//! every step, with and without an L2 penalty, also where moments decay into the
//! subnormal floats, and optimizer records that load into either optimizer and
//! continue as the other would have.

use burn::nn::{Linear, LinearConfig};
use burn::optim::decay::WeightDecayConfig;
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use burn::tensor::Distribution;
use kernels::adam::FusedAdam;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// A layer of random shape, the same one on every call with the same seed.
pub fn random_layer(seed: u64, device: &Device) -> (Linear, [usize; 2]) {
    let mut rng = StdRng::seed_from_u64(seed);
    let (inputs, outputs) = (rng.random_range(1..300), rng.random_range(1..70));
    let layer = LinearConfig::new(inputs, outputs).init(device);
    (layer, [inputs, outputs])
}

/// Adam's hyperparameters, given to both optimizers: PyTorch's defaults and an L2
/// penalty.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub beta_1: f32,
    pub beta_2: f32,
    pub epsilon: f32,
    pub weight_decay: f32,
}

impl Settings {
    pub fn with_weight_decay(weight_decay: f32) -> Self {
        Self {
            beta_1: 0.9,
            beta_2: 0.999,
            epsilon: 1e-8,
            weight_decay,
        }
    }

    fn penalty(&self) -> Option<f32> {
        (self.weight_decay > 0.0).then_some(self.weight_decay)
    }

    /// The fused Adam.
    pub fn fused(&self) -> ModuleOptimizer {
        ModuleOptimizer::from(FusedAdam {
            beta_1: self.beta_1,
            beta_2: self.beta_2,
            epsilon: self.epsilon,
            penalty: self.penalty(),
        })
    }

    /// Burn's `Adam`.
    pub fn burns(&self) -> ModuleOptimizer {
        AdamConfig::new()
            .with_beta_1(self.beta_1)
            .with_beta_2(self.beta_2)
            .with_epsilon(self.epsilon)
            .with_weight_decay(self.penalty().map(|penalty| WeightDecayConfig { penalty }))
            .init()
    }
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

/// Steps a random layer `steps` times with the fused Adam of `settings` and with
/// Burn's, each on its own copy; returns both layers' values after every step.
pub fn side_by_side(
    settings: Settings,
    seed: u64,
    steps: usize,
    device: &Device,
) -> Vec<(Vec<f32>, Vec<f32>)> {
    let (layer, [inputs, _]) = random_layer(seed, device);
    let (mut fused, mut reference) = (settings.fused(), settings.burns());
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

fn device() -> Device {
    Device::flex().autodiff()
}

#[test]
fn the_fused_adam_steps_bit_for_bit_as_burns_adam() {
    for weight_decay in [0.0, 0.01] {
        let settings = Settings::with_weight_decay(weight_decay);
        for seed in 0..12 {
            for (index, (ours, theirs)) in side_by_side(settings, seed, 6, &device())
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
    let settings = Settings::with_weight_decay(0.0);
    let layer = LinearConfig::new(2, 1).init(&device);
    let (mut fused, mut reference) = (settings.fused(), settings.burns());
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
    let settings = Settings::with_weight_decay(0.0);
    let (layer, [inputs, _]) = random_layer(7, &device);
    for (first, second) in [
        (settings.fused(), settings.burns()),
        (settings.burns(), settings.fused()),
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
