//! Building an ONNX graph: nodes with their declared output shapes, float and int64
//! initializers, activations, and the names and type codes every node shares.

use model::Activation;

use super::proto::*;

pub(super) const INPUT_NAME: &str = "pixels";
pub(super) const OUTPUT_NAME: &str = "logits";
pub(super) const BATCH_DIM: &str = "batch";

/// `TensorProto.DataType.FLOAT`.
pub(super) const DATA_TYPE_FLOAT: i32 = 1;
/// `TensorProto.DataType.INT64`.
pub(super) const DATA_TYPE_INT64: i32 = 7;
/// `AttributeProto.AttributeType.INT`.
pub(super) const ATTRIBUTE_TYPE_INT: i32 = 2;
/// `AttributeProto.AttributeType.INTS`.
pub(super) const ATTRIBUTE_TYPE_INTS: i32 = 7;

pub(super) fn ints(name: &str, values: &[i64]) -> AttributeProto {
    AttributeProto {
        name: name.to_owned(),
        r#type: ATTRIBUTE_TYPE_INTS,
        i: None,
        ints: values.to_vec(),
    }
}

/// Collects the graph's nodes, initializers and edge shapes in the order they are made.
#[derive(Debug, Default)]
pub(super) struct GraphBuilder {
    pub(super) nodes: Vec<NodeProto>,
    pub(super) initializers: Vec<TensorProto>,
    pub(super) value_info: Vec<ValueInfoProto>,
    /// Whether gelu's constants are there yet.
    gelu_constants: bool,
}

impl GraphBuilder {
    /// Adds a node with one `[batch, dims...]` output and declares that output in
    /// `value_info` (unless it is the graph output, declared already) so that viewers
    /// and shape inference see it.
    pub(super) fn node(
        &mut self,
        op_type: &str,
        name: &str,
        inputs: &[&str],
        output: &str,
        dims: &[i64],
    ) -> &mut NodeProto {
        if output != OUTPUT_NAME {
            self.value_info.push(value_info(output, dims));
        }
        self.nodes.push(NodeProto {
            input: inputs.iter().map(|&input| input.to_owned()).collect(),
            output: vec![output.to_owned()],
            name: name.to_owned(),
            op_type: op_type.to_owned(),
            attribute: Vec::new(),
        });
        let index = self.nodes.len() - 1;
        &mut self.nodes[index]
    }

    pub(super) fn tensor(&mut self, name: &str, dims: &[i64], values: &[f32]) {
        self.initializers.push(TensorProto {
            dims: dims.to_vec(),
            data_type: DATA_TYPE_FLOAT,
            name: name.to_owned(),
            raw_data: values
                .iter()
                .flat_map(|value| value.to_le_bytes())
                .collect(),
        });
    }

    pub(super) fn int64s(&mut self, name: &str, values: &[i64]) {
        self.initializers.push(TensorProto {
            dims: vec![values.len() as i64],
            data_type: DATA_TYPE_INT64,
            name: name.to_owned(),
            raw_data: values
                .iter()
                .flat_map(|value| value.to_le_bytes())
                .collect(),
        });
    }

    /// A rank-0 initializer, which broadcasts against any batch.
    pub(super) fn scalar(&mut self, name: &str, value: f32) {
        self.tensor(name, &[], &[value]);
    }

    /// Appends `activation`, named `name`, to `input` and returns the name of its output.
    pub(super) fn activation(
        &mut self,
        activation: Activation,
        name: &str,
        input: &str,
        dims: &[i64],
    ) -> String {
        let op_type = match activation {
            Activation::Relu => "Relu",
            Activation::Tanh => "Tanh",
            Activation::Sigmoid => "Sigmoid",
            Activation::Gelu => return self.gelu(name, input, dims),
        };
        self.node(op_type, name, &[input], name, dims);
        name.to_owned()
    }

    /// Exact (erf) gelu, as Burn computes it: `x * (1 + erf(x / sqrt(2))) * 0.5`.
    fn gelu(&mut self, name: &str, input: &str, dims: &[i64]) -> String {
        if !self.gelu_constants {
            self.gelu_constants = true;
            self.scalar("gelu.sqrt2", std::f32::consts::SQRT_2);
            self.scalar("gelu.one", 1.0);
            self.scalar("gelu.half", 0.5);
        }
        let step = |step: &str| format!("{name}.{step}");
        let (scaled, erf, plus_one, product) = (
            step("scaled"),
            step("erf"),
            step("erf_plus_one"),
            step("product"),
        );
        self.node("Div", &step("div"), &[input, "gelu.sqrt2"], &scaled, dims);
        self.node("Erf", &erf, &[&scaled], &erf, dims);
        self.node("Add", &step("add"), &[&erf, "gelu.one"], &plus_one, dims);
        self.node("Mul", &step("mul"), &[input, &plus_one], &product, dims);
        self.node("Mul", name, &[&product, "gelu.half"], name, dims);
        name.to_owned()
    }
}

/// A float32 `[batch, dims...]` value, `batch` left symbolic so any batch size runs.
pub(super) fn value_info(name: &str, dims: &[i64]) -> ValueInfoProto {
    let dim = |value| tensor_shape_proto::Dimension { value: Some(value) };
    ValueInfoProto {
        name: name.to_owned(),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: DATA_TYPE_FLOAT,
                shape: Some(TensorShapeProto {
                    dim: std::iter::once(tensor_shape_proto::dimension::Value::DimParam(
                        BATCH_DIM.to_owned(),
                    ))
                    .chain(
                        dims.iter()
                            .map(|&d| tensor_shape_proto::dimension::Value::DimValue(d)),
                    )
                    .map(dim)
                    .collect(),
                }),
            })),
        }),
    }
}
