//! The command line's shape: the subcommands, each with its arguments in `commands/`.

use std::sync::LazyLock;

use clap::{CommandFactory, Parser, Subcommand};
use trainer::backend::COMPILED_BACKEND;

use crate::commands;

/// `0.1.0 (flex backend, commit 1a2b3c4)`: the version, the backend compiled in and
/// the commit built (`TRAINER_COMMIT`, from the build script).
pub fn version() -> &'static str {
    static VERSION: LazyLock<String> = LazyLock::new(|| {
        format!(
            "{} ({COMPILED_BACKEND} backend, commit {})",
            env!("CARGO_PKG_VERSION"),
            env!("TRAINER_COMMIT")
        )
    });
    VERSION.as_str()
}

/// The command line as clap parses it, with [`version`].
pub fn command() -> clap::Command {
    Cli::command().version(version())
}

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
    /// Write a trained model as a PyTorch state dict (safetensors) or as ONNX.
    Export(commands::export::ExportArgs),
    /// Make a run directory from a PyTorch state dict of the tutorial's network.
    Import(commands::import::ImportArgs),
    /// Print a shell completion script: `trainer completions bash > ~/.local/share/bash-completion/completions/trainer`.
    Completions(commands::completions::CompletionsArgs),
    /// Print the manual page (roff): `trainer man > trainer.1 && man ./trainer.1`.
    Man,
}
