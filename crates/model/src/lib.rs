//! The classifiers: the tutorial's multilayer perceptron from flattened 28x28 images
//! to digit logits, and a configurable CNN, both one Burn
//! [`Module`](burn::module::Module), [`Network`], built from a [`NetworkConfig`].

mod activation;
mod conv;
mod dense;
mod network;
mod normalization;

pub use activation::Activation;
pub use conv::{BlockError, ConvBlock, ConvBlockConfig};
pub use network::{Network, NetworkConfig, NetworkError, NetworkKind, square_side};
pub use normalization::{Normalization, Standardization};
