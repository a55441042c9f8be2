//! The optimizer a run trains with: Adam (the tutorial's), AdamW or SGD with momentum,
//! described by one flat config so that a sweep can vary any of its fields. Training
//! builds it (`train::learner::optimizer`).

use burn::config::Config;
use serde::{Deserialize, Serialize};

/// Which update rule to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum OptimizerName {
    /// Adam, with `weight_decay` as an L2 penalty added to the gradient (PyTorch's
    /// `Adam(weight_decay=..)`), stepped in one pass per parameter (the kernels' fused Adam).
    #[default]
    Adam,
    /// Adam with decoupled weight decay (PyTorch's `AdamW`).
    Adamw,
    /// Stochastic gradient descent with `momentum` (0 for none) and an L2 penalty.
    Sgd,
}

/// The optimizer's hyperparameters other than the learning rate, which the schedule
/// owns. Fields an optimizer does not use are ignored by it.
#[derive(Config, Debug)]
pub(crate) struct OptimizerConfig {
    /// `adam`, `adamw` or `sgd`.
    #[config(default = "OptimizerName::Adam")]
    pub(crate) name: OptimizerName,
    /// Adam's and AdamW's decay rate of the gradient mean.
    #[config(default = 0.9)]
    pub(crate) beta_1: f32,
    /// Adam's and AdamW's decay rate of the squared-gradient mean.
    #[config(default = 0.999)]
    pub(crate) beta_2: f32,
    /// Adam's and AdamW's denominator guard: PyTorch's 1e-8 rather than Burn's 1e-5,
    /// to match the tutorial.
    #[config(default = 1e-8)]
    pub(crate) epsilon: f32,
    /// L2 penalty (adam, sgd) or decoupled decay rate (adamw); 0 disables it.
    #[config(default = 0.0)]
    pub(crate) weight_decay: f32,
    /// SGD's momentum factor; 0 is plain SGD.
    #[config(default = 0.9)]
    pub(crate) momentum: f64,
    /// SGD with Nesterov momentum.
    #[config(default = false)]
    pub(crate) nesterov: bool,
}
