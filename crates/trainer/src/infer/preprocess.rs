//! Turning an arbitrary picture of a digit into what the network was trained on: the
//! MNIST way of preparing images. MNIST digits are light on black, fitted into a
//! 20x20 box with their aspect kept, and centred by centre of mass in 28x28.

use std::path::Path;

use data::{picture_planes, read_picture};
use image::imageops::{FilterType, resize};
use image::{DynamicImage, GrayImage};

use crate::TrainerError;
use crate::config::TrainingConfig;
/// Brightness (0-255, after contrast stretching) above which a pixel counts as ink.
const INK_THRESHOLD: u8 = 25;
/// Below this contrast between background and the brightest stroke, there is no digit.
const MIN_CONTRAST: f32 = 30.0;

/// The side of the square image a network with `input_size` inputs takes; `None` when
/// `input_size` is not a square, and then only pixel arrays can be classified.
pub(crate) use model::square_side;

/// [`square_side`], for a command that needs an image: not a square is an error.
pub fn image_side(input_size: usize) -> Result<usize, TrainerError> {
    square_side(input_size).ok_or(TrainerError::NotSquare(input_size))
}

/// Reads an image file (format recognised by content) and prepares it for the
/// network of `config`: as the run's pictures were (its channels, resized to its
/// size) for a run of pictures, else the MNIST way for its `side x side` input.
pub fn load_picture(path: &Path, config: &TrainingConfig) -> Result<Vec<u8>, TrainerError> {
    let image_error = |reason: String| TrainerError::Image {
        path: path.to_path_buf(),
        reason,
    };
    let image = read_picture(path).map_err(image_error)?;
    match (config.data.channels, config.data.image_size) {
        (Some(channels), Some(size)) => Ok(picture_planes(&image, channels, size)),
        _ => mnist_style(&image, image_side(config.model.input_size)?).map_err(image_error),
    }
}

/// Prepares a decoded image: grayscale (transparency composited over white), inverted
/// if its background is light, contrast stretched, the digit fitted into a box of
/// `side * 20 / 28` pixels keeping its aspect, and centred by centre of mass in a
/// `side x side` grid. Returns the grid's pixels, row-major.
pub(crate) fn mnist_style(image: &DynamicImage, side: usize) -> Result<Vec<u8>, String> {
    let gray = grayscale_over_white(image);
    let (width, height) = gray.dimensions();
    if width == 0 || height == 0 {
        return Err("the image is empty".into());
    }
    let mut values: Vec<f32> = gray.pixels().map(|p| f32::from(p.0[0])).collect();
    let border = border_values(&values, width as usize, height as usize);
    let mut background = median(border);
    if background > 127.5 {
        values.iter_mut().for_each(|v| *v = 255.0 - *v);
        background = 255.0 - background;
    }
    let brightest = values.iter().copied().fold(0.0, f32::max);
    if brightest - background < MIN_CONTRAST {
        return Err("no digit is visible: the image has almost no contrast".into());
    }
    let stretched: Vec<u8> = values
        .iter()
        .map(|v| ((v - background) / (brightest - background) * 255.0).clamp(0.0, 255.0) as u8)
        .collect();
    let ink = GrayImage::from_raw(width, height, stretched)
        .ok_or_else(|| "the image's pixel buffer is inconsistent".to_string())?;

    let (left, top, right, bottom) = bounding_box(&ink).ok_or("no digit is visible")?;
    let digit =
        image::imageops::crop_imm(&ink, left, top, right - left + 1, bottom - top + 1).to_image();
    let box_side = (side * 20).div_ceil(28).max(1) as f32;
    let scale = box_side / digit.width().max(digit.height()) as f32;
    let fitted_width = ((digit.width() as f32 * scale).round() as u32).max(1);
    let fitted_height = ((digit.height() as f32 * scale).round() as u32).max(1);
    let fitted = resize(&digit, fitted_width, fitted_height, FilterType::Triangle);
    Ok(centre_by_mass(&fitted, side))
}

fn grayscale_over_white(image: &DynamicImage) -> GrayImage {
    let rgba = image.to_rgba8();
    let (width, height) = rgba.dimensions();
    let pixels = rgba
        .pixels()
        .map(|p| {
            let [r, g, b, a] = p.0.map(f32::from);
            let luminance = 0.299 * r + 0.587 * g + 0.114 * b;
            let alpha = a / 255.0;
            (luminance * alpha + 255.0 * (1.0 - alpha)).round() as u8
        })
        .collect();
    GrayImage::from_raw(width, height, pixels).unwrap_or_default()
}

fn border_values(values: &[f32], width: usize, height: usize) -> Vec<f32> {
    (0..height)
        .flat_map(|y| (0..width).map(move |x| (x, y)))
        .filter(|&(x, y)| x == 0 || y == 0 || x == width - 1 || y == height - 1)
        .map(|(x, y)| values[y * width + x])
        .collect()
}

