//! The IDX format MNIST ships in: a big-endian header (a magic number whose last byte
//! is the number of dimensions, then one `u32` per dimension) followed by the
//! unsigned bytes of the payload. Files may be gzip-compressed, which is recognised
//! by content rather than by file name.

use std::fs::File;
use std::io::{BufRead, BufReader, ErrorKind, Read};
use std::path::{Path, PathBuf};

use flate2::read::GzDecoder;

use crate::DataError;

/// The magic number of an IDX file of unsigned-byte images (three dimensions).
pub const IMAGES_MAGIC: u32 = 0x0000_0803;
/// The magic number of an IDX file of unsigned-byte labels (one dimension).
pub const LABELS_MAGIC: u32 = 0x0000_0801;
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

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

/// An images file and its labels file, checked to describe the same items.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelledImages {
    images: IdxImages,
    labels: Vec<u8>,
}

impl IdxImages {
    pub fn read(path: &Path) -> Result<Self, DataError> {
        let (dims, pixels) = read_idx(path, "images", IMAGES_MAGIC, None)?;
        Ok(Self::from_dims(&dims, pixels))
    }

    /// Parses the bytes of an images file held in memory; `name` labels errors.
    pub fn from_bytes(bytes: &[u8], name: &Path) -> Result<Self, DataError> {
        let (dims, pixels) = parse_idx(
            bytes,
            bytes.len() as u64,
            name,
            "images",
            IMAGES_MAGIC,
            None,
            false,
        )?;
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
        let (_, labels) = read_idx(path, "labels", LABELS_MAGIC, None)?;
        Ok(Self(labels))
    }

    /// Parses the bytes of a labels file held in memory; `name` labels errors.
    pub fn from_bytes(bytes: &[u8], name: &Path) -> Result<Self, DataError> {
        let (_, labels) = parse_idx(
            bytes,
            bytes.len() as u64,
            name,
            "labels",
            LABELS_MAGIC,
            None,
            false,
        )?;
        Ok(Self(labels))
    }
}

impl LabelledImages {
    /// Reads a labels file and an images file and checks that their counts agree: the
    /// labels first, so that an images header promising more images than there are
    /// labels is refused before its payload is read.
    pub fn read(images_path: &Path, labels_path: &Path) -> Result<Self, DataError> {
        let IdxLabels(labels) = IdxLabels::read(labels_path)?;
        let partner = Partner {
            count: labels.len(),
            path: labels_path,
        };
        let (dims, pixels) = read_idx(images_path, "images", IMAGES_MAGIC, Some(partner))?;
        let images = IdxImages::from_dims(&dims, pixels);
        Ok(Self { images, labels })
    }

    /// Builds a set from memory; `None` unless the pixel and label counts agree.
    /// Sizes whose product overflows are refused rather than wrapped around.
    pub fn from_parts(rows: usize, cols: usize, pixels: Vec<u8>, labels: Vec<u8>) -> Option<Self> {
        let image_len = rows.checked_mul(cols).filter(|&n| n > 0)?;
        (image_len.checked_mul(labels.len()) == Some(pixels.len())).then_some(Self {
            images: IdxImages {
                count: labels.len(),
                rows,
                cols,
                pixels,
            },
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
        self.images.rows
    }

    pub fn cols(&self) -> usize {
        self.images.cols
    }

    pub fn image_len(&self) -> usize {
        self.images.image_len()
    }

    /// The pixels of image `index`, row-major; `None` past the end.
    pub fn image(&self, index: usize) -> Option<&[u8]> {
        let len = self.image_len();
        let start = index.checked_mul(len)?;
        self.images.pixels.get(start..start.checked_add(len)?)
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

/// Reads one IDX file of unsigned bytes, returning its dimensions and payload.
///
/// The file of the same split that an images file must agree with: its labels.
#[derive(Debug, Clone, Copy)]
struct Partner<'a> {
    count: usize,
    path: &'a Path,
}

/// The payload size implied by the header is checked against what the file really
/// holds before anything is allocated from a header value, so a corrupt or hostile
/// header cannot make us reserve gigabytes.
fn read_idx(
    path: &Path,
    kind: &'static str,
    magic: u32,
    partner: Option<Partner<'_>>,
) -> Result<(Vec<usize>, Vec<u8>), DataError> {
    let read_error = read_failed(path);
    let file = File::open(path).map_err(read_error)?;
    let file_len = file.metadata().map_err(read_error)?.len();
    parse_idx(
        BufReader::new(file),
        file_len,
        path,
        kind,
        magic,
        partner,
        true,
    )
}

/// Parses IDX content of `file_len` bytes (before any decompression) from `file`;
/// `path` only names the source in errors. The header's first dimension must equal
/// `partner`'s count, and its payload fit in the memory available, before any of the
/// payload is read.
fn parse_idx(
    mut file: impl BufRead,
    file_len: u64,
    path: &Path,
    kind: &'static str,
    magic: u32,
    partner: Option<Partner<'_>>,
    from_file: bool,
) -> Result<(Vec<usize>, Vec<u8>), DataError> {
    let read_error = read_failed(path);
    let is_gzip = file
        .fill_buf()
        .map_err(read_error)?
        .starts_with(&GZIP_MAGIC);
    let mut reader: Box<dyn Read + '_> = if is_gzip {
        Box::new(GzDecoder::new(file))
    } else {
        Box::new(file)
    };

    let header_error = |reason: String| DataError::BadHeader {
        path: path.to_path_buf(),
        reason,
    };
    let found =
        read_u32(&mut reader, path)?.ok_or_else(|| header_error("the file is empty".into()))?;
    if found != magic {
        return Err(DataError::BadMagic {
            path: path.to_path_buf(),
            kind,
            found,
            expected: magic,
        });
    }
    let rank = (magic & 0xff) as usize;
    let mut dims = Vec::with_capacity(rank);
    for _ in 0..rank {
        let dim = read_u32(&mut reader, path)?
            .ok_or_else(|| header_error("the file ends inside its header".into()))?;
        if dim == 0 {
            return Err(header_error(
                "a dimension is zero, so it holds no data".into(),
            ));
        }
        dims.push(dim as usize);
    }
    let expected = dims
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d as u64))
        .ok_or_else(|| header_error(format!("dimensions {dims:?} overflow")))?;
    if let Some(partner) = partner
        && dims[0] != partner.count
    {
        return Err(DataError::CountMismatch {
            images: path.to_path_buf(),
            image_count: dims[0],
            labels: partner.path.to_path_buf(),
            label_count: partner.count,
        });
    }

