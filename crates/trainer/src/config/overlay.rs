//! Reading a config from JSON and setting single keys: a file or a `KEY=VALUE` names
//! only what it changes, over the defaults, and a key this program does not know is an
//! error rather than a silent default.

use std::path::Path;

use super::{ConfigError, TrainingConfig};

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
        super::check_unique_keys(&text).map_err(|reason| ConfigError::Parse {
            path: shown.clone(),
            reason,
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
    pub(crate) fn overlaid(
        &self,
        written: serde_json::Value,
        source: &str,
    ) -> Result<Self, ConfigError> {
        let parse_error = |reason: String| ConfigError::Parse {
            path: source.to_string(),
            reason,
        };
        if !written.is_object() {
            return Err(parse_error("it must be a JSON object".into()));
        }
        let mut merged = serde_json::to_value(self).map_err(|e| parse_error(e.to_string()))?;
        overlay(&mut merged, written, "").map_err(|mismatch| match mismatch {
            Mismatch::UnknownKey { key, known } => ConfigError::UnknownKey {
                path: source.to_string(),
                key,
                known,
            },
            Mismatch::NotASection { key, known } => ConfigError::NotASection {
                path: source.to_string(),
                key,
                known,
            },
        })?;
        serde_path_to_error::deserialize(merged)
            .map_err(|e| parse_error(format!("`{}`: {}", e.path(), plain(&e.inner().to_string()))))
    }

    /// This config with `key` (a dotted path such as `optimizer.name`) set to `value`,
    /// which is read as JSON when it parses as JSON and as a string otherwise, so that
    /// `lr=0.01`, `model.hidden_sizes=[128,64]` and `optimizer.name=adamw` all work.
    pub(crate) fn with_setting(&self, key: &str, value: &str) -> Result<Self, ConfigError> {
        let value = serde_json::from_str(value)
            .unwrap_or_else(|_| serde_json::Value::String(value.to_string()));
        self.with_value(key, value)
    }

    /// This config with `key` (a dotted path such as `optimizer.name`) set to `value`.
    pub(crate) fn with_value(
        &self,
        key: &str,
        value: serde_json::Value,
    ) -> Result<Self, ConfigError> {
        self.overlaid(nested(key, value), &format!("setting `{key}`"))
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

/// A dotted key whose value differs between two configs.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Change {
    pub(crate) key: String,
    pub(crate) earlier: serde_json::Value,
    pub(crate) now: serde_json::Value,
}

impl TrainingConfig {
    /// The dotted keys whose values differ from `earlier`'s, with both values, in key
    /// order.
    pub(crate) fn changes_from(&self, earlier: &Self) -> Vec<Change> {
        let mut now = Vec::new();
        let mut before = Vec::new();
        leaves(
            &serde_json::to_value(self).unwrap_or_default(),
            "",
            &mut now,
        );
        leaves(
            &serde_json::to_value(earlier).unwrap_or_default(),
            "",
            &mut before,
        );
        let before: std::collections::BTreeMap<String, serde_json::Value> =
            before.into_iter().collect();
        now.into_iter()
            .filter_map(|(key, now)| {
                let earlier = before.get(&key).cloned().unwrap_or_default();
                (earlier != now).then_some(Change { key, earlier, now })
            })
            .collect()
    }
}

/// Every leaf of `value` with its dotted key.
fn leaves(value: &serde_json::Value, prefix: &str, out: &mut Vec<(String, serde_json::Value)>) {
    match value {
        serde_json::Value::Object(map) if !map.is_empty() => {
            for (key, inner) in map {
                leaves(inner, &format!("{prefix}{key}."), out);
            }
        }
        leaf => out.push((prefix.trim_end_matches('.').to_string(), leaf.clone())),
    }
}

/// A serde message in the user's terms: Burn's `Config` derive deserialises through
/// hidden `...Serde` structs, whose names mean nothing to the user.
fn plain(message: &str) -> String {
    message
        .split(' ')
        .map(
            |word| match word.trim_end_matches(',').strip_suffix("Serde") {
                Some(_) => "object",
                None => word,
            },
        )
        .collect::<Vec<_>>()
        .join(" ")
        .replace("struct object", "an object of keys")
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
/// Where a written config does not fit the layout of the config.
enum Mismatch {
    UnknownKey { key: String, known: String },
    NotASection { key: String, known: String },
}

fn overlay(
    base: &mut serde_json::Value,
    written: serde_json::Value,
    prefix: &str,
) -> Result<(), Mismatch> {
    let known = |map: &serde_json::Map<String, serde_json::Value>| {
        map.keys().cloned().collect::<Vec<_>>().join(", ")
    };
    match (base, written) {
        // A list where a section of keys belongs: serde would read it as the
        // section's fields in order, and complain about the first one.
        (serde_json::Value::Object(base), serde_json::Value::Array(_)) => {
            return Err(Mismatch::NotASection {
                key: prefix.trim_end_matches('.').to_string(),
                known: known(base),
            });
        }
        (serde_json::Value::Object(base), serde_json::Value::Object(written)) => {
            for (key, value) in written {
                let path = format!("{prefix}{key}");
                match base.get_mut(&key) {
                    Some(slot) => overlay(slot, value, &format!("{path}."))?,
                    None => {
                        let known = known(base);
                        return Err(Mismatch::UnknownKey { key: path, known });
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
    use crate::config::OptimizerName;
    use model::Normalization;

    fn write(json: &str) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("config.json");
        std::fs::write(&path, json).expect("write config");
        (dir, path)
    }

    #[test]
    fn wrong_shapes_are_explained_without_internal_names() {
        let err = TrainingConfig::new()
            .with_setting("model", "[1]")
            .expect_err("a list is no network");
        let message = err.to_string();
        assert!(!message.contains("Serde"), "{message}");
        assert!(message.contains("`model` is a section"), "{message}");
        assert!(message.contains("an object of keys"), "{message}");
        assert!(message.contains("hidden_sizes"), "{message}");
    }

    #[test]
    fn changes_are_listed_by_dotted_key() {
        let earlier = TrainingConfig::new();
        let now = earlier
            .with_setting("split.valid_size", "30000")
            .and_then(|c| c.with_setting("seed", "9"))
            .expect("valid");
        let change = |key: &str, earlier: serde_json::Value, now: u64| Change {
            key: key.into(),
            earlier,
            now: now.into(),
        };
        assert_eq!(
            now.changes_from(&earlier),
            [
                change("seed", 42.into(), 9),
                change("split.valid_size", serde_json::Value::Null, 30000)
            ]
        );
        assert!(earlier.changes_from(&earlier.clone()).is_empty());
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
}
