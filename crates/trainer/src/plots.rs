//! Pictures of a run, drawn with plotters into memory and written as PNG files
//! atomically: the training curves and the confusion matrix. [`Canvas`] is shared
//! with the `explain` picture.

use std::path::Path;
use std::sync::Once;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::TrainerError;
use crate::renderer::EpochSummary;

/// The font every picture uses, embedded so that drawing needs no system fonts
/// (DejaVu Sans; its licence is in `assets/DejaVuSans-LICENSE.txt`).
const FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");
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
        data::write_atomically(path, &png).map_err(|error| TrainerError::Write {
            path: path.to_path_buf(),
            error,
        })
    }
}

/// Turns a plotters error into the message of [`TrainerError::Picture`].
pub(crate) fn drawing<T, E: std::fmt::Display>(result: Result<T, E>) -> Result<T, String> {
    result.map_err(|e| e.to_string())
}

/// Size of `curves.png`.
pub const CURVES_SIZE: (u32, u32) = (1200, 480);

/// Writes `curves.png`: loss (left) and accuracy (right) per epoch, on the training
/// and the validation split.
pub fn training_curves(epochs: &[EpochSummary], path: &Path) -> Result<(), TrainerError> {
    let (width, height) = CURVES_SIZE;
    Canvas::new(width, height).draw_and_save(path, |root| {
        drawing(root.fill(&WHITE))?;
        let (left, right) = root.split_horizontally(width / 2);
        let loss = |e: &EpochSummary| (e.train_loss, e.valid_loss);
        let accuracy = |e: &EpochSummary| (e.train_accuracy, e.valid_accuracy);
        // Each legend sits where its curves are not: losses fall, accuracies rise.
        let upper = SeriesLabelPosition::UpperRight;
        curve_panel(&left, epochs, ("Loss", "cross-entropy", upper), loss)?;
        let lower = SeriesLabelPosition::LowerRight;
        curve_panel(
            &right,
            epochs,
            ("Accuracy", "accuracy (%)", lower),
            accuracy,
        )
    })
}

