//! The error of the library's core: training, evaluating and predicting, and the run
//! directories they read and write. Serving, import and export and sweeps have errors
//! of their own that wrap it. No message names a flag: the binary adds the one that
//! fixes it.

use std::path::PathBuf;

use crate::backend::BackendError;
use crate::config::ConfigError;

/// Why the trainer could not do its job. Each message says what should hold and,
/// where it can without naming a flag, what to do.
#[derive(Debug, thiserror::Error)]
pub enum TrainerError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Data(#[from] data::DataError),
    #[error(transparent)]
    Backend(#[from] BackendError),
    #[error("{0} holds no trained model (no {1})")]
    NoModel(PathBuf, &'static str),
    #[error("cannot load the model in {path}: {reason}")]
    BadModel { path: PathBuf, reason: String },
    #[error(
        "checkpoint {path} is unreadable: {reason}; delete that epoch's checkpoint files to resume from the one before"
    )]
    BadCheckpoint { path: PathBuf, reason: String },
    #[error(
        "{} is damaged ({reason}); restore it from a backup, or delete the run and train it again", path.display()
    )]
    DamagedRunFile { path: PathBuf, reason: String },
    #[error(
        "{key} = {value} needs about {needed_mb} MB of memory to train, but {available_mb} MB is available; choose a smaller {key}"
    )]
    TooLarge {
        key: &'static str,
        value: String,
        needed_mb: u64,
        available_mb: u64,
    },
    #[error("{} is a file, not a directory; choose a directory for the run", .0.display())]
    NotADirectory(PathBuf),
    #[error("cannot write {path}: {error}")]
    Write {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{0} already holds a run")]
    RunExists(PathBuf),
    #[error("{} is being written by {}; wait for it to finish, or stop it", dir.display(), holder.map_or_else(|| "another process".to_string(), |pid| format!("process {pid}")))]
    RunBusy { dir: PathBuf, holder: Option<u32> },
    #[error(
        "cannot resume the run in {dir}: its checkpoints hold a {checkpoint} network but the config describes {config}; resume with the run's own config, or start a new run elsewhere"
    )]
    ResumeMismatch {
        dir: PathBuf,
        checkpoint: String,
        config: String,
    },
    #[error("{0} holds no run to resume (no config.json)")]
    NothingToResume(PathBuf),
    #[error("the run in {dir} already finished its {epochs} epochs")]
    AlreadyFinished { dir: PathBuf, epochs: usize },
    #[error(
        "the run in {dir} stopped early after epoch {epoch}: its validation loss stopped improving"
    )]
    StoppedEarly { dir: PathBuf, epoch: usize },
    #[error(
        "the data's images have {found} pixels but the model takes {expected} inputs; set model.input_size to {found} in the config"
    )]
    InputSizeMismatch { expected: usize, found: usize },
    #[error(
        "the classes of {data} are {found}, but the run trained on {trained}; give the data the run trained on"
    )]
    OtherClasses {
        data: String,
        found: String,
        trained: String,
    },
    #[error(
        "every image of the data has the label {0}: a classifier needs two classes or more; fix the labels file"
    )]
    OneClass(usize),
    #[error(
        "the data's labels do not name classes: taken from them, the class count would be {classes} (the largest label, {max_label}, is that of {split} image {index}), and {empty} of those classes have no image; fix the labels file, or set num_classes in the config to train with them as they are"
    )]
    NotClasses {
        classes: usize,
        empty: usize,
        max_label: usize,
        split: &'static str,
        index: usize,
    },
    #[error(
        "the data has labels up to {max_label} but the model has {classes} classes; set num_classes to at least {needed} in the config, or leave it out to take the class count from the labels"
    )]
    TooFewClasses {
        max_label: usize,
        classes: usize,
        needed: usize,
    },
    #[error("cannot draw {path}: {reason}")]
    Picture { path: PathBuf, reason: String },
    #[error("training stopped: {0}; fix the cause, then continue from the last checkpoint")]
    Training(String),
    #[error("training stopped: the training loss became {loss} at epoch {epoch}, step {step}; {}", divergence_state(*epoch, dir))]
    Diverged {
        loss: f64,
        epoch: usize,
        step: usize,
        dir: PathBuf,
    },
    #[error("training stopped: {reason}; its checkpoints are in {}", dir.display())]
    Interrupted { reason: String, dir: PathBuf },
    #[error(
        "step checkpoint {path} is unreadable: {reason}; delete the folder it is in to resume from the last epoch's checkpoint instead"
    )]
    BadStepCheckpoint { path: PathBuf, reason: String },
    #[error("cannot catch the stop signals ({0})")]
    Signals(String),
    #[error("cannot build a batch of the data: {0}")]
    Batch(String),
    #[error("cannot read the model's output back from the device: {0}")]
    TensorRead(String),
    #[error(
        "the run in {} keeps the config it was trained with, but this would change {changes}", dir.display()
    )]
    ResumeChanges { dir: PathBuf, changes: String },
    #[error("{0} holds no checkpoint to fork a run from; train it for an epoch first")]
    NothingToFork(PathBuf),
    #[error("cannot read image {path}: {reason}; give a PNG or JPEG file of a digit")]
    Image { path: PathBuf, reason: String },
    #[error("test index {index} is out of range; the test set has {len} images (0 to {})", len.saturating_sub(1))]
    TestIndex { index: usize, len: usize },
    #[error(
        "the model's input size {0} is not a square image; predicting from image files needs a square input such as 784 = 28x28"
    )]
    NotSquare(usize),
}

/// What is left after the loss diverged in `epoch`: whether a checkpoint is left to
/// continue from.
fn divergence_state(epoch: usize, dir: &std::path::Path) -> String {
    match epoch.saturating_sub(1) {
        0 => "no checkpoint was written, so the run is removed again".to_string(),
        last_good => format!(
            "the last good checkpoint is epoch {last_good}, in {}",
            dir.display()
        ),
    }
}

impl From<burn::tensor::TensorReadError> for TrainerError {
    fn from(error: burn::tensor::TensorReadError) -> Self {
        Self::TensorRead(error.to_string())
    }
}
