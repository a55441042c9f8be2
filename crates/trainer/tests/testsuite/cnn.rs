//! A CNN run through every command, as a user drives them: it learns on a subset of
//! MNIST; eval, predict, explain, summary, serve, export and import take it; a sweep
//! ranks its conv keys; a kill mid-epoch then `--resume` ends exactly like an
//! uninterrupted run; an impossible network is a one-line error naming its key.

use std::path::Path;

use burn::data::dataset::Dataset;
use data::{Mnist, MnistDataset};

use crate::common::served::Served;
use crate::common::{
    self, Signal, assert_clean_failure, assert_resume_is_exact, mnist_dir, path_str, stdout,
    trainer,
};

/// A small CNN: two 3x3 blocks with batch norm and pooling, then 392-32-10.
const CNN: &str = r#"{
  "model": {
    "kind": "cnn",
    "conv": [
      {"channels": 4, "batch_norm": true, "pool": 2},
      {"channels": 8, "batch_norm": true, "pool": 2}
    ],
    "hidden_sizes": [32]
  },
  "lr": 0.003,
  "split": {"valid_size": 1000, "seed": 42}
}"#;

fn config(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("cnn.json");
    std::fs::write(&path, CNN).expect("config");
    path
}

fn train_args<'a>(config: &'a Path, data: &'a Path, run: &'a Path) -> Vec<&'a str> {
    vec![
        "train",
        "--config",
        path_str(config),
        "--data-dir",
        path_str(data),
        "--run",
        path_str(run),
    ]
}

/// `accuracy 97.12%` in a command's output.
fn accuracy(out: &str) -> f64 {
    out.split("accuracy ")
        .nth(1)
        .and_then(|rest| rest.split('%').next())
        .and_then(|number| number.parse().ok())
        .unwrap_or_else(|| panic!("no accuracy in {out}"))
}

