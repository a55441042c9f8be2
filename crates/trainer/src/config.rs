//! The run configuration: everything that decides what a training run does, saved as
//! `config.json` beside every model so that a checkpoint always travels with the
//! configuration that built it.

use std::path::Path;

use burn::config::Config;
use data::SplitConfig;
use model::MlpConfig;

use crate::optimizer::{OptimizerConfig, OptimizerName};
use crate::schedule::ScheduleConfig;

/// A training run, with the PyTorch tutorial's settings as defaults.
#[derive(Config, Debug)]
pub struct TrainingConfig {
    /// The network to train. Its `input_size` and `num_classes` are taken from the
    /// data when training starts.
    #[config(default = "MlpConfig::new()")]
    pub model: MlpConfig,
    /// The optimizer and its hyperparameters other than the learning rate.
    #[config(default = "OptimizerConfig::new()")]
    pub optimizer: OptimizerConfig,
    /// How the learning rate changes over the run.
    #[config(default = "ScheduleConfig::new()")]
    pub lr_schedule: ScheduleConfig,
    /// How validation images are held out of the training set.
    #[config(default = "SplitConfig::new()")]
    pub split: SplitConfig,
    /// Passes over the training set.
    #[config(default = 5)]
    pub epochs: usize,
    /// Images per optimisation step.
    #[config(default = 64)]
    pub batch_size: usize,
    /// The learning rate (the peak of the schedule).
    #[config(default = 1e-3)]
    pub lr: f64,
    /// Seed for weight initialisation and the order of training batches.
    #[config(default = 42)]
    pub seed: u64,
    /// Train on only the first this-many training images, for quick runs.
    pub limit_train: Option<usize>,
    /// Stop when the validation loss has not improved for this many epochs, and keep
    /// the model of the epoch with the lowest validation loss.
    pub patience: Option<usize>,
    /// Classes the network predicts; by default the largest label in the data plus one.
    pub num_classes: Option<usize>,
    /// Names of the classes in label order, for printing (e.g. Fashion-MNIST's
    /// "T-shirt/top", "Trouser", ...); by default the labels themselves.
    pub class_names: Option<Vec<String>>,
}

/// A configuration that cannot be used, and why.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {error}; pass --config with an existing JSON file")]
    Read { path: String, error: std::io::Error },
    #[error("config {path} is not valid: {reason}")]
    Parse { path: String, reason: String },
    #[error("config {path} has unknown key `{key}`; known keys at that level: {known}")]
    UnknownKey {
        path: String,
        key: String,
        known: String,
    },
    #[error("{field} must be {rule} (got {value}); fix it in the config or on the command line")]
    Invalid {
        field: &'static str,
        rule: &'static str,
        value: String,
    },
}

impl TrainingConfig {
    /// Reads a JSON config, rejecting keys this program does not know (a typo would
    /// otherwise silently fall back to a default) and values of the wrong type. Keys
    /// the file leaves out keep their defaults.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
            path: shown.clone(),
            error,
        })?;
        let mut written: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| ConfigError::Parse {
                path: shown.clone(),
                reason: e.to_string(),
            })?;
        upgrade_legacy_optimizer(&mut written);
        Self::new().overlaid(written, &shown)
    }

    /// This config with the values of `written`, a JSON object in the layout of the
    /// config file, put over it. `source` names where `written` came from in errors.
    pub fn overlaid(&self, written: serde_json::Value, source: &str) -> Result<Self, ConfigError> {
        let parse_error = |reason: String| ConfigError::Parse {
            path: source.to_string(),
            reason,
        };
        if !written.is_object() {
            return Err(parse_error("it must be a JSON object".into()));
        }
        let mut merged = serde_json::to_value(self).map_err(|e| parse_error(e.to_string()))?;
        overlay(&mut merged, written, "").map_err(|(key, known)| ConfigError::UnknownKey {
            path: source.to_string(),
            key,
            known,
        })?;
        serde_path_to_error::deserialize(merged)
            .map_err(|e| parse_error(format!("`{}`: {}", e.path(), e.inner())))
    }

    /// This config with `key` (a dotted path such as `optimizer.name`) set to `value`,
    /// which is read as JSON when it parses as JSON and as a string otherwise, so that
    /// `lr=0.01`, `model.hidden_sizes=[128,64]` and `optimizer.name=adamw` all work.
    pub fn with_setting(&self, key: &str, value: &str) -> Result<Self, ConfigError> {
        let value = serde_json::from_str(value)
            .unwrap_or_else(|_| serde_json::Value::String(value.to_string()));
        self.with_value(key, value)
    }

    /// This config with `key` (a dotted path such as `optimizer.name`) set to `value`.
    pub fn with_value(&self, key: &str, value: serde_json::Value) -> Result<Self, ConfigError> {
        self.overlaid(nested(key, value), &format!("setting `{key}`"))
    }

    /// The class names to print: the configured ones, else the labels as numbers.
    pub fn class_name(&self, class: usize) -> String {
        self.class_names
            .as_ref()
            .and_then(|names| names.get(class))
            .cloned()
            .unwrap_or_else(|| class.to_string())
    }

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
        Ok(())
    }
}

