//! Using a trained model: predicting, scoring it on a test set, explaining one of its
//! decisions, and preparing image files the way MNIST's digits were prepared.

mod classifier;
mod evaluate;
mod explain;
mod images;
mod predict;
pub mod preprocess;
mod test_set;

pub use self::classifier::{Classifier, most_likely};
pub use self::evaluate::{Evaluation, evaluate};
pub use self::explain::{Explanation, explain};
pub use self::images::{ImageInput, LoadedImage, load_images};
pub use self::predict::{Prediction, predict, scale_pixels};
pub use self::test_set::TestSet;
pub(crate) use self::test_set::warn_skipped;
