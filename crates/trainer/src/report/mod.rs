//! What a run shows: pictures drawn with plotters into memory and written as PNG files
//! atomically (the training curves, the confusion matrix, the `explain` picture; this
//! module owns the canvas and font they share), a grid of training samples, the model
//! summary table, and TensorBoard event files.

mod confusion;
mod curves;
mod explanation;
mod samples;
mod summary;
pub mod tensorboard;

use std::path::Path;
use std::sync::Once;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::FontStyle;

pub use self::confusion::{confusion_matrix, confusion_size};
pub use self::curves::{CURVES_SIZE, training_curves};
pub use self::explanation::{FirstLayer, PICTURE_SIZE, draw_explanation, save_explanation};
pub use self::samples::sample_grid;
pub use self::summary::{model_summary, thousands};
use crate::TrainerError;

/// The font every picture uses, embedded so that drawing needs no system fonts
/// (DejaVu Sans; its licence is in `assets/DejaVuSans-LICENSE.txt`).
const FONT: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");
/// The family name plotters' text styles ask for.
pub(crate) const FAMILY: &str = "sans-serif";

/// An RGB image in memory that plotters draws on, then saved as a PNG.
pub(crate) struct Canvas {
    pixels: Vec<u8>,
    width: u32,
    height: u32,
}

impl Canvas {
    pub(crate) fn new(width: u32, height: u32) -> Self {
        static REGISTER_FONT: Once = Once::new();
        REGISTER_FONT.call_once(|| {
            // The font is compiled in and known to parse; should it not, text is
            // skipped and the test of each picture fails.
            let _ = plotters::style::register_font(FAMILY, FontStyle::Normal, FONT);
        });
        Self {
            pixels: vec![255; width as usize * height as usize * 3],
            width,
            height,
        }
    }

    /// Runs `draw` on the whole canvas, then writes it to `path` as a PNG, replacing
    /// any earlier file only once the new one is complete.
    pub(crate) fn draw_and_save(
        mut self,
        path: &Path,
        draw: impl FnOnce(&DrawingArea<BitMapBackend<'_>, Shift>) -> Result<(), String>,
    ) -> Result<(), TrainerError> {
        let failed = |reason: String| TrainerError::Picture {
            path: path.to_path_buf(),
            reason,
        };
        {
            let root = BitMapBackend::with_buffer(&mut self.pixels, (self.width, self.height))
                .into_drawing_area();
            draw(&root).map_err(failed)?;
            root.present().map_err(|e| failed(e.to_string()))?;
        }
        let image = image::RgbImage::from_raw(self.width, self.height, self.pixels)
            .ok_or_else(|| failed("the canvas has the wrong size".into()))?;
        let mut png = Vec::new();
        image
            .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
            .map_err(|e| failed(e.to_string()))?;
        crate::fs::write_atomically(path, &png)
    }
}

/// Turns a plotters error into the message of [`TrainerError::Picture`].
pub(crate) fn drawing<T, E: std::fmt::Display>(result: Result<T, E>) -> Result<T, String> {
    result.map_err(|e| e.to_string())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The width and height a PNG file declares.
    pub(crate) fn png_size(path: &Path) -> (u32, u32) {
        let image = image::open(path).expect("a readable PNG");
        (image.width(), image.height())
    }
}
