//! The convolution op ([`kernels::conv::conv2d_forward`]: direct convolution, or
//! Winograd's for 3x3 and 5x5 kernels over enough channels, with its own backward;
//! flex's kernel) against Burn's `Conv2d` on convolutions of random shapes and
//! paddings: outputs and the gradients of input, weight and bias.

use burn::nn::PaddingConfig2d;
use burn::nn::conv::Conv2dConfig;
use burn::prelude::*;
use burn::tensor::Distribution;
use kernels::conv::conv2d_forward;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::linear::{Computed, assert_close, each_quantity};

/// Which convolutions [`side_by_side`] draws.
#[derive(Clone, Copy)]
pub enum Drawn {
    /// Any kernel up to 5x5 over up to 6 channels: the direct kernels.
    Direct,
    /// 3x3 and 5x5 kernels over 8 to 40 channels: Winograd's.
    Winograd,
}

/// A random convolution and input for `seed`, computed by the op and by Burn's
/// `Conv2d` on `device` (an autodiff one).
pub fn side_by_side(
    seed: u64,
    input_tracked: bool,
    drawn: Drawn,
    device: &Device,
) -> [Computed; 2] {
    let mut rng = StdRng::seed_from_u64(seed);
    let (kernel, in_channels, out_channels) = match drawn {
        Drawn::Direct => (
            [rng.random_range(1..6), rng.random_range(1..6)],
            rng.random_range(1..7),
            rng.random_range(1..12),
        ),
        Drawn::Winograd => {
            let side = [3, 5][rng.random_range(0..2)];
            (
                [side, side],
                rng.random_range(8..41),
                rng.random_range(1..41),
            )
        }
    };
    let batch = rng.random_range(1..9);
    // Winograd's up to the kernel's side: wider than its reach too.
    let widest = match drawn {
        Drawn::Direct => 2,
        Drawn::Winograd => kernel[0],
    };
    let padding: [usize; 4] = std::array::from_fn(|_| rng.random_range(0..=widest));
    let with_bias = rng.random_bool(0.5);
    let [height, width] = [
        rng.random_range(kernel[0]..kernel[0] + 12),
        rng.random_range(kernel[1]..kernel[1] + 12),
    ];
    device.seed(seed);
    let conv = Conv2dConfig::new([in_channels, out_channels], kernel)
        .with_padding(PaddingConfig2d::Explicit(
            padding[0], padding[1], padding[2], padding[3],
        ))
        .with_bias(with_bias)
        .init(device);
    let input = Tensor::<4>::random(
        [batch, in_channels, height, width],
        Distribution::Normal(0.0, 1.0),
        device,
    );
    let output_shape = conv.forward(input.clone()).dims();
    let upstream = Tensor::<4>::random(output_shape, Distribution::Normal(0.0, 1.0), device);
    let compute = |ours: bool| {
        let input = if input_tracked {
            input.clone().require_grad()
        } else {
            input.clone()
        };
        let output = if ours {
            conv2d_forward(&conv, input.clone())
        } else {
            conv.forward(input.clone())
        };
        let grads = (output.clone() * upstream.clone()).sum().backward();
        let numbers = |t: Tensor<4>| t.into_data().try_to_vec::<f32>().expect("f32");
        Computed {
            output: numbers(output),
            input_grad: input.grad(&grads).map(numbers),
            weight_grad: numbers(conv.weight.grad(&grads).expect("weight grad")),
            bias_grad: conv
                .bias
                .as_ref()
                .map(|b| {
                    b.grad(&grads)
                        .expect("bias grad")
                        .into_data()
                        .try_to_vec::<f32>()
                        .expect("f32")
                })
                .unwrap_or_default(),
        }
    };
    [compute(true), compute(false)]
}

