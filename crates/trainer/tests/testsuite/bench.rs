//! `trainer bench` prints one JSON object on stdout, with every measurement the
//! comparison with PyTorch needs (its values are checked for sense, not for speed).

use crate::common::{mnist_dir, path_str, stderr, stdout, trainer};

#[test]
fn bench_prints_one_json_object_with_every_measurement() {
    let data_dir = mnist_dir();
    let started = std::time::Instant::now();
    let output = trainer(&["bench", "--data-dir", path_str(&data_dir), "--epochs", "1"]);
    let wall = started.elapsed().as_secs_f64();
    assert!(output.status.success(), "{}", stderr(&output));
    let out = stdout(&output);
    assert_eq!(out.lines().count(), 1, "stdout holds the JSON alone: {out}");
    let report: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(report["implementation"], "burn-flex");
    assert_eq!(report["network"], "784-64-64-10");
    assert_eq!(report["epochs"], 1);
    let positive = [
        "epoch_seconds",
        "train_images_per_second",
        "eval_images_per_second",
        "batch1_latency_median_us",
        "batch1_latency_p99_us",
        "startup_to_first_step_seconds",
        "data_load_seconds",
        "peak_rss_mb",
    ];
    for key in positive {
        let value = report[key]
            .as_f64()
            .unwrap_or_else(|| panic!("{key}: {report}"));
        assert!(value.is_finite() && value > 0.0, "{key} = {value}");
    }
    let number = |key: &str| report[key].as_f64().expect("number");
    // The measured parts fit inside the command's own run time: a rate or a time
    // computed in the wrong unit would not.
    assert!(
        number("epoch_seconds") + number("data_load_seconds") < wall,
        "{report}"
    );
    assert!(
        55_000.0 / number("train_images_per_second") < wall,
        "{report}"
    );
    assert!(
        10_000.0 / number("eval_images_per_second") < wall,
        "{report}"
    );
    assert!(number("startup_to_first_step_seconds") < wall, "{report}");
    // One image is ~55k multiply-adds (fewer with the blank pixels skipped): well
    // over 0.05 us on any CPU, and far below a second, so microseconds it is.
    let p99_seconds = number("batch1_latency_p99_us") * 1e-6;
    assert!(
        number("batch1_latency_median_us") >= 0.05 && p99_seconds < wall,
        "{report}"
    );
    // The data alone (47 MB of training pixels, 8 MB of test pixels) is resident.
    assert!((55.0..2000.0).contains(&number("peak_rss_mb")), "{report}");
    assert!(
        report["test_accuracy"].as_f64().expect("number") > 85.0,
        "{report}"
    );
    // The training lines went to stderr.
    assert!(stderr(&output).contains("epoch 1/1"), "{}", stderr(&output));
}

#[test]
fn bench_times_the_configuration_it_is_given() {
    let data_dir = mnist_dir();
    let tmp = tempfile::tempdir().expect("tempdir");
    let config = tmp.path().join("small-cnn.json");
    std::fs::write(
        &config,
        r#"{"model": {"kind": "cnn", "conv": [{"channels": 4, "kernel_size": 3, "padding": 1, "pool": 2}],
                      "hidden_sizes": [16]},
            "limit_train": 2000, "epochs": 7}"#,
    )
    .expect("write config");
    let output = trainer(&[
        "bench",
        "--config",
        path_str(&config),
        "--data-dir",
        path_str(&data_dir),
        "--epochs",
        "1",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let report: serde_json::Value = serde_json::from_str(&stdout(&output)).expect("JSON");
    assert_eq!(report["epochs"], 1, "--epochs wins over the file: {report}");
    let network = report["network"].as_str().expect("network");
    assert_eq!(network, "conv4k3+pool2-784-16-10", "{report}");
    let missing = trainer(&["bench", "--config", "no/such.json"]);
    assert!(!missing.status.success());
    assert!(
        stderr(&missing).contains("no/such.json"),
        "{}",
        stderr(&missing)
    );
}