    if !is_gzip {
        let header_len = 4 * (1 + rank as u64);
        let found = file_len.saturating_sub(header_len);
        check_payload_len(path, expected, found)?;
    }
    // Bytes held in memory bound their own payload; a file's may not fit.
    if let Some(available) = from_file.then(available_memory).flatten()
        && expected > available
    {
        return Err(DataError::TooLarge {
            path: path.to_path_buf(),
            bytes: expected,
            available,
        });
    }
    // Reserving the payload up front spares reading 47 MB a dozen regrowths. A raw
    // file's length was checked against the header above; a gzip stream's is not
    // known, so its reservation is bounded by the compressed size, and a lying header
    // reserves at most a few times what the file holds.
    let reserve = if is_gzip {
        expected.min(file_len.saturating_mul(GZIP_RESERVE_RATIO))
    } else {
        expected
    };
    let mut payload = Vec::with_capacity(usize::try_from(reserve).unwrap_or(0));
    reader
        .take(expected.saturating_add(1))
        .read_to_end(&mut payload)
        .map_err(read_error)?;
    check_payload_len(path, expected, payload.len() as u64)?;
    Ok((dims, payload))
}

/// How many times its compressed size a gzip payload is reserved before reading:
/// MNIST's images inflate 4.8 times, Fashion-MNIST's 1.8 times.
const GZIP_RESERVE_RATIO: u64 = 8;

fn check_payload_len(path: &Path, expected: u64, found: u64) -> Result<(), DataError> {
    let path: PathBuf = path.to_path_buf();
    match found.cmp(&expected) {
        std::cmp::Ordering::Less => Err(DataError::Truncated {
            path,
            expected,
            found,
        }),
        std::cmp::Ordering::Greater => Err(DataError::TrailingData { path, expected }),
        std::cmp::Ordering::Equal => Ok(()),
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

/// Wraps an I/O error met while reading `path`.
fn read_failed(path: &Path) -> impl Fn(std::io::Error) -> DataError + Copy + '_ {
    move |error| DataError::Read {
        path: path.to_path_buf(),
        error,
    }
}

/// Reads a big-endian `u32`; `None` at a clean or partial end of file.
fn read_u32(reader: &mut impl Read, path: &Path) -> Result<Option<u32>, DataError> {
    let mut bytes = [0u8; 4];
    match reader.read_exact(&mut bytes) {
        Ok(()) => Ok(Some(u32::from_be_bytes(bytes))),
        Err(e) if e.kind() == ErrorKind::UnexpectedEof => Ok(None),
        Err(error) => Err(read_failed(path)(error)),
    }
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
            assert_eq!(set.image(11), Some(&[11u8; 6][..]));
            assert_eq!(set.label(11), Some(1));
            assert_eq!(set.image(12), None);
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
        assert_eq!(set.image(1), Some(&[7u8; 6][..]));
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