fn median(mut values: Vec<f32>) -> f32 {
    values.sort_by(f32::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

/// Inclusive `(left, top, right, bottom)` of the pixels brighter than the threshold.
fn bounding_box(image: &GrayImage) -> Option<(u32, u32, u32, u32)> {
    image
        .enumerate_pixels()
        .filter(|(_, _, p)| p.0[0] > INK_THRESHOLD)
        .fold(None, |bounds, (x, y, _)| {
            Some(match bounds {
                None => (x, y, x, y),
                Some((l, t, r, b)) => (l.min(x), t.min(y), r.max(x), b.max(y)),
            })
        })
}

/// Pastes `digit` into a black `side x side` grid so that its centre of mass lands
/// on the grid's centre, clipping whatever falls outside.
fn centre_by_mass(digit: &GrayImage, side: usize) -> Vec<u8> {
    let (mut mass, mut sum_x, mut sum_y) = (0.0f64, 0.0f64, 0.0f64);
    for (x, y, p) in digit.enumerate_pixels() {
        let weight = f64::from(p.0[0]);
        mass += weight;
        sum_x += weight * f64::from(x);
        sum_y += weight * f64::from(y);
    }
    let (centre_x, centre_y) = if mass > 0.0 {
        (sum_x / mass, sum_y / mass)
    } else {
        (
            f64::from(digit.width()) / 2.0,
            f64::from(digit.height()) / 2.0,
        )
    };
    let middle = (side as f64 - 1.0) / 2.0;
    let offset_x = (middle - centre_x).round() as i64;
    let offset_y = (middle - centre_y).round() as i64;
    let mut grid = vec![0u8; side * side];
    for (x, y, p) in digit.enumerate_pixels() {
        let (gx, gy) = (i64::from(x) + offset_x, i64::from(y) + offset_y);
        if (0..side as i64).contains(&gx) && (0..side as i64).contains(&gy) {
            grid[gy as usize * side + gx as usize] = p.0[0];
        }
    }
    grid
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{Luma, Rgba, RgbaImage};

    /// A dark vertical bar on a light background, off-centre, as a phone photo of a
    /// "1" might be.
    fn light_background_bar() -> DynamicImage {
        let mut image = GrayImage::from_pixel(100, 60, Luma([230]));
        for y in 5..45 {
            for x in 10..20 {
                image.put_pixel(x, y, Luma([20]));
            }
        }
        DynamicImage::ImageLuma8(image)
    }

    fn ink_bounds(grid: &[u8], side: usize) -> (usize, usize, usize, usize) {
        let ink: Vec<(usize, usize)> = (0..side * side)
            .filter(|&i| grid[i] > INK_THRESHOLD)
            .map(|i| (i % side, i / side))
            .collect();
        let xs = ink.iter().map(|p| p.0);
        let ys = ink.iter().map(|p| p.1);
        (
            xs.clone().min().unwrap_or(0),
            ys.clone().min().unwrap_or(0),
            xs.max().unwrap_or(0),
            ys.max().unwrap_or(0),
        )
    }

    #[test]
    fn light_background_is_inverted_fitted_and_centred() {
        let grid = mnist_style(&light_background_bar(), 28).expect("a digit");
        assert_eq!(grid.len(), 784);
        assert_eq!(grid[0], 0, "background becomes black");
        let (left, top, right, bottom) = ink_bounds(&grid, 28);
        assert_eq!(bottom - top + 1, 20, "the long side fills the 20-pixel box");
        assert!(
            (4..=6).contains(&(right - left + 1)),
            "aspect kept: 10x40 -> 5x20"
        );
        assert!(
            (3..=5).contains(&top) && (22..=24).contains(&bottom),
            "centred: {top}..{bottom}"
        );
        assert!((11..=12).contains(&left), "centred: {left}..{right}");
    }

    #[test]
    fn transparent_background_counts_as_white() {
        let mut image = RgbaImage::from_pixel(40, 40, Rgba([0, 0, 0, 0]));
        for y in 10..30 {
            for x in 18..22 {
                image.put_pixel(x, y, Rgba([0, 0, 0, 255]));
            }
        }
        let grid = mnist_style(&DynamicImage::ImageRgba8(image), 28).expect("a digit");
        let (_, top, _, bottom) = ink_bounds(&grid, 28);
        assert_eq!(bottom - top + 1, 20);
    }

    #[test]
    fn blank_image_is_rejected() {
        let blank = DynamicImage::ImageLuma8(GrayImage::from_pixel(28, 28, Luma([255])));
        assert!(mnist_style(&blank, 28).is_err());
    }

    #[test]
    fn an_mnist_digit_stays_an_mnist_digit() {
        // A 20x20 block centred in 28x28, light on black: already MNIST-shaped.
        let mut image = GrayImage::new(28, 28);
        for y in 4..24 {
            for x in 4..24 {
                image.put_pixel(x, y, Luma([255]));
            }
        }
        let grid = mnist_style(&DynamicImage::ImageLuma8(image.clone()), 28).expect("a digit");
        assert_eq!(grid, image.into_raw());
    }

    #[test]
    fn an_image_declaring_a_huge_size_is_refused_before_decoding() {
        // A PNG header (signature and IHDR) declaring 20000x20000 grayscale pixels.
        let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
        let mut ihdr = b"IHDR".to_vec();
        ihdr.extend(20000u32.to_be_bytes());
        ihdr.extend(20000u32.to_be_bytes());
        ihdr.extend([8, 0, 0, 0, 0]);
        png.extend((ihdr.len() as u32 - 4).to_be_bytes());
        png.extend(&ihdr);
        png.extend(crc32(&ihdr).to_be_bytes());
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("huge.png");
        std::fs::write(&path, png).expect("write");
        let err = load_picture(&path, &TrainingConfig::new()).expect_err("too large");
        assert!(matches!(err, TrainerError::Image { .. }), "{err}");
        let empty = dir.path().join("empty.png");
        std::fs::write(&empty, b"").expect("write");
        assert!(matches!(
            load_picture(&empty, &TrainingConfig::new()),
            Err(TrainerError::Image { .. })
        ));
    }

    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = !0u32;
        for &byte in bytes {
            crc ^= u32::from(byte);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }

    #[test]
    fn unreadable_file_is_an_image_error_naming_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("digit.png");
        std::fs::write(&path, b"not an image").expect("write");
        let err = load_picture(&path, &TrainingConfig::new()).expect_err("garbage");
        assert!(matches!(err, TrainerError::Image { .. }));
        assert!(err.to_string().contains("digit.png"), "{err}");
    }
}