#[test]
fn a_cnn_run_learns_and_every_command_takes_it() {
    let data_dir = mnist_dir();
    let tmp = tempfile::tempdir().expect("tempdir");
    let (config, run) = (config(tmp.path()), tmp.path().join("run"));
    let trained = trainer(
        &[
            &train_args(&config, &data_dir, &run)[..],
            &["--epochs", "1", "--limit-train", "6000"],
        ]
        .concat(),
    );
    let out = stdout(&trained);
    assert!(trained.status.success(), "{}", common::stderr(&trained));
    assert!(
        out.contains("conv4k3bn+pool2-conv8k3bn+pool2-392-32-10"),
        "{out}"
    );
    assert!(out.contains("conv1 (Conv2d 3x3, padding 1)"), "{out}");

    let eval = trainer(&[
        "eval",
        "--run",
        path_str(&run),
        "--data-dir",
        path_str(&data_dir),
    ]);
    assert!(eval.status.success(), "{}", common::stderr(&eval));
    let learned = accuracy(&stdout(&eval));
    assert!(learned >= 90.0, "1 epoch on 6,000 images: {learned}%");

    let predict = trainer(&["predict", "--run", path_str(&run), "--test-index", "0"]);
    assert!(
        stdout(&predict).contains("predicted 7"),
        "{}",
        stdout(&predict)
    );

    let explain = trainer(&["explain", "--run", path_str(&run), "--test-index", "0"]);
    assert!(explain.status.success(), "{}", common::stderr(&explain));
    let picture = run.join("explain-test-0.png");
    let image = image::open(&picture).expect("the explanation is a PNG");
    assert_eq!(
        (image.width(), image.height()),
        trainer::report::PICTURE_SIZE
    );

    let summary = trainer(&["summary", "--run", path_str(&run)]);
    assert!(
        stdout(&summary).contains("bn2 (BatchNorm2d)"),
        "{}",
        stdout(&summary)
    );

    // Export, import back: the imported run scores exactly as the trained one.
    let weights = tmp.path().join("cnn.safetensors");
    let export = common::export(&run, "safetensors", &weights);
    assert!(export.status.success(), "{}", common::stderr(&export));
    // The state dict of the README's PyTorch module: its names, PyTorch's layouts.
    let bytes = std::fs::read(&weights).expect("exported");
    let file = safetensors::SafeTensors::deserialize(&bytes).expect("safetensors");
    let mut names: Vec<(String, Vec<usize>)> = file
        .tensors()
        .into_iter()
        .map(|(name, view)| (name, view.shape().to_vec()))
        .collect();
    names.sort();
    let expected: Vec<(String, Vec<usize>)> = [
        ("bn1.bias", vec![4]),
        ("bn1.num_batches_tracked", vec![]),
        ("bn1.running_mean", vec![4]),
        ("bn1.running_var", vec![4]),
        ("bn1.weight", vec![4]),
        ("bn2.bias", vec![8]),
        ("bn2.num_batches_tracked", vec![]),
        ("bn2.running_mean", vec![8]),
        ("bn2.running_var", vec![8]),
        ("bn2.weight", vec![8]),
        ("conv1.weight", vec![4, 1, 3, 3]),
        ("conv2.weight", vec![8, 4, 3, 3]),
        ("fc1.bias", vec![32]),
        ("fc1.weight", vec![32, 392]),
        ("fc2.bias", vec![10]),
        ("fc2.weight", vec![10, 32]),
    ]
    .into_iter()
    .map(|(name, shape)| (name.to_string(), shape))
    .collect();
    assert_eq!(names, expected);
    let imported = tmp.path().join("imported");
    let import = common::import(&weights, &imported, &[]);
    assert!(import.status.success(), "{}", common::stderr(&import));
    let again = trainer(&[
        "eval",
        "--run",
        path_str(&imported),
        "--data-dir",
        path_str(&data_dir),
    ]);
    assert_eq!(accuracy(&stdout(&again)), learned, "{}", stdout(&again));
    // A state dict that names no network (PyTorch's own) takes it from --config.
    let named = tmp.path().join("named");
    let import = common::import(&weights, &named, &["--config", path_str(&config)]);
    assert!(import.status.success(), "{}", common::stderr(&import));
    assert!(
        stdout(&import).contains("conv4k3bn+pool2"),
        "{}",
        stdout(&import)
    );

    // The service answers a test image as predict does, and serves its page.
    let served = Served::start(&run, "true", &["--quiet"], &tmp.path().join("serve.log"));
    let test = MnistDataset::new(Mnist::load(Some(&data_dir)).expect("data").test);
    let pixels: Vec<f32> = test
        .get(0)
        .expect("image 0")
        .pixels
        .iter()
        .map(|&p| f32::from(p) / 255.0)
        .collect();
    let body = serde_json::json!({ "pixels": pixels }).to_string();
    let (status, answer) = served.ask(
        "POST /api/predict HTTP/1.1\r\nContent-Type: application/json",
        body.as_bytes(),
    );
    assert_eq!(status, 200, "{answer}");
    assert!(answer.contains(r#""digit":7"#), "{answer}");
    assert_eq!(served.get("/").0, 200);
}

/// Two epochs of the CNN on 4,000 images into `run`, with `extra` arguments: a run
/// to kill in its second epoch and resume.
fn two_epochs_args(config: &Path, data_dir: &Path, run: &Path, extra: &[&str]) -> Vec<String> {
    [
        &train_args(config, data_dir, run)[..],
        &["--epochs", "2", "--limit-train", "4000", "--no-test"],
        extra,
    ]
    .concat()
    .into_iter()
    .map(String::from)
    .collect()
}

#[test]
fn a_cnn_killed_mid_epoch_resumes_to_the_uninterrupted_result() {
    let data_dir = mnist_dir();
    let tmp = tempfile::tempdir().expect("tempdir");
    let config = config(tmp.path());
    let args = |run: &Path| two_epochs_args(&config, &data_dir, run, &[]);
    // Bit for bit: the weights, and the batch norms' running statistics with them.
    assert_resume_is_exact(&args, tmp.path(), ("epoch 2/2 [", Signal::KILL), &data_dir);
}

#[test]
fn an_augmented_cnn_killed_mid_epoch_resumes_to_the_uninterrupted_result() {
    let data_dir = mnist_dir();
    let tmp = tempfile::tempdir().expect("tempdir");
    let config = config(tmp.path());
    let augment = [
        "--set",
        "data.augment.rotation=12",
        "--set",
        "data.augment.translate=0.1",
        "--set",
        "data.augment.scale=[0.9, 1.1]",
        "--set",
        "data.augment.crop_padding=2",
    ];
    let args = |run: &Path| two_epochs_args(&config, &data_dir, run, &augment);
    // Each image's warp follows from (seed, epoch, image): the resumed run's second
    // epoch sees the pictures the uninterrupted one saw, and ends on its weights.
    assert_resume_is_exact(&args, tmp.path(), ("epoch 2/2 [", Signal::KILL), &data_dir);
}

#[test]
fn a_dry_run_shows_the_augmented_training_images_and_writes_no_run() {
    let data_dir = mnist_dir();
    let tmp = tempfile::tempdir().expect("tempdir");
    let config = config(tmp.path());
    let run = tmp.path().join("run");
    let samples = tmp.path().join("samples.png");
    let dry = |augment: &str, out: &Path| {
        trainer(
            &[
                &train_args(&config, &data_dir, &run)[..],
                &[
                    "--dry-run",
                    "--batch-size",
                    "16",
                    "--samples",
                    path_str(out),
                ],
                &["--set", augment],
            ]
            .concat(),
        )
    };
    let shown = dry("data.augment.rotation=30", &samples);
    assert!(shown.status.success(), "{}", common::stderr(&shown));
    assert!(stdout(&shown).contains("16 training images as the network sees them"));
    assert!(!run.exists(), "a dry run writes no run");
    let picture = image::open(&samples).expect("a PNG").to_luma8();
    // 16 images: four columns of 28x28 images drawn three times their size, 2 apart.
    assert_eq!(picture.dimensions(), (2 + 4 * (84 + 2), 2 + 4 * (84 + 2)));
    let plain = tmp.path().join("plain.png");
    let shown = dry("data.augment.rotation=0", &plain);
    assert!(shown.status.success(), "{}", common::stderr(&shown));
    let plain = image::open(&plain).expect("a PNG").to_luma8();
    assert_ne!(picture, plain, "rotated images differ from the plain ones");
    let without = trainer(
        &[
            &train_args(&config, &data_dir, &run)[..],
            &["--samples", path_str(&samples)],
        ]
        .concat(),
    );
    assert!(!without.status.success(), "--samples needs --dry-run");
}

#[test]
fn augmentation_out_of_range_is_one_line_naming_the_key() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let config = config(tmp.path());
    let run = tmp.path().join("run");
    for (setting, key) in [
        ("data.augment.rotation=400", "data.augment.rotation"),
        ("data.augment.scale=[1.2, 0.8]", "data.augment.scale"),
        ("data.augment.translate=-0.1", "data.augment.translate"),
        (
            "data.augment.crop_padding=5000",
            "data.augment.crop_padding",
        ),
    ] {
        let failed = trainer(&[
            "train",
            "--config",
            path_str(&config),
            "--set",
            setting,
            "--run",
            path_str(&run),
            "--dry-run",
        ]);
        let err = common::stderr(&failed);
        assert!(!failed.status.success(), "{setting}");
        assert_eq!(err.trim().lines().count(), 1, "{setting}: {err}");
        assert!(err.contains(key), "{setting}: {err}");
    }
}

#[test]
fn a_sweep_over_conv_blocks_ranks_every_trial() {
    let data_dir = mnist_dir();
    let tmp = tempfile::tempdir().expect("tempdir");
    config(tmp.path());
    let sweep = tmp.path().join("sweep.json");
    std::fs::write(
        &sweep,
        r#"{"base": "cnn.json", "method": "grid",
            "parameters": {
              "model.conv": [[{"channels": 4, "pool": 2}], [{"channels": 8, "kernel_size": 5, "padding": 2, "pool": 2}]],
              "model.hidden_sizes": [[16]],
              "epochs": [1],
              "limit_train": [1000]
            }}"#,
    )
    .expect("sweep config");
    let artifacts = tmp.path().join("sweep");
    let swept = common::sweep(&sweep, &data_dir, &artifacts, &[]);
    assert!(swept.status.success(), "{}", common::stderr(&swept));
    let leaderboard = std::fs::read_to_string(artifacts.join("leaderboard.csv")).expect("csv");
    assert_eq!(
        leaderboard.lines().count(),
        3,
        "a header and two trials: {leaderboard}"
    );
    assert!(leaderboard.contains("kernel_size"), "{leaderboard}");
    let best: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(artifacts.join("best.json")).expect("best"))
            .expect("json");
    assert!(best.to_string().contains("conv"), "{best}");
}

