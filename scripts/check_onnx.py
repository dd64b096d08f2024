#!/usr/bin/env python3
"""Checks the ONNX files of the `export_onnx` example with the ONNX checker and ONNX Runtime.

    cargo run --release --example export_onnx -- out/onnx
    python3 scripts/check_onnx.py out/onnx

For each `NAME.onnx` in the directory: `onnx.checker.check_model(full_check=True)` (which
also infers every shape), then ONNX Runtime on `NAME.input.bin`, compared with the outputs
the Rust model gave, `NAME.output.bin` (raw little-endian float32, shapes in `NAME.json`).
Prints a table of the largest differences, absolute and relative to 1 + |expected|, and exits
with 1 when a file fails a check or differs by more than 1e-4. Needs numpy, onnx and
onnxruntime.
"""

import json
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

TOLERANCE = 1e-4


def check(model_path: Path) -> tuple[float, float, str]:
    """The largest absolute and relative differences for one file, and what failed ('' if none)."""
    stem = model_path.with_suffix("")
    shapes = json.loads(stem.with_suffix(".json").read_text())
    x = np.fromfile(f"{stem}.input.bin", dtype="<f4").reshape(shapes["input"])
    want = np.fromfile(f"{stem}.output.bin", dtype="<f4").reshape(shapes["output"])
    try:
        onnx.checker.check_model(onnx.load(model_path), full_check=True)
    except Exception as e:  # noqa: BLE001 - any checker failure is reported as such
        return float("nan"), float("nan"), f"checker: {e}"
    session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    (got,) = session.run(["output"], {"input": x})
    if got.shape != want.shape:
        return float("nan"), float("nan"), f"shape {got.shape}, expected {want.shape}"
    diff = np.abs(got - want)
    return float(diff.max()), float((diff / (1 + np.abs(want))).max()), ""


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    files = sorted(Path(sys.argv[1]).glob("*.onnx"))
    if not files:
        print(f"no .onnx files in {sys.argv[1]}")
        return 1
    print(f"{'model':<16} {'max abs diff':>12} {'max rel diff':>12}  ok")
    failed = 0
    for path in files:
        absolute, relative, error = check(path)
        ok = not error and relative <= TOLERANCE
        failed += not ok
        print(f"{path.stem:<16} {absolute:>12.2e} {relative:>12.2e}  {'OK' if ok else 'FAIL ' + error}")
    print(f"onnx {onnx.__version__}, onnxruntime {ort.__version__}: {len(files) - failed} of {len(files)} OK")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
