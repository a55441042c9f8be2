//! How an error is told to the user: one line, with the flag that fixes it where the
//! library, which knows no flags, could only say what is wrong.

/// Folds clap's multi-line usage error into the one line every error here gets.
pub fn one_line(message: &str) -> String {
    let lines: Vec<&str> = message
        .lines()
        .map(str::trim)
        .take_while(|line| !line.starts_with("Usage:") && !line.starts_with("For more information"))
        .filter(|line| !line.is_empty())
        .collect();
    format!("{}; see `trainer --help`", lines.join(" "))
}

/// Whether `error` is a write to a stdout whose reader has gone.
pub fn is_closed_stdout(error: &anyhow::Error) -> bool {
    error
        .downcast_ref::<std::io::Error>()
        .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
}

/// The error's one line, with the flag that fixes it where the library, which knows
/// no flags, could only say what is missing.
pub fn with_hint(error: &anyhow::Error) -> String {
    use data::DataError;
    let data_error = error.downcast_ref::<DataError>().or_else(|| {
        match error.downcast_ref::<trainer::TrainerError>() {
            Some(trainer::TrainerError::Data(data)) => Some(data),
            _ => None,
        }
    });
    let hint = match data_error {
        Some(
            DataError::NoSuchDir(_)
            | DataError::MissingFile { .. }
            | DataError::BadMagic { .. }
            | DataError::Download { .. }
            | DataError::Cache { .. }
            | DataError::NoCacheDir,
        ) => " (--data-dir DIR, or MNIST_DATA_DIR)",
        _ => "",
    };
    format!("{error:#}{hint}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clap_errors_fold_into_one_line() {
        let message = "error: unexpected argument '--epoch' found\n\n  tip: a similar argument exists: '--epochs'\n\nUsage: trainer train --epochs <N>\n\nFor more information, try '--help'.\n";
        assert_eq!(
            one_line(message),
            "error: unexpected argument '--epoch' found tip: a similar argument exists: '--epochs'; see `trainer --help`"
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
}
