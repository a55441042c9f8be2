//! The optimizer a run trains with: Adam (the tutorial's), AdamW or SGD with momentum,
//! described by one flat config so that a sweep can vary any of its fields.

use burn::config::Config;
use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{AdamWConfig, ModuleOptimizer, SgdConfig};
use serde::{Deserialize, Serialize};

use kernels::adam::FusedAdam;

/// Which update rule to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerName {
    /// Adam, with `weight_decay` as an L2 penalty added to the gradient (PyTorch's
    /// `Adam(weight_decay=..)`), stepped in one pass per parameter ([`FusedAdam`]).
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
pub struct OptimizerConfig {
    /// `adam`, `adamw` or `sgd`.
    #[config(default = "OptimizerName::Adam")]
    pub name: OptimizerName,
    /// Adam's and AdamW's decay rate of the gradient mean.
    #[config(default = 0.9)]
    pub beta_1: f32,
    /// Adam's and AdamW's decay rate of the squared-gradient mean.
    #[config(default = 0.999)]
    pub beta_2: f32,
    /// Adam's and AdamW's denominator guard: PyTorch's 1e-8 rather than Burn's 1e-5,
    /// to match the tutorial.
    #[config(default = 1e-8)]
    pub epsilon: f32,
    /// L2 penalty (adam, sgd) or decoupled decay rate (adamw); 0 disables it.
    #[config(default = 0.0)]
    pub weight_decay: f32,
    /// SGD's momentum factor; 0 is plain SGD.
    #[config(default = 0.9)]
    pub momentum: f64,
    /// SGD with Nesterov momentum.
    #[config(default = false)]
    pub nesterov: bool,
}

impl OptimizerConfig {
    /// Builds the optimizer the Learner steps with.
    pub fn init(&self) -> ModuleOptimizer {
        let penalty = (self.weight_decay > 0.0).then_some(WeightDecayConfig {
            penalty: self.weight_decay,
        });
        match self.name {
            OptimizerName::Adam => ModuleOptimizer::from(FusedAdam {
                beta_1: self.beta_1,
                beta_2: self.beta_2,
                epsilon: self.epsilon,
                penalty: penalty.map(|decay| decay.penalty),
            }),
            OptimizerName::Adamw => AdamWConfig::new()
                .with_beta_1(self.beta_1)
                .with_beta_2(self.beta_2)
                .with_epsilon(self.epsilon)
                .with_weight_decay(self.weight_decay)
                .init(),
            OptimizerName::Sgd => SgdConfig::new()
                .with_weight_decay(penalty)
                .with_momentum((self.momentum > 0.0).then(|| {
                    // PyTorch's SGD has no dampening by default; Burn's has 0.1.
                    MomentumConfig::new()
                        .with_momentum(self.momentum)
                        .with_dampening(0.0)
                        .with_nesterov(self.nesterov)
                }))
                .init(),
        }
    }
}
