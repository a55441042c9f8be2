#!/usr/bin/env python3
"""The classic PyTorch MNIST tutorial, as written: torchvision datasets.MNIST +
transforms.ToTensor() + DataLoader(batch_size=64, shuffle=True), an MLP
784-64-64-10, CrossEntropyLoss and Adam(lr=0.001). Reads the IDX files offline.

Per-epoch lines go to stderr; the last stdout line is one JSON object
(see bench/README.md).
"""

import time

_T0 = time.time()  # before `import torch`

import atexit
import gzip
import os
import shutil
import tempfile

import torch
from torch import nn
from torch.utils.data import DataLoader, random_split
from torchvision import datasets, transforms

import _common as C


def prepare_torchvision_root(data_dir):
    """torchvision's MNIST reads <root>/MNIST/raw/<name> (decompressed IDX
    files, as its download step leaves them). Build that layout in a temporary
    folder, removed at exit, from the gzip files in data_dir."""
    root = tempfile.mkdtemp(prefix="mnist-torchvision-")
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    raw = os.path.join(root, "MNIST", "raw")
    os.makedirs(raw)
    for name in C.IDX_FILES.values():
        with gzip.open(os.path.join(data_dir, name), "rb") as src, open(
            os.path.join(raw, name[: -len(".gz")]), "wb"
        ) as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
    return root


def evaluate(model, loader):
    model.eval()
    correct = 0
    total = 0
    with torch.no_grad():
        for images, labels in loader:
            pred = model(images).argmax(dim=1)
            correct += (pred == labels).sum().item()
            total += labels.size(0)
    return 100.0 * correct / total


def main():
    args, start = C.start(__doc__.splitlines()[0], _T0)

    t = time.perf_counter()
    root = prepare_torchvision_root(args.data_dir)
    # An artifact of reading the gzip files offline (torchvision's download
    # step would have left them decompressed): kept out of both the data-load
    # and the start-up figures.
    layout_seconds = time.perf_counter() - t
    C.log("layout %s/MNIST/raw (decompressed): %.2fs, not counted"
          % (root, layout_seconds))

    # --- data (timed: constructing the datasets, as the tutorial does) ---
    t = time.perf_counter()
    transform = transforms.ToTensor()
    full_train = datasets.MNIST(root, train=True, download=False, transform=transform)
    test_dataset = datasets.MNIST(root, train=False, download=False, transform=transform)
    train_dataset, val_dataset = random_split(
        full_train, [C.TRAIN_SIZE, C.VALID_SIZE], generator=C.split_generator(args.seed)
    )
    train_loader = DataLoader(train_dataset, batch_size=C.BATCH_SIZE, shuffle=True)
    val_loader = DataLoader(val_dataset, batch_size=C.EVAL_BATCH_SIZE)
    test_loader = DataLoader(test_dataset, batch_size=C.EVAL_BATCH_SIZE)
    data_load_seconds = time.perf_counter() - t
    C.log("data: %d train / %d validation / %d test, %.2fs"
          % (len(train_dataset), len(val_dataset), len(test_dataset), data_load_seconds))

    model = C.Net()
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.001)

    # --- training ---
    startup_to_first_step = None
    epoch_times = []
    for epoch in range(1, args.epochs + 1):
        model.train()
        loss_sum = 0.0
        batches = 0
        t = time.perf_counter()
        for images, labels in train_loader:
            optimizer.zero_grad()
            loss = criterion(model(images), labels)
            loss.backward()
            optimizer.step()
            if startup_to_first_step is None:
                startup_to_first_step = time.time() - start - layout_seconds
            loss_sum += loss.item()
            batches += 1
        epoch_times.append(time.perf_counter() - t)
        val_acc = evaluate(model, val_loader)
        C.log("epoch %d/%d: train loss %.4f, validation accuracy %.2f%%, %.2fs"
              % (epoch, args.epochs, loss_sum / batches, val_acc, epoch_times[-1]))

    # --- evaluation, batch-1 latency, and the result line ---
    C.finish(
        implementation="pytorch-reference",
        epochs=args.epochs,
        model=model,
        evaluate_test=lambda: evaluate(model, test_loader),
        latency_input=test_dataset[0][0].reshape(1, 28 * 28).contiguous(),
        train_images=len(train_dataset),
        test_images=len(test_dataset),
        epoch_times=epoch_times,
        startup_to_first_step=startup_to_first_step,
        data_load_seconds=data_load_seconds,
    )


if __name__ == "__main__":
    main()
