//! Pictures to pixel bytes: each file decoded (its format recognised by content),
//! converted to the run's channels (grey, or RGB), resized to the run's image size,
//! and laid out as channel planes, as [`LabelledImages`] holds them.

use std::path::{Path, PathBuf};

use image::imageops::{FilterType, resize};
use image::{DynamicImage, ImageDecoder, ImageReader, Limits};
use kernels::planes::{repeat_plane, to_planes};
use rayon::prelude::*;

use super::scan::SplitFiles;
use crate::{DataError, LabelledImages, available_memory};

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

/// The pictures of one split as [`LabelledImages`] in memory, with the channels and
/// size it settled on; bad pictures (undecodable, of the wrong size, or no picture
/// at all) are errors, or with `skip` left out and listed.
pub(crate) fn decode_split(
    files: &SplitFiles,
    target: Target,
    skip: bool,
) -> Result<(LabelledImages, Vec<Skipped>), DataError> {
    let (mut verdicts, size) = Verdicts::start(files, target, skip)?;
    let plane = size[0] * size[1];
    let mut images = Vec::with_capacity(files.pictures.len());
    let mut labels = Vec::with_capacity(files.pictures.len());
    decode_each(
        &files.pictures,
        (target, size),
        &mut verdicts,
        |pixels, label| {
            images.push(pixels);
            labels.push(label);
            Ok(())
        },
    )?;
    let channels = target.channels.unwrap_or_else(|| {
        images
            .iter()
            .map(|pixels| pixels.len() / plane)
            .max()
            .unwrap_or(1)
    });
    let mut pixels = Vec::with_capacity(images.len() * channels * plane);
    for image in images {
        pixels.extend(in_channels(image, channels, plane));
    }
    let set = LabelledImages::from_planes(channels, size[0], size[1], pixels, labels)
        .ok_or(DataError::NoPictures)?;
    Ok((set, verdicts.skipped))
}

/// The pictures left out of a split so far, or the error that stops it.
pub(crate) struct Verdicts {
    skip: bool,
    pub(crate) skipped: Vec<Skipped>,
}

impl Verdicts {
    /// Judges the files of `files` that are no picture, then settles the size every
    /// picture is made ([`Verdicts::size`]).
    pub(crate) fn start(
        files: &SplitFiles,
        target: Target,
        skip: bool,
    ) -> Result<(Self, [usize; 2]), DataError> {
        let mut verdicts = Self {
            skip,
            skipped: Vec::new(),
        };
        for path in &files.not_pictures {
            verdicts.bad(path, "it is not a PNG, JPEG, BMP or WebP picture".into())?;
        }
        let size = verdicts.size(files, target)?;
        Ok((verdicts, size))
    }

    /// The picture at `path` cannot be used, for `reason`: an error, or with `skip`
    /// one more left out.
    pub(crate) fn bad(&mut self, path: &Path, reason: String) -> Result<(), DataError> {
        match self.skip {
            true => {
                self.skipped.push(Skipped {
                    path: path.to_path_buf(),
                    reason,
                });
                Ok(())
            }
            false => Err(DataError::BadPicture {
                path: path.to_path_buf(),
                reason,
            }),
        }
    }

    /// The size every picture is made: the target's, else the first picture's that
    /// decodes. When none decodes, the first one's reason is the error, or with
    /// `skip` that none is left.
    fn size(&mut self, files: &SplitFiles, target: Target) -> Result<[usize; 2], DataError> {
        match (target.size, first_size(files)) {
            (Some(size), _) | (None, Ok(size)) => Ok(size),
            (None, Err((path, reason))) => {
                self.bad(&path, reason)?;
                Err(DataError::NoPictures)
            }
        }
    }
}

/// Decodes `pictures` on every core to `target` at `size`, handing each that
/// decodes, with its label, to `keep`, in order, and each that does not to
/// `verdicts`.
pub(crate) fn decode_each(
    pictures: &[(PathBuf, u8)],
    (target, size): (Target, [usize; 2]),
    verdicts: &mut Verdicts,
    mut keep: impl FnMut(Vec<u8>, u8) -> Result<(), DataError>,
) -> Result<(), DataError> {
    let decoded: Vec<Result<Vec<u8>, String>> = pictures
        .par_iter()
        .map(|(path, _)| decode_picture(path, target, size))
        .collect();
    for ((path, label), result) in pictures.iter().zip(decoded) {
        match result {
            Ok(pixels) => keep(pixels, *label)?,
            Err(reason) => verdicts.bad(path, reason)?,
        }
    }
    Ok(())
}

/// The picture at `path` as the planes of `size` (its own channels unless `target`
/// says), or why it cannot be: it does not decode, or without a target size it is
/// of another size.
fn decode_picture(path: &Path, target: Target, size: [usize; 2]) -> Result<Vec<u8>, String> {
    let image = read_picture(path)?;
    let own = [image.height() as usize, image.width() as usize];
    if target.size.is_none() && own != size {
        return Err(format!(
            "it is {}x{} where the first picture is {}x{}; set data.image_size to resize them all to one size",
            own[1], own[0], size[1], size[0]
        ));
    }
    Ok(picture_planes(
        &image,
        target.channels.unwrap_or(own_channels(&image)),
        size,
    ))
}

/// A grey picture's single plane repeated to `channels`, or the picture as it is.
fn in_channels(image: Vec<u8>, channels: usize, plane: usize) -> Vec<u8> {
    match image.len() / plane.max(1) == channels {
        true => image,
        false => repeat_plane(&image, channels),
    }
}

/// The channels of a split's pictures together, from their headers alone: 3 if any
/// is in colour, else 1. A picture whose header does not read counts as grey; it is
/// judged when decoded.
pub(crate) fn channels_of(files: &SplitFiles) -> usize {
    let in_colour = |path: &PathBuf| {
        ImageReader::open(path)
            .ok()
            .and_then(|reader| reader.with_guessed_format().ok())
            .and_then(|reader| reader.into_decoder().ok())
            .is_some_and(|decoder| decoder.color_type().has_color())
    };
    match files.pictures.par_iter().any(|(path, _)| in_colour(path)) {
        true => 3,
        false => 1,
    }
}

/// Whether `bytes` of decoded pictures take at most half the memory available: a set
/// in memory is assembled from its pictures, so held twice for a moment. Where the
/// memory is not known, they are taken to fit.
pub(crate) fn fits_in_memory(bytes: u128) -> bool {
    available_memory().is_none_or(|available| bytes * 2 <= u128::from(available))
}

/// [`fits_in_memory`] for the pictures of `files` made into `target`, estimated
/// before decoding from the first picture's header (and every picture's, when only
/// their channels decide it). Where a size is not known, they are taken to fit.
pub(crate) fn pictures_fit_in_memory(files: &SplitFiles, target: Target) -> bool {
    let first = files.pictures.first().and_then(|(path, _)| {
        let reader = ImageReader::open(path).ok()?.with_guessed_format().ok()?;
        let (width, height) = reader.into_dimensions().ok()?;
        Some([height as usize, width as usize])
    });
    let Some([height, width]) = target.size.or(first) else {
        return true;
    };
    let bytes =
        |channels: usize| (files.pictures.len() as u128) * (channels * height * width) as u128;
    // Grey or colour, only when it matters.
    fits_in_memory(bytes(target.channels.unwrap_or(3)))
        || (target.channels.is_none() && fits_in_memory(bytes(channels_of(files))))
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
