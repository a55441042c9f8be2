//! Bad input of every kind ends in one clear line on stderr and a non-zero exit.

use std::path::Path;

use burn::prelude::*;
use trainer::config::TrainingConfig;

use crate::common::{
    self, assert_clean_failure, path_str, stderr, stdout, tiny_args, tiny_mnist, tiny_run,
    tiny_run_after_one_epoch, trainer,
};

/// The one line with which `trainer predict` of the first test image fails, for a run
/// whose model cannot be used.
fn predict_failure(run: &Path) -> String {
    assert_clean_failure(&trainer(&[
        "predict",
        "--run",
        path_str(run),
        "--test-index",
        "0",
    ]))
}

/// The one line with which resuming `run` for a second epoch fails.
fn resume_failure(run: &Path) -> String {
    assert_clean_failure(&trainer(&[
        "--resume",
        "--run",
        path_str(run),
        "--epochs",
        "2",
    ]))
}

#[test]
fn missing_data_dir() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let missing = tmp.path().join("nowhere");
    let run = tmp.path().join("run");
    let line = assert_clean_failure(&trainer(&[
        "train",
        "--data-dir",
        path_str(&missing),
        "--run",
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
        "--run",
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
        "--run",
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
        "--run",
        path_str(run.root()),
        path_str(&image),
    ]));
    assert!(line.contains("digit.png"), "{line}");
    let line = assert_clean_failure(&trainer(&[
        "predict",
        "--run",
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
        "--run",
        path_str(&tmp.path().join("none")),
    ]));
    assert!(line.contains("config.json"), "{line}");

    let run = common::untrained_run(&tmp.path().join("run"));
    std::fs::write(run.model_path(), b"not a burnpack file").expect("write");
    let line = predict_failure(run.root());
    assert!(line.contains("model.bpk"), "{line}");
}

#[test]
fn an_existing_run_is_never_overwritten_silently() {
    let tmp = tempfile::tempdir().expect("tempdir");
    tiny_mnist(tmp.path(), false);
    let run = common::untrained_run(&tmp.path().join("run"));
    let before = std::fs::read(run.model_path()).expect("read model");
    let line = assert_clean_failure(&trainer(&tiny_args(tmp.path(), run.root())));
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
    assert!(line.contains("--run"), "{line}");
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
        let config = TrainingConfig::new()
            .with_model(model::NetworkConfig::new().with_hidden_sizes(vec![16]));
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
        let line = predict_failure(run.root());
        assert!(line.contains("model.bpk"), "{what}: {line}");
    }
}

#[test]
fn an_unwritable_artifacts_directory() {
    let tmp = tempfile::tempdir().expect("tempdir");
    tiny_mnist(tmp.path(), false);
    let blocker = tmp.path().join("a-file");
    std::fs::write(&blocker, b"x").expect("write");
    let line = assert_clean_failure(&trainer(&tiny_args(tmp.path(), &blocker.join("run"))));
    assert!(line.contains("a-file"), "{line}");
}

#[test]
fn a_resumed_run_keeps_its_config_unless_forked() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let run = tiny_run(tmp.path());
    let config_before = std::fs::read(run.join("config.json")).expect("config");
    let resume = |extra: &[&str]| {
        let mut args = vec!["--resume", "--run", path_str(&run), "--epochs", "2"];
        args.extend(extra);
        trainer(&args)
    };
    let line = assert_clean_failure(&resume(&[
        "--valid-size",
        "10",
        "--seed",
        "9",
        "--lr",
        "0.5",
    ]));
    for change in [
        "lr (saved 0.001, asked 0.5)",
        "seed (saved 42, asked 9)",
        "split.valid_size (saved 5, asked 10)",
        "--fork",
    ] {
        assert!(line.contains(change), "{change}: {line}");
    }
    let line = assert_clean_failure(&resume(&["--set", "batch_size=7"]));
    assert!(line.contains("batch_size (saved 64, asked 7)"), "{line}");
    assert_eq!(
        std::fs::read(run.join("config.json")).expect("config"),
        config_before
    );

    let fork = tmp.path().join("fork");
    let forked = resume(&["--batch-size", "7", "--fork", path_str(&fork)]);
    assert!(forked.status.success(), "{}", common::stderr(&forked));
    assert!(common::stdout(&forked).contains("resuming after epoch 1"));
    let saved = TrainingConfig::from_file(&fork.join("config.json")).expect("fork config");
    assert_eq!((saved.batch_size, saved.epochs), (7, 2));
    assert_eq!(
        std::fs::read(run.join("config.json")).expect("config"),
        config_before
    );
    assert!(
        !run.join("checkpoint/model-2.bpk").exists(),
        "the original trains no further"
    );

    let more = resume(&[]);
    assert!(
        more.status.success(),
        "--epochs alone extends the run: {}",
        common::stderr(&more)
    );
}

