//! Bad input of every kind ends in one clear line on stderr and a non-zero exit.

mod common;

use std::path::Path;

use burn::prelude::*;
use common::{assert_clean_failure, path_str, trainer};
use trainer::config::TrainingConfig;
use trainer::run_dir::RunDir;

/// A run directory with an untrained model, enough for `predict` to get to the image.
fn untrained_run(dir: &Path) -> RunDir {
    let run = RunDir::new(dir);
    run.create().expect("create run dir");
    let config = TrainingConfig::new();
    run.save_config(&config).expect("save config");
    run.save_model(&config.model.init(&Device::flex())).expect("save model");
    run
}

/// Four tiny IDX files in `dir`; `corrupt` truncates the training images.
fn tiny_mnist(dir: &Path, corrupt: bool) {
    let idx = |magic: u32, dims: &[u32], payload: &[u8]| {
        let mut bytes = magic.to_be_bytes().to_vec();
        dims.iter().for_each(|d| bytes.extend(d.to_be_bytes()));
        bytes.extend(payload);
        bytes
    };
    let mut train_images = idx(0x803, &[20, 28, 28], &[0; 20 * 784]);
    if corrupt {
        train_images.truncate(train_images.len() - 100);
    }
    let files = [
        ("train-images-idx3-ubyte", train_images),
        ("train-labels-idx1-ubyte", idx(0x801, &[20], &[1; 20])),
        ("t10k-images-idx3-ubyte", idx(0x803, &[5, 28, 28], &[0; 5 * 784])),
        ("t10k-labels-idx1-ubyte", idx(0x801, &[5], &[1; 5])),
    ];
    for (name, bytes) in files {
        std::fs::write(dir.join(name), bytes).expect("write idx");
    }
}

#[test]
fn missing_data_dir() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let missing = tmp.path().join("nowhere");
    let run = tmp.path().join("run");
    let line = assert_clean_failure(&trainer(&[
        "train", "--data-dir", path_str(&missing), "--artifacts", path_str(&run), "--epochs", "1",
    ]));
    assert!(line.contains("nowhere") && line.contains("--data-dir"), "{line}");
    assert!(!run.exists(), "a failed start must not create the run directory");
}

#[test]
fn corrupt_idx_file() {
    let tmp = tempfile::tempdir().expect("tempdir");
    tiny_mnist(tmp.path(), true);
    let line = assert_clean_failure(&trainer(&[
        "--data-dir", path_str(tmp.path()), "--artifacts", path_str(&tmp.path().join("run")),
    ]));
    assert!(line.contains("train-images-idx3-ubyte") && line.contains("truncated"), "{line}");
}

#[test]
fn bad_config_values_on_the_command_line_and_in_a_file() {
    let tmp = tempfile::tempdir().expect("tempdir");
    tiny_mnist(tmp.path(), false);
    let data = path_str(tmp.path());
    let line = assert_clean_failure(&trainer(&["--data-dir", data, "--batch-size", "0"]));
    assert!(line.contains("batch_size"), "{line}");
    let line = assert_clean_failure(&trainer(&["--data-dir", data, "--lr", "-0.1"]));
    assert!(line.contains("lr"), "{line}");

    let config = tmp.path().join("bad.json");
    std::fs::write(&config, r#"{"model": {"hidden_sizes": [64, 0]}}"#).expect("write");
    let line = assert_clean_failure(&trainer(&["--data-dir", data, "--config", path_str(&config)]));
    assert!(line.contains("hidden_sizes"), "{line}");
    std::fs::write(&config, r#"{"learning_rate": 0.1}"#).expect("write");
    let line = assert_clean_failure(&trainer(&["--data-dir", data, "--config", path_str(&config)]));
    assert!(line.contains("learning_rate"), "{line}");
    let line = assert_clean_failure(&trainer(&["--config", path_str(&tmp.path().join("none.json"))]));
    assert!(line.contains("none.json"), "{line}");
}

#[test]
fn data_that_does_not_fit_the_model() {
    let tmp = tempfile::tempdir().expect("tempdir");
    tiny_mnist(tmp.path(), false);
    let config = tmp.path().join("small.json");
    std::fs::write(&config, r#"{"model": {"input_size": 100}, "split": {"valid_size": 5}}"#).expect("write");
    let line = assert_clean_failure(&trainer(&[
        "--data-dir", path_str(tmp.path()), "--config", path_str(&config),
        "--artifacts", path_str(&tmp.path().join("run")),
    ]));
    assert!(line.contains("input_size"), "{line}");
}

#[test]
fn unreadable_image() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let run = untrained_run(&tmp.path().join("run"));
    let image = tmp.path().join("digit.png");
    std::fs::write(&image, b"garbage").expect("write");
    let line = assert_clean_failure(&trainer(&[
        "predict", "--model", path_str(run.root()), path_str(&image),
    ]));
    assert!(line.contains("digit.png"), "{line}");
    let line = assert_clean_failure(&trainer(&[
        "predict", "--model", path_str(run.root()), path_str(&tmp.path().join("absent.png")),
    ]));
    assert!(line.contains("absent.png"), "{line}");
}

#[test]
fn missing_or_damaged_model() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let line = assert_clean_failure(&trainer(&["eval", "--model", path_str(&tmp.path().join("none"))]));
    assert!(line.contains("config.json"), "{line}");

    let run = untrained_run(&tmp.path().join("run"));
    std::fs::write(run.model_path(), b"not a burnpack file").expect("write");
    let line = assert_clean_failure(&trainer(&["predict", "--model", path_str(run.root()), "--test-index", "0"]));
    assert!(line.contains("model.bpk"), "{line}");
}

#[test]
fn an_existing_run_is_never_overwritten_silently() {
    let tmp = tempfile::tempdir().expect("tempdir");
    tiny_mnist(tmp.path(), false);
    let run = untrained_run(&tmp.path().join("run"));
    let before = std::fs::read(run.model_path()).expect("read model");
    let line = assert_clean_failure(&trainer(&[
        "--data-dir", path_str(tmp.path()), "--artifacts", path_str(run.root()), "--valid-size", "5",
    ]));
    assert!(line.contains("--resume") && line.contains("--overwrite"), "{line}");
    assert_eq!(std::fs::read(run.model_path()).expect("read model"), before);
}
