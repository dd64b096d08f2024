"""Builds a PyTorch module from a model's `PYTORCH` text (the `cnn::Network::PYTORCH` constant),
for the parity fixtures in this directory and the side-by-side benchmark
(benches/pytorch/bench.py), so that both evaluate the text the same way."""

import torch


def build(source: str, scope=None) -> torch.nn.Module:
    """The module `source` (a `PYTORCH` constant) defines; `scope` receives its classes."""
    scope = {} if scope is None else scope
    scope["torch"] = torch
    body = source.strip()
    if body.startswith("class "):
        head, expression = body.rsplit("\n\n\n", 1)
        exec(head, scope)
    else:
        expression = body
    return eval(expression, scope)
