//! The rules a run's configuration must meet before any data is read: each broken one
//! is an error naming the key, the rule and the value.

use model::NetworkConfig;

use super::OptimizerName;
use super::{ConfigError, TrainingConfig};
use crate::TrainerError;

/// The most epochs a run may ask for. A run writes a checkpoint (660 KB for the
/// default network) after every epoch and keeps them all, so a count past any run's
/// need, such as 2^64 - 1 typed by mistake, fills the disk rather than trains longer;
/// 100,000 epochs of MNIST take weeks even on a fast GPU.
const MAX_EPOCHS: usize = 100_000;

impl TrainingConfig {
    /// Checks the values a run cannot start with.
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |field, rule, value: &dyn std::fmt::Display| {
            Err(ConfigError::Invalid {
                field,
                rule,
                value: value.to_string(),
            })
        };
        if !(1..=MAX_EPOCHS).contains(&self.epochs) {
            return invalid("epochs", "from 1 to 100000", &self.epochs);
        }
        if self.batch_size == 0 {
            return invalid("batch_size", "at least 1", &self.batch_size);
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return invalid("lr", "a positive number", &self.lr);
        }
        if let Some(spec) = &self.devices {
            let count = crate::backend::device_count(spec);
            if count == 0 {
                return invalid(
                    "devices",
                    "a count of at least 1, or a list of devices",
                    spec,
                );
            }
            if !self.batch_size.is_multiple_of(count) {
                return invalid(
                    "batch_size",
                    "a multiple of the device count, each device taking an equal share",
                    &format!("{} on {count} devices", self.batch_size),
                );
            }
        }
        if let Some((key, reason)) = self.data.augment.invalid() {
            return Err(ConfigError::Augment { key, reason });
        }
        if self.split.valid_size == Some(0) {
            // Early stopping, the kept epoch and sweeps' rankings all read it.
            return invalid(
                "split.valid_size",
                "at least 1: every epoch is scored on the validation set",
                &0,
            );
        }
        if self.log_interval == 0 {
            return invalid("log_interval", "at least 1", &0);
        }
        if self.limit_train == Some(0) {
            return invalid("limit_train", "at least 1 when given", &0);
        }
        if self.model.input_size == 0 {
            return invalid("model.input_size", "at least 1", &0);
        }
        if self.model.num_classes < 2 {
            return invalid("model.num_classes", "at least 2", &self.model.num_classes);
        }
        if !(0.0..1.0).contains(&self.model.dropout) {
            return invalid("model.dropout", "in [0, 1)", &self.model.dropout);
        }
        if self.model.hidden_sizes.contains(&0) {
            return invalid(
                "model.hidden_sizes",
                "a list of positive widths",
                &format!("{:?}", self.model.hidden_sizes),
            );
        }
        self.model.feature_maps()?;
        // Pictures' channels are known once their folder is read, unless recorded.
        let channels =
            (self.model.input_shape.map(|[channels, _, _]| channels)).or(self.data.channels);
        if let Some(reason) = self.model.normalization.invalid(channels) {
            return Err(ConfigError::Normalization(reason));
        }
        let optimizer = &self.optimizer;
        for (field, beta) in [
            ("optimizer.beta_1", optimizer.beta_1),
            ("optimizer.beta_2", optimizer.beta_2),
        ] {
            if !(0.0..1.0).contains(&beta) {
                return invalid(field, "in [0, 1)", &beta);
            }
        }
        if !(optimizer.epsilon.is_finite() && optimizer.epsilon > 0.0) {
            return invalid("optimizer.epsilon", "a positive number", &optimizer.epsilon);
        }
        if !(optimizer.weight_decay.is_finite() && optimizer.weight_decay >= 0.0) {
            return invalid(
                "optimizer.weight_decay",
                "0 or more",
                &optimizer.weight_decay,
            );
        }
        if optimizer.name == OptimizerName::Sgd && !(0.0..1.0).contains(&optimizer.momentum) {
            return invalid("optimizer.momentum", "in [0, 1)", &optimizer.momentum);
        }
        let schedule = &self.lr_schedule;
        if !(schedule.warmup_epochs.is_finite() && schedule.warmup_epochs >= 0.0) {
            return invalid(
                "lr_schedule.warmup_epochs",
                "0 or more",
                &schedule.warmup_epochs,
            );
        }
        if schedule.step_epochs == 0 {
            return invalid("lr_schedule.step_epochs", "at least 1", &0);
        }
        if !(schedule.gamma.is_finite() && schedule.gamma > 0.0) {
            return invalid("lr_schedule.gamma", "a positive number", &schedule.gamma);
        }
        if !(schedule.min_lr.is_finite() && (0.0..=self.lr).contains(&schedule.min_lr)) {
            return invalid("lr_schedule.min_lr", "between 0 and lr", &schedule.min_lr);
        }
        if self.patience == Some(0) {
            return invalid("patience", "at least 1 when given", &0);
        }
        if let Some(classes) = self.num_classes
            && classes < 2
        {
            return invalid("num_classes", "at least 2 when given", &classes);
        }
        if let (Some(names), Some(classes)) = (&self.class_names, self.num_classes)
            && names.len() != classes
        {
            return invalid(
                "class_names",
                "one name per class (num_classes)",
                &format!("{} names for {classes} classes", names.len()),
            );
        }
        self.check_class_names()
    }

    /// Refuses class names with control characters: they are printed with every
    /// prediction, and an escape sequence in one (ESC `[31m`) would drive the
    /// terminal. Names saved by earlier versions are printed escaped instead.
    pub fn check_class_names(&self) -> Result<(), ConfigError> {
        match self
            .class_names
            .iter()
            .flatten()
            .find(|name| name.chars().any(char::is_control))
        {
            Some(name) => Err(ConfigError::Invalid {
                field: "class_names",
                rule: "names without control characters (such as ESC or a line break)",
                value: format!("{name:?}"),
            }),
            None => Ok(()),
        }
    }
}