#[test]
fn the_convolution_computes_and_differentiates_as_burns_conv2d() {
    let device = Device::flex().autodiff();
    for seed in 0..24 {
        for input_tracked in [true, false] {
            let [ours, burns] = side_by_side(seed, input_tracked, Drawn::Direct, &device);
            let case = format!("seed {seed}, input tracked {input_tracked}");
            assert_close(&ours, &burns, 1e-4, &case);
        }
    }
}

#[test]
fn winograds_convolution_computes_and_differentiates_as_burns_conv2d() {
    let device = Device::flex().autodiff();
    for seed in 0..24 {
        for input_tracked in [true, false] {
            let [ours, burns] = side_by_side(seed, input_tracked, Drawn::Winograd, &device);
            let case = format!("seed {seed}, input tracked {input_tracked}");
            each_quantity(&ours, &burns, &case, assert_within_scale);
        }
    }
}

/// Each of `ours` within 1e-5 of the largest of `burns` (or of 1) from Burn's: a
/// transform's rounding is that of the whole sum, not of each value.
fn assert_within_scale(ours: &[f32], burns: &[f32], case: &str) {
    assert_eq!(ours.len(), burns.len(), "{case}");
    let scale = burns.iter().fold(1.0f32, |m, v| m.max(v.abs()));
    for (x, y) in ours.iter().zip(burns) {
        assert!(
            (x - y).abs() <= 1e-5 * scale,
            "{case}: {x} against Burn's {y}"
        );
    }
}

#[test]
fn the_cnns_convolutions_match_burns_to_1e_5() {
    let device = Device::flex().autodiff();
    // The two blocks of configs/mnist-cnn.json, on a batch of 64.
    for (in_channels, out_channels, side) in [(1, 16, 28), (16, 32, 14)] {
        device.seed(7);
        // Without a bias, as before a batch norm.
        let conv = Conv2dConfig::new([in_channels, out_channels], [5, 5])
            .with_padding(PaddingConfig2d::Explicit(2, 2, 2, 2))
            .with_bias(false)
            .init(&device);
        let input = Tensor::<4>::random(
            [64, in_channels, side, side],
            Distribution::Normal(0.0, 1.0),
            &device,
        )
        .require_grad();
        let ours = conv2d_forward(&conv, input.clone());
        let burns = conv.forward(input.clone());
        let upstream = Tensor::<4>::random(ours.dims(), Distribution::Normal(0.0, 1.0), &device);
        let numbers = |t: Tensor<4>| t.into_data().try_to_vec::<f32>().expect("f32");
        let grads = |output: Tensor<4>| {
            let grads = (output.clone() * upstream.clone()).sum().backward();
            (
                numbers(output),
                input.grad(&grads).map(numbers).expect("input grad"),
                numbers(conv.weight.grad(&grads).expect("weight grad")),
            )
        };
        let (ours, burns) = (grads(ours), grads(burns));
        for (what, a, b) in [
            ("output", &ours.0, &burns.0),
            ("input gradient", &ours.1, &burns.1),
            ("weight gradient", &ours.2, &burns.2),
        ] {
            assert_within_scale(a, b, &format!("{in_channels}->{out_channels}: {what}"));
        }
    }
}

#[test]
fn without_autodiff_the_convolution_is_burns_conv2d() {
    let device = Device::flex();
    device.seed(3);
    let conv = Conv2dConfig::new([3, 5], [3, 3])
        .with_padding(PaddingConfig2d::Explicit(1, 0, 2, 1))
        .init(&device);
    let input = Tensor::<4>::random([2, 3, 9, 7], Distribution::Normal(0.0, 1.0), &device);
    let ours = conv2d_forward(&conv, input.clone()).into_data();
    let burns = conv.forward(input).into_data();
    assert_eq!(ours.shape(), burns.shape());
    for (x, y) in ours
        .try_to_vec::<f32>()
        .expect("f32")
        .iter()
        .zip(burns.try_to_vec::<f32>().expect("f32"))
    {
        assert!((x - y).abs() <= 1e-5 * y.abs().max(1.0), "{x} against {y}");
    }
}
