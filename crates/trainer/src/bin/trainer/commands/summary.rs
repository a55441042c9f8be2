//! `trainer summary`: the network's layers, output shapes and parameter counts.

use std::path::PathBuf;

use clap::Args;
use trainer::config::ConfigSource;
use trainer::console::Console;
use trainer::report::model_summary;
use trainer::run_dir::RunDir;

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("network").required(true).args(["run", "config"]))]
pub struct SummaryArgs {
    /// Run directory: the network as it trained (a file inside the run names it too).
    #[arg(long = "run", value_name = "DIR", alias = "model")]
    run: Option<PathBuf>,
    /// Run configuration (JSON): the network it describes, for 28x28 images and 10
    /// classes unless it says otherwise (training takes both from the data).
    #[arg(long, value_name = "FILE", conflicts_with = "run")]
    config: Option<PathBuf>,
}

pub fn exec(args: SummaryArgs) -> anyhow::Result<()> {
    let config = match (args.run, args.config) {
        (Some(dir), _) => RunDir::named(dir).load_config()?,
        (None, file) => ConfigSource::new(file).load()?.0,
    };
    Console::Stdout.try_line(model_summary(&config.model))?;
    Ok(())
}
