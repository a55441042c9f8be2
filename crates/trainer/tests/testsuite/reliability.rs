//! Crash safety: a run killed mid-epoch resumes to exactly the result of an
//! uninterrupted one; a loss that stops being a number, a full disk or a damaged
//! checkpoint stop cleanly and keep what was written.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use burn::prelude::*;

use crate::common::{
    self, Signal, assert_clean_failure, metrics_scores, mnist_dir, path_str, signal_when, stdout,
    test_logits, tiny_args, tiny_mnist, tiny_run_after_one_epoch, trainer,
};

#[test]
fn killed_mid_epoch_then_resumed_ends_exactly_like_an_uninterrupted_run() {
    let data_dir = mnist_dir();
    let tmp = tempfile::tempdir().expect("tempdir");
    let (killed, whole) = (tmp.path().join("killed"), tmp.path().join("whole"));
    let args = |run: &Path| -> Vec<String> {
        [
            "train",
            "--epochs",
            "3",
            "--limit-train",
            "30000",
            "--data-dir",
            path_str(&data_dir),
            "--run",
            path_str(run),
            // A schedule, warm-up and AdamW, so that resuming must restore the
            // schedule's step count and the optimizer's state exactly.
            "--set",
            "lr_schedule.name=cosine",
            "--set",
            "lr_schedule.warmup_epochs=0.5",
            "--set",
            "optimizer.name=adamw",
            "--set",
            "optimizer.weight_decay=0.01",
        ]
        .map(String::from)
        .to_vec()
    };

    let logged: Vec<String> = args(&killed)
        .into_iter()
        .chain(["--log-interval".into(), "50".into()])
        .collect();
    // Burn writes an epoch's checkpoint on a thread of its own while the next epoch
    // trains: on a loaded machine epoch 2 is under way before epoch 1's files are all
    // in place. The kill waits for them.
    let checkpoints = killed.join("checkpoint");
    let epoch_1_saved = || {
        ["model", "optim", "scheduler"]
            .iter()
            .all(|record| checkpoints.join(format!("{record}-1.bpk")).exists())
    };
    signal_when(&logged, "epoch 2/3 [", &epoch_1_saved, Signal::KILL);
    // The kill landed mid-epoch 2: epoch 1 is recorded and checkpointed, 2 is not.
    let files: Vec<_> = std::fs::read_dir(&checkpoints)
        .map(|dir| dir.filter_map(Result::ok).map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(
        checkpoints.join("optim-1.bpk").exists() && !checkpoints.join("model-2.bpk").exists(),
        "{files:?}"
    );
    let rows = std::fs::read_to_string(killed.join("metrics.csv")).expect("metrics");
    assert_eq!(rows.lines().count(), 2, "a header and epoch 1: {rows}");
    assert!(!killed.join("model.bpk").exists(), "killed before the end");

    let resumed = trainer(
        &[
            &args(&killed).iter().map(String::as_str).collect::<Vec<_>>()[..],
            &["--resume"],
        ]
        .concat(),
    );
    let out = stdout(&resumed);
    assert!(resumed.status.success(), "{}", common::stderr(&resumed));
    assert!(
        out.contains("resuming after epoch") && out.contains("epoch 3/3"),
        "{out}"
    );
    // Scratch files of records the kill interrupted are gone with the resume.
    let scratch: Vec<_> = std::fs::read_dir(&checkpoints)
        .expect("checkpoint/")
        .filter_map(Result::ok)
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".tmp") || name.ends_with(".partial"))
        .collect();
    assert!(scratch.is_empty(), "{scratch:?}");

    let uninterrupted = trainer(&args(&whole).iter().map(String::as_str).collect::<Vec<_>>());
    assert!(
        uninterrupted.status.success(),
        "{}",
        common::stderr(&uninterrupted)
    );
    let expected = test_logits(&whole, &data_dir);
    test_logits(&killed, &data_dir).assert_eq(&expected, true);
    assert_eq!(metrics_scores(&killed), metrics_scores(&whole));
}

