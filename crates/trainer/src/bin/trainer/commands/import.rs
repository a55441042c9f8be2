//! `trainer import`: a run directory made from a PyTorch state dict.

use std::path::PathBuf;

use clap::Args;
use trainer::console::Console;
use trainer::interop::import_run;
use trainer::run_dir::RunDir;

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// PyTorch state dict: a safetensors file or a torch.save file (.pt, .pth).
    #[arg(long, value_name = "FILE")]
    from: PathBuf,
    /// Run directory to create.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Replace a run that already exists in --out.
    #[arg(long)]
    overwrite: bool,
}

pub fn exec(args: ImportArgs) -> anyhow::Result<()> {
    let backend = trainer::backend::open(None)?;
    let run = RunDir::new(&args.out);
    let config = import_run(&args.from, &run, args.overwrite, &backend.device)?;
    Console::Stdout.try_line(format_args!(
        "imported {} ({}) into {}",
        args.from.display(),
        config.model.architecture(),
        run.root().display()
    ))?;
    Ok(())
}
