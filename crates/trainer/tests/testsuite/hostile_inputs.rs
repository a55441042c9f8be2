//! Inputs made to hurt: data and weight files whose headers promise gigabytes, names
//! carrying terminal escape sequences, absurd settings, and writers that meet. Each
//! is refused in one line, or served, without taking more memory than the data it
//! really uses; memory is measured on the `trainer` process itself.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::common::{
    self, assert_clean_failure, export, import, mnist_dir, path_str, stdout, tiny_args, tiny_mnist,
    tiny_run_after_one_epoch, trainer,
};

/// Runs `trainer` with `args` (without inherited data settings), polling its peak
/// resident memory (VmHWM) until it exits; returns its output and the largest peak
/// seen, in MB. Memory grows by at most a few GB a second, so polls 5 ms apart see a
/// process pass a bound of hundreds of MB, however soon after it ends.
fn with_peak_rss(args: &[&str]) -> (Output, u64) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_trainer"))
        .args(args)
        .env_remove("MNIST_DATA_DIR")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the trainer binary runs");
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            pipe.read_to_end(&mut bytes).expect("reads the pipe");
            bytes
        })
    };
    let out = drain(Box::new(child.stdout.take().expect("piped")));
    let err = drain(Box::new(child.stderr.take().expect("piped")));
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak_kib = 0;
    let status = loop {
        let hwm = std::fs::read_to_string(&status_file)
            .ok()
            .and_then(|status| {
                let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
                line.split_whitespace().nth(1)?.parse::<u64>().ok()
            });
        peak_kib = peak_kib.max(hwm.unwrap_or(0));
        if let Some(status) = child.try_wait().expect("waits") {
            break status;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    };
    let output = Output {
        status,
        stdout: out.join().expect("stdout read"),
        stderr: err.join().expect("stderr read"),
    };
    (output, peak_kib / 1024)
}

fn gzip_file(path: &Path) -> flate2::write::GzEncoder<std::fs::File> {
    let file = std::fs::File::create(path).expect("create");
    flate2::write::GzEncoder::new(file, flate2::Compression::fast())
}

/// A gzip labels file of `count` labels, `i % 10`.
fn write_labels(path: &Path, count: u32) {
    let labels: Vec<u8> = (0..count).map(|i| (i % 10) as u8).collect();
    let mut gz = gzip_file(path);
    gz.write_all(&common::idx(0x801, &[count], &labels))
        .expect("write");
    gz.finish().expect("finish");
}

#[test]
fn a_gzip_file_of_a_million_images_costs_a_limited_run_only_the_images_it_uses() {
    const COUNT: u32 = 1_000_000;
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    tiny_mnist(dir, false);
    // 784 MB of blank images, a few MB of gzip.
    let images = dir.join("train-images-idx3-ubyte");
    let mut gz = gzip_file(&images);
    gz.write_all(&common::idx(0x803, &[COUNT, 28, 28], &[]))
        .expect("write");
    let blank = vec![0u8; 784 * 1000];
    for _ in 0..COUNT / 1000 {
        gz.write_all(&blank).expect("write");
    }
    gz.finish().expect("finish");
    write_labels(&dir.join("train-labels-idx1-ubyte"), COUNT);
    assert!(std::fs::metadata(&images).expect("stat").len() < 20_000_000);

    let run = dir.join("run");
    let (trained, peak_mb) = with_peak_rss(&[
        "train",
        "--data-dir",
        path_str(dir),
        "--run",
        path_str(&run),
        "--limit-train",
        "3000",
        "--epochs",
        "1",
    ]);
    assert!(trained.status.success(), "{}", common::stderr(&trained));
    let said = stdout(&trained);
    assert!(
        said.contains("1000000 training and 5 test images")
            && said.contains("training on 3000 images, validating on 5000"),
        "{said}"
    );
    println!("a limited run on a million images peaked at {peak_mb} MB");
    // The 8,000 images it uses are 6 MB; all of them would be 784 MB.
    assert!(peak_mb < 400, "peak RSS {peak_mb} MB");

    // A header promising 5,000,000 images over MNIST's 60,000 is refused, naming the
    // file, once the stream ends short; what it holds is all it costs.
    let mut mnist = Vec::new();
    flate2::read::GzDecoder::new(
        std::fs::File::open(mnist_dir().join("train-images-idx3-ubyte.gz")).expect("MNIST"),
    )
    .read_to_end(&mut mnist)
    .expect("gunzip");
    mnist[4..8].copy_from_slice(&5_000_000u32.to_be_bytes());
    let mut gz = gzip_file(&images);
    gz.write_all(&mnist).expect("write");
    gz.finish().expect("finish");
    write_labels(&dir.join("train-labels-idx1-ubyte"), 5_000_000);
    let (refused, peak_mb) = with_peak_rss(&[
        "train",
        "--data-dir",
        path_str(dir),
        "--run",
        path_str(&run),
        "--overwrite",
        "--limit-train",
        "3000",
    ]);
    let line = assert_clean_failure(&refused);
    assert!(
        line.contains(path_str(&images))
            && line.contains("is truncated")
            && line.contains("holds 47040000"),
        "{line}"
    );
    assert!(peak_mb < 400, "peak RSS {peak_mb} MB");
}

