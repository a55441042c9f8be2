//! The HTTP API of `trainer serve`: answers to good requests equal what `predict`
//! gives for the same input; every bad request gets a 4xx with a JSON error; the real
//! server process answers on a socket and stops cleanly on SIGINT and SIGTERM.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use base64::Engine;
use burn::data::dataset::Dataset;
use burn::prelude::*;
use data::{Mnist, MnistDataset};
use http_body_util::BodyExt;
use image::{GrayImage, ImageFormat, Luma};
use model::{Network, NetworkConfig};
use serde_json::{Value, json};
use tower::ServiceExt;
use trainer::config::TrainingConfig;
use trainer::infer::preprocess::load_picture;
use trainer::infer::{Classifier, predict};
use trainer::run_dir::RunDir;
use trainer::serve::{
    BODY_LIMIT, MAX_BATCH, MAX_IMAGE_SIDE, Metrics, Predictor, ServeConfig, router,
};
use trainer::train::train;

use crate::common::{self, assert_clean_failure, mnist_dir, path_str, trainer};

/// An untrained tutorial network: its answers are arbitrary but deterministic, which
/// is all that comparing the API with `predict` needs.
fn untrained() -> (Network, Router) {
    let device = Device::flex();
    let config = NetworkConfig::new();
    let model = config.init(&device);
    let app = router(
        Arc::new(Predictor::new(model.clone(), &config, device)),
        ServeConfig::default(),
        Arc::new(Metrics::new("784-64-64-10", 55_050, "flex")),
    );
    (model, app)
}

