#!/usr/bin/env python3
"""Evaluates weights saved by the `lenet5` example outside Rust, with PyTorch's semantics.

    python3 scripts/check_weights.py out/lenet5/lenet5.safetensors data/mnist

With PyTorch installed it builds the equivalent `torch.nn.Sequential` (LeNet5::PYTORCH),
loads the file with `load_state_dict(strict=True)` and classifies the test digits. Without
PyTorch it runs the same model in NumPy, written from PyTorch's definitions (NCHW,
cross-correlation with zero padding, conv weights [K, D, FH, FW], linear weights [out, in],
flatten in NCHW order). Either way it prints the accuracy, which must match what the
`lenet5` example printed. The pixels are prepared as the file's metadata says
(`cnn.input.range`, `cnn.input.mean`, `cnn.input.std`: plain JSON values), or with MNIST's
mean and standard deviation for a file that does not say. Needs numpy and safetensors (and
optionally torch).
"""

import gzip
import json
import sys
from pathlib import Path

import numpy as np
from safetensors import safe_open
from safetensors.numpy import load_file

MEAN, STD = 0.1307, 0.3081


def preprocessing(weights: Path) -> tuple[list[float], float, float]:
    """The input range, mean and standard deviation the file names (MNIST's where it does not)."""
    meta = safe_open(str(weights), "np").metadata() or {}
    value = lambda key, default: json.loads(meta[key]) if key in meta else default
    (low, high), mean, std = value("cnn.input.range", [0, 1]), value("cnn.input.mean", [MEAN]), value("cnn.input.std", [STD])
    return [low, high], mean[0], std[0]


def read_idx(path: Path, header: int) -> np.ndarray:
    data = path.read_bytes()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    return np.frombuffer(data[header:], dtype=np.uint8)


def test_set(directory: Path, weights: Path) -> tuple[np.ndarray, np.ndarray]:
    images = read_idx(directory / "t10k-images-idx3-ubyte.gz", 16).reshape(-1, 1, 28, 28)
    labels = read_idx(directory / "t10k-labels-idx1-ubyte.gz", 8)
    (low, high), mean, std = preprocessing(weights)
    x = low + images.astype(np.float32) / 255.0 * (high - low)
    return ((x - mean) / std).astype(np.float32), labels


def lenet5_torch():
    """The equivalent torch.nn.Sequential of LeNet5 (its PYTORCH constant)."""
    import torch

    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 6, kernel_size=(5, 5), stride=(1, 1), padding=(2, 2)),
        torch.nn.ReLU(),
        torch.nn.MaxPool2d(kernel_size=(2, 2), stride=(2, 2)),
        torch.nn.Conv2d(6, 16, kernel_size=(5, 5), stride=(1, 1), padding=(0, 0)),
        torch.nn.ReLU(),
        torch.nn.MaxPool2d(kernel_size=(2, 2), stride=(2, 2)),
        torch.nn.Flatten(),
        torch.nn.Linear(400, 120),
        torch.nn.ReLU(),
        torch.nn.Linear(120, 84),
        torch.nn.ReLU(),
        torch.nn.Linear(84, 10),
        torch.nn.Softmax(dim=1),
    )


def with_torch(weights: Path, x: np.ndarray) -> np.ndarray:
    import torch
    from safetensors.torch import load_file as load_torch

    model = lenet5_torch()
    model.load_state_dict(load_torch(str(weights)), strict=True)
    with torch.no_grad():
        return model(torch.from_numpy(x)).argmax(dim=1).numpy()


def conv2d(x: np.ndarray, w: np.ndarray, b: np.ndarray, pad: int) -> np.ndarray:
    """torch.nn.functional.conv2d with stride 1: cross-correlation over zero-padded NCHW."""
    n, d, h, wd = x.shape
    k, _, fh, fw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    oh, ow = h + 2 * pad - fh + 1, wd + 2 * pad - fw + 1
    cols = np.empty((n, d, fh, fw, oh, ow), dtype=np.float32)
    for i in range(fh):
        for j in range(fw):
            cols[:, :, i, j] = xp[:, :, i : i + oh, j : j + ow]
    return np.einsum("ndijyx,kdij->nkyx", cols, w) + b[None, :, None, None]


def maxpool2(x: np.ndarray) -> np.ndarray:
    n, c, h, w = x.shape
    return x.reshape(n, c, h // 2, 2, w // 2, 2).max(axis=(3, 5))


def with_numpy(weights: Path, x: np.ndarray) -> np.ndarray:
    t = load_file(str(weights))
    relu = lambda v: np.maximum(v, 0)
    x = maxpool2(relu(conv2d(x, t["0.weight"], t["0.bias"], pad=2)))
    x = maxpool2(relu(conv2d(x, t["3.weight"], t["3.bias"], pad=0)))
    x = x.reshape(len(x), -1)  # torch.nn.Flatten on NCHW
    x = relu(x @ t["7.weight"].T + t["7.bias"])
    x = relu(x @ t["9.weight"].T + t["9.bias"])
    return (x @ t["11.weight"].T + t["11.bias"]).argmax(axis=1)


def main() -> None:
    if len(sys.argv) != 3:
        raise SystemExit("usage: check_weights.py WEIGHTS.safetensors MNIST_DIR")
    weights, directory = Path(sys.argv[1]), Path(sys.argv[2])
    x, labels = test_set(directory, weights)
    try:
        import torch  # noqa: F401

        engine, predictions = "PyTorch", with_torch(weights, x)
    except ImportError:
        engine, predictions = "NumPy (PyTorch semantics)", with_numpy(weights, x)
    correct = int((predictions == labels).sum())
    print(f"{engine}: test accuracy {100 * correct / len(labels):.2f} % ({correct} of {len(labels)})")


if __name__ == "__main__":
    main()
