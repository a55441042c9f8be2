//! The service's log on stderr, through `tracing`: one line per request (method, path,
//! status, bytes, latency, peer), and the service's start, errors and shutdown, as
//! text or JSON; `--quiet` leaves out the request lines.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, mpsc};
use std::time::Instant;

use axum::body::HttpBody as _;
use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::Response;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use super::metrics::Metrics;

/// The `tracing` target of the per-request lines.
const ACCESS: &str = "access";

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// `2026-12-01T21:09:16Z INFO access: method=POST path=/api/predict status=200 ...`
    #[default]
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

/// Installs the process's logger on stderr; `quiet` drops the access lines. A logger
/// already installed (a second server in one process) is kept. Lines are written by a
/// thread of their own, so that no request waits for stderr; dropping the returned
/// guard writes out what is left.
pub fn init_logging(format: LogFormat, quiet: bool) -> LogGuard {
    let (sender, lines) = mpsc::channel::<Message>();
    std::thread::spawn(move || write_lines(&lines));
    let sink = LogSink(sender.clone());
    let access = if quiet {
        LevelFilter::OFF
    } else {
        LevelFilter::INFO
    };
    let filter = Targets::new()
        .with_default(LevelFilter::INFO)
        .with_target(ACCESS, access);
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(sink)
        .with_ansi(false);
    let registry = tracing_subscriber::registry().with(filter);
    let _ = match format {
        LogFormat::Text => registry.with(layer).try_init(),
        LogFormat::Json => registry.with(layer.json().flatten_event(true)).try_init(),
    };
    LogGuard { sender }
}

enum Message {
    Line(Vec<u8>),
    /// Write out everything before this, then answer.
    Flush(mpsc::SyncSender<()>),
}

/// How long the writing thread lets lines gather before it writes them: under load, a
/// wake-up and a system call per line would cost the service a tenth of its
/// throughput.
const GATHER: std::time::Duration = std::time::Duration::from_millis(20);

/// Writes lines to stderr, in batches when they come fast.
fn write_lines(lines: &mpsc::Receiver<Message>) {
    let mut out = std::io::BufWriter::new(std::io::stderr());
    while let Ok(first) = lines.recv() {
        let mut next = Some(first);
        let mut batch = 0;
        while let Some(message) = next {
            batch += 1;
            match message {
                Message::Line(line) => {
                    let _ = out.write_all(&line);
                }
                Message::Flush(done) => {
                    let _ = out.flush();
                    let _ = done.send(());
                }
            }
            next = lines.try_recv().ok();
        }
        let _ = out.flush();
        // A line on its own (the start, an error) is written at once; lines that come
        // fast are gathered.
        if batch > 1 {
            std::thread::sleep(GATHER);
        }
    }
}

/// Where the logger's formatted lines go: to the writing thread.
struct LogSink(mpsc::Sender<Message>);

/// One line on its way to the writing thread.
#[derive(Debug)]
pub(crate) struct LineWriter(mpsc::Sender<Message>);

impl Write for LineWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        // With the writing thread gone (at exit) the line is lost, as with a closed
        // stderr.
        let _ = self.0.send(Message::Line(bytes.to_vec()));
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for LogSink {
    type Writer = LineWriter;

    fn make_writer(&'a self) -> LineWriter {
        LineWriter(self.0.clone())
    }
}

/// Writes out the lines still queued when dropped.
#[derive(Debug)]
pub struct LogGuard {
    sender: mpsc::Sender<Message>,
}

impl Drop for LogGuard {
    fn drop(&mut self) {
        let (done, wait) = mpsc::sync_channel(1);
        if self.sender.send(Message::Flush(done)).is_ok() {
            let _ = wait.recv_timeout(std::time::Duration::from_secs(5));
        }
    }
}

/// The routes the service has, as metric labels: a fixed set, so that clients
/// cannot multiply the series by inventing paths.
const ROUTES: [&str; 5] = ["/", "/healthz", "/readyz", "/metrics", "/api/predict"];

/// The status logged and counted for a request whose client went away before its
/// answer was ready, as nginx does.
const CLIENT_CLOSED: u16 = 499;

/// Logs and counts every request: wraps the routes as a middleware.
pub(crate) async fn observe(
    State(metrics): State<Arc<Metrics>>,
    request: Request,
    next: Next,
) -> Response {
    let _in_flight = metrics.in_flight();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .and_then(|matched| ROUTES.iter().find(|route| **route == matched.as_str()))
        .copied()
        .unwrap_or("unmatched");
    // What only the log needs is taken only when the log is on.
    let logged = tracing::enabled!(target: ACCESS, tracing::Level::INFO).then(|| {
        let peer = request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(peer)| *peer);
        (
            request.method().clone(),
            request.uri().path().to_string(),
            peer,
        )
    });
    let mut entry = Entry {
        metrics: metrics.clone(),
        route,
        started: Instant::now(),
        logged,
        written: false,
    };
    let response = next.run(request).await;
    let bytes = response.body().size_hint().exact().or_else(|| {
        response
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse().ok())
    });
    entry.write(response.status().as_u16(), bytes.unwrap_or(0));
    response
}

/// A request's log line and count, written once: with its answer's status, or with
/// [`CLIENT_CLOSED`] when the request is dropped unanswered.
struct Entry {
    metrics: Arc<Metrics>,
    route: &'static str,
    started: Instant,
    logged: Option<(axum::http::Method, String, Option<SocketAddr>)>,
    written: bool,
}

impl Entry {
    fn write(&mut self, status: u16, bytes: u64) {
        self.written = true;
        let seconds = self.started.elapsed().as_secs_f64();
        self.metrics.answered(self.route, status, seconds);
        if let Some((method, path, peer)) = &self.logged {
            let peer = peer.map(|p| p.to_string()).unwrap_or_default();
            tracing::info!(
                target: ACCESS,
                %method,
                %path,
                status,
                bytes,
                latency_ms = seconds * 1e3,
                %peer,
            );
        }
    }
}

impl Drop for Entry {
    fn drop(&mut self) {
        if !self.written {
            self.write(CLIENT_CLOSED, 0);
        }
    }
}
