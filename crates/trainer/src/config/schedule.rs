//! Learning-rate schedules: constant (the tutorial's), step decay or cosine annealing,
//! each optionally after a linear warm-up. Training applies one to a run of known
//! length (`train::learner::schedule`).

use burn::config::Config;
use serde::{Deserialize, Serialize};

/// The shape of the learning rate after warm-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum ScheduleName {
    /// `lr` throughout.
    #[default]
    Constant,
    /// `lr`, multiplied by `gamma` every `step_epochs` epochs after warm-up (PyTorch's
    /// `StepLR`).
    Step,
    /// From `lr` down to `min_lr` along half a cosine, over the steps after warm-up
    /// (PyTorch's `CosineAnnealingLR` with `T_max` the whole run).
    Cosine,
}

/// How the learning rate changes over a run.
#[derive(Config, Debug)]
pub(crate) struct ScheduleConfig {
    /// `constant`, `step` or `cosine`.
    #[config(default = "ScheduleName::Constant")]
    pub(crate) name: ScheduleName,
    /// Epochs (fractions allowed) over which the rate rises linearly from near zero to
    /// `lr` before the schedule proper starts; 0 disables warm-up.
    #[config(default = 0.0)]
    pub(crate) warmup_epochs: f64,
    /// `step`: epochs between two decays.
    #[config(default = 1)]
    pub(crate) step_epochs: usize,
    /// `step`: the factor applied at each decay.
    #[config(default = 0.1)]
    pub(crate) gamma: f64,
    /// `cosine`: the rate at the end of the run.
    #[config(default = 0.0)]
    pub(crate) min_lr: f64,
}
