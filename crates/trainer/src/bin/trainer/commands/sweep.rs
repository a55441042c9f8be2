//! `trainer sweep`: a hyperparameter search, each trial a training run of its own.

use std::path::PathBuf;

use clap::Args;
use trainer::console::Console;
use trainer::run_dir::RunDir;
use trainer::stop::StopSignals;
use trainer::sweep::{
    Outcome, SlurmOptions, SweepRequest, collect_sweep, plan_sweep, run_sweep, submit_to_slurm,
    train_trial,
};

use crate::args::CommonArgs;

#[derive(Debug, Args)]
pub struct SweepArgs {
    /// Sweep description (JSON): the base config, the values to try and how; see
    /// configs/sweep-*.json.
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
    /// Run directory of the sweep: its trials (each a run), leaderboards and best.json
    /// [default: artifacts/<sweep file name>].
    #[arg(long = "run", value_name = "DIR", alias = "artifacts")]
    run: Option<PathBuf>,
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
    #[arg(long, conflicts_with = "slurm")]
    collect: bool,
    /// Submit the sweep to Slurm: plan it, then sbatch a job array (one task per
    /// trial, one log per trial in its directory) and a job that collects the results
    /// once the array has ended. The sweep's directory must be on a filesystem every
    /// node sees.
    #[arg(long, conflicts_with_all = ["plan", "trial"])]
    slurm: bool,
    /// With --slurm: the partition to run in.
    #[arg(long, value_name = "P", requires = "slurm")]
    partition: Option<String>,
    /// With --slurm: each trial's time limit, as sbatch reads it (30, 2:00:00, 1-0).
    #[arg(long, value_name = "T", requires = "slurm")]
    time: Option<String>,
    /// With --slurm: CPUs for each trial.
    #[arg(long, value_name = "N", requires = "slurm", value_parser = clap::value_parser!(u16).range(1..))]
    cpus_per_trial: Option<u16>,
    /// With --slurm: trials running at once.
    #[arg(long, value_name = "K", requires = "slurm", value_parser = clap::value_parser!(u16).range(1..))]
    max_parallel: Option<u16>,
    /// With --slurm: seconds before the time limit at which a trial is stopped and its
    /// task requeued, to continue from the trial's last checkpoint.
    #[arg(long, value_name = "S", requires = "slurm", default_value_t = 120)]
    requeue_before: u32,
    #[command(flatten)]
    common: CommonArgs,
}

pub fn exec(args: SweepArgs) -> anyhow::Result<()> {
    let console = Console::Stdout;
    let request = SweepRequest {
        dir: args
            .run
            .unwrap_or_else(|| RunDir::default_for(&args.config)),
        spec_path: args.config,
        jobs: usize::from(args.jobs),
        trainer: std::env::current_exe()?,
        data_dir: args.common.data_dir,
        device: args.common.device,
        console,
        stop: StopSignals::install()?,
    };
    if args.plan {
        let trials = plan_sweep(&request)?;
        console.try_line(format_args!(
            "planned {trials} trials in {}; train each with `trainer sweep --config {} --run {} --trial N` (N from 1 to {trials}), then rank them with `--collect`",
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
    if args.slurm {
        let options = SlurmOptions {
            partition: args.partition,
            time: args.time,
            cpus_per_trial: args.cpus_per_trial,
            max_parallel: args.max_parallel,
            warning_seconds: args.requeue_before,
        };
        let submitted = submit_to_slurm(&request, &options)?;
        console.try_line(format_args!(
            "submitted job array {} ({} trial{}) and collect job {} (after the array); trial logs in {}/trial-NNN/slurm-*.log, results in {}/leaderboard.md and best.json",
            submitted.array_job,
            submitted.trials,
            if submitted.trials == 1 { "" } else { "s" },
            submitted.collect_job,
            request.dir.display(),
            request.dir.display(),
        ))?;
        return Ok(());
    }
    if args.collect {
        collect_sweep(&request)?;
        return Ok(());
    }
    run_sweep(&request)?;
    Ok(())
}
