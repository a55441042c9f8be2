//! Decoded pictures kept between runs: a split's labels and pixels as one file of
//! bytes in the cache directory, found by the folder and what its pictures are made
//! into, and used only while every file of the split is as it was (the same names,
//! sizes and modification times). A cache that is missing, stale, damaged or cannot
//! be written costs a decode, never a run.

use std::fs::File;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use super::decode::{Target, Verdicts, channels_of, decode_each, fits_in_memory};
use super::scan::{Split, SplitFiles};
use crate::pixels::Pixels;
use crate::{DataError, LabelledImages, Skipped};

/// What a cache file starts with; the digit changes with its layout.
const MAGIC: &[u8; 8] = b"TRNPIX02";
/// The magic, then words of the fingerprint, the body's CRC-32, channels, rows,
/// columns and count; the body is the pixels, then the labels.
const HEADER_LEN: usize = 8 + 6 * 8;
/// Where the cache goes when set, instead of the user's cache directory.
pub const CACHE_DIR_VARIABLE: &str = "TRAINER_CACHE_DIR";

/// The cache file of one split decoded one way, the fingerprint of the files it is
/// decoded from, and their labels: the copy it holds is used only if it has them
/// all, and the split has no file that is no picture (whose warning must come).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PictureCache {
    path: PathBuf,
    fingerprint: u64,
    labels: Vec<u8>,
    usable: bool,
}

impl PictureCache {
    /// The cache, in the directory `dir`, of `split` of the data set at `root`, its
    /// `files` made into `target`.
    pub(crate) fn new(
        dir: &Path,
        root: &Path,
        split: Split,
        files: &SplitFiles,
        target: Target,
    ) -> Self {
        let root = std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
        let mut name = DefaultHasher::new();
        (&root, split.folder(), target.channels, target.size).hash(&mut name);
        let mut fingerprint = DefaultHasher::new();
        MAGIC.hash(&mut fingerprint);
        for (path, label) in &files.pictures {
            (path, label, stamp(path)).hash(&mut fingerprint);
        }
        for path in &files.not_pictures {
            (path, stamp(path)).hash(&mut fingerprint);
        }
        Self {
            path: dir.join(format!("{:016x}.pixels", name.finish())),
            fingerprint: fingerprint.finish(),
            labels: files.pictures.iter().map(|&(_, label)| label).collect(),
            usable: files.not_pictures.is_empty(),
        }
    }

    /// Where the cache file is.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The split as it was decoded, if the cache holds it for these very files: read
    /// into memory when `keep_in_memory` (by default when it fits), else read from
    /// the file image by image as batches need them.
    pub(crate) fn load(&self, keep_in_memory: Option<bool>) -> Option<LabelledImages> {
        // Only a regular file: opening a FIFO put in its place would wait forever.
        if !self.usable || !std::fs::metadata(&self.path).is_ok_and(|m| m.is_file()) {
            return None;
        }
        let mut file = File::open(&self.path).ok()?;
        let mut header = [0u8; HEADER_LEN];
        file.read_exact(&mut header).ok()?;
        let word = |index: usize| {
            let at = 8 + 8 * index;
            header[at..at + 8].try_into().ok().map(u64::from_le_bytes)
        };
        if &header[..8] != MAGIC || word(0)? != self.fingerprint {
            return None;
        }
        let [channels, rows, cols, count] = [word(2)?, word(3)?, word(4)?, word(5)?]
            .map(|n| usize::try_from(n).unwrap_or(usize::MAX));
        let image_len = channels.checked_mul(rows)?.checked_mul(cols)?;
        let pixels_len = image_len.checked_mul(count)?;
        let body_len = pixels_len.checked_add(count)?;
        if count != self.labels.len()
            || file.metadata().ok()?.len() != (HEADER_LEN + body_len) as u64
        {
            return None;
        }
        let in_memory = keep_in_memory.unwrap_or_else(|| fits_in_memory(pixels_len as u128));
        // The body is checked whole either way; kept only when it goes to memory.
        let mut crc = crc32fast::Hasher::new();
        let mut kept = Vec::with_capacity(if in_memory { body_len } else { 0 });
        let mut chunk = vec![0u8; CHUNK.min(body_len)];
        let mut left = body_len;
        while left > 0 {
            let part = &mut chunk[..CHUNK.min(left)];
            file.read_exact(part).ok()?;
            crc.update(part);
            if in_memory {
                kept.extend_from_slice(part);
            }
            left -= part.len();
        }
        if word(1)? != u64::from(crc.finalize()) {
            return None;
        }
        // Nothing was left out: the labels are the folders'.
        let labels = match in_memory {
            true => kept.split_off(pixels_len),
            false => {
                let mut labels = vec![0; count];
                file.read_exact_at(&mut labels, (HEADER_LEN + pixels_len) as u64)
                    .ok()?;
                labels
            }
        };
        if labels != self.labels {
            return None;
        }
        let pixels = match in_memory {
            true => Pixels::Memory(kept),
            false => Pixels::in_file(
                file,
                self.path.clone(),
                HEADER_LEN as u64,
                pixels_len as u64,
            ),
        };
        LabelledImages::with_pixels(channels, rows, cols, pixels, labels)
    }

