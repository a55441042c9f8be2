//! How an error is told to the user: one line, with the flag that fixes it where the
//! library, which knows no flags, could only say what is wrong.

use data::DataError;
use trainer::TrainerError;
use trainer::backend::BackendError;
use trainer::interop::InteropError;
use trainer::serve::ServeError;
use trainer::sweep::SweepError;

/// The help to point a usage error to: `trainer SUBCOMMAND --help` for the first
/// argument that names a subcommand, else `trainer --help`.
pub fn help_for(args: impl Iterator<Item = String>) -> String {
    let command = crate::cli::command();
    let subcommand = args
        .take_while(|arg| arg != "--")
        .find(|arg| command.find_subcommand(arg).is_some());
    match subcommand {
        Some(name) => format!("trainer {name} --help"),
        None => "trainer --help".to_string(),
    }
}

/// Folds clap's multi-line usage error into the one line every error here gets,
/// pointing to `help`.
pub fn one_line(message: &str, help: &str) -> String {
    let lines: Vec<&str> = message
        .lines()
        .map(str::trim)
        .take_while(|line| !line.starts_with("Usage:") && !line.starts_with("For more information"))
        .filter(|line| !line.is_empty())
        .collect();
    format!("{}; see `{help}`", lines.join(" "))
}

/// Whether `error` is a write to a stdout whose reader has gone.
pub fn is_closed_stdout(error: &anyhow::Error) -> bool {
    error
        .downcast_ref::<std::io::Error>()
        .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
}

/// The error's one line, with the flag that fixes it where the library, which knows
/// no flags, could only say what is wrong.
pub fn with_hint(error: &anyhow::Error) -> String {
    format!("{error:#}{}", hint(error).unwrap_or_default())
}

/// What to pass to fix `error`, said as the end of its line.
fn hint(error: &anyhow::Error) -> Option<String> {
    if let Some(error) = error.downcast_ref::<TrainerError>() {
        return trainer_hint(error);
    }
    if let Some(error) = error.downcast_ref::<DataError>() {
        return data_hint(error);
    }
    if let Some(error) = error.downcast_ref::<BackendError>() {
        return backend_hint(error);
    }
    if let Some(error) = error.downcast_ref::<SweepError>() {
        return match error {
            SweepError::Trainer(error) => trainer_hint(error),
            SweepError::Read { .. } => Some("; pass --config with an existing JSON file".into()),
            SweepError::Changed { .. } => Some(" (another --run directory)".into()),
            SweepError::NotRun { .. } => {
                Some("; train each with `trainer sweep --trial N`, then `--collect` again".into())
            }
            _ => None,
        };
    }
    if let Some(error) = error.downcast_ref::<InteropError>() {
        return match error {
            InteropError::Run(error) => trainer_hint(error),
            InteropError::TargetExists(_) => {
                Some("; pass --overwrite to replace it, or choose another --run directory".into())
            }
            _ => None,
        };
    }
    match error.downcast_ref::<ServeError>() {
        Some(ServeError::Listen { .. }) => {
            Some("; pick another --addr (port 0 lets the system choose a free port)".into())
        }
        _ => None,
    }
}

fn trainer_hint(error: &TrainerError) -> Option<String> {
    let hint = match error {
        TrainerError::Data(error) => return data_hint(error),
        TrainerError::Backend(error) => return backend_hint(error),
        TrainerError::NoModel(..) => "; train one there first, or point --run at a run directory",
        TrainerError::BadModel { .. } => "; retrain it, or point --run at an intact run directory",
        TrainerError::BadCheckpoint { .. } => ", or start over with --overwrite",
        TrainerError::RunExists(_) => {
            "; pass --resume to continue it, --overwrite to replace it, or choose another --run directory"
        }
        TrainerError::NothingToResume(_) => "; start a new run there without --resume",
        TrainerError::AlreadyFinished { .. } => "; pass a larger --epochs to train further",
        TrainerError::StoppedEarly { .. } => "; pass a larger --patience to train further",
        TrainerError::Training(_) => " with --resume",
        // No checkpoint was written before the first epoch ended.
        TrainerError::Diverged { epoch, .. } if *epoch <= 1 => {
            "; lower the learning rate (--lr) and start over"
        }
        TrainerError::Diverged { .. } => {
            "; lower the learning rate (--lr) and continue with --resume"
        }
        TrainerError::Interrupted { .. } => "; continue it with --resume",
        TrainerError::ResumeChanges { .. } => {
            "; resume without those settings (--epochs may raise the total), or pass --fork NEW_DIR to continue it as a new run with them"
        }
        _ => return None,
    };
    Some(hint.into())
}

fn data_hint(error: &DataError) -> Option<String> {
    matches!(
        error,
        DataError::NoSuchDir(_)
            | DataError::MissingFile { .. }
            | DataError::BadMagic { .. }
            | DataError::Download { .. }
            | DataError::Cache { .. }
            | DataError::NoCacheDir
    )
    .then(|| " (--data-dir DIR, or MNIST_DATA_DIR)".into())
}

fn backend_hint(error: &BackendError) -> Option<String> {
    matches!(error, BackendError::NoDeviceChoice { .. }).then(|| "; leave out --device".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clap_errors_fold_into_one_line_pointing_to_the_subcommands_help() {
        let message = "error: unexpected argument '--epoch' found\n\n  tip: a similar argument exists: '--epochs'\n\nUsage: trainer train --epochs <N>\n\nFor more information, try '--help'.\n";
        let args = ["train", "--epoch", "3"].map(String::from);
        assert_eq!(
            one_line(message, &help_for(args.into_iter())),
            "error: unexpected argument '--epoch' found tip: a similar argument exists: '--epochs'; see `trainer train --help`"
        );
        let args = ["--data-dir", "d", "predict", "--run", "r"].map(String::from);
        assert_eq!(help_for(args.into_iter()), "trainer predict --help");
        assert_eq!(
            help_for(["--epochs".to_string()].into_iter()),
            "trainer --help"
        );
    }

    #[test]
    fn where_the_data_is_comes_with_the_flag_that_says_it() {
        let missing = anyhow::Error::from(trainer::TrainerError::Data(data::DataError::NoSuchDir(
            "nowhere".into(),
        )));
        let line = with_hint(&missing);
        assert!(
            line.contains("nowhere") && line.ends_with("(--data-dir DIR, or MNIST_DATA_DIR)"),
            "{line}"
        );
        let other = anyhow::anyhow!("something else");
        assert_eq!(with_hint(&other), "something else");
        let closed = anyhow::Error::from(std::io::Error::from(std::io::ErrorKind::BrokenPipe));
        assert!(is_closed_stdout(&closed) && !is_closed_stdout(&other));
    }

    #[test]
    fn the_flag_that_fixes_an_error_is_found_inside_the_wings_errors_too() {
        let exists = || TrainerError::RunExists("runs/a".into());
        let direct = with_hint(&anyhow::Error::from(exists()));
        assert_eq!(
            direct,
            "runs/a already holds a run; pass --resume to continue it, --overwrite to replace it, or choose another --run directory"
        );
        let in_sweep = with_hint(&anyhow::Error::from(SweepError::from(exists())));
        assert_eq!(in_sweep, direct);
        let imported = with_hint(&anyhow::Error::from(InteropError::TargetExists("x".into())));
        assert!(
            imported.ends_with("choose another --run directory"),
            "{imported}"
        );
    }
}
