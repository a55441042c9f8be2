//! Exporting to and importing from the PyTorch tutorial's state dict: the names,
//! shapes and transposed weights PyTorch expects; a numpy forward pass on the exported
//! file giving Rust's logits; files written outside Burn (safetensors and the zip
//! layout of torch.save) importing back to identical predictions; and the commands.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use burn::data::dataloader::batcher::Batcher;
use burn::data::dataset::Dataset;
use burn::prelude::*;
use burn::store::{BurnToPyTorchAdapter, ModuleSnapshot, ModuleStore, SafetensorsStore};
use data::{Mnist, MnistBatcher, MnistDataset};
use model::{Network, NetworkConfig};
use trainer::interop::{InteropError, export_safetensors, import_run, import_state_dict};
use trainer::run_dir::RunDir;
use trainer::train::train;

use crate::common::{self, argmax, assert_clean_failure, mnist_dir, path_str, stdout, trainer};

/// The largest difference allowed between the numpy forward pass and Rust's logits.
const LOGIT_TOLERANCE: f64 = 1e-5;

/// A tensor read back as its shape and f32 values.
type Stored = (Vec<usize>, Vec<f32>);

fn floats(tensor: &burn::store::burn_pack::Tensor) -> Stored {
    let bytes = tensor.to_bytes().expect("tensor bytes");
    let values = bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    (tensor.shape.to_vec(), values)
}

/// The tensors of a safetensors file by name.
fn read_safetensors(path: &Path) -> BTreeMap<String, Stored> {
    let mut store = SafetensorsStore::from_file(path);
    store
        .get_all_tensors()
        .expect("a safetensors file")
        .iter()
        .map(|(name, t)| (name.clone(), floats(t)))
        .collect()
}

/// The tensors of a Burn module by path (`hidden.0.weight`, ...), as Burn holds them.
fn burn_tensors(model: &Network) -> BTreeMap<String, Stored> {
    model
        .collect(None, None, false)
        .iter()
        .map(|t| (t.name.clone(), floats(t)))
        .collect()
}

fn random_input(device: &Device) -> Tensor<2> {
    Tensor::<2>::random([8, 784], burn::tensor::Distribution::Default, device)
}

#[test]
fn export_writes_the_tutorial_names_shapes_and_transposed_weights() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let device = Device::flex();
    let config = NetworkConfig::new();
    let model = config.init(&device);
    let path = tmp.path().join("net.safetensors");
    export_safetensors(&model, &config, &path).expect("exports");

    let exported = read_safetensors(&path);
    let shapes: BTreeMap<&str, Vec<usize>> = exported
        .iter()
        .map(|(name, (shape, _))| (name.as_str(), shape.clone()))
        .collect();
    let expected: BTreeMap<&str, Vec<usize>> = [
        ("fc1.weight", vec![64, 784]),
        ("fc1.bias", vec![64]),
        ("fc2.weight", vec![64, 64]),
        ("fc2.bias", vec![64]),
        ("fc3.weight", vec![10, 64]),
        ("fc3.bias", vec![10]),
    ]
    .into();
    assert_eq!(shapes, expected);

    let burn = burn_tensors(&model);
    for (torch, ours) in [("fc1", "hidden.0"), ("fc2", "hidden.1"), ("fc3", "output")] {
        let (shape, weight) = &burn[&format!("{ours}.weight")];
        let [inputs, outputs] = shape[..] else {
            panic!("{ours}.weight is 2-D")
        };
        let (_, torch_weight) = &exported[&format!("{torch}.weight")];
        for (i, j) in [
            (0, 0),
            (1, 0),
            (inputs - 1, outputs - 1),
            (inputs / 2, outputs / 3),
        ] {
            assert_eq!(
                torch_weight[j * inputs + i],
                weight[i * outputs + j],
                "{torch}.weight[{j}, {i}]"
            );
        }
        assert_eq!(
            exported[&format!("{torch}.bias")].1,
            burn[&format!("{ours}.bias")].1
        );
    }

    // Exporting again replaces the file.
    let other = config.init(&device);
    export_safetensors(&other, &config, &path).expect("exports over");
    assert_ne!(read_safetensors(&path)["fc3.bias"], exported["fc3.bias"]);
}

