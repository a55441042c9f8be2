//! The tutorial's classifier: a multilayer perceptron from flattened 28x28 images to
//! digit logits, as a Burn [`Module`](burn::module::Module) built from a [`MlpConfig`].

mod mlp;

pub use mlp::{Activation, Mlp, MlpConfig, Normalization};
