//! Data sets of pictures in folders, as torchvision's `ImageFolder` reads them:
//! `train/`, `test/` and optionally `valid/`, each with one folder of PNG, JPEG, BMP
//! or WebP files per class. Each picture is decoded once, to the run's channels and
//! size ([`DataConfig`]), into the same [`LabelledImages`] the IDX files give.

mod cache;
mod decode;
mod scan;

use std::path::{Path, PathBuf};

use burn::prelude::*;

pub use self::cache::CACHE_DIR_VARIABLE;
use self::cache::PictureCache;
pub use self::decode::{Skipped, decoding_limits, picture_planes, read_picture};
use self::decode::{Target, decode_split, pictures_fit_in_memory};
use self::scan::{Split, SplitFiles, split_files};
pub use self::scan::{class_names, is_image_folder};
use crate::{AugmentConfig, DataError, LabelledImages, MnistSource};

/// How pictures become a run's images (IDX files have one channel and one size of
/// their own, and take none of those keys), and how training images are augmented
/// (any data).
#[derive(Config, Debug, PartialEq)]
pub struct DataConfig {
    /// Channels of the images the network takes: 1 (grey) or 3 (RGB). By default the
    /// training pictures': 3 if any is in colour. Training records what it used.
    #[config(default = "None")]
    pub channels: Option<usize>,
    /// `[height, width]` every picture is resized to. By default the first training
    /// picture's size, which all of them must then share. Training records what it
    /// used; a run of IDX files has none.
    #[config(default = "None")]
    pub image_size: Option<[usize; 2]>,
    /// Leave out pictures that cannot be decoded and files that are no picture, with
    /// a warning counting them, rather than stop at the first.
    #[config(default = false)]
    pub skip_bad_images: bool,
    /// Hold the decoded pictures in memory (true), or read each from the cache's copy
    /// on disk when a batch needs it (false). By default in memory when they take
    /// under half the memory available.
    #[config(default = "None")]
    pub keep_in_memory: Option<bool>,
    /// Random transforms of the training images, pictures or IDX; none by default.
    #[config(default = "AugmentConfig::new()")]
    pub augment: AugmentConfig,
}

/// The splits of a folder data set but the training one, decoded, and what they
/// say of the data set.
#[derive(Debug, Clone)]
pub struct FolderData {
    /// The class folders' names, sorted: class `i` is `classes[i]`.
    pub classes: Vec<String>,
    /// `None` without a `valid/` folder, or when only the test split was read.
    pub valid: Option<LabelledImages>,
    pub test: LabelledImages,
    /// The pictures left out, with `skip_bad_images`.
    pub skipped: Vec<Skipped>,
    /// Whether every split came from the cache's decoded copies, no picture read.
    pub cached: bool,
}

impl FolderData {
    /// Reads every split of the folder data set at `root`; the training split is
    /// returned beside the others.
    pub fn read(root: &Path, config: &DataConfig) -> Result<(Self, LabelledImages), DataError> {
        Self::read_caching(root, config, cache::cache_dir())
    }

    /// [`FolderData::read`], keeping each decoded split in the directory `cache`
    /// (with none, decoding every time).
    fn read_caching(
        root: &Path,
        config: &DataConfig,
        cache: Option<PathBuf>,
    ) -> Result<(Self, LabelledImages), DataError> {
        let mut reader = Reader::new(root, config, cache)?;
        let train = reader.split(Split::Train)?;
        // The other splits take the training split's channels and size.
        reader.target = Target {
            channels: Some(train.channels()),
            size: Some([train.rows(), train.cols()]),
        };
        let valid = match root.join(Split::Valid.folder()).is_dir() {
            true => Some(reader.split(Split::Valid)?),
            false => None,
        };
        let test = reader.split(Split::Test)?;
        Ok((reader.finish(valid, test), train))
    }

    /// Where the data came from: the folder `root` this was read from, and whether
    /// its pictures were read or their cached decoded copy.
    pub fn source(&self, root: &Path) -> MnistSource {
        match self.cached {
            true => MnistSource::CachedFolder(root.to_path_buf()),
            false => MnistSource::Folder(root.to_path_buf()),
        }
    }

