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

use std::io::Cursor;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use burn::prelude::*;
use image::ImageReader;
use model::{Mlp, MlpConfig};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::Semaphore;

use crate::TrainerError;
use crate::inference::{predict_scaled, scale_pixels};
use crate::preprocess::{decoding_limits, mnist_style};

/// The largest request body accepted: room for a phone photo, or for a full batch of
/// pixel arrays written out as JSON text.
pub const BODY_LIMIT: usize = 4 << 20;
/// The most images one request may ask about, so that one request cannot hold the
/// server's CPUs for long.
pub const MAX_BATCH: usize = 256;
/// The widest and tallest image accepted, in pixels: a 12-megapixel phone photo fits.
/// A few kilobytes of PNG can declare a huge image, and preparing one takes about
/// 10 bytes per pixel, so this bounds what a single request can make the server
/// allocate (about 170 MB).
pub const MAX_IMAGE_SIDE: u32 = 4096;

const PAGE: &str = include_str!("../static/index.html");

/// A trained model ready to answer requests.
#[derive(Debug)]
pub struct Classifier {
    model: Mlp,
    device: Device,
    input_size: usize,
    /// The side of the square image the model takes; `None` if its input is not a
    /// square, and then only pixel arrays can be classified.
    side: Option<usize>,
}

impl Classifier {
    /// Wraps `model`, built from `config`, computing on `device`.
    pub fn new(model: Mlp, config: &MlpConfig, device: Device) -> Self {
        let side = (config.input_size as f64).sqrt().round() as usize;
        Self {
            model,
            device,
            input_size: config.input_size,
            side: (side * side == config.input_size).then_some(side),
        }
    }

    /// Answers one request body. Synchronous CPU work (decoding, preparing images,
    /// the forward pass), to be run off the async runtime.
    fn answer(&self, kind: BodyKind, body: &[u8]) -> Result<Answer, RequestError> {
        let (inputs, batch) = match kind {
            BodyKind::Image => (vec![self.image_input(body)?], false),
            BodyKind::Json => self.json_inputs(body)?,
        };
        let (rows, from_image): (Vec<Vec<f32>>, Vec<bool>) = inputs
            .into_iter()
            .map(|input| (input.pixels, input.from_image))
            .unzip();
        let predictions = predict_scaled(&self.model, &rows, &self.device)
            .map_err(|e| RequestError::Internal(e.to_string()))?;
        let mut guesses = predictions
            .into_iter()
            .zip(rows.into_iter().zip(from_image))
            .map(|(prediction, (pixels, from_image))| Guess {
                digit: prediction.class(),
                probabilities: prediction.probabilities,
                pixels: from_image.then_some(pixels),
            })
            .collect::<Vec<_>>();
        if batch {
            return Ok(Answer::Batch {
                predictions: guesses,
            });
        }
        guesses
            .pop()
            .map(Answer::One)
            .ok_or_else(|| RequestError::Internal("the model gave no prediction".into()))
    }

    /// One item, or a batch when the JSON is an array.
    fn json_inputs(&self, body: &[u8]) -> Result<(Vec<Input>, bool), RequestError> {
        let json_error = |reason: String| RequestError::Json {
            reason,
            input_size: self.input_size,
        };
        match serde_json::from_slice::<Value>(body).map_err(|e| json_error(e.to_string()))? {
            Value::Array(items) => {
                if items.is_empty() || items.len() > MAX_BATCH {
                    return Err(RequestError::BatchSize(items.len()));
                }
                let inputs = items
                    .into_iter()
                    .enumerate()
                    .map(|(index, item)| {
                        self.json_input(item).map_err(|source| RequestError::Item {
                            index,
                            source: Box::new(source),
                        })
                    })
                    .collect::<Result<_, _>>()?;
                Ok((inputs, true))
            }
            item => Ok((vec![self.json_input(item)?], false)),
        }
    }

