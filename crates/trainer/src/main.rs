//! The `trainer` command line: `train` (the default), `sweep`, `eval`, `predict`,
//! `explain`, `serve`, `export` and `import`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use burn::data::dataset::Dataset;
use clap::{Args, Parser, Subcommand, ValueEnum};
use data::{Mnist, MnistDataset, MnistItem, MnistSource};
use model::Mlp;
use trainer::TrainerError;
use trainer::backend::{self, Backend};
use trainer::bench;
use trainer::config::TrainingConfig;
use trainer::evaluation::{Evaluation, evaluate};
use trainer::explain::{draw_explanation, explain};
use trainer::export::{export_safetensors, import_run};
use trainer::inference::predict;
use trainer::plots::confusion_matrix;
use trainer::preprocess::load_digit;
use trainer::run_dir::RunDir;
use trainer::serve::{Classifier, Server};
use trainer::stats::median;
use trainer::sweep::{Best, SweepError, SweepRequest, run_sweep as sweep};
use trainer::training::{TrainRequest, architecture, check_model_fits, eval_batch_size, train};

/// Burn allocates and frees a buffer for nearly every tensor operation, across the
/// training thread and the metric thread; mimalloc serves that pattern faster and
/// steadier than the system allocator (see the README's performance section).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    /// Search hyperparameters: train a grid or a random sample of configs, rank them
    /// on the validation set, and test the best.
    Sweep(SweepArgs),
    /// Score a trained run on the test set: loss, accuracy, per-class accuracy and
    /// confusion matrix.
    Eval(EvalArgs),
    /// Predict the digit in image files, or in a test-set image.
    Predict(PredictArgs),
    /// Draw what the model looks at for one image: the input, its saliency map and the
    /// first layer's weights, as one PNG.
    Explain(ExplainArgs),
    /// Serve a page to draw digits on and a JSON prediction API, until SIGINT or SIGTERM.
    Serve(ServeArgs),
    /// Measure training, evaluation and prediction speed, start-up time and memory
    /// for the comparison with PyTorch (bench/compare.sh); prints one JSON object on
    /// stdout, progress on stderr.
    Bench(BenchArgs),
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
    /// Set any config value by its dotted key, e.g. `--set optimizer.name=adamw`,
    /// `--set lr_schedule.name=cosine`, `--set model.hidden_sizes=[128,64]`;
    /// repeatable, applied over --config and under the flags above.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    settings: Vec<String>,
    /// Skip scoring the final model on the test set (sweeps test only their winner).
    #[arg(long)]
    no_test: bool,
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
#[command(group = clap::ArgGroup::new("input").required(true).args(["image", "test_index"]))]
struct ExplainArgs {
    /// Run directory holding config.json and model.bpk.
    #[arg(long, value_name = "DIR")]
    model: PathBuf,
    /// Explain this image of the test set.
    #[arg(long, value_name = "N")]
    test_index: Option<usize>,
    /// Explain this image file (PNG or JPEG), prepared as `predict` prepares it.
    #[arg(long, value_name = "FILE", conflicts_with = "test_index")]
    image: Option<PathBuf>,
    /// Also write the picture to this PNG file; it always goes into the run directory
    /// as explain-test-<N>.png or explain-<image name>.png.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    #[command(flatten)]
    common: CommonArgs,
}

#[derive(Debug, Args)]
struct SweepArgs {
    /// Sweep description (JSON): the base config, the values to try and how; see
    /// configs/sweep-*.json.
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
    /// Directory for the trials and leaderboards [default: artifacts/<sweep file name>].
    #[arg(long, value_name = "DIR")]
    artifacts: Option<PathBuf>,
    /// Trials to train at once, each in its own process.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    jobs: u16,
    #[command(flatten)]
    common: CommonArgs,
}

