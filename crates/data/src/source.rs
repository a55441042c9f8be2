//! Where MNIST's files come from: an explicit directory, Burn's dataset cache, or, as a
//! last resort, a download into that cache. Training needs all four; evaluating and
//! predicting only the test split's two.

use std::path::{Path, PathBuf};

use crate::files::{TEST_IMAGES, TEST_LABELS, TRAIN_IMAGES, TRAIN_LABELS, split_of};
use crate::{DataError, download};

/// Paths of the images and labels files of one split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitFiles {
    pub images: PathBuf,
    pub labels: PathBuf,
}

/// Paths of the four IDX files that make up MNIST (or a data set in its format).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MnistFiles {
    pub train: SplitFiles,
    pub test: SplitFiles,
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
    /// A folder of pictures, one folder per class in each split.
    Folder(PathBuf),
    /// A folder of pictures whose decoded copy the cache held: no picture was read.
    CachedFolder(PathBuf),
}

impl std::fmt::Display for MnistSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Directory(dir) => write!(f, "{}", dir.display()),
            Self::Cache(dir) => write!(f, "{} (cache)", dir.display()),
            Self::Downloaded(dir) => write!(f, "{} (downloaded)", dir.display()),
            Self::Folder(dir) => write!(f, "{} (pictures)", dir.display()),
            Self::CachedFolder(dir) => {
                write!(f, "{} (pictures, decoded copy cached)", dir.display())
            }
        }
    }
}

/// What a missing file leaves a directory short of, for its error.
const ALL_FOUR: &str = "the four IDX files: training and test images and labels";
const TEST_SPLIT: &str = "the test split's IDX files: its images and labels";

/// Finds the MNIST files: in `data_dir` when given (and nowhere else), otherwise in
/// Burn's dataset cache (`<cache dir>/burn-dataset/mnist/{train,test}/`), downloading
/// them there when they are missing.
pub fn locate(data_dir: Option<&Path>) -> Result<(MnistFiles, MnistSource), DataError> {
    let wanted = [TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS];
    let ([train_images, train_labels, test_images, test_labels], source) =
        locate_files(data_dir, wanted, ALL_FOUR)?;
    let files = MnistFiles {
        train: SplitFiles {
            images: train_images,
            labels: train_labels,
        },
        test: SplitFiles {
            images: test_images,
            labels: test_labels,
        },
    };
    Ok((files, source))
}

/// Finds the test split's two files where [`locate`] finds all four: a directory
/// holding only them serves evaluating and predicting, which need no more.
pub fn locate_test(data_dir: Option<&Path>) -> Result<(SplitFiles, MnistSource), DataError> {
    let ([images, labels], source) =
        locate_files(data_dir, [TEST_IMAGES, TEST_LABELS], TEST_SPLIT)?;
    Ok((SplitFiles { images, labels }, source))
}

