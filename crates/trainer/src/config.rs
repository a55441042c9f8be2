//! The run configuration: everything that decides what a training run does, saved as
//! `config.json` beside every model so that a checkpoint always travels with the
//! configuration that built it.

use std::path::Path;

use burn::config::Config;
use burn::optim::AdamConfig;
use data::SplitConfig;
use model::MlpConfig;

/// A training run, with the PyTorch tutorial's settings as defaults.
#[derive(Config, Debug)]
pub struct TrainingConfig {
    /// The network to train.
    #[config(default = "MlpConfig::new()")]
    pub model: MlpConfig,
    /// Adam's hyperparameters other than the learning rate. Epsilon is PyTorch's 1e-8
    /// rather than Burn's 1e-5, to match the tutorial.
    #[config(default = "AdamConfig::new().with_epsilon(1e-8)")]
    pub optimizer: AdamConfig,
    /// How validation images are held out of the training set.
    #[config(default = "SplitConfig::new()")]
    pub split: SplitConfig,
    /// Passes over the training set.
    #[config(default = 5)]
    pub epochs: usize,
    /// Images per optimisation step.
    #[config(default = 64)]
    pub batch_size: usize,
    /// Adam's learning rate.
    #[config(default = 1e-3)]
    pub lr: f64,
    /// Seed for weight initialisation and the order of training batches.
    #[config(default = 42)]
    pub seed: u64,
    /// Train on only the first this-many training images, for quick runs.
    pub limit_train: Option<usize>,
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
    /// otherwise silently fall back to a default) and values it cannot train with.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
            path: shown.clone(),
            error,
        })?;
        let parse_error = |reason: String| ConfigError::Parse {
            path: shown.clone(),
            reason,
        };
        let written: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| parse_error(e.to_string()))?;
        if !written.is_object() {
            return Err(parse_error("it must be a JSON object".into()));
        }
        let mut merged =
            serde_json::to_value(Self::new()).map_err(|e| parse_error(e.to_string()))?;
        overlay(&mut merged, written, "").map_err(|(key, known)| ConfigError::UnknownKey {
            path: shown.clone(),
            key,
            known,
        })?;
        let config: Self = serde_path_to_error::deserialize(merged)
            .map_err(|e| parse_error(format!("`{}`: {}", e.path(), e.inner())))?;
        Ok(config)
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
        Ok(())
    }
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
    fn values_a_run_cannot_use_are_rejected() {
        let bad = [
            TrainingConfig::new().with_batch_size(0),
            TrainingConfig::new().with_lr(-0.1),
            TrainingConfig::new().with_lr(f64::NAN),
            TrainingConfig::new().with_epochs(0),
            TrainingConfig::new().with_model(MlpConfig::new().with_dropout(1.0)),
            TrainingConfig::new().with_model(MlpConfig::new().with_dropout(-0.1)),
            TrainingConfig::new().with_model(MlpConfig::new().with_hidden_sizes(vec![64, 0])),
        ];
        for config in bad {
            assert!(config.validate().is_err(), "{config}");
        }
    }
}
