//! `trainer explain`: one picture of what the model looks at for one image.

use std::path::PathBuf;

use clap::Args;
use kernels::planes::mean_planes;
use trainer::TrainerError;
use trainer::console::Console;
use trainer::infer::{ImageInput, explain, load_images};
use trainer::report::{FirstLayer, save_explanation};
use trainer::run_dir::RunDir;

use crate::args::CommonArgs;

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("input").required(true).args(["image_path", "image", "test_index"]))]
pub struct ExplainArgs {
    /// Run directory: the trained run, holding config.json and model.bpk (a file
    /// inside it names it too).
    #[arg(long = "run", value_name = "DIR", alias = "model")]
    run: PathBuf,
    /// Explain this image of the test set.
    #[arg(long, value_name = "N")]
    test_index: Option<usize>,
    /// Explain this image file (PNG or JPEG), prepared as `predict` prepares it.
    #[arg(value_name = "IMAGE", conflicts_with = "test_index")]
    image_path: Option<PathBuf>,
    /// An image file, as IMAGE is.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["test_index", "image_path"])]
    image: Option<PathBuf>,
    /// Also write the picture to this PNG file; it always goes into the run directory
    /// as explain-test-<N>.png or explain-<image name>.png.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    #[command(flatten)]
    common: CommonArgs,
}

pub fn exec(args: ExplainArgs) -> anyhow::Result<()> {
    let console = Console::Stdout;
    let run = RunDir::named(&args.run);
    let backend = super::open_backend(args.common.device.as_deref(), console)?;
    // Saliency needs gradients, so the model is loaded onto an autodiff device.
    let device = backend.device.clone().autodiff();
    let (config, model) = run.load_model(&device)?;
    // The picture is square; a colour image is drawn in grey, its channels averaged.
    let [channels, side, _] = config
        .model
        .image_shape()
        .filter(|[_, height, width]| height == width)
        .ok_or(TrainerError::NotSquare(config.model.input_size))?;
    let input = match (args.image_path.or(args.image), args.test_index) {
        (Some(path), _) => ImageInput::File(path),
        (None, index) => ImageInput::Test(index.unwrap_or_default()),
    };
    let image = load_images(&[input], &run, &config, args.common.data_dir)?.remove(0);
    let explanation = explain(&model, &image.pixels, &device)?.in_one_plane(channels);
    let title = explanation.title(&image.title, |class| config.class_name(class));
    console.try_line(&title)?;
    let (weights, tile_side) = model.input_weights();
    let weights = weights.try_into_vec_as::<f32>()?;
    // An MLP's columns span every channel: one tile of the image's side each,
    // averaged like the image.
    let (weights, tile_side) = match config.model.conv.is_empty() {
        true => (mean_planes(&weights, channels), side),
        false => (weights, tile_side),
    };
    let in_run = run.root().join(format!("explain-{}.png", image.slug));
    for path in save_explanation(
        &explanation,
        &FirstLayer {
            weights: &weights,
            side: tile_side,
            convolutional: !config.model.conv.is_empty(),
        },
        side,
        &title,
        &in_run,
        args.out.as_deref(),
    )? {
        console.try_line(format_args!("wrote {}", path.display()))?;
    }
    Ok(())
}
