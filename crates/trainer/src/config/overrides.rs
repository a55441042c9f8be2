//! Where a run's configuration comes from and in which order its sources apply: the
//! file (or the built-in defaults), then `KEY=VALUE` settings, then single values such
//! as the epoch count, each later one winning.

use std::path::{Path, PathBuf};

use data::DataConfig;

use super::{ConfigError, TrainingConfig};
use crate::run_dir::RunDir;

/// The configuration used when no file is named, relative to the working directory.
pub(crate) const DEFAULT_CONFIG: &str = "configs/mnist-mlp.json";

/// The file a configuration is read from, and the name it gives a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigSource {
    /// This file.
    File(PathBuf),
    /// [`DEFAULT_CONFIG`] if it exists, else the built-in defaults (the tutorial's).
    Default,
}

impl ConfigSource {
    /// `Some(path)` is that file; `None` the default.
    pub fn new(path: Option<PathBuf>) -> Self {
        path.map_or(Self::Default, Self::File)
    }

    /// The configuration and the run directory it gives by default (see
    /// [`RunDir::default_for`]; the built-in defaults are named for the default file).
    pub fn load(&self) -> Result<(TrainingConfig, PathBuf), ConfigError> {
        let default = Path::new(DEFAULT_CONFIG);
        let path = match self {
            Self::File(path) => path.as_path(),
            Self::Default if default.is_file() => default,
            Self::Default => return Ok((TrainingConfig::new(), RunDir::default_for(default))),
        };
        Ok((TrainingConfig::from_file(path)?, RunDir::default_for(path)))
    }
}

/// Values given on top of a configuration; `None` keeps the configuration's.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Overrides {
    /// `KEY=VALUE` settings of any dotted key, applied in order before the values below.
    pub settings: Vec<String>,
    pub epochs: Option<usize>,
    pub batch_size: Option<usize>,
    pub lr: Option<f64>,
    pub seed: Option<u64>,
    pub limit_train: Option<usize>,
    pub valid_size: Option<usize>,
    pub patience: Option<usize>,
    pub log_interval: Option<usize>,
    pub devices: Option<String>,
    /// Leave bad pictures out (`data.skip_bad_images`); `false` keeps the config's.
    pub skip_bad_images: bool,
}

impl Overrides {
    /// `config` with the settings, then the single values, put over it.
    pub(crate) fn apply(&self, config: TrainingConfig) -> Result<TrainingConfig, ConfigError> {
        let config = self.settings.iter().try_fold(config, |config, setting| {
            let (key, value) = setting
                .split_once('=')
                .ok_or_else(|| ConfigError::Setting(setting.clone()))?;
            config.with_setting(key.trim(), value.trim())
        })?;
        Ok(TrainingConfig {
            epochs: self.epochs.unwrap_or(config.epochs),
            batch_size: self.batch_size.unwrap_or(config.batch_size),
            lr: self.lr.unwrap_or(config.lr),
            seed: self.seed.unwrap_or(config.seed),
            limit_train: self.limit_train.or(config.limit_train),
            patience: self.patience.or(config.patience),
            log_interval: self.log_interval.unwrap_or(config.log_interval),
            devices: self.devices.clone().or(config.devices),
            data: DataConfig {
                skip_bad_images: self.skip_bad_images || config.data.skip_bad_images,
                ..config.data.clone()
            },
            split: match self.valid_size {
                Some(valid_size) => config.split.clone().with_valid_size(Some(valid_size)),
                None => config.split.clone(),
            },
            ..config
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_win_over_settings_which_win_over_the_file() {
        let file = TrainingConfig::new().with_lr(0.5).with_epochs(9);
        let overrides = Overrides {
            settings: vec![
                "lr=0.01".into(),
                "epochs = 3".into(),
                "batch_size=16".into(),
            ],
            epochs: Some(2),
            valid_size: Some(100),
            ..Overrides::default()
        };
        let config = overrides.apply(file).expect("valid");
        assert_eq!(config.lr, 0.01, "the setting wins over the file");
        assert_eq!(config.epochs, 2, "the value wins over the setting");
        assert_eq!(config.batch_size, 16);
        assert_eq!(config.split.valid_size, Some(100));
        assert_eq!(config.seed, TrainingConfig::new().seed, "untouched");
    }

    #[test]
    fn a_setting_without_an_equals_sign_is_named() {
        let overrides = Overrides {
            settings: vec!["lr".into()],
            ..Overrides::default()
        };
        let err = overrides
            .apply(TrainingConfig::new())
            .expect_err("not KEY=VALUE");
        assert!(err.to_string().contains("`lr`"), "{err}");
    }

    #[test]
    fn a_named_file_names_the_run() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("small-net.json");
        std::fs::write(&path, r#"{"epochs": 2}"#).expect("write");
        let (config, dir) = ConfigSource::new(Some(path)).load().expect("loads");
        assert_eq!(
            (config.epochs, dir),
            (2, PathBuf::from("artifacts/small-net"))
        );
    }
}
