//! `trainer import`: a run directory made from a PyTorch state dict.

use std::path::PathBuf;

use clap::Args;
use trainer::config::TrainingConfig;
use trainer::console::Console;
use trainer::interop::import_run;
use trainer::run_dir::RunDir;

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// PyTorch state dict: a safetensors file or a torch.save file (.pt, .pth).
    #[arg(long, value_name = "FILE")]
    from: PathBuf,
    /// Run directory to create.
    #[arg(long = "run", value_name = "DIR", alias = "out")]
    run: PathBuf,
    /// Replace a run that already exists in --run.
    #[arg(long)]
    overwrite: bool,
    /// A config whose `model` describes the network, for a state dict that does not
    /// say (a CNN saved by PyTorch itself; exports of this program carry theirs).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// The data the run is evaluated on, recorded in the run as a trained run records
    /// the data it trained on.
    #[arg(long, value_name = "DIR", env = "MNIST_DATA_DIR")]
    data_dir: Option<PathBuf>,
}

pub fn exec(args: ImportArgs) -> anyhow::Result<()> {
    let backend = trainer::backend::open(None)?;
    let run = RunDir::new(&args.run);
    let network = match &args.config {
        Some(path) => {
            let config = TrainingConfig::from_file(path)?;
            // Refused as `train` refuses it, though only its network is taken.
            config.check_class_names()?;
            Some(config.model)
        }
        None => None,
    };
    let config = import_run(
        &args.from,
        network,
        &run,
        args.data_dir,
        args.overwrite,
        &backend.device,
    )?;
    Console::Stdout.try_line(format_args!(
        "imported {} ({}) into {}",
        args.from.display(),
        config.model.architecture(),
        run.root().display()
    ))?;
    Ok(())
}
