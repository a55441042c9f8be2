#!/usr/bin/env python3
"""configs/mnist-cnn.json in preloaded PyTorch: the same CNN (two 5x5 conv blocks
with batch norm and 2x2 max pooling, then 1568 -> 128 -> 10 with dropout 0.3),
cross-entropy, Adam(lr=0.002) with a per-step cosine decay to 0, batch 64, on the
same 55,000 training images; the data preloaded as one float tensor, as
pytorch_fast.py does.

    pytorch_cnn.py [--data-dir DIR] [--epochs 5] [--seed 1] [--threads N]
    pytorch_cnn.py --check-export FILE   # a `trainer export` of such a run

The second form loads the safetensors file into `Cnn` with load_state_dict (strict),
and prints its test accuracy: what `trainer eval` says of the run it came from.

Per-epoch lines go to stderr; the last stdout line is one JSON object with the keys
of `trainer bench` (evaluation at batch 1000 and batch-1 latency included), so that
`compare.sh` sets it beside `trainer bench --config configs/mnist-cnn.json`.
"""

import time

_T0 = time.time()  # before `import torch`

import argparse
import json
import math
import os

import torch
import torch.nn.functional as F
from torch import nn

import _common as C


class Cnn(nn.Module):
    """configs/mnist-cnn.json as a PyTorch module, named as `trainer export` names its
    weights: convK, bnK, fcK."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 5, padding=2, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.conv2 = nn.Conv2d(16, 32, 5, padding=2, bias=False)
        self.bn2 = nn.BatchNorm2d(32)
        self.fc1 = nn.Linear(32 * 7 * 7, 128)
        self.fc2 = nn.Linear(128, 10)
        self.dropout = nn.Dropout(0.3)

    def forward(self, x):
        # [batch, 784] pixels in 0..1, row by row, as `trainer predict` prepares them
        x = x.view(-1, 1, 28, 28)
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 2)
        x = F.max_pool2d(F.relu(self.bn2(self.conv2(x))), 2)
        x = self.dropout(F.relu(self.fc1(torch.flatten(x, 1))))
        return self.fc2(x)


def load(data_dir, images, labels):
    x = C.read_idx_gz(os.path.join(data_dir, images))
    y = C.read_idx_gz(os.path.join(data_dir, labels))
    x = torch.from_numpy(x.reshape(x.shape[0], -1).copy()).to(torch.float32).div_(255.0)
    return x, torch.from_numpy(y.astype("int64"))


def accuracy(model, x, y):
    model.eval()
    with torch.no_grad():
        correct = sum(
            (model(x[i : i + 1000]).argmax(1) == y[i : i + 1000]).sum().item()
            for i in range(0, x.shape[0], 1000)
        )
    return 100.0 * correct / x.shape[0]


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default=C.DEFAULT_DATA_DIR)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--check-export", metavar="FILE", default=None)
    args = p.parse_args()
    started = C.process_start_time(_T0)
    data_dir = C.resolve_data_dir(args.data_dir)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    f = C.IDX_FILES
    x_test, y_test = load(data_dir, f["test_images"], f["test_labels"])

    if args.check_export:
        from safetensors.torch import load_file

        model = Cnn()
        model.load_state_dict(load_file(args.check_export))
        print(json.dumps({"export": args.check_export, "test_accuracy": accuracy(model, x_test, y_test)}))
        return

    loading = time.perf_counter()
    x_all, y_all = load(data_dir, f["train_images"], f["train_labels"])
    perm = torch.randperm(x_all.shape[0], generator=C.split_generator(42))
    train = perm[: C.TRAIN_SIZE]
    x_train, y_train = x_all[train], y_all[train]
    data_load_seconds = time.perf_counter() - loading
    startup_to_first_step = None

    model = Cnn()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.002)
    steps = args.epochs * math.ceil(x_train.shape[0] / C.BATCH_SIZE)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
    epoch_times = []
    for epoch in range(1, args.epochs + 1):
        model.train()
        t = time.perf_counter()
        order = torch.randperm(x_train.shape[0])
        for i in range(0, x_train.shape[0], C.BATCH_SIZE):
            idx = order[i : i + C.BATCH_SIZE]
            optimizer.zero_grad()
            loss = F.cross_entropy(model(x_train[idx]), y_train[idx])
            loss.backward()
            optimizer.step()
            schedule.step()
            if startup_to_first_step is None:
                startup_to_first_step = time.time() - started
        epoch_times.append(time.perf_counter() - t)
        C.log("epoch %d/%d: last loss %.4f, %.1fs" % (epoch, args.epochs, loss.item(), epoch_times[-1]))
    C.finish(
        implementation="pytorch-cnn",
        epochs=args.epochs,
        model=model,
        evaluate_test=lambda: accuracy(model, x_test, y_test),
        latency_input=x_test[0:1].clone(),
        train_images=x_train.shape[0],
        test_images=x_test.shape[0],
        epoch_times=epoch_times,
        startup_to_first_step=startup_to_first_step,
        data_load_seconds=data_load_seconds,
    )

if __name__ == "__main__":
    main()
