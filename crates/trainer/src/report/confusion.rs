//! `confusion.png`: which classes the model takes for which.

use std::path::Path;

use plotters::prelude::*;

use super::{Canvas, FAMILY, drawing};
use crate::TrainerError;

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
    use crate::report::tests::png_size;

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
