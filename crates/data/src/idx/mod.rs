//! The IDX format MNIST ships in: a big-endian header (a magic number whose last byte
//! is the number of dimensions, then one `u32` per dimension) followed by the
//! unsigned bytes of the payload. Files may be gzip-compressed, which is recognised
//! by content rather than by file name.

use std::borrow::Cow;
use std::path::Path;

use crate::DataError;
use crate::pixels::Pixels;

mod read;
use self::read::{Partner, Reading, parse_idx, read_idx};

/// The magic number of an IDX file of unsigned-byte images (three dimensions).
pub const IMAGES_MAGIC: u32 = 0x0000_0803;
/// The magic number of an IDX file of unsigned-byte labels (one dimension).
pub const LABELS_MAGIC: u32 = 0x0000_0801;
pub(crate) const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Images of an IDX3 file: `count` row-major `rows x cols` grids of `u8` pixels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdxImages {
    pub count: usize,
    pub rows: usize,
    pub cols: usize,
    pub pixels: Vec<u8>,
}

/// Labels of an IDX1 file, one byte per item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdxLabels(pub Vec<u8>);

/// An images file and its labels file, checked to describe the same items: every
/// label, and the pixels of every image or only of those a run uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelledImages {
    /// 1 for grey images (all IDX files), 3 for colour ones; an image's channels are
    /// stored one plane after another.
    channels: usize,
    rows: usize,
    cols: usize,
    /// The pixels of the held images, one after the other in index order.
    pixels: Pixels,
    /// The images whose pixels are held, ascending; `None`: every image.
    held: Option<Vec<usize>>,
    labels: Vec<u8>,
}

impl IdxImages {
    pub fn read(path: &Path) -> Result<Self, DataError> {
        let (dims, pixels) = read_idx(&Reading::whole(path, "images", IMAGES_MAGIC))?;
        Ok(Self::from_dims(&dims, pixels))
    }

    /// Parses the bytes of an images file held in memory; `name` labels errors.
    pub fn from_bytes(bytes: &[u8], name: &Path) -> Result<Self, DataError> {
        let reading = Reading {
            in_memory: true,
            ..Reading::whole(name, "images", IMAGES_MAGIC)
        };
        let (dims, pixels) = parse_idx(bytes, bytes.len() as u64, &reading)?;
        Ok(Self::from_dims(&dims, pixels))
    }

    fn from_dims(dims: &[usize], pixels: Vec<u8>) -> Self {
        let [count, rows, cols] = dims[..] else {
            unreachable!("the magic number fixes three dimensions")
        };
        Self {
            count,
            rows,
            cols,
            pixels,
        }
    }

    /// Pixels per image.
    pub fn image_len(&self) -> usize {
        self.rows * self.cols
    }
}

impl IdxLabels {
    pub fn read(path: &Path) -> Result<Self, DataError> {
        let (_, labels) = read_idx(&Reading::whole(path, "labels", LABELS_MAGIC))?;
        Ok(Self(labels))
    }

    /// Parses the bytes of a labels file held in memory; `name` labels errors.
    pub fn from_bytes(bytes: &[u8], name: &Path) -> Result<Self, DataError> {
        let reading = Reading {
            in_memory: true,
            ..Reading::whole(name, "labels", LABELS_MAGIC)
        };
        let (_, labels) = parse_idx(bytes, bytes.len() as u64, &reading)?;
        Ok(Self(labels))
    }
}

impl LabelledImages {
    /// Reads a labels file and an images file and checks that their counts agree: the
    /// labels first, so that an images header promising more images than there are
    /// labels is refused before its payload is read.
    pub fn read(images_path: &Path, labels_path: &Path) -> Result<Self, DataError> {
        Self::read_images(
            images_path,
            IdxLabels::read(labels_path)?,
            labels_path,
            None,
        )
    }

