//! `trainer export --format onnx` checked by real ONNX runtimes: the onnx package's
//! checker and onnxruntime (tests/python/onnx_check.py), and tract in-process, on the
//! 10,000 test images, for the tutorial's network and for a deeper GELU network with
//! MNIST standardisation.

use std::path::Path;
use std::process::Command;

use burn::data::dataset::Dataset;
use burn::prelude::Device;
use data::{Mnist, MnistBatcher, MnistDataset};
use tract_onnx::prelude::{Framework, InferenceModelExt, IntoRunnable, tract_ndarray, tvec};
use trainer::run_dir::RunDir;

use crate::common::{self, argmax, assert_clean_failure, export, mnist_dir, stdout};

/// Logits of the runtimes may differ from Burn's by float32 rounding only: measured
/// differences are about 1e-6.
pub(crate) const LOGIT_TOLERANCE: f64 = 1e-5;
/// Rows per onnxruntime call: not a power of two, so the last batch is a partial one.
const BATCH: usize = 999;

/// Trains a quick run through the binary with `settings` and exports it as ONNX.
fn trained_and_exported(data_dir: &Path, dir: &Path, settings: &[&str]) -> std::path::PathBuf {
    let run = dir.join("run");
    let mut args = vec!["--epochs", "1", "--limit-train", "3000", "--no-test"];
    for setting in settings {
        args.extend(["--set", setting]);
    }
    let trained = common::train_with_cli(data_dir, &run, &args);
    assert!(trained.status.success(), "{}", common::stderr(&trained));
    let out = dir.join("model.onnx");
    let exported = export(&run, "onnx", &out);
    assert!(exported.status.success(), "{}", common::stderr(&exported));
    assert!(
        stdout(&exported).contains("model.onnx"),
        "{}",
        stdout(&exported)
    );
    out
}

/// The test images as the network takes them and the logits Burn computes for them,
/// each as float32 rows.
fn burn_logits(data_dir: &Path, run: &Path) -> (Vec<f32>, Vec<f32>, usize) {
    let device = Device::flex();
    let (_, model) = RunDir::new(run).load_model(&device).expect("loads");
    let test = MnistDataset::new(Mnist::load(Some(data_dir)).expect("data").test);
    let positions: Vec<usize> = (0..test.len()).collect();
    let images = MnistBatcher
        .gather(&test, &positions, &device)
        .expect("in range")
        .images;
    let logits = model.forward(images.clone());
    let classes = logits.dims()[1];
    (
        images.try_into_vec_as::<f32>().expect("f32"),
        logits.try_into_vec_as::<f32>().expect("f32"),
        classes,
    )
}

fn write_f32(path: &Path, values: &[f32]) {
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(path, bytes).expect("write rows");
}

/// Runs the model with tract on the first `rows` images of `width` pixels; the largest
/// difference from the `expected` logits.
pub(crate) fn tract_difference(
    model: &Path,
    images: &[f32],
    width: usize,
    expected: &[f32],
    rows: usize,
) -> f64 {
    let plan = tract_onnx::onnx()
        .model_for_path(model)
        .expect("tract reads the model")
        .into_optimized()
        .expect("tract optimises it")
        .into_runnable()
        .expect("tract plans it");
    let input =
        tract_ndarray::Array2::from_shape_vec((rows, width), images[..rows * width].to_vec())
            .expect("shape");
    let outputs = plan
        .run(tvec!(tract_onnx::prelude::Tensor::from(input).into()))
        .expect("tract runs");
    let logits = outputs[0].to_plain_array_view::<f32>().expect("f32 logits");
    logits
        .iter()
        .zip(expected)
        .map(|(a, b)| f64::from((a - b).abs()))
        .fold(0.0, f64::max)
}

/// The networks exported: an MLP, a CNN and a deeper MLP with GELU and an input
/// standardisation, each with its architecture and the settings that make it.
const CASES: [(&str, &[&str]); 3] = [
    ("784-64-64-10", &[]),
    (
        "conv4k3bn+pool2-conv8k5+pool2-200-16-10",
        &[
            "model.kind=cnn",
            r#"model.conv=[{"channels": 4, "batch_norm": true, "pool": 2}, {"channels": 8, "kernel_size": 5, "padding": 0, "pool": 2}]"#,
            "model.hidden_sizes=[16]",
            "model.normalization=mnist",
        ],
    ),
    (
        "784-100-37-20-10",
        &[
            "model.hidden_sizes=[100,37,20]",
            "model.activation=gelu",
            "model.normalization=mnist",
        ],
    ),
];

#[test]
fn tract_computes_the_trainers_logits() {
    let data_dir = mnist_dir();
    for (architecture, settings) in CASES {
        let tmp = tempfile::tempdir().expect("tempdir");
        let model = trained_and_exported(&data_dir, tmp.path(), settings);
        let (images, logits, classes) = burn_logits(&data_dir, &tmp.path().join("run"));
        let rows = logits.len() / classes;
        assert_eq!(rows, 10_000);

        let width = images.len() / rows;
        let tract = tract_difference(&model, &images, width, &logits[..BATCH * classes], BATCH);
        println!(
            "{architecture}: tract vs Burn on {BATCH} images: max |logit difference| {tract:.3e}"
        );
        assert!(tract <= LOGIT_TOLERANCE, "tract differs by {tract}");
    }
}

