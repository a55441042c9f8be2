#!/usr/bin/env python3
"""Writes the sample digits in this folder from the MNIST test set (stdlib only).

    python3 docs/digits/make_digits.py [MNIST_DIR]

MNIST_DIR holds t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz
(default: $MNIST_DATA_DIR, else ../shared/data/mnist).
"""
import gzip, os, struct, sys, zlib

NAMES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


def read_idx(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    magic, count = struct.unpack(">II", data[:8])
    if magic == 0x801:
        return count, data[8:]
    rows, cols = struct.unpack(">II", data[8:16])
    return count, rows, cols, data[16:]


def png(path, width, height, pixels):
    """A grayscale 8-bit PNG of `pixels` (row by row)."""
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    rows = b"".join(b"\0" + pixels[y * width:(y + 1) * width] for y in range(height))
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n")
        f.write(chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)))
        f.write(chunk(b"IDAT", zlib.compress(rows, 9)))
        f.write(chunk(b"IEND", b""))


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("MNIST_DATA_DIR", "../shared/data/mnist")
    count, rows, cols, images = read_idx(os.path.join(root, "t10k-images-idx3-ubyte.gz"))
    _, labels = read_idx(os.path.join(root, "t10k-labels-idx1-ubyte.gz"))
    out = os.path.dirname(os.path.abspath(__file__))
    size = rows * cols
    # Test images 0, 1 and 4: a 7, a 2 and a 4, light on dark as MNIST stores them.
    for index in (0, 1, 4):
        pixels = images[index * size:(index + 1) * size]
        name = NAMES[labels[index]]
        png(os.path.join(out, f"{name}.png"), cols, rows, pixels)
        print(f"test image {index} (label {labels[index]}) -> {name}.png")
    # The 7 as a scan or a photo would show it: dark ink on white, four times larger.
    scale = 4
    seven = images[0:size]
    big = bytearray()
    for y in range(rows * scale):
        for x in range(cols * scale):
            big.append(255 - seven[(y // scale) * cols + x // scale])
    png(os.path.join(out, "seven-on-white.png"), cols * scale, rows * scale, bytes(big))
    print("test image 0, inverted and 4x larger -> seven-on-white.png")


if __name__ == "__main__":
    main()
