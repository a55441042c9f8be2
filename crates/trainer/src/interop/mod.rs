//! Models leaving and entering this program in other frameworks' formats: PyTorch
//! state dicts (safetensors and `.pt`) both ways, and ONNX out.

mod error;
pub(crate) mod onnx;
mod pytorch;

pub use self::error::InteropError;
pub use self::onnx::export_onnx;
pub use self::pytorch::{export_safetensors, import_run, import_state_dict};