/// The files `wanted` (by their canonical names) where [`locate`] looks; `needs` says
/// what a directory missing one lacks.
fn locate_files<const N: usize>(
    data_dir: Option<&Path>,
    wanted: [&'static str; N],
    needs: &'static str,
) -> Result<([PathBuf; N], MnistSource), DataError> {
    if let Some(dir) = data_dir {
        return Ok((
            find(dir, wanted, needs)?,
            MnistSource::Directory(dir.to_path_buf()),
        ));
    }
    let cache = burn_cache_dir()?;
    if let Ok(files) = find(&cache, wanted, needs) {
        return Ok((files, MnistSource::Cache(cache)));
    }
    download::into_cache(&cache)?;
    Ok((find(&cache, wanted, needs)?, MnistSource::Downloaded(cache)))
}

/// The MNIST folder of burn-dataset's cache, so that a cache Burn filled is reused.
pub(crate) fn burn_cache_dir() -> Result<PathBuf, DataError> {
    let base = dirs::cache_dir().ok_or(DataError::NoCacheDir)?;
    Ok(base.join("burn-dataset").join("mnist"))
}

/// Looks for the files `wanted` in `dir` or in its `train/` and `test/` subfolders:
/// under MNIST's names, gzipped (`.gz`) or not, and in the dotted spelling some
/// redistributions use (`train-images.idx3-ubyte`); failing that, under any names
/// that say which split and which kind of file they hold, as other data sets in the
/// IDX format have (`emnist-letters-train-images-idx3-ubyte.gz`, `train-imgs...`).
fn find<const N: usize>(
    dir: &Path,
    wanted: [&'static str; N],
    needs: &'static str,
) -> Result<[PathBuf; N], DataError> {
    if dir.is_file() {
        return Err(DataError::NotADirectory(dir.to_path_buf()));
    }
    if !dir.is_dir() {
        return Err(DataError::NoSuchDir(dir.to_path_buf()));
    }
    let missing = |wanted| DataError::MissingFile {
        dir: dir.to_path_buf(),
        wanted,
        needs,
    };
    match each(wanted, |name| {
        canonical_file(dir, name).ok_or_else(|| missing(name))
    }) {
        Ok(files) => Ok(files),
        Err(error) => match Described::in_dir(dir) {
            Some(described) => each(wanted, |name| described.pick(name, missing)),
            None => Err(error),
        },
    }
}

/// `find` of each of `wanted`: every path, or the first error.
fn each<const N: usize>(
    wanted: [&'static str; N],
    mut find: impl FnMut(&'static str) -> Result<PathBuf, DataError>,
) -> Result<[PathBuf; N], DataError> {
    let mut first_error = None;
    let found = wanted.map(|name| {
        find(name).unwrap_or_else(|error| {
            first_error.get_or_insert(error);
            PathBuf::new()
        })
    });
    match first_error {
        Some(error) => Err(error),
        None => Ok(found),
    }
}

/// The file `wanted` under its canonical name (or the dotted one, gzipped or not), in
/// `dir` or in the folder of its split.
fn canonical_file(dir: &Path, wanted: &str) -> Option<PathBuf> {
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

/// The files of a directory (and of its split folders) whose names say what they
/// hold, with what each says.
struct Described {
    dir: PathBuf,
    files: Vec<(PathBuf, (bool, bool))>,
}

impl Described {
    /// The described files of `dir`; `None` if it holds none at all.
    fn in_dir(dir: &Path) -> Option<Self> {
        let files: Vec<(PathBuf, (bool, bool))> =
            [dir.to_path_buf(), dir.join("train"), dir.join("test")]
                .iter()
                .filter_map(|folder| std::fs::read_dir(folder).ok())
                .flatten()
                .filter_map(|entry| entry.ok().map(|entry| entry.path()))
                .filter(|path| path.is_file())
                .filter_map(|path| describe(&path).map(|kind| (path, kind)))
                .collect();
        (!files.is_empty()).then(|| Self {
            dir: dir.to_path_buf(),
            files,
        })
    }

    /// The one file that says it is what the canonical name `wanted` is; `missing`
    /// makes the error for none.
    fn pick(
        &self,
        wanted: &'static str,
        missing: impl Fn(&'static str) -> DataError,
    ) -> Result<PathBuf, DataError> {
        let kind = describe(Path::new(wanted));
        let found: Vec<&PathBuf> = self
            .files
            .iter()
            .filter(|(_, says)| Some(*says) == kind)
            .map(|(path, _)| path)
            .collect();
        // A file kept both raw and gzipped (`gunzip -k`) is one file: the raw one.
        let found: Vec<&PathBuf> = found
            .iter()
            .copied()
            .filter(|path| {
                let raw = path
                    .to_string_lossy()
                    .strip_suffix(".gz")
                    .map(PathBuf::from);
                !raw.is_some_and(|raw| found.contains(&&raw))
            })
            .collect();
        match &found[..] {
            [one] => Ok(one.to_path_buf()),
            [] => Err(missing(wanted)),
            several => Err(DataError::AmbiguousFiles {
                dir: self.dir.clone(),
                wanted,
                candidates: several
                    .iter()
                    .map(|path| path.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(path: &Path) {
        std::fs::create_dir_all(path.parent().expect("has parent")).expect("mkdir");
        std::fs::write(path, b"x").expect("write");
    }

    fn in_directory(dir: &Path) -> Result<MnistFiles, DataError> {
        locate(Some(dir)).map(|(files, _)| files)
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
        assert_eq!(files.train.images, root.join("train-images-idx3-ubyte.gz"));
        assert_eq!(files.train.labels, root.join("train-labels.idx1-ubyte"));
        assert_eq!(files.test.images, root.join("test/t10k-images-idx3-ubyte"));
        assert_eq!(files.test.labels, root.join("t10k-labels.idx1-ubyte.gz"));
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
            files.test.labels,
            root.join("emnist-letters-test-labels-idx1-ubyte.gz")
        );
        assert_eq!(
            files.train.images,
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
            files.train.images,
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
    fn the_test_split_alone_serves_where_only_it_is_needed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        touch(&root.join("t10k-images-idx3-ubyte.gz"));
        touch(&root.join("t10k-labels-idx1-ubyte.gz"));
        let (files, _) = locate_test(Some(root)).expect("the test split is there");
        assert_eq!(files.labels, root.join("t10k-labels-idx1-ubyte.gz"));
        let err = in_directory(root).expect_err("no training split");
        assert!(err.to_string().contains(TRAIN_IMAGES), "{err}");
        // Named otherwise, the test split is found by what the names say.
        let other = tempfile::tempdir().expect("tempdir");
        touch(&other.path().join("kmnist-test-imgs.gz"));
        let err = locate_test(Some(other.path())).expect_err("no labels");
        let message = err.to_string();
        assert!(
            message.contains(TEST_LABELS) && message.contains("the test split's IDX files"),
            "{message}"
        );
        touch(&other.path().join("kmnist-test-labels.gz"));
        let (files, _) = locate_test(Some(other.path())).expect("described");
        assert_eq!(files.images, other.path().join("kmnist-test-imgs.gz"));
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
