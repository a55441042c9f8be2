//! Scaling out: data-parallel training on two devices (two workers on flex's one
//! device here) learns as one does and resumes exactly after a kill; a sweep run in
//! the stages a cluster scheduler runs (`--plan`, `--trial N` each, `--collect`)
//! ranks exactly as a local sweep does.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use burn::data::dataloader::batcher::Batcher;
use burn::data::dataset::Dataset;
use burn::prelude::*;
use common::{assert_clean_failure, mnist_dir, path_str, stdout, trainer};
use data::{Mnist, MnistBatcher, MnistDataset};
use trainer::run_dir::RunDir;

/// Logits of a run's final model on the first 100 test images.
fn test_logits(run: &Path, data_dir: &Path) -> TensorData {
    let device = Device::flex();
    let (_, model) = RunDir::new(run).load_model(&device).expect("model loads");
    let test = MnistDataset::new(Mnist::load(Some(data_dir)).expect("data").test);
    let items = (0..100).map(|i| test.get(i).expect("in range")).collect();
    model
        .forward(MnistBatcher.batch(items, &device).images)
        .into_data()
}

#[test]
fn two_devices_train_the_default_run_to_the_tutorials_accuracy() {
    let Some(data_dir) = mnist_dir() else { return };
    let tmp = tempfile::tempdir().expect("tempdir");
    let run = tmp.path().join("run");
    let output = trainer(&[
        "train",
        "--data-dir",
        path_str(&data_dir),
        "--artifacts",
        path_str(&run),
        "--devices",
        "2",
    ]);
    let out = stdout(&output);
    assert!(output.status.success(), "{}", common::stderr(&output));
    let accuracy: f64 = out
        .lines()
        .find_map(|line| line.strip_prefix("test loss "))
        .and_then(|rest| {
            rest.split("accuracy ")
                .nth(1)?
                .split('%')
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no test accuracy in {out}"));
    assert!(accuracy >= 96.8, "5 epochs on 2 devices: {accuracy}%");
    let config = std::fs::read_to_string(run.join("config.json")).expect("config");
    assert!(
        config.contains(r#""devices": "2""#),
        "the run records its devices: {config}"
    );
}

#[test]
fn two_devices_killed_mid_epoch_then_resumed_end_like_an_uninterrupted_run() {
    let Some(data_dir) = mnist_dir() else { return };
    let tmp = tempfile::tempdir().expect("tempdir");
    let (killed, whole) = (tmp.path().join("killed"), tmp.path().join("whole"));
    let args = |run: &Path| -> Vec<String> {
        [
            "train",
            "--devices",
            "2",
            "--epochs",
            "3",
            "--limit-train",
            "20000",
            "--no-test",
            "--set",
            "lr_schedule.name=cosine",
            "--data-dir",
            path_str(&data_dir),
            "--artifacts",
            path_str(run),
        ]
        .map(String::from)
        .to_vec()
    };
    let mut child = Command::new(env!("CARGO_BIN_EXE_trainer"))
        .args(args(&killed))
        .args(["--log-interval", "20"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("trainer starts");
    let lines = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
    let mut seen = Vec::new();
    for line in lines {
        let line = line.expect("a line");
        let inside_epoch_2 = line.starts_with("epoch 2/3 [");
        seen.push(line);
        if inside_epoch_2 {
            break;
        }
    }
    child.kill().expect("SIGKILL");
    child.wait().expect("reaped");
    assert!(
        seen.last().is_some_and(|l| l.starts_with("epoch 2/3 [")),
        "{seen:?}"
    );
    assert!(!killed.join("model.bpk").exists(), "killed before the end");

    let resume: Vec<String> = args(&killed)
        .into_iter()
        .chain(["--resume".into()])
        .collect();
    let resumed = trainer(&resume.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(resumed.status.success(), "{}", common::stderr(&resumed));
    let uninterrupted = trainer(&args(&whole).iter().map(String::as_str).collect::<Vec<_>>());
    assert!(
        uninterrupted.status.success(),
        "{}",
        common::stderr(&uninterrupted)
    );
    test_logits(&killed, &data_dir).assert_eq(&test_logits(&whole, &data_dir), true);
    let rows = |run: &Path| -> Vec<String> {
        std::fs::read_to_string(run.join("metrics.csv"))
            .expect("metrics")
            .lines()
            // The last column is wall time.
            .map(|l| {
                l.rsplit_once(',')
                    .map_or(l, |(scores, _)| scores)
                    .to_string()
            })
            .collect()
    };
    assert_eq!(rows(&killed), rows(&whole));

    // Another device count is another run: refused, naming the change.
    let other: Vec<String> = args(&killed)
        .into_iter()
        .map(|arg| if arg == "2" { "1".to_string() } else { arg })
        .chain(["--resume".into()])
        .collect();
    let line = assert_clean_failure(&trainer(
        &other.iter().map(String::as_str).collect::<Vec<_>>(),
    ));
    assert!(line.contains(r#"devices "2" -> "1""#), "{line}");
}

#[test]
fn device_specs_that_cannot_be_met_are_one_line_errors() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let run = tmp.path().join("run");
    for (spec, named) in [
        ("discrete:1", "discrete:1"),
        ("0", "devices"),
        ("3", "batch_size"),
        ("cpu,gpu7", "gpu7"),
    ] {
        let line = assert_clean_failure(&trainer(&[
            "train",
            "--data-dir",
            path_str(tmp.path()),
            "--artifacts",
            path_str(&run),
            "--devices",
            spec,
        ]));
        assert!(line.contains(named), "--devices {spec}: {line}");
    }
}

#[test]
fn a_sweep_in_stages_ranks_exactly_as_a_local_sweep() {
    let Some(data_dir) = mnist_dir() else { return };
    let tmp = tempfile::tempdir().expect("tempdir");
    let spec = tmp.path().join("sweep.json");
    std::fs::write(
        &spec,
        r#"{"base": {"epochs": 1, "limit_train": 2000, "split": {"valid_size": 500, "seed": 3}},
            "method": "grid", "parameters": {"lr": [0.001, 0.003], "batch_size": [32, 64]}}"#,
    )
    .expect("sweep file");
    let sweep = |dir: &Path, stage: &[&str]| {
        trainer(
            &[
                &[
                    "sweep",
                    "--config",
                    path_str(&spec),
                    "--data-dir",
                    path_str(&data_dir),
                    "--artifacts",
                    path_str(dir),
                ][..],
                stage,
            ]
            .concat(),
        )
    };
    let (local, staged) = (tmp.path().join("local"), tmp.path().join("staged"));
    let plain = sweep(&local, &[]);
    assert!(plain.status.success(), "{}", common::stderr(&plain));

    let planned = sweep(&staged, &["--plan"]);
    assert!(planned.status.success(), "{}", common::stderr(&planned));
    assert!(
        stdout(&planned).contains("planned 4 trials"),
        "{}",
        stdout(&planned)
    );
    for n in 1..=4 {
        let config = staged.join(format!("trial-00{n}")).join("trial.json");
        assert!(config.is_file(), "--plan writes {}", config.display());
    }
    assert!(
        !staged.join("trial-001").join("model.bpk").exists(),
        "--plan trains nothing"
    );
    // Trials write only their own directories: nothing of the sweep's own yet.
    for n in [3, 1, 4, 2] {
        let trial = sweep(&staged, &["--trial", &n.to_string()]);
        assert!(
            trial.status.success(),
            "trial {n}: {}",
            common::stderr(&trial)
        );
    }
    assert!(!staged.join("leaderboard.csv").exists());
    let collected = sweep(&staged, &["--collect"]);
    assert!(collected.status.success(), "{}", common::stderr(&collected));
    let board = |dir: &Path| {
        std::fs::read_to_string(dir.join("leaderboard.csv"))
            .expect("leaderboard")
            .lines()
            // Everything but the wall time (and the status after it).
            .map(|line| line.split(',').take(6).collect::<Vec<_>>().join(","))
            .collect::<Vec<_>>()
    };
    assert_eq!(board(&staged), board(&local));
    assert!(staged.join("best.json").is_file());

    let line = assert_clean_failure(&sweep(&staged, &["--trial", "9"]));
    assert!(
        line.contains("no trial 9") && line.contains("1 to 4"),
        "{line}"
    );
}
