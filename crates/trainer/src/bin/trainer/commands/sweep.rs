//! `trainer sweep`: a hyperparameter search, each trial a training run of its own.

use std::path::PathBuf;

use clap::Args;
use trainer::console::Console;
use trainer::run_dir::RunDir;
use trainer::sweep::{Outcome, SweepRequest, collect_sweep, plan_sweep, run_sweep, train_trial};

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
    /// Write every trial's directory and config, print how many there are, and
    /// train nothing: the first stage of a sweep on a cluster.
    #[arg(long, conflicts_with_all = ["trial", "collect"])]
    plan: bool,
    /// Train trial N alone (from 1, as in trial-001), resuming it if it was
    /// interrupted: what one task of a job array runs, e.g. with
    /// $SLURM_ARRAY_TASK_ID or $JOB_COMPLETION_INDEX + 1.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..), conflicts_with = "collect")]
    trial: Option<u32>,
    /// Rank the trials that finished, write the leaderboards and best.json, and test
    /// the winner, as a whole sweep does at its end.
    #[arg(long)]
    collect: bool,
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
    if args.plan {
        let trials = plan_sweep(&request)?;
        console.try_line(format_args!(
            "planned {trials} trials in {}; train each with `trainer sweep --config {} --artifacts {} --trial N` (N from 1 to {trials}), then rank them with `--collect`",
            request.dir.display(),
            request.spec_path.display(),
            request.dir.display(),
        ))?;
        return Ok(());
    }
    if let Some(number) = args.trial {
        return match train_trial(&request, number as usize)? {
            Outcome::Finished { .. } => Ok(()),
            Outcome::Failed(reason) => Err(anyhow::anyhow!("trial {number} failed: {reason}")),
        };
    }
    if args.collect {
        collect_sweep(&request)?;
        return Ok(());
    }
    run_sweep(&request)?;
    Ok(())
}