#[test]
fn impossible_networks_are_one_line_errors_naming_the_key_before_training() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let config = config(tmp.path());
    let run = tmp.path().join("run");
    for (setting, key) in [
        (r#"model.conv=[{"channels": 0}]"#, "model.conv[0].channels"),
        (
            r#"model.conv=[{"channels": 4, "pool": 4}, {"channels": 4, "kernel_size": 9, "padding": 0}]"#,
            "model.conv[1].kernel_size",
        ),
        (
            r#"model.conv=[{"channels": 4, "pool": 40}]"#,
            "model.conv[0].pool",
        ),
        (r#"model.conv=[{"channels": 4, "kernel": 3}]"#, "kernel"),
        ("model.conv=[]", "model.conv"),
        ("model.input_size=780", "model.input_size"),
    ] {
        let failed = trainer(&[
            "train",
            "--config",
            path_str(&config),
            "--data-dir",
            path_str(tmp.path()),
            "--run",
            path_str(&run),
            "--set",
            setting,
        ]);
        let line = assert_clean_failure(&failed);
        assert!(line.contains(key), "{setting}: {line}");
        assert!(!run.exists(), "{setting}: nothing is written");
    }
}

#[test]
fn an_mlp_run_written_before_the_cnn_still_loads() {
    // config.json as the release before the CNN wrote it: no kind, conv or devices.
    let written = include_str!("../fixtures/mlp-config-before-cnn.json");
    assert!(!written.contains("\"kind\"") && !written.contains("\"conv\""));
    let tmp = tempfile::tempdir().expect("tempdir");
    let run = trainer::run_dir::RunDir::new(tmp.path().join("run"));
    run.create().expect("run dir");
    std::fs::write(run.config_path(), written).expect("config.json");
    // An MLP's record holds the same tensors as before: the CNN's blocks add none.
    let device = burn::prelude::Device::flex();
    run.save_model(&model::NetworkConfig::new().init(&device))
        .expect("model.bpk");
    let (config, _) = run.load_model(&device).expect("the old run loads");
    assert_eq!(config.model.kind, model::NetworkKind::Mlp);
    assert_eq!(config.model.architecture(), "784-64-64-10");
    let summary = trainer(&["summary", "--run", path_str(run.root())]);
    assert!(
        stdout(&summary).contains("784-64-64-10"),
        "{}",
        stdout(&summary)
    );
}