    fn json_input(&self, value: Value) -> Result<Input, RequestError> {
        let item: Item = serde_json::from_value(value).map_err(|e| RequestError::Json {
            reason: e.to_string(),
            input_size: self.input_size,
        })?;
        match (item.pixels, item.image) {
            (Some(pixels), None) => self.pixel_input(pixels),
            (None, Some(encoded)) => {
                // A data URL, as a canvas's toDataURL gives, is accepted as it is.
                let data = match encoded.strip_prefix("data:") {
                    Some(url) => url.split_once(";base64,").map_or(url, |(_, data)| data),
                    None => &encoded,
                };
                let bytes = BASE64
                    .decode(data.trim())
                    .map_err(|e| RequestError::Base64(e.to_string()))?;
                self.image_input(&bytes)
            }
            _ => Err(RequestError::Json {
                reason: "an item needs exactly one of `pixels` and `image`".into(),
                input_size: self.input_size,
            }),
        }
    }

    fn pixel_input(&self, pixels: Vec<f32>) -> Result<Input, RequestError> {
        if pixels.len() != self.input_size {
            return Err(RequestError::PixelCount {
                found: pixels.len(),
                expected: self.input_size,
            });
        }
        if let Some((index, &value)) = pixels
            .iter()
            .enumerate()
            .find(|(_, v)| !(0.0..=1.0).contains(*v))
        {
            return Err(RequestError::PixelRange { index, value });
        }
        Ok(Input {
            pixels,
            from_image: false,
        })
    }

    /// Decodes a PNG or JPEG (recognised by content, within the same decoding limits
    /// as image files) and prepares it as `trainer predict` does.
    fn image_input(&self, bytes: &[u8]) -> Result<Input, RequestError> {
        let side = self.side.ok_or(RequestError::NotSquare(self.input_size))?;
        let mut reader = ImageReader::new(Cursor::new(bytes))
            .with_guessed_format()
            .map_err(|e| RequestError::Image(e.to_string()))?;
        let mut limits = decoding_limits();
        limits.max_image_width = Some(MAX_IMAGE_SIDE);
        limits.max_image_height = Some(MAX_IMAGE_SIDE);
        reader.limits(limits);
        let image = reader
            .decode()
            .map_err(|e| RequestError::Image(e.to_string()))?;
        let grid = mnist_style(&image, side).map_err(RequestError::NoDigit)?;
        Ok(Input {
            pixels: scale_pixels(&grid),
            from_image: true,
        })
    }
}

/// What every request handler shares.
#[derive(Debug, Clone)]
struct Shared {
    classifier: Arc<Classifier>,
    /// One permit per CPU for the CPU-bound work of a request: more at once would not
    /// go faster, and the cap bounds the memory that images being prepared can take.
    workers: Arc<Semaphore>,
}

