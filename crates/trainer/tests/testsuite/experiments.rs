//! Experiments through the binary, as a user runs them: sweeps that rank, test the
//! winner and resume; early stopping; the pictures; optimizers and schedules; and a
//! data set other than MNIST.

use std::path::Path;

use burn::data::dataset::Dataset;
use burn::prelude::*;
use data::{Mnist, MnistDataset};
use trainer::infer::evaluate;
use trainer::run_dir::RunDir;

use crate::common::{
    self, assert_clean_failure, mnist_dir, path_str, stderr, stdout, train_with_cli, trainer,
};

fn png_size(path: &Path) -> (u32, u32) {
    let image = image::open(path).unwrap_or_else(|e| panic!("{} is no PNG: {e}", path.display()));
    (image.width(), image.height())
}

#[test]
fn a_two_trial_sweep_ranks_tests_the_winner_and_resumes_without_rerunning() {
    let data_dir = mnist_dir();
    let tmp = tempfile::tempdir().expect("tempdir");
    let spec = tmp.path().join("sweep-two.json");
    let write_spec = |lrs: &str| {
        std::fs::write(
            &spec,
            format!(
                r#"{{"base": {{"epochs": 1, "limit_train": 2000, "split": {{"valid_size": 1000}}}},
                    "parameters": {{"lr": {lrs}}}}}"#
            ),
        )
        .expect("write sweep file")
    };
    write_spec("[0.0003, 0.003]");
    let dir = tmp.path().join("sweep");
    let run_sweep = || common::sweep(&spec, &data_dir, &dir, &[]);

    let first = run_sweep();
    assert!(first.status.success(), "{}", stderr(&first));
    assert!(
        stdout(&first).contains("best: trial-00"),
        "{}",
        stdout(&first)
    );
    let csv = std::fs::read_to_string(dir.join("leaderboard.csv")).expect("leaderboard.csv");
    let rows: Vec<Vec<&str>> = csv.lines().map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 3, "{csv}");
    assert_eq!(
        rows[0][..4],
        ["rank", "trials", "lr", "valid_accuracy"],
        "{csv}"
    );
    let accuracies: Vec<f64> = rows[1..]
        .iter()
        .map(|row| row[3].parse().expect("accuracy"))
        .collect();
    assert!(accuracies[0] >= accuracies[1], "sorted best first: {csv}");
    assert!(rows[1..].iter().all(|row| row[7] == "finished"), "{csv}");
    let markdown = std::fs::read_to_string(dir.join("leaderboard.md")).expect("leaderboard.md");
    assert!(
        markdown.contains(&format!("| 1 | {} |", rows[1][1])),
        "{markdown}"
    );
    let best: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("best.json")).expect("best.json"))
            .expect("json");
    assert_eq!(best["trials"][0], rows[1][1], "{best}");
    assert!(
        best["test_accuracy"].as_f64().expect("number") > 50.0,
        "{best}"
    );
    // Trials are selected on validation: none of them was scored on the test set.
    for trial in ["trial-001", "trial-002"] {
        let info = RunDir::new(dir.join(trial)).load_info().expect("run.json");
        assert!(info.valid_accuracy.is_some() && info.test_accuracy.is_none());
        // Each trial logs for TensorBoard in its own directory, so that
        // `tensorboard --logdir <sweep>` shows them side by side.
        let logs = std::fs::read_dir(dir.join(trial).join("tensorboard")).expect("its log");
        assert_eq!(logs.count(), 1, "{trial}");
    }

    // Run again: both trials are finished and left alone.
    let model = dir.join("trial-001/model.bpk");
    let written = std::fs::metadata(&model)
        .and_then(|m| m.modified())
        .expect("mtime");
    let again = run_sweep();
    assert!(again.status.success(), "{}", stderr(&again));
    let out = stdout(&again);
    assert!(
        out.contains("trial 1/2 finished earlier") && out.contains("trial 2/2 finished earlier"),
        "{out}"
    );
    let unchanged = std::fs::metadata(&model)
        .and_then(|m| m.modified())
        .expect("mtime");
    assert_eq!(written, unchanged, "a finished trial was retrained");

    // A trial killed after its last checkpoint but before writing its model resumes.
    std::fs::remove_file(dir.join("trial-002/model.bpk")).expect("remove model");
    let resumed = run_sweep();
    assert!(resumed.status.success(), "{}", stderr(&resumed));
    let out = stdout(&resumed);
    assert!(out.contains("trial 1/2 finished earlier"), "{out}");
    assert!(!out.contains("trial 2/2 finished earlier"), "{out}");
    assert!(dir.join("trial-002/model.bpk").is_file());
    let log = std::fs::read_to_string(dir.join("trial-002/train.log")).expect("log");
    assert!(log.contains("resuming after epoch 1"), "{log}");

    // Another sweep into the same directory is refused, not mixed in.
    write_spec("[0.01, 0.003]");
    let line = assert_clean_failure(&run_sweep());
    assert!(
        line.contains("trial-001") && line.contains("another config"),
        "{line}"
    );
}

