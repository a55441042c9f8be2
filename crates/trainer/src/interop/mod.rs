//! Models leaving and entering this program in other frameworks' formats: PyTorch
//! state dicts (safetensors and `.pt`) both ways, and ONNX out.

mod error;
mod import;
pub(crate) mod onnx;
mod pytorch;

pub use self::error::InteropError;
pub use self::import::import_run;
pub use self::onnx::export_onnx;
pub use self::pytorch::{export_safetensors, import_state_dict};

use model::NetworkConfig;

/// The metadata key, in both exports, of the input the network takes.
const INPUT_KEY: &str = "input_shape";

/// What an exported network takes, as the `input_shape` metadata states it: rows of
/// `[batch, channels * height * width]` pixels in [0, 1], each an image of
/// `[channels, height, width]` whose channels are planes one after another (NCHW,
/// flattened); when `config` standardises them (a CNN's state dict), `normalize`
/// states each channel's mean and std to apply first.
fn input_metadata(config: &NetworkConfig) -> (String, String) {
    let image = config.image_shape();
    let mut value = serde_json::json!({
        "input": ["batch", config.input_size],
        "image": image,
        "layout": "NCHW flattened, pixels in [0, 1]",
    });
    let channels = image.map_or(1, |[channels, _, _]| channels);
    if let Some(standardization) = config.normalization.per_channel(channels) {
        value["layout"] =
            "NCHW flattened, pixels in [0, 1], then (x - mean[c]) / std[c] per channel".into();
        // JSON numbers are f64: each f32 goes as its shortest decimal, not widened.
        let decimals = |values: Vec<f32>| -> Vec<f64> {
            values
                .iter()
                .map(|v| v.to_string().parse().unwrap_or(f64::NAN))
                .collect()
        };
        value["normalize"] = serde_json::json!({
            "mean": decimals(standardization.mean),
            "std": decimals(standardization.std),
        });
    }
    (INPUT_KEY.to_string(), value.to_string())
}
