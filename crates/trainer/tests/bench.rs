//! `trainer bench` prints one JSON object on stdout, with every measurement the
//! comparison with PyTorch needs (its values are checked for sense, not for speed).

mod common;

use common::{mnist_dir, path_str, stderr, stdout, trainer};

#[test]
fn bench_prints_one_json_object_with_every_measurement() {
    let Some(data_dir) = mnist_dir() else { return };
    let output = trainer(&["bench", "--data-dir", path_str(&data_dir), "--epochs", "1"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let out = stdout(&output);
    assert_eq!(out.lines().count(), 1, "stdout holds the JSON alone: {out}");
    let report: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(report["implementation"], "burn-flex");
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
    let images_per_second = report["train_images_per_second"].as_f64().expect("number");
    let epoch_seconds = report["epoch_seconds"].as_f64().expect("number");
    assert!(
        (images_per_second * epoch_seconds - 55_000.0).abs() < 1.0,
        "55,000 training images per epoch: {report}"
    );
    assert!(
        report["batch1_latency_p99_us"].as_f64() >= report["batch1_latency_median_us"].as_f64()
    );
    assert!(
        report["test_accuracy"].as_f64().expect("number") > 85.0,
        "{report}"
    );
    // The training lines went to stderr.
    assert!(stderr(&output).contains("epoch 1/1"), "{}", stderr(&output));
}
