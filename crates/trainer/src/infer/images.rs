//! The images a command is asked about, from files or from the test set, loaded and
//! prepared for the model and named for the user.

use std::path::PathBuf;

use super::TestSet;
use super::preprocess::load_picture;
use crate::TrainerError;
use crate::config::TrainingConfig;
use crate::run_dir::RunDir;

/// Where an image comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageInput {
    /// A PNG or JPEG file, prepared the MNIST way.
    File(PathBuf),
    /// This image of the run's test set.
    Test(usize),
}

/// An image ready for the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadedImage {
    /// Pixel bytes (0-255), as many as the model takes.
    pub pixels: Vec<u8>,
    /// How to name it in output: the path, or `test image 3 (label 5)`.
    pub title: String,
    /// A short name for files made from it: the file's stem, or `test-3`.
    pub slug: String,
}

/// Loads `inputs` for the model of `run` (built from `config`); the test set is read
/// only if one of them is in it, and once, from `data_dir` or the data the run trained on.
pub fn load_images(
    inputs: &[ImageInput],
    run: &RunDir,
    config: &TrainingConfig,
    data_dir: Option<PathBuf>,
) -> Result<Vec<LoadedImage>, TrainerError> {
    let mut test: Option<TestSet> = None;
    let mut images = Vec::with_capacity(inputs.len());
    for input in inputs {
        images.push(match input {
            ImageInput::Test(index) => {
                let test = match &mut test {
                    Some(test) => test,
                    empty => empty.insert(TestSet::of(run, config, data_dir.clone())?),
                };
                let item = test.item(*index)?;
                LoadedImage {
                    pixels: item.pixels,
                    title: format!(
                        "test image {index} (label {})",
                        config.class_name(usize::from(item.label))
                    ),
                    slug: format!("test-{index}"),
                }
            }
            ImageInput::File(path) => {
                LoadedImage {
                    pixels: load_picture(path, config)?,
                    // A line of its own however the file is named.
                    title: crate::console::escape_controls(&path.display().to_string()),
                    slug: path.file_stem().map_or_else(
                        || "image".into(),
                        |stem| stem.to_string_lossy().into_owned(),
                    ),
                }
            }
        });
    }
    if let Some(image) = images
        .iter()
        .find(|image| image.pixels.len() != config.model.input_size)
    {
        return Err(TrainerError::InputSizeMismatch {
            expected: config.model.input_size,
            found: image.pixels.len(),
        });
    }
    Ok(images)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_named_by_path_and_stem_and_must_fit_the_model() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("seven.png");
        let mut digit = image::GrayImage::from_pixel(40, 40, image::Luma([255]));
        for y in 8..32 {
            digit.put_pixel(20, y, image::Luma([0]));
            digit.put_pixel(21, y, image::Luma([0]));
        }
        digit.save(&path).expect("png");
        let run = RunDir::new(dir.path());
        let config = TrainingConfig::new();
        let images =
            load_images(&[ImageInput::File(path.clone())], &run, &config, None).expect("loads");
        assert_eq!(images[0].pixels.len(), 784);
        assert_eq!(images[0].slug, "seven");
        assert_eq!(images[0].title, path.display().to_string());
        let mut wide = TrainingConfig::new();
        wide.model.input_size = 783;
        let err = load_images(&[ImageInput::File(path)], &run, &wide, None).expect_err("783");
        assert!(matches!(err, TrainerError::NotSquare(783)), "{err}");
    }
}
