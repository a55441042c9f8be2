//! Helpers shared by the test modules.

pub mod served;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// An IDX file: the magic number, the dimensions, then a payload as it is.
pub use data::encode_idx as idx;

/// The real MNIST files: `MNIST_DATA_DIR`, else the shared folder beside the
/// checkout; a test that needs them fails, saying so, where neither is there.
pub fn mnist_dir() -> PathBuf {
    external(
        "MNIST_DATA_DIR",
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/mnist"),
        Kind::Directory,
        "real MNIST not found; set MNIST_DATA_DIR to the folder of its IDX files",
    )
}

/// What a path found by [`external`] must be.
enum Kind {
    Directory,
    File,
}

/// Something a test takes from outside the repository: the path in the environment
/// variable `var`, which must then be a `kind` (CI sets it), else `default`. Panics,
/// saying `missing`, where neither is one: tests that cannot run on every machine are
/// `#[ignore]`d, and run where their parts are (`.ci/run`).
fn external(var: &str, default: PathBuf, kind: Kind, missing: &str) -> PathBuf {
    let (is, what): (fn(&Path) -> bool, &str) = match kind {
        Kind::Directory => (Path::is_dir, "directory"),
        Kind::File => (Path::is_file, "file"),
    };
    if let Some(path) = std::env::var_os(var) {
        let path = PathBuf::from(path);
        assert!(is(&path), "{var}={} is not a {what}", path.display());
        return path;
    }
    assert!(is(&default), "{missing}");
    default
}

/// Runs the `trainer` binary with `args` and without inherited data settings, its
/// decoded pictures cached in a folder of the tests' own.
pub fn trainer(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_trainer"))
        .args(args)
        .env_remove("MNIST_DATA_DIR")
        .env(
            data::CACHE_DIR_VARIABLE,
            std::env::temp_dir().join("trainer-testsuite-cache"),
        )
        .output()
        .expect("the trainer binary runs")
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Asserts the way a user-facing failure must look: a non-zero exit and exactly one
/// line on stderr, no panic or backtrace; returns that line.
pub fn assert_clean_failure(output: &Output) -> String {
    let err = stderr(output);
    assert!(
        !output.status.success(),
        "expected failure, got success; stdout: {}",
        stdout(output)
    );
    assert_ne!(output.status.code(), None, "killed by a signal: {err}");
    assert!(
        !err.contains("panicked") && !err.contains("backtrace"),
        "panicked: {err}"
    );
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "want one line on stderr, got: {err}");
    lines[0].to_string()
}

pub fn path_str(path: &Path) -> &str {
    path.to_str().expect("utf-8 temp path")
}

/// Runs `trainer train` on the data in `data_dir` into the run `run`, with `extra`
/// arguments.
pub fn train_with_cli(data_dir: &Path, run: &Path, extra: &[&str]) -> Output {
    let args = [
        "train",
        "--data-dir",
        path_str(data_dir),
        "--run",
        path_str(run),
    ];
    trainer(&[&args[..], extra].concat())
}

/// Runs `trainer export` of the run `model` to `out` in `format`.
pub fn export(model: &Path, format: &str, out: &Path) -> Output {
    trainer(&[
        "export",
        "--run",
        path_str(model),
        "--format",
        format,
        "--out",
        path_str(out),
    ])
}

/// Runs `trainer import` of the state dict `from` into the run `out`, with `extra`
/// arguments.
pub fn import(from: &Path, out: &Path, extra: &[&str]) -> Output {
    let args = ["import", "--from", path_str(from), "--run", path_str(out)];
    trainer(&[&args[..], extra].concat())
}

/// Runs `trainer sweep` of the sweep file `spec` on the data in `data_dir` into `dir`,
/// with the arguments of a `stage` (none for a whole local sweep).
pub fn sweep(spec: &Path, data_dir: &Path, dir: &Path, stage: &[&str]) -> Output {
    let args = [
        "sweep",
        "--config",
        path_str(spec),
        "--data-dir",
        path_str(data_dir),
        "--run",
        path_str(dir),
    ];
    trainer(&[&args[..], stage].concat())
}

/// Four tiny IDX files in `dir` (20 training and 5 test images of 28x28, labels 0-9);
/// `corrupt` truncates the training images.
pub fn tiny_mnist(dir: &Path, corrupt: bool) {
    let images =
        |count: usize| -> Vec<u8> { (0..count * 784).map(|i| (i * 7 % 251) as u8).collect() };
    let labels = |count: usize| -> Vec<u8> { (0..count).map(|i| (i % 10) as u8).collect() };
    let mut train_images = idx(0x803, &[20, 28, 28], &images(20));
    if corrupt {
        train_images.truncate(train_images.len() - 100);
    }
    let files = [
        ("train-images-idx3-ubyte", train_images),
        ("train-labels-idx1-ubyte", idx(0x801, &[20], &labels(20))),
        (
            "t10k-images-idx3-ubyte",
            idx(0x803, &[5, 28, 28], &images(5)),
        ),
        ("t10k-labels-idx1-ubyte", idx(0x801, &[5], &labels(5))),
    ];
    for (name, bytes) in files {
        std::fs::write(dir.join(name), bytes).expect("write idx");
    }
}

