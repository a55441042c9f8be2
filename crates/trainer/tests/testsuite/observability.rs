//! Watching a run, through the binary: progress lines every `--log-interval` steps in
//! a piped log, TensorBoard event files read back by the real `tensorboard` package
//! (tests/python/read_events.py), `trainer summary`, and `--dry-run`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use trainer::report::tensorboard::EventWriter;

use crate::common::{
    self, assert_clean_failure, mnist_dir, path_str, stderr, stdout, train_with_cli, trainer,
};

/// 6,000 images at batch 64: 94 steps an epoch.
const STEPS_PER_EPOCH: u64 = 94;

fn train(data_dir: &Path, run: &Path, extra: &[&str]) -> String {
    let logged = ["--limit-train", "6000", "--log-interval", "30"];
    let output = train_with_cli(data_dir, run, &[&logged[..], extra].concat());
    assert!(output.status.success(), "{}", stderr(&output));
    stdout(&output)
}

/// The run's scalars as TensorBoard reads them: tag -> [(step, value)].
fn tensorboard_scalars(python: &Path, logdir: &Path) -> BTreeMap<String, Vec<(u64, f64)>> {
    let output = Command::new(python)
        .arg(common::python_script("read_events.py"))
        .arg(logdir)
        .output()
        .expect("python runs");
    assert!(output.status.success(), "{}", stderr(&output));
    serde_json::from_slice(&output.stdout).expect("one JSON object")
}

/// metrics.csv as rows of numbers.
fn metrics(run: &Path) -> Vec<Vec<f64>> {
    let text = std::fs::read_to_string(run.join("metrics.csv")).expect("metrics.csv");
    text.lines()
        .skip(1)
        .map(|line| {
            line.split(',')
                .map(|f| f.parse().expect("number"))
                .collect()
        })
        .collect()
}

fn steps(points: &[(u64, f64)]) -> Vec<u64> {
    points.iter().map(|&(step, _)| step).collect()
}

/// A 1-epoch run of 6000 images logging every 30 steps, resumed for a second epoch
/// after a killed one had logged a point: the run's directory (in `tmp`), and what the
/// first run printed.
fn logged_run(tmp: &Path) -> (PathBuf, String) {
    let data_dir = mnist_dir();
    let run = tmp.join("run");
    let log = train(&data_dir, &run, &["--epochs", "1"]);
    let events = std::fs::read_dir(run.join("tensorboard")).expect("tensorboard/");
    assert_eq!(events.count(), 1);

    // A killed second epoch had logged a point the resumed one logs again.
    let mut killed = EventWriter::create(&run.join("tensorboard")).expect("writer");
    killed.scalar("train/loss", 120, 99.0).expect("point");
    drop(killed);
    let resumed = train(&data_dir, &run, &["--resume", "--epochs", "2"]);
    // Step 120 of the run is step 26 of epoch 2.
    assert!(resumed.contains("epoch 2/2 [1664/6000] loss "), "{resumed}");
    (run, log)
}

/// The progress lines of a log: one every 30 steps.
fn progress(log: &str) -> Vec<&str> {
    log.lines().filter(|l| l.contains("/6000] loss")).collect()
}

#[test]
fn progress_lines_follow_the_run_and_its_resumption() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (_, log) = logged_run(tmp.path());

    let progress = progress(&log);
    assert_eq!(progress.len(), 3, "steps 30, 60 and 90 of 94:\n{log}");
    assert!(
        progress[0].starts_with("epoch 1/1 [1920/6000] loss "),
        "{}",
        progress[0]
    );
    assert!(progress[0].contains(" lr 0.001 ") && progress[0].ends_with(" img/s"));
    let rate = progress[2].split(" lr 0.001 ").nth(1).expect("a rate");
    let rate = rate.trim_end_matches(" img/s").replace(',', "");
    assert!(rate.parse::<u64>().expect("a whole number") > 0, "{rate}");
    assert!(
        log.contains("total parameters: 55,050 (784-64-64-10)"),
        "{log}"
    );
}

