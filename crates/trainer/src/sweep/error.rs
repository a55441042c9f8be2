//! Why a sweep cannot run, or its submission to Slurm failed.

use std::path::PathBuf;

use crate::TrainerError;
use crate::config::ConfigError;

/// A sweep that cannot run, and why.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error(transparent)]
    Trainer(#[from] TrainerError),
    #[error(transparent)]
    Slurm(#[from] SlurmError),
    #[error("cannot read sweep file {path}: {error}")]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("sweep file {path} is not valid: {reason}")]
    Invalid { path: PathBuf, reason: String },
    #[error("trial {trial} of sweep {path} is not a valid config: {error}")]
    Trial {
        path: PathBuf,
        trial: usize,
        error: ConfigError,
    },
    #[error(
        "{dir} holds a trial with another config or data directory than this sweep plans for it; delete {dir}, or run the sweep elsewhere"
    )]
    Changed { dir: PathBuf },
    #[error("cannot start `{exe}`: {error}")]
    Spawn { exe: PathBuf, error: std::io::Error },
    #[error(
        "sweep stopped by {signal}; trial {trial} checkpointed where it was in {}: run the same command again to continue", dir.display()
    )]
    Stopped {
        signal: &'static str,
        trial: usize,
        dir: PathBuf,
    },
    #[error(
        "{} of {total} trials never ran ({}); no winner is chosen until every trial has", trials.len(), trials.join(", ")
    )]
    NotRun { total: usize, trials: Vec<String> },
    #[error("no trial of the sweep finished; see the train.log of each trial in {0}")]
    NothingFinished(PathBuf),
    #[error("the sweep has no trial {number}: its trials are numbered 1 to {count}")]
    NoSuchTrial { number: usize, count: usize },
}

/// Why Slurm did not take the sweep.
#[derive(Debug, thiserror::Error)]
pub enum SlurmError {
    #[error(
        "cannot run `sbatch`: {0}; submit from a Slurm login node (or plan the sweep and run its trials with another scheduler)"
    )]
    NoSbatch(std::io::Error),
    #[error("sbatch refused {script}: {reason}")]
    Refused { script: PathBuf, reason: String },
}
