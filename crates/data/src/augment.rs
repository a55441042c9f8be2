//! What augmentation a run asks for (`data.augment` in a config): the ranges of each
//! random transform, every one off unless set, and the seed that makes a training
//! image's warp a function of the run, the epoch and the image.

use burn::config::Config;
use kernels::augment::{Ranges, Warp, image_seed};

/// Random transforms of the training images, drawn anew for each image of each
/// epoch; validation and test images are never transformed. Every key is off by
/// default.
#[derive(Config, Debug, PartialEq)]
pub struct AugmentConfig {
    /// Rotation, uniform in `[-rotation, rotation]` degrees.
    #[config(default = 0.0)]
    pub rotation: f32,
    /// Shift along each axis, uniform in `[-translate, translate]` times the side.
    #[config(default = 0.0)]
    pub translate: f32,
    /// Zoom, uniform in `[scale[0], scale[1]]`.
    #[config(default = "[1.0, 1.0]")]
    pub scale: [f32; 2],
    /// Horizontal shear, uniform in `[-shear, shear]` degrees.
    #[config(default = 0.0)]
    pub shear: f32,
    /// A random crop of the image padded by this many zero pixels on each side.
    #[config(default = 0)]
    pub crop_padding: usize,
    /// Mirror left to right with probability 1/2 (off: digits are not symmetric).
    #[config(default = false)]
    pub horizontal_flip: bool,
}

impl AugmentConfig {
    /// The kernels' ranges of these keys.
    pub fn ranges(&self) -> Ranges {
        Ranges {
            rotation_degrees: self.rotation,
            shear_degrees: self.shear,
            scale: self.scale,
            translate: self.translate,
            crop_padding: self.crop_padding,
            horizontal_flip: self.horizontal_flip,
        }
    }

    /// Whether any transform is on.
    pub fn is_on(&self) -> bool {
        self.ranges() != Ranges::none()
    }

    /// The first key out of its range and why, for a config to name.
    pub fn invalid(&self) -> Option<(&'static str, String)> {
        let [low, high] = self.scale;
        if !(self.rotation.is_finite() && (0.0..=180.0).contains(&self.rotation)) {
            return Some((
                "rotation",
                format!("is {}; it is 0 to 180 degrees", self.rotation),
            ));
        }
        if !(self.shear.is_finite() && (0.0..90.0).contains(&self.shear)) {
            return Some(("shear", format!("is {}; it is 0 to 89 degrees", self.shear)));
        }
        if !(self.translate.is_finite() && (0.0..=1.0).contains(&self.translate)) {
            return Some((
                "translate",
                format!(
                    "is {}; it is a fraction of the side, 0 to 1",
                    self.translate
                ),
            ));
        }
        if self.crop_padding > MAX_CROP_PADDING {
            return Some((
                "crop_padding",
                format!(
                    "is {}; it is at most {MAX_CROP_PADDING} pixels",
                    self.crop_padding
                ),
            ));
        }
        if !(low.is_finite() && high.is_finite() && 0.0 < low && low <= high) {
            return Some((
                "scale",
                format!("is [{low}, {high}]; it is [low, high] with 0 < low <= high"),
            ));
        }
        None
    }
}

/// The widest crop padding a config may ask for: beyond any picture's side, where
/// every crop would be blank.
const MAX_CROP_PADDING: usize = 4096;

/// Augmentation as a loader applies it: the ranges, the run's seed, and the images'
/// `[channels, height, width]`.
#[derive(Debug, Clone, Copy)]
pub struct Augmentation {
    pub ranges: Ranges,
    pub seed: u64,
    pub shape: [usize; 3],
}

impl Augmentation {
    /// Writes `image` (bytes), warped as image `index` of the whole set in epoch
    /// `epoch`, into `out` as the network's floats.
    pub fn apply(&self, image: &[u8], epoch: usize, index: usize, out: &mut [f32]) {
        let [_, height, width] = self.shape;
        let seed = image_seed(self.seed, epoch, index);
        Warp::random(&self.ranges, [height, width], seed).apply(image, self.shape, out);
    }
}
