//! The classifiers: the tutorial's multilayer perceptron from flattened 28x28 images
//! to digit logits, and a configurable CNN, both one Burn
//! [`Module`](burn::module::Module), [`Network`], built from a [`NetworkConfig`].

mod conv;
mod dense;
mod fused_linear;
mod network;

pub use conv::{BlockError, ConvBlock, ConvBlockConfig};
pub use dense::DenseNetwork;
pub use fused_linear::{FusedLinearBackward, FusedLinearOps, linear_forward};
pub use network::{
    Activation, Network, NetworkConfig, NetworkError, NetworkKind, Normalization, square_side,
};
