//! The ONNX graph of a network (`pixels` in, `logits` out, a symbolic `batch`): an
//! MLP's Gemm layers, after a CNN's Conv and MaxPool blocks, built from plain weights
//! so that it depends on no Burn type.

use model::{Activation, Standardization};
use prost::Message;

use super::builder::*;
use super::proto::*;

/// One fully connected layer as Burn stores it: `weight` row-major `[inputs, outputs]`, `bias` `[outputs]`.
#[derive(Debug, Clone)]
pub(crate) struct DenseLayer {
    pub(crate) inputs: usize,
    pub(crate) outputs: usize,
    pub(crate) weight: Vec<f32>,
    pub(crate) bias: Vec<f32>,
}

/// One convolution block for inference: a square convolution (stride 1) whose
/// weights already hold any batch norm, its activation, and a max pooling.
#[derive(Debug, Clone)]
pub(crate) struct ConvLayer {
    /// `[out_channels, in_channels, kernel, kernel]`, row-major.
    pub(crate) weight: Vec<f32>,
    /// `[out_channels]`.
    pub(crate) bias: Vec<f32>,
    pub(crate) in_channels: usize,
    pub(crate) out_channels: usize,
    pub(crate) kernel: usize,
    pub(crate) padding: usize,
    pub(crate) activation: Activation,
    /// Side and stride of the max pooling; 0 for none.
    pub(crate) pool: usize,
    /// `[channels, height, width]` of the block's output, for the graph's shapes.
    pub(crate) output: [usize; 3],
}

/// A network to write: `(pixels - mean) / std` when `normalization` is set, the
/// convolution blocks on the pixels as an image of `shape`, then each dense
/// layer, with `activation` after every one but the last (which yields logits).
#[derive(Debug, Clone)]
pub(crate) struct OnnxNetwork {
    pub(crate) convs: Vec<ConvLayer>,
    /// The `[channels, height, width]` of the image the convolutions see.
    pub(crate) shape: [usize; 3],
    pub(crate) layers: Vec<DenseLayer>,
    pub(crate) activation: Activation,
    /// Each channel's `(mean, std)` of the pixels the network was trained on.
    pub(crate) normalization: Option<Standardization>,
    /// Model-level `metadata_props`, e.g. `("config", json)`, `("class_names", json list)`.
    pub(crate) metadata: Vec<(String, String)>,
    pub(crate) producer_version: String,
    pub(crate) graph_name: String,
}

/// Why a network cannot be written.
#[derive(Debug, thiserror::Error)]
pub(crate) enum OnnxError {
    #[error("the network has no layers")]
    NoLayers,
    #[error("layer fc{layer} has a zero width ({inputs} inputs, {outputs} outputs)")]
    EmptyLayer {
        layer: usize,
        inputs: usize,
        outputs: usize,
    },
    #[error("layer fc{layer} takes {inputs} inputs but the layer before it yields {previous}")]
    WidthMismatch {
        layer: usize,
        inputs: usize,
        previous: usize,
    },
    #[error("layer fc{layer} has {actual} weights, expected {inputs} x {outputs}")]
    WeightLength {
        layer: usize,
        inputs: usize,
        outputs: usize,
        actual: usize,
    },
    #[error("layer fc{layer} has {actual} biases, expected {outputs}")]
    BiasLength {
        layer: usize,
        outputs: usize,
        actual: usize,
    },
    #[error("normalization std must be finite and non-zero, got {0}")]
    InvalidStd(f32),
    #[error(
        "normalization has {channels} channel(s), which do not divide the {features} input features"
    )]
    Standardization { channels: usize, features: usize },
    #[error("conv{layer} has {actual} weights, expected {expected}")]
    ConvWeightLength {
        layer: usize,
        expected: usize,
        actual: usize,
    },
}

