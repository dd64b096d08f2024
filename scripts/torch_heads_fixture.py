#!/usr/bin/env python3
"""Writes the PyTorch fixtures of tests/torch_heads.rs into OUT_DIR, for the multi-task network
whose PyTorch form (the `PYTORCH` constant of `Tasks` in that test) is in
tests/fixtures/heads_net.py: a trunk with a grouped residual block, and three heads trained with
cross-entropy (`digit`), binary cross-entropy with weight 0.5 and a sparsity penalty (`flags`) and
the mean squared error with weight 2 (`size`).

- `heads_init.safetensors`: the state_dict as PyTorch initialises it (seed 0);
- `heads_grads.safetensors`: the gradient of the first training loss, by parameter name;
- `heads_io.safetensors`: a batch `x` (5 samples), its targets `digits`, `flags` and `sizes`, each
  head's evaluation-mode outputs `eval_digit`, `eval_flags`, `eval_size`, and the training-mode
  `losses` of the optimizer runs below;
- `heads_sgd.safetensors`: the state_dict after 3 steps of SGD (lr 0.01, momentum 0.9, weight
  decay 0.01 on conv and fc weights only);
- `heads_adam.safetensors`: the state_dict after 3 steps of Adam (lr 0.01) from the start.

The training loss is the weighted sum of the heads' losses, each computed from the head's output
before its softmax or sigmoid, plus the penalties the `Sparsity` modules recorded:

    python3 scripts/torch_heads_fixture.py tests/fixtures
"""

import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from pytorch_text import build
from torch_course_fixture import state
from torch_graph_fixture import train_runs

# Each head: its name, its loss and its weight, as the Rust model declares them.
HEADS = [("digit", "cross_entropy", 1.0), ("flags", "bce", 0.5), ("size", "mse", 2.0)]


def loss_of(model, x, targets, scope):
    trunk, heads = model[:-1], model[-1]
    features = trunk(x)
    total = 0.0
    for (name, loss, weight), target in zip(HEADS, targets):
        head = getattr(heads, name)
        if loss == "cross_entropy":
            total = total + weight * F.cross_entropy(head[:-1](features), target)
        elif loss == "bce":
            total = total + weight * F.binary_cross_entropy_with_logits(head[:-1](features), target)
        else:
            total = total + weight * F.mse_loss(head(features), target)
    sparsity = scope["Sparsity"]
    return total + sum(m.penalty for m in model.modules() if isinstance(m, sparsity))


def main() -> None:
    out = Path(sys.argv[1])
    source = (out / "heads_net.py").read_text()
    torch.manual_seed(0)
    scope = {}
    model = build(source, scope)
    init = state(model)
    save_file(init, str(out / "heads_init.safetensors"))
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(5, 2, 8, 8, generator=generator)
    digits = torch.tensor([0, 4, 2, 3, 1])
    flags = (torch.rand(5, 3, generator=generator) > 0.5).float()
    sizes = torch.randn(5, 2, generator=generator)
    targets = (digits, flags, sizes)
    model.eval()
    with torch.no_grad():
        outputs = model(x)
    model.train()
    model.zero_grad()
    loss_of(model, x, targets, scope).backward()
    grads = {name: p.grad.detach().contiguous().clone() for name, p in model.named_parameters()}
    save_file(grads, str(out / "heads_grads.safetensors"))
    losses = train_runs(source, init, lambda m, scope: loss_of(m, x, targets, scope), out / "heads", sgd_lr=0.01)
    io = {"x": x, "digits": digits, "flags": flags, "sizes": sizes, "losses": torch.tensor(losses)}
    for (name, _, _), values in zip(HEADS, outputs):
        io[f"eval_{name}"] = values
    save_file({k: v.contiguous() for k, v in io.items()}, str(out / "heads_io.safetensors"))
    print("losses:", losses)


if __name__ == "__main__":
    main()