#[test]
fn killed_before_the_first_checkpoint_resume_starts_over() {
    let (tmp, run) = tiny_run_after_one_epoch();
    let data = tiny_args(tmp.path(), &run);
    // As if killed after writing its config but before any complete checkpoint.
    std::fs::remove_file(run.join("checkpoint/optim-1.bpk")).expect("remove");
    std::fs::remove_file(run.join("model.bpk")).expect("remove");
    let resumed = trainer(&[&data[..], &["--epochs", "1", "--resume"]].concat());
    assert!(resumed.status.success(), "{}", common::stderr(&resumed));
    assert!(
        stdout(&resumed).contains("starting the run over"),
        "{}",
        stdout(&resumed)
    );
    assert!(run.join("model.bpk").is_file());

    let line = assert_clean_failure(&trainer(&[
        "--resume",
        "--run",
        path_str(&tmp.path().join("never-ran")),
        "--data-dir",
        path_str(tmp.path()),
    ]));
    assert!(line.contains("never-ran"), "{line}");
}

#[test]
fn a_non_finite_loss_stops_the_run_and_keeps_the_last_good_checkpoint() {
    let data_dir = mnist_dir();
    let tmp = tempfile::tempdir().expect("tempdir");
    let run = tmp.path().join("run");
    let base = [
        "--data-dir",
        path_str(&data_dir),
        "--run",
        path_str(&run),
        "--limit-train",
        "3000",
    ];
    let first = trainer(&[&base[..], &["--epochs", "1"]].concat());
    assert!(first.status.success(), "{}", common::stderr(&first));
    let model = std::fs::read(run.join("model.bpk")).expect("model");

    // A learning rate that ruins the weights, in a fork of the run (a resumed run
    // keeps its own rate).
    let fork = tmp.path().join("fork");
    let exploding = trainer(
        &[
            &base[..],
            &[
                "--epochs",
                "2",
                "--resume",
                "--lr",
                "1e30",
                "--fork",
                path_str(&fork),
            ],
        ]
        .concat(),
    );
    let line = assert_clean_failure(&exploding);
    assert!(
        line.contains("epoch 2, step") && line.contains("last good checkpoint is epoch 1"),
        "{line}"
    );
    assert!(fork.join("checkpoint/model-1.bpk").is_file());
    assert!(
        !fork.join("checkpoint/model-2.bpk").exists(),
        "the ruined epoch is not checkpointed"
    );
    assert_eq!(std::fs::read(run.join("model.bpk")).expect("model"), model);
}

