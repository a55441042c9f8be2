//! Training, reloading, resuming, evaluating and predicting on the real MNIST.

use burn::data::dataset::Dataset;
use data::{Mnist, MnistBatcher, MnistDataset};
use trainer::backend;
use trainer::train::train;

use crate::common::{self, assert_clean_failure, mnist_dir, path_str, stdout, trainer};

#[test]
fn one_epoch_on_6000_images_learns_and_the_saved_model_reloads_exactly() {
    let data_dir = mnist_dir();
    let tmp = tempfile::tempdir().expect("tempdir");
    let backend = backend::open(None).expect("default backend");
    let request = common::quick_run(&data_dir, &tmp.path().join("run"));
    let run = request.run_dir.clone();
    let report = train(request, &backend).expect("trains");

    assert_eq!(report.epochs.len(), 1);
    let epoch = &report.epochs[0];
    assert!(
        epoch.valid_accuracy >= 85.0,
        "validation accuracy {}",
        epoch.valid_accuracy
    );
    assert!(
        epoch.train_loss > 0.0 && epoch.valid_loss > 0.0,
        "{epoch:?}"
    );
    let test_scores = report.test.expect("the request asked for a test score");
    assert!(
        test_scores.accuracy() >= 85.0,
        "test accuracy {}",
        test_scores.accuracy()
    );

    let (config, reloaded) = run.load_model(&backend.device).expect("reloads");
    assert_eq!(config.limit_train, Some(6000));
    let test = MnistDataset::new(Mnist::load(Some(&data_dir)).expect("data").test);
    let items = (0..100).map(|i| test.get(i).expect("in range")).collect();
    let images =
        burn::data::dataloader::batcher::Batcher::batch(&MnistBatcher, items, &backend.device)
            .images;
    let expected = report.model.forward(images.clone()).into_data();
    reloaded
        .forward(images)
        .into_data()
        .assert_eq(&expected, true);
}

#[test]
fn resume_continues_at_the_next_epoch_and_eval_and_predict_use_the_run() {
    let data_dir = mnist_dir();
    let tmp = tempfile::tempdir().expect("tempdir");
    let run = tmp.path().join("run");
    let common = [
        "--data-dir",
        path_str(&data_dir),
        "--run",
        path_str(&run),
        "--limit-train",
        "6000",
    ];

    let first = trainer(&[&["train", "--epochs", "1"], &common[..]].concat());
    assert!(first.status.success(), "{}", common::stderr(&first));
    assert!(stdout(&first).contains("epoch 1/1"), "{}", stdout(&first));

    let resumed = trainer(&[&["train", "--epochs", "2", "--resume"], &common[..]].concat());
    let out = stdout(&resumed);
    assert!(resumed.status.success(), "{}", common::stderr(&resumed));
    assert!(out.contains("resuming after epoch 1"), "{out}");
    assert!(
        out.contains("epoch 2/2") && !out.contains("epoch 1/2"),
        "{out}"
    );
    assert!(run.join("checkpoint/model-2.bpk").is_file());
    assert!(
        run.join("checkpoint/model-1.bpk").is_file(),
        "earlier checkpoints are kept"
    );

    // eval and predict find the data through the run, without --data-dir.
    let eval = trainer(&["eval", "--run", path_str(&run)]);
    let out = stdout(&eval);
    assert!(eval.status.success(), "{}", common::stderr(&eval));
    assert!(
        out.contains("accuracy") && out.contains("confusion matrix"),
        "{out}"
    );
    let matrix_rows = out
        .lines()
        .skip_while(|l| !l.starts_with("confusion"))
        .skip(2)
        .take_while(|l| !l.starts_with("wrote"))
        .count();
    assert_eq!(matrix_rows, 10, "{out}");
    assert!(out.contains("confusion.png"), "{out}");

    let predict = trainer(&["predict", "--run", path_str(&run), "--test-index", "0"]);
    let out = stdout(&predict);
    assert!(predict.status.success(), "{}", common::stderr(&predict));
    assert!(out.contains("predicted 7"), "{out}");
}

