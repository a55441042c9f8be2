//! Models leaving and entering this program in other frameworks' formats: PyTorch
//! state dicts (safetensors and `.pt`) both ways, and ONNX out.

mod error;
pub(crate) mod onnx;
mod pytorch;

pub use self::error::InteropError;
pub use self::onnx::export_onnx;
pub use self::pytorch::{export_safetensors, import_run, import_state_dict};

use model::NetworkConfig;

/// The metadata key, in both exports, of the input the network takes.
const INPUT_KEY: &str = "input_shape";

/// What an exported network takes, as the `input_shape` metadata states it: rows of
/// `[batch, channels * height * width]` pixels in [0, 1], each an image of
/// `[channels, height, width]` whose channels are planes one after another (NCHW,
/// flattened).
fn input_metadata(config: &NetworkConfig) -> (String, String) {
    let image = config.image_shape();
    let value = serde_json::json!({
        "input": ["batch", config.input_size],
        "image": image,
        "layout": "NCHW flattened, pixels in [0, 1]",
    });
    (INPUT_KEY.to_string(), value.to_string())
}