#[test]
fn resuming_with_another_network_names_both() {
    let (tmp, run) = tiny_run_after_one_epoch();
    let data = tiny_args(tmp.path(), &run);

    let config = tmp.path().join("wide.json");
    std::fs::write(&config, r#"{"model": {"hidden_sizes": [128]}}"#).expect("write");
    let resume = ["--epochs", "2", "--resume", "--config", path_str(&config)];
    let line = assert_clean_failure(&trainer(&[&data[..], &resume].concat()));
    assert!(
        line.contains("model.hidden_sizes (saved [64,64], asked [128])"),
        "{line}"
    );
    // Not even a fork can continue a checkpoint as another network.
    let fork = tmp.path().join("fork");
    let forked = [&data[..], &resume, &["--fork", path_str(&fork)]].concat();
    let line = assert_clean_failure(&trainer(&forked));
    assert!(
        line.contains("784-64-64-10") && line.contains("784-128-10"),
        "{line}"
    );
}

#[test]
fn a_damaged_checkpoint_is_reported_not_panicked_on() {
    let (tmp, run) = tiny_run_after_one_epoch();
    let data = tiny_args(tmp.path(), &run);
    for record in ["model", "optim", "scheduler"] {
        let path = run.join(format!("checkpoint/{record}-1.bpk"));
        let intact = std::fs::read(&path).expect("read");
        // The scheduler's record of a constant learning rate is all header; cut into it.
        let keep = if record == "scheduler" {
            16
        } else {
            intact.len() / 3
        };
        std::fs::write(&path, &intact[..keep]).expect("truncate");
        let line = assert_clean_failure(&trainer(
            &[&data[..], &["--epochs", "2", "--resume"]].concat(),
        ));
        assert!(line.contains(&format!("{record}-1.bpk")), "{line}");
        std::fs::write(&path, intact).expect("restore");
    }
}

#[test]
fn one_flipped_bit_in_a_checkpoint_or_a_model_is_named_as_damage() {
    let (tmp, run) = tiny_run_after_one_epoch();
    let data = tiny_args(tmp.path(), &run);
    let flip = |path: &Path| {
        let intact = std::fs::read(path).expect("read");
        let mut flipped = intact.clone();
        // In the weights, far from the header: a number that still parses.
        let at = flipped.len() - 1000;
        flipped[at] ^= 0x40;
        std::fs::write(path, flipped).expect("flip");
        intact
    };
    for record in ["model", "optim"] {
        let path = run.join(format!("checkpoint/{record}-1.bpk"));
        let intact = flip(&path);
        let line = assert_clean_failure(&trainer(
            &[&data[..], &["--epochs", "2", "--resume"]].concat(),
        ));
        assert!(
            line.contains(&format!("{record}-1.bpk")) && line.contains("damaged"),
            "{line}"
        );
        std::fs::write(&path, intact).expect("restore");
    }
    let model = run.join("model.bpk");
    flip(&model);
    for command in ["eval", "export"] {
        let out = tmp.path().join("model.safetensors");
        let mut args = vec![command, "--run", path_str(&run)];
        if command == "export" {
            args.extend(["--format", "safetensors", "--out", path_str(&out)]);
        } else {
            args.extend(["--data-dir", path_str(tmp.path())]);
        }
        let line = assert_clean_failure(&trainer(&args));
        assert!(
            line.contains("model.bpk") && line.contains("damaged"),
            "{command}: {line}"
        );
        assert!(!out.exists(), "export wrote a model from damaged weights");
    }
}

/// Runs the trainer with every file it writes limited to `kib` KiB, as a full disk
/// would stop it (the write fails with EFBIG; the signal that would kill it is
/// ignored), without needing the privileges to mount a small file system.
fn with_file_size_limit(kib: u32, args: &[&str]) -> Output {
    Command::new("bash")
        .arg("-c")
        .arg(r#"trap "" XFSZ; ulimit -f "$1"; shift; exec "$@""#)
        .arg("bash")
        .arg(kib.to_string())
        .arg(env!("CARGO_BIN_EXE_trainer"))
        .args(args)
        .env_remove("MNIST_DATA_DIR")
        .output()
        .expect("bash runs")
}

#[test]
fn a_full_disk_stops_with_one_line_and_keeps_earlier_files() {
    let tmp = tempfile::tempdir().expect("tempdir");
    tiny_mnist(tmp.path(), false);
    // No file may pass 100 KiB: the first model checkpoint (220 KB) cannot be
    // written, so the run leaves nothing behind.
    let fresh = tmp.path().join("fresh");
    let output = with_file_size_limit(
        100,
        &[&tiny_args(tmp.path(), &fresh)[..], &["--epochs", "2"]].concat(),
    );
    let line = assert_clean_failure(&output);
    assert!(line.contains("File too large"), "{line}");
    assert!(
        !fresh.exists(),
        "a run that failed before its first checkpoint is removed"
    );

    // A run with epoch 1 done, resumed where epoch 2's optimizer state (440 KB) no
    // longer fits: it stops, and epoch 1's files are as they were.
    let (tmp, run) = tiny_run_after_one_epoch();
    let data = tiny_args(tmp.path(), &run);
    let read = |name: &str| std::fs::read(run.join(name)).expect(name);
    let epoch_1 = [
        "checkpoint/model-1.bpk",
        "checkpoint/optim-1.bpk",
        "checkpoint/scheduler-1.bpk",
    ];
    let kept = epoch_1.map(read);
    let output = with_file_size_limit(300, &[&data[..], &["--epochs", "2", "--resume"]].concat());
    let line = assert_clean_failure(&output);
    assert!(line.contains("File too large"), "{line}");
    assert!(epoch_1.map(read) == kept, "epoch 1's checkpoint changed");
    // With room again, the run continues from epoch 1 and finishes.
    let resumed = trainer(&[&data[..], &["--epochs", "2", "--resume"]].concat());
    assert!(resumed.status.success(), "{}", common::stderr(&resumed));
    assert!(
        stdout(&resumed).contains("resuming after epoch 1"),
        "{}",
        stdout(&resumed)
    );
}

#[test]
fn a_write_killed_at_any_moment_leaves_the_old_file_or_the_new_one() {
    let tmp = tempfile::tempdir().expect("tempdir");
    // A network large enough that writing its ONNX file (about 40 MB) takes a while.
    let run = common::untrained_run(&tmp.path().join("run"));
    let mut config = trainer::config::TrainingConfig::new();
    config.model.hidden_sizes = vec![4096, 2048];
    run.save_config(&config).expect("config");
    run.save_model(&config.model.init(&Device::flex()))
        .expect("model");
    let out = tmp.path().join("out").join("model.onnx");
    std::fs::create_dir(out.parent().expect("a parent")).expect("mkdir");
    let export = || {
        let mut command = Command::new(env!("CARGO_BIN_EXE_trainer"));
        command
            .args([
                "export",
                "--run",
                path_str(run.root()),
                "--format",
                "onnx",
                "--out",
            ])
            .arg(&out)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        command
    };
    assert!(export().status().expect("runs").success());
    let complete = std::fs::read(&out).expect("exported");
    let started = std::time::Instant::now();
    export().status().expect("runs");
    let takes = started.elapsed();
    // Kill exports at moments spread over the time one takes.
    let mut interrupted = 0;
    for attempt in 1..=12u32 {
        let mut child = export().spawn().expect("starts");
        std::thread::sleep(takes * attempt / 12);
        let _ = child.kill();
        let status = child.wait().expect("reaped");
        interrupted += usize::from(status.code().is_none());
        let now = std::fs::read(&out).expect("the file is always there");
        assert!(
            now == complete,
            "attempt {attempt}: a torn file of {} bytes",
            now.len()
        );
        let names: Vec<_> = std::fs::read_dir(out.parent().expect("a parent"))
            .expect("list")
            .map(|entry| entry.expect("entry").file_name())
            .collect();
        // At most the partial file of the write just killed, beside the target.
        assert!(names.len() <= 2, "attempt {attempt}: {names:?}");
    }
    println!("{interrupted} of 12 exports were killed before they finished");
    assert!(interrupted > 0, "no export was interrupted");
    // The next write removes what a killed one left.
    assert!(export().status().expect("runs").success());
    let names: Vec<_> = std::fs::read_dir(out.parent().expect("a parent"))
        .expect("list")
        .map(|entry| entry.expect("entry").file_name())
        .collect();
    assert_eq!(names, ["model.onnx"]);
}

#[test]
fn an_output_that_is_a_fifo_or_stdout_is_written_into_not_replaced() {
    use std::os::unix::fs::FileTypeExt;
    let (tmp, run) = tiny_run_after_one_epoch();
    // A reader at the other end of a FIFO, as `trainer export --out FIFO | ...` has.
    let fifo = tmp.path().join("weights.fifo");
    let copy = tmp.path().join("copy.safetensors");
    let made = Command::new("mkfifo").arg(&fifo).status();
    assert!(made.is_ok_and(|status| status.success()), "mkfifo");
    let mut reader = Command::new("sh")
        .arg("-c")
        .arg(format!("cat '{}' > '{}'", path_str(&fifo), path_str(&copy)))
        .spawn()
        .expect("cat starts");
    let exported = common::export(&run, "safetensors", &fifo);
    assert!(exported.status.success(), "{}", common::stderr(&exported));
    assert!(reader.wait().expect("cat ends").success());
    let streamed = std::fs::metadata(&copy).expect("the copy").len();
    assert!(streamed > 1000, "{streamed} bytes");
    assert!(
        std::fs::symlink_metadata(&fifo)
            .expect("stat")
            .file_type()
            .is_fifo()
    );
    // /dev/stdout, a link to the process's standard output: the model comes out there.
    let onnx = common::export(&run, "onnx", Path::new("/dev/stdout"));
    assert!(onnx.status.success(), "{}", common::stderr(&onnx));
    let printed = &onnx.stdout;
    assert!(
        printed.len() > 1000 && printed.windows(9).any(|w| w == b"mnist-bur"),
        "{} bytes on stdout",
        printed.len()
    );
}

#[test]
fn a_second_writer_of_a_run_is_refused_while_the_first_trains_and_readers_are_not() {
    let data_dir = mnist_dir();
    let (tmp, done) = tiny_run_after_one_epoch();
    let run = tmp.path().join("busy");
    let mut first = common::training_in_progress(&data_dir, &run);
    let pid = first.id().to_string();
    for second in [
        trainer(&[
            "train",
            "--data-dir",
            path_str(&data_dir),
            "--run",
            path_str(&run),
            "--overwrite",
        ]),
        trainer(&[
            "train",
            "--run",
            path_str(&run),
            "--resume",
            "--epochs",
            "51",
        ]),
    ] {
        let line = assert_clean_failure(&second);
        assert!(
            line.contains("is being written by process") && line.contains(&pid),
            "{line}"
        );
    }
    // Readers take no lock: another run reads as ever while this one trains.
    let read = trainer(&["summary", "--run", path_str(&done)]);
    assert!(read.status.success(), "{}", common::stderr(&read));
    let _ = first.kill();
    let _ = first.wait();
    // The lock died with its holder: the run resumes.
    let resumed = trainer(&[
        "train",
        "--run",
        path_str(&run),
        "--resume",
        "--epochs",
        "1",
    ]);
    let said = format!("{}{}", stdout(&resumed), common::stderr(&resumed));
    assert!(!said.contains("is being written"), "{said}");
}

#[test]
fn labels_that_name_no_classes_are_refused_unless_the_class_count_is_set() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let train = |labels: &[u8], extra: &[&str]| {
        tiny_mnist(tmp.path(), false);
        let file = tmp.path().join("train-labels-idx1-ubyte");
        std::fs::write(&file, common::idx(0x801, &[20], labels)).expect("labels");
        let test = tmp.path().join("t10k-labels-idx1-ubyte");
        std::fs::write(&test, common::idx(0x801, &[5], &labels[..5])).expect("labels");
        let run = tmp.path().join("run");
        let _ = std::fs::remove_dir_all(&run);
        trainer(&[&tiny_args(tmp.path(), &run)[..], &["--epochs", "1"], extra].concat())
    };
    let mut stray: Vec<u8> = (0..20).map(|i| i % 10).collect();
    stray[17] = 255;
    let line = assert_clean_failure(&train(&stray, &[]));
    assert!(
        line.contains("class count would be 256")
            && line.contains("training image 17")
            && line.contains("num_classes"),
        "{line}"
    );
    let line = assert_clean_failure(&train(&[0; 20], &[]));
    assert!(
        line.contains("every image of the data has the label 0"),
        "{line}"
    );
    // Set, the class count is the user's: the stray label trains as a class of its own.
    let set = train(&stray, &["--set", "num_classes=256"]);
    assert!(set.status.success(), "{}", common::stderr(&set));
}

#[test]
fn a_sweep_runner_killed_outright_takes_its_running_trial_with_it() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let spec = tmp.path().join("sweep.json");
    std::fs::write(
        &spec,
        r#"{"base": {"epochs": 5000, "limit_train": 3000, "split": {"valid_size": 1000}},
            "parameters": {"lr": [0.001, 0.003]}}"#,
    )
    .expect("write sweep file");
    let dir = tmp.path().join("sweep");
    let mut runner = Command::new(env!("CARGO_BIN_EXE_trainer"))
        .args(["sweep", "--config", path_str(&spec), "--data-dir"])
        .arg(mnist_dir())
        .args(["--run", path_str(&dir)])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the sweep starts");
    // The trial's process ID, once it has written its lock and a checkpoint.
    let waited = std::time::Instant::now();
    let (trial_dir, trial) = loop {
        assert!(
            waited.elapsed() < std::time::Duration::from_secs(120),
            "no trial started"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
        let Some(trial_dir) = std::fs::read_dir(&dir).ok().and_then(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|entry| entry.path())
                .find(|path| path.join("checkpoint/model-1.bpk").exists())
        }) else {
            continue;
        };
        let pid = std::fs::read_to_string(trial_dir.join(".lock")).expect("the trial's lock");
        break (trial_dir, pid.trim().parse::<i32>().expect("a process ID"));
    };
    let running = |pid: i32| {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .is_ok_and(|stat| !stat.contains(") Z "))
    };
    assert!(running(trial), "the trial runs");
    runner.kill().expect("SIGKILL to the runner");
    runner.wait().expect("reaped");
    let killed = std::time::Instant::now();
    while running(trial) && killed.elapsed() < std::time::Duration::from_secs(30) {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(!running(trial), "the trial trains on without its runner");
    let log = std::fs::read_to_string(trial_dir.join("train.log")).expect("train.log");
    assert!(log.contains("SIGTERM"), "the trial stopped as asked: {log}");
}