#[test]
fn import_of_an_export_computes_identical_logits_for_any_depth_and_width() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let device = Device::flex();
    let input = random_input(&device);
    for hidden in [vec![64, 64], vec![32], vec![16, 8, 4], vec![]] {
        let config = NetworkConfig::new().with_hidden_sizes(hidden.clone());
        let model = config.init(&device);
        let path = tmp.path().join(format!("net-{}.safetensors", hidden.len()));
        export_safetensors(&model, &config, &path).expect("exports");
        assert_eq!(
            read_safetensors(&path).len(),
            2 * (hidden.len() + 1),
            "fc1..fc{}",
            hidden.len() + 1
        );

        let (imported_config, imported) = import_state_dict(&path, None, &device).expect("imports");
        assert_eq!(
            (
                imported_config.input_size,
                &imported_config.hidden_sizes,
                imported_config.num_classes
            ),
            (784, &hidden, 10)
        );
        let expected = model.forward(input.clone()).into_data();
        imported
            .forward(input.clone())
            .into_data()
            .assert_eq(&expected, true);
    }
}

#[test]
fn a_standardising_model_exports_with_the_standardisation_in_fc1() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let device = Device::flex();
    let config = NetworkConfig::new().with_normalization(model::Normalization::Mnist);
    let model = config.init(&device);
    let path = tmp.path().join("net.safetensors");
    export_safetensors(&model, &config, &path).expect("exports");
    // PyTorch's Net, like the imported model, takes pixels in [0, 1] unchanged.
    let (imported_config, imported) = import_state_dict(&path, None, &device).expect("imports");
    assert_eq!(imported_config.normalization, model::Normalization::Unit);
    let input = random_input(&device);
    imported
        .forward(input.clone())
        .into_data()
        .assert_approx_eq::<f32>(
            &model.forward(input).into_data(),
            burn::tensor::Tolerance::absolute(1e-4),
        );
}

#[test]
fn import_refuses_files_that_are_not_the_tutorial_net() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let device = Device::flex();
    let model = NetworkConfig::new().init(&device);
    let save = |mut store: SafetensorsStore| model.save_into(&mut store).expect("writes");
    let renamed = tmp.path().join("renamed.safetensors");
    save(SafetensorsStore::from_file(&renamed).with_key_remapping(r"^output\.", "head."));
    let partial = tmp.path().join("partial.safetensors");
    save(
        SafetensorsStore::from_file(&partial)
            .with_to_adapter(BurnToPyTorchAdapter)
            .with_key_remapping(r"^hidden\.0\.", "fc1.")
            .with_key_remapping(r"^hidden\.1\.", "fc2.")
            .with_key_remapping(r"^output\.", "fc3.")
            .with_predicate(|name, _| name != "hidden.1.bias"),
    );
    let garbage = tmp.path().join("garbage.pt");
    std::fs::write(&garbage, b"this is not a checkpoint at all").expect("write");
    let short = tmp.path().join("short.safetensors");
    std::fs::write(&short, b"{}").expect("write");

    let cases = [
        (
            renamed,
            "`head.bias`, which is not fc<N>.weight or fc<N>.bias",
        ),
        (partial, "it has no fc2.bias"),
        (garbage, "cannot import"),
        (short, "too short"),
        (tmp.path().join("missing.safetensors"), "No such file"),
    ];
    for (path, expected) in cases {
        let err = import_state_dict(&path, None, &device).expect_err("not the tutorial's net");
        assert!(matches!(err, InteropError::Import { .. }), "{err}");
        let message = err.to_string();
        assert!(
            message.contains(expected) && message.contains(path_str(&path)),
            "{message}"
        );
    }
}

