//! The run configuration: everything that decides what a training run does, saved as
//! `config.json` beside every model so that a checkpoint always travels with the
//! configuration that built it. Reading it from JSON, and `--set`-style overrides, are
//! in [`overlay`]; the rules a run's values must meet are in [`validate`].

mod optimizer;
mod overlay;
mod overrides;
mod schedule;
mod unique_keys;
mod validate;

pub(crate) use optimizer::{OptimizerConfig, OptimizerName};
pub use overrides::{ConfigSource, Overrides};
pub(crate) use schedule::{ScheduleConfig, ScheduleName};
pub(crate) use unique_keys::check_unique_keys;
pub(crate) use validate::parameter_count;

use burn::config::Config;
use data::{DataConfig, SplitConfig};
use model::NetworkConfig;

/// A training run, with the PyTorch tutorial's settings as defaults.
#[derive(Config, Debug)]
pub struct TrainingConfig {
    /// The network to train. Its `input_size` and `num_classes` are taken from the
    /// data when training starts.
    #[config(default = "NetworkConfig::new()")]
    pub model: NetworkConfig,
    /// The optimizer and its hyperparameters other than the learning rate.
    #[config(default = "OptimizerConfig::new()")]
    pub(crate) optimizer: OptimizerConfig,
    /// How the learning rate changes over the run.
    #[config(default = "ScheduleConfig::new()")]
    pub(crate) lr_schedule: ScheduleConfig,
    /// How validation images are held out of the training set.
    #[config(default = "SplitConfig::new()")]
    pub split: SplitConfig,
    /// How the images are prepared: for pictures in folders, their channels and size
    /// and whether bad ones are skipped (IDX files take none of it); for every data
    /// set, random transforms of the training images (`data.augment`).
    #[config(default = "DataConfig::new()")]
    pub data: DataConfig,
    /// Passes over the training set.
    #[config(default = 5)]
    pub epochs: usize,
    /// Images per optimisation step.
    #[config(default = 64)]
    pub batch_size: usize,
    /// The learning rate (the peak of the schedule).
    #[config(default = 1e-3)]
    pub(crate) lr: f64,
    /// Seed for weight initialisation and the order of training batches.
    #[config(default = 42)]
    pub seed: u64,
    /// Training steps between progress lines (when the output is not a terminal) and
    /// points of the training loss and learning rate in the TensorBoard log.
    #[config(default = 100)]
    pub(crate) log_interval: usize,
    /// Train on only the first this-many training images, for quick runs.
    pub limit_train: Option<usize>,
    /// Stop when the validation loss has not improved for this many epochs, and keep
    /// the model of the epoch with the lowest validation loss.
    pub(crate) patience: Option<usize>,
    /// Classes the network predicts; by default the largest label in the data plus one.
    pub(crate) num_classes: Option<usize>,
    /// Names of the classes in label order, for printing (e.g. Fashion-MNIST's
    /// "T-shirt/top", "Trouser", ...); by default the labels themselves.
    pub(crate) class_names: Option<Vec<String>>,
    /// Data-parallel training over several devices: a count (that many workers on
    /// the default device, e.g. one per CPU core with `flex`) or a comma-separated
    /// list (wgpu's `discrete:0,discrete:1`, cuda indices). Each device takes
    /// `batch_size / N` images of every step, from its own contiguous share of the
    /// epoch; the gradients are summed on the first device, which steps the
    /// optimizer. By default one device (`--device`).
    pub(crate) devices: Option<String>,
}

