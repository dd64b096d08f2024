#!/usr/bin/env python3
"""Runs the same workloads in this crate (`cargo bench --bench compare`) and in PyTorch
(`bench.py`) on this machine, in interleaved rounds, and prints a Markdown table of both sides'
median rates, the median of the per-round ratios, and the share of the machine's matrix-product
rate each side reaches while training.

    python3 benches/pytorch/compare.py [--quick] [--runs N] [--only W1,W2] [--threads 1,2]
        [--avx2] [--python PYTHON] [--install] [--dry]

- The models: `cargo bench --bench compare -- --models FILE` writes every measured model's
  `PYTORCH` text, input shape, classes and FLOPs; `bench.py` builds PyTorch's networks from it.
- `--runs N` (default 5): N rounds of cnn then PyTorch (cnn, PyTorch, cnn, PyTorch, ...), each
  running the whole workload set once; a slow spell of the machine then lowers one round of both
  sides rather than one side.
- `--quick`: shorter timed blocks on both sides.
- `--only`: only these workloads (`cargo bench --bench compare -- --list` names them); `gemm_256`
  is added when a training workload is chosen, as the shares are taken against it.
- `--threads`: the thread counts (default: `CNN_THREADS`, else `1,2`).
- `--avx2`: both sides restricted to AVX2 on a processor with AVX-512: this crate's GEMM by
  `CNN_GEMM=avx2`, PyTorch by `ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2
  MKL_ENABLE_INSTRUCTIONS=AVX2`, as a processor without AVX-512 would run them.
- `--dry`: builds every PyTorch model from its text, checks it against the models file, runs it
  once and stops.
- `--install` first creates `benches/pytorch/.venv` and installs PyTorch into it with pip;
  without it, `--python` (default: that venv's interpreter if present, else `python3`) must
  already have PyTorch.

`cargo` runs with this process's environment, `CARGO_TARGET_DIR` included.
"""

import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import venv
from datetime import date
from pathlib import Path

from options import option

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
VENV = HERE / ".venv"

LABELS = {"LeNet5": "LeNet-5", "CifarNet": "CIFAR-style net"}
CEILINGS = {
    "gemm_2048": "float32 matrix product 2048³ (GFLOP/s)",
    "gemm_256": "float32 matrix products 256³, one per thread (GFLOP/s)",
}


def run(command, env=None):
    """Runs `command` in the repository, with `env` added to this process's environment;
    returns its JSON lines and its standard error, which also goes on to ours as it comes."""
    print("$", *(f"{k}={v}" for k, v in (env or {}).items()), " ".join(command), file=sys.stderr)
    process = subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})}
    )
    err = []

    def forward():
        for line in process.stderr:
            err.append(line)
            sys.stderr.write(line)

    thread = threading.Thread(target=forward)
    thread.start()
    out = process.stdout.read()
    thread.join()
    if process.wait() != 0:
        raise SystemExit(f"compare.py: {command[0]} failed with status {process.returncode}")
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")], "".join(err)


def found(pattern, text, default="unknown"):
    match = re.search(pattern, text, re.MULTILINE)
    return match.group(1).strip() if match else default


def cpu():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def name(spec):
    label = LABELS.get(spec["model"], spec["model"])
    task = "training step" if spec["task"] == "train" else "inference"
    unit = "µs per sample" if spec["unit"] == "us/sample" else spec["unit"]
    return f"{label} {task}, batch {spec['batch']} ({unit})"


def median(values):
    return statistics.median(values) if values else None