/// The arguments that point `trainer` at the tiny data set in `dir` and at `run`.
pub fn tiny_args<'a>(dir: &'a Path, run: &'a Path) -> [&'a str; 6] {
    [
        "--data-dir",
        path_str(dir),
        "--run",
        path_str(run),
        "--valid-size",
        "5",
    ]
}

/// A run in `dir/run` trained for one epoch on the tiny data set that this writes in
/// `dir`.
pub fn tiny_run(dir: &Path) -> PathBuf {
    tiny_mnist(dir, false);
    let run = dir.join("run");
    let trained = trainer(&[&tiny_args(dir, &run)[..], &["--epochs", "1"]].concat());
    assert!(trained.status.success(), "{}", stderr(&trained));
    run
}

/// A tiny data set and a run trained on it for one epoch ([`tiny_run`]): the
/// temporary folder holding both, and the run directory.
pub fn tiny_run_after_one_epoch() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let run = tiny_run(tmp.path());
    (tmp, run)
}

/// A quick run of the default network: one epoch on the first 6,000 training images.
pub fn quick_run(data_dir: &Path, run_dir: &Path) -> trainer::train::TrainRequest {
    trainer::train::TrainRequest {
        config: trainer::config::TrainingConfig::new()
            .with_epochs(1)
            .with_limit_train(Some(6000)),
        data_dir: Some(data_dir.to_path_buf()),
        run_dir: trainer::run_dir::RunDir::new(run_dir),
        resume: false,
        overwrite: false,
        test: true,
        console: trainer::console::Console::Stdout,
        stop: trainer::stop::StopSignals::default(),
    }
}

/// A run directory holding an untrained tutorial network: enough for `eval`,
/// `predict` and `serve` to load.
pub fn untrained_run(dir: &Path) -> trainer::run_dir::RunDir {
    use burn::prelude::*;
    let run = trainer::run_dir::RunDir::new(dir);
    run.create().expect("create run dir");
    let config = trainer::config::TrainingConfig::new();
    run.save_config(&config).expect("save config");
    run.save_model(&config.model.init(&Device::flex()))
        .expect("save model");
    run
}

/// Trains the same quick run as [`quick_run`], through the binary as a user would.
pub fn train_quick_run_with_cli(data_dir: &Path, run_dir: &Path) {
    let trained = train_with_cli(
        data_dir,
        run_dir,
        &["--epochs", "1", "--limit-train", "6000"],
    );
    assert!(trained.status.success(), "{}", stderr(&trained));
}

/// The Python that `.ci/run` sets up with tests/python/requirements.txt:
/// `TRAINER_TEST_PYTHON`, else the virtualenv in tests/python/.venv.
pub fn python() -> PathBuf {
    external(
        "TRAINER_TEST_PYTHON",
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/python/.venv/bin/python"),
        Kind::File,
        "no Python for the check; run .ci/run, or set TRAINER_TEST_PYTHON",
    )
}

/// Prometheus's `promtool`: `TRAINER_TEST_PROMTOOL`, else Debian's.
pub fn promtool() -> PathBuf {
    external(
        "TRAINER_TEST_PROMTOOL",
        PathBuf::from("/usr/bin/promtool"),
        Kind::File,
        "no promtool; install Debian's prometheus, or set TRAINER_TEST_PROMTOOL",
    )
}

/// A script of tests/python.
pub fn python_script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/python")
        .join(name)
}

/// Logits of a run's final model on the first 100 test images.
pub fn test_logits(run: &Path, data_dir: &Path) -> burn::tensor::TensorData {
    use burn::data::dataloader::batcher::Batcher;
    use burn::data::dataset::Dataset;
    use burn::prelude::*;
    let device = Device::flex();
    let (_, model) = trainer::run_dir::RunDir::new(run)
        .load_model(&device)
        .expect("model loads");
    let test = data::MnistDataset::new(data::Mnist::load(Some(data_dir)).expect("data").test);
    let items = (0..100).map(|i| test.get(i).expect("in range")).collect();
    model
        .forward(data::MnistBatcher.batch(items, &device).images)
        .into_data()
}

pub use rustix::process::Signal;

/// Runs `trainer` with `args` and sends it `signal` as soon as it prints a progress
/// line starting with `inside` (e.g. `epoch 2/3 [`), returning the lines it printed
/// and its standard error. Panics unless the signal landed there, before the run's
/// end, and ended the run: at once for SIGKILL, with a failing status otherwise.
pub fn signal_at(args: &[String], inside: &str, signal: Signal) -> (Vec<String>, String) {
    signal_when(args, inside, &|| true, signal)
}

