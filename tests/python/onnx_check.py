"""An exported ONNX model run by the real ONNX tools: the checker with full shape
inference, then onnxruntime on the images the Rust test wrote, against its logits.

    onnx_check.py MODEL IMAGES LOGITS BATCH

IMAGES, LOGITS  raw little-endian float32 rows: the pixels as `trainer predict`
                prepares them (0..1) and the logits the trainer computed
BATCH           rows per onnxruntime call

Prints one JSON line: the largest absolute logit difference, the predicted class of
every image, the graph's inputs, outputs, opset and metadata. Exits 1 if the checker
rejects the model.
"""

import json
import sys

import numpy as np
import onnx
import onnxruntime as ort


def dims(value_info):
    return [d.dim_param or d.dim_value for d in value_info.type.tensor_type.shape.dim]


def main(model_path, images_path, logits_path, batch):
    model = onnx.load(model_path)
    onnx.checker.check_model(model, full_check=True)
    (pixels,) = model.graph.input
    (logits,) = model.graph.output
    width = dims(pixels)[1]
    images = np.fromfile(images_path, dtype="<f4").reshape(-1, width)
    expected = np.fromfile(logits_path, dtype="<f4").reshape(len(images), -1)
    session = ort.InferenceSession(model_path, providers=["CPUExecutionProvider"])
    got = np.concatenate(
        [
            session.run([logits.name], {pixels.name: images[start : start + batch]})[0]
            for start in range(0, len(images), batch)
        ]
    )
    print(
        json.dumps(
            {
                "max_abs_diff": float(np.abs(got.astype(np.float64) - expected).max()),
                "predictions": got.argmax(1).tolist(),
                "input": [pixels.name, dims(pixels)],
                "output": [logits.name, dims(logits)],
                "ir_version": model.ir_version,
                "opset": {o.domain: o.version for o in model.opset_import},
                "producer": [model.producer_name, model.producer_version],
                "metadata": {p.key: p.value for p in model.metadata_props},
                "ops": [node.op_type for node in model.graph.node],
            }
        )
    )


if __name__ == "__main__":
    if len(sys.argv) != 5:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]))
