//! Times one training step (forward and backward, batch 64) of each convolution of
//! `configs/mnist-cnn.json` through the op, and through Burn's `Conv2d`:
//! `cargo run --release -p kernels --example conv_step`.

use std::time::Instant;

use burn::nn::PaddingConfig2d;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::prelude::*;
use burn::tensor::Distribution;
use kernels::conv::conv2d_forward;

/// The median and the fastest of 50 steps, in milliseconds.
fn time(step: impl Fn()) -> (f64, f64) {
    step();
    let mut times: Vec<f64> = (0..50)
        .map(|_| {
            let start = Instant::now();
            step();
            start.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    times.sort_by(f64::total_cmp);
    (times[times.len() / 2], times[0])
}

fn main() {
    let device = Device::flex().autodiff();
    for (channels, side) in [([1, 16], 28), ([16, 32], 14)] {
        let layer: Conv2d = Conv2dConfig::new(channels, [5, 5])
            .with_padding(PaddingConfig2d::Explicit(2, 2, 2, 2))
            .with_bias(false)
            .init(&device);
        let shape = [64, channels[0], side, side];
        let maps =
            Tensor::<4>::random(shape, Distribution::Normal(0.0, 1.0), &device).require_grad();
        for (name, ours) in [("the op", true), ("Burn's Conv2d", false)] {
            let (median, fastest) = time(|| {
                let output = match ours {
                    true => conv2d_forward(&layer, maps.clone()),
                    false => layer.forward(maps.clone()),
                };
                let _ = output.sum().backward();
            });
            println!(
                "{}->{} on {side}x{side}, {name}: median {median:.2} ms per step (min {fastest:.2})",
                channels[0], channels[1]
            );
        }
    }
}
