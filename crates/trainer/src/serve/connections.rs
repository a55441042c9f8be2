//! Holding connections: accepting them under a cap, closing those whose request head
//! is slow to arrive (counted from accept, so a connection that sends nothing holds a
//! place for the header timeout only) and those left idle, shedding the quietest
//! idle or head-less connection to admit a new one at the cap (one over it with every
//! held connection at work gets a 503), and raising the open-file limit so that the
//! cap, not the system, decides. Every refusal, shed and timeout is logged and counted.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot, watch};
use tower::ServiceExt;

use super::ServeConfig;
use super::activity::{Activity, Quiet, Verdict, Watched};
use super::metrics::{Metrics, Reject};

/// How often a connection's watchdog looks at it: the granularity of the header and
/// idle timeouts.
const WATCH: Duration = Duration::from_millis(100);
/// How long a stopping server waits for the connections it holds to finish.
const DRAIN: Duration = Duration::from_secs(10);
/// After a failed accept (out of file descriptors, say), a pause before the next, so
/// that a failing accept does not spin.
const ACCEPT_PAUSE: Duration = Duration::from_millis(50);
/// How long a connection admitted in place of a shed one waits for its place.
const ADMIT_WAIT: Duration = Duration::from_secs(1);

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
    let held = Arc::new(Held::default());
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
        let place = match admitted.clone().try_acquire_owned() {
            Ok(permit) => Place::Free(permit),
            Err(_) => match held.shed_quietest() {
                Some(shed) => {
                    metrics.rejected(Reject::Shed);
                    tracing::warn!(
                        "closing the connection from {} ({}) to admit one from {peer}: {} connections held",
                        shed.peer,
                        shed.quiet,
                        config.max_connections
                    );
                    Place::Heir(shed.place)
                }
                None => {
                    refuse(&stream, peer, &metrics, config.max_connections);
                    continue;
                }
            },
        };
        let (app, metrics, config) = (app.clone(), metrics.clone(), config.clone());
        let (stopped, open, held) = (stopped.clone(), open.clone(), held.clone());
        open.fetch_add(1, Ordering::SeqCst);
        tokio::spawn(async move {
            if let Some(permit) = place.taken().await {
                let _connection = metrics.connection();
                let activity = Arc::new(Activity::new(peer));
                let id = held.insert(activity.clone());
                connection(stream, activity.clone(), app, &config, &metrics, stopped).await;
                held.remove(id);
                activity.hand_over(permit);
            } else {
                refuse(&stream, peer, &metrics, config.max_connections);
            }
            open.fetch_sub(1, Ordering::SeqCst);
        });
    }
    let _ = stopping.send(true);
    let deadline = Instant::now() + DRAIN;
    while open.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The place of a new connection under the cap: free, or the place of a connection
/// shed for it, handed over when that one has closed.
enum Place {
    Free(OwnedSemaphorePermit),
    Heir(oneshot::Receiver<OwnedSemaphorePermit>),
}

impl Place {
    /// The permit, once the shed connection hands it over (within [`ADMIT_WAIT`]).
    async fn taken(self) -> Option<OwnedSemaphorePermit> {
        match self {
            Self::Free(permit) => Some(permit),
            Self::Heir(handed) => tokio::time::timeout(ADMIT_WAIT, handed).await.ok()?.ok(),
        }
    }
}

/// Refuses a connection beyond the cap: a 503 written without waiting (a client that
/// reads nothing gets a reset), a log line and a count.
fn refuse(stream: &TcpStream, peer: SocketAddr, metrics: &Metrics, cap: usize) {
    metrics.rejected(Reject::ConnectionLimit);
    tracing::warn!(
        "refused the connection from {peer}: all {cap} connections held are answering requests"
    );
    let _ = stream.try_write(&busy());
}

/// The connections held, so that the quietest can make room for a new one.
#[derive(Debug, Default)]
struct Held {
    connections: Mutex<(u64, HashMap<u64, Arc<Activity>>)>,
}

/// A connection closed to make room: who it was, how quiet, and its place to come.
struct Shed {
    peer: SocketAddr,
    quiet: Quiet,
    place: oneshot::Receiver<OwnedSemaphorePermit>,
}

impl Held {
    fn insert(&self, activity: Arc<Activity>) -> u64 {
        let mut held = self.connections.lock().unwrap_or_else(|e| e.into_inner());
        let (next, connections) = &mut *held;
        *next += 1;
        connections.insert(*next, activity);
        *next
    }

    fn remove(&self, id: u64) {
        let mut held = self.connections.lock().unwrap_or_else(|e| e.into_inner());
        held.1.remove(&id);
    }

    /// Closes the connection that has been quiet longest, waiting for a request head
    /// or idle between requests; none while every one is answering a request.
    fn shed_quietest(&self) -> Option<Shed> {
        let held = self.connections.lock().unwrap_or_else(|e| e.into_inner());
        let (activity, quiet) = held
            .1
            .values()
            .filter(|activity| !activity.shed.load(Ordering::SeqCst))
            .filter_map(|activity| Some((activity, activity.quiet()?)))
            .max_by_key(|(_, quiet)| quiet.duration())?;
        let (heir, place) = oneshot::channel();
        *activity.heir.lock().unwrap_or_else(|e| e.into_inner()) = Some(heir);
        activity.shed.store(true, Ordering::SeqCst);
        activity.close.notify_one();
        Some(Shed {
            peer: activity.peer,
            quiet,
            place,
        })
    }
}

/// Serves one connection until it closes, a request's head takes longer than the
/// header timeout, it idles past the idle timeout, it is shed, or the server stops.
async fn connection(
    stream: TcpStream,
    activity: Arc<Activity>,
    app: Router,
    config: &ServeConfig,
    metrics: &Metrics,
    mut stopped: watch::Receiver<bool>,
) {
    let peer = activity.peer;
    let tracked = activity.clone();
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        let (app, activity) = (app.clone(), tracked.clone());
        activity.busy.fetch_add(1, Ordering::SeqCst);
        activity.head_started.store(0, Ordering::SeqCst);
        async move {
            let response = app.oneshot(request.map(axum::body::Body::new)).await;
            activity
                .last_done
                .store(activity.now_ms(), Ordering::SeqCst);
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
            () = activity.close.notified() => return,
            () = tokio::time::sleep(WATCH), if !closing => match activity.verdict(config) {
                Verdict::SlowHead => {
                    metrics.rejected(Reject::HeaderTimeout);
                    tracing::info!(
                        "closed the connection from {peer}: no complete request head within {} s",
                        config.header_timeout.as_secs_f64()
                    );
                    return;
                }
                Verdict::Done => {
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
