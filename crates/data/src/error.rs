//! What can go wrong with the data: finding, downloading, reading and splitting it.

use std::path::PathBuf;

/// Everything that can go wrong while finding, downloading or reading MNIST.
/// Each message names the file or place concerned and what to do about it, in terms
/// of files and directories: how a program is told where the data is, is its own to say.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("cannot read {path}: {error}; check that it is a complete, readable IDX file")]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },

    #[error(
        "{path} is not an IDX {kind} file: its magic number is {found:#010x}, expected {expected:#010x}; use the data set's IDX files"
    )]
    BadMagic {
        path: PathBuf,
        kind: &'static str,
        found: u32,
        expected: u32,
    },

    #[error("{path} has an invalid IDX header: {reason}")]
    BadHeader { path: PathBuf, reason: String },

    #[error(
        "{path} is truncated: its header promises {expected} bytes of data but it holds {found}; replace the file with a complete copy"
    )]
    Truncated {
        path: PathBuf,
        expected: u64,
        found: u64,
    },

    #[error(
        "{path} declares {} MB of data but only {} MB of memory is available; check that it is the right file, or free memory", bytes / 1_000_000, available / 1_000_000
    )]
    TooLarge {
        path: PathBuf,
        bytes: u64,
        available: u64,
    },

    #[error("{0} is a file, not a directory; give the directory that holds the four IDX files")]
    NotADirectory(PathBuf),

    #[error(
        "{path} has data past the {expected} bytes its header promises; replace the file with an intact copy"
    )]
    TrailingData { path: PathBuf, expected: u64 },

    #[error(
        "{images} holds {image_count} images but {labels} holds {label_count} labels; the two files must come from the same split"
    )]
    CountMismatch {
        images: PathBuf,
        image_count: usize,
        labels: PathBuf,
        label_count: usize,
    },

    #[error(
        "training images in {train} are {train_size:?} but test images in {test} are {test_size:?}; both splits must share one image size"
    )]
    SizeMismatch {
        train: PathBuf,
        train_size: (usize, usize),
        test: PathBuf,
        test_size: (usize, usize),
    },

    #[error(
        "{dir} lacks the file {wanted} (also looked for .gz and dotted variants, and for files named like *train*images*, *test*labels*); give a directory holding {needs}"
    )]
    MissingFile {
        dir: PathBuf,
        wanted: &'static str,
        /// What the directory must hold for the command at hand.
        needs: &'static str,
    },

    #[error(
        "{dir} holds several files that could be {wanted}: {candidates}; keep one data set per directory"
    )]
    AmbiguousFiles {
        dir: PathBuf,
        wanted: &'static str,
        candidates: String,
    },

    #[error("data directory {0} does not exist; give a directory holding the four MNIST IDX files")]
    NoSuchDir(PathBuf),

    #[error("could not download MNIST ({reasons}); give a directory holding the four IDX files")]
    Download { reasons: String },

    #[error(
        "cannot write the MNIST cache at {path}: {error}; read the files from another directory"
    )]
    Cache {
        path: PathBuf,
        error: std::io::Error,
    },

    #[error(
        "no cache directory is known on this system; give a directory holding the four MNIST IDX files"
    )]
    NoCacheDir,

    #[error("{0} holds no class folder; put the pictures of each class in a folder of its own")]
    NoClassFolders(PathBuf),

    #[error("{dir} holds {count} class folders; at most 256 classes are supported")]
    TooManyClasses { dir: PathBuf, count: usize },

    #[error(
        "{dir} is a class that {train} does not have; every split must have the training split's classes"
    )]
    ExtraClass { dir: PathBuf, train: PathBuf },

    #[error("{dir} is missing: {train} is a class, and every split must have each class's folder")]
    MissingClass { dir: PathBuf, train: PathBuf },

    #[error(
        "{0} holds no picture; put the class's PNG, JPEG, BMP or WebP files in it, or remove it"
    )]
    EmptyClass(PathBuf),

    #[error(
        "cannot use {path}: {reason}; replace or remove it, or let bad images be skipped (data.skip_bad_images)"
    )]
    BadPicture { path: PathBuf, reason: String },

    #[error("no picture of the data set could be decoded")]
    NoPictures,

    #[error(
        "cannot write the decoded pictures to {path}: {error}; set TRAINER_CACHE_DIR to a writable folder with room for them"
    )]
    CacheWrite {
        path: PathBuf,
        error: std::io::Error,
    },

    #[error(
        "the pictures of {dir} decode to more than half the memory available, and there is no cache directory to keep them in instead; set TRAINER_CACHE_DIR to a folder with space, or make them smaller (data.image_size)"
    )]
    NoRoomForPictures { dir: PathBuf },

    #[error(
        "cannot hold out {valid_size} validation images from {available} training images; choose a validation size below {available}"
    )]
    ValidationTooLarge { valid_size: usize, available: usize },
}

/// Raised through Burn's [`DatasetError`](burn::data::dataset::DatasetError) when an
/// item past the end of a dataset is asked for.
#[derive(Debug, thiserror::Error)]
#[error("item {index} is out of range for a dataset of {len} items")]
pub struct IndexOutOfRange {
    pub index: usize,
    pub len: usize,
}

/// The error a batch carries when its images' bytes, read from a file of decoded
/// pictures as the batch is gathered, cannot be read.
#[derive(Debug, thiserror::Error)]
#[error(
    "cannot read the decoded pictures in {0}: the file changed while in use; run again to decode them anew"
)]
pub struct UnreadablePictures(pub std::path::PathBuf);
