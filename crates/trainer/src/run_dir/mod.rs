//! The layout of a run directory: what a training run writes and what evaluation and
//! prediction read back.
//!
//! ```text
//! <run>/config.json                 the TrainingConfig that built the model
//! <run>/run.json                    where the data came from, backend, final test scores
//! <run>/model.bpk                   final weights of the Network (burnpack)
//! <run>/metrics.csv                 loss and accuracy per epoch
//! <run>/curves.png                  the same as a picture, redrawn every epoch
//! <run>/confusion.png               written by `trainer eval`
//! <run>/tensorboard/events.out.tfevents.*   losses, learning rate and scores for TensorBoard
//! <run>/checkpoint/{model,optim,scheduler}-<epoch>.bpk   written after every epoch
//! ```
//!
//! Every file is written atomically ([`crate::fs`]).

use std::path::{Path, PathBuf};

use burn::prelude::*;
use burn::store::ModuleRecord;
use model::Network;
use serde::{Deserialize, Serialize};

use crate::TrainerError;
use crate::config::TrainingConfig;
use crate::epoch::EpochSummary;

mod lock;
pub use self::lock::RunLock;

const CONFIG: &str = "config.json";
/// The file whose advisory lock the process writing a run holds, with its pid in it.
const LOCK: &str = ".lock";
const METRICS: &str = "metrics.csv";
const METRICS_HEADER: &str = "epoch,train_loss,train_accuracy,valid_loss,valid_accuracy,seconds";
const RUN_INFO: &str = "run.json";
const CURVES: &str = "curves.png";
const CONFUSION: &str = "confusion.png";
const MODEL: &str = "model.bpk";
const CHECKPOINTS: &str = "checkpoint";
const TENSORBOARD: &str = "tensorboard";
/// Burn's file checkpointer writes these three records per checkpoint.
pub(crate) const CHECKPOINT_RECORDS: [&str; 3] = ["model", "optim", "scheduler"];

/// Facts about a run that are not part of its configuration.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct RunInfo {
    /// The data directory the run trained on, if one was given, so that evaluating
    /// the run later finds the same data.
    pub(crate) data_dir: Option<PathBuf>,
    /// The backend feature it trained with.
    pub(crate) backend: String,
    /// The epoch whose weights are the final model: the last one, or with early
    /// stopping the one with the lowest validation loss.
    pub kept_epoch: Option<usize>,
    /// Validation loss of the kept epoch.
    pub(crate) valid_loss: Option<f64>,
    /// Validation accuracy of the kept epoch, in percent.
    pub valid_accuracy: Option<f64>,
    /// Mean cross-entropy of the final model on the test set.
    pub(crate) test_loss: Option<f64>,
    /// Test-set accuracy of the final model, in percent.
    pub test_accuracy: Option<f64>,
}

/// A run directory.
#[derive(Debug, Clone)]
pub struct RunDir {
    root: PathBuf,
}