#[test]
fn eval_and_predict_read_a_directory_holding_only_the_test_split() {
    let (tmp, run) = tiny_run_after_one_epoch();
    let test_only = tmp.path().join("test-only");
    std::fs::create_dir(&test_only).expect("mkdir");
    for name in ["t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"] {
        std::fs::copy(tmp.path().join(name), test_only.join(name)).expect("copy");
    }
    let data = ["--data-dir", path_str(&test_only)];
    let eval = trainer(&[&["eval", "--run", path_str(&run)][..], &data].concat());
    assert!(eval.status.success(), "{}", common::stderr(&eval));
    assert!(
        stdout(&eval).contains(&format!("test set {} (5 images)", test_only.display())),
        "{}",
        stdout(&eval)
    );
    let predict = trainer(
        &[
            &["predict", "--run", path_str(&run), "--test-index", "2"][..],
            &data,
        ]
        .concat(),
    );
    assert!(predict.status.success(), "{}", common::stderr(&predict));
    assert!(
        stdout(&predict).contains("test image 2 (label 2): predicted"),
        "{}",
        stdout(&predict)
    );
    // Training needs the training split, and says so.
    let line = assert_clean_failure(&trainer(
        &[&data[..], &["--run", path_str(&tmp.path().join("new"))]].concat(),
    ));
    assert!(
        line.contains("lacks the file train-images-idx3-ubyte"),
        "{line}"
    );
    // Without its labels the test split is incomplete, and that is what is said.
    std::fs::remove_file(test_only.join("t10k-labels-idx1-ubyte")).expect("remove");
    let line = assert_clean_failure(&trainer(
        &[&["eval", "--run", path_str(&run)][..], &data].concat(),
    ));
    assert!(
        line.contains("lacks the file t10k-labels-idx1-ubyte")
            && line.contains("the test split's IDX files"),
        "{line}"
    );
}