#[test]
#[ignore = "needs a Python with tests/python/requirements.txt (.ci/run makes tests/python/.venv); run with --ignored"]
fn tensorboard_reads_the_runs_event_files_as_the_run_logged_them() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (run, log) = logged_run(tmp.path());
    let progress = progress(&log);
    let python = common::python();
    let scalars = tensorboard_scalars(&python, &run.join("tensorboard"));
    let loss = &scalars["train/loss"];
    assert_eq!(
        steps(loss),
        [30, 60, 90, 120, 150, 180],
        "every 30 steps, none twice"
    );
    assert!(loss.iter().all(|&(_, value)| value < 10.0), "{loss:?}");
    assert!(
        scalars["train/lr"]
            .iter()
            .all(|&(_, lr)| (lr - 0.001).abs() < 1e-9)
    );
    let rows = metrics(&run);
    assert_eq!(rows.len(), 2);
    for (column, tag) in [
        (1, "epoch/train_loss"),
        (2, "epoch/train_accuracy"),
        (3, "epoch/valid_loss"),
        (4, "epoch/valid_accuracy"),
    ] {
        let points = &scalars[tag];
        assert_eq!(
            steps(points),
            [STEPS_PER_EPOCH, 2 * STEPS_PER_EPOCH],
            "{tag}"
        );
        for (row, &(_, value)) in rows.iter().zip(points) {
            let recorded = f64::from(row[column] as f32);
            assert!(
                (value - recorded).abs() < 1e-9,
                "{tag}: {value} vs {recorded}"
            );
        }
    }
    // The progress lines print what TensorBoard holds, rounded.
    let line_loss: f64 = progress[0]
        .split("loss ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|loss| loss.parse().ok())
        .expect("a loss");
    assert!(
        (line_loss - loss[0].1).abs() < 5e-5,
        "{line_loss} vs {:?}",
        loss[0]
    );
    let info: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("run.json")).expect("run.json"))
            .expect("json");
    let test = &scalars["test/accuracy"];
    // Each invocation ends with a test of its model: after epoch 1, then after epoch 2.
    assert_eq!(steps(test), [STEPS_PER_EPOCH, 2 * STEPS_PER_EPOCH]);
    let recorded = info["test_accuracy"].as_f64().expect("test accuracy");
    let logged = test.last().map_or(f64::NAN, |p| p.1);
    assert!(
        (logged - f64::from(recorded as f32)).abs() < 1e-9,
        "{logged} vs {recorded}"
    );
}

#[test]
fn summary_shows_the_layers_of_a_run_or_a_config() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let run = common::untrained_run(&tmp.path().join("run"));
    let shown = trainer(&["summary", "--run", path_str(run.root())]);
    assert!(shown.status.success(), "{}", stderr(&shown));
    let table = stdout(&shown);
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines[2].starts_with("fc1 (Linear)") && lines[2].ends_with("50,240"),
        "{table}"
    );
    assert!(table.contains("total parameters: 55,050"), "{table}");

    let config = tmp.path().join("wide.json");
    std::fs::write(
        &config,
        r#"{"model": {"hidden_sizes": [128], "activation": "tanh"}}"#,
    )
    .expect("write");
    let shown = trainer(&["summary", "--config", path_str(&config)]);
    let table = stdout(&shown);
    assert!(
        table.contains("tanh (Tanh)") && table.contains("101,770"),
        "{table}"
    );

    let line = assert_clean_failure(&trainer(&["summary"]));
    assert!(
        line.contains("--run") || line.contains("--config"),
        "{line}"
    );
    let empty = tmp.path().join("empty");
    let line = assert_clean_failure(&trainer(&["summary", "--run", path_str(&empty)]));
    assert!(line.contains("empty"), "{line}");
}

#[test]
fn a_dry_run_takes_one_step_of_each_split_and_writes_nothing() {
    let data_dir = mnist_dir();
    let tmp = tempfile::tempdir().expect("tempdir");
    let run = tmp.path().join("dry");
    let output = train_with_cli(&data_dir, &run, &["--dry-run"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let log = stdout(&output);
    let line = log
        .lines()
        .find(|l| l.starts_with("dry run:"))
        .unwrap_or_else(|| panic!("no dry-run line: {log}"));
    assert!(line.contains("one training step on 64 images"), "{line}");
    assert!(
        line.contains("one validation batch of 1000 images"),
        "{line}"
    );
    assert!(!run.exists(), "a dry run wrote {}", run.display());
    assert!(
        !log.contains("epoch 1/"),
        "a dry run trains no epoch: {log}"
    );
    let line = assert_clean_failure(&trainer(&[
        "train",
        "--data-dir",
        path_str(&tmp.path().join("nowhere")),
        "--dry-run",
    ]));
    assert!(line.contains("nowhere"), "{line}");
}
