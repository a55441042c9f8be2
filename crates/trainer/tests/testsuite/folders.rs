//! Folders of pictures as data (torchvision's `ImageFolder` layout), on real pictures:
//! MNIST's and Fashion-MNIST's own images written out as PNG files, in grey, in
//! colour and at another size, through `train`, `eval` and `predict`; and each bad
//! folder as one line.

use std::path::{Path, PathBuf};

use burn::prelude::Device;
use data::{LabelledImages, Mnist, MnistBatcher, MnistDataset};
use image::imageops::{FilterType, resize};
use image::{GrayImage, RgbImage};
use model::Normalization;

use trainer::run_dir::RunDir;

use crate::common::{
    assert_clean_failure, export, idx, import, mnist_dir, path_str, stderr, stdout, train_with_cli,
    trainer,
};
use crate::onnx_export::{LOGIT_TOLERANCE, tract_difference};

/// Debian's `dataset-fashion-mnist` (`.ci/run` installs it), or `FASHION_MNIST_DIR`.
fn fashion_dir() -> PathBuf {
    let dir = std::env::var_os("FASHION_MNIST_DIR").map_or_else(
        || PathBuf::from("/usr/share/datasets/fashion-mnist"),
        PathBuf::from,
    );
    assert!(
        dir.is_dir(),
        "Fashion-MNIST not found at {}: install dataset-fashion-mnist or set FASHION_MNIST_DIR",
        dir.display()
    );
    dir
}

/// Fashion-MNIST's classes in label order, as folder names (no `/` in them).
const FASHION: [&str; 10] = [
    "T-shirt",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];

/// How the grey images are written.
#[derive(Clone, Copy)]
enum Look {
    Grey,
    /// Each image tinted by a colour of its own, as RGB.
    Tinted,
    /// Grey, resized to `[height, width]`.
    Resized([u32; 2]),
}

/// Writes the first `count` images of `set` into `dir/<class name>/<index>.png`.
fn write_split(set: &LabelledImages, count: usize, dir: &Path, names: &[&str], look: Look) {
    let side = set.rows() as u32;
    for index in 0..count.min(set.len()) {
        let (pixels, label) = (
            set.image(index).expect("held"),
            set.label(index).expect("labelled"),
        );
        let folder = dir.join(names[usize::from(label)]);
        std::fs::create_dir_all(&folder).expect("mkdir");
        let path = folder.join(format!("{index:05}.png"));
        let grey = GrayImage::from_raw(side, side, pixels.to_vec()).expect("28x28");
        match look {
            Look::Grey => grey.save(&path),
            Look::Resized([height, width]) => {
                resize(&grey, width, height, FilterType::Triangle).save(&path)
            }
            Look::Tinted => {
                let tint = [
                    255u16,
                    128 + (index % 128) as u16,
                    64 + (index % 192) as u16,
                ];
                RgbImage::from_fn(side, side, |x, y| {
                    let value = u16::from(grey.get_pixel(x, y).0[0]);
                    image::Rgb(tint.map(|t| (value * t / 255) as u8))
                })
                .save(&path)
            }
        }
        .expect("png written");
    }
}

/// The data set at `source` (IDX files) as a picture folder in `dir`: its first
/// `train` training and `test` test images.
fn write_folder(
    source: &Path,
    dir: &Path,
    (train, test): (usize, usize),
    names: &[&str],
    look: Look,
) {
    let data = Mnist::load(Some(source)).expect("the IDX files read");
    write_split(&data.train, train, &dir.join("train"), names, look);
    write_split(&data.test, test, &dir.join("test"), names, look);
}

/// The test accuracy `eval` prints for the run `run`, and its whole output.
fn eval(run: &Path) -> (f64, String) {
    let output = trainer(&["eval", "--run", path_str(run)]);
    assert!(output.status.success(), "eval: {}", stderr(&output));
    let text = stdout(&output);
    let accuracy = text
        .split_once("accuracy ")
        .and_then(|(_, rest)| rest.split_once('%'))
        .and_then(|(number, _)| number.trim().parse().ok())
        .unwrap_or_else(|| panic!("no accuracy in: {text}"));
    (accuracy, text)
}

