//! A grid of training images as the network sees them (augmented where the config
//! says), so that a user can judge the augmentation before a long run.

use std::path::Path;

use image::imageops::{self, FilterType};
use image::{GrayImage, RgbImage};

use crate::TrainerError;

/// Pixels between two images of the grid, and around it.
const GAP: u32 = 2;
/// Each image drawn this many times its size.
const ZOOM: u32 = 3;
/// Images a grid shows at most: a batch of thousands would make a picture of
/// gigabytes.
const MOST: usize = 256;

/// Writes the first `count` images, at most [`MOST`] (`[channels, height, width]`
/// floats in [0, 1] each, one after the other) to `path` as a PNG grid, as square as
/// they allow; returns how many it shows.
pub fn sample_grid(
    path: &Path,
    pixels: &[f32],
    count: usize,
    [channels, height, width]: [usize; 3],
) -> Result<usize, TrainerError> {
    let failed = |reason: String| TrainerError::Picture {
        path: path.to_path_buf(),
        reason,
    };
    let count = count.min(MOST);
    let columns = (count as f64).sqrt().ceil().max(1.0) as u32;
    let rows = (count as u32).div_ceil(columns).max(1);
    let [tile_width, tile_height] = [width as u32 * ZOOM, height as u32 * ZOOM];
    let mut grid = RgbImage::from_pixel(
        GAP + columns * (tile_width + GAP),
        GAP + rows * (tile_height + GAP),
        image::Rgb([96, 96, 96]),
    );
    let byte = |value: &f32| (value.clamp(0.0, 1.0) * 255.0).round() as u8;
    let plane = height * width;
    for (index, image) in pixels
        .chunks_exact((channels * plane).max(1))
        .take(count)
        .enumerate()
    {
        // Channel-first floats to an image of interleaved bytes.
        let tile = match channels {
            3 => {
                let interleaved: Vec<u8> = (0..plane)
                    .flat_map(|p| (0..3).map(move |c| byte(&image[c * plane + p])))
                    .collect();
                RgbImage::from_raw(width as u32, height as u32, interleaved)
            }
            _ => {
                let grey = GrayImage::from_raw(
                    width as u32,
                    height as u32,
                    image[..plane].iter().map(byte).collect(),
                );
                grey.map(|grey| image::DynamicImage::ImageLuma8(grey).to_rgb8())
            }
        }
        .ok_or_else(|| failed("an image of the wrong size".into()))?;
        let tile = imageops::resize(&tile, tile_width, tile_height, FilterType::Nearest);
        let (column, row) = (index as u32 % columns, index as u32 / columns);
        let x = GAP + column * (tile_width + GAP);
        let y = GAP + row * (tile_height + GAP);
        imageops::replace(&mut grid, &tile, i64::from(x), i64::from(y));
    }
    let mut png = Vec::new();
    grid.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .map_err(|e| failed(e.to_string()))?;
    crate::fs::write_atomically(path, &png)?;
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::tests::png_size;

    #[test]
    fn a_grid_holds_every_image_zoomed_with_gaps() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let path = tmp.path().join("samples.png");
        // Ten 4x5 grey images: four columns, three rows.
        let pixels: Vec<f32> = (0..10 * 20).map(|i| (i % 20) as f32 / 19.0).collect();
        assert_eq!(
            sample_grid(&path, &pixels, 10, [1, 4, 5]).expect("written"),
            10
        );
        assert_eq!(
            png_size(&path),
            (GAP + 4 * (5 * ZOOM + GAP), GAP + 3 * (4 * ZOOM + GAP))
        );
        let decoded = image::open(&path).expect("a PNG").to_rgb8();
        // The first image's last pixel is white, drawn ZOOM x ZOOM.
        let corner = decoded.get_pixel(GAP + 5 * ZOOM - 1, GAP + 4 * ZOOM - 1);
        assert_eq!(corner.0, [255, 255, 255]);
        assert_eq!(decoded.get_pixel(GAP, GAP).0, [0, 0, 0]);
        assert_eq!(decoded.get_pixel(0, 0).0, [96, 96, 96], "the gap");
    }

    #[test]
    fn a_grid_shows_at_most_256_images() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let path = tmp.path().join("many.png");
        let pixels = vec![0.5f32; 1000 * 4];
        assert_eq!(
            sample_grid(&path, &pixels, 1000, [1, 2, 2]).expect("written"),
            256
        );
        let side = GAP + 16 * (2 * ZOOM + GAP);
        assert_eq!(png_size(&path), (side, side));
    }
}
