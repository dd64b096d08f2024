#!/usr/bin/env python3
"""Writes the PyTorch fixtures of tests/torch_interop.rs into OUT_DIR:

- `torch_lenet5.safetensors`: a LeNet-5 initialised by PyTorch (seed 0) and trained for 50
  steps on the first 500 embedded training digits, saved with `safetensors.torch.save_file`;
- `torch_lenet5_step.safetensors`: the same model after one more SGD step (lr 0.1, no
  momentum) on training digits 500..532, the loss being the mean cross-entropy.

Prints the class probabilities of the first four test digits and the loss of that step, which
the test expects the Rust model to reproduce from the same files.

    python3 scripts/torch_fixture.py data/mnist tests/fixtures
"""

import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

sys.path.insert(0, str(Path(__file__).parent))
from check_weights import lenet5_torch, read_idx, test_set  # noqa: E402


def main() -> None:
    directory, out = Path(sys.argv[1]), Path(sys.argv[2])
    torch.manual_seed(0)
    model = lenet5_torch()
    images = read_idx(directory / "train-images-idx3-ubyte.gz", 16).reshape(-1, 1, 28, 28)[:500]
    labels = read_idx(directory / "train-labels-idx1-ubyte.gz", 8)[:500]
    x = torch.from_numpy((images.astype("float32") / 255.0 - 0.1307) / 0.3081)
    y = torch.from_numpy(labels.astype("int64"))
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    for step in range(50):
        i = slice((step * 50) % 500, (step * 50) % 500 + 50)
        opt.zero_grad()
        logits = model[:-1](x[i])
        torch.nn.functional.cross_entropy(logits, y[i]).backward()
        opt.step()
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(out / "torch_lenet5.safetensors"))
    tx, _ = test_set(directory)
    with torch.no_grad():
        probs = model(torch.from_numpy(tx[:4]))
    torch.set_printoptions(precision=6, sci_mode=False)
    print(probs)
    images = read_idx(directory / "train-images-idx3-ubyte.gz", 16).reshape(-1, 1, 28, 28)[500:532]
    labels = read_idx(directory / "train-labels-idx1-ubyte.gz", 8)[500:532]
    x = torch.from_numpy((images.astype("float32") / 255.0 - 0.1307) / 0.3081)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    opt.zero_grad()
    loss = torch.nn.functional.cross_entropy(model[:-1](x), torch.from_numpy(labels.astype("int64")))
    loss.backward()
    opt.step()
    print(f"loss of the step: {loss.item():.6f}")
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(out / "torch_lenet5_step.safetensors"))


if __name__ == "__main__":
    main()