const DIGITS: [&str; 10] = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];

#[test]
fn mnist_as_a_png_folder_trains_as_its_idx_files_do() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (pictures, files) = (dir.path().join("pictures"), dir.path().join("idx"));
    write_folder(&mnist_dir(), &pictures, (3000, 1000), &DIGITS, Look::Grey);
    // The same images as IDX files.
    let data = Mnist::load(Some(&mnist_dir())).expect("MNIST");
    std::fs::create_dir_all(&files).expect("mkdir");
    for (set, count, prefix) in [(&data.train, 3000u32, "train"), (&data.test, 1000, "t10k")] {
        let pixels: Vec<u8> = (0..count as usize)
            .flat_map(|i| set.image(i).expect("held").to_vec())
            .collect();
        let labels = &set.labels()[..count as usize];
        std::fs::write(
            files.join(format!("{prefix}-images-idx3-ubyte")),
            idx(0x803, &[count, 28, 28], &pixels),
        )
        .expect("write");
        std::fs::write(
            files.join(format!("{prefix}-labels-idx1-ubyte")),
            idx(0x801, &[count], labels),
        )
        .expect("write");
    }
    let args = [
        "--epochs",
        "1",
        "--seed",
        "3",
        "--valid-size",
        "500",
        "--no-test",
    ];
    let mut accuracies = Vec::new();
    for (data_dir, run) in [(&files, "a"), (&pictures, "b")] {
        let run = dir.path().join(run);
        let output = train_with_cli(data_dir, &run, &args);
        assert!(output.status.success(), "train: {}", stderr(&output));
        accuracies.push(eval(&run).0);
    }
    assert!(accuracies[0] > 60.0, "{accuracies:?}");
    assert!(
        (accuracies[0] - accuracies[1]).abs() <= 0.5,
        "IDX vs PNG folder: {accuracies:?}"
    );
    // Run again, the pictures come from the cache's decoded copy, to the same run.
    let again = dir.path().join("c");
    let output = train_with_cli(&pictures, &again, &args);
    assert!(output.status.success(), "train: {}", stderr(&output));
    assert!(
        stdout(&output).contains("(pictures, decoded copy cached)"),
        "{}",
        stdout(&output)
    );
    let scores = |run: &Path| {
        let text = std::fs::read_to_string(run.join("metrics.csv")).expect("metrics");
        // Each epoch's losses and accuracies, its seconds left out.
        let scores = |line: &str| line.rsplit_once(',').map(|(scores, _)| scores.to_string());
        text.lines().skip(1).map(scores).collect::<Vec<_>>()
    };
    assert_eq!(scores(&again), scores(&dir.path().join("b")));
    // Read image by image from the cache's file, as pictures too many for memory
    // are, it is the same run again, and evaluates the same.
    let on_disk = dir.path().join("d");
    let settings = [&args[..], &["--set", "data.keep_in_memory=false"]].concat();
    let output = train_with_cli(&pictures, &on_disk, &settings);
    assert!(output.status.success(), "train: {}", stderr(&output));
    assert_eq!(scores(&on_disk), scores(&dir.path().join("b")));
    assert_eq!(eval(&on_disk).0, accuracies[1]);
}