    /// Reads the images file of `labels` (read from `labels_path`), checking that
    /// their counts agree before any pixel is read, and holds the pixels only of the
    /// images at the indices `held` (all of them with `None`): the rest of the file is
    /// read past, so that a run using a few thousand images of a file of millions
    /// holds a few thousand.
    pub fn read_images(
        images_path: &Path,
        IdxLabels(labels): IdxLabels,
        labels_path: &Path,
        held: Option<Vec<usize>>,
    ) -> Result<Self, DataError> {
        let held = held
            .map(|mut held| {
                held.retain(|&index| index < labels.len());
                held.sort_unstable();
                held.dedup();
                held
            })
            .filter(|held| held.len() < labels.len());
        let reading = Reading {
            partner: Some(Partner {
                count: labels.len(),
                path: labels_path,
            }),
            held: held.as_deref(),
            ..Reading::whole(images_path, "images", IMAGES_MAGIC)
        };
        let (dims, pixels) = read_idx(&reading)?;
        Ok(Self {
            channels: 1,
            rows: dims[1],
            cols: dims[2],
            pixels: Pixels::Memory(pixels),
            held,
            labels,
        })
    }

    /// Builds a set from memory; `None` unless the pixel and label counts agree.
    /// Sizes whose product overflows are refused rather than wrapped around.
    pub fn from_parts(rows: usize, cols: usize, pixels: Vec<u8>, labels: Vec<u8>) -> Option<Self> {
        Self::from_planes(1, rows, cols, pixels, labels)
    }

    /// [`LabelledImages::from_parts`] for images of `channels` planes of `rows x cols`.
    pub fn from_planes(
        channels: usize,
        rows: usize,
        cols: usize,
        pixels: Vec<u8>,
        labels: Vec<u8>,
    ) -> Option<Self> {
        Self::with_pixels(channels, rows, cols, Pixels::Memory(pixels), labels)
    }

    /// [`LabelledImages::from_planes`] of pixels wherever they are; `None` unless
    /// their count and the labels' agree.
    pub(crate) fn with_pixels(
        channels: usize,
        rows: usize,
        cols: usize,
        pixels: Pixels,
        labels: Vec<u8>,
    ) -> Option<Self> {
        let image_len = rows
            .checked_mul(cols)?
            .checked_mul(channels)
            .filter(|&n| n > 0)?;
        let total = u64::try_from(image_len.checked_mul(labels.len())?).ok()?;
        (total == pixels.len()).then_some(Self {
            channels,
            rows,
            cols,
            pixels,
            held: None,
            labels,
        })
    }

    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn cols(&self) -> usize {
        self.cols
    }

    pub fn channels(&self) -> usize {
        self.channels
    }

    /// Bytes per image: its channels' planes of `rows x cols`.
    pub fn image_len(&self) -> usize {
        self.channels * self.rows * self.cols
    }

    /// The pixels of image `index`, row-major, borrowed from memory or read from the
    /// file that holds them; `None` past the end, for an image whose pixels were not
    /// read, and where that file cannot be read.
    pub fn image(&self, index: usize) -> Option<Cow<'_, [u8]>> {
        let slot = match &self.held {
            None => index,
            Some(held) => held.binary_search(&index).ok()?,
        };
        let len = self.image_len();
        let start = slot.checked_mul(len)?;
        self.pixels.get(start, len)
    }

    /// The file the pixels are read from, when they are not in memory.
    pub fn pixels_file(&self) -> Option<&Path> {
        self.pixels.file()
    }

    /// The pixels of the held images, one image after another, when they are in
    /// memory.
    pub(crate) fn pixels_in_memory(&self) -> Option<&[u8]> {
        self.pixels.in_memory()
    }

    pub fn label(&self, index: usize) -> Option<u8> {
        self.labels.get(index).copied()
    }

    pub fn labels(&self) -> &[u8] {
        &self.labels
    }

    /// One more than the largest label: the number of classes a model needs to tell
    /// them all apart.
    pub fn num_classes(&self) -> usize {
        self.labels
            .iter()
            .max()
            .map_or(0, |&max| usize::from(max) + 1)
    }
}

/// The memory the system could still give this process, in bytes (Linux's
/// `MemAvailable`); `None` where that is not known.
pub fn available_memory() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = meminfo.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

