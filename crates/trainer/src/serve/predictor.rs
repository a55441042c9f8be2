//! The model behind the service: it turns a request body (an image, or JSON pixel
//! arrays or images) into the network's input, and answers with its predictions.

use std::io::Cursor;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use burn::prelude::*;
use data::{DataConfig, decoding_limits, picture_planes};
use image::ImageReader;
use model::{Network, NetworkConfig};
use serde_json::Value;

use super::api::{Answer, BodyKind, Guess, Input, Item, MAX_BATCH, MAX_IMAGE_SIDE, RequestError};
use super::pixel_body;

use crate::infer::preprocess::{mnist_style, square_side};
use crate::infer::{Classifier, scale_pixels};

/// A request read from its body, its images not yet decoded.
#[derive(Debug)]
pub(super) enum Request {
    /// The bytes of a PNG or JPEG.
    Image(Bytes),
    /// The items of a JSON body; `batch` when it was an array.
    Items { items: Vec<Item>, batch: bool },
}

/// Pixel arrays up to this many take microseconds to answer.
const LIGHT_ITEMS: usize = 8;

impl Request {
    /// Whether answering takes microseconds, not milliseconds: a few pixel arrays and
    /// no image, whose decoding can take as long as its declared size allows.
    pub(super) fn is_light(&self) -> bool {
        match self {
            Self::Image(_) => false,
            Self::Items { items, .. } => {
                items.len() <= LIGHT_ITEMS && items.iter().all(|item| item.image.is_none())
            }
        }
    }
}

/// When a request's work stops: at its deadline, or once its handler has given up on
/// it. Checked between images, the unit of work that cannot be cut.
#[derive(Debug, Clone)]
pub(super) struct Deadline {
    at: Instant,
    limit: Duration,
    abandoned: Arc<AtomicBool>,
}

impl Deadline {
    /// `limit` after `arrived`, or sooner once abandoned.
    pub(super) fn new(arrived: Instant, limit: Duration) -> Self {
        Self {
            at: arrived + limit,
            limit,
            abandoned: Arc::default(),
        }
    }

    /// The time left; zero once the work is to stop.
    pub(super) fn left(&self) -> Duration {
        if self.abandoned.load(Ordering::SeqCst) {
            return Duration::ZERO;
        }
        self.at.saturating_duration_since(Instant::now())
    }

    pub(super) fn abandon(&self) {
        self.abandoned.store(true, Ordering::SeqCst);
    }

    fn check(&self) -> Result<(), RequestError> {
        if self.left().is_zero() {
            return Err(RequestError::RequestTimeout(self.limit));
        }
        Ok(())
    }
}

/// A batch's error names the item it is about.
fn in_batch(batch: bool, index: usize, source: RequestError) -> RequestError {
    if batch {
        RequestError::Item {
            index,
            source: Box::new(source),
        }
    } else {
        source
    }
}

/// A trained model ready to answer requests.
#[derive(Debug)]
pub struct Predictor {
    classifier: Classifier,
    input_size: usize,
    /// The side of the square image the model takes; `None` if its input is not a
    /// square, and then only pixel arrays can be classified.
    side: Option<usize>,
    /// For a run of pictures, the channels and `[height, width]` its pictures were
    /// made: an image is then made so too, rather than prepared the MNIST way.
    pictures: Option<(usize, [usize; 2])>,
}

impl Predictor {
    /// Wraps `model`, built from `config`, computing on `device`.
    pub fn new(model: Network, config: &NetworkConfig, device: Device) -> Self {
        Self {
            classifier: Classifier::new(model, &device),
            input_size: config.input_size,
            side: square_side(config.input_size),
            pictures: None,
        }
    }

    /// Takes images as the pictures of the run whose data config is `data` were
    /// taken (if it is a run of pictures), whatever their size.
    pub fn with_pictures(self, data: &DataConfig) -> Self {
        Self {
            pictures: data.channels.zip(data.image_size),
            ..self
        }
    }