#[test]
fn a_sweep_with_seeds_ranks_configurations_by_their_median() {
    let data_dir = mnist_dir();
    let tmp = tempfile::tempdir().expect("tempdir");
    let spec = tmp.path().join("sweep-seeds.json");
    std::fs::write(
        &spec,
        r#"{"base": {"epochs": 1, "limit_train": 1000, "split": {"valid_size": 500}},
            "seeds": [1, 2], "parameters": {"lr": [0.0003, 0.003]}}"#,
    )
    .expect("write sweep file");
    let dir = tmp.path().join("sweep");
    let swept = common::sweep(&spec, &data_dir, &dir, &[]);
    assert!(swept.status.success(), "{}", stderr(&swept));
    let csv = std::fs::read_to_string(dir.join("leaderboard.csv")).expect("leaderboard.csv");
    let rows: Vec<Vec<&str>> = csv.lines().map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 3, "one row per configuration: {csv}");
    // The winner: a configuration whose trials differ only in their seed.
    let trials: Vec<&str> = rows[1][1].split(' ').collect();
    assert_eq!(trials.len(), 2, "{csv}");
    assert_eq!(rows[1][5], "2/2", "{csv}");
    let seeds: Vec<u64> = trials
        .iter()
        .map(|trial| {
            RunDir::new(dir.join(trial))
                .load_config()
                .expect("config")
                .seed
        })
        .collect();
    assert_eq!(seeds, [1, 2]);
    // Its validation accuracy is the median (here the mean) of its two trials'.
    let valid: Vec<f64> = trials
        .iter()
        .map(|trial| {
            RunDir::new(dir.join(trial))
                .load_info()
                .expect("run.json")
                .valid_accuracy
                .expect("scored")
        })
        .collect();
    let median: f64 = rows[1][3].parse().expect("accuracy");
    assert!(
        (median - (valid[0] + valid[1]) / 2.0).abs() < 0.006,
        "{csv} {valid:?}"
    );
    let best: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("best.json")).expect("best.json"))
            .expect("json");
    assert_eq!(
        best["test_accuracies"].as_array().map(Vec::len),
        Some(2),
        "{best}"
    );
}

#[test]
fn a_bad_sweep_file_or_setting_is_one_line() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let spec = tmp.path().join("bad.json");
    std::fs::write(&spec, r#"{"parameters": {"optimizer.nmae": ["sgd"]}}"#).expect("write");
    let line = assert_clean_failure(&trainer(&["sweep", "--config", path_str(&spec)]));
    assert!(line.contains("optimizer.nmae"), "{line}");
    let line = assert_clean_failure(&trainer(&["train", "--set", "lr"]));
    assert!(line.contains("KEY=VALUE"), "{line}");
    let line = assert_clean_failure(&trainer(&["train", "--set", "optimizer.name=rmsprop"]));
    assert!(line.contains("optimizer.name"), "{line}");
    let line = assert_clean_failure(&trainer(&["sweep", "--config", "no/such/sweep.json"]));
    assert!(line.contains("no/such/sweep.json"), "{line}");
}

#[test]
fn early_stopping_keeps_the_epoch_with_the_lowest_validation_loss() {
    let data_dir = mnist_dir();
    let tmp = tempfile::tempdir().expect("tempdir");
    let run_dir = tmp.path().join("run");
    // A small training set and a high rate overfit within a few epochs.
    let trained = train_with_cli(
        &data_dir,
        &run_dir,
        &[
            "--epochs",
            "12",
            "--limit-train",
            "1000",
            "--valid-size",
            "2000",
            "--lr",
            "0.01",
            "--patience",
            "2",
        ],
    );
    assert!(trained.status.success(), "{}", stderr(&trained));
    let run = RunDir::new(&run_dir);
    let epochs = run.load_metrics(usize::MAX).expect("metrics.csv");
    let best = epochs
        .iter()
        .min_by(|a, b| a.valid_loss.total_cmp(&b.valid_loss))
        .expect("epochs");
    assert!(
        epochs.len() < 12,
        "it should have stopped early: {epochs:?}"
    );
    assert_eq!(
        epochs.len(),
        best.epoch + 2,
        "stopped two epochs after the best"
    );
    assert!(
        stdout(&trained).contains("stopped early"),
        "{}",
        stdout(&trained)
    );
    assert_eq!(
        run.load_info().expect("run.json").kept_epoch,
        Some(best.epoch)
    );

    // The saved model is that epoch's: it scores that epoch's validation loss.
    let device = Device::flex();
    let (config, model) = run.load_model(&device).expect("model");
    let (mnist, split) = Mnist::load_split(
        Some(&data_dir),
        &config.split,
        config.limit_train,
        &config.data,
    )
    .expect("data");
    let (_, valid) = MnistDataset::train_valid(mnist.train, split.expect("split"));
    let scores = evaluate(&model, &valid, 1000, &device).expect("evaluates");
    assert!(
        (scores.loss - best.valid_loss).abs() < 1e-4,
        "model.bpk scores {} on validation, epoch {} scored {}",
        scores.loss,
        best.epoch,
        best.valid_loss
    );
}