/// Encodes an IDX file: the magic number, the dimensions, then `payload` as it is. For
/// tools and tests that make data sets; `payload` need not match `dims`, so that it
/// can make damaged files too.
pub fn encode_idx(magic: u32, dims: &[u32], payload: &[u8]) -> Vec<u8> {
    let mut bytes = magic.to_be_bytes().to_vec();
    dims.iter().for_each(|d| bytes.extend(d.to_be_bytes()));
    bytes.extend(payload);
    bytes
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::io::Write;
    use std::path::PathBuf;

    pub(crate) fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(bytes).expect("in-memory write");
        encoder.finish().expect("in-memory write")
    }

    /// Writes `count` 2x3 images whose pixels encode their index, and labels `i % 10`.
    pub(crate) fn write_pair(dir: &Path, prefix: &str, count: u8, gz: bool) -> (PathBuf, PathBuf) {
        let pixels: Vec<u8> = (0..count).flat_map(|i| [i; 6]).collect();
        let labels: Vec<u8> = (0..count).map(|i| i % 10).collect();
        let images = encode_idx(IMAGES_MAGIC, &[count.into(), 2, 3], &pixels);
        let labels = encode_idx(LABELS_MAGIC, &[count.into()], &labels);
        let encode = |b: Vec<u8>| if gz { gzip(&b) } else { b };
        let images_path = dir.join(format!("{prefix}-images-idx3-ubyte"));
        let labels_path = dir.join(format!("{prefix}-labels-idx1-ubyte"));
        std::fs::write(&images_path, encode(images)).expect("write test file");
        std::fs::write(&labels_path, encode(labels)).expect("write test file");
        (images_path, labels_path)
    }

    fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, bytes).expect("write test file");
        path
    }

    #[test]
    fn reads_raw_and_gzip_files_alike() {
        let dir = tempfile::tempdir().expect("tempdir");
        for gz in [false, true] {
            let (images, labels) = write_pair(dir.path(), &format!("gz{gz}"), 12, gz);
            let set = LabelledImages::read(&images, &labels).expect("valid files");
            assert_eq!((set.len(), set.rows(), set.cols()), (12, 2, 3));
            assert_eq!(set.image(11).as_deref(), Some(&[11u8; 6][..]));
            assert_eq!(set.label(11), Some(1));
            assert_eq!(set.image(12), None);
        }
    }

    #[test]
    fn only_the_held_images_are_kept_and_the_whole_file_still_checked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let read = |images: &Path, labels: &Path, held: Vec<usize>| {
            let read_labels = IdxLabels::read(labels).expect("labels");
            LabelledImages::read_images(images, read_labels, labels, Some(held))
        };
        for gz in [false, true] {
            let (images, labels) = write_pair(dir.path(), &format!("gz{gz}"), 12, gz);
            // Unordered, repeated and out of range are all taken as meant.
            let set = read(&images, &labels, vec![7, 2, 11, 2, 40]).expect("valid files");
            assert_eq!(set.len(), 12);
            for index in [2u8, 7, 11] {
                assert_eq!(set.image(index.into()).as_deref(), Some(&[index; 6][..]));
            }
            assert_eq!((set.image(3), set.image(12)), (None, None));
            assert_eq!(set.labels().len(), 12, "every label is kept");
            let all = read(&images, &labels, (0..12).collect()).expect("valid");
            assert_eq!(all, LabelledImages::read(&images, &labels).expect("valid"));
        }
        // Data missing after the last held image, or past the end, is still found.
        let labels = write(dir.path(), "l", &encode_idx(LABELS_MAGIC, &[3], &[0, 1, 2]));
        let short = encode_idx(IMAGES_MAGIC, &[3, 2, 3], &[5; 17]);
        let long = encode_idx(IMAGES_MAGIC, &[3, 2, 3], &[5; 19]);
        for (name, bytes) in [("short", gzip(&short)), ("long", gzip(&long))] {
            let images = write(dir.path(), name, &bytes);
            let err = read(&images, &labels, vec![0]).expect_err(name);
            assert!(
                matches!(
                    err,
                    DataError::Truncated { found: 17, .. } | DataError::TrailingData { .. }
                ),
                "{name}: {err}"
            );
        }
    }

    #[test]
    fn gzip_is_recognised_by_content_not_name() {
        let dir = tempfile::tempdir().expect("tempdir");
        let bytes = gzip(&encode_idx(LABELS_MAGIC, &[3], &[1, 2, 3]));
        let path = write(dir.path(), "labels.raw", &bytes);
        assert_eq!(IdxLabels::read(&path).expect("valid").0, vec![1, 2, 3]);
        let raw = encode_idx(LABELS_MAGIC, &[2], &[4, 5]);
        let path = write(dir.path(), "labels.gz", &raw);
        assert_eq!(IdxLabels::read(&path).expect("valid").0, vec![4, 5]);
    }

    #[test]
    fn wrong_magic_is_rejected() {
        let dir = tempfile::tempdir().expect("tempdir");
        let labels = write(dir.path(), "l", &encode_idx(LABELS_MAGIC, &[1], &[0]));
        let err = IdxImages::read(&labels).expect_err("labels are not images");
        assert!(
            matches!(
                err,
                DataError::BadMagic {
                    found: LABELS_MAGIC,
                    ..
                }
            ),
            "{err}"
        );
        let text = write(dir.path(), "t", b"hello world, not idx");
        assert!(matches!(
            IdxLabels::read(&text),
            Err(DataError::BadMagic { .. })
        ));
    }

    #[test]
    fn truncated_payload_is_rejected_raw_and_gz() {
        let dir = tempfile::tempdir().expect("tempdir");
        let short = encode_idx(IMAGES_MAGIC, &[2, 2, 3], &[0; 11]);
        for (name, bytes) in [("raw", short.clone()), ("gz", gzip(&short))] {
            let path = write(dir.path(), name, &bytes);
            let err = IdxImages::read(&path).expect_err("truncated");
            assert!(
                matches!(
                    err,
                    DataError::Truncated {
                        expected: 12,
                        found: 11,
                        ..
                    }
                ),
                "{name}: {err}"
            );
        }
    }

    #[test]
    fn trailing_bytes_are_rejected() {
        let dir = tempfile::tempdir().expect("tempdir");
        let long = encode_idx(LABELS_MAGIC, &[2], &[1, 2, 3]);
        for (name, bytes) in [("raw", long.clone()), ("gz", gzip(&long))] {
            let path = write(dir.path(), name, &bytes);
            let err = IdxLabels::read(&path).expect_err("too long");
            assert!(
                matches!(err, DataError::TrailingData { expected: 2, .. }),
                "{err}"
            );
        }
    }

    #[test]
    fn header_promising_huge_payload_fails_without_allocating_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let huge = encode_idx(IMAGES_MAGIC, &[u32::MAX, u32::MAX, u32::MAX], &[0; 4]);
        for (name, bytes) in [("raw", huge.clone()), ("gz", gzip(&huge))] {
            let path = write(dir.path(), name, &bytes);
            let err = IdxImages::read(&path).expect_err("lying header");
            assert!(
                matches!(
                    err,
                    DataError::BadHeader { .. } | DataError::Truncated { .. }
                ),
                "{name}: {err}"
            );
        }
        let big = encode_idx(IMAGES_MAGIC, &[1_000_000, 28, 28], &[0; 4]);
        let path = write(dir.path(), "big", &gzip(&big));
        assert!(matches!(
            IdxImages::read(&path),
            Err(DataError::Truncated { found: 4, .. })
        ));
    }

    #[test]
    fn an_images_header_is_checked_against_its_labels_and_memory_before_its_payload() {
        let dir = tempfile::tempdir().expect("tempdir");
        let labels = write(
            dir.path(),
            "labels",
            &encode_idx(LABELS_MAGIC, &[3], &[0, 1, 2]),
        );
        // The payload is missing: reading it first would report truncation.
        let lying = encode_idx(IMAGES_MAGIC, &[10_000_000, 28, 28], &[0; 4]);
        let images = write(dir.path(), "images", &gzip(&lying));
        let err = LabelledImages::read(&images, &labels).expect_err("3 labels");
        assert!(
            matches!(
                err,
                DataError::CountMismatch {
                    image_count: 10_000_000,
                    label_count: 3,
                    ..
                }
            ),
            "{err}"
        );
        if let Some(available) = available_memory() {
            let side = u32::try_from(available.isqrt() / 1000 + 1).unwrap_or(u32::MAX);
            let huge = encode_idx(IMAGES_MAGIC, &[1_000_000, side, side], &[0; 4]);
            let path = write(dir.path(), "huge", &gzip(&huge));
            let err = IdxImages::read(&path).expect_err("more than memory");
            assert!(matches!(err, DataError::TooLarge { .. }), "{err}");
            assert!(err.to_string().contains("memory is available"), "{err}");
        }
    }

    #[test]
    fn zero_dimension_and_short_header_are_rejected() {
        let dir = tempfile::tempdir().expect("tempdir");
        let zero = write(dir.path(), "z", &encode_idx(IMAGES_MAGIC, &[5, 0, 28], &[]));
        assert!(matches!(
            IdxImages::read(&zero),
            Err(DataError::BadHeader { .. })
        ));
        let cut = write(dir.path(), "c", &encode_idx(IMAGES_MAGIC, &[5], &[]));
        assert!(matches!(
            IdxImages::read(&cut),
            Err(DataError::BadHeader { .. })
        ));
        let empty = write(dir.path(), "e", &[]);
        assert!(matches!(
            IdxLabels::read(&empty),
            Err(DataError::BadHeader { .. })
        ));
    }

    #[test]
    fn corrupt_gzip_stream_is_a_read_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut bytes = gzip(&encode_idx(LABELS_MAGIC, &[64], &[7; 64]));
        let mid = bytes.len() / 2;
        bytes.truncate(mid);
        let path = write(dir.path(), "cut.gz", &bytes);
        let err = IdxLabels::read(&path).expect_err("cut stream");
        assert!(
            matches!(
                err,
                DataError::Read { .. } | DataError::Truncated { .. } | DataError::BadHeader { .. }
            ),
            "{err}"
        );
    }

    #[test]
    fn missing_file_names_the_path() {
        let err = IdxLabels::read(Path::new("/no/such/labels")).expect_err("missing");
        assert!(err.to_string().contains("/no/such/labels"), "{err}");
    }

    #[test]
    fn from_parts_refuses_sizes_whose_product_wraps() {
        // 3 * 0xaaaa_aaaa_aaaa_aaab wraps to 1 in 64 bits: one 1-pixel image it is not.
        let inverse_of_3 = 0xaaaa_aaaa_aaaa_aaab_u64 as usize;
        if usize::BITS == 64 {
            assert_eq!(
                LabelledImages::from_parts(3, inverse_of_3, vec![0], vec![0]),
                None
            );
        }
        assert_eq!(
            LabelledImages::from_parts(usize::MAX, 2, vec![], vec![]),
            None
        );
        assert_eq!(LabelledImages::from_parts(0, 5, vec![], vec![1]), None);
        let set = LabelledImages::from_parts(2, 3, vec![7; 12], vec![1, 2]).expect("consistent");
        assert_eq!(set.image(1).as_deref(), Some(&[7u8; 6][..]));
        // (usize::MAX / 2 + 1) * 6 used to wrap around to 6 and return image 1.
        for index in [2, usize::MAX / 2, usize::MAX / 2 + 1, usize::MAX] {
            assert_eq!(set.image(index), None, "image({index})");
        }
    }

    #[test]
    fn image_and_label_counts_must_agree() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (images, _) = write_pair(dir.path(), "a", 5, false);
        let (_, labels) = write_pair(dir.path(), "b", 4, true);
        let err = LabelledImages::read(&images, &labels).expect_err("mismatch");
        assert!(
            matches!(
                err,
                DataError::CountMismatch {
                    image_count: 5,
                    label_count: 4,
                    ..
                }
            ),
            "{err}"
        );
    }
}