#[derive(Debug, Args)]
struct BenchArgs {
    /// Epochs of the tutorial's training run to time (the median counts).
    #[arg(long, value_name = "N", default_value_t = 5, value_parser = clap::value_parser!(u16).range(1..))]
    epochs: u16,
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
    exit_quietly_on_closed_stdout();
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
        Some(Command::Sweep(args)) => run_sweep(args),
        Some(Command::Eval(args)) => run_eval(args),
        Some(Command::Predict(args)) => run_predict(args),
        Some(Command::Explain(args)) => run_explain(args),
        Some(Command::Serve(args)) => run_serve(args),
        Some(Command::Bench(args)) => run_bench(args),
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
    let config = args.settings.iter().try_fold(config, |config, setting| {
        let (key, value) = setting.split_once('=').ok_or_else(|| {
            anyhow::anyhow!("--set {setting}: expected KEY=VALUE, e.g. --set optimizer.name=adamw")
        })?;
        anyhow::Ok(config.with_setting(key.trim(), value.trim())?)
    })?;
    let config = TrainingConfig {
        epochs: args.epochs.unwrap_or(config.epochs),
        batch_size: args.batch_size.unwrap_or(config.batch_size),
        lr: args.lr.unwrap_or(config.lr),
        seed: args.seed.unwrap_or(config.seed),
        limit_train: args.limit_train.or(config.limit_train),
        patience: args.patience.or(config.patience),
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
    let run_dir = RunDir::new(run_dir);
    // A resumed run continues on the data it started on unless told otherwise.
    let data_dir = match args.resume {
        true => data_dir_for(&run_dir, &args.common),
        false => args.common.data_dir,
    };
    let request = TrainRequest {
        config,
        data_dir,
        run_dir,
        resume: args.resume,
        overwrite: args.overwrite,
        test: !args.no_test,
        console: trainer::renderer::Console::Stdout,
    };
    train(request, &backend)?;
    Ok(())
}

fn run_sweep(args: SweepArgs) -> anyhow::Result<()> {
    let name = args.config.file_stem().map_or_else(
        || "sweep".into(),
        |stem| stem.to_string_lossy().into_owned(),
    );
    let dir = args
        .artifacts
        .unwrap_or_else(|| Path::new("artifacts").join(name));
    let request = SweepRequest {
        spec_path: args.config,
        dir: dir.clone(),
        jobs: usize::from(args.jobs),
        trainer: std::env::current_exe()?,
        data_dir: args.common.data_dir.clone(),
        device: args.common.device.clone(),
    };
    let ranked = sweep(&request)?;
    let Some((best, valid_accuracy)) = ranked
        .first()
        .and_then(|entry| Some((entry, entry.valid_accuracy()?)))
    else {
        return Err(SweepError::NothingFinished(dir).into());
    };
    // The test set is consulted once, for the winner only (each of its seeds).
    let backend = open_backend(&args.common)?;
    let mut names = Vec::new();
    let mut accuracies = Vec::new();
    let mut losses = Vec::new();
    let trials: Vec<_> = best.finished().collect();
    // The trials share their data: it is read once. A winner has a finished trial.
    let test = TestSet::of(&RunDir::new(trials[0].dir(&dir)), &args.common)?;
    for trial in trials {
        let run = RunDir::new(trial.dir(&dir));
        let model = run.load_model(&backend.device)?;
        let scores = score_on_test(&run, &model, &test, &backend)?;
        names.push(trial.name());
        accuracies.push(scores.accuracy());
        losses.push(scores.loss);
    }
    let test_accuracy = median(&mut accuracies.clone());
    let test_loss = median(&mut losses);
    println!(
        "best: {} ({})  valid acc {valid_accuracy:.2}%  test acc {test_accuracy:.2}%  test loss {test_loss:.4}{}",
        names.join(" "),
        best.describe(),
        if accuracies.len() > 1 {
            let each: Vec<String> = accuracies.iter().map(|a| format!("{a:.2}%")).collect();
            format!("  (medians; test acc per seed {})", each.join(", "))
        } else {
            String::new()
        }
    );
    Best {
        trials: names,
        settings: best.settings.iter().cloned().collect(),
        valid_accuracy,
        test_accuracy,
        test_loss,
        test_accuracies: accuracies,
    }
    .save(&dir)?;
    println!("wrote {}", dir.join("best.json").display());
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

/// Scores the model of `run`, already loaded as `(config, model)`, on `test`.
fn score_on_test(
    run: &RunDir,
    (config, model): &(TrainingConfig, Mlp),
    test: &TestSet,
    backend: &Backend,
) -> anyhow::Result<Evaluation> {
    check_model_fits(config, &test.images)?;
    println!(
        "model {} ({}), test set {} ({} images)",
        run.root().display(),
        architecture(config),
        test.source,
        test.images.len()
    );
    let scores = evaluate(
        model,
        &test.images,
        eval_batch_size(config),
        &backend.device,
    )?;
    Ok(scores)
}

/// The test images of a data set, and where they were found.
struct TestSet {
    images: MnistDataset,
    source: MnistSource,
}

impl TestSet {
    /// The test set of the data `run` trained on, unless `--data-dir` names another.
    fn of(run: &RunDir, common: &CommonArgs) -> anyhow::Result<Self> {
        let mnist = Mnist::load(data_dir_for(run, common).as_deref())?;
        Ok(Self {
            images: MnistDataset::new(mnist.test),
            source: mnist.source,
        })
    }

    fn item(&self, index: usize) -> Result<MnistItem, TrainerError> {
        let len = self.images.len();
        self.images
            .item(index)
            .ok_or(TrainerError::TestIndex { index, len })
    }
}

fn run_eval(args: EvalArgs) -> anyhow::Result<()> {
    let run = RunDir::new(&args.model);
    let backend = open_backend(&args.common)?;
    let model = run.load_model(&backend.device)?;
    let scores = score_on_test(&run, &model, &TestSet::of(&run, &args.common)?, &backend)?;
    let (config, _) = model;
    println!(
        "test loss {:.4}  accuracy {:.2}%  ({}/{} correct)",
        scores.loss,
        scores.accuracy(),
        scores.correct,
        scores.total
    );
    let names: Vec<String> = (0..scores.confusion.len())
        .map(|class| config.class_name(class))
        .collect();
    println!("per-class accuracy:");
    for (class, name) in names.iter().enumerate() {
        match scores.class_accuracy(class) {
            Some(accuracy) => println!("  {name:>2}: {accuracy:6.2}%"),
            None => println!("  {name:>2}:     - (no test images)"),
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
    // The scores above are the command's result; a run directory that cannot take
    // the picture (read-only, say) does not undo them.
    match confusion_matrix(&scores.confusion, &names, &run.confusion_path()) {
        Ok(()) => println!("wrote {}", run.confusion_path().display()),
        Err(error) => eprintln!("warning: {error}"),
    }
    Ok(())
}

fn run_predict(args: PredictArgs) -> anyhow::Result<()> {
    let run = RunDir::new(&args.model);
    let backend = open_backend(&args.common)?;
    let (config, model) = run.load_model(&backend.device)?;
    let (names, images) = match args.test_index {
        Some(index) => {
            let item = TestSet::of(&run, &args.common)?.item(index)?;
            (
                vec![format!(
                    "test image {index} (label {})",
                    config.class_name(usize::from(item.label))
                )],
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
            .map(|&(class, p)| format!("{} {:.1}%", config.class_name(class), 100.0 * p))
            .collect();
        println!(
            "{name}: predicted {}  (top 3: {})",
            config.class_name(prediction.class()),
            top.join(", ")
        );
    }
    Ok(())
}

/// Image `index` of the test set the run in `run` is evaluated on.
fn run_explain(args: ExplainArgs) -> anyhow::Result<()> {
    let run = RunDir::new(&args.model);
    let backend = open_backend(&args.common)?;
    // Saliency needs gradients, so the model is loaded onto an autodiff device.
    let device = backend.device.clone().autodiff();
    let (config, model) = run.load_model(&device)?;
    let side = square_side(config.model.input_size)?;
    let (image, what, default_name) = match (&args.image, args.test_index) {
        (Some(path), _) => {
            let stem = path
                .file_stem()
                .map_or_else(|| "image".into(), |s| s.to_string_lossy().into_owned());
            (
                load_digit(path, side)?,
                path.display().to_string(),
                format!("explain-{stem}.png"),
            )
        }
        (None, Some(index)) => {
            let item = TestSet::of(&run, &args.common)?.item(index)?;
            let label = config.class_name(usize::from(item.label));
            (
                item.pixels,
                format!("test image {index} (label {label})"),
                format!("explain-test-{index}.png"),
            )
        }
        (None, None) => anyhow::bail!("give --test-index N or --image FILE to explain"),
    };
    if image.len() != config.model.input_size {
        return Err(TrainerError::InputSizeMismatch {
            expected: config.model.input_size,
            found: image.len(),
        }
        .into());
    }
    let explanation = explain(&model, &image, &device)?;
    let weights = model
        .input_weights()
        .try_into_vec_as::<f32>()
        .map_err(|e| TrainerError::Training(e.to_string()))?;
    let predicted = explanation.predicted;
    let title = format!(
        "{what}: predicted {} with probability {:.1}%",
        config.class_name(predicted),
        100.0 * explanation.probabilities[predicted]
    );
    println!("{title}");
    // The run keeps its pictures together (curves, confusion matrix, explanations);
    // --out puts a copy where the user wants it, so only that one must succeed.
    let in_run = run.root().join(default_name);
    let draw = |path: &Path| draw_explanation(&explanation, &weights, side, &title, path);
    match &args.out {
        Some(out) => {
            draw(out)?;
            println!("wrote {}", out.display());
            match draw(&in_run) {
                Ok(()) => println!("wrote {}", in_run.display()),
                Err(error) => eprintln!("warning: {error}"),
            }
        }
        None => {
            draw(&in_run)?;
            println!("wrote {}", in_run.display());
        }
    }
    Ok(())
}

fn run_bench(args: BenchArgs) -> anyhow::Result<()> {
    // Stdout carries the JSON alone; everything else goes to stderr.
    let backend = backend::open(args.common.device.as_deref())?;
    eprintln!("{backend}");
    let report = bench::run_bench(
        args.common.data_dir,
        usize::from(args.epochs),
        &backend,
        bench::process_age,
    )?;
    println!("{}", serde_json::to_string(&report)?);
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

/// Ends the process quietly, as command-line tools do, when whoever reads its output
/// has gone (`trainer eval | head -3`), instead of letting `println!` panic.
fn exit_quietly_on_closed_stdout() {
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map_or("", String::as_str);
        if message.starts_with("failed printing to stdout") {
            // 128 + SIGPIPE, the status a shell reports for a tool stopped this way.
            std::process::exit(141);
        }
        default_hook(info);
    }));
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