#[test]
fn damaged_run_files_are_named_never_replaced() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let run = tiny_run(tmp.path());
    std::fs::write(run.join("run.json"), "garbage").expect("write");
    let line = assert_clean_failure(&trainer(&["eval", "--run", path_str(&run)]));
    assert!(
        line.contains("run.json") && line.contains("damaged"),
        "{line}"
    );
    let line = resume_failure(&run);
    assert!(line.contains("run.json"), "{line}");

    let (_keep, run) = common::tiny_run_after_one_epoch();
    std::fs::write(run.join("metrics.csv"), "garbage\n").expect("write");
    let line = resume_failure(&run);
    assert!(line.contains("metrics.csv"), "{line}");
    assert_eq!(
        std::fs::read_to_string(run.join("metrics.csv")).expect("kept"),
        "garbage\n"
    );
    std::fs::write(run.join("config.json"), "{").expect("write");
    let line = assert_clean_failure(&trainer(&["eval", "--run", path_str(&run)]));
    assert!(line.contains("config.json"), "{line}");
}

#[test]
fn limits_are_checked_before_anything_is_allocated_or_created() {
    let tmp = tempfile::tempdir().expect("tempdir");
    tiny_mnist(tmp.path(), false);
    let run = tmp.path().join("huge");
    let line = assert_clean_failure(&trainer(&[
        "--data-dir",
        path_str(tmp.path()),
        "--run",
        path_str(&run),
        "--set",
        "model.hidden_sizes=[100000000]",
    ]));
    assert!(
        line.contains("model.hidden_sizes") && line.contains("MB of memory"),
        "{line}"
    );
    assert!(!run.exists(), "nothing is left to block the next run");
    let line = assert_clean_failure(&trainer(&[
        "--data-dir",
        path_str(tmp.path()),
        "--run",
        path_str(&run),
        "--valid-size",
        "0",
    ]));
    assert!(line.contains("split.valid_size"), "{line}");
}

#[test]
fn messages_name_what_is_wrong_without_internal_names() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let run = tiny_run(tmp.path());
    let file = tmp.path().join("afile");
    std::fs::write(&file, "x").expect("write");

    let line = assert_clean_failure(&trainer(&[
        "--data-dir",
        path_str(tmp.path()),
        "--run",
        path_str(&file),
    ]));
    assert!(line.contains("afile is a file, not a directory"), "{line}");
    let line = assert_clean_failure(&trainer(&[
        "--data-dir",
        path_str(&file),
        "--run",
        path_str(&tmp.path().join("r2")),
    ]));
    assert!(
        line.contains("is a file, not a directory") && !line.contains("does not exist"),
        "{line}"
    );

    let missing = tmp.path().join("missing").join("x.png");
    let line = assert_clean_failure(&trainer(&[
        "explain",
        "--run",
        path_str(&run),
        "--test-index",
        "0",
        "--out",
        path_str(&missing),
    ]));
    assert!(
        line.contains("missing/x.png") && !line.contains("missing/.tmp"),
        "{line}"
    );
    let line = assert_clean_failure(&common::export(&run, "safetensors", &missing));
    assert!(
        line.contains("create it first") && !line.contains("missing/.tmp"),
        "{line}"
    );

    let line = assert_clean_failure(&trainer(&[
        "--data-dir",
        path_str(tmp.path()),
        "--run",
        path_str(&tmp.path().join("r3")),
        "--set",
        "model=[1]",
    ]));
    assert!(!line.contains("Serde"), "{line}");

    let wide = tmp.path().join("wide.png");
    image::GrayImage::new(9000, 4).save(&wide).expect("png");
    let line = assert_clean_failure(&trainer(&[
        "predict",
        "--run",
        path_str(&run),
        path_str(&wide),
    ]));
    assert!(line.contains("8192x8192"), "{line}");

    let line = assert_clean_failure(&common::import(&file, &file, &[]));
    assert!(line.contains("is a file, not a directory"), "{line}");
}