#[test]
fn control_characters_in_class_names_are_refused_and_names_from_elsewhere_printed_escaped() {
    const RED: &str = "\u{1b}[31m";
    let (tmp, run) = tiny_run_after_one_epoch();
    let names: Vec<String> = (0..10).map(|class| format!("{RED}c{class}")).collect();
    let config = tmp.path().join("red.json");
    let json = serde_json::json!({ "class_names": names });
    std::fs::write(&config, json.to_string()).expect("write");

    // Refused, naming the key, by train and by import.
    let fresh = tmp.path().join("fresh");
    let trained = trainer(
        &[
            &tiny_args(tmp.path(), &fresh)[..],
            &["--epochs", "1", "--config", path_str(&config)],
        ]
        .concat(),
    );
    let state = tmp.path().join("net.safetensors");
    assert!(export(&run, "safetensors", &state).status.success());
    let imported = import(
        &state,
        &tmp.path().join("imported"),
        &["--config", path_str(&config)],
    );
    for refused in [trained, imported] {
        let line = assert_clean_failure(&refused);
        assert!(
            line.contains("class_names must be names without control characters")
                && line.contains("\\u{1b}[31mc0")
                && !line.contains('\u{1b}'),
            "{line}"
        );
    }
    assert!(!fresh.exists() && !tmp.path().join("imported").exists());

    // A run saved with such names (by an earlier version) prints them escaped.
    let saved = run.join("config.json");
    let mut run_config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&saved).expect("config")).expect("JSON");
    run_config["class_names"] = serde_json::json!(names);
    std::fs::write(&saved, run_config.to_string()).expect("write");
    let run_args = ["--run", path_str(&run)];
    let predicted = trainer(&[&["predict", "--test-index", "3"][..], &run_args].concat());
    let evaluated = trainer(&[&["eval"][..], &run_args].concat());
    for output in [predicted, evaluated] {
        assert!(output.status.success(), "{}", common::stderr(&output));
        let said = stdout(&output);
        assert!(
            said.contains("\\x1b[31mc3") && !said.contains('\u{1b}'),
            "{said}"
        );
    }

    // So does a file name, on one line however many it would make raw.
    let digit = tmp.path().join("seven\u{1b}[2J\nnext.png");
    let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/digits/seven.png");
    std::fs::copy(docs, &digit).expect("copy");
    let predicted = trainer(&[&["predict"][..], &run_args, &[path_str(&digit)]].concat());
    assert!(predicted.status.success(), "{}", common::stderr(&predicted));
    let said = stdout(&predicted);
    let lines: Vec<&str> = said.lines().filter(|l| l.contains("predicted")).collect();
    assert!(
        lines.len() == 1 && lines[0].contains("seven\\x1b[2J\\x0anext.png: predicted"),
        "{said}"
    );
    assert!(!said.contains('\u{1b}'), "{said}");

    // And an error naming a run directory called so.
    let gone: PathBuf = tmp.path().join("gone\u{1b}]0;title\u{7}\nx");
    let line = assert_clean_failure(&trainer(&["eval", "--run", path_str(&gone)]));
    assert!(
        line.contains("gone\\x1b]0;title\\x07\\x0ax") && !line.chars().any(char::is_control),
        "{line}"
    );
}

/// A safetensors file at `path` whose header declares `tensors` (F32, name and shape)
/// and `metadata`, their data a sparse run of zeros: gigabytes declared cost no disk.
fn sparse_safetensors(
    path: &Path,
    metadata: Option<serde_json::Value>,
    tensors: &[(&str, &[usize])],
) {
    let mut header = serde_json::Map::new();
    if let Some(metadata) = metadata {
        header.insert("__metadata__".into(), metadata);
    }
    let mut offset = 0;
    for (name, shape) in tensors {
        let end = offset + 4 * shape.iter().product::<usize>();
        header.insert(
            name.to_string(),
            serde_json::json!({"dtype": "F32", "shape": shape, "data_offsets": [offset, end]}),
        );
        offset = end;
    }
    let json = serde_json::Value::Object(header).to_string();
    let mut file = std::fs::File::create(path).expect("create");
    file.write_all(&(json.len() as u64).to_le_bytes())
        .and_then(|()| file.write_all(json.as_bytes()))
        .expect("write");
    file.set_len((8 + json.len() + offset) as u64)
        .expect("sparse");
}

/// The `__metadata__` of the safetensors file at `path`.
fn metadata_of(path: &Path) -> serde_json::Value {
    let bytes = std::fs::read(path).expect("read");
    let len = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + len]).expect("JSON");
    header["__metadata__"].clone()
}

