//! Every kernel against Burn's own ops: values and gradients on random shapes, on flex
//! (the kernels themselves) and, built with `--features wgpu`, through the generic
//! path on a wgpu device. One module per kernel; run one with
//! `cargo test --release -p kernels --test against_burn -- adam::`.

mod adam;
mod augment;
mod conv;
mod cross_entropy;
mod dense;
mod gather;
mod linear;
mod norm_relu_pool;
#[cfg(feature = "wgpu")]
mod wgpu;