    /// Reads the test split alone, for a run whose channels and size `config`
    /// records.
    pub fn read_test(root: &Path, config: &DataConfig) -> Result<Self, DataError> {
        let mut reader = Reader::new(root, config, cache::cache_dir())?;
        let test = reader.split(Split::Test)?;
        Ok(reader.finish(None, test))
    }
}

/// Reads the splits of one data set in turn.
struct Reader<'a> {
    root: &'a Path,
    skip: bool,
    classes: Vec<String>,
    target: Target,
    skipped: Vec<Skipped>,
    /// Where decoded splits are kept between runs.
    cache: Option<PathBuf>,
    /// `data.keep_in_memory`.
    keep_in_memory: Option<bool>,
    /// No split needed decoding so far.
    all_cached: bool,
}

impl<'a> Reader<'a> {
    fn new(root: &'a Path, config: &DataConfig, cache: Option<PathBuf>) -> Result<Self, DataError> {
        Ok(Self {
            root,
            cache,
            keep_in_memory: config.keep_in_memory,
            all_cached: true,
            skip: config.skip_bad_images,
            classes: class_names(root)?,
            target: Target {
                channels: config.channels,
                size: config.image_size,
            },
            skipped: Vec::new(),
        })
    }

    fn split(&mut self, split: Split) -> Result<LabelledImages, DataError> {
        let files = split_files(self.root, split, &self.classes)?;
        let cache = (self.cache.as_deref())
            .map(|dir| PictureCache::new(dir, self.root, split, &files, self.target));
        let set = match cache
            .as_ref()
            .and_then(|cache| cache.load(self.keep_in_memory))
        {
            Some(set) => set,
            None => self.decode(split, &files, cache)?,
        };
        check_every_class(&set, &self.root.join(split.folder()), &self.classes)?;
        Ok(set)
    }

    /// Decodes `files`, the pictures of `split`, into memory or, when they do not fit
    /// there, into `cache`'s file; the cache keeps them for the next run.
    fn decode(
        &mut self,
        split: Split,
        files: &SplitFiles,
        cache: Option<PictureCache>,
    ) -> Result<LabelledImages, DataError> {
        self.all_cached = false;
        let in_memory =
            (self.keep_in_memory).unwrap_or_else(|| pictures_fit_in_memory(files, self.target));
        let (set, left_out) = match (in_memory, cache) {
            (true, cache) => {
                let (set, left_out) = decode_split(files, self.target, self.skip)?;
                // A split with pictures left out would come back without its warning.
                if let Some(cache) = cache.filter(|_| left_out.is_empty()) {
                    cache.store(&set);
                }
                (set, left_out)
            }
            (false, Some(cache)) => cache.decode_into(files, self.target, self.skip)?,
            (false, None) => {
                return Err(DataError::NoRoomForPictures {
                    dir: self.root.join(split.folder()),
                });
            }
        };
        self.skipped.extend(left_out);
        Ok(set)
    }

    fn finish(self, valid: Option<LabelledImages>, test: LabelledImages) -> FolderData {
        FolderData {
            classes: self.classes,
            valid,
            test,
            skipped: self.skipped,
            cached: self.all_cached,
        }
    }
}