#[test]
fn import_keeps_an_existing_run_unless_told_to_overwrite() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let device = Device::flex();
    let config = NetworkConfig::new().with_hidden_sizes(vec![16]);
    let file = tmp.path().join("net.safetensors");
    export_safetensors(&config.init(&device), &config, &file).expect("exports");
    let run = RunDir::new(tmp.path().join("run"));

    let imported =
        import_run(&file, None, &run, None, false, &device).expect("imports into a new directory");
    assert_eq!(imported.model.hidden_sizes, vec![16]);
    let (loaded_config, _) = run
        .load_model(&device)
        .expect("a run directory like any other");
    assert_eq!(loaded_config.model.hidden_sizes, vec![16]);

    let err = import_run(&file, None, &run, None, false, &device).expect_err("the run exists");
    assert!(matches!(err, InteropError::TargetExists(_)), "{err}");
    std::fs::write(tmp.path().join("junk.safetensors"), b"0123456789").expect("write");
    let failed = import_run(
        &tmp.path().join("junk.safetensors"),
        None,
        &run,
        None,
        true,
        &device,
    );
    assert!(failed.is_err());
    assert!(
        run.model_path().is_file(),
        "a failed import leaves the run alone"
    );
    import_run(&file, None, &run, None, true, &device).expect("--overwrite replaces it");
}

/// The most probable class of each row of logits.
fn classes(logits: &[Vec<f32>]) -> Vec<usize> {
    logits.iter().map(|row| argmax(row)).collect()
}

#[test]
#[ignore = "needs a Python with tests/python/requirements.txt (.ci/run makes tests/python/.venv); run with --ignored"]
fn numpy_forward_pass_gives_rust_logits_and_its_files_import_back_identically() {
    let data_dir = mnist_dir();
    let python = common::python();
    let tmp = tempfile::tempdir().expect("tempdir");
    let backend = trainer::backend::open(None).expect("backend");
    let device = backend.device.clone();
    let request = common::quick_run(&data_dir, &tmp.path().join("run"));
    let model = train(request, &backend).expect("trains").model;
    let weights = tmp.path().join("net.safetensors");
    export_safetensors(&model, &NetworkConfig::new(), &weights).expect("exports");

    let test = MnistDataset::new(Mnist::load(Some(&data_dir)).expect("data").test);
    let items = (0..100).map(|i| test.get(i).expect("in range")).collect();
    let images = MnistBatcher.batch(items, &device).images;
    let logits = model.forward(images.clone());
    let rows = |tensor: Tensor<2>| -> Vec<Vec<f32>> {
        let width = tensor.dims()[1];
        let flat = tensor.into_data().try_to_vec::<f32>().expect("f32");
        flat.chunks(width).map(<[f32]>::to_vec).collect()
    };
    let (image_rows, logit_rows) = (rows(images.clone()), rows(logits.clone()));
    let cases = tmp.path().join("cases.json");
    let json = serde_json::json!({ "images": image_rows, "logits": logit_rows });
    std::fs::write(&cases, json.to_string()).expect("write cases");

    let script = common::python_script("forward.py");
    let rewritten = tmp.path().join("from-numpy");
    let output = Command::new(&python)
        .args([
            script.as_os_str(),
            weights.as_os_str(),
            cases.as_os_str(),
            rewritten.as_os_str(),
        ])
        .output()
        .expect("python runs");
    assert!(output.status.success(), "{}", common::stderr(&output));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).expect("one JSON line");
    assert_eq!(report["dtypes"], serde_json::json!(["float32"]));
    assert_eq!(
        report["tensors"]["fc1.weight"],
        serde_json::json!([64, 784])
    );
    let difference = report["max_abs_diff"].as_f64().expect("a number");
    let rust_predictions = classes(&logit_rows);
    let numpy_predictions: Vec<usize> =
        serde_json::from_value(report["predictions"].clone()).expect("predictions");
    println!("numpy vs Rust on 100 test images: max |logit difference| {difference:.3e}");
    assert!(
        difference <= LOGIT_TOLERANCE,
        "numpy's logits differ from Rust's by {difference}"
    );
    assert_eq!(numpy_predictions, rust_predictions);

    let expected = logits.into_data();
    for extension in ["safetensors", "pt"] {
        let file = rewritten.with_extension(extension);
        let (_, imported) =
            import_state_dict(&file, None, &device).expect("the file numpy wrote imports");
        let reimported = imported.forward(images.clone());
        let predictions = classes(&rows(reimported.clone()));
        let same = predictions
            .iter()
            .zip(&rust_predictions)
            .filter(|(a, b)| a == b)
            .count();
        println!("re-imported from .{extension}: {same}/100 identical predictions");
        reimported.into_data().assert_eq(&expected, true);
    }
}

