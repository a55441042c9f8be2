//! `trainer sweep`: a hyperparameter search, each trial a training run of its own.

use std::path::PathBuf;

use clap::Args;
use trainer::console::Console;
use trainer::run_dir::RunDir;
use trainer::sweep::{SweepRequest, run_sweep};

use crate::cli::CommonArgs;

#[derive(Debug, Args)]
pub struct SweepArgs {
    /// Sweep description (JSON): the base config, the values to try and how; see
    /// configs/sweep-*.json.
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
    /// Directory for the trials and leaderboards [default: artifacts/<sweep file name>].
    #[arg(long, value_name = "DIR")]
    artifacts: Option<PathBuf>,
    /// Trials to train at once, each in its own process.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    jobs: u16,
    #[command(flatten)]
    common: CommonArgs,
}

pub fn exec(args: SweepArgs) -> anyhow::Result<()> {
    let console = Console::Stdout;
    let request = SweepRequest {
        dir: args
            .artifacts
            .unwrap_or_else(|| RunDir::default_for(&args.config)),
        spec_path: args.config,
        jobs: usize::from(args.jobs),
        trainer: std::env::current_exe()?,
        data_dir: args.common.data_dir,
        device: args.common.device,
        console,
    };
    run_sweep(&request)?;
    Ok(())
}