impl RunDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The run `path` names: the directory itself, or, for a file inside a run
    /// (`RUN/model.bpk`, `RUN/checkpoint/model-3.bpk`), the run it belongs to.
    pub fn named(path: impl Into<PathBuf>) -> Self {
        let path = path.into();
        if path.is_file()
            && let Some(run) = path
                .ancestors()
                .skip(1)
                .find(|dir| dir.join(CONFIG).is_file())
        {
            return Self::new(run);
        }
        Self::new(path)
    }

    /// Where runs of the config (or sweep) file `file` go unless told otherwise:
    /// `artifacts/<file name without extension>`.
    pub fn default_for(file: &Path) -> PathBuf {
        let name = file
            .file_stem()
            .map_or_else(|| "run".into(), |stem| stem.to_string_lossy().into_owned());
        Path::new("artifacts").join(name)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn model_path(&self) -> PathBuf {
        self.root.join(MODEL)
    }

    pub fn config_path(&self) -> PathBuf {
        self.root.join(CONFIG)
    }

    pub(crate) fn curves_path(&self) -> PathBuf {
        self.root.join(CURVES)
    }

    pub fn confusion_path(&self) -> PathBuf {
        self.root.join(CONFUSION)
    }

    /// Where the run's TensorBoard event files go.
    pub(crate) fn tensorboard_dir(&self) -> PathBuf {
        self.root.join(TENSORBOARD)
    }

    /// Whether a run has already written here.
    pub(crate) fn holds_run(&self) -> bool {
        self.config_path().exists() || self.root.join(CHECKPOINTS).exists()
    }

    /// The last epoch whose model, optimizer and scheduler checkpoints all exist.
    pub(crate) fn last_checkpoint(&self) -> Option<usize> {
        let dir = self.root.join(CHECKPOINTS);
        let entries = std::fs::read_dir(&dir).ok()?;
        entries
            .filter_map(|entry| {
                let name = entry.ok()?.file_name().into_string().ok()?;
                let epoch = name.strip_prefix("model-")?.strip_suffix(".bpk")?;
                epoch.parse::<usize>().ok()
            })
            .filter(|epoch| {
                CHECKPOINT_RECORDS
                    .iter()
                    .all(|record| dir.join(format!("{record}-{epoch}.bpk")).is_file())
            })
            .max()
    }

    /// Removes what an earlier run wrote here, for `--overwrite`.
    pub(crate) fn clear(&self) -> Result<(), TrainerError> {
        let generated = [
            CONFIG,
            RUN_INFO,
            METRICS,
            MODEL,
            CHECKPOINTS,
            CURVES,
            CONFUSION,
            TENSORBOARD,
        ];
        for name in generated {
            let path = self.root.join(name);
            let removed = if path.is_dir() {
                std::fs::remove_dir_all(&path)
            } else if path.exists() {
                std::fs::remove_file(&path)
            } else {
                Ok(())
            };
            removed.map_err(|error| TrainerError::Write { path, error })?;
        }
        Ok(())
    }

    pub fn load_config(&self) -> Result<TrainingConfig, TrainerError> {
        let path = self.config_path();
        if !path.is_file() {
            return Err(TrainerError::NoModel(self.root.clone(), CONFIG));
        }
        Ok(TrainingConfig::from_file(&path)?)
    }

    pub fn save_config(&self, config: &TrainingConfig) -> Result<(), TrainerError> {
        self.write(CONFIG, config.to_string().as_bytes())
    }

    /// The data directory to evaluate or continue this run on: `given`, else the one
    /// it trained on if that still exists.
    pub(crate) fn data_dir(&self, given: Option<PathBuf>) -> Result<Option<PathBuf>, TrainerError> {
        match given {
            Some(dir) => Ok(Some(dir)),
            None => Ok(self.load_info()?.data_dir.filter(|dir| dir.is_dir())),
        }
    }

    /// The run's facts, or defaults when it recorded none (a run imported from
    /// PyTorch); a damaged file is an error, never a silent default.
    pub fn load_info(&self) -> Result<RunInfo, TrainerError> {
        let path = self.root.join(RUN_INFO);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Ok(RunInfo::default());
            }
            Err(error) => return Err(self.damaged(RUN_INFO, error.to_string())),
        };
        serde_json::from_slice(&bytes).map_err(|e| self.damaged(RUN_INFO, e.to_string()))
    }

    fn damaged(&self, name: &'static str, reason: String) -> TrainerError {
        TrainerError::DamagedRunFile {
            path: self.root.join(name),
            reason,
        }
    }

    pub(crate) fn save_info(&self, info: &RunInfo) -> Result<(), TrainerError> {
        let json = serde_json::to_vec_pretty(info).map_err(|e| TrainerError::Write {
            path: self.root.join(RUN_INFO),
            error: e.into(),
        })?;
        self.write(RUN_INFO, &json)
    }

    /// Whether a run here can be resumed: it has an epoch's checkpoint or one taken
    /// within an epoch.
    pub(crate) fn holds_checkpoint(&self) -> bool {
        self.last_checkpoint().is_some() || self.step_checkpoint_dir().is_dir()
    }

    /// Where the checkpoint taken within an epoch, when a run is stopped, goes.
    pub(crate) fn step_checkpoint_dir(&self) -> PathBuf {
        self.checkpoint_dir().join("step")
    }

    /// Where the per-epoch checkpoints are.
    pub(crate) fn checkpoint_dir(&self) -> PathBuf {
        self.root.join(CHECKPOINTS)
    }

    /// The path of one of Burn's per-epoch checkpoint records (`model`, `optim` or
    /// `scheduler`).
    pub(crate) fn checkpoint_path(&self, record: &str, epoch: usize) -> PathBuf {
        self.checkpoint_dir().join(format!("{record}-{epoch}.bpk"))
    }

    /// Rewrites `metrics.csv` with one row per epoch.
    pub(crate) fn save_metrics(&self, epochs: &[EpochSummary]) -> Result<(), TrainerError> {
        let rows = epochs.iter().map(|e| {
            format!(
                "{},{},{},{},{},{:.3}",
                e.epoch,
                e.train_loss,
                e.train_accuracy,
                e.valid_loss,
                e.valid_accuracy,
                e.duration.as_secs_f64()
            )
        });
        let csv: Vec<String> = std::iter::once(METRICS_HEADER.to_string())
            .chain(rows)
            .collect();
        self.write(METRICS, (csv.join("\n") + "\n").as_bytes())
    }

    /// The epochs recorded in `metrics.csv` up to and including `last_epoch`; none
    /// when there is no such file yet. A row that cannot be read is an error naming
    /// the file, not a silent loss of history.
    pub fn load_metrics(&self, last_epoch: usize) -> Result<Vec<EpochSummary>, TrainerError> {
        let text = match std::fs::read_to_string(self.root.join(METRICS)) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(error) => return Err(self.damaged(METRICS, error.to_string())),
        };
        let mut lines = text.lines();
        if lines.next() != Some(METRICS_HEADER) {
            return Err(self.damaged(METRICS, format!("its first line is not `{METRICS_HEADER}`")));
        }
        let mut epochs = Vec::new();
        for (number, line) in lines.enumerate() {
            let unreadable = || self.damaged(METRICS, format!("line {} is `{line}`", number + 2));
            let fields: Vec<f64> = line
                .split(',')
                .map(str::parse)
                .collect::<Result<_, _>>()
                .map_err(|_| unreadable())?;
            let [
                epoch,
                train_loss,
                train_accuracy,
                valid_loss,
                valid_accuracy,
                seconds,
            ] = fields[..]
            else {
                return Err(unreadable());
            };
            let summary = EpochSummary {
                epoch: epoch as usize,
                train_loss,
                train_accuracy,
                valid_loss,
                valid_accuracy,
                duration: std::time::Duration::try_from_secs_f64(seconds).unwrap_or_default(),
                train_duration: std::time::Duration::ZERO,
            };
            if summary.epoch <= last_epoch {
                epochs.push(summary);
            }
        }
        Ok(epochs)
    }

    /// Saves the final model, replacing any earlier one only once it is complete.
    pub fn save_model(&self, model: &Network) -> Result<(), TrainerError> {
        let path = self.model_path();
        let bytes = model
            .clone()
            .into_record()
            .into_bytes()
            .map_err(|e| TrainerError::Write {
                error: std::io::Error::other(e.to_string()),
                path: path.clone(),
            })?;
        crate::seal::write(&path, &bytes).map_err(|error| TrainerError::Write { path, error })
    }

    /// Loads the run's configuration and final model onto `device`.
    pub fn load_model(&self, device: &Device) -> Result<(TrainingConfig, Network), TrainerError> {
        let config = self.load_config()?;
        let path = self.model_path();
        if !path.is_file() {
            return Err(TrainerError::NoModel(self.root.clone(), MODEL));
        }
        config.check_memory()?;
        let bad_model = |reason: String| TrainerError::BadModel {
            path: path.clone(),
            reason,
        };
        let bytes = crate::seal::read(&path).map_err(|e| bad_model(e.to_string()))?;
        let record = ModuleRecord::from_bytes(bytes).map_err(|e| bad_model(e.to_string()))?;
        let model = config
            .model
            .init(device)
            .try_load_record(record)
            .map_err(|e| bad_model(e.to_string()))?;
        if let Some(bad) = crate::weights::first_non_finite(&model) {
            return Err(TrainerError::BadModel {
                path,
                reason: format!(
                    "its tensor {} holds {}, not a finite number",
                    bad.tensor, bad.value
                ),
            });
        }
        Ok((config, model))
    }

    /// Creates the directory; a file in its place is named as one.
    pub fn create(&self) -> Result<(), TrainerError> {
        if self.root.exists() && !self.root.is_dir() {
            return Err(TrainerError::NotADirectory(self.root.clone()));
        }
        std::fs::create_dir_all(&self.root).map_err(|error| TrainerError::Write {
            path: self.root.clone(),
            error,
        })
    }

    /// Removes what a run that failed before its first checkpoint wrote, and the
    /// directory itself when nothing else is left in it, so that the next plain
    /// `train` there starts cleanly.
    pub(crate) fn discard(&self) -> Result<(), TrainerError> {
        self.clear()?;
        let _ = std::fs::remove_file(self.root.join(LOCK));
        // Not empty: the user keeps other files here.
        let _ = std::fs::remove_dir(&self.root);
        Ok(())
    }

    fn write(&self, name: &str, contents: &[u8]) -> Result<(), TrainerError> {
        crate::fs::write_atomically(&self.root.join(name), contents)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_checkpoint_needs_all_three_records() {
        let dir = tempfile::tempdir().expect("tempdir");
        let run = RunDir::new(dir.path());
        assert_eq!(run.last_checkpoint(), None);
        let checkpoints = dir.path().join(CHECKPOINTS);
        std::fs::create_dir_all(&checkpoints).expect("mkdir");
        for epoch in [1, 2, 10] {
            for record in CHECKPOINT_RECORDS {
                std::fs::write(checkpoints.join(format!("{record}-{epoch}.bpk")), b"x")
                    .expect("write");
            }
        }
        std::fs::write(checkpoints.join("model-11.bpk"), b"x").expect("write");
        assert_eq!(run.last_checkpoint(), Some(10));
        assert!(run.holds_run());
    }

    #[test]
    fn metrics_round_trip_and_stop_at_the_given_epoch() {
        let dir = tempfile::tempdir().expect("tempdir");
        let run = RunDir::new(dir.path());
        let epochs: Vec<EpochSummary> = (1..=3)
            .map(|epoch| EpochSummary {
                epoch,
                train_loss: 1.0 / epoch as f64,
                train_accuracy: 90.0 + epoch as f64,
                valid_loss: 0.5,
                valid_accuracy: 95.25,
                duration: std::time::Duration::from_millis(1500),
                train_duration: std::time::Duration::ZERO,
            })
            .collect();
        run.save_metrics(&epochs).expect("save");
        assert_eq!(run.load_metrics(3).expect("readable"), epochs);
        assert_eq!(run.load_metrics(2).expect("readable"), epochs[..2].to_vec());
        let none = RunDir::new(dir.path().join("none"));
        assert!(none.load_metrics(9).expect("no file, no epochs").is_empty());
        assert_eq!(
            none.load_info().expect("no file, defaults").kept_epoch,
            None
        );
    }

    #[test]
    fn damaged_run_files_are_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let run = RunDir::new(dir.path());
        std::fs::write(dir.path().join(METRICS), "garbage\n1,2,3\n").expect("write");
        let err = run.load_metrics(9).expect_err("garbage");
        assert!(err.to_string().contains("metrics.csv"), "{err}");
        std::fs::write(
            dir.path().join(METRICS),
            format!("{METRICS_HEADER}\n1,0.5,x,1,1,1\n"),
        )
        .expect("write");
        let err = run.load_metrics(9).expect_err("a bad row");
        assert!(err.to_string().contains("line 2"), "{err}");
        std::fs::write(dir.path().join(RUN_INFO), "{not json").expect("write");
        let err = run.load_info().expect_err("garbage");
        assert!(err.to_string().contains("run.json"), "{err}");
        assert!(
            run.data_dir(None).is_err(),
            "no silent fallback to another data set"
        );
    }

    #[test]
    fn model_round_trips_with_identical_weights() {
        let dir = tempfile::tempdir().expect("tempdir");
        let run = RunDir::new(dir.path());
        let device = Device::flex();
        let config = TrainingConfig::new()
            .with_model(model::NetworkConfig::new().with_hidden_sizes(vec![8]));
        let model = config.model.init(&device);
        run.save_config(&config).expect("save config");
        run.save_model(&model).expect("save model");
        let (_, loaded) = run.load_model(&device).expect("load");
        let input = Tensor::<2>::random([4, 784], burn::tensor::Distribution::Default, &device);
        let expected = model.forward(input.clone()).into_data();
        loaded.forward(input).into_data().assert_eq(&expected, true);
    }

    #[test]
    fn a_model_of_another_shape_is_a_clear_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let run = RunDir::new(dir.path());
        let device = Device::flex();
        run.save_model(
            &model::NetworkConfig::new()
                .with_hidden_sizes(vec![8])
                .init(&device),
        )
        .expect("save model");
        run.save_config(&TrainingConfig::new())
            .expect("save config");
        let err = run.load_model(&device).expect_err("shape mismatch");
        assert!(matches!(err, TrainerError::BadModel { .. }), "{err}");
    }

    #[test]
    fn missing_run_is_reported_by_name() {
        let run = RunDir::new("/no/such/run");
        let err = run.load_model(&Device::flex()).expect_err("nothing there");
        assert!(err.to_string().contains("/no/such/run"), "{err}");
    }
}
