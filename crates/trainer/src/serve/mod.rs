//! The HTTP service: a page to draw digits on, and a JSON API that answers with the
//! predicted digit and the probability of every class. The model is loaded once and
//! shared by all requests. Images, whether uploaded or drawn on the page, go through
//! the same MNIST-style preparation as `trainer predict`, on the server.
//!
//! ```text
//! GET  /              the drawing page
//! GET  /healthz       {"status": "ok"}: the process answers (liveness)
//! GET  /readyz        {"status": "ready"}, or 503 while the inference queue is full
//! GET  /metrics       Prometheus text format
//! POST /api/predict   image/png or image/jpeg bytes                -> one answer
//!                     application/json {"pixels": [784 x 0..1]}   -> one answer
//!                     application/json {"image": "<base64>"}      -> one answer
//!                     application/json [item, item, ...]          -> {"predictions": [...]}
//! ```
//!
//! An answer is `{"digit": 7, "probabilities": [10 numbers], "pixels": [...]}`, where
//! `pixels`, the prepared 28x28 input scaled to 0..1, comes only with images, so that a
//! client can see what the model saw. Every client mistake is a 4xx with a JSON body
//! `{"error": "..."}` saying what to send instead. Slow and idle clients are bounded by
//! [`ServeConfig`] (see `connections`), and every request is logged and counted.

mod access;
mod activity;
mod api;
mod connections;
mod error;
mod metrics;
mod pixel_body;
mod predictor;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use tokio::sync::Semaphore;

pub use self::access::{LogFormat, LogGuard, init_logging};
use self::api::{Answer, BodyKind, RequestError};
pub use self::api::{BODY_LIMIT, MAX_BATCH, MAX_IMAGE_SIDE};
pub use self::connections::raise_open_file_limit;
pub use self::error::ServeError;
pub use self::metrics::Metrics;
use self::metrics::Reject;
use self::predictor::Deadline;
pub use self::predictor::Predictor;

const PAGE: &str = include_str!("../../static/index.html");

/// The bounds the service holds its clients to. Each is a flag of `trainer serve`.
#[derive(Debug, Clone, PartialEq)]
pub struct ServeConfig {
    /// Connections held at once; one more sheds the quietest idle or head-less one,
    /// or gets a 503 and is closed.
    pub max_connections: usize,
    /// Time from accept, or from the previous answer, to a complete request head.
    pub header_timeout: Duration,
    /// Time a request's body may take to arrive.
    pub body_timeout: Duration,
    /// Time a connection may sit without a request before it is closed.
    pub idle_timeout: Duration,
    /// Time from a prediction request's arrival to its answer, all its work included.
    pub request_timeout: Duration,
    /// Heavy prediction requests that may wait for a CPU; more get a 503.
    pub queue_size: usize,
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self {
            // Well below the usual 1,024 open files.
            max_connections: 512,
            header_timeout: Duration::from_secs(5),
            // The 4 MiB limit at 70 KiB/s, a slow mobile link.
            body_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(60),
            request_timeout: Duration::from_secs(30),
            queue_size: 64,
        }
    }
}

/// What every request handler shares.
#[derive(Debug)]
struct Shared {
    predictor: Arc<Predictor>,
    /// The heavy lane: one permit per CPU but one for the CPU-bound work of requests
    /// that decode images or hold many items, so that a CPU is left to the light
    /// requests (a few pixel arrays), which never wait for these. More at once would
    /// not go faster, and the cap bounds the memory that images being prepared take.
    heavy: Arc<Semaphore>,
    /// Heavy requests waiting for a permit or working.
    queued: AtomicUsize,
    /// `queue_size` plus the heavy lane's permits: how many may be queued.
    capacity: usize,
    config: ServeConfig,
    metrics: Arc<Metrics>,
}

impl Shared {
    fn has_room(&self) -> bool {
        self.queued.load(Ordering::SeqCst) < self.capacity
    }
}