#[test]
fn fashion_in_colour_and_at_another_size_trains_evaluates_and_predicts_by_class_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (colour, sized) = (dir.path().join("colour"), dir.path().join("sized"));
    write_folder(&fashion_dir(), &colour, (3000, 500), &FASHION, Look::Tinted);
    write_folder(
        &fashion_dir(),
        &sized,
        (3000, 500),
        &FASHION,
        Look::Resized([24, 32]),
    );
    let cnn = [
        "--epochs",
        "1",
        "--valid-size",
        "500",
        "--no-test",
        "--set",
        "model.kind=cnn",
        "--set",
        r#"model.conv=[{"channels": 8, "pool": 2}]"#,
        "--set",
        "model.hidden_sizes=[32]",
    ];
    // The colour run standardises each channel by the training split's statistics.
    let dataset = [&cnn[..], &["--set", "model.normalization=dataset"]].concat();
    for (data_dir, run, shape, settings) in [
        (&colour, "colour", [3, 28, 28], &dataset[..]),
        (&sized, "sized", [1, 24, 32], &cnn[..]),
    ] {
        let run = dir.path().join(run);
        let output = train_with_cli(data_dir, &run, settings);
        assert!(
            output.status.success(),
            "train {}: {}",
            run.display(),
            stderr(&output)
        );
        let config: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(run.join("config.json")).expect("config"),
        )
        .expect("json");
        assert_eq!(config["model"]["input_shape"], serde_json::json!(shape));
        assert_eq!(
            config["data"]["image_size"],
            serde_json::json!([shape[1], shape[2]])
        );
        // Sorted as torchvision sorts them: "Ankle boot" is class 0.
        assert_eq!(config["class_names"][0], "Ankle boot");
        let (accuracy, table) = eval(&run);
        assert!(accuracy > 60.0, "{}: {accuracy}%", run.display());
        assert!(table.contains("Trouser:"), "{table}");
        let trouser = std::fs::read_dir(data_dir.join("test/Trouser"))
            .expect("trousers")
            .next()
            .expect("one")
            .expect("entry")
            .path();
        let output = trainer(&["predict", "--run", path_str(&run), path_str(&trouser)]);
        assert!(output.status.success(), "predict: {}", stderr(&output));
        let said = stdout(&output).replace(path_str(&trouser), "");
        assert!(said.contains("predicted Trouser"), "{said}");
        // explain draws square pictures (a colour one in grey); others are refused.
        let output = trainer(&["explain", "--run", path_str(&run), path_str(&trouser)]);
        match shape[1] == shape[2] {
            true => assert!(output.status.success(), "explain: {}", stderr(&output)),
            false => assert!(
                assert_clean_failure(&output).contains("not a square"),
                "{}",
                stderr(&output)
            ),
        }
        exports_state_and_compute_the_input(&run, data_dir, shape);
    }
    recorded_statistics_are_the_training_splits(&dir.path().join("colour"), &colour);
}

/// The run's recorded per-channel statistics are those of the images it trained on,
/// its validation images left out.
fn recorded_statistics_are_the_training_splits(run: &Path, data_dir: &Path) {
    let (config, _) = RunDir::new(run).load_model(&Device::flex()).expect("loads");
    let Normalization::Channels { mean, std } = &config.model.normalization else {
        panic!("recorded {:?}", config.model.normalization);
    };
    let (mnist, split) =
        Mnist::load_split(Some(data_dir), &config.split, None, &config.data).expect("the data");
    let (train, valid, _) = mnist.into_sets(split.expect("splits"));
    let expected = train.channel_statistics();
    assert_eq!(mean.len(), 3);
    for (channel, &(expected_mean, expected_std)) in expected.iter().enumerate() {
        assert!(
            (f64::from(mean[channel]) - expected_mean).abs() < 1e-6,
            "{mean:?} {expected:?}"
        );
        assert!(
            (f64::from(std[channel]) - expected_std).abs() < 1e-6,
            "{std:?} {expected:?}"
        );
    }
    // The tint makes the channels differ, and the validation images differ from them.
    assert!(mean[0] > mean[1] && mean[1] > mean[2], "{mean:?}");
    assert_ne!(valid.channel_statistics(), expected);
    // The CNN's state dict takes them unfolded: its metadata says what to apply first.
    let bytes = std::fs::read(run.join("exported.safetensors")).expect("exported");
    let text = String::from_utf8_lossy(&bytes).replace("\\\"", "\"");
    let stated = format!("\"normalize\":{{\"mean\":[{},", mean[0]);
    assert!(text.contains(&stated), "no {stated}");
    // Imported with its pictures, it is the same classifier, class names included.
    let imported = run.with_file_name("imported");
    let output = import(
        &run.join("exported.safetensors"),
        &imported,
        &["--data-dir", path_str(data_dir)],
    );
    assert!(output.status.success(), "import: {}", stderr(&output));
    let scores = |run: &Path| {
        let (_, table) = eval(run);
        let start = table.find("test loss").expect("a score");
        let end = table.find("wrote").unwrap_or(table.len());
        table[start..end].to_string()
    };
    assert_eq!(scores(&imported), scores(run));
}

