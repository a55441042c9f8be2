//! Pictures to pixel bytes: each file decoded (its format recognised by content),
//! converted to the run's channels (grey, or RGB), resized to the run's image size,
//! and laid out as channel planes, as [`LabelledImages`] holds them.

use std::path::{Path, PathBuf};

use image::imageops::{FilterType, resize};
use image::{DynamicImage, ImageReader, Limits};
use kernels::planes::{repeat_plane, to_planes};
use rayon::prelude::*;

use super::scan::SplitFiles;
use crate::{DataError, LabelledImages};

/// The widest and tallest picture decoded, in pixels.
const MAX_SIDE: u32 = 8192;
/// The most memory a decoder may take, in bytes.
const MAX_DECODED: u64 = 256 << 20;

/// A picture left out of the data, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    pub path: PathBuf,
    pub reason: String,
}

/// What pictures become: their channels (1 or 3; `None`: as the pictures are, 3 if
/// any is in colour) and `[height, width]` (`None`: the first picture's, which all
/// must share).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Target {
    pub(crate) channels: Option<usize>,
    pub(crate) size: Option<[usize; 2]>,
}

/// Decodes the picture at `path`, bounded so that a file declaring a huge image is
/// refused instead of exhausting memory; the error says why in words.
pub fn read_picture(path: &Path) -> Result<DynamicImage, String> {
    let mut reader = ImageReader::open(path)
        .map_err(|e| e.to_string())?
        .with_guessed_format()
        .map_err(|e| e.to_string())?;
    reader.limits(decoding_limits());
    reader.decode().map_err(|e| match e {
        image::ImageError::Limits(_) => format!(
            "it is larger than this program decodes: at most {MAX_SIDE}x{MAX_SIDE} pixels and {} MiB",
            MAX_DECODED >> 20
        ),
        other => other.to_string(),
    })
}

/// Bounds on what a decoder may allocate. A phone photo fits easily.
pub fn decoding_limits() -> Limits {
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_DECODED);
    limits
}

/// `image` as `channels` planes (1: its luminance, 3: red, green, blue) of
/// `[height, width]`, resized with a bilinear filter if it is of another size.
pub fn picture_planes(
    image: &DynamicImage,
    channels: usize,
    [height, width]: [usize; 2],
) -> Vec<u8> {
    let (width, height) = (width as u32, height as u32);
    let same = image.width() == width && image.height() == height;
    if channels == 1 {
        let grey = image.to_luma8();
        match same {
            true => grey.into_raw(),
            false => resize(&grey, width, height, FilterType::Triangle).into_raw(),
        }
    } else {
        let rgb = image.to_rgb8();
        let rgb = match same {
            true => rgb,
            false => resize(&rgb, width, height, FilterType::Triangle),
        };
        to_planes(rgb.as_raw(), 3)
    }
}

/// The channels a picture has of itself: 3 if it is in colour, else 1.
fn own_channels(image: &DynamicImage) -> usize {
    if image.color().has_color() { 3 } else { 1 }
}

/// The pictures of one split as [`LabelledImages`], with the channels and size it
/// settled on; bad pictures (undecodable, of the wrong size, or no picture at all)
/// are errors, or with `skip` left out and listed.
pub(crate) fn decode_split(
    files: &SplitFiles,
    target: Target,
    skip: bool,
) -> Result<(LabelledImages, Vec<Skipped>), DataError> {
    let mut skipped = Vec::new();
    let mut bad = |path: &Path, reason: String| match skip {
        true => {
            skipped.push(Skipped {
                path: path.to_path_buf(),
                reason,
            });
            Ok(())
        }
        false => Err(DataError::BadPicture {
            path: path.to_path_buf(),
            reason,
        }),
    };
    for path in &files.not_pictures {
        bad(path, "it is not a PNG, JPEG, BMP or WebP picture".into())?;
    }
    let size = match (target.size, first_size(files)) {
        (Some(size), _) => size,
        (None, Ok(size)) => size,
        // Not one picture decodes: the first one's reason is the error, or with
        // `skip` that none is left.
        (None, Err((path, reason))) => {
            bad(&path, reason)?;
            return Err(DataError::NoPictures);
        }
    };
    let decoded: Vec<Result<Vec<u8>, String>> = files
        .pictures
        .par_iter()
        .map(|(path, _)| {
            let image = read_picture(path)?;
            let own = [image.height() as usize, image.width() as usize];
            if target.size.is_none() && own != size {
                return Err(format!(
                    "it is {}x{} where the first picture is {}x{}; set data.image_size to resize them all to one size",
                    own[1], own[0], size[1], size[0]
                ));
            }
            Ok(picture_planes(&image, target.channels.unwrap_or(own_channels(&image)), size))
        })
        .collect();
    let plane = size[0] * size[1];
    let mut images = Vec::with_capacity(decoded.len());
    let mut labels = Vec::with_capacity(decoded.len());
    for ((path, label), result) in files.pictures.iter().zip(decoded) {
        match result {
            Ok(pixels) => {
                images.push(pixels);
                labels.push(*label);
            }
            Err(reason) => bad(path, reason)?,
        }
    }
    let channels = target.channels.unwrap_or_else(|| {
        images
            .iter()
            .map(|pixels| pixels.len() / plane)
            .max()
            .unwrap_or(1)
    });
    let mut pixels = Vec::with_capacity(images.len() * channels * plane);
    for image in images {
        match image.len() / plane == channels {
            true => pixels.extend(image),
            false => pixels.extend(repeat_plane(&image, channels)),
        }
    }
    let set = LabelledImages::from_planes(channels, size[0], size[1], pixels, labels)
        .ok_or(DataError::NoPictures)?;
    Ok((set, skipped))
}

/// The `[height, width]` of the first picture that decodes, or the first picture
/// and why it does not.
fn first_size(files: &SplitFiles) -> Result<[usize; 2], (PathBuf, String)> {
    let mut first_error = None;
    for (path, _) in &files.pictures {
        match read_picture(path) {
            Ok(image) => return Ok([image.height() as usize, image.width() as usize]),
            Err(reason) => {
                first_error.get_or_insert((path.clone(), reason));
            }
        }
    }
    Err(first_error.unwrap_or_default())
}