async fn call(
    app: &Router,
    method: &str,
    uri: &str,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> (StatusCode, Value) {
    let mut request = Request::builder().method(method).uri(uri);
    if let Some(content_type) = content_type {
        request = request.header(header::CONTENT_TYPE, content_type);
    }
    let response = app
        .clone()
        .oneshot(request.body(Body::from(body)).expect("request"))
        .await
        .expect("the router answers");
    let status = response.status();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    let json = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
    (status, json)
}

async fn post_json(app: &Router, body: &Value) -> (StatusCode, Value) {
    call(
        app,
        "POST",
        "/api/predict",
        Some("application/json"),
        body.to_string().into_bytes(),
    )
    .await
}

/// A pattern of pixels in 0..1 that differs with `seed`.
fn pixels(seed: usize) -> Vec<f32> {
    (0..784)
        .map(|i| ((i * (seed + 7)) % 97) as f32 / 96.0)
        .collect()
}

fn floats(value: &Value) -> Vec<f32> {
    value
        .as_array()
        .expect("an array")
        .iter()
        .map(|v| v.as_f64().expect("a number") as f32)
        .collect()
}

/// A dark "1" on a light background, as a drawing or a photo would be.
fn drawn_one(format: ImageFormat) -> Vec<u8> {
    let mut image = GrayImage::from_pixel(120, 120, Luma([250]));
    for y in 15..105 {
        for x in 52..66 {
            image.put_pixel(x, y, Luma([10]));
        }
    }
    let mut bytes = std::io::Cursor::new(Vec::new());
    image.write_to(&mut bytes, format).expect("encode");
    bytes.into_inner()
}

#[tokio::test]
async fn pixels_get_the_answer_predict_gives() {
    let (model, app) = untrained();
    let (status, answer) = post_json(&app, &json!({ "pixels": pixels(1) })).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let expected = Classifier::new(model, &Device::flex())
        .predict_scaled(&[pixels(1)])
        .expect("predicts")
        .remove(0);
    assert_eq!(floats(&answer["probabilities"]), expected.probabilities);
    assert_eq!(answer["digit"], expected.class());
    let keys: Vec<&String> = answer.as_object().expect("an object").keys().collect();
    assert_eq!(
        keys,
        ["digit", "probabilities"],
        "pixels are echoed only for images"
    );
}

#[tokio::test]
async fn images_are_prepared_as_predict_prepares_files() {
    let (model, app) = untrained();
    let tmp = tempfile::tempdir().expect("tempdir");
    for (format, content_type) in [
        (ImageFormat::Png, "image/png"),
        (ImageFormat::Jpeg, "image/jpeg; charset=binary"),
    ] {
        let bytes = drawn_one(format);
        let (status, answer) = call(
            &app,
            "POST",
            "/api/predict",
            Some(content_type),
            bytes.clone(),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{answer}");

        let path = tmp.path().join("digit");
        std::fs::write(&path, &bytes).expect("write");
        let grid = load_picture(&path, &TrainingConfig::new()).expect("a digit");
        let expected = predict(&model, std::slice::from_ref(&grid), &Device::flex())
            .expect("predicts")
            .remove(0);
        assert_eq!(
            floats(&answer["probabilities"]),
            expected.probabilities,
            "{content_type}"
        );
        let seen: Vec<f32> = grid.iter().map(|&p| f32::from(p) / 255.0).collect();
        assert_eq!(
            floats(&answer["pixels"]),
            seen,
            "the answer shows the prepared input"
        );
    }
}

#[tokio::test]
async fn a_batch_answers_every_item_in_order_as_single_requests_do() {
    let (_, app) = untrained();
    let png = base64::engine::general_purpose::STANDARD.encode(drawn_one(ImageFormat::Png));
    let items = vec![
        json!({ "pixels": pixels(1) }),
        json!({ "image": png }),
        json!({ "pixels": pixels(2) }),
        json!({ "image": format!("data:image/png;base64,{png}") }),
    ];
    let (status, answer) = post_json(&app, &Value::Array(items.clone())).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let predictions = answer["predictions"].as_array().expect("predictions");
    assert_eq!(predictions.len(), items.len());
    for (item, batched) in items.iter().zip(predictions) {
        let (status, single) = post_json(&app, item).await;
        assert_eq!(status, StatusCode::OK, "{single}");
        assert_eq!(
            (&single["digit"], &single["pixels"]),
            (&batched["digit"], &batched["pixels"])
        );
        // A batch goes through the matrix products in one piece, which may round the
        // last bit differently from one row alone.
        let (single, batched) = (
            floats(&single["probabilities"]),
            floats(&batched["probabilities"]),
        );
        assert!(
            single
                .iter()
                .zip(&batched)
                .all(|(a, b)| (a - b).abs() <= 1e-6),
            "{single:?} vs {batched:?}"
        );
    }
    assert_eq!(
        predictions[1], predictions[3],
        "a data URL is the same image"
    );

    let full = Value::Array(vec![json!({ "pixels": pixels(3) }); MAX_BATCH]);
    let (status, answer) = post_json(&app, &full).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(
        answer["predictions"].as_array().map(Vec::len),
        Some(MAX_BATCH)
    );
}

#[tokio::test]
async fn bad_requests_get_a_json_error_and_a_4xx() {
    let (_, app) = untrained();
    let mut out_of_range = pixels(1);
    out_of_range[3] = 1.5;
    let mut negative = pixels(1);
    negative[700] = -0.25;
    let blank_png = {
        let mut bytes = std::io::Cursor::new(Vec::new());
        GrayImage::from_pixel(50, 50, Luma([255]))
            .write_to(&mut bytes, ImageFormat::Png)
            .expect("png");
        bytes.into_inner()
    };
    let too_wide = {
        let mut bytes = std::io::Cursor::new(Vec::new());
        GrayImage::from_pixel(MAX_IMAGE_SIDE + 1, 2, Luma([0]))
            .write_to(&mut bytes, ImageFormat::Png)
            .expect("png");
        bytes.into_inner()
    };
    let json_type = Some("application/json");
    // The case's name, the content type and body sent, and the status and message
    // expected.
    type Case<'a> = (&'a str, Option<&'a str>, Vec<u8>, StatusCode, &'a str);
    let cases: Vec<Case> = vec![
        (
            "text body",
            Some("text/plain"),
            b"7".to_vec(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported content type",
        ),
        (
            "no content type",
            None,
            b"{}".to_vec(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send application/json",
        ),
        (
            "two pixels",
            json_type,
            br#"{"pixels":[1,2]}"#.to_vec(),
            StatusCode::BAD_REQUEST,
            "`pixels` has 2 values; the model takes 784",
        ),
        (
            "pixel above 1",
            json_type,
            json!({ "pixels": out_of_range }).to_string().into(),
            StatusCode::BAD_REQUEST,
            "pixels[3] is 1.5",
        ),
        (
            "negative pixel",
            json_type,
            json!({ "pixels": negative }).to_string().into(),
            StatusCode::BAD_REQUEST,
            "pixels[700] is -0.25",
        ),
        (
            "cut-off JSON",
            json_type,
            br#"{"pixels": [0.5,"#.to_vec(),
            StatusCode::BAD_REQUEST,
            "not a prediction request",
        ),
        (
            "pixels as text",
            json_type,
            br#"{"pixels": "0.5"}"#.to_vec(),
            StatusCode::BAD_REQUEST,
            "invalid type",
        ),
        (
            "misspelt key",
            json_type,
            br#"{"pixel": [0.5]}"#.to_vec(),
            StatusCode::BAD_REQUEST,
            "unknown field `pixel`",
        ),
        (
            "both inputs",
            json_type,
            json!({ "pixels": pixels(1), "image": "AAAA" })
                .to_string()
                .into(),
            StatusCode::BAD_REQUEST,
            "exactly one of",
        ),
        (
            "empty batch",
            json_type,
            b"[]".to_vec(),
            StatusCode::BAD_REQUEST,
            "this one has 0",
        ),
        (
            "oversized batch",
            json_type,
            Value::Array(vec![json!({ "pixels": [0] }); MAX_BATCH + 1])
                .to_string()
                .into(),
            StatusCode::BAD_REQUEST,
            "a batch holds 1 to 256",
        ),
        (
            "bad batch item",
            json_type,
            json!([{ "pixels": pixels(1) }, { "pixels": [0.5] }])
                .to_string()
                .into(),
            StatusCode::BAD_REQUEST,
            "item 1: `pixels` has 1 values",
        ),
        (
            "not base64",
            json_type,
            br#"{"image": "%%%"}"#.to_vec(),
            StatusCode::BAD_REQUEST,
            "not valid base64",
        ),
        (
            "not an image",
            Some("image/png"),
            b"GIF89a or whatever".to_vec(),
            StatusCode::BAD_REQUEST,
            "cannot read the image",
        ),
        (
            "empty image body",
            Some("image/jpeg"),
            Vec::new(),
            StatusCode::BAD_REQUEST,
            "cannot read the image",
        ),
        (
            "image too wide",
            Some("image/png"),
            too_wide,
            StatusCode::BAD_REQUEST,
            "at most 4096x4096 pixels",
        ),
        (
            "blank image",
            Some("image/png"),
            blank_png,
            StatusCode::BAD_REQUEST,
            "cannot find a digit",
        ),
        (
            "over the body limit",
            Some("image/png"),
            vec![0; BODY_LIMIT + 1],
            StatusCode::PAYLOAD_TOO_LARGE,
            "over the limit",
        ),
    ];
    for (name, content_type, body, expected_status, expected_message) in cases {
        let (status, answer) = call(&app, "POST", "/api/predict", content_type, body).await;
        assert_eq!(status, expected_status, "{name}: {answer}");
        let error = answer["error"]
            .as_str()
            .unwrap_or_else(|| panic!("{name}: no JSON error in {answer}"));
        assert!(error.contains(expected_message), "{name}: {error}");
        assert!(!error.contains('\n'), "{name}: one line: {error}");
    }

    for (uri, expected_status, expected_message) in [
        (
            "/api/predict",
            StatusCode::METHOD_NOT_ALLOWED,
            "GET /api/predict",
        ),
        ("/api/nothing", StatusCode::NOT_FOUND, "/api/nothing"),
    ] {
        let (status, answer) = call(&app, "GET", uri, None, Vec::new()).await;
        assert_eq!(status, expected_status);
        assert!(
            answer["error"]
                .as_str()
                .is_some_and(|e| e.contains(expected_message)),
            "{answer}"
        );
    }
}

#[tokio::test]
async fn the_page_and_the_health_check() {
    let (_, app) = untrained();
    let response = app
        .clone()
        .oneshot(Request::get("/").body(Body::empty()).expect("request"))
        .await
        .expect("answers");
    assert_eq!(response.status(), StatusCode::OK);
    let content_type = response.headers()[header::CONTENT_TYPE]
        .to_str()
        .expect("ascii")
        .to_string();
    assert!(content_type.starts_with("text/html"), "{content_type}");
    let page = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    let page = String::from_utf8_lossy(&page);
    assert!(
        page.contains("<canvas id=\"pad\"") && page.contains("/api/predict"),
        "the drawing page"
    );

    let (status, health) = call(&app, "GET", "/healthz", None, Vec::new()).await;
    assert_eq!(
        (status, health),
        (StatusCode::OK, json!({ "status": "ok" }))
    );
}

#[tokio::test]
async fn a_trained_model_reads_test_digits_through_the_api() {
    let data_dir = mnist_dir();
    let tmp = tempfile::tempdir().expect("tempdir");
    let backend = trainer::backend::open(None).expect("backend");
    let request = common::quick_run(&data_dir, &tmp.path().join("run"));
    let report = tokio::task::spawn_blocking(move || train(request, &backend).expect("trains"))
        .await
        .expect("training thread");
    let device = Device::flex();
    let app = router(
        Arc::new(Predictor::new(
            report.model.clone(),
            &NetworkConfig::new(),
            device.clone(),
        )),
        ServeConfig::default(),
        Arc::new(Metrics::new("784-64-64-10", 55_050, "flex")),
    );
    let test = MnistDataset::new(Mnist::load(Some(&data_dir)).expect("data").test);
    let items: Vec<_> = (0..100).map(|i| test.get(i).expect("in range")).collect();

    let batch: Vec<Value> = items
        .iter()
        .map(|item| json!({ "pixels": item.pixels.iter().map(|&p| f32::from(p) / 255.0).collect::<Vec<_>>() }))
        .collect();
    let (status, answer) = post_json(&app, &Value::Array(batch)).await;
    assert_eq!(status, StatusCode::OK);
    let images: Vec<Vec<u8>> = items.iter().map(|item| item.pixels.clone()).collect();
    let expected = predict(&report.model, &images, &device).expect("predicts");
    let predictions = answer["predictions"].as_array().expect("predictions");
    let mut correct = 0;
    for ((api, local), item) in predictions.iter().zip(&expected).zip(&items) {
        assert_eq!(
            floats(&api["probabilities"]),
            local.probabilities,
            "JSON pixels reach the model exactly"
        );
        correct += usize::from(api["digit"] == item.label);
    }
    assert!(correct >= 85, "{correct}/100 test digits right");

    // Test image 0, a 7, as a PNG of dark ink on white.
    let seven = GrayImage::from_raw(28, 28, items[0].pixels.iter().map(|p| 255 - p).collect())
        .expect("28x28");
    let mut png = std::io::Cursor::new(Vec::new());
    seven.write_to(&mut png, ImageFormat::Png).expect("png");
    let (status, answer) = call(
        &app,
        "POST",
        "/api/predict",
        Some("image/png"),
        png.into_inner(),
    )
    .await;
    assert_eq!(
        (status, answer["digit"].as_u64()),
        (StatusCode::OK, Some(7)),
        "{answer}"
    );
}

/// Starts `trainer serve` on a free port; returns the process and its address once
/// it listens.
fn start_server(run: &RunDir) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_trainer"))
        .args([
            "serve",
            "--run",
            path_str(run.root()),
            "--addr",
            "127.0.0.1:0",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("trainer starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let addr = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|line| line.strip_prefix("listening on http://").map(String::from))
        .expect("the server says where it listens");
    // Keep draining stdout so the server never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    (child, addr)
}

/// One HTTP/1.1 exchange on a fresh connection; returns the status line and body.
fn http(addr: &str, method: &str, path: &str, content_type: &str, body: &[u8]) -> (String, String) {
    let mut stream = TcpStream::connect(addr).expect("connects");
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream
        .write_all(head.as_bytes())
        .and_then(|()| stream.write_all(body))
        .expect("sends");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("reads");
    let (head, body) = response.split_once("\r\n\r\n").expect("a response");
    (
        head.lines().next().unwrap_or_default().to_string(),
        body.to_string(),
    )
}

fn stop(mut child: Child, signal: &str) -> std::process::Output {
    let sent = Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status();
    assert!(sent.is_ok_and(|s| s.success()), "kill -{signal}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().expect("status").is_none() {
        assert!(
            Instant::now() < deadline,
            "still running 10 s after SIG{signal}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("output")
}

#[test]
fn the_server_answers_on_its_socket_and_stops_cleanly_on_sigterm_and_sigint() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let run = common::untrained_run(tmp.path());
    for signal in ["TERM", "INT"] {
        let (child, addr) = start_server(&run);
        let (status, body) = http(&addr, "GET", "/healthz", "text/plain", b"");
        assert_eq!(
            (status.as_str(), body.as_str()),
            ("HTTP/1.1 200 OK", r#"{"status":"ok"}"#)
        );
        let request = json!({ "pixels": pixels(5) }).to_string();
        let (status, body) = http(
            &addr,
            "POST",
            "/api/predict",
            "application/json",
            request.as_bytes(),
        );
        assert_eq!(status, "HTTP/1.1 200 OK", "{body}");
        assert!(body.contains("\"digit\""), "{body}");
        let (status, body) = http(&addr, "POST", "/api/predict", "application/json", b"[1,2");
        assert!(status.starts_with("HTTP/1.1 400"), "{status}: {body}");

        let output = stop(child, signal);
        assert!(
            output.status.success(),
            "SIG{signal}: {:?} {}",
            output.status,
            common::stderr(&output)
        );
        // Stderr is the log: the start, a line per request, the stop, and no error.
        let log = common::stderr(&output);
        assert!(
            log.lines().all(|line| line.contains(" INFO ")) && log.contains("stopped"),
            "{log}"
        );
        assert!(
            TcpStream::connect(&addr).is_err(),
            "the port is closed after SIG{signal}"
        );
    }
    // The handlers are in place by the time the server says where it listens.
    let (child, _) = start_server(&run);
    let output = stop(child, "TERM");
    assert!(
        output.status.success(),
        "SIGTERM at once: {:?}",
        output.status
    );
}

#[test]
fn a_busy_port_or_a_missing_model_is_one_line() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let run = common::untrained_run(tmp.path());
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    let busy = trainer(&["serve", "--run", path_str(run.root()), "--addr", &addr]);
    let line = assert_clean_failure(&busy);
    assert!(line.contains(&format!("cannot listen on {addr}")), "{line}");

    let missing = trainer(&["serve", "--run", path_str(&tmp.path().join("none"))]);
    let line = assert_clean_failure(&missing);
    assert!(line.contains("holds no trained model"), "{line}");
}
