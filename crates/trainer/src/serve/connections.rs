//! Holding connections: accepting them under a cap (one over it gets a 503 and is
//! closed, so the ones admitted keep being served), closing those whose request
//! headers are slow to arrive and those left idle, and raising the open-file limit so
//! that the cap, not the system, decides.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tower::ServiceExt;

use super::ServeConfig;
use super::metrics::{Metrics, Reject};

/// How often a connection's watchdog looks at it: the granularity of the header and
/// idle timeouts.
const WATCH: Duration = Duration::from_millis(100);
/// How long a stopping server waits for the connections it holds to finish.
const DRAIN: Duration = Duration::from_secs(10);
/// After a failed accept (out of file descriptors, say), a pause before the next, so
/// that a failing accept does not spin.
const ACCEPT_PAUSE: Duration = Duration::from_millis(50);

/// What a connection beyond the cap is told before it is closed.
fn busy() -> Vec<u8> {
    let body = r#"{"error": "the server holds as many connections as it may; retry in a second"}"#;
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Raises the soft limit of open files to the hard one, returning the new soft limit.
pub fn raise_open_file_limit() -> std::io::Result<u64> {
    rlimit::increase_nofile_limit(u64::MAX)
}

/// Serves `app` on `listener` until `stop` resolves, then lets the connections held
/// finish their requests (for at most [`DRAIN`]).
pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    config: ServeConfig,
    metrics: Arc<Metrics>,
    stop: impl std::future::Future<Output = ()>,
) {
    let admitted = Arc::new(Semaphore::new(config.max_connections));
    let (stopping, stopped) = watch::channel(false);
    let open = Arc::new(AtomicUsize::new(0));
    tokio::pin!(stop);
    loop {
        let accepted = tokio::select! {
            () = &mut stop => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(error) => {
                metrics.rejected(Reject::AcceptFailed);
                tracing::warn!("cannot accept a connection: {error}");
                tokio::time::sleep(ACCEPT_PAUSE).await;
                continue;
            }
        };
        let Ok(permit) = admitted.clone().try_acquire_owned() else {
            metrics.rejected(Reject::ConnectionLimit);
            // Best effort, without waiting: a client that reads nothing gets a reset.
            let _ = stream.try_write(&busy());
            continue;
        };
        let (app, metrics, config) = (app.clone(), metrics.clone(), config.clone());
        let (stopped, open) = (stopped.clone(), open.clone());
        open.fetch_add(1, Ordering::SeqCst);
        tokio::spawn(async move {
            let _connection = metrics.connection();
            connection(stream, peer, app, &config, stopped).await;
            drop(permit);
            open.fetch_sub(1, Ordering::SeqCst);
        });
    }
    let _ = stopping.send(true);
    let deadline = Instant::now() + DRAIN;
    while open.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// What a connection is doing, as its watchdog sees it: requests under way, when the
/// last one ended, and when the bytes of the next one began to arrive.
#[derive(Debug)]
struct Activity {
    started: Instant,
    /// Milliseconds after `started`.
    last_done: AtomicU64,
    /// Milliseconds after `started`, plus one; 0 while no byte of a next request came.
    head_started: AtomicU64,
    busy: AtomicUsize,
}

/// What the watchdog makes of a connection.
enum Verdict {
    Fine,
    /// A request's head has been arriving for too long: close at once.
    SlowHead,
    /// No request for too long: close once nothing is under way.
    Idle,
}

impl Activity {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn verdict(&self, config: &ServeConfig) -> Verdict {
        if self.busy.load(Ordering::SeqCst) > 0 {
            return Verdict::Fine;
        }
        let now = self.now_ms();
        let since = |ms: u64| Duration::from_millis(now.saturating_sub(ms));
        match self.head_started.load(Ordering::SeqCst) {
            0 if since(self.last_done.load(Ordering::SeqCst)) >= config.idle_timeout => {
                Verdict::Idle
            }
            0 => Verdict::Fine,
            started if since(started - 1) >= config.header_timeout => Verdict::SlowHead,
            _ => Verdict::Fine,
        }
    }
}

/// The client's socket, noting when the bytes of a request begin to arrive: hyper's own
/// header timer costs a timer per request, this one an atomic per read.
struct Watched {
    stream: TcpStream,
    activity: Arc<Activity>,
}

impl tokio::io::AsyncRead for Watched {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = std::pin::Pin::new(&mut self.stream).poll_read(cx, buf);
        if buf.filled().len() > before && self.activity.busy.load(Ordering::SeqCst) == 0 {
            let now = self.activity.now_ms().saturating_add(1);
            let _ = self.activity.head_started.compare_exchange(
                0,
                now,
                Ordering::SeqCst,
                Ordering::SeqCst,
            );
        }
        polled
    }
}

impl tokio::io::AsyncWrite for Watched {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

/// Serves one connection until it closes, a request's head takes longer than the
/// header timeout, it idles past the idle timeout, or the server stops.
async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    app: Router,
    config: &ServeConfig,
    mut stopped: watch::Receiver<bool>,
) {
    let activity = Arc::new(Activity {
        started: Instant::now(),
        last_done: AtomicU64::new(0),
        head_started: AtomicU64::new(0),
        busy: AtomicUsize::new(0),
    });
    let tracked = activity.clone();
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        let (app, activity) = (app.clone(), tracked.clone());
        activity.busy.fetch_add(1, Ordering::SeqCst);
        activity.head_started.store(0, Ordering::SeqCst);
        async move {
            let response = app.oneshot(request.map(axum::body::Body::new)).await;
            let done = activity.started.elapsed().as_millis();
            activity
                .last_done
                .store(u64::try_from(done).unwrap_or(u64::MAX), Ordering::SeqCst);
            activity.busy.fetch_sub(1, Ordering::SeqCst);
            Ok::<_, Infallible>(response.unwrap_or_else(|never| match never {}))
        }
    });
    let watched = Watched {
        stream,
        activity: activity.clone(),
    };
    let mut http = hyper::server::conn::http1::Builder::new();
    // The watchdog below times request heads.
    http.header_read_timeout(None);
    let connection = http.serve_connection(TokioIo::new(watched), service);
    tokio::pin!(connection);
    let mut closing = false;
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!("connection from {peer} ended: {error}");
                }
                return;
            }
            () = tokio::time::sleep(WATCH), if !closing => match activity.verdict(config) {
                Verdict::SlowHead => return,
                Verdict::Idle => {
                    closing = true;
                    connection.as_mut().graceful_shutdown();
                }
                Verdict::Fine => {}
            },
            _ = stopped.changed(), if !closing => {
                closing = true;
                connection.as_mut().graceful_shutdown();
            }
        }
    }
}
