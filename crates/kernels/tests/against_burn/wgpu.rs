//! The backend extensions through their generic path (Burn's ops, the path every
//! backend without a kernel of its own takes) on wgpu, on whatever adapter the machine
//! has (in CI, Mesa's software Vulkan driver). Few shapes: llvmpipe compiles and tunes
//! kernels for each one anew.

use burn::prelude::*;

fn device() -> Device {
    Device::wgpu(DeviceKind::DefaultDevice).autodiff()
}

#[test]
fn the_fused_linear_computes_as_burns_linear_and_relu_through_its_generic_path() {
    for seed in 0..2 {
        for relu in [true, false] {
            let [ours, burns] = crate::linear::side_by_side(seed, relu, true, &device());
            crate::linear::assert_close(&ours, &burns, 1e-5, &format!("seed {seed}, relu {relu}"));
        }
    }
}

#[test]
fn the_convolution_computes_as_burns_conv2d_through_its_generic_path() {
    for seed in 0..2 {
        let [ours, burns] =
            crate::conv::side_by_side(seed, true, crate::conv::Drawn::Direct, &device());
        crate::linear::assert_close(&ours, &burns, 1e-4, &format!("seed {seed}"));
    }
}

#[test]
fn norm_relu_pool_computes_as_burns_modules_through_its_generic_path() {
    for seed in 0..2 {
        let computed = crate::norm_relu_pool::side_by_side(seed, &device());
        crate::norm_relu_pool::assert_close(&computed, 1e-5, &format!("seed {seed}"));
    }
}

#[test]
fn the_fused_cross_entropy_computes_as_burns_through_its_generic_path() {
    for seed in 0..2 {
        let [ours, burns] = crate::cross_entropy::side_by_side(seed, &device());
        crate::cross_entropy::assert_close(&ours, &burns, 1e-5, &format!("seed {seed}"));
    }
}

#[test]
fn the_fused_adam_steps_as_burns_adam_through_its_generic_path() {
    for weight_decay in [0.0, 0.01] {
        let settings = crate::adam::Settings::with_weight_decay(weight_decay);
        for seed in 0..2 {
            for (ours, theirs) in crate::adam::side_by_side(settings, seed, 3, &device()) {
                for (a, b) in ours.iter().zip(&theirs) {
                    assert!(
                        (a - b).abs() <= 1e-5 * b.abs().max(1e-3),
                        "layer {seed}, weight decay {weight_decay}: {a} against Burn's {b}"
                    );
                }
            }
        }
    }
}
