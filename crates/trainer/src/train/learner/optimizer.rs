//! The optimizer a run's config describes, built for the Learner: Adam as the kernels'
//! fused Adam, AdamW and SGD as Burn's.

use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{AdamWConfig, ModuleOptimizer, SgdConfig};
use kernels::adam::FusedAdam;

use crate::config::{OptimizerConfig, OptimizerName};

/// The optimizer the Learner steps with, as `config` describes it.
pub(crate) fn optimizer(config: &OptimizerConfig) -> ModuleOptimizer {
    let penalty = (config.weight_decay > 0.0).then_some(WeightDecayConfig {
        penalty: config.weight_decay,
    });
    match config.name {
        OptimizerName::Adam => ModuleOptimizer::from(FusedAdam {
            beta_1: config.beta_1,
            beta_2: config.beta_2,
            epsilon: config.epsilon,
            penalty: penalty.map(|decay| decay.penalty),
        }),
        OptimizerName::Adamw => AdamWConfig::new()
            .with_beta_1(config.beta_1)
            .with_beta_2(config.beta_2)
            .with_epsilon(config.epsilon)
            .with_weight_decay(config.weight_decay)
            .init(),
        OptimizerName::Sgd => SgdConfig::new()
            .with_weight_decay(penalty)
            .with_momentum((config.momentum > 0.0).then(|| {
                // PyTorch's SGD has no dampening by default; Burn's has 0.1.
                MomentumConfig::new()
                    .with_momentum(config.momentum)
                    .with_dampening(0.0)
                    .with_nesterov(config.nesterov)
            }))
            .init(),
    }
}
