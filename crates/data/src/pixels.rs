//! Where a set's pixel bytes are: in memory, or, for decoded pictures too many for
//! memory, in a file that each image is read from when a batch needs it.

use std::borrow::Cow;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The pixels of a set's images, one image after another.
#[derive(Debug, Clone)]
pub(crate) enum Pixels {
    Memory(Vec<u8>),
    /// `len` bytes of `file` (at `path`) from `offset` on.
    File {
        file: Arc<File>,
        path: PathBuf,
        offset: u64,
        len: u64,
    },
}

impl Pixels {
    /// The file at `path`, open as `file`, whose `len` bytes from `offset` on are
    /// the pixels.
    pub(crate) fn in_file(file: File, path: PathBuf, offset: u64, len: u64) -> Self {
        Self::File {
            file: Arc::new(file),
            path,
            offset,
            len,
        }
    }

    /// How many bytes there are.
    pub(crate) fn len(&self) -> u64 {
        match self {
            Self::Memory(bytes) => bytes.len() as u64,
            Self::File { len, .. } => *len,
        }
    }

    /// The `len` bytes from `start` on, borrowed from memory or read from the file;
    /// `None` past the end, or where the file cannot be read.
    pub(crate) fn get(&self, start: usize, len: usize) -> Option<Cow<'_, [u8]>> {
        let end = start.checked_add(len)?;
        match self {
            Self::Memory(bytes) => bytes.get(start..end).map(Cow::Borrowed),
            Self::File {
                file,
                offset,
                len: total,
                ..
            } => {
                if end as u64 > *total {
                    return None;
                }
                let mut bytes = vec![0; len];
                file.read_exact_at(&mut bytes, offset + start as u64).ok()?;
                Some(Cow::Owned(bytes))
            }
        }
    }

    /// The file the bytes are in, when they are not in memory.
    pub(crate) fn file(&self) -> Option<&Path> {
        match self {
            Self::Memory(_) => None,
            Self::File { path, .. } => Some(path),
        }
    }

    /// All the bytes, when they are in memory.
    pub(crate) fn in_memory(&self) -> Option<&[u8]> {
        match self {
            Self::Memory(bytes) => Some(bytes),
            Self::File { .. } => None,
        }
    }
}

/// Bytes in memory are equal by value; bytes in a file, by being the same bytes of
/// the same file.
impl PartialEq for Pixels {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Memory(a), Self::Memory(b)) => a == b,
            (
                Self::File {
                    path, offset, len, ..
                },
                Self::File {
                    path: other_path,
                    offset: other_offset,
                    len: other_len,
                    ..
                },
            ) => (path, offset, len) == (other_path, other_offset, other_len),
            _ => false,
        }
    }
}

impl Eq for Pixels {}
