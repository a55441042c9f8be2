//! What a `train` invocation asks for, turned into a [`TrainRequest`]: which config
//! (a resumed run keeps its own), what overrides it, where the run lives and which
//! data it reads.

use std::path::{Path, PathBuf};

use super::TrainRequest;
use crate::TrainerError;
use crate::config::{ConfigSource, Overrides};
use crate::console::Console;
use crate::run_dir::RunDir;

/// A training run as the user describes it.
#[derive(Debug, Clone, Default)]
pub struct TrainOptions {
    /// The config file; `None` is the default one, or a resumed run's own.
    pub config: Option<PathBuf>,
    pub overrides: Overrides,
    /// The run directory; by default `artifacts/<config name>`.
    pub artifacts: Option<PathBuf>,
    pub resume: bool,
    pub overwrite: bool,
    /// Score the final model on the test set.
    pub test: bool,
    /// Where the data is; a resumed run defaults to the data it started on.
    pub data_dir: Option<PathBuf>,
}

impl TrainOptions {
    pub fn into_request(self, console: Console) -> Result<TrainRequest, TrainerError> {
        let resumed = match (self.resume, &self.artifacts) {
            (true, None) => return Err(TrainerError::ResumeWithoutDir),
            (true, Some(dir)) => Some(RunDir::new(dir)),
            (false, _) => None,
        };
        // A resumed run keeps its own config unless another is given explicitly,
        // which must then describe the same network.
        let (config, name) = match (&self.config, &resumed) {
            (None, Some(run)) => {
                let config = run
                    .load_config()
                    .map_err(|_| TrainerError::NothingToResume(run.root().to_path_buf()))?;
                (config, String::new())
            }
            (file, _) => ConfigSource::new(file.clone()).load()?,
        };
        let config = self.overrides.apply(config)?;
        config.validate()?;
        let run_dir = RunDir::new(
            self.artifacts
                .unwrap_or_else(|| Path::new("artifacts").join(name)),
        );
        let data_dir = match resumed {
            Some(run) => run.data_dir(self.data_dir),
            None => self.data_dir,
        };
        Ok(TrainRequest {
            config,
            data_dir,
            run_dir,
            resume: self.resume,
            overwrite: self.overwrite,
            test: self.test,
            console,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TrainingConfig;

    #[test]
    fn a_new_run_is_named_after_its_config_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("wide.json");
        std::fs::write(&config, r#"{"model": {"hidden_sizes": [256]}}"#).expect("write");
        let request = TrainOptions {
            config: Some(config),
            overrides: Overrides {
                epochs: Some(1),
                ..Overrides::default()
            },
            ..TrainOptions::default()
        }
        .into_request(Console::Stdout)
        .expect("valid");
        assert_eq!(request.run_dir.root(), Path::new("artifacts/wide"));
        assert_eq!(request.config.model.hidden_sizes, vec![256]);
        assert_eq!(request.config.epochs, 1);
    }

    #[test]
    fn a_resumed_run_keeps_its_config_and_its_data_directory() {
        let dir = tempfile::tempdir().expect("tempdir");
        let run = RunDir::new(dir.path().join("run"));
        run.create().expect("mkdir");
        run.save_config(&TrainingConfig::new().with_lr(0.02))
            .expect("config");
        run.save_info(&crate::run_dir::RunInfo {
            data_dir: Some(dir.path().to_path_buf()),
            ..Default::default()
        })
        .expect("info");
        let request = TrainOptions {
            artifacts: Some(run.root().to_path_buf()),
            resume: true,
            ..TrainOptions::default()
        }
        .into_request(Console::Stdout)
        .expect("resumable");
        assert_eq!(request.config.lr, 0.02);
        assert_eq!(request.data_dir.as_deref(), Some(dir.path()));
    }

    #[test]
    fn resuming_needs_a_run_directory() {
        let options = TrainOptions {
            resume: true,
            ..TrainOptions::default()
        };
        assert!(matches!(
            options.into_request(Console::Stdout),
            Err(TrainerError::ResumeWithoutDir)
        ));
    }
}
