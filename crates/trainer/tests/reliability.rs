//! Crash safety: a run killed mid-epoch resumes to exactly the result of an
//! uninterrupted one; a loss that stops being a number, a full disk or a damaged
//! checkpoint stop cleanly and keep what was written.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use burn::data::dataloader::batcher::Batcher;
use burn::data::dataset::Dataset;
use burn::prelude::*;
use common::{assert_clean_failure, mnist_dir, path_str, stdout, tiny_mnist, trainer};
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
fn killed_mid_epoch_then_resumed_ends_exactly_like_an_uninterrupted_run() {
    let Some(data_dir) = mnist_dir() else { return };
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
            "--artifacts",
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

    let mut child = Command::new(env!("CARGO_BIN_EXE_trainer"))
        .args(args(&killed))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("trainer starts");
    // Burn writes the three records of a checkpoint concurrently; wait for all of
    // epoch 1's, so that the kill lands in the middle of epoch 2.
    let first_checkpoint =
        ["model", "optim", "scheduler"].map(|r| killed.join(format!("checkpoint/{r}-1.bpk")));
    let deadline = Instant::now() + Duration::from_secs(120);
    while !first_checkpoint.iter().all(|path| path.exists()) {
        assert!(Instant::now() < deadline, "no checkpoint after 120 s");
        assert!(
            child.try_wait().expect("child status").is_none(),
            "the run ended before it could be killed"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().expect("SIGKILL");
    let status = child.wait().expect("reaped");
    assert_eq!(
        status.code(),
        None,
        "the child was killed by a signal, not finished"
    );
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

    let uninterrupted = trainer(&args(&whole).iter().map(String::as_str).collect::<Vec<_>>());
    assert!(
        uninterrupted.status.success(),
        "{}",
        common::stderr(&uninterrupted)
    );
    let expected = test_logits(&whole, &data_dir);
    test_logits(&killed, &data_dir).assert_eq(&expected, true);
    let metrics = |run: &Path| std::fs::read_to_string(run.join("metrics.csv")).expect("metrics");
    let rows = |text: String| -> Vec<String> {
        // The last column is wall time, which differs between runs.
        text.lines()
            .map(|l| {
                l.rsplit_once(',')
                    .map_or(l, |(scores, _)| scores)
                    .to_string()
            })
            .collect()
    };
    assert_eq!(rows(metrics(&killed)), rows(metrics(&whole)));
}

/// The arguments that point `trainer` at the tiny data set in `dir` and at `run`.
fn tiny_args<'a>(dir: &'a Path, run: &'a Path) -> [&'a str; 6] {
    [
        "--data-dir",
        path_str(dir),
        "--artifacts",
        path_str(run),
        "--valid-size",
        "5",
    ]
}

/// A tiny data set and a run trained on it for one epoch: the temporary folder
/// holding both, and the run directory.
fn tiny_run_after_one_epoch() -> (tempfile::TempDir, std::path::PathBuf) {
    let tmp = tempfile::tempdir().expect("tempdir");
    tiny_mnist(tmp.path(), false);
    let run = tmp.path().join("run");
    let first = trainer(&[&tiny_args(tmp.path(), &run)[..], &["--epochs", "1"]].concat());
    assert!(first.status.success(), "{}", common::stderr(&first));
    (tmp, run)
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
        "--artifacts",
        path_str(&tmp.path().join("never-ran")),
        "--data-dir",
        path_str(tmp.path()),
    ]));
    assert!(line.contains("never-ran"), "{line}");
}

#[test]
fn a_non_finite_loss_stops_the_run_and_keeps_the_last_good_checkpoint() {
    let Some(data_dir) = mnist_dir() else { return };
    let tmp = tempfile::tempdir().expect("tempdir");
    let run = tmp.path().join("run");
    let base = [
        "--data-dir",
        path_str(&data_dir),
        "--artifacts",
        path_str(&run),
        "--limit-train",
        "3000",
    ];
    let first = trainer(&[&base[..], &["--epochs", "1"]].concat());
    assert!(first.status.success(), "{}", common::stderr(&first));
    let model = std::fs::read(run.join("model.bpk")).expect("model");

    let exploding = trainer(&[&base[..], &["--epochs", "2", "--resume", "--lr", "1e30"]].concat());
    let line = assert_clean_failure(&exploding);
    assert!(
        line.contains("epoch 2, step") && line.contains("epoch 1"),
        "{line}"
    );
    assert!(run.join("checkpoint/model-1.bpk").is_file());
    assert!(
        !run.join("checkpoint/model-2.bpk").exists(),
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
    let line = assert_clean_failure(&trainer(
        &[
            &data[..],
            &["--epochs", "2", "--resume", "--config", path_str(&config)],
        ]
        .concat(),
    ));
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
fn a_full_disk_stops_with_one_line_and_keeps_earlier_files() {
    let tmp = tempfile::tempdir().expect("tempdir");
    tiny_mnist(tmp.path(), false);
    let disk = tmp.path().join("disk");
    std::fs::create_dir(&disk).expect("mkdir");
    // A 300 KiB tmpfs holds the config and one model checkpoint, not the optimizer's.
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=300k", "tmpfs", path_str(&disk)])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if !mounted {
        eprintln!("skipped: mounting a small tmpfs needs root");
        return;
    }
    let run = disk.join("run");
    let output = trainer(&[
        "--data-dir",
        path_str(tmp.path()),
        "--artifacts",
        path_str(&run),
        "--valid-size",
        "5",
        "--epochs",
        "3",
    ]);
    let config = std::fs::read_to_string(run.join("config.json"));
    let _ = Command::new("umount").arg(&disk).status();
    let line = assert_clean_failure(&output);
    assert!(line.contains("No space left"), "{line}");
    assert!(
        config
            .expect("config.json survives")
            .contains("\"epochs\": 3")
    );
}
