"""Helpers shared by pytorch_reference.py and pytorch_fast.py.

Each script takes its own top-of-script timestamp before importing this module
(which imports torch), so that import time counts towards startup.
"""

import argparse
import gzip
import json
import math
import os
import resource
import statistics
import sys
import time

import numpy as np
import torch
from torch import nn

HERE = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(HERE)
DEFAULT_DATA_DIR = "../shared/data/mnist"

IDX_FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}

TRAIN_SIZE = 55_000
VALID_SIZE = 5_000
BATCH_SIZE = 64
EVAL_BATCH_SIZE = 1000
EVAL_PASSES = 25
LATENCY_WARMUP = 100
LATENCY_CALLS = 2000

JSON_KEYS = (
    "implementation",
    "epochs",
    "epoch_seconds",
    "train_images_per_second",
    "eval_images_per_second",
    "batch1_latency_median_us",
    "batch1_latency_p99_us",
    "startup_to_first_step_seconds",
    "data_load_seconds",
    "peak_rss_mb",
    "test_accuracy",
    "threads",
)


class Net(nn.Module):
    """The tutorial MLP: 784 -> 64 -> 64 -> 10, ReLU between, logits out."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(28 * 28, 64)
        self.relu1 = nn.ReLU()
        self.fc2 = nn.Linear(64, 64)
        self.relu2 = nn.ReLU()
        self.fc3 = nn.Linear(64, 10)

    def forward(self, x):
        x = x.view(-1, 28 * 28)
        x = self.relu1(self.fc1(x))
        x = self.relu2(self.fc2(x))
        return self.fc3(x)


def parse_args(description):
    p = argparse.ArgumentParser(description=description)
    p.add_argument(
        "--data-dir",
        default=DEFAULT_DATA_DIR,
        help="folder with the gzip IDX files (default: %(default)s; a relative "
        "path not found from the current directory is tried from the repo root)",
    )
    p.add_argument("--epochs", type=int, default=5, help="default: %(default)s")
    p.add_argument("--seed", type=int, default=42, help="default: %(default)s")
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch.set_num_threads(N) (default: torch's own default)",
    )
    args = p.parse_args()
    if args.epochs < 1:
        p.error("--epochs must be at least 1")
    if args.threads is not None and args.threads < 1:
        p.error("--threads must be at least 1")
    args.data_dir = resolve_data_dir(args.data_dir)
    return args


def start(description, top_of_script):
    """Parses the flags and applies the thread count and seed; returns the flags and
    the process's start time."""
    args = parse_args(description)
    started = process_start_time(top_of_script)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    return args, started


def resolve_data_dir(path):
    candidates = [path]
    if not os.path.isabs(path):
        candidates.append(os.path.join(REPO_ROOT, path))
    for c in candidates:
        if all(os.path.isfile(os.path.join(c, f)) for f in IDX_FILES.values()):
            return os.path.abspath(c)
    sys.exit(
        "error: no MNIST gzip IDX files (%s) in %s"
        % (", ".join(IDX_FILES.values()), " or ".join(map(repr, candidates)))
    )


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def process_start_time(top_of_script):
    """Wall-clock time the process started (includes interpreter start-up)
    when psutil is available, else the script's top-of-file timestamp."""
    try:
        import psutil

        return psutil.Process().create_time()
    except Exception:
        return top_of_script


def read_idx_gz(path):
    """Read a gzip IDX file into a numpy array (shape from its header)."""
    with gzip.open(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise ValueError("%s: not an IDX file" % path)
    dtype_code, ndim = data[2], data[3]
    dtypes = {
        0x08: np.uint8,
        0x09: np.int8,
        0x0B: np.dtype(">i2"),
        0x0C: np.dtype(">i4"),
        0x0D: np.dtype(">f4"),
        0x0E: np.dtype(">f8"),
    }
    if dtype_code not in dtypes:
        raise ValueError("%s: unknown IDX type code 0x%02x" % (path, dtype_code))
    dims = tuple(
        int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)
    )
    offset = 4 + 4 * ndim
    dtype = np.dtype(dtypes[dtype_code])
    expected = offset + math.prod(dims) * dtype.itemsize
    if len(data) != expected:
        raise ValueError(
            "%s: %d bytes, header says %d" % (path, len(data), expected)
        )
    return np.frombuffer(data, dtype=dtype, offset=offset).reshape(dims)


def split_generator(seed):
    """Generator for the 55,000/5,000 split; both scripts use the same one,
    so the fast script's randperm split equals the reference's random_split."""
    return torch.Generator().manual_seed(seed)


def batch1_latency_us(model, x):
    """Latency of predicting one image: model(x) under no_grad + argmax.
    Returns (median_us, p99_us) over LATENCY_CALLS calls after warm-up."""
    model.eval()
    samples = []
    with torch.no_grad():
        for _ in range(LATENCY_WARMUP):
            model(x).argmax(dim=1).item()
        for _ in range(LATENCY_CALLS):
            t = time.perf_counter_ns()
            model(x).argmax(dim=1).item()
            samples.append(time.perf_counter_ns() - t)
    samples.sort()
    median = statistics.median(samples) / 1000.0
    p99 = samples[max(0, math.ceil(0.99 * len(samples)) - 1)] / 1000.0
    return median, p99


def peak_rss_mb():
    # ru_maxrss is in KiB on Linux (bytes on macOS).
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if sys.platform == "darwin":
        rss /= 1024
    return rss / 1024.0


def median_or_none(values):
    return statistics.median(values) if values else None


def finish(implementation, epochs, model, evaluate_test, latency_input, train_images,
           test_images, epoch_times, startup_to_first_step, data_load_seconds):
    """Times EVAL_PASSES test-set evaluations and batch-1 latency, then prints the
    result line with every JSON key."""
    eval_times = []
    test_accuracy = None
    for _ in range(EVAL_PASSES):
        t = time.perf_counter()
        accuracy = evaluate_test()
        eval_times.append(time.perf_counter() - t)
        test_accuracy = accuracy if test_accuracy is None else test_accuracy
    eval_seconds = median_or_none(eval_times)
    log("test accuracy %.2f%%, eval pass median %.3fs" % (test_accuracy, eval_seconds))

    lat_median, lat_p99 = batch1_latency_us(model, latency_input)
    log("batch-1 latency: median %.1f us, p99 %.1f us" % (lat_median, lat_p99))

    epoch_seconds = median_or_none(epoch_times)
    emit_result({
        "implementation": implementation,
        "epochs": epochs,
        "epoch_seconds": epoch_seconds,
        "train_images_per_second": train_images / epoch_seconds if epoch_seconds else None,
        "eval_images_per_second": test_images / eval_seconds if eval_seconds else None,
        "batch1_latency_median_us": lat_median,
        "batch1_latency_p99_us": lat_p99,
        "startup_to_first_step_seconds": startup_to_first_step,
        "data_load_seconds": data_load_seconds,
        "peak_rss_mb": peak_rss_mb(),
        "test_accuracy": test_accuracy,
        "threads": torch.get_num_threads(),
    })


def emit_result(result):
    missing = set(JSON_KEYS) - set(result)
    extra = set(result) - set(JSON_KEYS)
    assert not missing and not extra, (missing, extra)
    out = {k: result[k] for k in JSON_KEYS}
    for k, v in out.items():
        if isinstance(v, float) and not math.isfinite(v):
            out[k] = None
    sys.stdout.write(json.dumps(out) + "\n")
    sys.stdout.flush()