#[test]
fn each_bad_folder_is_one_line_naming_it_or_with_skipping_a_counted_warning() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("data");
    write_folder(&mnist_dir(), &root, (300, 100), &DIGITS, Look::Grey);
    let run = dir.path().join("run");
    let train = |extra: &[&str]| {
        train_with_cli(
            &root,
            &run,
            &[
                &["--epochs", "1", "--valid-size", "50", "--overwrite"],
                extra,
            ]
            .concat(),
        )
    };

    let garbage = root.join("train/3/garbage.png");
    std::fs::write(&garbage, b"not a PNG at all").expect("write");
    let notes = root.join("train/4/notes.txt");
    std::fs::write(&notes, b"where these came from").expect("write");
    let line = assert_clean_failure(&train(&[]));
    assert!(
        line.contains(path_str(&notes)) && line.contains("not a PNG"),
        "{line}"
    );
    std::fs::remove_file(&notes).expect("rm");
    let line = assert_clean_failure(&train(&[]));
    assert!(line.contains(path_str(&garbage)), "{line}");

    let output = train(&["--skip-bad-images"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let warning = stderr(&output);
    assert!(
        warning.contains("left out 1 bad picture") && warning.contains("garbage.png"),
        "{warning}"
    );
    std::fs::remove_file(&garbage).expect("rm");

    let seven = root.join("test/7");
    let moved = dir.path().join("sevens");
    std::fs::rename(&seven, &moved).expect("mv");
    let line = assert_clean_failure(&train(&[]));
    assert!(
        line.contains(path_str(&seven)) && line.contains("missing"),
        "{line}"
    );

    std::fs::create_dir(&seven).expect("an empty class");
    let line = assert_clean_failure(&train(&[]));
    assert!(
        line.contains(path_str(&seven)) && line.contains("no picture"),
        "{line}"
    );
}

/// The run `run` of pictures of `shape` exports to safetensors and ONNX, each stating
/// its input shape, and the ONNX graph computes Burn's logits on the run's pictures.
fn exports_state_and_compute_the_input(run: &Path, data_dir: &Path, shape: [usize; 3]) {
    let device = Device::flex();
    let (config, model) = RunDir::new(run).load_model(&device).expect("loads");
    for format in ["safetensors", "onnx"] {
        let out = run.join(format!("exported.{format}"));
        let output = export(run, format, &out);
        assert!(
            output.status.success(),
            "export {format}: {}",
            stderr(&output)
        );
        let bytes = std::fs::read(&out).expect("exported");
        let stated = format!("\"image\":[{},{},{}]", shape[0], shape[1], shape[2]);
        let text = String::from_utf8_lossy(&bytes).replace("\\\"", "\"");
        assert!(
            text.contains("input_shape") && text.contains(&stated),
            "{format}: no {stated}"
        );
    }
    let test = Mnist::load_test(Some(data_dir), &config.data).expect("the test pictures");
    let test = MnistDataset::new(test.test);
    let positions: Vec<usize> = (0..16).collect();
    let images = MnistBatcher
        .gather(&test, &positions, &device)
        .expect("in range")
        .images;
    let logits = model.forward(images.clone());
    let width = images.dims()[1];
    let images = images.try_into_vec_as::<f32>().expect("f32");
    let logits = logits.try_into_vec_as::<f32>().expect("f32");
    let difference = tract_difference(&run.join("exported.onnx"), &images, width, &logits, 16);
    assert!(
        difference <= LOGIT_TOLERANCE,
        "tract differs by {difference}"
    );
}