/// A class all of whose pictures were left out is as empty as a folder without any.
fn check_every_class(
    set: &LabelledImages,
    dir: &Path,
    classes: &[String],
) -> Result<(), DataError> {
    let mut seen = vec![false; classes.len()];
    set.labels()
        .iter()
        .for_each(|&label| seen[usize::from(label)] = true);
    match seen.iter().position(|&seen| !seen) {
        Some(class) => Err(DataError::EmptyClass(dir.join(&classes[class]))),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MnistDataset;
    use image::{GrayImage, Luma, Rgb, RgbImage};

    /// A data set of two classes, `a` grey and `b` red, each picture `width` wide.
    fn two_classes(root: &Path, width: u32) {
        for split in ["train", "test"] {
            for (class, index) in [("a", 0u8), ("a", 1), ("b", 2)] {
                std::fs::create_dir_all(root.join(split).join(class)).expect("mkdir");
                let path = root.join(split).join(class).join(format!("{index}.png"));
                match class {
                    "a" => GrayImage::from_pixel(width, 2, Luma([10 * index])).save(path),
                    _ => RgbImage::from_pixel(width, 2, Rgb([200, 0, 50])).save(path),
                }
                .expect("png");
            }
        }
    }

    #[test]
    fn colour_anywhere_makes_three_planes_and_grey_fills_all_three() {
        let dir = tempfile::tempdir().expect("tempdir");
        two_classes(dir.path(), 3);
        let (folder, train) =
            FolderData::read_caching(dir.path(), &DataConfig::new(), None).expect("reads");
        assert_eq!(folder.classes, ["a", "b"]);
        assert_eq!((train.channels(), train.rows(), train.cols()), (3, 2, 3));
        assert_eq!(train.labels(), [0, 0, 1]);
        // The grey picture of value 10, in each of the three planes.
        assert_eq!(train.image(1).as_deref(), Some(&[10u8; 18][..]));
        // The red one: a plane of 200s, of 0s, of 50s.
        let red: Vec<u8> = [200u8, 0, 50].iter().flat_map(|&v| [v; 6]).collect();
        assert_eq!(train.image(2).as_deref(), Some(&red[..]));
        assert_eq!(folder.test.channels(), 3);
        // Asked for grey, the colour becomes its luminance (Rec. 709's weights, the
        // image crate's): 0.2126 * 200 + 0.0722 * 50.
        let grey = DataConfig::new().with_channels(Some(1));
        let (_, train) = FolderData::read_caching(dir.path(), &grey, None).expect("reads");
        assert_eq!(train.channels(), 1);
        assert_eq!(train.image(2).map(|p| p[0]), Some(46));
    }

    #[test]
    fn pictures_of_another_size_are_refused_unless_a_size_is_set() {
        let dir = tempfile::tempdir().expect("tempdir");
        two_classes(dir.path(), 3);
        GrayImage::from_pixel(5, 2, Luma([0]))
            .save(dir.path().join("train/b/wide.png"))
            .expect("png");
        let error = FolderData::read_caching(dir.path(), &DataConfig::new(), None)
            .expect_err("5x2 among 3x2");
        assert!(error.to_string().contains("wide.png"), "{error}");
        assert!(error.to_string().contains("data.image_size"), "{error}");
        let resized = DataConfig::new().with_image_size(Some([4, 4]));
        let (folder, train) =
            FolderData::read_caching(dir.path(), &resized, None).expect("all resized");
        assert_eq!((train.len(), train.rows(), train.cols()), (4, 4, 4));
        assert_eq!((folder.test.rows(), folder.test.cols()), (4, 4));
    }

    #[test]
    fn bad_pictures_are_errors_or_skipped_and_counted() {
        let dir = tempfile::tempdir().expect("tempdir");
        two_classes(dir.path(), 3);
        let broken = dir.path().join("train/a/broken.png");
        std::fs::write(&broken, b"\x89PNG but cut short").expect("write");
        let error = FolderData::read_caching(dir.path(), &DataConfig::new(), None)
            .expect_err("undecodable");
        assert!(
            matches!(&error, DataError::BadPicture { path, .. } if *path == broken),
            "{error}"
        );
        let skip = DataConfig::new().with_skip_bad_images(true);
        let (folder, train) = FolderData::read_caching(dir.path(), &skip, None).expect("skipped");
        assert_eq!(train.len(), 3);
        assert_eq!(folder.skipped.len(), 1);
        assert_eq!(folder.skipped[0].path, broken);
        // A class whose every picture is bad is empty, skipped or not.
        std::fs::remove_file(dir.path().join("test/b/2.png")).expect("rm");
        std::fs::write(dir.path().join("test/b/2.png"), b"nothing").expect("write");
        let error = FolderData::read_caching(dir.path(), &skip, None).expect_err("test/b empty");
        assert!(matches!(error, DataError::EmptyClass(_)), "{error}");
    }

    #[test]
    fn a_decoded_split_is_kept_until_a_file_of_it_changes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (root, cache) = (dir.path().join("data"), dir.path().join("cache"));
        two_classes(&root, 3);
        let read = || {
            FolderData::read_caching(&root, &DataConfig::new(), Some(cache.clone())).expect("reads")
        };
        let kept = |path: &Path| std::fs::read_dir(path).map_or(0, |entries| entries.count());
        let (first, train) = read();
        assert_eq!(kept(&cache), 2, "train and test kept");
        // A picture's bytes replaced behind the cache's back (same size, same time):
        // the next read comes from the cache, not from the file.
        let picture = root.join("train/a/1.png");
        let original = std::fs::metadata(&picture).expect("picture");
        let garbage = vec![0u8; original.len() as usize];
        std::fs::write(&picture, garbage).expect("overwritten");
        let file = std::fs::File::options()
            .write(true)
            .open(&picture)
            .expect("open");
        file.set_modified(original.modified().expect("mtime"))
            .expect("mtime set");
        let (again, train_again) = read();
        assert_eq!(
            (again.test, train_again),
            (first.test.clone(), train.clone())
        );
        // A damaged cache is passed over: the file is decoded, and found garbage.
        for entry in std::fs::read_dir(&cache).expect("cache") {
            let path = entry.expect("entry").path();
            let mut bytes = std::fs::read(&path).expect("kept");
            let last = bytes.len() - 1;
            bytes[last] ^= 1;
            std::fs::write(&path, bytes).expect("damaged");
        }
        let error = FolderData::read_caching(&root, &DataConfig::new(), Some(cache.clone()))
            .expect_err("decoded");
        assert!(error.to_string().contains("1.png"), "{error}");
        // A picture rewritten is decoded anew.
        GrayImage::from_pixel(3, 2, Luma([99]))
            .save(&picture)
            .expect("png");
        let (_, train_changed) = read();
        assert_eq!(train_changed.image(1).as_deref(), Some(&[99u8; 18][..]));
        assert_eq!(kept(&cache), 2, "replaced, not added");
        // Pictures left out are not kept: their warning must come again.
        std::fs::write(root.join("train/b/notes.txt"), "not a picture").expect("write");
        let skip = DataConfig::new().with_skip_bad_images(true);
        for _ in 0..2 {
            let (folder, _) =
                FolderData::read_caching(&root, &skip, Some(cache.clone())).expect("skips");
            assert_eq!(folder.skipped.len(), 1);
        }
    }

    #[test]
    fn pictures_kept_on_disk_read_as_those_in_memory() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("data");
        two_classes(&root, 3);
        std::fs::write(root.join("train/b/notes.txt"), "not a picture").expect("write");
        let config = |in_memory| {
            DataConfig::new()
                .with_skip_bad_images(true)
                .with_keep_in_memory(Some(in_memory))
        };
        let read = |in_memory, cache: Option<PathBuf>| {
            FolderData::read_caching(&root, &config(in_memory), cache).expect("reads")
        };
        let (memory, memory_train) = read(true, None);
        let on_disk = dir.path().join("cache");
        let same = |(folder, train): (FolderData, LabelledImages)| {
            assert_eq!(folder.skipped, memory.skipped);
            for (set, expected) in [(&train, &memory_train), (&folder.test, &memory.test)] {
                assert_eq!(set.labels(), expected.labels());
                assert_eq!(set.channels(), expected.channels());
                assert_eq!(set.pixels_in_memory(), None, "read from the file");
                for index in 0..expected.len() {
                    assert_eq!(set.image(index), expected.image(index), "image {index}");
                }
                assert_eq!(set.image(expected.len()), None);
            }
            folder.cached
        };
        assert!(
            !same(read(false, Some(on_disk.clone()))),
            "decoded to the file"
        );
        // The test split, nothing left out, is found there by the next read; the
        // training split, a file left out, is decoded again to repeat its warning.
        assert!(!same(read(false, Some(on_disk.clone()))));
        std::fs::remove_file(root.join("train/b/notes.txt")).expect("removed");
        let (_, train) = read(false, Some(on_disk.clone()));
        assert_eq!(train.labels(), memory_train.labels());
        let (again, _) = read(false, Some(on_disk.clone()));
        assert!(again.cached, "both splits from the cache's files");
        // A file cut short while in use: its images no longer read, and the set
        // names the file, for the error to say.
        let path = again.test.pixels_file().expect("on disk").to_path_buf();
        std::fs::File::options()
            .write(true)
            .open(&path)
            .and_then(|file| file.set_len(10))
            .expect("truncated");
        assert_eq!(again.test.image(0), None);
        assert_eq!(
            MnistDataset::new(again.test).pixels_file(),
            Some(path.as_path())
        );
        // Pictures too many for memory with no cache directory have nowhere to go.
        let error = FolderData::read_caching(&root, &config(false), None).expect_err("no room");
        assert!(
            matches!(error, DataError::NoRoomForPictures { .. }),
            "{error}"
        );
    }
}
