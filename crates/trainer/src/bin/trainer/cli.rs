//! The command line's shape: the subcommands, each with its arguments in `commands/`.

use clap::{Parser, Subcommand};

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
