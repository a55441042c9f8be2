//! Where the four MNIST files come from: an explicit directory, Burn's dataset cache,
//! or, as a last resort, a download into that cache.

use std::path::{Path, PathBuf};

use crate::files::{TEST_IMAGES, TEST_LABELS, TRAIN_IMAGES, TRAIN_LABELS, split_of};
use crate::{DataError, download};

/// Paths of the four IDX files that make up MNIST (or a data set in its format).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MnistFiles {
    pub train_images: PathBuf,
    pub train_labels: PathBuf,
    pub test_images: PathBuf,
    pub test_labels: PathBuf,
}

/// Where [`locate`] found the files, for telling the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MnistSource {
    /// The directory the user named.
    Directory(PathBuf),
    /// Burn's dataset cache, filled earlier by Burn or by us.
    Cache(PathBuf),
    /// Downloaded just now into Burn's dataset cache.
    Downloaded(PathBuf),
}

impl std::fmt::Display for MnistSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Directory(dir) => write!(f, "{}", dir.display()),
            Self::Cache(dir) => write!(f, "{} (cache)", dir.display()),
            Self::Downloaded(dir) => write!(f, "{} (downloaded)", dir.display()),
        }
    }
}

/// Finds the MNIST files: in `data_dir` when given (and nowhere else), otherwise in
/// Burn's dataset cache (`<cache dir>/burn-dataset/mnist/{train,test}/`), downloading
/// them there when they are missing.
pub fn locate(data_dir: Option<&Path>) -> Result<(MnistFiles, MnistSource), DataError> {
    if let Some(dir) = data_dir {
        return Ok((
            in_directory(dir)?,
            MnistSource::Directory(dir.to_path_buf()),
        ));
    }
    let cache = burn_cache_dir()?;
    if let Ok(files) = in_directory(&cache) {
        return Ok((files, MnistSource::Cache(cache)));
    }
    download::into_cache(&cache)?;
    Ok((in_directory(&cache)?, MnistSource::Downloaded(cache)))
}

/// The MNIST folder of burn-dataset's cache, so that a cache Burn filled is reused.
pub(crate) fn burn_cache_dir() -> Result<PathBuf, DataError> {
    let base = dirs::cache_dir().ok_or(DataError::NoCacheDir)?;
    Ok(base.join("burn-dataset").join("mnist"))
}

/// Looks for the four files in `dir` or in its `train/` and `test/` subfolders: under
/// MNIST's names, gzipped (`.gz`) or not, and in the dotted spelling some
/// redistributions use (`train-images.idx3-ubyte`); failing that, under any names
/// that say which split and which kind of file they hold, as other data sets in the
/// IDX format have (`emnist-letters-train-images-idx3-ubyte.gz`, `train-imgs...`).
pub fn in_directory(dir: &Path) -> Result<MnistFiles, DataError> {
    if dir.is_file() {
        return Err(DataError::NotADirectory(dir.to_path_buf()));
    }
    if !dir.is_dir() {
        return Err(DataError::NoSuchDir(dir.to_path_buf()));
    }
    match canonical_files(dir) {
        Ok(files) => Ok(files),
        Err(missing) => described_files(dir).unwrap_or(Err(missing)),
    }
}

fn canonical_files(dir: &Path) -> Result<MnistFiles, DataError> {
    let find = |wanted: &'static str| -> Result<PathBuf, DataError> {
        let dotted = wanted.replacen("-idx", ".idx", 1);
        let folders = [dir.to_path_buf(), dir.join(split_of(wanted))];
        folders
            .iter()
            .flat_map(|folder| {
                [wanted, dotted.as_str()]
                    .into_iter()
                    .flat_map(move |name| [folder.join(name), folder.join(format!("{name}.gz"))])
            })
            .find(|path| path.is_file())
            .ok_or_else(|| DataError::MissingFile {
                dir: dir.to_path_buf(),
                wanted,
            })
    };
    Ok(MnistFiles {
        train_images: find(TRAIN_IMAGES)?,
        train_labels: find(TRAIN_LABELS)?,
        test_images: find(TEST_IMAGES)?,
        test_labels: find(TEST_LABELS)?,
    })
}

/// What a file's name says it holds: `(is test split, is images)`, from the words of
/// the name (split at `-`, `_` and `.`); `None` for names that say neither or both,
/// and for checksums, notes and macOS resource forks.
fn describe(path: &Path) -> Option<(bool, bool)> {
    let name = path.file_name()?.to_string_lossy().to_lowercase();
    let not_data = [
        ".md5", ".sha1", ".sha256", ".txt", ".md", ".json", ".csv", ".html",
    ];
    if name.starts_with("._") || not_data.iter().any(|suffix| name.ends_with(suffix)) {
        return None;
    }
    let stem = name.strip_suffix(".gz").unwrap_or(&name);
    let words: Vec<&str> = stem.split(['-', '_', '.']).collect();
    let says = |any: &[&str]| words.iter().any(|word| any.contains(word));
    let (test, train) = (says(&["test", "t10k"]), says(&["train"]));
    let (images, labels) = (says(&["images", "imgs", "idx3"]), says(&["labels", "idx1"]));
    (test != train && images != labels).then_some((test, images))
}