/// Bytes per f32.
const F32: u128 = 4;

impl TrainingConfig {
    /// Checks that training this network, at its input size, fits in the memory the
    /// system has left, before anything is allocated: the parameters four times
    /// (weights, gradients and an optimizer's two moments) and one batch's
    /// activations with their gradients. A network too large would otherwise end the
    /// process in an allocation failure.
    pub(crate) fn check_memory(&self) -> Result<(), TrainerError> {
        let Some(available) = data::available_memory() else {
            return Ok(());
        };
        let model = &self.model;
        let parameters = parameter_count(model);
        let mut features: u128 = model.widths().into_iter().map(|w| w as u128).sum();
        // A CNN's feature maps, each before pooling too.
        let maps = model.feature_maps().unwrap_or_default();
        for (block, [c, h, w]) in model.conv.iter().zip(maps) {
            let pool = (block.pool.max(1) as u128).pow(2);
            features += (c * h * w) as u128 * (1 + pool);
        }
        let batch = self.eval_batch_size() as u128;
        let activations: u128 = batch * features * 3;
        let needed = (parameters * 4 + activations) * F32;
        if needed <= u128::from(available) {
            return Ok(());
        }
        let (key, value) = if parameters * 4 >= activations {
            ("model.hidden_sizes", format!("{:?}", model.hidden_sizes))
        } else {
            ("batch_size", self.batch_size.to_string())
        };
        Err(TrainerError::TooLarge {
            key,
            value,
            needed_mb: (needed / 1_000_000).min(u128::from(u64::MAX)) as u64,
            available_mb: available / 1_000_000,
        })
    }
}

