//! `trainer predict`: the digit in image files, or in a test-set image.

use std::path::PathBuf;

use clap::Args;
use trainer::console::Console;
use trainer::infer::{ImageInput, load_images, predict};
use trainer::run_dir::RunDir;

use crate::args::CommonArgs;

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("input").required(true).multiple(true).args(["images", "image", "test_index"]))]
pub struct PredictArgs {
    /// Run directory: the trained run, holding config.json and model.bpk (a file
    /// inside it names it too).
    #[arg(long = "run", value_name = "DIR", alias = "model")]
    run: PathBuf,
    /// Image files (PNG or JPEG) of handwritten digits.
    #[arg(value_name = "IMAGE")]
    images: Vec<PathBuf>,
    /// An image file, as IMAGE is (repeatable).
    #[arg(long, value_name = "FILE")]
    image: Vec<PathBuf>,
    /// Predict this image of the MNIST test set instead.
    #[arg(long, value_name = "N", conflicts_with_all = ["images", "image"])]
    test_index: Option<usize>,
    /// Flag a prediction whose top probability is below P (0 to 1) as low confidence.
    #[arg(long, value_name = "P", default_value_t = 0.5, value_parser = probability)]
    min_confidence: f32,
    #[command(flatten)]
    common: CommonArgs,
}

pub fn exec(args: PredictArgs) -> anyhow::Result<()> {
    let console = Console::Stdout;
    let run = RunDir::named(&args.run);
    let backend = super::open_backend(args.common.device.as_deref(), console)?;
    let (config, model) = run.load_model(&backend.device)?;
    let inputs: Vec<ImageInput> = match args.test_index {
        Some(index) => vec![ImageInput::Test(index)],
        None => (args.images.into_iter().chain(args.image))
            .map(ImageInput::File)
            .collect(),
    };
    let images = load_images(&inputs, &run, &config, args.common.data_dir)?;
    let pixels: Vec<Vec<u8>> = images.iter().map(|image| image.pixels.clone()).collect();
    let predictions = predict(&model, &pixels, &backend.device)?;
    for ((image, input), prediction) in images.iter().zip(&inputs).zip(predictions) {
        let summary = prediction.summary(|class| config.class_name(class));
        console.try_line(format_args!("{}: {summary}", image.title))?;
        if prediction.confidence() < args.min_confidence {
            console.try_line(format_args!(
                "  low confidence: below {:.0}%; `trainer explain --run {} {}` shows what the network saw",
                100.0 * args.min_confidence,
                run.root().display(),
                match input {
                    ImageInput::File(path) => path.display().to_string(),
                    ImageInput::Test(index) => format!("--test-index {index}"),
                },
            ))?;
        }
    }
    Ok(())
}

/// A probability from 0 to 1.
fn probability(text: &str) -> Result<f32, String> {
    match text.parse::<f32>() {
        Ok(p) if (0.0..=1.0).contains(&p) => Ok(p),
        _ => Err(format!("`{text}` is not a probability from 0 to 1")),
    }
}