#[test]
fn the_commands_export_import_and_predict_alike() {
    let data_dir = mnist_dir();
    let tmp = tempfile::tempdir().expect("tempdir");
    let (run, file, imported) = (
        tmp.path().join("run"),
        tmp.path().join("net.safetensors"),
        tmp.path().join("imported"),
    );
    let data = path_str(&data_dir);
    common::train_quick_run_with_cli(&data_dir, &run);

    let export = common::export(&run, "safetensors", &file);
    assert!(export.status.success(), "{}", common::stderr(&export));
    assert!(
        stdout(&export).contains("784-64-64-10"),
        "{}",
        stdout(&export)
    );
    // The imported run records where its data is, so that the commands find it
    // without --data-dir, as they find a trained run's.
    let import = common::import(&file, &imported, &["--data-dir", data]);
    assert!(import.status.success(), "{}", common::stderr(&import));
    let eval = trainer(&["eval", "--run", path_str(&imported)]);
    assert!(eval.status.success(), "{}", common::stderr(&eval));
    assert!(stdout(&eval).contains("test loss"), "{}", stdout(&eval));

    let predictions = |model: &Path| {
        let out = trainer(&[
            "predict",
            "--run",
            path_str(model),
            "--data-dir",
            data,
            "--test-index",
            "0",
        ]);
        assert!(out.status.success(), "{}", common::stderr(&out));
        stdout(&out)
            .lines()
            .filter(|l| l.contains("predicted"))
            .map(String::from)
            .collect::<Vec<_>>()
    };
    assert_eq!(predictions(&imported), predictions(&run));
    let scores = |model: &Path| {
        let out = trainer(&["eval", "--run", path_str(model), "--data-dir", data]);
        assert!(out.status.success(), "{}", common::stderr(&out));
        stdout(&out)
            .lines()
            .skip_while(|l| !l.starts_with("test loss"))
            .take_while(|l| !l.starts_with("wrote"))
            .map(String::from)
            .collect::<Vec<_>>()
    };
    assert_eq!(scores(&imported), scores(&run));

    let again = common::import(&file, &imported, &[]);
    assert!(assert_clean_failure(&again).contains("pass --overwrite"));
    let bad_format = common::export(&run, "tflite", &file);
    assert!(assert_clean_failure(&bad_format).contains("tflite"));
}

#[test]
fn import_refuses_weights_that_are_not_numbers_naming_the_tensor() {
    use safetensors::SafeTensors;
    use safetensors::tensor::TensorView;
    let tmp = tempfile::tempdir().expect("tempdir");
    let device = Device::flex();
    let good = tmp.path().join("good.safetensors");
    export_safetensors(
        &NetworkConfig::new().init(&device),
        &NetworkConfig::new(),
        &good,
    )
    .expect("exports");
    let bytes = std::fs::read(&good).expect("read");
    let file = SafeTensors::deserialize(&bytes).expect("safetensors");
    let mut tensors: Vec<(String, safetensors::Dtype, Vec<usize>, Vec<u8>)> = file
        .tensors()
        .into_iter()
        .map(|(name, view)| {
            (
                name,
                view.dtype(),
                view.shape().to_vec(),
                view.data().to_vec(),
            )
        })
        .collect();
    let (_, _, _, data) = tensors
        .iter_mut()
        .find(|(name, ..)| name == "fc2.weight")
        .expect("fc2.weight");
    data[40..44].copy_from_slice(&f32::NAN.to_le_bytes());
    let views: Vec<(String, TensorView)> = tensors
        .iter()
        .map(|(name, dtype, shape, data)| {
            (
                name.clone(),
                TensorView::new(*dtype, shape.clone(), data).expect("view"),
            )
        })
        .collect();
    let nan = tmp.path().join("nan.safetensors");
    std::fs::write(
        &nan,
        safetensors::serialize(views, None).expect("serialises"),
    )
    .expect("write");
    let err = import_state_dict(&nan, None, &device).expect_err("a NaN weight");
    let message = err.to_string();
    assert!(
        message.contains("fc2.weight holds NaN") && message.contains("finite"),
        "{message}"
    );
    import_state_dict(&good, None, &device).expect("the file before the NaN imports");
}
