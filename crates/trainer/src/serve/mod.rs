//! The HTTP service: a page to draw digits on, and a JSON API that answers with the
//! predicted digit and the probability of every class. The model is loaded once and
//! shared by all requests. Images, whether uploaded or drawn on the page, go through
//! the same MNIST-style preparation as `trainer predict`, on the server.
//!
//! ```text
//! GET  /              the drawing page
//! GET  /healthz       {"status": "ok"}
//! POST /api/predict   image/png or image/jpeg bytes                -> one answer
//!                     application/json {"pixels": [784 x 0..1]}   -> one answer
//!                     application/json {"image": "<base64>"}      -> one answer
//!                     application/json [item, item, ...]          -> {"predictions": [...]}
//! ```
//!
//! An answer is `{"digit": 7, "probabilities": [10 numbers], "pixels": [...]}`, where
//! `pixels`, the prepared 28x28 input scaled to 0..1, comes only with images, so that a
//! client can see what the model saw. Every client mistake is a 4xx with a JSON body
//! `{"error": "..."}` saying what to send instead.

mod api;
mod predictor;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Html;
use axum::routing::{get, post};
use axum::{Json, Router};
use tokio::sync::Semaphore;

use self::api::{Answer, BodyKind, RequestError};
pub use self::api::{BODY_LIMIT, MAX_BATCH, MAX_IMAGE_SIDE};
pub use self::predictor::Predictor;
use crate::TrainerError;

const PAGE: &str = include_str!("../../static/index.html");

/// What every request handler shares.
#[derive(Debug, Clone)]
struct Shared {
    predictor: Arc<Predictor>,
    /// One permit per CPU for the CPU-bound work of a request: more at once would not
    /// go faster, and the cap bounds the memory that images being prepared can take.
    workers: Arc<Semaphore>,
}

/// The routes of the service, answering with `predictor`.
pub fn router(predictor: Arc<Predictor>) -> Router {
    let workers = std::thread::available_parallelism().map_or(1, usize::from);
    let shared = Shared {
        predictor,
        workers: Arc::new(Semaphore::new(workers)),
    };
    Router::new()
        .route("/", get(|| async { Html(PAGE) }))
        .route(
            "/healthz",
            get(|| async { Json(serde_json::json!({ "status": "ok" })) }),
        )
        .route("/api/predict", post(predict))
        .fallback(|method: Method, uri: Uri| async move {
            RequestError::NotFound(format!("{method} {uri}"))
        })
        .method_not_allowed_fallback(|method: Method, uri: Uri| async move {
            RequestError::WrongMethod(format!("{method} {}", uri.path()))
        })
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(shared)
}

/// A bound socket with the service to run on it.
#[derive(Debug)]
pub struct Server {
    listener: tokio::net::TcpListener,
    local_addr: SocketAddr,
    shutdown: Shutdown,
    predictor: Arc<Predictor>,
    /// Declared last so that it outlives the socket and the signal handlers it drives.
    runtime: tokio::runtime::Runtime,
}

impl Server {
    /// Binds `addr` (`host:port`; port 0 lets the system pick a free one) and installs
    /// the SIGINT and SIGTERM handlers, so that a port in use is reported before
    /// anything else happens, and once the caller says where the server listens a
    /// signal stops it cleanly instead of killing it.
    pub fn bind(addr: &str, predictor: Predictor) -> Result<Self, TrainerError> {
        let listen_error = |error| TrainerError::Listen {
            addr: addr.to_string(),
            error,
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(TrainerError::Serve)?;
        let listener = std::net::TcpListener::bind(addr).map_err(listen_error)?;
        let local_addr = listener.local_addr().map_err(listen_error)?;
        listener.set_nonblocking(true).map_err(listen_error)?;
        let context = runtime.enter();
        let listener = tokio::net::TcpListener::from_std(listener).map_err(listen_error)?;
        let shutdown = Shutdown::install().map_err(TrainerError::Serve)?;
        drop(context);
        Ok(Self {
            listener,
            local_addr,
            shutdown,
            predictor: Arc::new(predictor),
            runtime,
        })
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves until SIGINT or SIGTERM, then stops taking connections, lets requests in
    /// flight finish, and returns.
    pub fn run(self) -> Result<(), TrainerError> {
        let Self {
            listener,
            shutdown,
            predictor,
            runtime,
            ..
        } = self;
        runtime
            .block_on(async {
                axum::serve(listener, router(predictor))
                    .with_graceful_shutdown(shutdown.wait())
                    .await
            })
            .map_err(TrainerError::Serve)
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

async fn predict(
    State(shared): State<Shared>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Answer>, RequestError> {
    let kind = BodyKind::of(&headers)?;
    let body = body.map_err(|rejection| match rejection.status() {
        StatusCode::PAYLOAD_TOO_LARGE => RequestError::TooLarge,
        _ => RequestError::Body(rejection.body_text()),
    })?;
    let permit = shared
        .workers
        .acquire_owned()
        .await
        .map_err(|e| RequestError::Internal(e.to_string()))?;
    let predictor = shared.predictor;
    tokio::task::spawn_blocking(move || {
        let _working = permit;
        predictor.answer(kind, &body)
    })
    .await
    .map_err(|e| RequestError::Internal(e.to_string()))?
    .map(Json)
}
