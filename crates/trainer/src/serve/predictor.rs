//! The model behind the service: it turns a request body (an image, or JSON pixel
//! arrays or images) into the network's input, and answers with its predictions.

use std::io::Cursor;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use burn::prelude::*;
use image::ImageReader;
use model::{Mlp, MlpConfig};
use serde_json::Value;

use super::api::{Answer, BodyKind, Guess, Input, Item, MAX_BATCH, MAX_IMAGE_SIDE, RequestError};
use crate::infer::preprocess::{decoding_limits, mnist_style, square_side};
use crate::infer::{predict_scaled, scale_pixels};

/// A trained model ready to answer requests.
#[derive(Debug)]
pub struct Predictor {
    model: Mlp,
    device: Device,
    input_size: usize,
    /// The side of the square image the model takes; `None` if its input is not a
    /// square, and then only pixel arrays can be classified.
    side: Option<usize>,
}

impl Predictor {
    /// Wraps `model`, built from `config`, computing on `device`.
    pub fn new(model: Mlp, config: &MlpConfig, device: Device) -> Self {
        Self {
            model,
            device,
            input_size: config.input_size,
            side: square_side(config.input_size),
        }
    }

    /// Answers one request body. Synchronous CPU work (decoding, preparing images,
    /// the forward pass), to be run off the async runtime.
    pub(super) fn answer(&self, kind: BodyKind, body: &[u8]) -> Result<Answer, RequestError> {
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