/// [`signal_at`] at the first progress line starting with `inside` printed once
/// `ready()` holds (checked at each line from there on).
pub fn signal_when(
    args: &[String],
    inside: &str,
    ready: &dyn Fn() -> bool,
    signal: Signal,
) -> (Vec<String>, String) {
    use std::io::{BufRead, BufReader, Read};
    use std::process::Stdio;
    let mut child = Command::new(env!("CARGO_BIN_EXE_trainer"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("trainer starts");
    let lines = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
    let mut seen = Vec::new();
    let mut lines = lines.map_while(Result::ok);
    for line in lines.by_ref() {
        let there = line.starts_with(inside) && ready();
        seen.push(line);
        if there {
            break;
        }
    }
    rustix::process::kill_process(rustix::process::Pid::from_child(&child), signal)
        .expect("signal sent");
    seen.extend(lines);
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        pipe.read_to_string(&mut stderr).expect("stderr read");
    }
    let status = child.wait().expect("reaped");
    if signal == Signal::KILL {
        assert_eq!(status.code(), None, "killed, not finished: {seen:?}");
    } else {
        assert!(
            status.code().is_some_and(|code| code != 0),
            "stopped with a failing status, not finished ({status}): {seen:?} {stderr}"
        );
    }
    assert!(
        seen.iter().any(|l| l.starts_with(inside)),
        "the run ended before `{inside}`: {seen:?}"
    );
    (seen, stderr)
}

/// `trainer` with owned arguments.
pub fn trainer_owned(args: &[String]) -> Output {
    trainer(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

/// A sweep's `leaderboard.csv` without the wall time and what follows it, which differ
/// between runs of the same trials.
pub fn leaderboard_scores(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("leaderboard.csv"))
        .expect("leaderboard")
        .lines()
        .map(|line| line.split(',').take(6).collect::<Vec<_>>().join(","))
        .collect()
}

/// The sweep the scale-out tests plan: 4 quick trials.
pub const FOUR_TRIALS: &str = r#"{"base": {"epochs": 1, "limit_train": 2000, "split": {"valid_size": 500, "seed": 3}},
    "method": "grid", "parameters": {"lr": [0.001, 0.003], "batch_size": [32, 64]}}"#;

/// Trains a run in `dir/killed` with `args(run)`, sends it `signal` at the progress
/// line starting with `inside` (a stop signal must make it checkpoint where it is),
/// resumes it, and trains the same run uninterrupted in
/// `dir/whole`: both must end with the same logits, bit for bit, and the same
/// metrics (but the wall time). Returns the killed run's directory.
pub fn assert_resume_is_exact(
    args: &dyn Fn(&Path) -> Vec<String>,
    dir: &Path,
    (inside, signal): (&str, Signal),
    data_dir: &Path,
) -> PathBuf {
    let (killed, whole) = (dir.join("killed"), dir.join("whole"));
    let logged: Vec<String> = args(&killed)
        .into_iter()
        .chain(["--log-interval".into(), "10".into()])
        .collect();
    let (_, said) = signal_at(&logged, inside, signal);
    if signal != Signal::KILL {
        assert!(said.contains("checkpointed there"), "{said}");
    }
    assert!(!killed.join("model.bpk").exists(), "killed before the end");
    let resume: Vec<String> = args(&killed)
        .into_iter()
        .chain(["--resume".into()])
        .collect();
    let resumed = trainer_owned(&resume);
    assert!(resumed.status.success(), "{}", stderr(&resumed));
    let uninterrupted = trainer_owned(&args(&whole));
    assert!(uninterrupted.status.success(), "{}", stderr(&uninterrupted));
    test_logits(&killed, data_dir).assert_eq(&test_logits(&whole, data_dir), true);
    assert_eq!(metrics_scores(&killed), metrics_scores(&whole));
    killed
}

/// A run's `metrics.csv` without its last column, the wall time, which differs between
/// runs of the same epochs.
pub fn metrics_scores(run: &Path) -> Vec<String> {
    std::fs::read_to_string(run.join("metrics.csv"))
        .expect("metrics")
        .lines()
        .map(|l| {
            l.rsplit_once(',')
                .map_or(l, |(scores, _)| scores)
                .to_string()
        })
        .collect()
}

/// The most probable class of a row of logits: the first of equal ones, as numpy's
/// `argmax` picks.
pub fn argmax(row: &[f32]) -> usize {
    (0..row.len()).fold(0, |best, c| if row[c] > row[best] { c } else { best })
}

/// `train` of the default network on `data_dir` into `run` for 50 epochs, returned
/// once its first progress line shows it training (and holding the run's lock).
pub fn training_in_progress(data_dir: &Path, run: &Path) -> std::process::Child {
    use std::io::{BufRead, BufReader};
    let mut training = Command::new(env!("CARGO_BIN_EXE_trainer"))
        .args([
            "train",
            "--data-dir",
            path_str(data_dir),
            "--run",
            path_str(run),
        ])
        .args(["--epochs", "50", "--log-interval", "20"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("trainer starts");
    let lines = BufReader::new(training.stdout.take().expect("piped")).lines();
    let started = lines
        .map_while(Result::ok)
        .any(|line| line.starts_with("epoch 1/50 ["));
    assert!(started, "the run trains");
    training
}
