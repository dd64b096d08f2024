#!/usr/bin/env python3
"""Writes the PyTorch fixtures of tests/torch_graphs.rs into OUT_DIR, for the network whose
PyTorch form (the `PYTORCH` constant of `Graph` in that test) is in tests/fixtures/graph_net.py:
concat blocks (one of vectors), a residual block, padded max and average pooling, grouped and
depthwise convolutions, relu6 and a sparsity penalty.

- `graph_init.safetensors`: the state_dict as PyTorch initialises it (seed 0);
- `graph_grads.safetensors`: the gradient of the first training loss (data loss plus the
  sparsity penalty), by parameter name;
- `graph_io.safetensors`: a batch `x` (5 samples), its `labels`, the evaluation-mode
  probabilities `eval_probs` and the training-mode `losses` of the optimizer runs below;
- `graph_sgd.safetensors`: the state_dict after 3 steps of SGD (lr 0.05, momentum 0.9, weight
  decay 0.01 on conv and fc weights only);
- `graph_adam.safetensors`: the state_dict after 3 steps of Adam (lr 0.01) from the start.

    python3 scripts/torch_graph_fixture.py tests/fixtures
"""

import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

from pytorch_text import build
from torch_course_fixture import groups, state


def loss_of(model, x, y, scope):
    logits = model[:-1](x)
    loss = torch.nn.functional.cross_entropy(logits, y)
    sparsity = scope["Sparsity"]
    return loss + sum(m.penalty for m in model.modules() if isinstance(m, sparsity))


def train_runs(source, init, loss, prefix, sgd_lr):
    """3 steps of SGD (learning rate `sgd_lr`, momentum 0.9, weight decay 0.01 on conv and fc
    weights only), then 3 of Adam (lr 0.01), each from the state_dict `init` on a fresh module
    built from `source`, with `loss(module, scope)` as the training loss. Saves each final
    state_dict as `{prefix}_sgd.safetensors` and `{prefix}_adam.safetensors`; returns the 6
    losses."""
    losses = []
    runs = {
        "sgd": lambda m: torch.optim.SGD(groups(m, 0.01), lr=sgd_lr, momentum=0.9),
        "adam": lambda m: torch.optim.Adam(m.parameters(), lr=0.01),
    }
    for name, make in runs.items():
        # A fresh module: one whose Sparsity holds a penalty from a pass cannot be deep-copied.
        scope = {}
        m = build(source, scope)
        m.load_state_dict(init)
        m.train()
        opt = make(m)
        for _ in range(3):
            opt.zero_grad()
            value = loss(m, scope)
            value.backward()
            opt.step()
            losses.append(value.item())
        save_file(state(m), f"{prefix}_{name}.safetensors")
    return losses


def main() -> None:
    out = Path(sys.argv[1])
    source = (out / "graph_net.py").read_text()
    torch.manual_seed(0)
    scope = {}
    model = build(source, scope)
    init = state(model)
    save_file(init, str(out / "graph_init.safetensors"))
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(5, 3, 10, 10, generator=generator)
    y = torch.tensor([0, 1, 2, 3, 1])
    model.eval()
    with torch.no_grad():
        probs = model(x)
    model.train()
    model.zero_grad()
    loss_of(model, x, y, scope).backward()
    grads = {name: p.grad.detach().contiguous().clone() for name, p in model.named_parameters()}
    save_file(grads, str(out / "graph_grads.safetensors"))
    losses = train_runs(source, init, lambda m, scope: loss_of(m, x, y, scope), out / "graph", sgd_lr=0.05)
    io = {"x": x, "labels": y, "eval_probs": probs, "losses": torch.tensor(losses)}
    save_file({k: v.contiguous() for k, v in io.items()}, str(out / "graph_io.safetensors"))
    print("losses:", losses)


if __name__ == "__main__":
    main()
