//! `trainer bench`: the measurements `bench/compare.sh` sets beside PyTorch's.

use std::path::PathBuf;

use clap::Args;
use trainer::bench::{process_age, run_bench};
use trainer::config::TrainingConfig;
use trainer::console::Console;

use crate::args::CommonArgs;

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Run configuration (JSON) to time, as `train --config` takes; the tutorial's
    /// network and settings when left out.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Epochs of the training run to time (the median counts).
    #[arg(long, value_name = "N", default_value_t = 5, value_parser = clap::value_parser!(u16).range(1..))]
    epochs: u16,
    #[command(flatten)]
    common: CommonArgs,
}

pub fn exec(args: BenchArgs) -> anyhow::Result<()> {
    // Stdout carries the JSON alone; everything else goes to stderr.
    let config = match &args.config {
        Some(path) => TrainingConfig::from_file(path)?,
        None => TrainingConfig::new(),
    };
    let backend = super::open_backend(args.common.device.as_deref(), Console::Stderr)?;
    let report = run_bench(
        config,
        args.common.data_dir,
        usize::from(args.epochs),
        &backend,
        process_age,
    )?;
    Console::Stdout.try_line(serde_json::to_string(&report)?)?;
    Ok(())
}