/// The routes of the service, answering with `predictor` within `config`'s bounds
/// and counting into `metrics`.
pub fn router(predictor: Arc<Predictor>, config: ServeConfig, metrics: Arc<Metrics>) -> Router {
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    let heavy_lane = cpus.saturating_sub(1).max(1);
    let shared = Arc::new(Shared {
        predictor,
        heavy: Arc::new(Semaphore::new(heavy_lane)),
        queued: AtomicUsize::new(0),
        capacity: heavy_lane + config.queue_size,
        config,
        metrics: metrics.clone(),
    });
    Router::new()
        .route("/", get(|| async { Html(PAGE) }))
        .route(
            "/healthz",
            get(|| async { Json(serde_json::json!({ "status": "ok" })) }),
        )
        .route("/readyz", get(ready))
        .route("/metrics", get(exposition))
        .route("/api/predict", post(predict))
        .fallback(|method: Method, uri: Uri| async move {
            RequestError::NotFound(format!("{method} {uri}"))
        })
        .method_not_allowed_fallback(|method: Method, uri: Uri| async move {
            RequestError::WrongMethod(format!("{method} {}", uri.path()))
        })
        .with_state(shared)
        .layer(axum::middleware::from_fn_with_state(
            metrics,
            access::observe,
        ))
}

/// A bound socket with the service to run on it.
#[derive(Debug)]
pub struct Server {
    listener: tokio::net::TcpListener,
    local_addr: SocketAddr,
    shutdown: Shutdown,
    app: Router,
    config: ServeConfig,
    metrics: Arc<Metrics>,
    /// Declared last so that it outlives the socket and the signal handlers it drives.
    runtime: tokio::runtime::Runtime,
}

/// Connections the kernel completes and queues for the server while it is busy
/// accepting others (capped by `net.core.somaxconn`). std's 128 drops the SYNs of a
/// burst of a few hundred clients, which then wait a second for the retry.
const LISTEN_BACKLOG: u32 = 4096;

/// A listener on the first of `addr`'s addresses that binds, with [`LISTEN_BACKLOG`].
fn listen(addr: &str) -> std::io::Result<tokio::net::TcpListener> {
    let mut last_error = None;
    for address in std::net::ToSocketAddrs::to_socket_addrs(addr)? {
        let socket = match address {
            std::net::SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
            std::net::SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
        };
        socket.set_reuseaddr(true)?;
        match socket
            .bind(address)
            .and_then(|()| socket.listen(LISTEN_BACKLOG))
        {
            Ok(listener) => return Ok(listener),
            Err(error) => last_error = Some(error),
        }
    }
    Err(last_error.unwrap_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, "no address to listen on")
    }))
}

impl Server {
    /// Binds `addr` (`host:port`; port 0 lets the system pick a free one) and installs
    /// the SIGINT and SIGTERM handlers, so that a port in use is reported before
    /// anything else happens, and once the caller says where the server listens a
    /// signal stops it cleanly instead of killing it.
    pub fn bind(
        addr: &str,
        predictor: Predictor,
        config: ServeConfig,
        metrics: Metrics,
    ) -> Result<Self, ServeError> {
        let listen_error = |error| ServeError::Listen {
            addr: addr.to_string(),
            error,
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(ServeError::Failed)?;
        let context = runtime.enter();
        let listener = listen(addr).map_err(listen_error)?;
        let local_addr = listener.local_addr().map_err(listen_error)?;
        let shutdown = Shutdown::install().map_err(ServeError::Failed)?;
        drop(context);
        let metrics = Arc::new(metrics);
        let app = router(Arc::new(predictor), config.clone(), metrics.clone());
        Ok(Self {
            listener,
            local_addr,
            shutdown,
            app,
            config,
            metrics,
            runtime,
        })
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves until SIGINT or SIGTERM, then stops taking connections, lets requests in
    /// flight finish, and returns.
    pub fn run(self) -> Result<(), ServeError> {
        let Self {
            listener,
            shutdown,
            app,
            config,
            metrics,
            runtime,
            ..
        } = self;
        runtime.block_on(connections::serve(
            listener,
            app,
            config,
            metrics,
            shutdown.wait(),
        ));
        Ok(())
    }
}

/// The signals that stop the server.
#[derive(Debug)]
struct Shutdown {
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
}

impl Shutdown {
    /// Replaces the default action of SIGINT and SIGTERM (ending the process at once).
    /// Needs to run inside the runtime.
    #[cfg(unix)]
    fn install() -> std::io::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Self {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
        })
    }

    /// Resolves at the first SIGINT or SIGTERM.
    #[cfg(unix)]
    async fn wait(mut self) {
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
    }

    #[cfg(not(unix))]
    fn install() -> std::io::Result<Self> {
        Ok(Self {})
    }

