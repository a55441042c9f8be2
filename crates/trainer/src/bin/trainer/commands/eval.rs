//! `trainer eval`: a trained run's scores on the test set.

use std::path::PathBuf;

use clap::Args;
use trainer::console::Console;
use trainer::infer::TestSet;
use trainer::report::confusion_matrix;
use trainer::run_dir::RunDir;

use crate::args::CommonArgs;

#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Run directory: the trained run, holding config.json and model.bpk (a file
    /// inside it names it too).
    #[arg(long = "run", value_name = "DIR", alias = "model")]
    run: PathBuf,
    #[command(flatten)]
    common: CommonArgs,
}

pub fn exec(args: EvalArgs) -> anyhow::Result<()> {
    let console = Console::Stdout;
    let run = RunDir::named(&args.run);
    let backend = super::open_backend(args.common.device.as_deref(), console)?;
    let model = run.load_model(&backend.device)?;
    let test = TestSet::of(&run, &model.0, args.common.data_dir)?;
    let scores = test.score(&run, &model, &backend.device, console)?;
    let names: Vec<String> = (0..scores.confusion.len())
        .map(|class| model.0.class_name(class))
        .collect();
    console.try_line(scores.report(&names))?;
    // The scores above are the command's result; a run directory that cannot take
    // the picture (read-only, say) does not undo them.
    match confusion_matrix(&scores.confusion, &names, &run.confusion_path()) {
        Ok(()) => console.try_line(format_args!("wrote {}", run.confusion_path().display()))?,
        Err(error) => Console::warn(error),
    }
    Ok(())
}