#[test]
fn predict_reads_an_image_file_of_a_test_digit() {
    let data_dir = mnist_dir();
    let tmp = tempfile::tempdir().expect("tempdir");
    let run = tmp.path().join("run");
    common::train_quick_run_with_cli(&data_dir, &run);

    // Test digits as a user would photograph them: dark ink on white, larger, in a
    // wider frame, as PNG and JPEG.
    let test = MnistDataset::new(Mnist::load(Some(&data_dir)).expect("data").test);
    let mut paths = Vec::new();
    let mut labels = Vec::new();
    for index in [0, 1, 2, 3] {
        let item = test.get(index).expect("in range");
        let digit =
            image::GrayImage::from_raw(28, 28, item.pixels.iter().map(|p| 255 - p).collect())
                .expect("28x28");
        let mut canvas = image::GrayImage::from_pixel(160, 120, image::Luma([255]));
        let large = image::imageops::resize(&digit, 84, 84, image::imageops::FilterType::Triangle);
        image::imageops::overlay(&mut canvas, &large, 50, 20);
        let extension = if index % 2 == 0 { "png" } else { "jpg" };
        let path = tmp.path().join(format!("digit{index}.{extension}"));
        canvas.save(&path).expect("save image");
        paths.push(path);
        labels.push(item.label);
    }
    let mut args = vec!["predict", "--run", path_str(&run)];
    args.extend(paths.iter().map(|p| path_str(p)));
    let predict = trainer(&args);
    let out = stdout(&predict);
    assert!(predict.status.success(), "{}", common::stderr(&predict));
    for (path, label) in paths.iter().zip(labels) {
        let line = out
            .lines()
            .find(|l| l.starts_with(path_str(path)))
            .unwrap_or_else(|| panic!("no line for {}: {out}", path.display()));
        assert!(line.contains(&format!("predicted {label}")), "{line}");
    }

    // A threshold no prediction reaches flags each one, naming the command that
    // shows what the network saw; none flags none. --image names an image as the
    // argument does.
    let flagged = |threshold: &str| {
        let out = trainer(&[
            "predict",
            "--run",
            path_str(&run),
            "--image",
            path_str(&paths[0]),
            "--min-confidence",
            threshold,
        ]);
        assert!(out.status.success(), "{}", common::stderr(&out));
        stdout(&out)
            .lines()
            .filter(|l| l.contains("low confidence"))
            .map(String::from)
            .collect::<Vec<_>>()
    };
    let lines = flagged("1");
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].contains("below 100%")
            && lines[0].contains(&format!("trainer explain --run {}", path_str(&run))),
        "{lines:?}"
    );
    assert!(flagged("0").is_empty());
    let line = assert_clean_failure(&trainer(&[
        "predict",
        "--run",
        path_str(&run),
        "--test-index",
        "0",
        "--min-confidence",
        "1.5",
    ]));
    assert!(
        line.contains("1.5") && line.contains("probability"),
        "{line}"
    );
}

#[test]
fn the_default_configuration_reaches_the_tutorials_accuracy_in_its_five_epochs() {
    let data_dir = mnist_dir();
    let tmp = tempfile::tempdir().expect("tempdir");
    let run = tmp.path().join("default");
    // configs/mnist-mlp.json, as a user runs it from the project's root.
    let config =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/mnist-mlp.json");
    let trained = trainer(&[
        "--config",
        path_str(&config),
        "--data-dir",
        path_str(&data_dir),
        "--run",
        path_str(&run),
    ]);
    assert!(trained.status.success(), "{}", common::stderr(&trained));
    let log = stdout(&trained);
    assert!(log.contains("epoch 5/5 "), "{log}");
    // The epoch lines fit a terminal of 80 columns.
    let wide: Vec<&str> = log
        .lines()
        .filter(|l| l.starts_with("epoch ") && l.chars().count() > 80)
        .collect();
    assert!(wide.is_empty(), "{wide:?}");
    let info = trainer::run_dir::RunDir::new(&run)
        .load_info()
        .expect("run.json");
    let accuracy = info.test_accuracy.expect("tested");
    println!("default configuration, 5 epochs: test accuracy {accuracy:.2}%");
    assert!(accuracy >= 96.8, "test accuracy {accuracy}");
}