/// IR version 8 is the one that goes with opset 17.
const IR_VERSION: i64 = 8;
/// Opset 17 is what current runtimes all load; it has no `Gelu` op, so gelu is spelled out with `Erf`.
const OPSET_VERSION: i64 = 17;
const PRODUCER_NAME: &str = "mnist-burn trainer";
/// Checks `network`, then returns its serialized ONNX `ModelProto`.
pub(crate) fn encode(network: &OnnxNetwork) -> Result<Vec<u8>, OnnxError> {
    validate(network)?;
    let mut graph = GraphBuilder::default();
    let mut current = INPUT_NAME.to_owned();
    // `validate` bounds every width by the length of a weight vector, so the `as i64` casts are lossless.
    let input_width = match network.convs.is_empty() {
        true => network.layers[0].inputs as i64,
        false => network.shape.iter().product::<usize>() as i64,
    };

    if let Some(standardization) = &network.normalization {
        // One scalar each when every channel shares them, else a value per input
        // feature, which `Sub` and `Div` broadcast over the batch.
        match standardization.uniform() {
            Some((mean, std)) => {
                graph.scalar("normalize.mean", mean);
                graph.scalar("normalize.std", std);
            }
            None => {
                let plane = input_width as usize / standardization.mean.len().max(1);
                let (mean, std) = standardization.per_feature(plane);
                graph.tensor("normalize.mean", &[input_width], &mean);
                graph.tensor("normalize.std", &[input_width], &std);
            }
        }
        let centered = "normalize.centered";
        graph.node(
            "Sub",
            "normalize.sub",
            &[&current, "normalize.mean"],
            centered,
            &[input_width],
        );
        current = "normalized".to_owned();
        graph.node(
            "Div",
            "normalize",
            &[centered, "normalize.std"],
            &current,
            &[input_width],
        );
    }

    if !network.convs.is_empty() {
        let [channels, height, width] = network.shape.map(|n| n as i64);
        graph.int64s("image.shape", &[-1, channels, height, width]);
        graph.node(
            "Reshape",
            "image",
            &[&current, "image.shape"],
            "image",
            &[channels, height, width],
        );
        current = "image".to_owned();
    }
    for (index, conv) in network.convs.iter().enumerate() {
        let name = format!("conv{}", index + 1);
        let (weight, bias) = (format!("{name}.weight"), format!("{name}.bias"));
        let (k, padding) = (conv.kernel as i64, conv.padding as i64);
        let [channels, height, width] = conv.output.map(|n| n as i64);
        let (conv_height, conv_width) = match conv.pool as i64 {
            0 => (height, width),
            // The map before pooling: the input plus padding, less the kernel.
            _ => (
                conv_side(network, index, 1, padding, k),
                conv_side(network, index, 2, padding, k),
            ),
        };
        let conv_dims = [channels, conv_height, conv_width];
        graph.tensor(
            &weight,
            &[conv.out_channels as i64, conv.in_channels as i64, k, k],
            &conv.weight,
        );
        graph.tensor(&bias, &[channels], &conv.bias);
        let node = graph.node(
            "Conv",
            &name,
            &[&current, &weight, &bias],
            &name,
            &conv_dims,
        );
        node.attribute.push(ints("kernel_shape", &[k, k]));
        node.attribute.push(ints("pads", &[padding; 4]));
        node.attribute.push(ints("strides", &[1, 1]));
        current = graph.activation(conv.activation, &format!("{name}.act"), &name, &conv_dims);
        if conv.pool > 0 {
            let pool = conv.pool as i64;
            let pooled = format!("{name}.pool");
            let node = graph.node(
                "MaxPool",
                &pooled,
                &[&current],
                &pooled,
                &[channels, height, width],
            );
            node.attribute.push(ints("kernel_shape", &[pool, pool]));
            node.attribute.push(ints("strides", &[pool, pool]));
            current = pooled;
        }
    }
    if !network.convs.is_empty() {
        let features = network.layers[0].inputs as i64;
        let flatten = graph.node("Flatten", "flatten", &[&current], "flatten", &[features]);
        flatten.attribute.push(AttributeProto {
            name: "axis".to_owned(),
            r#type: ATTRIBUTE_TYPE_INT,
            i: Some(1),
            ints: Vec::new(),
        });
        current = "flatten".to_owned();
    }

    let last = network.layers.len();
    for (index, layer) in network.layers.iter().enumerate() {
        let number = index + 1;
        let width = layer.outputs as i64;
        let name = format!("fc{number}");
        let weight = format!("{name}.weight");
        let bias = format!("{name}.bias");
        graph.tensor(&weight, &[layer.inputs as i64, width], &layer.weight);
        graph.tensor(&bias, &[width], &layer.bias);
        let output = if number == last { OUTPUT_NAME } else { &name };
        // Burn keeps the weight as `[inputs, outputs]`; saying `transB = 0` keeps that visible.
        let trans_b = AttributeProto {
            name: "transB".to_owned(),
            r#type: ATTRIBUTE_TYPE_INT,
            i: Some(0),
            ints: Vec::new(),
        };
        graph
            .node("Gemm", &name, &[&current, &weight, &bias], output, &[width])
            .attribute
            .push(trans_b);
        if number < last {
            let activation = network.activation;
            let op = activation_name(activation);
            current = graph.activation(activation, &format!("{op}{number}"), &name, &[width]);
        }
    }

    let model = ModelProto {
        ir_version: IR_VERSION,
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: OPSET_VERSION,
        }],
        producer_name: PRODUCER_NAME.to_owned(),
        producer_version: network.producer_version.clone(),
        graph: Some(GraphProto {
            node: graph.nodes,
            name: network.graph_name.clone(),
            initializer: graph.initializers,
            input: vec![value_info(INPUT_NAME, &[input_width])],
            output: vec![value_info(
                OUTPUT_NAME,
                &[network.layers[last - 1].outputs as i64],
            )],
            value_info: graph.value_info,
        }),
        metadata_props: network
            .metadata
            .iter()
            .map(|(key, value)| StringStringEntryProto {
                key: key.clone(),
                value: value.clone(),
            })
            .collect(),
    };
    Ok(model.encode_to_vec())
}