    /// Resolves at the first Ctrl-C.
    #[cfg(not(unix))]
    async fn wait(self) {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// `GET /readyz`: ready while the inference queue has room.
async fn ready(State(shared): State<Arc<Shared>>) -> Response {
    if shared.has_room() {
        Json(serde_json::json!({ "status": "ready" })).into_response()
    } else {
        RequestError::Busy.into_response()
    }
}

/// `GET /metrics`.
async fn exposition(State(shared): State<Arc<Shared>>) -> Response {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        shared.metrics.render(),
    )
        .into_response()
}

/// Counts a request as queued until dropped.
struct Queued<'a>(&'a AtomicUsize);

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// `future`'s output, or `None` if it takes longer than `limit`. A future ready at
/// once (a body that came with its headers, a free CPU) sets no timer: timers cost
/// the busy service more than the checks they make.
async fn within<F: std::future::Future>(limit: Duration, future: F) -> Option<F::Output> {
    let mut future = std::pin::pin!(future);
    let first = std::future::poll_fn(|cx| std::task::Poll::Ready(future.as_mut().poll(cx))).await;
    match first {
        std::task::Poll::Ready(output) => Some(output),
        std::task::Poll::Pending => tokio::time::timeout(limit, future).await.ok(),
    }
}

/// A JSON body up to this size is parsed on the async runtime, which takes tens of
/// microseconds; a larger one, on a blocking thread.
const READ_ON_RUNTIME: usize = 64 << 10;

/// Runs CPU-heavy work on a blocking thread, so that the runtime keeps serving.
async fn off_runtime<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, RequestError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| RequestError::Internal(e.to_string()))
}

/// Abandons a request's deadline when dropped: when its handler is (its client went
/// away, or its time ran out), the work still under way stops at the next image.
struct AbandonOnDrop(Deadline);

impl Drop for AbandonOnDrop {
    fn drop(&mut self) {
        self.0.abandon();
    }
}

async fn predict(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Answer>, RequestError> {
    let arrived = Instant::now();
    let config = &shared.config;
    let kind = BodyKind::of(&headers)?;
    // Before the body is asked for, so that a client that sent `Expect: 100-continue`
    // hears 413 instead of being invited to send it.
    if api::declared_length(&headers).is_some_and(|length| length > BODY_LIMIT as u64) {
        return Err(RequestError::TooLarge);
    }
    let body = match within(config.body_timeout, axum::body::to_bytes(body, BODY_LIMIT)).await {
        None => {
            shared.metrics.rejected(Reject::BodyTimeout);
            return Err(RequestError::BodyTimeout(config.body_timeout));
        }
        Some(Err(error)) => return Err(RequestError::from_body_error(&error)),
        Some(Ok(body)) => body,
    };
    let deadline = Deadline::new(arrived, config.request_timeout);
    let _abandon_on_drop = AbandonOnDrop(deadline.clone());
    let late = || {
        shared.metrics.rejected(Reject::RequestTimeout);
        RequestError::RequestTimeout(config.request_timeout)
    };
    // The work's own timeout is counted as the handler's is.
    let counted = |error| match error {
        RequestError::RequestTimeout(_) => late(),
        error => error,
    };
    let predictor = shared.predictor.clone();
    // A small JSON body is read where the request is, taking tens of microseconds; a
    // light request is answered there too: handing it to a blocking thread and back
    // would cost more than the work itself (a third of the throughput at 32 clients).
    let read = if matches!(kind, BodyKind::Json) && body.len() <= READ_ON_RUNTIME {
        let request = predictor.read(kind, body)?;
        if request.is_light() {
            let answer = predictor.answer(request, &deadline).map_err(counted)?;
            shared.metrics.predicted(answer.images());
            return Ok(Json(answer));
        }
        Ok(request)
    } else {
        Err(body)
    };
    if shared.queued.fetch_add(1, Ordering::SeqCst) >= shared.capacity {
        shared.queued.fetch_sub(1, Ordering::SeqCst);
        shared.metrics.rejected(Reject::QueueFull);
        return Err(RequestError::Busy);
    }
    let _queued = Queued(&shared.queued);
    let permit = within(deadline.left(), shared.heavy.clone().acquire_owned())
        .await
        .ok_or_else(late)?
        .map_err(|e| RequestError::Internal(e.to_string()))?;
    if deadline.left().is_zero() {
        return Err(late());
    }
    let work = deadline.clone();
    let answering = off_runtime(move || {
        // Held until the work stops, cancelled or not: the lane's bound is on CPUs.
        let _permit = permit;
        let request = match read {
            Ok(request) => request,
            Err(body) => predictor.read(kind, body)?,
        };
        predictor.answer(request, &work)
    });
    // Past the deadline the guard above abandons the work as the handler returns.
    let answer = within(deadline.left(), answering)
        .await
        .ok_or_else(late)??
        .map_err(counted)?;
    shared.metrics.predicted(answer.images());
    Ok(Json(answer))
}