#[cfg(unix)]
#[test]
fn every_output_file_is_readable_by_all() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().expect("tempdir");
    let run = tiny_run(tmp.path());
    let out = tmp.path().join("net.safetensors");
    let exported = common::export(&run, "safetensors", &out);
    assert!(exported.status.success(), "{}", common::stderr(&exported));
    for path in [
        out,
        run.join("config.json"),
        run.join("model.bpk"),
        run.join("metrics.csv"),
    ] {
        let mode = std::fs::metadata(&path).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode, 0o644, "{}", path.display());
    }
}

#[test]
fn the_run_flags_old_spellings_still_work_and_a_file_in_a_run_names_the_run() {
    let (tmp, run) = tiny_run_after_one_epoch();
    let data = path_str(tmp.path());
    for (flag, target) in [
        ("--model", run.clone()),
        ("--run", run.join("model.bpk")),
        ("--run", run.join("config.json")),
    ] {
        let summary = trainer(&["summary", flag, path_str(&target)]);
        assert!(
            summary.status.success(),
            "{flag} {target:?}: {}",
            stderr(&summary)
        );
        let eval = trainer(&["eval", flag, path_str(&target), "--data-dir", data]);
        assert!(
            eval.status.success(),
            "{flag} {target:?}: {}",
            stderr(&eval)
        );
    }
    let again = tmp.path().join("again");
    let old = trainer(&[
        "--data-dir",
        data,
        "--artifacts",
        path_str(&again),
        "--valid-size",
        "5",
        "--epochs",
        "1",
    ]);
    assert!(old.status.success(), "{}", stderr(&old));
    assert!(again.join("model.bpk").is_file());
}

#[test]
fn usage_errors_point_to_the_subcommands_help() {
    let line = assert_clean_failure(&trainer(&["eval", "--modle", "x"]));
    assert!(line.ends_with("see `trainer eval --help`"), "{line}");
    let line = assert_clean_failure(&trainer(&["--epoch", "3"]));
    assert!(line.ends_with("see `trainer --help`"), "{line}");
}

#[test]
fn version_names_the_backend_and_completions_and_the_man_page_are_printed() {
    let version = stdout(&trainer(&["--version"]));
    assert!(
        version.starts_with("trainer 0.1.0 (flex backend, commit "),
        "{version}"
    );
    let bash = trainer(&["completions", "bash"]);
    assert!(bash.status.success() && stdout(&bash).contains("complete -F _trainer"));
    let man = stdout(&trainer(&["man"]));
    assert!(
        man.contains(".TH trainer 1") && man.contains("predict"),
        "{man}"
    );
}

#[test]
fn a_config_or_sweep_file_that_names_a_key_twice_is_one_line() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let config = tmp.path().join("twice.json");
    std::fs::write(&config, "{\"lr\": 0.1,\n \"epochs\": 2,\n \"lr\": 0.001}").expect("write");
    let line = assert_clean_failure(&trainer(&["summary", "--config", path_str(&config)]));
    assert!(
        line.contains("`lr` is given twice") && line.contains("line 3"),
        "{line}"
    );
    let sweep = tmp.path().join("sweep.json");
    std::fs::write(
        &sweep,
        r#"{"method": "grid", "parameters": {"lr": [0.1]}, "method": "random"}"#,
    )
    .expect("write");
    let line = assert_clean_failure(&trainer(&["sweep", "--config", path_str(&sweep), "--plan"]));
    assert!(line.contains("`method` is given twice"), "{line}");
}
