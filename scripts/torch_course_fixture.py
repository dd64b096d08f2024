#!/usr/bin/env python3
"""Writes the PyTorch fixtures of tests/torch_course.rs into OUT_DIR, for the network whose
PyTorch form (the `PYTORCH` constant of `Course` in that test) is in tests/fixtures/course_net.py:
batch normalisation, leaky ReLU, tanh, sigmoid, residual blocks with and without projection,
local response normalisation, average and L2 pooling.

- `course_init.safetensors`: the state_dict as PyTorch initialises it (seed 0);
- `course_io.safetensors`: a batch `x` (6 samples), its `labels`, the evaluation-mode
  probabilities `eval_probs` and the training-mode `losses` of the optimizer runs below;
- `course_sgd.safetensors`: the state_dict after 2 steps of SGD (lr 0.05, momentum 0.9, Nesterov,
  weight decay 0.01 on conv and fc weights only) in training mode;
- `course_adam.safetensors`: the state_dict after 3 steps of Adam (lr 0.01) from the start;
- `course_adamw.safetensors`: the state_dict after 3 steps of AdamW (lr 0.01, weight decay 0.1 on
  conv and fc weights only) from the start.

    python3 scripts/torch_course_fixture.py tests/fixtures
"""

import copy
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

from pytorch_text import build


def groups(model: torch.nn.Module, decay: float):
    """Weight decay on the weights of convolutions and linear layers only, as the Rust model marks them."""
    decayed, other = [], []
    for module in model.modules():
        for name, p in module.named_parameters(recurse=False):
            is_weight = name == "weight" and isinstance(module, (torch.nn.Conv2d, torch.nn.Linear))
            (decayed if is_weight else other).append(p)
    return [{"params": decayed, "weight_decay": decay}, {"params": other, "weight_decay": 0.0}]


def state(model: torch.nn.Module):
    return {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}


def run(model, opt, x, y, steps):
    model.train()
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        logits = model[:-1](x)
        loss = torch.nn.functional.cross_entropy(logits, y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def main() -> None:
    out = Path(sys.argv[1])
    source = (out / "course_net.py").read_text()
    torch.manual_seed(0)
    model = build(source)
    init = state(model)
    save_file(init, str(out / "course_init.safetensors"))
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(6, 3, 12, 12, generator=generator)
    y = torch.tensor([0, 1, 2, 3, 4, 2])
    model.eval()
    with torch.no_grad():
        probs = model(x)
    losses = []
    runs = {
        "sgd": (2, lambda m: torch.optim.SGD(groups(m, 0.01), lr=0.05, momentum=0.9, nesterov=True)),
        "adam": (3, lambda m: torch.optim.Adam(m.parameters(), lr=0.01)),
        "adamw": (3, lambda m: torch.optim.AdamW(groups(m, 0.1), lr=0.01)),
    }
    for name, (steps, make) in runs.items():
        m = copy.deepcopy(model)
        m.load_state_dict(init)
        losses += run(m, make(m), x, y, steps)
        save_file(state(m), str(out / f"course_{name}.safetensors"))
    io = {"x": x, "labels": y, "eval_probs": probs, "losses": torch.tensor(losses)}
    save_file({k: v.contiguous() for k, v in io.items()}, str(out / "course_io.safetensors"))
    print("losses:", losses)


if __name__ == "__main__":
    main()
