#!/usr/bin/env python3
"""The strongest fair PyTorch baseline for the same task: the same MLP
784-64-64-10, CrossEntropyLoss and Adam(lr=0.001), batch 64, but the whole
dataset is preloaded once as one float tensor (gzip IDX files read with numpy,
/255) and each epoch's batches are slices of a torch.randperm index: no
DataLoader, no per-sample transforms.

Per-epoch lines go to stderr; the last stdout line is one JSON object
(see bench/README.md).
"""

import time

_T0 = time.time()  # before `import torch`

import os

import torch
from torch import nn

import _common as C


def load_u8(data_dir, images_file, labels_file):
    """gzip IDX -> (uint8 [N, 784], int64 [N]) tensors."""
    images = C.read_idx_gz(os.path.join(data_dir, images_file))
    labels = C.read_idx_gz(os.path.join(data_dir, labels_file))
    if images.shape[0] != labels.shape[0]:
        raise ValueError("%s and %s disagree on the item count" % (images_file, labels_file))
    x = torch.from_numpy(images.reshape(images.shape[0], -1).copy())
    y = torch.from_numpy(labels.astype("int64"))
    return x, y


def to_float(x_u8):
    """uint8 pixels -> float32 in [0, 1], one contiguous tensor."""
    return x_u8.to(torch.float32).div_(255.0)


def evaluate(model, x, y, batch_size=C.EVAL_BATCH_SIZE):
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, x.shape[0], batch_size):
            pred = model(x[i : i + batch_size]).argmax(dim=1)
            correct += (pred == y[i : i + batch_size]).sum().item()
    return 100.0 * correct / x.shape[0]


def main():
    args, start = C.start(__doc__.splitlines()[0], _T0)

    # --- data (timed: gzip IDX -> float tensors, split materialised) ---
    t = time.perf_counter()
    f = C.IDX_FILES
    x_all, y_all = load_u8(args.data_dir, f["train_images"], f["train_labels"])
    x_test, y_test = load_u8(args.data_dir, f["test_images"], f["test_labels"])
    # Same permutation as random_split(..., [55000, 5000], generator) in the
    # reference script, so both train on the same 55,000 images. Split the
    # uint8 pixels first, then convert each part once to float (/255).
    perm = torch.randperm(x_all.shape[0], generator=C.split_generator(args.seed))
    train_idx, val_idx = perm[: C.TRAIN_SIZE], perm[C.TRAIN_SIZE : C.TRAIN_SIZE + C.VALID_SIZE]
    x_train, y_train = to_float(x_all[train_idx]), y_all[train_idx]
    x_val, y_val = to_float(x_all[val_idx]), y_all[val_idx]
    x_test = to_float(x_test)
    del x_all, y_all
    data_load_seconds = time.perf_counter() - t
    C.log("data: %d train / %d validation / %d test, %.2fs"
          % (x_train.shape[0], x_val.shape[0], x_test.shape[0], data_load_seconds))

    model = C.Net()
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.001)

    # --- training ---
    n = x_train.shape[0]
    startup_to_first_step = None
    epoch_times = []
    for epoch in range(1, args.epochs + 1):
        model.train()
        loss_sum = 0.0
        batches = 0
        t = time.perf_counter()
        order = torch.randperm(n)
        for i in range(0, n, C.BATCH_SIZE):
            idx = order[i : i + C.BATCH_SIZE]
            images, labels = x_train[idx], y_train[idx]
            optimizer.zero_grad()
            loss = criterion(model(images), labels)
            loss.backward()
            optimizer.step()
            if startup_to_first_step is None:
                startup_to_first_step = time.time() - start
            loss_sum += loss.item()
            batches += 1
        epoch_times.append(time.perf_counter() - t)
        val_acc = evaluate(model, x_val, y_val)
        C.log("epoch %d/%d: train loss %.4f, validation accuracy %.2f%%, %.2fs"
              % (epoch, args.epochs, loss_sum / batches, val_acc, epoch_times[-1]))

    # --- evaluation, batch-1 latency, and the result line ---
    C.finish(
        implementation="pytorch-fast",
        epochs=args.epochs,
        model=model,
        evaluate_test=lambda: evaluate(model, x_test, y_test),
        latency_input=x_test[0:1].clone(),
        train_images=n,
        test_images=x_test.shape[0],
        epoch_times=epoch_times,
        startup_to_first_step=startup_to_first_step,
        data_load_seconds=data_load_seconds,
    )


if __name__ == "__main__":
    main()
