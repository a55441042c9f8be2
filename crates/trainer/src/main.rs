//! The `trainer` command line: `train` (the default), `eval`, `predict`, `serve`,
//! `export` and `import`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use burn::data::dataset::Dataset;
use clap::{Args, Parser, Subcommand, ValueEnum};
use data::{Mnist, MnistDataset};
use trainer::TrainerError;
use trainer::backend::{self, Backend};
use trainer::config::TrainingConfig;
use trainer::evaluation::evaluate;
use trainer::export::{export_safetensors, import_run};
use trainer::inference::predict;
use trainer::preprocess::load_digit;
use trainer::run_dir::RunDir;
use trainer::serve::{Classifier, Server};
use trainer::training::{TrainRequest, architecture, check_model_fits, eval_batch_size, train};

/// The configuration used when --config is not given, relative to the working directory.
const DEFAULT_CONFIG: &str = "configs/mnist-mlp.json";

/// Train, evaluate and run an MNIST digit classifier (the PyTorch tutorial's MLP) on
/// Burn. Without a subcommand, trains.
#[derive(Debug, Parser)]
#[command(name = "trainer", version, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    train: TrainArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Train a model, checkpointing every epoch (the default command).
    Train(TrainArgs),
    /// Score a trained run on the test set: loss, accuracy, per-class accuracy and
    /// confusion matrix.
    Eval(EvalArgs),
    /// Predict the digit in image files, or in a test-set image.
    Predict(PredictArgs),
    /// Serve a page to draw digits on and a JSON prediction API, until SIGINT or SIGTERM.
    Serve(ServeArgs),
    /// Write a trained model's weights as the PyTorch tutorial's state dict.
    Export(ExportArgs),
    /// Make a run directory from a PyTorch state dict of the tutorial's network.
    Import(ImportArgs),
}

#[derive(Debug, Args)]
struct TrainArgs {
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
    /// Adam's learning rate.
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
    /// Run directory for checkpoints, logs and the final model [default: artifacts/<config name>].
    #[arg(long, value_name = "DIR")]
    artifacts: Option<PathBuf>,
    /// Continue the run in --artifacts from its last checkpoint (epoch, model and
    /// optimizer state), with its saved config.
    #[arg(long)]
    resume: bool,
    /// Replace a run that already exists in --artifacts.
    #[arg(long, conflicts_with = "resume")]
    overwrite: bool,
    #[command(flatten)]
    common: CommonArgs,
}

#[derive(Debug, Args)]
struct CommonArgs {
    /// Directory with the four MNIST IDX files (raw or .gz). Without it, Burn's dataset
    /// cache is used, downloading into it if needed.
    #[arg(long, value_name = "DIR", env = "MNIST_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Device of a GPU backend: `default`, `discrete[:N]`, `integrated[:N]`,
    /// `virtual[:N]` or `cpu` for wgpu; an index for cuda.
    #[arg(long, value_name = "DEVICE")]
    device: Option<String>,
}