    /// Reads a request body as the items it asks about, decoding no image yet: cheap
    /// for a small body, and enough to tell whether answering it is (see
    /// [`Request::is_light`]).
    pub(super) fn read(&self, kind: BodyKind, body: Bytes) -> Result<Request, RequestError> {
        let json_error = |reason: String| RequestError::Json {
            reason,
            input_size: self.input_size,
        };
        if let BodyKind::Image = kind {
            return Ok(Request::Image(body));
        }
        // One image, the common request, is read straight into its item: through a
        // `Value` first, reading was a quarter of the server's time under load.
        if body.trim_ascii_start().first() != Some(&b'[') {
            let item = match pixel_body::read(&body, self.input_size) {
                Some(pixels) => Item {
                    pixels: Some(pixels),
                    image: None,
                },
                None => {
                    serde_json::from_slice::<Item>(&body).map_err(|e| json_error(e.to_string()))?
                }
            };
            return Ok(Request::Items {
                items: vec![item],
                batch: false,
            });
        }
        // A batch goes through `Value`s so that a bad item's error can say which it is.
        let values =
            serde_json::from_slice::<Vec<Value>>(&body).map_err(|e| json_error(e.to_string()))?;
        if values.is_empty() || values.len() > MAX_BATCH {
            return Err(RequestError::BatchSize(values.len()));
        }
        let items = values
            .into_iter()
            .enumerate()
            .map(|(index, value)| {
                serde_json::from_value::<Item>(value)
                    .map_err(|e| json_error(e.to_string()))
                    .map_err(|source| RequestError::Item {
                        index,
                        source: Box::new(source),
                    })
            })
            .collect::<Result<_, _>>()?;
        Ok(Request::Items { items, batch: true })
    }