#[test]
fn training_eval_and_explain_draw_pngs_of_the_promised_sizes() {
    let data_dir = mnist_dir();
    let tmp = tempfile::tempdir().expect("tempdir");
    let run_dir = tmp.path().join("run");
    common::train_quick_run_with_cli(&data_dir, &run_dir);
    assert_eq!(
        png_size(&run_dir.join("curves.png")),
        trainer::report::CURVES_SIZE
    );

    let evaluated = trainer(&["eval", "--run", path_str(&run_dir)]);
    assert!(evaluated.status.success(), "{}", stderr(&evaluated));
    let side = trainer::report::confusion_size(10);
    assert_eq!(png_size(&run_dir.join("confusion.png")), (side, side));

    let out = tmp.path().join("seven.png");
    let explained = trainer(&[
        "explain",
        "--run",
        path_str(&run_dir),
        "--test-index",
        "0",
        "--out",
        path_str(&out),
    ]);
    assert!(explained.status.success(), "{}", stderr(&explained));
    assert!(
        stdout(&explained).contains("(label 7): predicted"),
        "{}",
        stdout(&explained)
    );
    assert_eq!(png_size(&out), trainer::report::PICTURE_SIZE);
    assert_eq!(
        png_size(&run_dir.join("explain-test-0.png")),
        trainer::report::PICTURE_SIZE,
        "the run keeps a copy"
    );

    // An image file, drawn dark on light as people draw; the picture lands in the run.
    let test = MnistDataset::new(Mnist::load(Some(&data_dir)).expect("data").test);
    let digit = test.get(1).expect("test image 1");
    let inverted: Vec<u8> = digit.pixels.iter().map(|p| 255 - p).collect();
    let drawn = tmp.path().join("drawn.png");
    image::GrayImage::from_raw(28, 28, inverted)
        .expect("28x28")
        .save(&drawn)
        .expect("save png");
    let explained = trainer(&[
        "explain",
        "--run",
        path_str(&run_dir),
        "--image",
        path_str(&drawn),
    ]);
    assert!(explained.status.success(), "{}", stderr(&explained));
    assert_eq!(
        png_size(&run_dir.join("explain-drawn.png")),
        trainer::report::PICTURE_SIZE
    );
}

#[test]
fn optimizers_and_schedules_each_learn() {
    let data_dir = mnist_dir();
    let tmp = tempfile::tempdir().expect("tempdir");
    let variants: [&[&str]; 3] = [
        &[
            "optimizer.name=sgd",
            "lr=0.1",
            "lr_schedule.name=step",
            "lr_schedule.step_epochs=1",
            "lr_schedule.gamma=0.5",
        ],
        &[
            "optimizer.name=adamw",
            "optimizer.weight_decay=0.01",
            "lr=0.003",
            "lr_schedule.name=cosine",
            "lr_schedule.warmup_epochs=0.5",
        ],
        &[
            "optimizer.name=adam",
            "model.normalization=mnist",
            "model.dropout=0.1",
            "model.activation=gelu",
        ],
    ];
    for (index, settings) in variants.iter().enumerate() {
        let run_dir = tmp.path().join(format!("run-{index}"));
        let mut args = vec!["--epochs", "2", "--limit-train", "4000"];
        for setting in settings.iter() {
            args.extend(["--set", *setting]);
        }
        let trained = train_with_cli(&data_dir, &run_dir, &args);
        assert!(
            trained.status.success(),
            "{settings:?}: {}",
            stderr(&trained)
        );
        let info = RunDir::new(&run_dir).load_info().expect("run.json");
        let accuracy = info.test_accuracy.expect("tested");
        assert!(accuracy > 85.0, "{settings:?}: test accuracy {accuracy}");
        // Every setting reached the config the run trained with and saved.
        let saved: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(run_dir.join("config.json")).expect("config"),
        )
        .expect("json");
        for setting in settings.iter() {
            let (key, value) = setting.split_once('=').expect("k=v");
            let found = key.split('.').fold(&saved, |node, part| &node[part]);
            let wanted: serde_json::Value =
                serde_json::from_str(value).unwrap_or_else(|_| serde_json::Value::from(value));
            assert_eq!(found, &wanted, "{key} in {saved}");
        }
    }
}