/// Runs trained before the optimizer could be chosen saved Burn's `AdamConfig`
/// (`amsgrad`, `grad_clipping`, `weight_decay` as `null` or `{"penalty": p}`); reads
/// such a config as the Adam it describes, so that those runs still load. Settings
/// this program cannot honour (AMSGrad, gradient clipping) are left in place, to be
/// refused as unknown keys.
fn upgrade_legacy_optimizer(written: &mut serde_json::Value) {
    use serde_json::Value;
    let Some(optimizer) = written.get_mut("optimizer").and_then(Value::as_object_mut) else {
        return;
    };
    let legacy = optimizer.get("amsgrad") == Some(&Value::Bool(false))
        && optimizer.get("grad_clipping") == Some(&Value::Null);
    if !legacy {
        return;
    }
    optimizer.remove("amsgrad");
    optimizer.remove("grad_clipping");
    let penalty = match optimizer.get("weight_decay") {
        Some(Value::Object(decay)) => decay.get("penalty").cloned().unwrap_or(Value::from(0.0)),
        _ => Value::from(0.0),
    };
    optimizer.insert("weight_decay".into(), penalty);
}

/// `{"a": {"b": value}}` for the key `a.b`.
fn nested(key: &str, value: serde_json::Value) -> serde_json::Value {
    key.rsplit('.').fold(value, |inner, part| {
        serde_json::Value::Object(serde_json::Map::from_iter([(part.to_string(), inner)]))
    })
}