    /// Answers a request: decodes and prepares its images, checks its pixel arrays,
    /// and runs the forward pass, unless `deadline` passes first.
    pub(super) fn answer(
        &self,
        request: Request,
        deadline: &Deadline,
    ) -> Result<Answer, RequestError> {
        let (inputs, batch) = match request {
            Request::Image(bytes) => (vec![self.image_input(&bytes)?], false),
            Request::Items { items, batch } => {
                let inputs = items
                    .into_iter()
                    .enumerate()
                    .map(|(index, item)| {
                        deadline.check()?;
                        self.item_input(item)
                            .map_err(|source| in_batch(batch, index, source))
                    })
                    .collect::<Result<_, _>>()?;
                (inputs, batch)
            }
        };
        deadline.check()?;
        let (rows, from_image): (Vec<Vec<f32>>, Vec<bool>) = inputs
            .into_iter()
            .map(|input| (input.pixels, input.from_image))
            .unzip();
        let predictions = self
            .classifier
            .predict_scaled(&rows)
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

    fn item_input(&self, item: Item) -> Result<Input, RequestError> {
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
        // A pass without early exit, which the compiler vectorises, and the search
        // only when it finds something: this check was 2% of the server's time.
        let in_range = |v: &f32| (0.0..=1.0).contains(v);
        if !pixels.iter().fold(true, |all, v| all & in_range(v))
            && let Some((index, &value)) = pixels.iter().enumerate().find(|(_, v)| !in_range(v))
        {
            return Err(RequestError::PixelRange { index, value });
        }
        Ok(Input {
            pixels,
            from_image: false,
        })
    }

    /// Decodes a PNG or JPEG (recognised by content, within the same decoding limits
    /// as image files) and prepares it as `trainer predict` does: as the run's
    /// pictures were, or the MNIST way.
    fn image_input(&self, bytes: &[u8]) -> Result<Input, RequestError> {
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
        let grid = match self.pictures {
            Some((channels, size)) => picture_planes(&image, channels, size),
            None => {
                let side = self.side.ok_or(RequestError::NotSquare(self.input_size))?;
                mnist_style(&image, side).map_err(RequestError::NoDigit)?
            }
        };
        Ok(Input {
            pixels: scale_pixels(&grid),
            from_image: true,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn predictor() -> Predictor {
        let device = Device::flex();
        let config = NetworkConfig::new();
        Predictor::new(config.init(&device), &config, device)
    }

    fn no_deadline() -> Deadline {
        Deadline::new(Instant::now(), Duration::from_secs(3600))
    }

    #[test]
    fn work_stops_between_images_once_abandoned() {
        let pixels = format!("{{\"pixels\": {:?}}}", vec![0.5_f32; 784]);
        let batch = format!("[{}]", [pixels.as_str(); 3].join(","));
        let deadline = no_deadline();
        assert!(
            predictor()
                .answer(read(&batch).expect("a batch"), &deadline)
                .is_ok()
        );
        deadline.abandon();
        let stopped = predictor().answer(read(&batch).expect("a batch"), &deadline);
        assert!(matches!(stopped, Err(RequestError::RequestTimeout(_))));
    }

    fn read(body: &str) -> Result<Request, RequestError> {
        predictor().read(BodyKind::Json, Bytes::from(body.to_string()))
    }

    #[test]
    fn a_few_pixel_arrays_are_light_images_and_big_batches_are_not() {
        let pixels = format!("{{\"pixels\": {:?}}}", vec![0.5_f32; 784]);
        assert!(read(&pixels).expect("one item").is_light());
        let few = format!("[{}]", [pixels.as_str(); LIGHT_ITEMS].join(","));
        assert!(read(&few).expect("a few items").is_light());
        let many = format!("[{}]", [pixels.as_str(); LIGHT_ITEMS + 1].join(","));
        assert!(!read(&many).expect("many items").is_light());
        let image = format!("[{pixels}, {{\"image\": \"iVBORw0KGgo=\"}}]");
        assert!(!read(&image).expect("an image item").is_light());
        let png = Bytes::from_static(b"\x89PNG");
        assert!(
            !predictor()
                .read(BodyKind::Image, png)
                .expect("image bytes")
                .is_light()
        );
    }

    #[test]
    fn a_batch_names_the_item_a_mistake_is_in_and_a_single_item_does_not() {
        let error = read(r#"[{"pixels": [0.5]}, {"pixel": [0.5]}]"#).expect_err("a misspelt key");
        assert!(error.to_string().starts_with("item 1: "), "{error}");
        let request = read(r#"[{"pixels": [0.5]}]"#).expect("a batch");
        let error = predictor()
            .answer(request, &no_deadline())
            .expect_err("too few pixels");
        assert!(
            error
                .to_string()
                .starts_with("item 0: `pixels` has 1 values"),
            "{error}"
        );
        let error =
            read(r#"{"pixels": [0.5]}"#).and_then(|r| predictor().answer(r, &no_deadline()));
        assert!(
            error
                .expect_err("too few pixels")
                .to_string()
                .starts_with("`pixels` has 1 values")
        );
    }

    #[test]
    fn a_run_of_colour_pictures_takes_images_of_any_size_as_its_pictures_were() {
        let device = Device::flex();
        let config = NetworkConfig::new()
            .with_input_size(3 * 6 * 8)
            .with_input_shape(Some([3, 6, 8]));
        let data = DataConfig::new()
            .with_channels(Some(3))
            .with_image_size(Some([6, 8]));
        let predictor = Predictor::new(config.init(&device), &config, device).with_pictures(&data);
        // A flat red picture of another size: no digit in it, and no square either.
        let mut png = Vec::new();
        image::RgbImage::from_pixel(16, 12, image::Rgb([255, 0, 0]))
            .write_to(&mut Cursor::new(&mut png), image::ImageFormat::Png)
            .expect("png");
        let input = predictor
            .image_input(&png)
            .expect("made as the run's pictures");
        // The red plane all ones, the green and blue ones zeros.
        assert_eq!(input.pixels.len(), 144);
        assert!(
            input.pixels[..48].iter().all(|&v| v == 1.0),
            "{:?}",
            &input.pixels[..48]
        );
        assert!(input.pixels[48..].iter().all(|&v| v == 0.0));
        let pixels = format!("{{\"pixels\": {:?}}}", vec![0.5_f32; 144]);
        let request = predictor
            .read(BodyKind::Json, Bytes::from(pixels))
            .expect("read");
        assert!(predictor.answer(request, &no_deadline()).is_ok());
    }
}
