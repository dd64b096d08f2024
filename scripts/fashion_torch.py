#!/usr/bin/env python3
"""Trains the `fashion` example's model in PyTorch with the example's recipe, for the README's
side-by-side comparison.

    cargo run --release --example fashion -- --seed 1          # writes out/fashion/fashion_pytorch.py
    python3 scripts/fashion_torch.py out/fashion/fashion_pytorch.py --seed 1 --threads 2

The network is built from the model's own `PYTORCH` text (which the example writes next to its
weights), so the two sides cannot drift. The recipe is the example's defaults: 10 epochs of
batch 64, SGD with momentum 0.9 and weight decay 5e-4, a learning rate of 0.05 decaying to 0
along a cosine step by step, each training image shifted by up to 2 pixels (zero fill), pixels
scaled to [0, 1] and standardised with mean 0.2860 and deviation 0.3530. Prints the test
accuracy after each epoch and the wall time of training, as the example does. Needs torch and
numpy.
"""

import argparse
import gzip
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pytorch_text import build  # noqa: E402

MEAN, STD = 0.2860, 0.3530


def read_idx(path: Path, header: int) -> np.ndarray:
    if not path.exists():
        path = path.with_name(path.name + ".gz")
    data = path.read_bytes()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    return np.frombuffer(data[header:], dtype=np.uint8)


def load(directory: Path, kind: str) -> tuple[torch.Tensor, torch.Tensor]:
    images = read_idx(directory / f"{kind}-images-idx3-ubyte", 16).reshape(-1, 1, 28, 28)
    labels = read_idx(directory / f"{kind}-labels-idx1-ubyte", 8)
    return torch.from_numpy(images.astype(np.float32) / 255.0), torch.from_numpy(labels.astype(np.int64))


def shifted(batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Each image shifted by up to 2 pixels each way, zeros filling in: RandomCrop(28, padding=2)."""
    n = batch.shape[0]
    padded = torch.nn.functional.pad(batch, (2, 2, 2, 2))
    dy = torch.randint(0, 5, (n,), generator=generator)
    dx = torch.randint(0, 5, (n,), generator=generator)
    rows = (dy[:, None] + torch.arange(28)[None, :])[:, :, None]
    cols = (dx[:, None] + torch.arange(28)[None, :])[:, None, :]
    return padded[torch.arange(n)[:, None, None], 0, rows, cols][:, None]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", type=Path, help="the PYTORCH text the example wrote")
    parser.add_argument("--data", type=Path, default=Path("/usr/share/datasets/fashion-mnist"))
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    generator = torch.Generator().manual_seed(args.seed)
    model = build(args.model.read_text())
    # The model ends in a softmax (the example's output layer); PyTorch's recipe trains the
    # logits before it with CrossEntropyLoss, which is the same loss.
    if not isinstance(model, torch.nn.Sequential) or not isinstance(model[-1], torch.nn.Softmax):
        sys.exit("expected a torch.nn.Sequential ending in Softmax")
    logits = model[:-1]
    train_x, train_y = load(args.data, "train")
    test_x, test_y = load(args.data, "t10k")
    test_x = (test_x - MEAN) / STD
    opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, weight_decay=5e-4)
    steps = args.epochs * math.ceil(len(train_y) / args.batch_size)
    loss_fn = torch.nn.CrossEntropyLoss()
    step, started, training = 0, time.time(), 0.0
    for epoch in range(args.epochs):
        epoch_started = time.time()
        model.train()
        order = torch.randperm(len(train_y), generator=generator)
        total = 0.0
        for first in range(0, len(order), args.batch_size):
            idx = order[first : first + args.batch_size]
            x = (shifted(train_x[idx], generator) - MEAN) / STD
            for group in opt.param_groups:
                group["lr"] = 0.5 * args.lr * (1 + math.cos(math.pi * step / steps))
            opt.zero_grad()
            loss = loss_fn(logits(x), train_y[idx])
            loss.backward()
            opt.step()
            step += 1
            total += loss.item() * len(idx)
        training += time.time() - epoch_started
        model.eval()
        with torch.no_grad():
            correct = sum(
                (model(test_x[i : i + 250]).argmax(1) == test_y[i : i + 250]).sum().item()
                for i in range(0, len(test_y), 250)
            )
        print(
            f"epoch {epoch + 1:>2}/{args.epochs}  train loss {total / len(train_y):.4f}  "
            f"test accuracy {100 * correct / len(test_y):.2f} %  ({time.time() - started:.1f} s)",
            flush=True,
        )
    print(
        f"PyTorch {torch.__version__}, {args.threads} threads: test accuracy {100 * correct / len(test_y):.2f} % "
        f"after {args.epochs} epochs: {training:.1f} s of training ({time.time() - started:.1f} s with the evaluations)"
    )


if __name__ == "__main__":
    main()
