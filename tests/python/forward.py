"""The PyTorch tutorial's Net, without PyTorch: its forward pass in numpy on the
weights `trainer export` writes, compared with the logits Rust computed.

    forward.py WEIGHTS CASES REWRITTEN

WEIGHTS  safetensors state dict from `trainer export` (fc1.weight [out, in], ...)
CASES    JSON {"images": [[784 floats]], "logits": [[10 floats]]} written by the Rust test
REWRITTEN  path prefix: the same state dict is written back as REWRITTEN.safetensors
           (numpy + safetensors) and REWRITTEN.pt (the zip layout of torch.save), for
           `trainer import` to read

Prints one JSON line: the tensor names and shapes, the largest absolute difference
between these logits and Rust's, and the predicted class of every image. Exits 1 if
the weights do not have the layout PyTorch's nn.Linear gives them.
"""

import collections
import io
import json
import pickle
import sys
import types
import zipfile

import numpy as np
from safetensors.numpy import load_file, save_file


def layers(state):
    """The Linear layers' numbers in forward order: fc1, fc2, ..."""
    numbers = sorted({int(name.split(".")[0][2:]) for name in state})
    if numbers != list(range(1, len(numbers) + 1)):
        raise ValueError(f"layers are not fc1..fcN: {sorted(state)}")
    return numbers


def forward(state, images):
    """Net.forward: Linear, ReLU, ..., Linear. In float64, so the comparison measures
    Rust's float32 error rather than numpy's."""
    x = images.astype(np.float64)
    numbers = layers(state)
    for n in numbers:
        weight, bias = state[f"fc{n}.weight"], state[f"fc{n}.bias"]
        # nn.Linear keeps its weight as [out_features, in_features] and computes x W^T + b.
        if weight.ndim != 2 or bias.shape != (weight.shape[0],) or weight.shape[1] != x.shape[1]:
            raise ValueError(f"fc{n}: weight {weight.shape} and bias {bias.shape} do not take {x.shape[1]} inputs")
        x = x @ weight.astype(np.float64).T + bias.astype(np.float64)
        if n != numbers[-1]:
            x = np.maximum(x, 0.0)
    return x


def save_pt(state, path):
    """Writes `state` as torch.save(state_dict, path) would, without torch: a zip
    holding data.pkl (pickle protocol 2 of an OrderedDict of tensors, each rebuilt by
    torch._utils._rebuild_tensor_v2 from a storage referenced by persistent id) and
    one raw little-endian entry per storage under data/."""
    torch = types.ModuleType("torch")
    utils = types.ModuleType("torch._utils")

    class FloatStorage:
        pass

    def _rebuild_tensor_v2(*args):
        raise NotImplementedError

    # Pickle refers to functions and classes by module and name.
    FloatStorage.__module__, FloatStorage.__qualname__ = "torch", "FloatStorage"
    _rebuild_tensor_v2.__module__, _rebuild_tensor_v2.__qualname__ = "torch._utils", "_rebuild_tensor_v2"
    torch.FloatStorage = FloatStorage
    utils._rebuild_tensor_v2 = _rebuild_tensor_v2

    class Storage:
        def __init__(self, key, numel):
            self.key, self.numel = key, numel

    class Tensor:
        def __init__(self, key, array):
            self.key, self.array = key, array

        def __reduce__(self):
            shape = self.array.shape
            stride = tuple(s // self.array.itemsize for s in self.array.strides)
            storage = Storage(self.key, self.array.size)
            return (_rebuild_tensor_v2, (storage, 0, shape, stride, False, collections.OrderedDict()))

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj):
            if isinstance(obj, Storage):
                return ("storage", FloatStorage, obj.key, "cpu", obj.numel)
            return None

    saved = {name: sys.modules.get(name) for name in ("torch", "torch._utils")}
    sys.modules.update({"torch": torch, "torch._utils": utils})
    try:
        arrays = {name: np.ascontiguousarray(value, dtype="<f4") for name, value in state.items()}
        tensors = collections.OrderedDict(
            (name, Tensor(str(key), array)) for key, (name, array) in enumerate(arrays.items())
        )
        pickled = io.BytesIO()
        Pickler(pickled, protocol=2).dump(tensors)
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module

    root = "archive"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr(f"{root}/data.pkl", pickled.getvalue())
        archive.writestr(f"{root}/byteorder", "little")
        for key, array in enumerate(arrays.values()):
            archive.writestr(f"{root}/data/{key}", array.tobytes())
        archive.writestr(f"{root}/version", "3\n")


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    weights, cases, rewritten = sys.argv[1:]
    state = load_file(weights)
    with open(cases) as file:
        case = json.load(file)
    images = np.array(case["images"], dtype=np.float32)
    rust_logits = np.array(case["logits"], dtype=np.float64)

    logits = forward(state, images)
    difference = float(np.max(np.abs(logits - rust_logits)))

    # What PyTorch would save after loading these weights: the same tensors, written
    # by code that is not Burn.
    plain = {name: np.ascontiguousarray(value, dtype=np.float32) for name, value in state.items()}
    save_file(plain, f"{rewritten}.safetensors")
    save_pt(plain, f"{rewritten}.pt")

    print(json.dumps({
        "tensors": {name: list(value.shape) for name, value in sorted(state.items())},
        "dtypes": sorted({str(value.dtype) for value in state.values()}),
        "max_abs_diff": difference,
        "predictions": [int(p) for p in np.argmax(logits, axis=1)],
    }))


if __name__ == "__main__":
    main()
