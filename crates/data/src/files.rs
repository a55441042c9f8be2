//! MNIST's four files by the names Burn's cache gives them, and the split folder each
//! is kept in there.

/// The canonical names of the four MNIST files, as in Burn's cache (uncompressed).
pub(crate) const TRAIN_IMAGES: &str = "train-images-idx3-ubyte";
pub(crate) const TRAIN_LABELS: &str = "train-labels-idx1-ubyte";
pub(crate) const TEST_IMAGES: &str = "t10k-images-idx3-ubyte";
pub(crate) const TEST_LABELS: &str = "t10k-labels-idx1-ubyte";

/// The split subfolder Burn's cache keeps each file in.
pub(crate) fn split_of(name: &str) -> &'static str {
    if name.starts_with("t10k") {
        "test"
    } else {
        "train"
    }
}
