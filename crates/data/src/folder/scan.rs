//! Finding the pictures of a folder data set: `train/`, `test/` and optionally
//! `valid/`, each with one folder per class (torchvision's `ImageFolder` layout).
//! Classes are the training split's folder names in sorted order, as torchvision
//! numbers them; every other split must have the same ones.

use std::path::{Path, PathBuf};

use crate::DataError;

/// The file name extensions of the pictures read, lower-case.
const PICTURE_EXTENSIONS: [&str; 5] = ["png", "jpg", "jpeg", "bmp", "webp"];
/// Labels are bytes, as in IDX files.
const MAX_CLASSES: usize = 256;

/// The splits of a folder data set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    Train,
    Valid,
    Test,
}

impl Split {
    pub fn folder(self) -> &'static str {
        match self {
            Self::Train => "train",
            Self::Valid => "valid",
            Self::Test => "test",
        }
    }
}

/// One split's pictures with their labels, in the order of their file names (class
/// order between equal names); and the files that are no picture, found on the way.
/// Ordered by name rather than by class, the pictures of a data set written out as
/// numbered files keep its order, and a run on them is the run on the original.
#[derive(Debug, Clone, Default)]
pub struct SplitFiles {
    pub pictures: Vec<(PathBuf, u8)>,
    pub not_pictures: Vec<PathBuf>,
}

/// Whether `dir` is laid out as a folder data set: a `train/` and a `test/` folder,
/// the first with a folder in it. (Burn's MNIST cache has the two folders too, with
/// IDX files in them.)
pub fn is_image_folder(dir: &Path) -> bool {
    let has_subfolder = |folder: &Path| {
        std::fs::read_dir(folder).is_ok_and(|entries| {
            entries
                .filter_map(Result::ok)
                .any(|entry| entry.path().is_dir())
        })
    };
    dir.join("test").is_dir() && has_subfolder(&dir.join("train"))
}

/// The class names of the folder data set at `root`: its training split's folders,
/// sorted.
pub fn class_names(root: &Path) -> Result<Vec<String>, DataError> {
    let train = root.join(Split::Train.folder());
    let classes = class_folders(&train)?;
    if classes.is_empty() {
        return Err(DataError::NoClassFolders(train));
    }
    if classes.len() > MAX_CLASSES {
        return Err(DataError::TooManyClasses {
            dir: train,
            count: classes.len(),
        });
    }
    Ok(classes)
}

/// The pictures of `split` of the data set at `root`, labelled by their folder's
/// position in `classes`. A split that lacks a class, has one more, or has a class
/// folder without a picture in it, is an error naming the folder.
pub fn split_files(root: &Path, split: Split, classes: &[String]) -> Result<SplitFiles, DataError> {
    let dir = root.join(split.folder());
    let found = class_folders(&dir)?;
    if let Some(extra) = found.iter().find(|class| !classes.contains(class)) {
        return Err(DataError::ExtraClass {
            dir: dir.join(extra),
            train: root.join(Split::Train.folder()),
        });
    }
    let mut files = SplitFiles::default();
    for (label, class) in classes.iter().enumerate() {
        let folder = dir.join(class);
        if !folder.is_dir() {
            return Err(DataError::MissingClass {
                dir: folder,
                train: root.join(Split::Train.folder()).join(class),
            });
        }
        let mut entries = entries(&folder)?;
        entries.sort();
        let before = files.pictures.len();
        for path in entries {
            match is_picture(&path) {
                // Labels are bytes: `class_names` allows at most 256 classes.
                true => files.pictures.push((path, label as u8)),
                false => files.not_pictures.push(path),
            }
        }
        if files.pictures.len() == before {
            return Err(DataError::EmptyClass(folder));
        }
    }
    files
        .pictures
        .sort_by(|(a, _), (b, _)| a.file_name().cmp(&b.file_name()));
    // Files beside the class folders belong to no class.
    files
        .not_pictures
        .extend(entries(&dir)?.into_iter().filter(|path| !path.is_dir()));
    Ok(files)
}

