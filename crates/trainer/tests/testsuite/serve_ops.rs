//! `trainer serve` as operators run it, through the real binary on loopback: slow and
//! idle clients time out, a flood beyond the connection cap leaves the admitted ones
//! served, a full queue answers 503 with Retry-After, every request is logged, and
//! `/metrics` counts exactly what was sent and passes `promtool check metrics`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use trainer::run_dir::RunDir;

use crate::common::{self, served::Served};

/// A server of an untrained run in `dir/run`, started with `flags` under `ulimit`
/// ([`Served::start`]): the server, the run, and the log, `dir/server.log`.
fn untrained_server(dir: &Path, ulimit: &str, flags: &[&str]) -> (Served, RunDir, PathBuf) {
    let run = common::untrained_run(&dir.join("run"));
    let log = dir.join("server.log");
    let server = Served::start(run.root(), ulimit, flags, &log);
    (server, run, log)
}

fn pixels_body(images: usize) -> Vec<u8> {
    let one = format!("{{\"pixels\": [{}]}}", vec!["0.5"; 784].join(","));
    let body = match images {
        1 => one,
        n => format!("[{}]", vec![one; n].join(",")),
    };
    body.into_bytes()
}

fn predict(server: &Served, images: usize) -> (u16, String) {
    server.ask(
        "POST /api/predict HTTP/1.1\r\nContent-Type: application/json",
        &pixels_body(images),
    )
}

/// Whether the server has closed `stream`: a read ends (or a 408 arrives) at once.
fn closed(stream: &mut TcpStream) -> bool {
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let mut buffer = [0u8; 64];
    match stream.read(&mut buffer) {
        Ok(0) => true,
        Ok(n) => buffer[..n].starts_with(b"HTTP/1.1 408"),
        Err(error) => error.kind() == std::io::ErrorKind::ConnectionReset,
    }
}

/// Whether the server still holds `stream` open: nothing to read yet, neither an
/// end nor a 408. Peeks, so [`closed`] still sees what arrives later.
fn still_held(stream: &TcpStream) -> bool {
    stream.set_nonblocking(true).expect("non-blocking");
    let mut buffer = [0u8; 1];
    let held = matches!(stream.peek(&mut buffer), Err(error) if error.kind() == std::io::ErrorKind::WouldBlock);
    stream.set_nonblocking(false).expect("blocking");
    held
}

#[test]
fn half_sent_requests_time_out_while_a_normal_client_is_served() {
    let tmp = tempfile::tempdir().expect("tempdir");
    // A soft limit of 256 open files, below the 300 connections held: the server
    // raises it to the hard limit and lets its connection cap decide.
    let (server, _, _) = untrained_server(tmp.path(), "ulimit -Sn 256", &["--header-timeout", "4"]);
    let mut slow: Vec<TcpStream> = (0..300)
        .map(|_| {
            let mut stream = TcpStream::connect(&server.addr).expect("connects");
            stream
                .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
                .expect("half a request");
            stream
        })
        .collect();
    // Health checks are answered while the slow clients are still held, not after
    // their timeout has freed the server: no clock bound, which a loaded machine
    // could break, only the order of events.
    for _ in 0..10 {
        let (status, _) = server.get("/healthz");
        assert_eq!(status, 200);
        let last = slow.last().expect("slow clients");
        assert!(
            still_held(last),
            "a health check waited for the slow clients' header timeout"
        );
    }
    std::thread::sleep(Duration::from_millis(5500));
    let still_open = slow.iter_mut().map(closed).filter(|gone| !gone).count();
    assert_eq!(
        still_open, 0,
        "slow clients are closed by the header timeout"
    );
    let (status, _) = server.get("/healthz");
    assert_eq!(status, 200);
}

#[test]
fn a_flood_beyond_the_cap_leaves_the_admitted_connections_served() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (server, _, log) = untrained_server(tmp.path(), "true", &["--max-connections", "20"]);
    // Each admitted connection is at work: its request's body is on its way, so none
    // can be shed to make room.
    let body = pixels_body(1);
    let (first, rest) = body.split_at(10);
    let mut admitted: Vec<TcpStream> = (0..20)
        .map(|_| {
            let mut stream = TcpStream::connect(&server.addr).expect("connects");
            let head = format!(
                "POST /api/predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                body.len()
            );
            stream.write_all(head.as_bytes()).expect("head");
            stream.write_all(first).expect("a first part of the body");
            stream
        })
        .collect();
    // Let the server take them in before the flood arrives.
    std::thread::sleep(Duration::from_millis(300));
    let mut refused = 0;
    for _ in 0..100 {
        let mut extra = TcpStream::connect(&server.addr).expect("the kernel accepts");
        extra
            .set_read_timeout(Some(Duration::from_secs(3)))
            .expect("timeout");
        let mut answer = String::new();
        let _ = extra.read_to_string(&mut answer);
        refused += usize::from(answer.is_empty() || answer.starts_with("HTTP/1.1 503"));
    }
    assert_eq!(refused, 100, "every connection over the cap is turned away");
    for stream in &mut admitted {
        stream.write_all(rest).expect("the rest of the body");
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let mut buffer = [0u8; 256];
        let n = stream.read(&mut buffer).expect("an answer");
        assert!(
            buffer[..n].starts_with(b"HTTP/1.1 200"),
            "{:?}",
            String::from_utf8_lossy(&buffer[..n])
        );
    }
    // The log is written in batches, behind the answers.
    let refusals = || {
        std::fs::read_to_string(&log)
            .expect("log")
            .matches("refused the connection from 127.0.0.1:")
            .count()
    };
    let waited = Instant::now();
    while refusals() < 100 && waited.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(refusals(), 100, "every refusal is logged");
    drop(admitted);
    std::thread::sleep(Duration::from_millis(500));
    let (_, metrics) = server.get("/metrics");
    assert!(
        metrics.contains(r#"trainer_rejected_total{cause="connection_limit"} 100"#),
        "{metrics}"
    );
}

