//! Bad input of every kind ends in one clear line on stderr and a non-zero exit.

mod common;

use burn::prelude::*;
use common::{assert_clean_failure, path_str, tiny_mnist, trainer};
use trainer::config::TrainingConfig;

#[test]
fn missing_data_dir() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let missing = tmp.path().join("nowhere");
    let run = tmp.path().join("run");
    let line = assert_clean_failure(&trainer(&[
        "train",
        "--data-dir",
        path_str(&missing),
        "--artifacts",
        path_str(&run),
        "--epochs",
        "1",
    ]));
    assert!(
        line.contains("nowhere") && line.contains("--data-dir"),
        "{line}"
    );
    assert!(
        !run.exists(),
        "a failed start must not create the run directory"
    );
}

#[test]
fn corrupt_idx_file() {
    let tmp = tempfile::tempdir().expect("tempdir");
    tiny_mnist(tmp.path(), true);
    let line = assert_clean_failure(&trainer(&[
        "--data-dir",
        path_str(tmp.path()),
        "--artifacts",
        path_str(&tmp.path().join("run")),
    ]));
    assert!(
        line.contains("train-images-idx3-ubyte") && line.contains("truncated"),
        "{line}"
    );
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
    let line = assert_clean_failure(&trainer(&[
        "--data-dir",
        data,
        "--config",
        path_str(&config),
    ]));
    assert!(line.contains("hidden_sizes"), "{line}");
    std::fs::write(&config, r#"{"learning_rate": 0.1}"#).expect("write");
    let line = assert_clean_failure(&trainer(&[
        "--data-dir",
        data,
        "--config",
        path_str(&config),
    ]));
    assert!(line.contains("learning_rate"), "{line}");
    let line = assert_clean_failure(&trainer(&[
        "--config",
        path_str(&tmp.path().join("none.json")),
    ]));
    assert!(line.contains("none.json"), "{line}");
}

#[test]
fn data_that_does_not_fit_the_model() {
    let tmp = tempfile::tempdir().expect("tempdir");
    tiny_mnist(tmp.path(), false);
    let config = tmp.path().join("small.json");
    std::fs::write(&config, r#"{"num_classes": 5, "split": {"valid_size": 5}}"#).expect("write");
    let line = assert_clean_failure(&trainer(&[
        "--data-dir",
        path_str(tmp.path()),
        "--config",
        path_str(&config),
        "--artifacts",
        path_str(&tmp.path().join("run")),
    ]));
    assert!(
        line.contains("labels up to 9") && line.contains("num_classes"),
        "{line}"
    );
}

#[test]
fn unreadable_image() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let run = common::untrained_run(&tmp.path().join("run"));
    let image = tmp.path().join("digit.png");
    std::fs::write(&image, b"garbage").expect("write");
    let line = assert_clean_failure(&trainer(&[
        "predict",
        "--model",
        path_str(run.root()),
        path_str(&image),
    ]));
    assert!(line.contains("digit.png"), "{line}");
    let line = assert_clean_failure(&trainer(&[
        "predict",
        "--model",
        path_str(run.root()),
        path_str(&tmp.path().join("absent.png")),
    ]));
    assert!(line.contains("absent.png"), "{line}");
}

#[test]
fn missing_or_damaged_model() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let line = assert_clean_failure(&trainer(&[
        "eval",
        "--model",
        path_str(&tmp.path().join("none")),
    ]));
    assert!(line.contains("config.json"), "{line}");

    let run = common::untrained_run(&tmp.path().join("run"));
    std::fs::write(run.model_path(), b"not a burnpack file").expect("write");
    let line = assert_clean_failure(&trainer(&[
        "predict",
        "--model",
        path_str(run.root()),
        "--test-index",
        "0",
    ]));
    assert!(line.contains("model.bpk"), "{line}");
}

#[test]
fn an_existing_run_is_never_overwritten_silently() {
    let tmp = tempfile::tempdir().expect("tempdir");
    tiny_mnist(tmp.path(), false);
    let run = common::untrained_run(&tmp.path().join("run"));
    let before = std::fs::read(run.model_path()).expect("read model");
    let line = assert_clean_failure(&trainer(&[
        "--data-dir",
        path_str(tmp.path()),
        "--artifacts",
        path_str(run.root()),
        "--valid-size",
        "5",
    ]));
    assert!(
        line.contains("--resume") && line.contains("--overwrite"),
        "{line}"
    );
    assert_eq!(std::fs::read(run.model_path()).expect("read model"), before);
}

#[test]
fn bad_flags_are_one_line_too() {
    let line = assert_clean_failure(&trainer(&["--epochs", "-1"]));
    assert!(line.contains("--epochs"), "{line}");
    let line = assert_clean_failure(&trainer(&["eval"]));
    assert!(line.contains("--model"), "{line}");
    let line = assert_clean_failure(&trainer(&["--no-such-flag"]));
    assert!(line.contains("--no-such-flag"), "{line}");
}

#[test]
fn config_files_with_wrong_types_or_sizes() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let config = tmp.path().join("c.json");
    let cases = [
        (r#"{"epochs": "five"}"#, "epochs"),
        (r#"{"epochs": -1}"#, "epochs"),
        (r#"{"batch_size": 0}"#, "batch_size"),
        (r#"{"lr": 0}"#, "lr"),
        (r#"{"model": {"num_classes": 1}}"#, "num_classes"),
        (r#"{"model": {"hidden_sizes": "64"}}"#, "hidden_sizes"),
        (r#"[1, 2]"#, "object"),
        ("", "c.json"),
    ];
    for (json, named) in cases {
        std::fs::write(&config, json).expect("write");
        let line = assert_clean_failure(&trainer(&["--config", path_str(&config)]));
        assert!(line.contains(named), "{json}: {line}");
    }
}

#[test]
fn damaged_model_files_of_every_kind() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let run = common::untrained_run(&tmp.path().join("run"));
    let intact = std::fs::read(run.model_path()).expect("read");
    let other_network = {
        let other = common::untrained_run(&tmp.path().join("other"));
        let config =
            TrainingConfig::new().with_model(model::MlpConfig::new().with_hidden_sizes(vec![16]));
        other
            .save_model(&config.model.init(&Device::flex()))
            .expect("save");
        std::fs::read(other.model_path()).expect("read")
    };
    let cases: [(&str, Vec<u8>); 4] = [
        ("truncated", intact[..1000].to_vec()),
        ("zero-length", Vec::new()),
        (
            "garbage",
            b"\x00\x01 this is not a burnpack file at all".repeat(50),
        ),
        ("another network", other_network),
    ];
    for (what, bytes) in cases {
        std::fs::write(run.model_path(), bytes).expect("write");
        let line = assert_clean_failure(&trainer(&[
            "predict",
            "--model",
            path_str(run.root()),
            "--test-index",
            "0",
        ]));
        assert!(line.contains("model.bpk"), "{what}: {line}");
    }
}

#[test]
fn an_unwritable_artifacts_directory() {
    let tmp = tempfile::tempdir().expect("tempdir");
    tiny_mnist(tmp.path(), false);
    let blocker = tmp.path().join("a-file");
    std::fs::write(&blocker, b"x").expect("write");
    let line = assert_clean_failure(&trainer(&[
        "--data-dir",
        path_str(tmp.path()),
        "--valid-size",
        "5",
        "--artifacts",
        path_str(&blocker.join("run")),
    ]));
    assert!(line.contains("a-file"), "{line}");
}
