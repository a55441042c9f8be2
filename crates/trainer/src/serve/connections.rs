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
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tower::ServiceExt;

use super::ServeConfig;
use super::metrics::{Metrics, Reject};

/// How often a connection checks whether it has been idle too long.
const IDLE_CHECK: Duration = Duration::from_millis(250);
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
pub async fn serve(
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
        // Answers are small: sent at once, not held back to fill a packet.
        let _ = stream.set_nodelay(true);
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

/// When a connection last finished a request, and how many it has under way.
#[derive(Debug)]
struct Activity {
    started: Instant,
    /// Milliseconds after `started`.
    last_done: AtomicU64,
    busy: AtomicUsize,
}

impl Activity {
    fn idle_for(&self) -> Option<Duration> {
        if self.busy.load(Ordering::SeqCst) > 0 {
            return None;
        }
        let last = Duration::from_millis(self.last_done.load(Ordering::SeqCst));
        Some(self.started.elapsed().saturating_sub(last))
    }
}

/// Serves one connection until it closes, its headers time out, it idles past the
/// idle timeout, or the server stops.
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
        busy: AtomicUsize::new(0),
    });
    let tracked = activity.clone();
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        let (app, activity) = (app.clone(), tracked.clone());
        activity.busy.fetch_add(1, Ordering::SeqCst);
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
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(config.header_timeout);
    let connection = http.serve_connection(TokioIo::new(stream), service);
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
            () = tokio::time::sleep(IDLE_CHECK), if !closing => {
                if activity.idle_for().is_some_and(|idle| idle >= config.idle_timeout) {
                    closing = true;
                    connection.as_mut().graceful_shutdown();
                }
            }
            _ = stopped.changed(), if !closing => {
                closing = true;
                connection.as_mut().graceful_shutdown();
            }
        }
    }
}
