//! Holding connections: accepting them under a cap, closing those whose request head
//! is slow to arrive (counted from accept, so a connection that sends nothing holds a
//! place for the header timeout only) and those left idle, shedding the quietest
//! idle or head-less connection to admit a new one at the cap (one over it with every
//! held connection at work gets a 503), and raising the open-file limit so that the
//! cap, not the system, decides. Every refusal, shed and timeout is logged and counted.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, oneshot, watch};
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
/// How long a connection admitted in place of a shed one waits for its place.
const ADMIT_WAIT: Duration = Duration::from_secs(1);
/// An end of input this soon after a request's last byte is a client that shut down
/// its sending side with the request and waits for the answer; one after a longer
/// silence is a client that gave up waiting.
const HALF_CLOSE_GRACE: Duration = Duration::from_millis(500);

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

/// What a connection is doing, as its watchdog sees it: requests under way, when the
/// last one ended, when the bytes of the next one began to arrive, and whether the
/// client has stopped sending.
#[derive(Debug)]
struct Activity {
    peer: SocketAddr,
    started: Instant,
    /// Milliseconds after `started`.
    last_done: AtomicU64,
    /// Milliseconds after `started`, plus one; 0 while no byte of a next request came.
    /// It starts at 1: the first request's head is awaited from accept.
    head_started: AtomicU64,
    /// Milliseconds after `started` of the last byte read.
    last_read: AtomicU64,
    busy: AtomicUsize,
    /// The client shut down its sending side after its request: close once answered.
    done_sending: AtomicBool,
    /// Picked to make room for a new connection.
    shed: AtomicBool,
    /// The connection admitted in its place, to be handed its permit: through the
    /// semaphore, another accept could take it first.
    heir: Mutex<Option<oneshot::Sender<OwnedSemaphorePermit>>>,
    /// Wakes the connection to close it.
    close: Notify,
}

/// How long a connection with no request under way has been quiet.
#[derive(Debug, Clone, Copy)]
enum Quiet {
    /// Waiting for a complete request head, since accept or since its first byte.
    Head(Duration),
    /// Idle since its last answer.
    Idle(Duration),
}

impl Quiet {
    fn duration(self) -> Duration {
        match self {
            Self::Head(quiet) | Self::Idle(quiet) => quiet,
        }
    }
}

impl std::fmt::Display for Quiet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Head(quiet) => write!(f, "no request head for {:.1} s", quiet.as_secs_f64()),
            Self::Idle(quiet) => write!(f, "idle for {:.1} s", quiet.as_secs_f64()),
        }
    }
}

/// What the watchdog makes of a connection.
enum Verdict {
    Fine,
    /// A request's head has been arriving for too long: close at once.
    SlowHead,
    /// No request for too long, or the client sends no more: close once nothing is
    /// under way.
    Done,
}

impl Activity {
    fn new(peer: SocketAddr) -> Self {
        Self {
            peer,
            started: Instant::now(),
            last_done: AtomicU64::new(0),
            head_started: AtomicU64::new(1),
            last_read: AtomicU64::new(0),
            busy: AtomicUsize::new(0),
            done_sending: AtomicBool::new(false),
            shed: AtomicBool::new(false),
            heir: Mutex::new(None),
            close: Notify::new(),
        }
    }

    /// Gives the connection's permit to the one admitted in its place, if any, or back.
    fn hand_over(&self, permit: OwnedSemaphorePermit) {
        let heir = self.heir.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(heir) = heir {
            // An heir that gave up waiting drops the permit, which returns it.
            let _ = heir.send(permit);
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn since(&self, ms: u64) -> Duration {
        Duration::from_millis(self.now_ms().saturating_sub(ms))
    }

    /// How long the connection has been quiet; `None` while a request is under way.
    fn quiet(&self) -> Option<Quiet> {
        if self.busy.load(Ordering::SeqCst) > 0 {
            return None;
        }
        Some(match self.head_started.load(Ordering::SeqCst) {
            0 => Quiet::Idle(self.since(self.last_done.load(Ordering::SeqCst))),
            started => Quiet::Head(self.since(started - 1)),
        })
    }

    fn verdict(&self, config: &ServeConfig) -> Verdict {
        match self.quiet() {
            Some(Quiet::Head(quiet)) if quiet >= config.header_timeout => Verdict::SlowHead,
            Some(Quiet::Idle(quiet)) if quiet >= config.idle_timeout => Verdict::Done,
            Some(_) if self.done_sending.load(Ordering::SeqCst) => Verdict::Done,
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
        let activity = self.activity.clone();
        if activity.done_sending.load(Ordering::SeqCst) {
            // The watchdog closes the connection once the answer is out.
            return std::task::Poll::Pending;
        }
        let before = buf.filled().len();
        let polled = std::pin::Pin::new(&mut self.stream).poll_read(cx, buf);
        if !matches!(polled, std::task::Poll::Ready(Ok(()))) {
            return polled;
        }
        let now = activity.now_ms();
        if buf.filled().len() > before {
            activity.last_read.store(now, Ordering::SeqCst);
            if activity.busy.load(Ordering::SeqCst) == 0 {
                let _ = activity.head_started.compare_exchange(
                    0,
                    now.saturating_add(1),
                    Ordering::SeqCst,
                    Ordering::SeqCst,
                );
            }
        } else if buf.remaining() > 0
            && activity.busy.load(Ordering::SeqCst) > 0
            && activity.since(activity.last_read.load(Ordering::SeqCst)) < HALF_CLOSE_GRACE
        {
            // The end of input right behind the request: the client shut down its
            // sending side and reads the answer. Passed on, it would make hyper drop
            // the request as abandoned.
            activity.done_sending.store(true, Ordering::SeqCst);
            return std::task::Poll::Pending;
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