#[test]
fn slow_bodies_full_queues_and_late_answers_are_told_apart() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (server, run, _) = untrained_server(
        tmp.path(),
        "true",
        &["--body-timeout", "1", "--queue-size", "0", "--quiet"],
    );
    // A body that stops halfway.
    let mut stream = TcpStream::connect(&server.addr).expect("connects");
    stream
        .write_all(b"POST /api/predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"pix")
        .expect("send");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut answer = vec![0u8; 512];
    let n = stream.read(&mut answer).expect("an answer");
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(
        answer.starts_with("HTTP/1.1 408") && answer.contains("did not arrive"),
        "{answer}"
    );

    // More batches at once than CPUs, with no queue: some wait for none and are told
    // to come back.
    let busy: Vec<(u16, String)> = std::thread::scope(|scope| {
        let asks: Vec<_> = (0..16)
            .map(|_| scope.spawn(|| predict(&server, 256)))
            .collect();
        asks.into_iter().map(|a| a.join().expect("joins")).collect()
    });
    let refused: Vec<&String> = busy
        .iter()
        .filter(|(s, _)| *s == 503)
        .map(|(_, a)| a)
        .collect();
    assert!(!refused.is_empty(), "16 batches at once on a queue of 0");
    assert!(busy.iter().all(|(s, _)| *s == 200 || *s == 503));
    for answer in refused {
        let lower = answer.to_ascii_lowercase();
        assert!(
            lower.contains("retry-after: 1") && answer.contains("queue is full"),
            "{answer}"
        );
    }
    let (status, ready) = server.get("/readyz");
    assert_eq!(status, 200, "{ready}");

    let impatient = tmp.path().join("impatient.log");
    let late = Served::start(
        run.root(),
        "true",
        &["--request-timeout", "0.000001"],
        &impatient,
    );
    let (status, answer) = predict(&late, 256);
    assert_eq!(status, 503, "{answer}");
    assert!(answer.contains("could not answer within"), "{answer}");
}

#[test]
fn every_request_is_logged_and_counted() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (server, run, log) = untrained_server(tmp.path(), "true", &["--log-format", "json"]);
    for _ in 0..7 {
        assert_eq!(predict(&server, 1).0, 200);
    }
    assert_eq!(predict(&server, 5).0, 200);
    for _ in 0..3 {
        assert_eq!(server.get("/healthz").0, 200);
    }
    assert_eq!(server.get("/nowhere").0, 404);
    let (status, metrics) = server.get("/metrics");
    assert_eq!(status, 200);
    let body = metrics
        .split("\r\n\r\n")
        .nth(1)
        .expect("a body")
        .to_string();
    for line in [
        r#"trainer_http_requests_total{path="/api/predict",status="200"} 8"#,
        r#"trainer_http_requests_total{path="/healthz",status="200"} 3"#,
        r#"trainer_http_requests_total{path="unmatched",status="404"} 1"#,
        "trainer_images_predicted_total 12",
        "trainer_prediction_batch_size_count 8",
        r#"trainer_model_info{architecture="784-64-64-10",parameters="55050",backend="flex"} 1"#,
    ] {
        assert!(body.contains(line), "{line} in {body}");
    }
    // The log is written in batches, a few milliseconds behind.
    let access_lines = || -> Vec<serde_json::Value> {
        std::fs::read_to_string(&log)
            .expect("log")
            .lines()
            .filter_map(|line| serde_json::from_str(line).ok())
            .filter(|line: &serde_json::Value| line["target"] == "access")
            .collect()
    };
    let waited = Instant::now();
    while access_lines().len() < 13 && waited.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let lines = access_lines();
    assert_eq!(lines.len(), 13, "one line per request, /metrics included");
    let first = &lines[0];
    assert_eq!(
        (
            first["method"].as_str(),
            first["path"].as_str(),
            first["status"].as_u64()
        ),
        (Some("POST"), Some("/api/predict"), Some(200))
    );
    assert!(
        first["bytes"].as_u64() > Some(0)
            && first["peer"]
                .as_str()
                .is_some_and(|p| p.starts_with("127.0.0.1:")),
        "{first}"
    );

    let quiet_log = tmp.path().join("quiet.log");
    let quiet = Served::start(run.root(), "true", &["--quiet"], &quiet_log);
    assert_eq!(quiet.get("/healthz").0, 200);
    let waited = Instant::now();
    while !std::fs::read_to_string(&quiet_log)
        .expect("log")
        .contains("serving")
        && waited.elapsed() < Duration::from_secs(30)
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(quiet);
    let text = std::fs::read_to_string(&quiet_log).expect("log");
    assert!(!text.contains("access"), "{text}");
    assert!(text.contains("serving"), "start is still logged: {text}");
}

#[test]
#[ignore = "needs Prometheus's promtool (Debian's prometheus; .ci/run installs it); run with --ignored"]
fn the_metrics_pass_promtool() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (server, _, _) = untrained_server(tmp.path(), "true", &[]);
    assert_eq!(predict(&server, 5).0, 200);
    assert_eq!(server.get("/nowhere").0, 404);
    let (status, metrics) = server.get("/metrics");
    assert_eq!(status, 200);
    let body = metrics.split("\r\n\r\n").nth(1).expect("a body");
    let mut check = Command::new(common::promtool())
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool runs");
    check
        .stdin
        .take()
        .expect("stdin")
        .write_all(body.as_bytes())
        .expect("feed");
    let output = check.wait_with_output().expect("promtool ends");
    assert!(
        output.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
