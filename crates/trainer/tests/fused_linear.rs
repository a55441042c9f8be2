//! The fused linear op (`model::linear_forward`: matrix product, bias and ReLU in one
//! op, with its own backward; flex's kernel) against Burn's `Linear` and `relu` on
//! layers of random shapes: outputs and the gradients of input, weight and bias.

mod common;

use burn::prelude::*;
use common::linear::{assert_close, side_by_side};

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
    let ours = model::linear_forward(&layer, input.clone(), true);
    let burns = burn::tensor::activation::relu(layer.forward(input));
    assert_eq!(
        ours.into_data().try_to_vec::<f32>().expect("f32"),
        burns.into_data().try_to_vec::<f32>().expect("f32")
    );
}
