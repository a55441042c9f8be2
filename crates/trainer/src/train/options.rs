//! What a `train` invocation asks for, turned into a [`TrainRequest`]: which config
//! (a resumed run keeps its own), what overrides it, where the run lives and which
//! data it reads.

use std::path::PathBuf;

use super::TrainRequest;
use super::checkpoint::resume::fork;
use crate::TrainerError;
use crate::config::{ConfigSource, Overrides};
use crate::console::Console;
use crate::run_dir::RunDir;
use crate::stop::StopSignals;

/// A training run as the user describes it.
#[derive(Debug, Clone, Default)]
pub struct TrainOptions {
    /// The config file; `None` is the default one, or a resumed run's own.
    pub config: Option<PathBuf>,
    pub overrides: Overrides,
    /// The run directory; by default `artifacts/<config name>`, for a new run and for
    /// one to resume.
    pub run: Option<PathBuf>,
    pub resume: bool,
    /// With `resume`: continue the run as a new one in this directory, where the
    /// overrides may change what the run is.
    pub fork: Option<PathBuf>,
    pub overwrite: bool,
    /// Score the final model on the test set.
    pub test: bool,
    /// Where the data is; a resumed run defaults to the data it started on.
    pub data_dir: Option<PathBuf>,
}

impl TrainOptions {
    pub fn into_request(self, console: Console) -> Result<TrainRequest, TrainerError> {
        let resumed = match (self.resume, &self.run) {
            (true, Some(dir)) => Some(RunDir::named(dir)),
            (true, None) => Some(RunDir::new(
                ConfigSource::new(self.config.clone()).load()?.1,
            )),
            (false, _) => None,
        };
        let Some(run) = resumed else {
            let (config, default_dir) = ConfigSource::new(self.config).load()?;
            let config = self.overrides.apply(config)?;
            config.validate()?;
            let run_dir = self.run.unwrap_or(default_dir);
            if run_dir.is_file() {
                return Err(TrainerError::NotADirectory(run_dir));
            }
            return Ok(TrainRequest {
                config,
                data_dir: self.data_dir,
                run_dir: RunDir::new(run_dir),
                resume: false,
                overwrite: self.overwrite,
                test: self.test,
                console,
                stop: StopSignals::default(),
            });
        };
        if !run.config_path().exists() {
            return Err(TrainerError::NothingToResume(run.root().to_path_buf()));
        }
        let saved = run.load_config()?;
        let base = match self.config {
            Some(file) => ConfigSource::File(file).load()?.0,
            None => saved.clone(),
        };
        let mut config = self.overrides.apply(base)?;
        config.validate()?;
        // Training fits these to the data; the data stays the run's own.
        config.fit_like(&saved);
        let changes: Vec<String> = config
            .changes_from(&saved)
            .into_iter()
            // Raising the epoch count extends the run; how often it logs is no part of it.
            .filter(|change| !matches!(change.key.as_str(), "epochs" | "log_interval"))
            .map(|change| {
                format!(
                    "{} (saved {}, asked {})",
                    change.key, change.earlier, change.now
                )
            })
            .collect();
        let data_dir = run.data_dir(self.data_dir)?;
        let run_dir = match self.fork {
            Some(new_dir) => {
                let forked = RunDir::new(new_dir);
                fork(&run, &forked)?;
                forked
            }
            None if !changes.is_empty() => {
                return Err(TrainerError::ResumeChanges {
                    dir: run.root().to_path_buf(),
                    changes: changes.join(", "),
                });
            }
            None => run,
        };
        Ok(TrainRequest {
            config,
            data_dir,
            run_dir,
            resume: true,
            overwrite: false,
            test: self.test,
            console,
            stop: StopSignals::default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TrainingConfig;
    use std::path::Path;

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
            run: Some(run.root().to_path_buf()),
            resume: true,
            ..TrainOptions::default()
        }
        .into_request(Console::Stdout)
        .expect("resumable");
        assert_eq!(request.config.lr, 0.02);
        assert_eq!(request.data_dir.as_deref(), Some(dir.path()));
    }

    #[test]
    fn a_resumed_run_refuses_changes_unless_forked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let run = RunDir::new(dir.path().join("run"));
        run.create().expect("mkdir");
        run.save_config(&TrainingConfig::new().with_epochs(2))
            .expect("config");
        let resume = |overrides: Overrides, fork: Option<PathBuf>| {
            TrainOptions {
                run: Some(run.root().to_path_buf()),
                resume: true,
                overrides,
                fork,
                ..TrainOptions::default()
            }
            .into_request(Console::Stdout)
        };
        let more_epochs = Overrides {
            epochs: Some(5),
            log_interval: Some(10),
            ..Overrides::default()
        };
        assert_eq!(resume(more_epochs, None).expect("allowed").config.epochs, 5);
        let changed = Overrides {
            seed: Some(9),
            settings: vec!["split.valid_size=300".into()],
            ..Overrides::default()
        };
        let err = resume(changed.clone(), None).expect_err("a changed run");
        let message = err.to_string();
        assert!(
            message.contains("seed (saved 42, asked 9), split.valid_size (saved null, asked 300)"),
            "{message}"
        );
        assert!(
            matches!(err, TrainerError::ResumeChanges { .. }),
            "{message}"
        );
        // Forked, the changes apply to a new run that starts from the checkpoint.
        let checkpoints = run.root().join("checkpoint");
        std::fs::create_dir_all(&checkpoints).expect("mkdir");
        for record in ["model", "optim", "scheduler"] {
            std::fs::write(checkpoints.join(format!("{record}-1.bpk")), record).expect("write");
        }
        let new_dir = dir.path().join("fork");
        let request = resume(changed, Some(new_dir.clone())).expect("forked");
        assert_eq!(request.run_dir.root(), new_dir);
        assert_eq!(
            (request.config.seed, request.config.split.valid_size),
            (9, Some(300))
        );
        assert_eq!(request.run_dir.last_checkpoint(), Some(1));
        assert_eq!(
            run.load_config().expect("kept").seed,
            42,
            "the original is untouched"
        );
    }

    #[test]
    fn a_resumed_run_takes_no_absurd_epoch_count() {
        let dir = tempfile::tempdir().expect("tempdir");
        let run = RunDir::new(dir.path().join("run"));
        run.create().expect("mkdir");
        run.save_config(&TrainingConfig::new()).expect("config");
        let err = TrainOptions {
            run: Some(run.root().to_path_buf()),
            resume: true,
            overrides: Overrides {
                epochs: Some(usize::MAX),
                ..Overrides::default()
            },
            ..TrainOptions::default()
        }
        .into_request(Console::Stdout)
        .expect_err("2^64 - 1 epochs");
        assert!(
            err.to_string()
                .starts_with("epochs must be from 1 to 100000"),
            "{err}"
        );
    }

    #[test]
    fn resuming_without_a_directory_continues_the_run_the_config_names() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("wide.json");
        std::fs::write(&config, "{}").expect("write");
        let options = TrainOptions {
            config: Some(config),
            resume: true,
            ..TrainOptions::default()
        };
        // No run there yet: the error names the directory resuming looked in.
        match options.into_request(Console::Stdout) {
            Err(TrainerError::NothingToResume(dir)) => {
                assert_eq!(dir, Path::new("artifacts/wide"));
            }
            other => panic!("{other:?}"),
        }
    }
}