    /// The split's pictures for a set too large for memory, as `decode_split` makes
    /// them: decoded a chunk at a time into this cache's file, which the set then
    /// reads each image from.
    pub(crate) fn decode_into(
        &self,
        files: &SplitFiles,
        target: Target,
        skip: bool,
    ) -> Result<(LabelledImages, Vec<Skipped>), DataError> {
        let (mut verdicts, size) = Verdicts::start(files, target, skip)?;
        let channels = target.channels.unwrap_or_else(|| channels_of(files));
        let target = Target {
            channels: Some(channels),
            ..target
        };
        let write_error = |error: std::io::Error| DataError::CacheWrite {
            path: self.path().to_path_buf(),
            error,
        };
        let mut writer = self.writer().map_err(write_error)?;
        let mut labels = Vec::with_capacity(files.pictures.len());
        for chunk in files.pictures.chunks(DECODE_CHUNK) {
            decode_each(chunk, (target, size), &mut verdicts, |pixels, label| {
                labels.push(label);
                writer.pixels(&pixels).map_err(write_error)
            })?;
        }
        if labels.is_empty() {
            return Err(DataError::NoPictures);
        }
        writer
            .finish([channels, size[0], size[1]], &labels)
            .map_err(write_error)?;
        let set = self
            .open_written([channels, size[0], size[1]], labels)
            .map_err(write_error)?;
        Ok((set, verdicts.skipped))
    }

    /// The set just written by a [`CacheWriter`] of this cache, images of `shape`
    /// labelled `labels`, read from the file image by image.
    pub(crate) fn open_written(
        &self,
        shape: [usize; 3],
        labels: Vec<u8>,
    ) -> std::io::Result<LabelledImages> {
        let file = File::open(&self.path)?;
        let [channels, rows, cols] = shape;
        let pixels_len = (channels * rows * cols * labels.len()) as u64;
        let pixels = Pixels::in_file(file, self.path.clone(), HEADER_LEN as u64, pixels_len);
        LabelledImages::with_pixels(channels, rows, cols, pixels, labels)
            .ok_or_else(|| std::io::Error::other("it does not hold what was written"))
    }

    /// Keeps `set` for the next run, replacing what the cache held. Best effort: a
    /// cache that cannot be written is left as it was.
    pub(crate) fn store(&self, set: &LabelledImages) {
        let Some(pixels) = set.pixels_in_memory() else {
            return;
        };
        let _ = self.writer().and_then(|mut writer| {
            writer.pixels(pixels)?;
            writer.finish([set.channels(), set.rows(), set.cols()], set.labels())
        });
    }

    /// A writer of a new copy, which replaces the cache's file when finished.
    pub(crate) fn writer(&self) -> std::io::Result<CacheWriter> {
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let partial = self
            .path
            .with_extension(format!("pixels.{}.partial", std::process::id()));
        let mut file = BufWriter::new(File::create(&partial)?);
        // The header is written last, once the body's checksum is known.
        file.write_all(&[0; HEADER_LEN])?;
        Ok(CacheWriter {
            file: Some(file),
            partial,
            target: self.path.clone(),
            fingerprint: self.fingerprint,
            crc: crc32fast::Hasher::new(),
        })
    }
}

/// Bytes read at a time when checking a cache file.
const CHUNK: usize = 1 << 20;
/// Pictures decoded at once when decoding into a file: enough to keep both cores
/// busy, few enough to hold.
const DECODE_CHUNK: usize = 4096;

/// A cache file being written: the pixels, image after image, then the labels and
/// the header; it takes the cache file's place only when finished, and is removed
/// if dropped before.
pub(crate) struct CacheWriter {
    file: Option<BufWriter<File>>,
    partial: PathBuf,
    target: PathBuf,
    fingerprint: u64,
    crc: crc32fast::Hasher,
}

impl CacheWriter {
    /// Appends the pixels of the next images.
    pub(crate) fn pixels(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.crc.update(bytes);
        match &mut self.file {
            Some(file) => file.write_all(bytes),
            None => Err(std::io::Error::other("the cache file is already finished")),
        }
    }

    /// Ends the file with `labels` and the header of images of `shape`, and puts it
    /// in the cache file's place.
    pub(crate) fn finish(mut self, shape: [usize; 3], labels: &[u8]) -> std::io::Result<()> {
        let Some(mut file) = self.file.take() else {
            return Err(std::io::Error::other("the cache file is already finished"));
        };
        self.crc.update(labels);
        file.write_all(labels)?;
        let mut file = file.into_inner().map_err(|e| e.into_error())?;
        let [channels, rows, cols] = shape;
        let words = [
            self.fingerprint,
            u64::from(self.crc.clone().finalize()),
            channels as u64,
            rows as u64,
            cols as u64,
            labels.len() as u64,
        ];
        let mut header = Vec::with_capacity(HEADER_LEN);
        header.extend_from_slice(MAGIC);
        for word in words {
            header.extend_from_slice(&word.to_le_bytes());
        }
        file.seek(SeekFrom::Start(0))?;
        file.write_all(&header)?;
        file.sync_all()?;
        std::fs::rename(&self.partial, &self.target)
    }
}

impl Drop for CacheWriter {
    fn drop(&mut self) {
        // Finished, it was renamed away; otherwise nothing may read it.
        let _ = std::fs::remove_file(&self.partial);
    }
}

/// `$TRAINER_CACHE_DIR/pictures`, else `pictures` in this program's folder of the
/// user's cache directory (`~/.cache/trainer` on Linux).
pub(crate) fn cache_dir() -> Option<PathBuf> {
    let base = match std::env::var_os(CACHE_DIR_VARIABLE) {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => dirs::cache_dir()?.join("trainer"),
    };
    Some(base.join("pictures"))
}

/// A file's size and modification time: what changes when it is rewritten.
fn stamp(path: &Path) -> Option<(u64, u128)> {
    let metadata = std::fs::metadata(path).ok()?;
    let modified = metadata.modified().ok()?.duration_since(UNIX_EPOCH).ok()?;
    Some((metadata.len(), modified.as_nanos()))
}
