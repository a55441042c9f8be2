//! The wgpu backend, exercised for real on whatever adapter the machine has (in CI,
//! Mesa's software Vulkan driver): training, and parity with the CPU backend on the
//! same checkpoint. Built only with `--features wgpu`.

use std::process::Command;

use burn::data::dataloader::batcher::Batcher;
use burn::data::dataset::Dataset;
use burn::prelude::*;
use data::{Mnist, MnistBatcher, MnistDataset};
use model::{ConvBlockConfig, Network, NetworkConfig, NetworkKind};
use trainer::backend::{self, Backend};
use trainer::infer::evaluate;
use trainer::run_dir::RunDir;
use trainer::train::train;

use crate::common::{self, argmax, assert_clean_failure, mnist_dir, path_str, stdout, trainer};

/// Logits of `model` for every image of `test`, batch by batch.
fn all_logits(model: &Network, test: &MnistDataset, device: &Device) -> Vec<f32> {
    (0..test.len())
        .collect::<Vec<_>>()
        .chunks(1000)
        .flat_map(|chunk| {
            let items = chunk
                .iter()
                .map(|&i| test.get(i).expect("in range"))
                .collect();
            let images = MnistBatcher.batch(items, device).images;
            model
                .forward(images)
                .try_into_vec_as::<f32>()
                .expect("readable logits")
        })
        .collect()
}

#[test]
fn a_flex_checkpoint_gives_the_same_answers_on_wgpu() {
    let data_dir = mnist_dir();
    let cnn = NetworkConfig::new()
        .with_kind(NetworkKind::Cnn)
        .with_conv(vec![
            ConvBlockConfig::new(8).with_batch_norm(true).with_pool(2),
            ConvBlockConfig::new(16)
                .with_kernel_size(5)
                .with_padding(2)
                .with_pool(2),
        ])
        .with_hidden_sizes(vec![32]);
    for network in [NetworkConfig::new(), cnn] {
        let architecture = network.architecture();
        let tmp = tempfile::tempdir().expect("tempdir");
        let flex = Backend {
            name: "flex",
            device: Device::flex(),
        };
        let mut request = common::quick_run(&data_dir, &tmp.path().join("run"));
        request.config = request.config.with_model(network);
        let run = request.run_dir.clone();
        train(request, &flex).expect("trains on flex");
        let gpu = backend::open(None).expect("a wgpu adapter");
        assert_eq!(gpu.name, "wgpu");
        let (_, on_flex) = run.load_model(&flex.device).expect("loads on flex");
        let (_, on_wgpu) = run.load_model(&gpu.device).expect("loads on wgpu");
        let test = MnistDataset::new(Mnist::load(Some(&data_dir)).expect("data").test);
        let cpu_logits = all_logits(&on_flex, &test, &flex.device);
        let gpu_logits = all_logits(&on_wgpu, &test, &gpu.device);
        assert_eq!(cpu_logits.len(), 10_000 * 10);
        let max_difference = cpu_logits
            .iter()
            .zip(&gpu_logits)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        let mismatches = cpu_logits
            .chunks(10)
            .zip(gpu_logits.chunks(10))
            .filter(|(a, b)| argmax(a) != argmax(b))
            .count();
        println!(
            "{architecture}: parity over 10000 test images: max |logit difference| {max_difference:e}, {mismatches} different predictions"
        );
        assert!(
            max_difference < 5e-5,
            "{architecture}: max |logit difference| {max_difference}"
        );
        assert_eq!(mismatches, 0, "{architecture}");
    }
}

#[test]
fn a_short_wgpu_training_run_learns_and_its_checkpoint_scores_the_same_on_flex() {
    let data_dir = mnist_dir();
    // One device, then two workers on the one adapter (data-parallel training).
    for devices in [&[][..], &["--devices", "2"]] {
        let tmp = tempfile::tempdir().expect("tempdir");
        let run_path = tmp.path().join("run");
        let quick = [
            "--epochs",
            "1",
            "--limit-train",
            "5000",
            "--batch-size",
            "32",
        ];
        let output = common::train_with_cli(&data_dir, &run_path, &[&quick[..], devices].concat());
        let out = stdout(&output);
        assert!(
            output.status.success(),
            "{devices:?}: {}",
            common::stderr(&output)
        );
        assert!(out.starts_with("backend wgpu"), "{out}");
        let valid_accuracy: f64 = std::fs::read_to_string(run_path.join("metrics.csv"))
            .expect("metrics")
            .lines()
            .nth(1)
            .and_then(|row| row.split(',').nth(4)?.parse().ok())
            .expect("epoch 1 row");
        assert!(
            valid_accuracy >= 85.0,
            "{devices:?}: validation accuracy {valid_accuracy}"
        );

        let run = RunDir::new(&run_path);
        let test = MnistDataset::new(Mnist::load(Some(&data_dir)).expect("data").test);
        let gpu = backend::open(None).expect("a wgpu adapter");
        let flex = Device::flex();
        let (_, on_wgpu) = run.load_model(&gpu.device).expect("loads on wgpu");
        let (_, on_flex) = run.load_model(&flex).expect("loads on flex");
        let gpu_scores = evaluate(&on_wgpu, &test, 1000, &gpu.device).expect("evaluates on wgpu");
        let cpu_scores = evaluate(&on_flex, &test, 1000, &flex).expect("evaluates on flex");
        assert_eq!(gpu_scores.correct, cpu_scores.correct, "{devices:?}");
        assert!(
            (gpu_scores.loss - cpu_scores.loss).abs() < 1e-4,
            "{devices:?}"
        );
    }
}

#[test]
fn no_usable_adapter_is_one_clear_line() {
    // No machine here has eight discrete GPUs. When the requested adapter is missing,
    // wgpu probes every graphics API, and Mesa's EGL complains on stderr unless
    // XDG_RUNTIME_DIR is set: give it one, so that only our line remains.
    let tmp = tempfile::tempdir().expect("tempdir");
    let output = Command::new(env!("CARGO_BIN_EXE_trainer"))
        .args([
            "eval",
            "--run",
            path_str(tmp.path()),
            "--device",
            "discrete:7",
        ])
        .env("XDG_RUNTIME_DIR", tmp.path())
        .output()
        .expect("runs");
    let line = assert_clean_failure(&output);
    assert!(
        line.contains("discrete:7") && line.contains("without `--features wgpu`"),
        "{line}"
    );
}

#[test]
fn an_unknown_device_is_rejected() {
    let line = assert_clean_failure(&trainer(&["eval", "--run", "x", "--device", "gpu7"]));
    assert!(line.contains("gpu7"), "{line}");
}
