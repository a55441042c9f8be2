//! `trainer export --format onnx`: a trained network as an ONNX model, for onnxruntime,
//! TensorRT, OpenVINO and the other runtimes PyTorch users deploy with.

mod builder;
mod graph;
mod proto;

use std::path::Path;

use burn::prelude::*;
use model::{ConvBlock, ConvBlockConfig, Network, NetworkKind, Normalization};

pub(crate) use self::graph::{ConvLayer, DenseLayer, OnnxNetwork, encode};
use super::InteropError;
use crate::config::TrainingConfig;

/// Writes `model`, built from `config`, to `out` as an ONNX model whose input is the
/// pixels scaled to 0..1 as `predict` prepares them, and whose metadata carries the
/// run's config and class names. An existing file is replaced once the new one is
/// complete.
pub fn export_onnx(
    model: &Network,
    config: &TrainingConfig,
    out: &Path,
) -> Result<(), InteropError> {
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
        .collect::<Result<Vec<_>, InteropError>>()?;
    let mut metadata = vec![
        ("architecture".to_string(), config.model.architecture()),
        ("config".to_string(), config.to_string()),
        // The graph standardises the pixels itself.
        super::input_metadata(&config.model.clone().with_normalization(Normalization::Unit)),
    ];
    if let Some(names) = &config.class_names {
        let names = serde_json::Value::from(names.clone());
        metadata.push(("class_names".to_string(), names.to_string()));
    }
    let maps = config
        .model
        .feature_maps()
        .map_err(|e| InteropError::Onnx(format!("model.{e}")))?;
    let shape = config.model.image_shape().unwrap_or([0; 3]);
    let mut in_channels = shape[0];
    let mut convs = Vec::with_capacity(maps.len());
    for ((block, settings), output) in model.conv_blocks().iter().zip(&config.model.conv).zip(maps)
    {
        convs.push(conv_layer(block, settings, in_channels, output)?);
        in_channels = output[0];
    }
    let network = OnnxNetwork {
        convs,
        shape,
        layers,
        activation: config.model.activation,
        normalization: config.model.normalization.per_channel(
            config
                .model
                .image_shape()
                .map_or(1, |[channels, _, _]| channels),
        ),
        metadata,
        producer_version: env!("CARGO_PKG_VERSION").to_string(),
        graph_name: match config.model.kind {
            NetworkKind::Mlp => "mlp".to_string(),
            NetworkKind::Cnn => "cnn".to_string(),
        },
    };
    let bytes = encode(&network).map_err(|e| InteropError::Onnx(e.to_string()))?;
    Ok(crate::fs::write_atomically(out, &bytes)?)
}

/// A block as ONNX runs it: its batch norm, which at inference is a fixed scale and
/// shift per channel, folded into the convolution's weights and bias.
fn conv_layer(
    block: &ConvBlock,
    settings: &ConvBlockConfig,
    in_channels: usize,
    output: [usize; 3],
) -> Result<ConvLayer, InteropError> {
    let weight = block.conv.weight.val();
    let [out_channels, _, kernel, _] = weight.dims();
    let device = weight.device();
    let bias = match &block.conv.bias {
        Some(bias) => bias.val(),
        None => Tensor::zeros([out_channels], &device),
    };
    let (weight, bias) = match &block.norm {
        None => (weight, bias),
        Some(norm) => {
            // y = (conv - mean) / sqrt(var + eps) * gamma + beta
            let scale = norm.gamma.val() / (norm.running_var.value() + norm.epsilon).sqrt();
            let bias = (bias - norm.running_mean.value()) * scale.clone() + norm.beta.val();
            let weight = weight * scale.reshape([out_channels, 1, 1, 1]);
            (weight, bias)
        }
    };
    Ok(ConvLayer {
        weight: weight.try_into_vec_as::<f32>()?,
        bias: bias.try_into_vec_as::<f32>()?,
        in_channels,
        out_channels,
        kernel,
        padding: settings.padding,
        activation: settings.activation,
        pool: settings.pool,
        output,
    })
}
