//! The command line's shape: the subcommands, the options they share, and how errors
//! are told to the user in one line.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::commands;

/// Train, evaluate and run an MNIST digit classifier (the PyTorch tutorial's MLP) on
/// Burn. Without a subcommand, trains.
#[derive(Debug, Parser)]
#[command(name = "trainer", version, args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub train: commands::train::TrainArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Train a model, checkpointing every epoch (the default command).
    Train(commands::train::TrainArgs),
    /// Search hyperparameters: train a grid or a random sample of configs, rank them
    /// on the validation set, and test the best.
    Sweep(commands::sweep::SweepArgs),
    /// Score a trained run on the test set: loss, accuracy, per-class accuracy and
    /// confusion matrix.
    Eval(commands::eval::EvalArgs),
    /// Predict the digit in image files, or in a test-set image.
    Predict(commands::predict::PredictArgs),
    /// Draw what the model looks at for one image: the input, its saliency map and the
    /// first layer's weights, as one PNG.
    Explain(commands::explain::ExplainArgs),
    /// Show the network's layers, output shapes and parameter counts.
    Summary(commands::summary::SummaryArgs),
    /// Serve a page to draw digits on and a JSON prediction API, until SIGINT or SIGTERM.
    Serve(commands::serve::ServeArgs),
    /// Measure training, evaluation and prediction speed, start-up time and memory
    /// for the comparison with PyTorch (bench/compare.sh); prints one JSON object on
    /// stdout, progress on stderr.
    Bench(commands::bench::BenchArgs),
    /// Write a trained model's weights as the PyTorch tutorial's state dict.
    Export(commands::export::ExportArgs),
    /// Make a run directory from a PyTorch state dict of the tutorial's network.
    Import(commands::import::ImportArgs),
}

/// Where the data is and what to compute on: options every data-reading command takes.
#[derive(Debug, Args)]
pub struct CommonArgs {
    /// Directory with the four MNIST IDX files (raw or .gz). Without it, Burn's dataset
    /// cache is used, downloading into it if needed.
    #[arg(long, value_name = "DIR", env = "MNIST_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Device of a GPU backend: `default`, `discrete[:N]`, `integrated[:N]`,
    /// `virtual[:N]` or `cpu` for wgpu; an index for cuda.
    #[arg(long, value_name = "DEVICE")]
    pub device: Option<String>,
}

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
