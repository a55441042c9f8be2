//! Why a model could not leave or enter this program in another framework's format.

use std::path::PathBuf;

use crate::TrainerError;

/// An export or import that cannot be done.
#[derive(Debug, thiserror::Error)]
pub enum InteropError {
    #[error(transparent)]
    Run(#[from] TrainerError),
    #[error("cannot export this model: {0}; export only ReLU networks")]
    NotExportable(String),
    #[error("cannot write this network as ONNX: {0}")]
    Onnx(String),
    #[error(
        "cannot import {path}: {reason}; give a PyTorch state dict (safetensors or .pt) of the tutorial's Net, whose Linear layers are named fc1, fc2, ... in order"
    )]
    Import { path: PathBuf, reason: String },
    #[error("{0} already holds a run")]
    TargetExists(PathBuf),
}

impl From<burn::tensor::TensorReadError> for InteropError {
    fn from(error: burn::tensor::TensorReadError) -> Self {
        Self::Run(error.into())
    }
}
