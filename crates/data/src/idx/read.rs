//! Reading one IDX file: its header checked against what it must be, then only the
//! payload a run holds, in memory that grows with what the file really contains.

use std::fs::File;
use std::io::{BufRead, BufReader, ErrorKind, Read};
use std::ops::Range;
use std::path::{Path, PathBuf};

use flate2::read::GzDecoder;

use super::{GZIP_MAGIC, available_memory};
use crate::DataError;

/// The file of the same split that an images file must agree with: its labels.
#[derive(Debug, Clone, Copy)]
pub(super) struct Partner<'a> {
    pub(super) count: usize,
    pub(super) path: &'a Path,
}

/// What an IDX file must be, and what of it to hold.
#[derive(Debug, Clone, Copy)]
pub(super) struct Reading<'a> {
    /// The file, or the name that labels errors about bytes held in memory.
    pub(super) path: &'a Path,
    pub(super) kind: &'static str,
    pub(super) magic: u32,
    /// The file whose count the first dimension must equal.
    pub(super) partner: Option<Partner<'a>>,
    /// The items (along the first dimension) whose bytes to hold, ascending and in
    /// range; `None`: all of them.
    pub(super) held: Option<&'a [usize]>,
    /// Bytes already in memory bound their own payload; a file's must fit in the
    /// memory available.
    pub(super) in_memory: bool,
}

impl<'a> Reading<'a> {
    /// The whole of the file at `path`, with no partner.
    pub(super) fn whole(path: &'a Path, kind: &'static str, magic: u32) -> Self {
        Self {
            path,
            kind,
            magic,
            partner: None,
            held: None,
            in_memory: false,
        }
    }
}

/// Reads one IDX file of unsigned bytes, returning its dimensions and the payload it
/// holds.
pub(super) fn read_idx(reading: &Reading<'_>) -> Result<(Vec<usize>, Vec<u8>), DataError> {
    let read_error = read_failed(reading.path);
    let file = File::open(reading.path).map_err(read_error)?;
    let file_len = file.metadata().map_err(read_error)?.len();
    parse_idx(BufReader::new(file), file_len, reading)
}

/// Parses IDX content of `file_len` bytes (before any decompression) from `file`.
/// The header's first dimension must equal the partner's count, and what is to be
/// held fit in the memory available, before any of the payload is read; nothing is
/// allocated from a header value, so a corrupt or hostile header (a few megabytes of
/// gzip promising gigabytes) costs no more memory than the file really holds.
pub(super) fn parse_idx(
    mut file: impl BufRead,
    file_len: u64,
    reading: &Reading<'_>,
) -> Result<(Vec<usize>, Vec<u8>), DataError> {
    let path = reading.path;
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
    if found != reading.magic {
        return Err(DataError::BadMagic {
            path: path.to_path_buf(),
            kind: reading.kind,
            found,
            expected: reading.magic,
        });
    }
    let rank = (reading.magic & 0xff) as usize;
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
    if let Some(partner) = reading.partner
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
    let item_len = expected / dims[0] as u64;
    let held = match reading.held {
        Some(items) => item_ranges(items, item_len),
        None => std::iter::once(0..expected).collect(),
    };
    let to_hold: u64 = held.iter().map(|range| range.end - range.start).sum();
    if let Some(available) = (!reading.in_memory).then(available_memory).flatten()
        && to_hold > available
    {
        return Err(DataError::TooLarge {
            path: path.to_path_buf(),
            bytes: to_hold,
            available,
        });
    }
    // Reserving what will be held spares a large payload a dozen regrowths, where the
    // file bounds it: a raw file's length was checked above; a gzip stream's is not
    // known, so a few times its compressed size. Past that the buffer grows with what
    // is read.
    let reserve = if is_gzip {
        to_hold.min(file_len.saturating_mul(GZIP_RESERVE_RATIO))
    } else {
        to_hold
    };
    let mut payload = Vec::with_capacity(usize::try_from(reserve).unwrap_or(0));
    read_payload(&mut *reader, expected, &held, path, &mut payload)?;
    Ok((dims, payload))
}

/// How many times its compressed size a gzip payload is reserved before reading:
/// MNIST's images inflate 4.8 times, Fashion-MNIST's 1.8 times.
pub(super) const GZIP_RESERVE_RATIO: u64 = 8;

/// The byte ranges of the payload that the items at `indices` (ascending) take, each
/// `item_len` bytes, neighbours merged.
pub(super) fn item_ranges(indices: &[usize], item_len: u64) -> Vec<Range<u64>> {
    let mut ranges: Vec<Range<u64>> = Vec::new();
    for &index in indices {
        let start = index as u64 * item_len;
        match ranges.last_mut() {
            Some(last) if last.end == start => last.end += item_len,
            _ => ranges.push(start..start + item_len),
        }
    }
    ranges
}

/// The least a payload buffer grows by.
pub(super) const MIN_GROWTH: u64 = 64 << 10;

/// Reads a payload of `expected` bytes from `reader` into `payload`, holding the byte
/// ranges `held` (ascending, within it) and reading past the rest, and checks that
/// the stream ends right after it. Past its capacity the buffer grows with what has
/// been read (doubling), never ahead of it: a header promising more than the stream
/// holds costs what the stream holds.
pub(super) fn read_payload(
    reader: &mut dyn Read,
    expected: u64,
    held: &[Range<u64>],
    path: &Path,
    payload: &mut Vec<u8>,
) -> Result<(), DataError> {
    let read_error = read_failed(path);
    let truncated = |found| DataError::Truncated {
        path: path.to_path_buf(),
        expected,
        found,
    };
    let mut at = 0u64;
    for range in held.iter().chain(std::iter::once(&(expected..expected))) {
        let mut passed_over = (&mut *reader).take(range.start - at);
        at += std::io::copy(&mut passed_over, &mut std::io::sink()).map_err(read_error)?;
        if at < range.start {
            return Err(truncated(at));
        }
        while at < range.end {
            let step = (range.end - at).min((payload.len() as u64).max(MIN_GROWTH));
            payload.reserve(step as usize);
            let read = (&mut *reader)
                .take(step)
                .read_to_end(payload)
                .map_err(read_error)?;
            at += read as u64;
            if (read as u64) < step {
                return Err(truncated(at));
            }
        }
    }
    let mut past_the_end = Vec::new();
    reader
        .take(1)
        .read_to_end(&mut past_the_end)
        .map_err(read_error)?;
    if !past_the_end.is_empty() {
        return Err(DataError::TrailingData {
            path: path.to_path_buf(),
            expected,
        });
    }
    Ok(())
}

pub(super) fn check_payload_len(path: &Path, expected: u64, found: u64) -> Result<(), DataError> {
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

/// Wraps an I/O error met while reading `path`.
pub(super) fn read_failed(path: &Path) -> impl Fn(std::io::Error) -> DataError + Copy + '_ {
    move |error| DataError::Read {
        path: path.to_path_buf(),
        error,
    }
}

/// Reads a big-endian `u32`; `None` at a clean or partial end of file.
pub(super) fn read_u32(reader: &mut impl Read, path: &Path) -> Result<Option<u32>, DataError> {
    let mut bytes = [0u8; 4];
    match reader.read_exact(&mut bytes) {
        Ok(()) => Ok(Some(u32::from_be_bytes(bytes))),
        Err(e) if e.kind() == ErrorKind::UnexpectedEof => Ok(None),
        Err(error) => Err(read_failed(path)(error)),
    }
}