/// The four files of a data set whose file names describe them, if `dir` holds any
/// such file; `None` if it holds none at all.
fn described_files(dir: &Path) -> Option<Result<MnistFiles, DataError>> {
    let candidates: Vec<PathBuf> = [dir.to_path_buf(), dir.join("train"), dir.join("test")]
        .iter()
        .filter_map(|folder| std::fs::read_dir(folder).ok())
        .flatten()
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.is_file())
        .collect();
    let slot = |test: bool, images: bool| -> Vec<PathBuf> {
        let found: Vec<PathBuf> = candidates
            .iter()
            .filter(|path| {
                let kind = describe(path);
                kind == Some((test, images))
            })
            .cloned()
            .collect();
        // A file kept both raw and gzipped (`gunzip -k`) is one file: the raw one.
        found
            .iter()
            .filter(|path| {
                let raw = path
                    .to_string_lossy()
                    .strip_suffix(".gz")
                    .map(PathBuf::from);
                !raw.is_some_and(|raw| found.contains(&raw))
            })
            .cloned()
            .collect()
    };
    let slots = [
        (false, true, TRAIN_IMAGES),
        (false, false, TRAIN_LABELS),
        (true, true, TEST_IMAGES),
        (true, false, TEST_LABELS),
    ]
    .map(|(test, images, wanted)| (slot(test, images), wanted));
    if slots.iter().all(|(found, _)| found.is_empty()) {
        return None;
    }
    let pick = |index: usize| -> Result<PathBuf, DataError> {
        let (found, wanted) = &slots[index];
        match &found[..] {
            [one] => Ok(one.clone()),
            [] => Err(DataError::MissingFile {
                dir: dir.to_path_buf(),
                wanted,
            }),
            several => Err(DataError::AmbiguousFiles {
                dir: dir.to_path_buf(),
                wanted,
                candidates: several
                    .iter()
                    .map(|path| path.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            }),
        }
    };
    Some((|| {
        Ok(MnistFiles {
            train_images: pick(0)?,
            train_labels: pick(1)?,
            test_images: pick(2)?,
            test_labels: pick(3)?,
        })
    })())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(path: &Path) {
        std::fs::create_dir_all(path.parent().expect("has parent")).expect("mkdir");
        std::fs::write(path, b"x").expect("write");
    }

    fn touch_all(root: &Path, names: &[&str]) {
        for name in names {
            touch(&root.join(name));
        }
    }

    #[test]
    fn finds_gzipped_plain_dotted_and_split_folder_names() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        touch(&root.join("train-images-idx3-ubyte.gz"));
        touch(&root.join("train-labels.idx1-ubyte"));
        touch(&root.join("test/t10k-images-idx3-ubyte"));
        touch(&root.join("t10k-labels.idx1-ubyte.gz"));
        let files = in_directory(root).expect("all four present");
        assert_eq!(files.train_images, root.join("train-images-idx3-ubyte.gz"));
        assert_eq!(files.train_labels, root.join("train-labels.idx1-ubyte"));
        assert_eq!(files.test_images, root.join("test/t10k-images-idx3-ubyte"));
        assert_eq!(files.test_labels, root.join("t10k-labels.idx1-ubyte.gz"));
    }

    #[test]
    fn other_data_sets_are_found_by_what_their_names_say() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        touch_all(
            root,
            &[
                "emnist-letters-train-images-idx3-ubyte.gz",
                "emnist-letters-train-labels-idx1-ubyte.gz",
                "emnist-letters-test-images-idx3-ubyte.gz",
                "emnist-letters-test-labels-idx1-ubyte.gz",
                "README.txt",
            ],
        );
        let files = in_directory(root).expect("all four described");
        assert_eq!(
            files.test_labels,
            root.join("emnist-letters-test-labels-idx1-ubyte.gz")
        );
        assert_eq!(
            files.train_images,
            root.join("emnist-letters-train-images-idx3-ubyte.gz")
        );
        // A copy kept both raw and gzipped, a checksum and a word that merely contains
        // "test" change nothing.
        touch_all(
            root,
            &[
                "emnist-letters-train-images-idx3-ubyte",
                "emnist-letters-train-images-idx3-ubyte.gz.md5",
                "latest-notes-images",
            ],
        );
        let files = in_directory(root).expect("still unambiguous");
        assert_eq!(
            files.train_images,
            root.join("emnist-letters-train-images-idx3-ubyte")
        );
        // Two data sets side by side cannot be told apart: the error lists both.
        touch(&root.join("emnist-digits-train-images-idx3-ubyte.gz"));
        let err = in_directory(root).expect_err("ambiguous");
        assert!(
            err.to_string().contains("emnist-digits-train-images"),
            "{err}"
        );
    }

    #[test]
    fn a_missing_file_is_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        touch(&dir.path().join("train-images-idx3-ubyte.gz"));
        let err = in_directory(dir.path()).expect_err("three missing");
        assert!(err.to_string().contains(TRAIN_LABELS), "{err}");
    }

    #[test]
    fn an_explicit_directory_that_does_not_exist_is_an_error_not_a_download() {
        let err = locate(Some(Path::new("/definitely/not/here"))).expect_err("no dir");
        assert!(matches!(err, DataError::NoSuchDir(_)), "{err}");
        let file = tempfile::NamedTempFile::new().expect("a file");
        let err = locate(Some(file.path())).expect_err("a file is no directory");
        assert!(matches!(err, DataError::NotADirectory(_)), "{err}");
    }
}
