//! `trainer export --format onnx`: a trained network as an ONNX model, for onnxruntime,
//! TensorRT, OpenVINO and the other runtimes PyTorch users deploy with.

mod graph;
mod proto;

use std::path::Path;

use model::Mlp;

pub use self::graph::{DenseLayer, OnnxError, OnnxNetwork, encode};
use crate::TrainerError;
use crate::config::TrainingConfig;

/// Writes `model`, built from `config`, to `out` as an ONNX model whose input is the
/// pixels scaled to 0..1 as `predict` prepares them, and whose metadata carries the
/// run's config and class names. An existing file is replaced once the new one is
/// complete.
pub fn export_onnx(model: &Mlp, config: &TrainingConfig, out: &Path) -> Result<(), TrainerError> {
    let layers = model
        .layers()
        .map(|linear| {
            let weight = linear.weight.val();
            let [inputs, outputs] = weight.dims();
            let bias = match &linear.bias {
                Some(bias) => bias.val().try_into_vec_as::<f32>()?,
                None => vec![0.0; outputs],
            };
            Ok(DenseLayer {
                inputs,
                outputs,
                weight: weight.try_into_vec_as::<f32>()?,
                bias,
            })
        })
        .collect::<Result<Vec<_>, TrainerError>>()?;
    let mut metadata = vec![
        ("architecture".to_string(), config.model.architecture()),
        ("config".to_string(), config.to_string()),
    ];
    if let Some(names) = &config.class_names {
        let names = serde_json::Value::from(names.clone());
        metadata.push(("class_names".to_string(), names.to_string()));
    }
    let network = OnnxNetwork {
        layers,
        activation: config.model.activation,
        normalization: config.model.normalization.statistics(),
        metadata,
        producer_version: env!("CARGO_PKG_VERSION").to_string(),
        graph_name: "mlp".to_string(),
    };
    let bytes = encode(&network).map_err(|e| TrainerError::OnnxExport(e.to_string()))?;
    crate::fs::write_atomically(out, &bytes)
}
