#!/usr/bin/env python3
"""Checks the ONNX files `cargo test --test onnx` writes, with the ONNX checker and ONNX Runtime.

    cargo test --test onnx
    python3 scripts/check_onnx.py target/tmp/onnx

For each `NAME.onnx` in the directory, against what `NAME.json` says the file must be:
`onnx.checker.check_model(full_check=True)` (which also infers every shape); IR version 8 and
operator set 17; one input, `input`, and the outputs by name; the weights (by their PyTorch
names); unique node names; the metadata (`cnn.model` and the model's `Meta`); then ONNX
Runtime on `NAME.input.bin`, each output compared with the one the Rust model gave,
`NAME.output.K.bin` (raw little-endian float32). Prints a table of the largest differences,
absolute and relative to 1 + |expected|, and exits with 1 when a file fails a check or differs
by more than 1e-4 (or the file's own `tolerance`; with `same_class`, any sample whose largest
output moves fails too). Several directories may be given. Needs numpy, onnx and onnxruntime.
"""

import json
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

TOLERANCE = 1e-4


def structure(model: onnx.ModelProto, want: dict) -> str:
    """What in the file's structure differs from `want` ('' if nothing)."""
    onnx.checker.check_model(model, full_check=True)
    if model.ir_version != 8:
        return f"IR version {model.ir_version}"
    opsets = [(o.domain, o.version) for o in model.opset_import]
    if opsets != [("", 17)]:
        return f"operator sets {opsets}"
    graph = model.graph
    inputs = [i.name for i in graph.input]
    if inputs != ["input"]:
        return f"inputs {inputs}"
    outputs = [o.name for o in graph.output]
    if outputs != [o["name"] for o in want["outputs"]]:
        return f"outputs {outputs}"
    # The weights by their PyTorch names; the export's own constants are named `NODE/what`.
    weights = sorted(t.name for t in graph.initializer if "/" not in t.name)
    if weights != sorted(want["tensors"]):
        return f"weights {weights}, expected {sorted(want['tensors'])}"
    names = [n.name for n in graph.node]
    if len(set(names)) != len(names):
        return "node names repeat"
    props = {p.key: p.value for p in model.metadata_props}
    for key, value in want["metadata"].items():
        if props.get(key) != value:
            return f"metadata {key}: {props.get(key)!r}, expected {value!r}"
    return ""


def check(model_path: Path) -> tuple[float, float, str]:
    """The largest absolute and relative differences for one file, and what failed ('' if none)."""
    stem = model_path.with_suffix("")
    want = json.loads(stem.with_suffix(".json").read_text())
    try:
        error = structure(onnx.load(model_path), want)
    except Exception as e:  # noqa: BLE001 - any checker failure is reported as such
        error = f"checker: {e}"
    if error:
        return float("nan"), float("nan"), error
    x = np.fromfile(f"{stem}.input.bin", dtype="<f4").reshape(want["input"])
    try:
        session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
        got = session.run([o["name"] for o in want["outputs"]], {"input": x})
    except Exception as e:  # noqa: BLE001 - a file ONNX Runtime refuses fails the check
        return float("nan"), float("nan"), f"onnxruntime: {str(e).splitlines()[0]}"
    absolute = relative = 0.0
    tolerance = want.get("tolerance", TOLERANCE)
    for k, (output, values) in enumerate(zip(want["outputs"], got)):
        expected = np.fromfile(f"{stem}.output.{k}.bin", dtype="<f4").reshape(output["shape"])
        # A volume's output is [N, D, H, W]; the Rust model gives each sample flat, in that order.
        values = values.reshape(values.shape[0], -1)
        if values.shape != expected.shape:
            return float("nan"), float("nan"), f"{output['name']}: shape {values.shape}, expected {expected.shape}"
        diff = np.abs(values - expected)
        absolute = max(absolute, float(diff.max()))
        relative = max(relative, float((diff / (1 + np.abs(expected))).max()))
        if want.get("same_class") and (values.argmax(1) != expected.argmax(1)).any():
            changed = int((values.argmax(1) != expected.argmax(1)).sum())
            return absolute, relative, f"{output['name']}: {changed} samples change class"
    if relative > tolerance:
        return absolute, relative, f"differs by more than {tolerance}"
    return absolute, relative, ""


def main() -> int:
    if len(sys.argv) < 2:
        print(__doc__)
        return 2
    files = sorted(f for d in sys.argv[1:] for f in Path(d).glob("*.onnx"))
    if not files:
        print(f"no .onnx files in {' '.join(sys.argv[1:])}")
        return 1
    print(f"{'model':<16} {'max abs diff':>12} {'max rel diff':>12}  ok")
    failed = 0
    for path in files:
        absolute, relative, error = check(path)
        ok = not error
        failed += not ok
        print(f"{path.stem:<16} {absolute:>12.2e} {relative:>12.2e}  {'OK' if ok else 'FAIL ' + error}")
    print(f"onnx {onnx.__version__}, onnxruntime {ort.__version__}: {len(files) - failed} of {len(files)} OK")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
