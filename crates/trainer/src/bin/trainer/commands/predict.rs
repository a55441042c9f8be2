//! `trainer predict`: the digit in image files, or in a test-set image.

use std::path::PathBuf;

use clap::Args;
use trainer::console::Console;
use trainer::infer::{ImageInput, load_images, predict};
use trainer::run_dir::RunDir;

use crate::args::CommonArgs;

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("input").required(true).args(["images", "test_index"]))]
pub struct PredictArgs {
    /// Run directory holding config.json and model.bpk.
    #[arg(long, value_name = "DIR")]
    model: PathBuf,
    /// Image files (PNG or JPEG) of handwritten digits.
    #[arg(value_name = "IMAGE")]
    images: Vec<PathBuf>,
    /// Predict this image of the MNIST test set instead.
    #[arg(long, value_name = "N", conflicts_with = "images")]
    test_index: Option<usize>,
    #[command(flatten)]
    common: CommonArgs,
}

pub fn exec(args: PredictArgs) -> anyhow::Result<()> {
    let console = Console::Stdout;
    let run = RunDir::new(&args.model);
    let backend = super::open_backend(args.common.device.as_deref(), console)?;
    let (config, model) = run.load_model(&backend.device)?;
    let inputs: Vec<ImageInput> = match args.test_index {
        Some(index) => vec![ImageInput::Test(index)],
        None => args.images.into_iter().map(ImageInput::File).collect(),
    };
    let images = load_images(&inputs, &run, &config, args.common.data_dir)?;
    let pixels: Vec<Vec<u8>> = images.iter().map(|image| image.pixels.clone()).collect();
    for (image, prediction) in images
        .iter()
        .zip(predict(&model, &pixels, &backend.device)?)
    {
        let summary = prediction.summary(|class| config.class_name(class));
        console.try_line(format_args!("{}: {summary}", image.title))?;
    }
    Ok(())
}