#[test]
fn a_safetensors_file_is_judged_by_its_header_before_its_data_is_read() {
    let (tmp, run) = tiny_run_after_one_epoch();
    let exported = tmp.path().join("net.safetensors");
    assert!(export(&run, "safetensors", &exported).status.success());

    // 6 GB of nothing after a valid file.
    let padded = tmp.path().join("padded.safetensors");
    std::fs::copy(&exported, &padded).expect("copy");
    std::fs::OpenOptions::new()
        .write(true)
        .open(&padded)
        .and_then(|file| file.set_len(6 << 30))
        .expect("sparse");
    // Gigabytes declared under a layer's name: an MLP whose fc2 takes 50,000,000
    // inputs after an fc1 of 64 outputs, and the exported network (its metadata)
    // with an fc1 of 8,000,000 inputs.
    let unchained = tmp.path().join("unchained.safetensors");
    sparse_safetensors(
        &unchained,
        None,
        &[
            ("fc1.weight", &[64, 784]),
            ("fc1.bias", &[64]),
            ("fc2.weight", &[10, 50_000_000]),
            ("fc2.bias", &[10]),
        ],
    );
    let misshapen = tmp.path().join("misshapen.safetensors");
    sparse_safetensors(
        &misshapen,
        Some(metadata_of(&exported)),
        &[
            ("fc1.weight", &[64, 8_000_000]),
            ("fc1.bias", &[64]),
            ("fc2.weight", &[64, 64]),
            ("fc2.bias", &[64]),
            ("fc3.weight", &[10, 64]),
            ("fc3.bias", &[10]),
        ],
    );
    let cases = [
        (&padded, "but its header accounts for"),
        (
            &unchained,
            "fc2.weight takes 50000000 inputs but fc1.weight gives 64",
        ),
        (
            &misshapen,
            "its tensor fc1.weight is [64, 8000000], but the network 784-64-64-10 takes [64, 784]",
        ),
    ];
    for (file, expected) in cases {
        let target = tmp.path().join("imported");
        let (output, peak_mb) = with_peak_rss(&[
            "import",
            "--from",
            path_str(file),
            "--run",
            path_str(&target),
        ]);
        assert!(peak_mb < 300, "{}: peak RSS {peak_mb} MB", file.display());
        let line = assert_clean_failure(&output);
        assert!(
            line.contains(path_str(file)) && line.contains(expected),
            "{line}"
        );
        assert!(!target.exists(), "a refused import leaves no run");
    }
    // The file as exported imports as ever.
    let imported = import(&exported, &tmp.path().join("imported"), &[]);
    assert!(imported.status.success(), "{}", common::stderr(&imported));
}

#[test]
fn resuming_with_other_settings_names_the_saved_value_and_the_asked_one() {
    let (_tmp, run) = tiny_run_after_one_epoch();
    let resume = |extra: &[&str]| {
        let args = ["train", "--run", path_str(&run), "--resume"];
        assert_clean_failure(&trainer(&[&args[..], extra].concat()))
    };
    let line = resume(&["--batch-size", "32"]);
    assert!(
        line.contains("but this would change batch_size (saved 64, asked 32);"),
        "{line}"
    );
    let line = resume(&["--set", "model.hidden_sizes=[32]"]);
    assert!(
        line.contains("model.hidden_sizes (saved [64,64], asked [32])"),
        "{line}"
    );
}

#[test]
fn an_absurd_epoch_count_is_refused_in_one_line() {
    // A dry run stands for the run: it checks the config as the run would, then takes
    // one step and writes nothing, where the run would write a checkpoint an epoch.
    // (A resumed run's count is checked alike: `train::options`' unit tests.)
    let tmp = tempfile::tempdir().expect("tempdir");
    tiny_mnist(tmp.path(), false);
    let run = tmp.path().join("run");
    for epochs in ["18446744073709551615", "100001"] {
        let line = assert_clean_failure(&trainer(
            &[
                &tiny_args(tmp.path(), &run)[..],
                &["--epochs", epochs, "--dry-run"],
            ]
            .concat(),
        ));
        assert!(
            line.contains(&format!("epochs must be from 1 to 100000 (got {epochs})")),
            "{line}"
        );
    }
}

#[test]
fn import_is_refused_while_a_training_run_writes_the_run() {
    let data_dir = mnist_dir();
    let (tmp, done) = tiny_run_after_one_epoch();
    let state = tmp.path().join("net.safetensors");
    assert!(export(&done, "safetensors", &state).status.success());
    let run = tmp.path().join("busy");
    let mut training = common::training_in_progress(&data_dir, &run);
    let pid = training.id().to_string();
    let config = std::fs::read(run.join("config.json")).expect("the run's config");
    for extra in [&[][..], &["--overwrite"]] {
        let line = assert_clean_failure(&import(&state, &run, extra));
        assert!(
            line.contains("is being written by process") && line.contains(&pid),
            "{line}"
        );
    }
    assert_eq!(
        std::fs::read(run.join("config.json")).expect("config"),
        config
    );
    assert!(!run.join("model.bpk").exists(), "no model was imported");
    let _ = training.kill();
    let _ = training.wait();
    // With the writer gone, the import replaces the run as asked.
    let imported = import(&state, &run, &["--overwrite"]);
    assert!(imported.status.success(), "{}", common::stderr(&imported));
}