def main():
    flags, valued = {"--quick", "--install", "--dry", "--avx2"}, {"--runs", "--only", "--threads", "--python"}
    args = sys.argv[1:]
    for i, arg in enumerate(args):
        if arg.startswith("--") and arg not in flags | valued and not (i and args[i - 1] in valued):
            raise SystemExit(f"compare.py: unknown option {arg} ({', '.join(sorted(flags | valued))})")
    quick = ["--quick"] if "--quick" in sys.argv else []
    avx2 = "--avx2" in sys.argv
    cnn_env = {"CNN_GEMM": "avx2"} if avx2 else {}
    pytorch_env = (
        {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"} if avx2 else {}
    )
    runs = int(option("--runs", "5"))
    if runs < 1:
        raise SystemExit("compare.py: --runs needs at least 1")
    threads = option("--threads", os.environ.get("CNN_THREADS", "1,2")).replace(" ", "")
    counts = [int(t) for t in threads.split(",")]
    only = option("--only")
    python = option("--python")
    if "--install" in sys.argv:
        venv.create(VENV, with_pip=True)
        subprocess.run([str(VENV / "bin" / "python"), "-m", "pip", "install", "torch", "numpy"], check=True)
    if python is None:
        python = str(VENV / "bin" / "python") if (VENV / "bin" / "python").exists() else "python3"
    selection = []
    if only is not None:
        selection = [w.strip() for w in only.split(",") if w.strip()]
        if any("_train_" in w for w in selection) and "gemm_256" not in selection:
            selection.append("gemm_256")
        selection = ["--only", ",".join(selection)]

    with tempfile.TemporaryDirectory() as tmp:
        models = str(Path(tmp) / "models.json")
        run(["cargo", "bench", "--bench", "compare", "--", "--models", models, *selection])
        specs = json.loads(Path(models).read_text())["models"]
        pytorch = [python, str(HERE / "bench.py"), "--models", models, *selection, "--threads", threads, *quick]
        if "--dry" in sys.argv:
            run([*pytorch, "--dry"], pytorch_env)
            return
        cnn = ["cargo", "bench", "--bench", "compare", "--", *selection, "--threads", threads, *quick]
        rounds, isa, version = [], "unknown", "unknown"
        for r in range(runs):
            print(f"round {r + 1} of {runs}", file=sys.stderr)
            ours, err = run(cnn, cnn_env)
            isa = found(r"^GEMM instruction set: (.*)$", err, isa)
            theirs, err = run(pytorch, pytorch_env)
            version = found(r"^PyTorch (.*)$", err, version)
            key = lambda line: (line["workload"], line["threads"])
            rounds.append(({key(x): x["value"] for x in ours}, {key(x): x["value"] for x in theirs}))

    rows = [(s["workload"], name(s), s) for s in specs] + [(w, n, None) for w, n in CEILINGS.items()]

    def rates(side, workload, t):
        return [rnd[side][(workload, t)] for rnd in rounds if (workload, t) in rnd[side]]

    def share(rate, spec, t):
        ceiling = median(rates(1, "gemm_256", t))
        if rate is None or not ceiling or spec is None or spec["task"] != "train":
            return "–"
        return f"{100 * rate * spec['train_flops_per_sample'] / 1e9 / ceiling:.0f} %"

    blocks = "5 blocks of 0.2 s" if quick else "11 blocks of 0.5 s"
    print(
        f"Measured {date.today()} on {cpu()}, {os.cpu_count()} logical CPUs; PyTorch {version} (CPU); "
        f"cnn's GEMM instruction set: {isa}"
        f"{'; PyTorch restricted to AVX2 (ATEN_CPU_CAPABILITY, ONEDNN_MAX_CPU_ISA, MKL_ENABLE_INSTRUCTIONS)' if avx2 else ''}. "
        f"{runs} interleaved round{'s' if runs != 1 else ''} "
        f"(cnn, then PyTorch), each rate the median of {blocks} after a warm-up; the rates below are "
        f"the medians over the rounds, the ratio the median of the per-round ratios (lowest–highest "
        f"in brackets). Share of the machine: FLOPs per training sample × samples/s, over PyTorch's "
        f"`torch.matmul` rate on 256³ products at the same thread count (gemm_256).\n"
    )
    print("| workload | threads | PyTorch | cnn | cnn / PyTorch | PyTorch, share of the machine | cnn, share of the machine |")
    print("|---|---|---|---|---|---|---|")
    for workload, label, spec in rows:
        for t in counts:
            ratios = []
            for ours, theirs in rounds:
                a, b = theirs.get((workload, t)), ours.get((workload, t))
                if a and b:
                    ratios.append(a / b if workload.endswith("_b1") else b / a)
            pt, cn = median(rates(1, workload, t)), median(rates(0, workload, t))
            if pt is None or cn is None:
                continue
            spread = f" ({min(ratios):.2f}–{max(ratios):.2f})" if len(ratios) > 1 else ""
            ratio = f"{median(ratios):.2f}×{spread}" if ratios else "–"
            print(
                f"| {label} | {t} | {pt:,.1f} | {cn:,.1f} | {ratio} | {share(pt, spec, t)} | {share(cn, spec, t)} |"
            )
    trained = [s for s in specs if s["task"] == "train"]
    if trained:
        flops = ", ".join(
            f"{LABELS.get(s['model'], s['model'])} {s['train_flops_per_sample'] / 1e6:.1f} M" for s in trained
        )
        print(f"\nFLOPs per training sample (three forward passes' work): {flops}.")
    if len(counts) > 1 and trained:
        lo, hi = min(counts), max(counts)
        for side, who in ((0, "cnn"), (1, "PyTorch")):
            scaling = []
            for s in trained:
                a, b = median(rates(side, s["workload"], lo)), median(rates(side, s["workload"], hi))
                if a and b:
                    scaling.append(f"{LABELS.get(s['model'], s['model'])} {b / a:.2f}×")
            if scaling:
                print(f"\n{hi} threads / {lo} thread{'s' if lo != 1 else ''} ({who}): " + ", ".join(scaling))


if __name__ == "__main__":
    main()