/// One chart of a train and a validation series against the epoch.
fn curve_panel(
    area: &DrawingArea<BitMapBackend<'_>, Shift>,
    epochs: &[EpochSummary],
    (title, unit, legend): (&str, &str, SeriesLabelPosition),
    series: impl Fn(&EpochSummary) -> (f64, f64),
) -> Result<(), String> {
    let finite = |v: &f64| v.is_finite();
    let values: Vec<f64> = epochs
        .iter()
        .flat_map(|e| {
            let (train, valid) = series(e);
            [train, valid]
        })
        .filter(finite)
        .collect();
    let low = values.iter().copied().fold(f64::INFINITY, f64::min);
    let high = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let (low, high) = if low.is_finite() {
        (low, high)
    } else {
        (0.0, 1.0)
    };
    let pad = ((high - low) * 0.08).max(1e-3);
    let last_epoch = epochs.iter().map(|e| e.epoch).max().unwrap_or(1).max(2) as f64;
    let mut chart = drawing(
        ChartBuilder::on(area)
            .caption(title, (FAMILY, 24))
            .margin(16)
            .x_label_area_size(44)
            .y_label_area_size(64)
            .build_cartesian_2d(0.8..last_epoch + 0.2, (low - pad)..(high + pad)),
    )?;
    drawing(
        chart
            .configure_mesh()
            .x_desc("epoch")
            .y_desc(unit)
            .x_labels((last_epoch as usize).min(12))
            .x_label_formatter(&|x| format!("{x:.0}"))
            .label_style((FAMILY, 14))
            .draw(),
    )?;
    let lines = [("train", BLUE, 0), ("validation", RED, 1)];
    for (name, color, which) in lines {
        let points: Vec<(f64, f64)> = epochs
            .iter()
            .map(|e| {
                let (train, valid) = series(e);
                (e.epoch as f64, if which == 0 { train } else { valid })
            })
            .filter(|(_, v)| v.is_finite())
            .collect();
        drawing(chart.draw_series(LineSeries::new(points.clone(), color.stroke_width(2))))?
            .label(name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        drawing(
            chart.draw_series(
                points
                    .into_iter()
                    .map(move |point| Circle::new(point, 4, color.filled())),
            ),
        )?;
    }
    drawing(
        chart
            .configure_series_labels()
            .position(legend)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font((FAMILY, 15))
            .draw(),
    )
}

/// The side of `confusion.png` for `classes` classes.
pub fn confusion_size(classes: usize) -> u32 {
    CONFUSION_MARGIN + confusion_cell(classes) * classes as u32 + 20
}

const CONFUSION_MARGIN: u32 = 120;

fn confusion_cell(classes: usize) -> u32 {
    (640 / classes.max(1) as u32).clamp(12, 64)
}

/// Writes `confusion.png`: a cell per (true class, predicted class), shaded by the
/// share of the true class's images it holds and labelled with their count.
pub fn confusion_matrix(
    confusion: &[Vec<usize>],
    class_names: &[String],
    path: &Path,
) -> Result<(), TrainerError> {
    let classes = confusion.len();
    let side = confusion_size(classes);
    let cell = confusion_cell(classes) as i32;
    let origin = CONFUSION_MARGIN as i32;
    Canvas::new(side, side).draw_and_save(path, |root| {
        drawing(root.fill(&WHITE))?;
        let text = |size: i32| (FAMILY, size).into_font().color(&BLACK);
        drawing(root.draw_text(
            "Confusion matrix (rows: true class, columns: predicted)",
            &text(16),
            (10, 10),
        ))?;
        drawing(root.draw_text("predicted", &text(15), (origin, 40)))?;
        drawing(root.draw_text(
            "true",
            &text(15).transform(FontTransform::Rotate270),
            (14, origin + 40),
        ))?;
        let label_size = (cell / 3).clamp(9, 16);
        for (class, name) in class_names.iter().enumerate().take(classes) {
            let offset = origin + class as i32 * cell + cell / 3;
            let short: String = name.chars().take(10).collect();
            drawing(root.draw_text(
                &short,
                &text(label_size).transform(FontTransform::Rotate270),
                (offset, origin - 6),
            ))?;
            drawing(root.draw_text(&short, &text(label_size), (36, offset)))?;
        }
        for (truth, row) in confusion.iter().enumerate() {
            let total = row.iter().sum::<usize>().max(1) as f64;
            for (guess, &count) in row.iter().enumerate() {
                let share = count as f64 / total;
                let shade = (255.0 * (1.0 - share.sqrt())) as u8;
                let fill = if truth == guess {
                    RGBColor(shade, shade, 255)
                } else {
                    RGBColor(255, shade, shade)
                };
                let x = origin + guess as i32 * cell;
                let y = origin + truth as i32 * cell;
                drawing(root.draw(&Rectangle::new(
                    [(x, y), (x + cell, y + cell)],
                    fill.filled(),
                )))?;
                drawing(root.draw(&Rectangle::new(
                    [(x, y), (x + cell, y + cell)],
                    RGBColor(210, 210, 210),
                )))?;
                if cell >= 28 && count > 0 {
                    let ink = if share > 0.5 { WHITE } else { BLACK };
                    let style = (FAMILY, (cell / 4).clamp(9, 15)).into_font().color(&ink);
                    drawing(root.draw_text(&count.to_string(), &style, (x + 4, y + cell / 3)))?;
                }
            }
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The width and height a PNG file declares.
    pub(crate) fn png_size(path: &Path) -> (u32, u32) {
        let image = image::open(path).expect("a readable PNG");
        (image.width(), image.height())
    }

    fn epoch(epoch: usize, loss: f64) -> EpochSummary {
        EpochSummary {
            epoch,
            train_loss: loss,
            train_accuracy: 90.0 + epoch as f64,
            valid_loss: loss * 1.1,
            valid_accuracy: 89.0 + epoch as f64,
            duration: std::time::Duration::from_secs(1),
            ..EpochSummary::default()
        }
    }

    #[test]
    fn curves_are_a_png_of_the_promised_size_even_for_one_epoch() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("curves.png");
        training_curves(&[epoch(1, 0.5)], &path).expect("drawn");
        assert_eq!(png_size(&path), CURVES_SIZE);
        training_curves(&[epoch(1, 0.5), epoch(2, f64::NAN), epoch(3, 0.2)], &path)
            .expect("drawn despite a NaN");
        assert_eq!(png_size(&path), CURVES_SIZE);
    }

    #[test]
    fn confusion_matrix_is_a_png_with_a_cell_per_class_pair() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("confusion.png");
        let confusion = vec![vec![8, 2, 0], vec![1, 9, 0], vec![0, 0, 0]];
        let names: Vec<String> = ["cat", "dog", "bird"].map(String::from).to_vec();
        confusion_matrix(&confusion, &names, &path).expect("drawn");
        let side = confusion_size(3);
        assert_eq!(png_size(&path), (side, side));
        // The diagonal cell of a well-classified class is shaded blue.
        let image = image::open(&path).expect("png").to_rgb8();
        let cell = confusion_cell(3);
        let centre = CONFUSION_MARGIN + cell / 2 + cell - 6;
        let pixel = image.get_pixel(CONFUSION_MARGIN + cell + cell - 4, centre);
        assert!(pixel[2] > pixel[0], "{pixel:?}");
    }
}
