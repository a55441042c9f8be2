//! The `explain` picture: the input, its saliency map and the first layer's weights as
//! image-shaped templates, in one PNG.

use std::path::Path;

use plotters::prelude::*;

use super::{Canvas, FAMILY, drawing};
use crate::TrainerError;
use crate::infer::Explanation;

/// The most first-layer units drawn; wider layers show their first ones.
const MAX_TILES: usize = 256;
const PANEL: u32 = 252;
const GRID: u32 = 756;
const MARGIN: u32 = 24;
const TOP: u32 = 70;

/// Width and height of the picture.
pub const PICTURE_SIZE: (u32, u32) = (MARGIN * 3 + PANEL + GRID, TOP + GRID + MARGIN);

/// Draws the picture into the run directory as `in_run` and, with `out`, to `out` too,
/// returning the files written. The run keeps its pictures together, and `out` puts a
/// copy where the user wants it: with `out`, only that one must succeed, and a run
/// directory that cannot take the picture is a warning.
pub fn save_explanation(
    explanation: &Explanation,
    first_layer: &FirstLayer<'_>,
    side: usize,
    title: &str,
    in_run: &Path,
    out: Option<&Path>,
) -> Result<Vec<std::path::PathBuf>, TrainerError> {
    let draw = |path: &Path| draw_explanation(explanation, first_layer, side, title, path);
    let Some(out) = out else {
        draw(in_run)?;
        return Ok(vec![in_run.to_path_buf()]);
    };
    draw(out)?;
    let mut written = vec![out.to_path_buf()];
    match draw(in_run) {
        Ok(()) => written.push(in_run.to_path_buf()),
        Err(error) => crate::console::Console::warn(error),
    }
    Ok(written)
}

/// The weights of the layer that sees the pixels, as [`Network::input_weights`]
/// gives them.
#[derive(Debug)]
pub struct FirstLayer<'a> {
    /// `[side * side, units]`, row-major.
    pub weights: &'a [f32],
    /// The side of the square each unit's column shows: the image's for an MLP, the
    /// kernel's for a CNN.
    pub side: usize,
    /// Whether the units are the filters of a convolution.
    pub convolutional: bool,
}

/// Draws the input, its saliency map and the first layer's weights for images `side`
/// pixels square.
pub fn draw_explanation(
    explanation: &Explanation,
    first_layer: &FirstLayer<'_>,
    side: usize,
    title: &str,
    path: &Path,
) -> Result<(), TrainerError> {
    let FirstLayer {
        weights: input_weights,
        side: tile_side,
        convolutional,
    } = *first_layer;
    let pixels = tile_side * tile_side;
    let units = input_weights.len() / pixels.max(1);
    let (width, height) = PICTURE_SIZE;
    Canvas::new(width, height).draw_and_save(path, |root| {
        drawing(root.fill(&WHITE))?;
        let text = |size: i32| (FAMILY, size).into_font().color(&BLACK);
        drawing(root.draw_text(title, &text(20), (MARGIN as i32, 14)))?;
        let left = MARGIN as i32;
        let top = TOP as i32;
        let panel = PANEL as i32;
        drawing(root.draw_text("input", &text(15), (left, top - 22)))?;
        let ink: Vec<f32> = explanation.pixels.iter().map(|&p| 1.0 - p).collect();
        draw_image(root, &ink, side, (left, top), panel, grey)?;
        let saliency_top = top + panel + 60;
        drawing(root.draw_text(
            "saliency: d logit / d pixel",
            &text(15),
            (left, saliency_top - 40),
        ))?;
        drawing(root.draw_text(
            "red raises the prediction, blue lowers it",
            &text(12),
            (left, saliency_top - 20),
        ))?;
        let saliency = symmetric_scale(&explanation.saliency);
        draw_image(
            root,
            &saliency,
            side,
            (left, saliency_top),
            panel,
            diverging,
        )?;

        let grid_left = left + panel + MARGIN as i32;
        let shown = units.min(MAX_TILES);
        let columns = (shown as f64).sqrt().ceil().max(1.0) as i32;
        let tile = GRID as i32 / columns;
        let heading = match (convolutional, shown < units) {
            (false, true) => format!("first-layer weights: first {shown} of {units} units"),
            (false, false) => {
                format!("first-layer weights: {units} units, one {side}x{side} tile each")
            }
            (true, true) => format!("first convolution: first {shown} of {units} filters"),
            (true, false) => {
                format!("first convolution: {units} filters, {tile_side}x{tile_side} each")
            }
        };
        drawing(root.draw_text(&heading, &text(15), (grid_left, top - 22)))?;
        for unit in 0..shown {
            // Column `unit` of the [pixels, units] matrix.
            let template: Vec<f32> = (0..pixels)
                .map(|pixel| input_weights[pixel * units + unit])
                .collect();
            let at = (
                grid_left + (unit as i32 % columns) * tile,
                top + (unit as i32 / columns) * tile,
            );
            draw_image(
                root,
                &symmetric_scale(&template),
                tile_side,
                at,
                tile - 3,
                diverging,
            )?;
        }
        Ok(())
    })
}

