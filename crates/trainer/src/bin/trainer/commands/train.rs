//! `trainer train`: one training run, new or resumed.

use std::path::PathBuf;

use clap::Args;
use trainer::config::Overrides;
use trainer::console::Console;
use trainer::stop::StopSignals;
use trainer::train::{TrainOptions, dry_run, train};

use crate::args::CommonArgs;

#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Run configuration (JSON); defaults to configs/mnist-mlp.json if present, else
    /// the tutorial's settings. Flags below override its values.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Number of passes over the training set.
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    epochs: Option<usize>,
    /// Images per optimisation step.
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    batch_size: Option<usize>,
    /// The learning rate (the peak of the learning-rate schedule).
    #[arg(long, value_name = "F", allow_negative_numbers = true)]
    lr: Option<f64>,
    /// Seed for weight initialisation and batch order.
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    seed: Option<u64>,
    /// Train on only the first N training images, for quick runs.
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    limit_train: Option<usize>,
    /// Training images held out for validation.
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    valid_size: Option<usize>,
    /// Stop when the validation loss has not improved for N epochs, keeping the best
    /// epoch's model.
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    patience: Option<usize>,
    /// Training steps between progress lines (printed when the output is not a
    /// terminal) and TensorBoard points of the loss and learning rate.
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    log_interval: Option<usize>,
    /// Train data-parallel on several devices: a count (`2`: two workers on the
    /// default device, one per core with the CPU backend) or a list such as
    /// `discrete:0,discrete:1` (wgpu) or `0,1` (cuda). Each takes batch-size / N
    /// images of every step. Recorded in the run's config.
    #[arg(long, value_name = "SPEC", conflicts_with = "device")]
    devices: Option<String>,
    /// Leave out pictures that cannot be decoded and files that are no picture in a
    /// folder data set, with a warning counting them, rather than stop at the first.
    /// Recorded in the run's config (`data.skip_bad_images`).
    #[arg(long)]
    skip_bad_images: bool,
    /// Check the setup: one training step and one validation batch on the real data,
    /// nothing written.
    #[arg(long, conflicts_with_all = ["resume", "overwrite"])]
    dry_run: bool,
    /// With --dry-run: write the first training batch, as the network sees it
    /// (augmented where data.augment says), to FILE as a PNG grid.
    #[arg(long, value_name = "FILE", requires = "dry_run")]
    samples: Option<PathBuf>,
    /// Set any config value by its dotted key, e.g. `--set optimizer.name=adamw`,
    /// `--set lr_schedule.name=cosine`, `--set model.hidden_sizes=[128,64]`;
    /// repeatable, applied over --config and under the flags above.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    settings: Vec<String>,
    /// Skip scoring the final model on the test set (sweeps test only their winner).
    #[arg(long)]
    no_test: bool,
    /// Run directory for checkpoints, logs and the final model [default:
    /// artifacts/<config name>].
    #[arg(long = "run", value_name = "DIR", alias = "artifacts")]
    run: Option<PathBuf>,
    /// Continue the run in --run (by default the one the config names) from its last
    /// checkpoint (model, optimizer and schedule state: an epoch's, or the step where
    /// SIGINT, SIGTERM or SIGUSR1 stopped it), with its saved config.
    #[arg(long)]
    resume: bool,
    /// With --resume: continue the run as a new run in DIR, where flags and --set may
    /// change what the run is (a resumed run otherwise keeps its config).
    #[arg(long, value_name = "NEW_DIR", requires = "resume")]
    fork: Option<PathBuf>,
    /// Replace a run that already exists in --run.
    #[arg(long, conflicts_with = "resume")]
    overwrite: bool,
    #[command(flatten)]
    common: CommonArgs,
}

pub fn exec(args: TrainArgs) -> anyhow::Result<()> {
    let console = Console::Stdout;
    let mut request = TrainOptions {
        config: args.config,
        overrides: Overrides {
            settings: args.settings,
            epochs: args.epochs,
            batch_size: args.batch_size,
            lr: args.lr,
            seed: args.seed,
            limit_train: args.limit_train,
            valid_size: args.valid_size,
            patience: args.patience,
            log_interval: args.log_interval,
            devices: args.devices,
            skip_bad_images: args.skip_bad_images,
        },
        run: args.run,
        resume: args.resume,
        fork: args.fork,
        overwrite: args.overwrite,
        test: !args.no_test,
        data_dir: args.common.data_dir,
    }
    .into_request(console)?;
    let backend = super::open_backend(args.common.device.as_deref(), console)?;
    if args.dry_run {
        dry_run(request, &backend, args.samples.as_deref())?;
    } else {
        request.stop = StopSignals::install()?;
        train(request, &backend)?;
    }
    Ok(())
}