/// A configuration that cannot be used, and why.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {error}; name an existing JSON config file")]
    Read { path: String, error: std::io::Error },
    #[error("config {path} is not valid: {reason}")]
    Parse { path: String, reason: String },
    #[error("config {path} has unknown key `{key}`; known keys at that level: {known}")]
    UnknownKey {
        path: String,
        key: String,
        known: String,
    },
    #[error("config {path}: `{key}` is a section; write it as an object of keys ({known})")]
    NotASection {
        path: String,
        key: String,
        known: String,
    },
    #[error("setting `{0}` is not KEY=VALUE; write it like optimizer.name=adamw")]
    Setting(String),
    #[error("model.{0}; fix it in the config or on the command line")]
    Network(#[from] model::NetworkError),
    #[error("data.augment.{key} {reason}; fix it in the config or on the command line")]
    Augment { key: &'static str, reason: String },
    #[error("model.normalization {0}; fix it in the config or on the command line")]
    Normalization(String),
    #[error("{field} must be {rule} (got {value}); fix it in the config or on the command line")]
    Invalid {
        field: &'static str,
        rule: &'static str,
        value: String,
    },
}

impl TrainingConfig {
    /// Optimisation steps in an epoch of `images` training images.
    pub(crate) fn steps_per_epoch(&self, images: usize) -> usize {
        images.div_ceil(self.batch_size)
    }

    /// Evaluation keeps no gradients, so it can take bigger batches than training.
    pub(crate) fn eval_batch_size(&self) -> usize {
        self.batch_size.max(1000)
    }

    /// Takes from `saved`, the config a run of the same data wrote, what training fits
    /// to the data rather than reads from the config: the network's input and classes,
    /// the pictures' channels, size and class names, the per-channel statistics of a
    /// `"dataset"` standardisation, and the validation size when none is asked.
    pub(crate) fn fit_like(&mut self, saved: &Self) {
        if self.model.normalization == model::Normalization::Dataset
            && matches!(
                saved.model.normalization,
                model::Normalization::Channels { .. }
            )
        {
            self.model.normalization = saved.model.normalization.clone();
        }
        if self.split.valid_size.is_none() {
            self.split.valid_size = saved.split.valid_size;
        }
        self.model.input_size = saved.model.input_size;
        self.model.input_shape = saved.model.input_shape;
        self.model.num_classes = saved.model.num_classes;
        if saved.data.image_size.is_some() {
            self.data.channels = saved.data.channels;
            self.data.image_size = saved.data.image_size;
            self.class_names.clone_from(&saved.class_names);
        }
    }

    /// The class names to print: the configured ones, else the labels as numbers.
    pub fn class_name(&self, class: usize) -> String {
        self.class_names
            .as_ref()
            .and_then(|names| names.get(class))
            .cloned()
            .unwrap_or_else(|| class.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_tutorial() {
        let config = TrainingConfig::new();
        assert_eq!((config.epochs, config.batch_size, config.lr), (5, 64, 1e-3));
        assert_eq!(config.model.hidden_sizes, vec![64, 64]);
        assert_eq!(config.split.valid_size, None);
        assert!(config.validate().is_ok());
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
    fn a_resumed_run_keeps_what_its_data_decided_unless_asked_otherwise() {
        use model::{NetworkConfig, Normalization};
        let statistics = Normalization::Channels {
            mean: vec![0.5],
            std: vec![0.25],
        };
        let saved = TrainingConfig::new()
            .with_model(NetworkConfig::new().with_normalization(statistics.clone()))
            .with_split(data::SplitConfig::new().with_valid_size(Some(5000)));
        let dataset = NetworkConfig::new().with_normalization(Normalization::Dataset);
        let mut asked = TrainingConfig::new().with_model(dataset);
        asked.fit_like(&saved);
        assert!(
            asked.changes_from(&saved).is_empty(),
            "{:?}",
            asked.changes_from(&saved)
        );
        // What the user asks for still differs.
        let mut asked =
            TrainingConfig::new().with_split(data::SplitConfig::new().with_valid_size(Some(300)));
        asked.fit_like(&saved);
        let keys: Vec<String> = asked
            .changes_from(&saved)
            .into_iter()
            .map(|c| c.key)
            .collect();
        assert_eq!(keys, ["model.normalization", "split.valid_size"]);
    }
}
