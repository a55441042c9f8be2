//! MNIST for Burn: the IDX file format, where the files come from (a directory, Burn's
//! dataset cache, or a download into that cache), the train/validation/test
//! [`Dataset`](burn::data::dataset::Dataset)s and the [`Batcher`](burn::data::dataloader::batch::Batcher)
//! that turns them into tensors.

mod augment;
mod batcher;
mod dataset;
mod download;
mod error;
mod files;
mod folder;
pub mod fs;
mod idx;
mod loader;
mod mnist;
mod pixels;
mod source;

pub use augment::{AugmentConfig, Augmentation};
pub use batcher::{MnistBatch, MnistBatcher};
pub use dataset::{MnistDataset, MnistItem, SplitConfig, SplitIndices};
pub use error::{DataError, IndexOutOfRange, UnreadablePictures};
pub use folder::{
    CACHE_DIR_VARIABLE, DataConfig, FolderData, Skipped, class_names, decoding_limits,
    is_image_folder, picture_planes, read_picture,
};
pub use idx::{
    IMAGES_MAGIC, IdxImages, IdxLabels, LABELS_MAGIC, LabelledImages, available_memory, encode_idx,
};
pub use loader::EpochLoader;
pub use mnist::{Mnist, TestSplit};
pub use source::{MnistFiles, MnistSource, SplitFiles, locate, locate_test};
