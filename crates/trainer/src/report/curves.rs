//! `curves.png`: loss and accuracy per epoch, training against validation.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::{Canvas, FAMILY, drawing};
use crate::TrainerError;
use crate::epoch::EpochSummary;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::tests::png_size;

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
}