/// A three-class data set of 12x12 images (a horizontal bar, a vertical bar, a
/// diagonal, each placed at random with noise), in gzipped IDX files named as
/// other data sets name theirs.
fn write_bars_dataset(dir: &Path) {
    use std::io::Write;
    let mut state = 12345u64;
    let mut next = move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 33) as usize
    };
    let mut make = |count: usize| {
        let mut pixels = Vec::with_capacity(count * 144);
        let mut labels = Vec::with_capacity(count);
        for i in 0..count {
            let class = i % 3;
            let offset = 2 + next() % 8;
            let mut image = [0u8; 144];
            for (p, pixel) in image.iter_mut().enumerate() {
                *pixel = (next() % 40) as u8;
                let (row, col) = (p / 12, p % 12);
                let on = match class {
                    0 => row == offset,
                    1 => col == offset,
                    _ => (row + 12 - col) % 12 == offset % 4,
                };
                if on {
                    *pixel = 200 + (next() % 56) as u8;
                }
            }
            pixels.extend(image);
            labels.push(class as u8);
        }
        (pixels, labels)
    };
    let idx = |magic: u32, dims: &[u32], payload: &[u8]| {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&common::idx(magic, dims, payload))
            .expect("gzip");
        gz.finish().expect("gzip")
    };
    let (train_pixels, train_labels) = make(600);
    let (test_pixels, test_labels) = make(90);
    let files = [
        (
            "bars-train-images-idx3-ubyte.gz",
            idx(0x803, &[600, 12, 12], &train_pixels),
        ),
        (
            "bars-train-labels-idx1-ubyte.gz",
            idx(0x801, &[600], &train_labels),
        ),
        (
            "bars-test-images-idx3-ubyte.gz",
            idx(0x803, &[90, 12, 12], &test_pixels),
        ),
        (
            "bars-test-labels-idx1-ubyte.gz",
            idx(0x801, &[90], &test_labels),
        ),
    ];
    for (name, bytes) in files {
        std::fs::write(dir.join(name), bytes).expect("write idx");
    }
}

#[test]
fn another_idx_data_set_trains_with_its_own_sizes_and_class_names() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data_dir = tmp.path().join("bars");
    std::fs::create_dir(&data_dir).expect("mkdir");
    write_bars_dataset(&data_dir);
    let run_dir = tmp.path().join("run");
    let trained = train_with_cli(
        &data_dir,
        &run_dir,
        &[
            "--epochs",
            "8",
            "--valid-size",
            "60",
            "--batch-size",
            "16",
            "--lr",
            "0.003",
            "--set",
            r#"class_names=["horizontal", "vertical", "diagonal"]"#,
        ],
    );
    assert!(trained.status.success(), "{}", stderr(&trained));
    let out = stdout(&trained);
    assert!(out.contains("of 12x12, 3 classes"), "{out}");
    assert!(out.contains("model 144-64-64-3"), "{out}");
    let info = RunDir::new(&run_dir).load_info().expect("run.json");
    let accuracy = info.test_accuracy.expect("tested");
    assert!(accuracy >= 90.0, "bars are easy: test accuracy {accuracy}");

    let evaluated = trainer(&["eval", "--run", path_str(&run_dir)]);
    assert!(evaluated.status.success(), "{}", stderr(&evaluated));
    assert!(
        stdout(&evaluated).contains("vertical:"),
        "{}",
        stdout(&evaluated)
    );
    let predicted = trainer(&["predict", "--run", path_str(&run_dir), "--test-index", "1"]);
    assert!(predicted.status.success(), "{}", stderr(&predicted));
    assert!(
        stdout(&predicted).contains("(label vertical): predicted vertical"),
        "{}",
        stdout(&predicted)
    );
    let explained = trainer(&["explain", "--run", path_str(&run_dir), "--test-index", "2"]);
    assert!(explained.status.success(), "{}", stderr(&explained));

    // Class names that do not match the data's classes are refused before training.
    let line = assert_clean_failure(&train_with_cli(
        &data_dir,
        &tmp.path().join("other"),
        &["--set", r#"class_names=["a", "b"]"#],
    ));
    assert!(line.contains("class_names"), "{line}");
}