/// Side `axis` (1 height, 2 width) of conv `index`'s map before pooling.
fn conv_side(network: &OnnxNetwork, index: usize, axis: usize, padding: i64, kernel: i64) -> i64 {
    let input = match index {
        0 => network.shape[axis],
        _ => network.convs[index - 1].output[axis],
    };
    input as i64 + 2 * padding - kernel + 1
}

/// The lower-case name of an activation's op, for node names.
fn activation_name(activation: Activation) -> &'static str {
    match activation {
        Activation::Relu => "relu",
        Activation::Tanh => "tanh",
        Activation::Sigmoid => "sigmoid",
        Activation::Gelu => "gelu",
    }
}

/// Rejects what would otherwise yield a model that loads but fails, or computes garbage, at run time.
fn validate(network: &OnnxNetwork) -> Result<(), OnnxError> {
    if network.layers.is_empty() {
        return Err(OnnxError::NoLayers);
    }
    for (index, conv) in network.convs.iter().enumerate() {
        let expected = conv.out_channels * conv.in_channels * conv.kernel * conv.kernel;
        if conv.weight.len() != expected || conv.bias.len() != conv.out_channels {
            return Err(OnnxError::ConvWeightLength {
                layer: index + 1,
                expected,
                actual: conv.weight.len(),
            });
        }
    }
    if let Some(standardization) = &network.normalization {
        if let Some(&std) = standardization
            .std
            .iter()
            .find(|s| **s == 0.0 || !s.is_finite())
        {
            return Err(OnnxError::InvalidStd(std));
        }
        let features = match network.convs.is_empty() {
            true => network.layers[0].inputs,
            false => network.shape.iter().product(),
        };
        let channels = standardization.mean.len();
        if channels == 0 || channels != standardization.std.len() || features % channels != 0 {
            return Err(OnnxError::Standardization { channels, features });
        }
    }
    let mut previous = None;
    for (index, layer) in network.layers.iter().enumerate() {
        let layer_number = index + 1;
        let (inputs, outputs) = (layer.inputs, layer.outputs);
        if inputs == 0 || outputs == 0 {
            return Err(OnnxError::EmptyLayer {
                layer: layer_number,
                inputs,
                outputs,
            });
        }
        if let Some(previous) = previous.filter(|&previous| previous != inputs) {
            return Err(OnnxError::WidthMismatch {
                layer: layer_number,
                inputs,
                previous,
            });
        }
        if inputs.checked_mul(outputs) != Some(layer.weight.len()) {
            return Err(OnnxError::WeightLength {
                layer: layer_number,
                inputs,
                outputs,
                actual: layer.weight.len(),
            });
        }
        if layer.bias.len() != outputs {
            return Err(OnnxError::BiasLength {
                layer: layer_number,
                outputs,
                actual: layer.bias.len(),
            });
        }
        previous = Some(outputs);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use model::Normalization;

    fn layer(inputs: usize, outputs: usize) -> DenseLayer {
        DenseLayer {
            inputs,
            outputs,
            weight: (0..inputs * outputs).map(|i| i as f32 * 0.01).collect(),
            bias: vec![0.5; outputs],
        }
    }

    fn network(widths: &[usize], activation: Activation) -> OnnxNetwork {
        OnnxNetwork {
            convs: Vec::new(),
            shape: [0; 3],
            layers: widths
                .windows(2)
                .map(|pair| layer(pair[0], pair[1]))
                .collect(),
            activation,
            normalization: Normalization::Mnist.per_channel(1),
            metadata: vec![("class_names".to_owned(), r#"["a","b"]"#.to_owned())],
            producer_version: "0.1.0".to_owned(),
            graph_name: "mlp".to_owned(),
        }
    }

    fn decode(network: &OnnxNetwork) -> ModelProto {
        let bytes = encode(network).expect("valid network");
        ModelProto::decode(bytes.as_slice()).expect("bytes decode back")
    }

    #[test]
    fn rejects_inconsistent_shapes() {
        let mut net = network(&[4, 3, 2], Activation::Relu);
        net.layers[1].inputs = 5;
        assert!(matches!(
            encode(&net),
            Err(OnnxError::WidthMismatch {
                layer: 2,
                inputs: 5,
                previous: 3
            })
        ));

        let mut net = network(&[4, 3, 2], Activation::Relu);
        net.layers[0].weight.pop();
        assert!(matches!(
            encode(&net),
            Err(OnnxError::WeightLength {
                layer: 1,
                actual: 11,
                ..
            })
        ));

        let mut net = network(&[4, 3, 2], Activation::Relu);
        net.layers[1].bias.push(0.0);
        assert!(matches!(
            encode(&net),
            Err(OnnxError::BiasLength {
                layer: 2,
                outputs: 2,
                actual: 3
            })
        ));

        let mut net = network(&[4, 0, 2], Activation::Relu);
        net.layers.truncate(1);
        assert!(matches!(
            encode(&net),
            Err(OnnxError::EmptyLayer { layer: 1, .. })
        ));

        let mut net = network(&[4, 2], Activation::Relu);
        net.normalization = Normalization::Standard {
            mean: 0.5,
            std: 0.0,
        }
        .per_channel(1);
        assert!(matches!(encode(&net), Err(OnnxError::InvalidStd(_))));

        net.layers.clear();
        assert!(matches!(encode(&net), Err(OnnxError::NoLayers)));
    }

    #[test]
    fn relu_graph_decodes_to_the_expected_structure() {
        let model = decode(&network(&[6, 4, 3, 2], Activation::Relu));
        assert_eq!(
            (model.ir_version, model.producer_name.as_str()),
            (IR_VERSION, PRODUCER_NAME)
        );
        assert_eq!(model.opset_import[0].version, OPSET_VERSION);
        assert_eq!(model.metadata_props[0].key, "class_names");
        let graph = model.graph.expect("graph");
        let ops: Vec<&str> = graph
            .node
            .iter()
            .map(|node| node.op_type.as_str())
            .collect();
        assert_eq!(ops, ["Sub", "Div", "Gemm", "Relu", "Gemm", "Relu", "Gemm"]);
        let names: Vec<&str> = graph.node.iter().map(|node| node.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "normalize.sub",
                "normalize",
                "fc1",
                "relu1",
                "fc2",
                "relu2",
                "fc3"
            ]
        );
        assert_eq!(
            graph.node[2].input,
            ["normalized", "fc1.weight", "fc1.bias"]
        );
        assert_eq!(graph.node[6].output, ["logits"]);
        assert_eq!(
            (graph.input[0].name.as_str(), graph.output[0].name.as_str()),
            ("pixels", "logits")
        );
        let declared: Vec<&str> = graph
            .value_info
            .iter()
            .map(|value| value.name.as_str())
            .collect();
        let outputs: Vec<&str> = graph
            .node
            .iter()
            .map(|node| node.output[0].as_str())
            .collect();
        assert_eq!(declared, outputs[..outputs.len() - 1]);
        // mean, std, then weight and bias per layer.
        assert_eq!(graph.initializer.len(), 2 + 2 * 3);
        let fc1 = &graph.initializer[2];
        assert_eq!(
            (fc1.name.as_str(), fc1.dims.as_slice()),
            ("fc1.weight", &[6, 4][..])
        );
        assert_eq!(&fc1.raw_data[4..8], 0.01f32.to_le_bytes());
    }

    #[test]
    fn gelu_is_spelled_out_with_erf() {
        let mut net = network(&[6, 4, 3, 2], Activation::Gelu);
        net.normalization = None;
        let graph = decode(&net).graph.expect("graph");
        let ops: Vec<&str> = graph
            .node
            .iter()
            .map(|node| node.op_type.as_str())
            .collect();
        let gelu = ["Div", "Erf", "Add", "Mul", "Mul"];
        assert_eq!(
            ops,
            [&["Gemm"][..], &gelu, &["Gemm"], &gelu, &["Gemm"]].concat()
        );
        assert_eq!(graph.node[1].input, ["fc1", "gelu.sqrt2"]);
        assert_eq!(graph.node[5].output, ["gelu1"]);
        assert_eq!(graph.node[6].input[0], "gelu1");
        // three shared constants, then weight and bias per layer.
        assert_eq!(graph.initializer.len(), 3 + 2 * 3);
    }
}