/// Draws `values` (row-major, `side` x `side`) as a square of `size` pixels at `at`,
/// coloured by `color`.
fn draw_image(
    area: &DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>,
    values: &[f32],
    side: usize,
    at: (i32, i32),
    size: i32,
    color: fn(f32) -> RGBColor,
) -> Result<(), String> {
    let side_i = side.max(1) as i32;
    for (index, &value) in values.iter().enumerate().take(side * side) {
        let (row, column) = (index as i32 / side_i, index as i32 % side_i);
        let corner = |r: i32, c: i32| (at.0 + c * size / side_i, at.1 + r * size / side_i);
        drawing(area.draw(&Rectangle::new(
            [corner(row, column), corner(row + 1, column + 1)],
            color(value).filled(),
        )))?;
    }
    drawing(area.draw(&Rectangle::new(
        [at, (at.0 + size, at.1 + size)],
        RGBColor(160, 160, 160),
    )))
}

/// `values` divided by their largest magnitude, into [-1, 1]; all zeros stay zeros.
fn symmetric_scale(values: &[f32]) -> Vec<f32> {
    let largest = values
        .iter()
        .filter(|v| v.is_finite())
        .fold(0.0f32, |m, v| m.max(v.abs()));
    values
        .iter()
        .map(|&v| if largest > 0.0 { v / largest } else { 0.0 })
        .collect()
}

/// 0 is black, 1 is white.
fn grey(value: f32) -> RGBColor {
    let level = (value.clamp(0.0, 1.0) * 255.0) as u8;
    RGBColor(level, level, level)
}

/// -1 is blue, 0 is white, 1 is red.
fn diverging(value: f32) -> RGBColor {
    let fade = (255.0 * (1.0 - value.abs().min(1.0))) as u8;
    if value >= 0.0 {
        RGBColor(255, fade, fade)
    } else {
        RGBColor(fade, fade, 255)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::prelude::*;
    use model::NetworkConfig;

    #[test]
    fn picture_is_a_png_of_the_promised_size() {
        let device = Device::flex().autodiff();
        let model = NetworkConfig::new().init(&device);
        let explanation = crate::infer::explain(&model, &[0u8; 784], &device).expect("explains");
        let (weights, tile_side) = model.input_weights();
        let weights = weights.try_into_vec_as::<f32>().expect("floats");
        let weights = FirstLayer {
            weights: &weights,
            side: tile_side,
            convolutional: false,
        };
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("explain.png");
        draw_explanation(&explanation, &weights, 28, "blank", &path).expect("drawn");
        let image = image::open(&path).expect("a PNG");
        assert_eq!((image.width(), image.height()), PICTURE_SIZE);
        let copy = dir.path().join("copy.png");
        let unwritable = dir.path().join("no-such-dir").join("in-run.png");
        let written = save_explanation(&explanation, &weights, 28, "t", &unwritable, Some(&copy))
            .expect("the copy is what must succeed");
        assert_eq!(written, std::slice::from_ref(&copy));
        assert!(save_explanation(&explanation, &weights, 28, "t", &unwritable, None).is_err());
        let title = explanation.title("blank", |c| format!("digit {c}"));
        assert!(title.starts_with("blank: predicted digit "), "{title}");
    }
}