#[derive(Debug, Args)]
struct EvalArgs {
    /// Run directory holding config.json and model.bpk.
    #[arg(long, value_name = "DIR")]
    model: PathBuf,
    #[command(flatten)]
    common: CommonArgs,
}

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("input").required(true).args(["images", "test_index"]))]
struct PredictArgs {
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

#[derive(Debug, Args)]
struct ServeArgs {
    /// Run directory holding config.json and model.bpk.
    #[arg(long, value_name = "DIR")]
    model: PathBuf,
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:8080")]
    addr: String,
    /// Device of a GPU backend to compute on, as for the other commands.
    #[arg(long, value_name = "DEVICE")]
    device: Option<String>,
}

#[derive(Debug, Args)]
struct ExportArgs {
    /// Run directory holding config.json and model.bpk.
    #[arg(long, value_name = "DIR")]
    model: PathBuf,
    /// File format of the state dict.
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
}

#[derive(Debug, Args)]
struct ImportArgs {
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

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) if error.use_stderr() => {
            eprintln!("{}", one_line(&error.render().to_string()));
            return ExitCode::from(2);
        }
        Err(help_or_version) => help_or_version.exit(),
    };
    let outcome = match cli.command {
        None => run_train(cli.train),
        Some(Command::Train(args)) => run_train(args),
        Some(Command::Eval(args)) => run_eval(args),
        Some(Command::Predict(args)) => run_predict(args),
        Some(Command::Serve(args)) => run_serve(args),
        Some(Command::Export(args)) => run_export(args),
        Some(Command::Import(args)) => run_import(args),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run_train(args: TrainArgs) -> anyhow::Result<()> {
    let resume_dir = match (args.resume, &args.artifacts) {
        (true, None) => anyhow::bail!("--resume needs --artifacts DIR naming the run to continue"),
        (true, Some(dir)) => Some(dir.clone()),
        (false, _) => None,
    };
    // A resumed run keeps its own config unless another is given explicitly, which
    // must then describe the same network.
    let (config, name) = match (&args.config, resume_dir) {
        (None, Some(dir)) => {
            let config = RunDir::new(&dir)
                .load_config()
                .map_err(|_| TrainerError::NothingToResume(dir))?;
            (config, String::new())
        }
        (config, _) => base_config(config.as_deref())?,
    };
    let config = TrainingConfig {
        epochs: args.epochs.unwrap_or(config.epochs),
        batch_size: args.batch_size.unwrap_or(config.batch_size),
        lr: args.lr.unwrap_or(config.lr),
        seed: args.seed.unwrap_or(config.seed),
        limit_train: args.limit_train.or(config.limit_train),
        split: match args.valid_size {
            Some(valid_size) => config.split.clone().with_valid_size(valid_size),
            None => config.split.clone(),
        },
        ..config
    };
    config.validate()?;
    let run_dir = args
        .artifacts
        .unwrap_or_else(|| Path::new("artifacts").join(name));
    let backend = open_backend(&args.common)?;
    let request = TrainRequest {
        config,
        data_dir: args.common.data_dir,
        run_dir: RunDir::new(run_dir),
        resume: args.resume,
        overwrite: args.overwrite,
    };
    train(request, &backend)?;
    Ok(())
}

/// The configuration to start from and its name, which names the run directory.
fn base_config(path: Option<&Path>) -> Result<(TrainingConfig, String), TrainerError> {
    let default = Path::new(DEFAULT_CONFIG);
    let path = match path {
        Some(path) => path,
        None if default.is_file() => default,
        None => return Ok((TrainingConfig::new(), "mnist-mlp".into())),
    };
    let name = path
        .file_stem()
        .map_or_else(|| "run".into(), |stem| stem.to_string_lossy().into_owned());
    Ok((TrainingConfig::from_file(path)?, name))
}

fn open_backend(common: &CommonArgs) -> Result<Backend, TrainerError> {
    let backend = backend::open(common.device.as_deref())?;
    println!("{backend}");
    Ok(backend)
}

/// The data directory for evaluating a run: the one given, else the one it trained on.
fn data_dir_for(run: &RunDir, common: &CommonArgs) -> Option<PathBuf> {
    common
        .data_dir
        .clone()
        .or_else(|| run.load_info().data_dir.filter(|dir| dir.is_dir()))
}

fn run_eval(args: EvalArgs) -> anyhow::Result<()> {
    let run = RunDir::new(&args.model);
    let backend = open_backend(&args.common)?;
    let (config, model) = run.load_model(&backend.device)?;
    let mnist = Mnist::load(data_dir_for(&run, &args.common).as_deref())?;
    let test = MnistDataset::new(mnist.test);
    check_model_fits(&config, &test)?;
    println!(
        "model {} ({}), test set {} ({} images)",
        run.root().display(),
        architecture(&config),
        mnist.source,
        test.len()
    );
    let scores = evaluate(&model, &test, eval_batch_size(&config), &backend.device)?;
    println!(
        "test loss {:.4}  accuracy {:.2}%  ({}/{} correct)",
        scores.loss,
        scores.accuracy(),
        scores.correct,
        scores.total
    );
    println!("per-class accuracy:");
    for class in 0..scores.confusion.len() {
        match scores.class_accuracy(class) {
            Some(accuracy) => println!("  {class:>2}: {accuracy:6.2}%"),
            None => println!("  {class:>2}:     - (no test images)"),
        }
    }
    println!("confusion matrix (rows: true class, columns: predicted):");
    let header: String = (0..scores.confusion.len())
        .map(|c| format!("{c:>6}"))
        .collect();
    println!("    {header}");
    for (class, row) in scores.confusion.iter().enumerate() {
        let cells: String = row.iter().map(|n| format!("{n:>6}")).collect();
        println!("  {class:>2}{cells}");
    }
    Ok(())
}

fn run_predict(args: PredictArgs) -> anyhow::Result<()> {
    let run = RunDir::new(&args.model);
    let backend = open_backend(&args.common)?;
    let (config, model) = run.load_model(&backend.device)?;
    let (names, images) = match args.test_index {
        Some(index) => {
            let mnist = Mnist::load(data_dir_for(&run, &args.common).as_deref())?;
            let test = MnistDataset::new(mnist.test);
            let item = test.item(index).ok_or(TrainerError::TestIndex {
                index,
                len: test.len(),
            })?;
            (
                vec![format!("test image {index} (label {})", item.label)],
                vec![item.pixels],
            )
        }
        None => {
            let side = square_side(config.model.input_size)?;
            let images = args
                .images
                .iter()
                .map(|path| load_digit(path, side))
                .collect::<Result<Vec<_>, _>>()?;
            (
                args.images
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect(),
                images,
            )
        }
    };
    if let Some(image) = images
        .iter()
        .find(|image| image.len() != config.model.input_size)
    {
        return Err(TrainerError::InputSizeMismatch {
            expected: config.model.input_size,
            found: image.len(),
        }
        .into());
    }
    for (name, prediction) in names.iter().zip(predict(&model, &images, &backend.device)?) {
        let top: Vec<String> = prediction
            .top(3)
            .iter()
            .map(|(class, p)| format!("{class} {:.1}%", 100.0 * p))
            .collect();
        println!(
            "{name}: predicted {}  (top 3: {})",
            prediction.class(),
            top.join(", ")
        );
    }
    Ok(())
}

fn run_serve(args: ServeArgs) -> anyhow::Result<()> {
    let run = RunDir::new(&args.model);
    let backend = backend::open(args.device.as_deref())?;
    println!("{backend}");
    let (config, model) = run.load_model(&backend.device)?;
    let server = Server::bind(
        &args.addr,
        Classifier::new(model, &config.model, backend.device),
    )?;
    println!("model {} ({})", run.root().display(), architecture(&config));
    println!("listening on http://{}", server.local_addr());
    server.run()?;
    println!("stopped");
    Ok(())
}

fn run_export(args: ExportArgs) -> anyhow::Result<()> {
    let run = RunDir::new(&args.model);
    let backend = backend::open(None)?;
    let (config, model) = run.load_model(&backend.device)?;
    match args.format {
        ExportFormat::Safetensors => export_safetensors(&model, &config.model, &args.out)?,
    }
    println!(
        "wrote {} ({}) to {}",
        run.root().display(),
        architecture(&config),
        args.out.display()
    );
    Ok(())
}

fn run_import(args: ImportArgs) -> anyhow::Result<()> {
    let backend = backend::open(None)?;
    let run = RunDir::new(&args.out);
    let config = import_run(&args.from, &run, args.overwrite, &backend.device)?;
    println!(
        "imported {} ({}) into {}",
        args.from.display(),
        architecture(&config),
        run.root().display()
    );
    Ok(())
}

/// Folds clap's multi-line usage error into the one line every error here gets.
fn one_line(message: &str) -> String {
    let lines: Vec<&str> = message
        .lines()
        .map(str::trim)
        .take_while(|line| !line.starts_with("Usage:") && !line.starts_with("For more information"))
        .filter(|line| !line.is_empty())
        .collect();
    format!("{}; see `trainer --help`", lines.join(" "))
}

/// The side of the square image a model with `input_size` inputs takes.
fn square_side(input_size: usize) -> Result<usize, TrainerError> {
    let side = (input_size as f64).sqrt().round() as usize;
    if side * side == input_size {
        Ok(side)
    } else {
        Err(TrainerError::NotSquare(input_size))
    }
}
