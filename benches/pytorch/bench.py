#!/usr/bin/env python3
"""PyTorch's side of the comparison: the workloads of benches/compare.rs, measured the same way
(median rate over timed blocks after a warm-up, random data, SGD with learning rate 0.01 and
momentum 0.9), printed one JSON object per line.

Each network is built from its model's own `PYTORCH` text (the `cnn::Network::PYTORCH` constant),
as `cargo bench --bench compare -- --models PATH` writes them, so that both sides always run the
same layers. The matrix-product ceilings need no models file.

    cargo bench --bench compare -- --models /tmp/models.json
    python3 benches/pytorch/bench.py --models /tmp/models.json [--quick] [--only W1,W2]
        [--threads 1,2] [--dry]

`--dry` builds every model, checks its parameter count and output width against the models file,
runs one training step (or prediction) and exits without timing anything.
"""

import json
import math
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent.parent / "scripts"))
from options import option  # noqa: E402
from pytorch_text import build  # noqa: E402

CEILINGS = ("gemm_2048", "gemm_256")


def logits(model):
    """The model without its final softmax: cross-entropy takes the logits."""
    if not isinstance(model, torch.nn.Sequential) or not isinstance(model[-1], torch.nn.Softmax):
        raise SystemExit(f"bench.py: expected a Sequential ending in Softmax, found {type(model[-1]).__name__}")
    return model[:-1]


def median_rate(work, block, blocks, f):
    start, reps = time.perf_counter(), 0
    while time.perf_counter() - start < block:
        f()
        reps += 1
    reps = max(reps, 1)
    rates = []
    for _ in range(blocks):
        t = time.perf_counter()
        for _ in range(reps):
            f()
        rates.append(work * reps / (time.perf_counter() - t))
    return statistics.median(rates)


def train_step(spec):
    """One training step of the model `spec` describes, as the Rust side takes it: batch of
    random inputs in [-0.5, 0.5), labels i % classes, cross-entropy on the logits, SGD (lr 0.01,
    momentum 0.9), in training mode (dropout active, batch statistics)."""
    model = build(spec["pytorch"]).train()
    head = logits(model)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    n = spec["batch"]
    x, y = torch.rand(n, *spec["input"]) - 0.5, torch.arange(n) % spec["classes"]

    def step():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(head(x), y)
        loss.backward()
        opt.step()
        return loss

    return model, step


def prediction(spec):
    """Predicted classes of a batch, in evaluation mode."""
    model = build(spec["pytorch"]).eval()
    x = torch.rand(spec["batch"], *spec["input"]) - 0.5

    def run():
        with torch.no_grad():
            return model(x).argmax(dim=1)

    return model, run


def measure(spec, block, blocks):
    _, f = (train_step if spec["task"] == "train" else prediction)(spec)
    rate = median_rate(spec["batch"], block, blocks, f)
    return 1e6 / rate if spec["unit"] == "us/sample" else rate


def check(spec):
    """Builds the model, compares it with the models file and runs it once."""
    model, f = (train_step if spec["task"] == "train" else prediction)(spec)
    params = sum(p.numel() for p in model.parameters())
    if params != spec["params"]:
        raise SystemExit(f"bench.py: {spec['workload']}: {params} parameters in PyTorch, {spec['params']} in cnn")
    with torch.no_grad():
        width = model.eval()(torch.rand(2, *spec["input"]) - 0.5).shape
    if tuple(width) != (2, spec["classes"]):
        raise SystemExit(f"bench.py: {spec['workload']}: output {tuple(width)}, expected (2, {spec['classes']})")
    model.train(spec["task"] == "train")
    out = f()
    if spec["task"] == "train" and not math.isfinite(out.item()):
        raise SystemExit(f"bench.py: {spec['workload']}: loss {out.item()}")
    print(f"{spec['workload']}: {spec['model']} builds from its PYTORCH text, {params:,} parameters, "
          f"input {tuple(spec['input'])}, {spec['classes']} classes, one {spec['task']} pass ran", file=sys.stderr)


def gemm(size, block, blocks):
    """One product at a time; for small sizes a batch of one product per thread."""
    count = 1 if size >= 1024 else torch.get_num_threads()
    a, b = torch.rand(count, size, size), torch.rand(size, size)
    return median_rate(2 * count * size**3 / 1e9, block, blocks, lambda: torch.matmul(a, b))


def report(workload, threads, value, unit):
    print(json.dumps({"side": "pytorch", "workload": workload, "threads": threads, "value": round(value, 1), "unit": unit}))
    sys.stdout.flush()


def main():
    known = {"--quick", "--dry", "--models", "--only", "--threads"}
    for arg in sys.argv[1:]:
        if arg.startswith("--") and arg not in known:
            raise SystemExit(f"bench.py: unknown option {arg} ({', '.join(sorted(known))})")
    quick = "--quick" in sys.argv
    block, blocks = (0.2, 5) if quick else (0.5, 11)
    path = option("--models")
    specs = json.load(open(path))["models"] if path else []
    only = option("--only")
    names = [s["workload"] for s in specs] + list(CEILINGS)
    if only is not None:
        only = [w.strip() for w in only.split(",")]
        for w in only:
            if w not in names:
                hint = "" if path else " (the networks need --models PATH)"
                raise SystemExit(f"bench.py: unknown workload {w}{hint}")
        specs = [s for s in specs if s["workload"] in only]
    ceilings = [w for w in CEILINGS if only is None or w in only]
    threads = [int(t) for t in option("--threads", "1,2").split(",")]
    print(f"PyTorch {torch.__version__}", file=sys.stderr)
    if "--dry" in sys.argv:
        torch.set_num_threads(threads[0])
        for spec in specs:
            check(spec)
        return
    for t in threads:
        torch.set_num_threads(t)
        for spec in specs:
            report(spec["workload"], t, measure(spec, block, blocks), spec["unit"])
    # The matrix-product ceilings last, as in `benches/compare.rs`: seconds of dense products
    # can lower the clock the workloads after them run at.
    for t in threads:
        torch.set_num_threads(t)
        if "gemm_2048" in ceilings:
            report("gemm_2048", t, gemm(2048, max(block, 1.0), min(blocks, 5)), "GFLOP/s")
        if "gemm_256" in ceilings:
            report("gemm_256", t, gemm(256, block, blocks), "GFLOP/s")


if __name__ == "__main__":
    main()