/// The routes of the service, answering with `classifier`.
pub fn router(classifier: Arc<Classifier>) -> Router {
    let workers = std::thread::available_parallelism().map_or(1, usize::from);
    let shared = Shared {
        classifier,
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
    classifier: Arc<Classifier>,
    /// Declared last so that it outlives the socket and the signal handlers it drives.
    runtime: tokio::runtime::Runtime,
}

impl Server {
    /// Binds `addr` (`host:port`; port 0 lets the system pick a free one) and installs
    /// the SIGINT and SIGTERM handlers, so that a port in use is reported before
    /// anything else happens, and once the caller says where the server listens a
    /// signal stops it cleanly instead of killing it.
    pub fn bind(addr: &str, classifier: Classifier) -> Result<Self, TrainerError> {
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
            classifier: Arc::new(classifier),
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
            classifier,
            runtime,
            ..
        } = self;
        runtime
            .block_on(async {
                axum::serve(listener, router(classifier))
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
    let classifier = shared.classifier;
    tokio::task::spawn_blocking(move || {
        let _working = permit;
        classifier.answer(kind, &body)
    })
    .await
    .map_err(|e| RequestError::Internal(e.to_string()))?
    .map(Json)
}

/// What a request body holds, by its declared content type.
#[derive(Debug, Clone, Copy)]
enum BodyKind {
    Json,
    Image,
}

impl BodyKind {
    fn of(headers: &HeaderMap) -> Result<Self, RequestError> {
        let declared = headers
            .get(header::CONTENT_TYPE)
            .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
            .unwrap_or_default();
        let essence = declared
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        match essence.as_str() {
            "application/json" => Ok(Self::Json),
            "image/png" | "image/jpeg" => Ok(Self::Image),
            _ => Err(RequestError::UnsupportedType(declared)),
        }
    }
}

/// One item of a JSON request.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Item {
    pixels: Option<Vec<f32>>,
    image: Option<String>,
}

/// The network's input for one image.
#[derive(Debug)]
struct Input {
    /// `input_size` values in 0..1.
    pixels: Vec<f32>,
    /// Whether it was prepared from an image, and so is worth showing the client.
    from_image: bool,
}

/// The answer for one image.
#[derive(Debug, Serialize)]
struct Guess {
    digit: usize,
    probabilities: Vec<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pixels: Option<Vec<f32>>,
}

#[derive(Debug, Serialize)]
#[serde(untagged)]
enum Answer {
    One(Guess),
    Batch { predictions: Vec<Guess> },
}

/// Why a request cannot be answered. All but `Internal` are the client's to fix, and
/// each says how.
#[derive(Debug, thiserror::Error)]
enum RequestError {
    #[error("unsupported content type `{0}`; send application/json, image/png or image/jpeg")]
    UnsupportedType(String),
    #[error(
        "the body is over the limit of {BODY_LIMIT} bytes; send a smaller image or a smaller batch"
    )]
    TooLarge,
    #[error("cannot read the body: {0}")]
    Body(String),
    #[error(
        "the body is not a prediction request: {reason}; send {{\"pixels\": [{input_size} numbers in 0..1]}}, {{\"image\": \"<base64 PNG or JPEG>\"}}, or an array of up to {MAX_BATCH} of those"
    )]
    Json { reason: String, input_size: usize },
    #[error("a batch holds 1 to {MAX_BATCH} items; this one has {0}")]
    BatchSize(usize),
    #[error("item {index}: {source}")]
    Item {
        index: usize,
        source: Box<RequestError>,
    },
    #[error("`pixels` has {found} values; the model takes {expected}, one per pixel, row by row")]
    PixelCount { found: usize, expected: usize },
    #[error("pixels[{index}] is {value}; pixel values are numbers in 0..1 (0 background, 1 ink)")]
    PixelRange { index: usize, value: f32 },
    #[error("`image` is not valid base64: {0}")]
    Base64(String),
    #[error(
        "cannot read the image: {0}; send a PNG or JPEG of at most {MAX_IMAGE_SIDE}x{MAX_IMAGE_SIDE} pixels"
    )]
    Image(String),
    #[error("cannot find a digit in the image: {0}")]
    NoDigit(String),
    #[error("the model's input size {0} is not a square image, so it takes only `pixels`")]
    NotSquare(usize),
    #[error("no such endpoint: {0}; the API is POST /api/predict and GET /healthz")]
    NotFound(String),
    #[error("{0} is not allowed; see GET / for the page, POST /api/predict for predictions")]
    WrongMethod(String),
    #[error("prediction failed: {0}")]
    Internal(String),
}

impl RequestError {
    fn status(&self) -> StatusCode {
        match self {
            Self::UnsupportedType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::WrongMethod(_) => StatusCode::METHOD_NOT_ALLOWED,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::Item { source, .. } => source.status(),
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

impl IntoResponse for RequestError {
    fn into_response(self) -> Response {
        (
            self.status(),
            Json(serde_json::json!({ "error": self.to_string() })),
        )
            .into_response()
    }
}