/// The names of the folders in `dir`, sorted.
fn class_folders(dir: &Path) -> Result<Vec<String>, DataError> {
    let mut names: Vec<String> = entries(dir)?
        .into_iter()
        .filter(|path| path.is_dir())
        .filter_map(|path| Some(path.file_name()?.to_string_lossy().into_owned()))
        .collect();
    names.sort();
    Ok(names)
}

/// The entries of `dir` but hidden ones (`.DS_Store`, `._` resource forks), which
/// no one means as data.
fn entries(dir: &Path) -> Result<Vec<PathBuf>, DataError> {
    let read_error = |error| DataError::Read {
        path: dir.to_path_buf(),
        error,
    };
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(read_error)? {
        let entry = entry.map_err(read_error)?;
        if !entry.file_name().to_string_lossy().starts_with('.') {
            paths.push(entry.path());
        }
    }
    Ok(paths)
}

/// Whether the name of `path` says it is a picture of a kind read here.
fn is_picture(path: &Path) -> bool {
    path.is_file()
        && path
            .extension()
            .map(|extension| extension.to_string_lossy().to_lowercase())
            .is_some_and(|extension| PICTURE_EXTENSIONS.contains(&extension.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(path: &Path) {
        std::fs::create_dir_all(path.parent().expect("has parent")).expect("mkdir");
        std::fs::write(path, b"x").expect("write");
    }

    #[test]
    fn classes_are_the_sorted_training_folders_and_label_the_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        for file in [
            "train/b/2.png",
            "train/b/1.jpg",
            "train/a/x.PNG",
            "test/a/y.bmp",
        ] {
            touch(&root.join(file));
        }
        touch(&root.join("test/b/z.webp"));
        touch(&root.join("train/a/.DS_Store"));
        assert!(is_image_folder(root));
        let classes = class_names(root).expect("two classes");
        assert_eq!(classes, ["a", "b"]);
        let train = split_files(root, Split::Train, &classes).expect("train");
        let names: Vec<(String, u8)> = train
            .pictures
            .iter()
            .map(|(path, label)| {
                (
                    path.file_name()
                        .unwrap_or_default()
                        .to_string_lossy()
                        .into(),
                    *label,
                )
            })
            .collect();
        assert_eq!(
            names,
            [
                ("1.jpg".into(), 1),
                ("2.png".into(), 1),
                ("x.PNG".into(), 0)
            ]
        );
        assert!(train.not_pictures.is_empty());
    }

    #[test]
    fn each_bad_folder_is_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        touch(&root.join("train/cat/1.png"));
        touch(&root.join("train/dog/1.png"));
        touch(&root.join("test/cat/1.png"));
        let classes = class_names(root).expect("classes");
        let error = split_files(root, Split::Test, &classes).expect_err("no test/dog");
        assert!(matches!(error, DataError::MissingClass { .. }), "{error}");
        assert!(error.to_string().contains("test/dog"), "{error}");

        std::fs::create_dir_all(root.join("test/dog")).expect("mkdir");
        touch(&root.join("test/dog/notes.txt"));
        let error = split_files(root, Split::Test, &classes).expect_err("no picture");
        assert!(matches!(error, DataError::EmptyClass(_)), "{error}");

        touch(&root.join("test/dog/2.jpeg"));
        touch(&root.join("test/README"));
        let files = split_files(root, Split::Test, &classes).expect("pictures in each class");
        assert_eq!(
            files.not_pictures,
            [root.join("test/dog/notes.txt"), root.join("test/README")]
        );

        touch(&root.join("test/fox/1.png"));
        let error = split_files(root, Split::Test, &classes).expect_err("a class train lacks");
        assert!(error.to_string().contains("test/fox"), "{error}");
    }

    #[test]
    fn idx_files_in_split_folders_are_no_image_folder() {
        let dir = tempfile::tempdir().expect("tempdir");
        touch(&dir.path().join("train/train-images-idx3-ubyte"));
        touch(&dir.path().join("test/t10k-images-idx3-ubyte"));
        assert!(!is_image_folder(dir.path()));
    }
}