/// The parameters of the network `model` describes: its layers' weights and biases
/// and its batch norms' scales and shifts (counted whether or not a block has one, an
/// upper bound), in u128: a mistaken width can overflow a usize count.
pub(crate) fn parameter_count(model: &NetworkConfig) -> u128 {
    let widths: Vec<u128> = model.widths().into_iter().map(|w| w as u128).collect();
    let dense: u128 = widths.windows(2).map(|w| w[0] * w[1] + w[1]).sum();
    let channels = std::iter::once(1).chain(model.conv.iter().map(|block| block.channels));
    let conv: u128 = model
        .conv
        .iter()
        .zip(channels)
        .map(|(block, in_channels)| {
            let c = block.channels as u128;
            (block.kernel_size as u128).pow(2) * in_channels as u128 * c + 2 * c
        })
        .sum();
    dense + conv
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{OptimizerConfig, ScheduleConfig};
    use model::{NetworkConfig, Normalization};

    #[test]
    fn values_a_run_cannot_use_are_rejected() {
        let bad = [
            TrainingConfig::new().with_batch_size(0),
            TrainingConfig::new().with_lr(-0.1),
            TrainingConfig::new().with_lr(f64::NAN),
            TrainingConfig::new().with_epochs(0),
            TrainingConfig::new().with_model(NetworkConfig::new().with_dropout(1.0)),
            TrainingConfig::new().with_model(NetworkConfig::new().with_dropout(-0.1)),
            TrainingConfig::new().with_model(NetworkConfig::new().with_hidden_sizes(vec![64, 0])),
            TrainingConfig::new().with_model(NetworkConfig::new().with_normalization(
                Normalization::Standard {
                    mean: 0.1,
                    std: 0.0,
                },
            )),
            TrainingConfig::new().with_optimizer(OptimizerConfig::new().with_beta_1(1.0)),
            TrainingConfig::new().with_optimizer(OptimizerConfig::new().with_weight_decay(-1.0)),
            TrainingConfig::new().with_lr_schedule(ScheduleConfig::new().with_step_epochs(0)),
            TrainingConfig::new().with_lr_schedule(ScheduleConfig::new().with_min_lr(1.0)),
            TrainingConfig::new().with_patience(Some(0)),
            TrainingConfig::new().with_split(data::SplitConfig::new().with_valid_size(Some(0))),
            TrainingConfig::new().with_log_interval(0),
            TrainingConfig::new().with_num_classes(Some(1)),
            TrainingConfig::new()
                .with_num_classes(Some(3))
                .with_class_names(Some(vec!["a".into()])),
        ];
        for config in bad {
            assert!(config.validate().is_err(), "{config}");
        }
    }

    #[test]
    fn epochs_are_bounded_where_checkpoints_would_fill_the_disk() {
        assert!(
            TrainingConfig::new()
                .with_epochs(MAX_EPOCHS)
                .validate()
                .is_ok()
        );
        for epochs in [MAX_EPOCHS + 1, usize::MAX] {
            let err = TrainingConfig::new()
                .with_epochs(epochs)
                .validate()
                .expect_err("too many epochs");
            let message = err.to_string();
            assert!(
                message.starts_with(&format!(
                    "epochs must be from 1 to {MAX_EPOCHS} (got {epochs})"
                )),
                "{message}"
            );
        }
    }

    #[test]
    fn class_names_with_control_characters_are_refused_naming_the_key() {
        let names = |names: &[&str]| {
            TrainingConfig::new()
                .with_class_names(Some(names.iter().map(|n| n.to_string()).collect()))
        };
        assert!(names(&["T-shirt/top", "Ankle boot"]).validate().is_ok());
        for bad in ["\u{1b}[31mred", "two\nlines", "bell\u{7}"] {
            let err = names(&["fine", bad])
                .validate()
                .expect_err("a control character");
            let message = err.to_string();
            assert!(
                message.starts_with("class_names must be names without control characters")
                    && !message.chars().any(char::is_control),
                "{message}"
            );
        }
    }

    #[test]
    fn a_network_larger_than_memory_is_refused_by_key_before_allocation() {
        assert!(TrainingConfig::new().check_memory().is_ok());
        if data::available_memory().is_none() {
            return;
        }
        let huge = TrainingConfig::new()
            .with_model(NetworkConfig::new().with_hidden_sizes(vec![100_000_000]));
        let err = huge.check_memory().expect_err("1.6 TB of parameters");
        let message = err.to_string();
        assert!(
            message.starts_with("model.hidden_sizes = [100000000] needs about"),
            "{message}"
        );
        let wide_batch = TrainingConfig::new().with_batch_size(100_000_000_000);
        let err = wide_batch.check_memory().expect_err("a huge batch");
        assert!(
            err.to_string().starts_with("batch_size = 100000000000"),
            "{err}"
        );
    }
}
