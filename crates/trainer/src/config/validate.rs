//! The rules a run's configuration must meet before any data is read: each broken one
//! is an error naming the key, the rule and the value.

use super::{ConfigError, TrainingConfig};
use crate::train::optimizer::OptimizerName;

impl TrainingConfig {
    /// Checks the values a run cannot start with.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |field, rule, value: &dyn std::fmt::Display| {
            Err(ConfigError::Invalid {
                field,
                rule,
                value: value.to_string(),
            })
        };
        if self.epochs == 0 {
            return invalid("epochs", "at least 1", &self.epochs);
        }
        if self.batch_size == 0 {
            return invalid("batch_size", "at least 1", &self.batch_size);
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return invalid("lr", "a positive number", &self.lr);
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
        if let Some((mean, std)) = self.model.normalization.statistics()
            && !(mean.is_finite() && std.is_finite() && std > 0.0)
        {
            return invalid(
                "model.normalization",
                "a finite mean and a positive std",
                &format!("mean {mean}, std {std}"),
            );
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
        if let Some(patience) = self.patience
            && self.split.valid_size == 0
        {
            return invalid(
                "patience",
                "used with a validation set (split.valid_size above 0)",
                &patience,
            );
        }
        Ok(())
    }

    /// [`validate`](Self::validate), and the rules of a sweep's trials: a sweep ranks
    /// them on the validation set, so they need one.
    pub fn validate_for_sweep(&self) -> Result<(), ConfigError> {
        self.validate()?;
        if self.split.valid_size == 0 {
            return Err(ConfigError::Invalid {
                field: "split.valid_size",
                rule: "above 0 in a sweep, which ranks trials on the validation set",
                value: "0".into(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::optimizer::OptimizerConfig;
    use crate::train::schedule::ScheduleConfig;
    use model::{MlpConfig, Normalization};

    #[test]
    fn values_a_run_cannot_use_are_rejected() {
        let bad = [
            TrainingConfig::new().with_batch_size(0),
            TrainingConfig::new().with_lr(-0.1),
            TrainingConfig::new().with_lr(f64::NAN),
            TrainingConfig::new().with_epochs(0),
            TrainingConfig::new().with_model(MlpConfig::new().with_dropout(1.0)),
            TrainingConfig::new().with_model(MlpConfig::new().with_dropout(-0.1)),
            TrainingConfig::new().with_model(MlpConfig::new().with_hidden_sizes(vec![64, 0])),
            TrainingConfig::new().with_model(MlpConfig::new().with_normalization(
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
            TrainingConfig::new()
                .with_patience(Some(2))
                .with_split(data::SplitConfig::new().with_valid_size(0)),
            TrainingConfig::new().with_num_classes(Some(1)),
            TrainingConfig::new()
                .with_num_classes(Some(3))
                .with_class_names(Some(vec!["a".into()])),
        ];
        for config in bad {
            assert!(config.validate().is_err(), "{config}");
        }
    }
}
