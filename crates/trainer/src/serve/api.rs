//! The JSON API's types: what a request may hold, what an answer holds, the limits on
//! both, and every client mistake as a 4xx with a JSON body saying what to send.

use axum::Json;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

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

/// What a request body holds, by its declared content type.
#[derive(Debug, Clone, Copy)]
pub(crate) enum BodyKind {
    Json,
    Image,
}

impl BodyKind {
    pub(crate) fn of(headers: &HeaderMap) -> Result<Self, RequestError> {
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
pub(crate) struct Item {
    pub(crate) pixels: Option<Vec<f32>>,
    pub(crate) image: Option<String>,
}

/// The network's input for one image.
#[derive(Debug)]
pub(crate) struct Input {
    /// `input_size` values in 0..1.
    pub(crate) pixels: Vec<f32>,
    /// Whether it was prepared from an image, and so is worth showing the client.
    pub(crate) from_image: bool,
}

/// The answer for one image.
#[derive(Debug, Serialize)]
pub(crate) struct Guess {
    pub(crate) digit: usize,
    pub(crate) probabilities: Vec<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) pixels: Option<Vec<f32>>,
}

#[derive(Debug, Serialize)]
#[serde(untagged)]
pub(crate) enum Answer {
    One(Guess),
    Batch { predictions: Vec<Guess> },
}

impl Answer {
    /// How many images it answers for.
    pub(crate) fn images(&self) -> usize {
        match self {
            Self::One(_) => 1,
            Self::Batch { predictions } => predictions.len(),
        }
    }
}

/// Why a request cannot be answered. All but `Internal` are the client's to fix, and
/// each says how.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RequestError {
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
    #[error(
        "no such endpoint: {0}; the API is POST /api/predict, GET /healthz, /readyz and /metrics"
    )]
    NotFound(String),
    #[error("{0} is not allowed; see GET / for the page, POST /api/predict for predictions")]
    WrongMethod(String),
    #[error("the request's body did not arrive within {} s; send it faster, or in a smaller request", .0.as_secs())]
    BodyTimeout(std::time::Duration),
    #[error("the server is busy: its inference queue is full; retry in a second")]
    Busy,
    #[error("the server could not answer within {} s; retry, or send a smaller batch", .0.as_secs())]
    RequestTimeout(std::time::Duration),
    #[error("prediction failed: {0}")]
    Internal(String),
}

impl RequestError {
    fn status(&self) -> StatusCode {
        match self {
            Self::UnsupportedType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::BodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            Self::Busy | Self::RequestTimeout(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::WrongMethod(_) => StatusCode::METHOD_NOT_ALLOWED,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::Item { source, .. } => source.status(),
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

/// The body length a request declares in its `Content-Length`, if it does.
pub(crate) fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

impl RequestError {
    /// A body that could not be read: over the limit, or cut off.
    pub(crate) fn from_body_error(error: &axum::Error) -> Self {
        let too_large = std::error::Error::source(error)
            .is_some_and(|source| source.is::<http_body_util::LengthLimitError>());
        if too_large {
            Self::TooLarge
        } else {
            Self::Body(error.to_string())
        }
    }
}

impl IntoResponse for RequestError {
    fn into_response(self) -> Response {
        let busy = matches!(self, Self::Busy | Self::RequestTimeout(_));
        let mut response = (
            self.status(),
            Json(serde_json::json!({ "error": self.to_string() })),
        )
            .into_response();
        if busy {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
        }
        response
    }
}