/// Writes the values of `written` (a config as the user wrote it) over `base` (the
/// defaults, serialised), so that a file need only name what it changes. Fails with
/// the first key `base` does not have, and the keys it has there.
fn overlay(
    base: &mut serde_json::Value,
    written: serde_json::Value,
    prefix: &str,
) -> Result<(), (String, String)> {
    match (base, written) {
        (serde_json::Value::Object(base), serde_json::Value::Object(written)) => {
            for (key, value) in written {
                let path = format!("{prefix}{key}");
                match base.get_mut(&key) {
                    Some(slot) => overlay(slot, value, &format!("{path}."))?,
                    None => {
                        let known = base.keys().cloned().collect::<Vec<_>>().join(", ");
                        return Err((path, known));
                    }
                }
            }
        }
        (base, written) => *base = written,
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use model::Normalization;

    fn write(json: &str) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("config.json");
        std::fs::write(&path, json).expect("write config");
        (dir, path)
    }

    #[test]
    fn defaults_are_the_tutorial() {
        let config = TrainingConfig::new();
        assert_eq!((config.epochs, config.batch_size, config.lr), (5, 64, 1e-3));
        assert_eq!(config.model.hidden_sizes, vec![64, 64]);
        assert_eq!(config.split.valid_size, 5000);
        assert!(config.validate().is_ok());
    }

    #[test]
    fn partial_file_takes_defaults_for_the_rest() {
        let (_dir, path) = write(r#"{"epochs": 2, "model": {"hidden_sizes": [32]}}"#);
        let config = TrainingConfig::from_file(&path).expect("valid");
        assert_eq!(config.epochs, 2);
        assert_eq!(config.model.hidden_sizes, vec![32]);
        assert_eq!((config.batch_size, config.model.input_size), (64, 784));
    }

    #[test]
    fn saved_config_loads_back_equal() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("c.json");
        let config = TrainingConfig::new()
            .with_epochs(3)
            .with_limit_train(Some(100));
        config.save(&path).expect("save");
        let loaded = TrainingConfig::from_file(&path).expect("load");
        assert_eq!(loaded.to_string(), config.to_string());
    }

    #[test]
    fn unknown_keys_are_named_even_when_nested() {
        let (_dir, path) = write(r#"{"epoch": 2}"#);
        let err = TrainingConfig::from_file(&path).expect_err("typo");
        assert!(err.to_string().contains("`epoch`"), "{err}");
        let (_dir, path) = write(r#"{"model": {"hidden": [32]}}"#);
        let err = TrainingConfig::from_file(&path).expect_err("typo");
        assert!(err.to_string().contains("`model.hidden`"), "{err}");
    }

    #[test]
    fn configs_of_runs_from_before_the_optimizer_choice_still_load() {
        let (_dir, path) = write(
            r#"{"optimizer": {"beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-8,
                "amsgrad": false, "weight_decay": {"penalty": 0.001}, "grad_clipping": null},
                "epochs": 3}"#,
        );
        let config = TrainingConfig::from_file(&path).expect("legacy Adam");
        assert_eq!(config.optimizer.name, OptimizerName::Adam);
        assert_eq!(config.optimizer.weight_decay, 0.001);
        assert_eq!(config.epochs, 3);
        let (_dir, path) = write(
            r#"{"optimizer": {"amsgrad": true, "weight_decay": null, "grad_clipping": null}}"#,
        );
        let err = TrainingConfig::from_file(&path).expect_err("AMSGrad is not offered");
        assert!(err.to_string().contains("amsgrad"), "{err}");
    }

    #[test]
    fn wrong_types_and_bad_json_are_parse_errors() {
        let (_dir, path) = write(r#"{"epochs": "five"}"#);
        assert!(matches!(
            TrainingConfig::from_file(&path),
            Err(ConfigError::Parse { .. })
        ));
        let (_dir, path) = write("{");
        assert!(matches!(
            TrainingConfig::from_file(&path),
            Err(ConfigError::Parse { .. })
        ));
    }

    #[test]
    fn optimizer_schedule_and_normalization_parse() {
        let (_dir, path) = write(
            r#"{"optimizer": {"name": "adamw", "weight_decay": 0.01},
                "lr_schedule": {"name": "cosine", "warmup_epochs": 0.5},
                "model": {"normalization": "mnist"}, "patience": 2,
                "class_names": ["zero", "one"], "num_classes": 2}"#,
        );
        let config = TrainingConfig::from_file(&path).expect("valid");
        assert_eq!(config.optimizer.name, OptimizerName::Adamw);
        assert_eq!(config.optimizer.weight_decay, 0.01);
        assert_eq!(config.lr_schedule.warmup_epochs, 0.5);
        assert_eq!(config.model.normalization, Normalization::Mnist);
        assert_eq!(config.patience, Some(2));
        assert_eq!(config.class_name(1), "one");
        assert!(config.validate().is_ok());
        let (_dir, path) = write(r#"{"optimizer": {"name": "rmsprop"}}"#);
        let err = TrainingConfig::from_file(&path).expect_err("unknown optimizer");
        assert!(err.to_string().contains("optimizer.name"), "{err}");
    }

    #[test]
    fn settings_override_nested_keys_and_read_json_or_text() {
        let config = TrainingConfig::new()
            .with_setting("optimizer.name", "sgd")
            .and_then(|c| c.with_setting("lr", "0.05"))
            .and_then(|c| c.with_setting("model.hidden_sizes", "[128, 32]"))
            .expect("valid settings");
        assert_eq!(config.optimizer.name, OptimizerName::Sgd);
        assert_eq!(config.lr, 0.05);
        assert_eq!(config.model.hidden_sizes, vec![128, 32]);
        let err = TrainingConfig::new()
            .with_setting("optimizer.nmae", "sgd")
            .expect_err("typo");
        assert!(err.to_string().contains("`optimizer.nmae`"), "{err}");
        let err = TrainingConfig::new()
            .with_setting("epochs", "many")
            .expect_err("not a number");
        assert!(err.to_string().contains("epochs"), "{err}");
    }

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
