//! Decoded pictures kept between runs: a split's labels and pixels as one file of
//! bytes in the cache directory, found by the folder and what its pictures are made
//! into, and used only while every file of the split is as it was (the same names,
//! sizes and modification times). A cache that is missing, stale, damaged or cannot
//! be written costs a decode, never a run.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use super::decode::Target;
use super::scan::{Split, SplitFiles};
use crate::LabelledImages;

/// What a cache file starts with; the digit changes with its layout.
const MAGIC: &[u8; 8] = b"TRNPIX01";
/// The magic, then words of the fingerprint, the body's CRC-32, channels, rows,
/// columns and count; the body is the labels, then the pixels.
const HEADER_LEN: usize = 8 + 6 * 8;
/// Where the cache goes when set, instead of the user's cache directory.
pub const CACHE_DIR_VARIABLE: &str = "TRAINER_CACHE_DIR";

/// The cache file of one split decoded one way, the fingerprint of the files it is
/// decoded from, and their labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PictureCache {
    path: PathBuf,
    fingerprint: u64,
    labels: Vec<u8>,
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
        }
    }

    /// The split as it was decoded, if the cache holds it for these very files.
    pub(crate) fn load(&self) -> Option<LabelledImages> {
        let bytes = std::fs::read(&self.path).ok()?;
        let (header, body) = bytes.split_at_checked(HEADER_LEN)?;
        let word = |index: usize| {
            let at = 8 + 8 * index;
            header[at..at + 8].try_into().ok().map(u64::from_le_bytes)
        };
        let intact = &header[..8] == MAGIC
            && word(0)? == self.fingerprint
            && word(1)? == u64::from(crc32fast::hash(body));
        if !intact {
            return None;
        }
        let [channels, rows, cols, count] = [word(2)?, word(3)?, word(4)?, word(5)?]
            .map(|n| usize::try_from(n).unwrap_or(usize::MAX));
        let (labels, pixels) = body.split_at_checked(count)?;
        // Every picture, each of its folder's class: nothing was left out.
        if labels != self.labels {
            return None;
        }
        LabelledImages::from_planes(channels, rows, cols, pixels.to_vec(), labels.to_vec())
    }

    /// Keeps `set` for the next run, replacing what the cache held. Best effort: a
    /// cache that cannot be written is left as it was.
    pub(crate) fn store(&self, set: &LabelledImages) {
        let pixels = set.pixels();
        let mut body = Vec::with_capacity(set.len() + pixels.len());
        body.extend_from_slice(set.labels());
        body.extend_from_slice(pixels);
        let mut bytes = Vec::with_capacity(HEADER_LEN + body.len());
        bytes.extend_from_slice(MAGIC);
        let words = [
            self.fingerprint,
            u64::from(crc32fast::hash(&body)),
            set.channels() as u64,
            set.rows() as u64,
            set.cols() as u64,
            set.len() as u64,
        ];
        for word in words {
            bytes.extend_from_slice(&word.to_le_bytes());
        }
        bytes.extend_from_slice(&body);
        if let Some(dir) = self.path.parent()
            && std::fs::create_dir_all(dir).is_ok()
        {
            let _ = crate::fs::write_atomically(&self.path, &bytes);
        }
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
