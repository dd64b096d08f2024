#!/usr/bin/env python3
"""Runs the same workloads in this crate (`cargo bench --bench compare`) and in PyTorch
(`bench.py`) on this machine, one after the other in one run, and prints both numbers and their
ratio side by side as a Markdown table.

    python3 benches/pytorch/compare.py [--quick] [--python PYTHON] [--install]

`--install` first creates `benches/pytorch/.venv` and installs PyTorch into it with pip;
without it, `--python` (default: that venv's interpreter if present, else `python3`) must
already have PyTorch.
"""

import json
import os
import platform
import subprocess
import sys
import venv
from datetime import date
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
VENV = HERE / ".venv"

NAMES = {
    "lenet5_train_b64": "LeNet-5 training step, batch 64 (samples/s)",
    "lenet5_infer_b64": "LeNet-5 inference, batch 64 (samples/s)",
    "lenet5_infer_b1": "LeNet-5 inference, batch 1 (µs per sample)",
    "cifar_train_b64": "CIFAR-style net training step, batch 64 (samples/s)",
    "gemm_2048": "float32 matrix product 2048³ (GFLOP/s)",
    "gemm_256": "float32 matrix products 256³, one per thread (GFLOP/s)",
}
# FLOPs of one training sample (forward, input gradients, weight gradients).
TRAIN_FLOPS = {"lenet5_train_b64": 2.50e6, "cifar_train_b64": 153.2e6}


def option(name, default=None):
    args = sys.argv[1:]
    return args[args.index(name) + 1] if name in args else default


def lines(command, cwd):
    print("$", " ".join(command), file=sys.stderr)
    out = subprocess.run(command, cwd=cwd, check=True, stdout=subprocess.PIPE, text=True).stdout
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def cpu():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main():
    quick = ["--quick"] if "--quick" in sys.argv else []
    python = option("--python")
    if "--install" in sys.argv:
        venv.create(VENV, with_pip=True)
        subprocess.run([str(VENV / "bin" / "python"), "-m", "pip", "install", "torch", "numpy"], check=True)
    if python is None:
        python = str(VENV / "bin" / "python") if (VENV / "bin" / "python").exists() else "python3"
    ours = lines(["cargo", "bench", "--bench", "compare", "--", *quick], ROOT)
    theirs = lines([python, str(HERE / "bench.py"), *quick], ROOT)
    key = lambda r: (r["workload"], r["threads"])
    pt = {key(r): r["value"] for r in theirs}
    cn = {key(r): r["value"] for r in ours}
    print(f"Measured {date.today()} on {cpu()}, {os.cpu_count()} logical CPUs.\n")
    print("| workload | threads | PyTorch | cnn | cnn / PyTorch |")
    print("|---|---|---|---|---|")
    for workload, name in NAMES.items():
        for threads in (1, 2):
            a, b = pt.get((workload, threads)), cn.get((workload, threads))
            if a is None or b is None:
                continue
            ratio = a / b if workload.endswith("_b1") else b / a
            print(f"| {name} | {threads} | {a:,.1f} | {b:,.1f} | {ratio:.2f}× |")
    print("\nShare of each side's own matrix-product ceiling (the better of its two GEMM rates) reached while training:\n")
    print("| workload | threads | PyTorch | cnn |")
    print("|---|---|---|---|")
    for workload, flops in TRAIN_FLOPS.items():
        for threads in (1, 2):
            cells = []
            for table in (pt, cn):
                rate = table.get((workload, threads))
                ceiling = max(table.get(("gemm_2048", threads), 0), table.get(("gemm_256", threads), 0))
                cells.append(f"{100 * rate * flops / 1e9 / ceiling:.0f} %" if rate and ceiling else "–")
            print(f"| {NAMES[workload].split(' (')[0]} | {threads} | {cells[0]} | {cells[1]} |")
    scaling = [
        (w, cn.get((w, 2)) / cn.get((w, 1))) for w in ("lenet5_train_b64", "cifar_train_b64") if cn.get((w, 1))
    ]
    print("\n2 threads / 1 thread (cnn): " + ", ".join(f"{NAMES[w].split(' (')[0]} {s:.2f}×" for w, s in scaling))


if __name__ == "__main__":
    main()