#[test]
#[ignore = "needs a Python with tests/python/requirements.txt (.ci/run makes tests/python/.venv); run with --ignored"]
fn onnxruntime_computes_the_trainers_logits_and_reads_the_models_metadata() {
    let data_dir = mnist_dir();
    let python = common::python();
    for (architecture, settings) in CASES {
        let tmp = tempfile::tempdir().expect("tempdir");
        let model = trained_and_exported(&data_dir, tmp.path(), settings);
        let (images, logits, classes) = burn_logits(&data_dir, &tmp.path().join("run"));
        let (images_file, logits_file) =
            (tmp.path().join("images.f32"), tmp.path().join("logits.f32"));
        write_f32(&images_file, &images);
        write_f32(&logits_file, &logits);
        let output = Command::new(&python)
            .arg(common::python_script("onnx_check.py"))
            .args([&model, &images_file, &logits_file])
            .arg(BATCH.to_string())
            .output()
            .expect("python runs");
        assert!(output.status.success(), "{}", common::stderr(&output));
        let report: serde_json::Value =
            serde_json::from_slice(&output.stdout).expect("one JSON line");
        let difference = report["max_abs_diff"].as_f64().expect("a number");
        println!(
            "{architecture}: onnxruntime vs Burn on 10,000 images: max |logit difference| {difference:.3e}"
        );
        assert!(
            difference <= LOGIT_TOLERANCE,
            "onnxruntime differs by {difference}"
        );
        let predictions: Vec<usize> =
            serde_json::from_value(report["predictions"].clone()).expect("predictions");
        assert_eq!(
            predictions,
            logits.chunks(classes).map(argmax).collect::<Vec<_>>()
        );
        assert_eq!(
            report["input"],
            serde_json::json!(["pixels", ["batch", 784]])
        );
        assert_eq!(
            report["output"],
            serde_json::json!(["logits", ["batch", 10]])
        );
        assert!(report["ir_version"].as_i64() >= Some(8), "{report}");
        assert!(report["opset"][""].as_i64() >= Some(17), "{report}");
        assert_eq!(report["producer"][0], "mnist-burn trainer");
        assert_eq!(report["metadata"]["architecture"], architecture);
        let config: serde_json::Value =
            serde_json::from_str(report["metadata"]["config"].as_str().expect("config"))
                .expect("the run's config as JSON");
        assert_eq!(config["model"]["input_size"], 784);
        let ops = report["ops"].to_string();
        if architecture.starts_with("conv") {
            assert_eq!(
                report["ops"],
                serde_json::json!([
                    "Sub", "Div", "Reshape", "Conv", "Relu", "MaxPool", "Conv", "Relu", "MaxPool",
                    "Flatten", "Gemm", "Relu", "Gemm"
                ])
            );
        } else if settings.is_empty() {
            assert!(ops.contains("Relu") && !ops.contains("Sub"), "{ops}");
        } else {
            assert!(
                ops.contains("Erf") && ops.contains("Sub") && ops.contains("Div"),
                "{ops}"
            );
        }
    }
}

#[test]
fn export_failures_are_one_line_and_write_nothing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = tmp.path().join("model.onnx");
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).expect("mkdir");
    let line = assert_clean_failure(&export(&empty, "onnx", &out));
    assert!(line.contains("no trained model"), "{line}");

    let run = common::untrained_run(&tmp.path().join("run"));
    let unwritable = tmp.path().join("no-such-dir").join("model.onnx");
    let line = assert_clean_failure(&export(run.root(), "onnx", &unwritable));
    assert!(line.contains("no-such-dir"), "{line}");

    let line = assert_clean_failure(&export(run.root(), "tflite", &out));
    assert!(line.contains("tflite"), "{line}");

    let left: Vec<_> = std::fs::read_dir(tmp.path())
        .expect("list")
        .map(|entry| entry.expect("entry").file_name())
        .collect();
    assert!(!out.exists() && left.len() == 2, "left behind: {left:?}");

    // A run with class names carries them into the model's metadata.
    let named = tmp.path().join("named");
    let run = common::untrained_run(&named);
    let config = trainer::config::TrainingConfig::new()
        .with_class_names(Some((0..10).map(|d| format!("digit {d}")).collect()));
    run.save_config(&config).expect("config");
    let written = export(run.root(), "onnx", &out);
    assert!(written.status.success(), "{}", common::stderr(&written));
    let bytes = std::fs::read(&out).expect("written");
    let text = String::from_utf8_lossy(&bytes);
    assert!(text.contains("class_names") && text.contains("digit 9"));
}
