#!/usr/bin/env python3
"""PyTorch's side of the comparison: the workloads of benches/compare.rs, measured the same way
(median samples per second over timed blocks after a warm-up, random data, SGD with momentum
0.9), printed one JSON object per line.

    python3 benches/pytorch/bench.py [--quick]
"""

import json
import statistics
import sys
import time

import torch


def lenet5():
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 6, 5, padding=2), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(6, 16, 5), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Flatten(),
        torch.nn.Linear(400, 120), torch.nn.ReLU(), torch.nn.Linear(120, 84), torch.nn.ReLU(),
        torch.nn.Linear(84, 10),
    )


def cifar():
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 32, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(32, 32, 3, padding=1), torch.nn.ReLU(),
        torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(32, 64, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(64, 64, 3, padding=1), torch.nn.ReLU(),
        torch.nn.MaxPool2d(2),
        torch.nn.Flatten(), torch.nn.Linear(4096, 256), torch.nn.ReLU(), torch.nn.Linear(256, 10),
    )


def median_rate(work, block, blocks, f):
    start, reps = time.perf_counter(), 0
    while time.perf_counter() - start < block:
        f()
        reps += 1
    rates = []
    for _ in range(blocks):
        t = time.perf_counter()
        for _ in range(reps):
            f()
        rates.append(work * reps / (time.perf_counter() - t))
    return statistics.median(rates)


def train(make, shape, block, blocks):
    model = make()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x, y = torch.rand(64, *shape) - 0.5, torch.arange(64) % 10

    def step():
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()

    return median_rate(64, block, blocks, step)


def infer(make, shape, n, block, blocks):
    model = make().eval()
    x = torch.rand(n, *shape) - 0.5

    def run():
        with torch.no_grad():
            torch.softmax(model(x), dim=1).argmax(dim=1)

    return median_rate(n, block, blocks, run)


def gemm(size, block, blocks):
    """One product at a time; for small sizes a batch of one product per thread."""
    count = 1 if size >= 1024 else torch.get_num_threads()
    a, b = torch.rand(count, size, size), torch.rand(size, size)
    return median_rate(2 * count * size**3 / 1e9, block, blocks, lambda: torch.matmul(a, b))


def report(workload, threads, value, unit):
    print(json.dumps({"side": "pytorch", "workload": workload, "threads": threads, "value": round(value, 1), "unit": unit}))
    sys.stdout.flush()


def main():
    quick = "--quick" in sys.argv
    block, blocks = (0.2, 5) if quick else (0.5, 11)
    print(f"PyTorch {torch.__version__}", file=sys.stderr)
    for threads in (1, 2):
        torch.set_num_threads(threads)
        report("lenet5_train_b64", threads, train(lenet5, (1, 28, 28), block, blocks), "samples/s")
        report("lenet5_infer_b64", threads, infer(lenet5, (1, 28, 28), 64, block, blocks), "samples/s")
        report("lenet5_infer_b1", threads, 1e6 / infer(lenet5, (1, 28, 28), 1, block, blocks), "us/sample")
        report("cifar_train_b64", threads, train(cifar, (3, 32, 32), block, blocks), "samples/s")
    # The matrix-product ceilings last, as in `benches/compare.rs`: seconds of dense products
    # can lower the clock the workloads after them run at.
    for threads in (1, 2):
        torch.set_num_threads(threads)
        report("gemm_2048", threads, gemm(2048, max(block, 1.0), min(blocks, 5)), "GFLOP/s")
        report("gemm_256", threads, gemm(256, block, blocks), "GFLOP/s")


if __name__ == "__main__":
    main()
