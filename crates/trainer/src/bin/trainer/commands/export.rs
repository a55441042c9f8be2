//! `trainer export`: a trained model in another framework's or runtime's format.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use trainer::console::Console;
use trainer::interop::{export_onnx, export_safetensors};
use trainer::run_dir::RunDir;

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Run directory: the trained run, holding config.json and model.bpk (a file
    /// inside it names it too).
    #[arg(long = "run", value_name = "DIR", alias = "model")]
    run: PathBuf,
    /// File format to write.
    #[arg(long, value_enum)]
    format: ExportFormat,
    /// File to write; an existing one is replaced.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ExportFormat {
    /// `fc1.weight` [64, 784], `fc1.bias` [64], ... for `Net().load_state_dict(load_file(FILE))`.
    Safetensors,
    /// An ONNX model (opset 17): input `pixels` [batch, inputs] in 0..1, output
    /// `logits` [batch, classes], for onnxruntime and other ONNX runtimes.
    Onnx,
}

pub fn exec(args: ExportArgs) -> anyhow::Result<()> {
    let run = RunDir::named(&args.run);
    let backend = trainer::backend::open(None)?;
    let (config, model) = run.load_model(&backend.device)?;
    match args.format {
        ExportFormat::Safetensors => export_safetensors(&model, &config.model, &args.out)?,
        ExportFormat::Onnx => export_onnx(&model, &config, &args.out)?,
    }
    Console::Stdout.try_line(format_args!(
        "wrote {} ({}) to {}",
        run.root().display(),
        config.model.architecture(),
        args.out.display()
    ))?;
    Ok(())
}
