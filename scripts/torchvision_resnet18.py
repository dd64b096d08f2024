#!/usr/bin/env python3
"""Checks the `resnet18` example against torchvision: builds `torchvision.models.resnet18()`
(random initialisation, nothing downloaded), moves batch normalisation's running statistics
away from 0 and 1 so that they matter, and writes into OUT_DIR (default `out/resnet18`):

- `resnet18.safetensors`: the state_dict, with its order under the metadata key
  `state_dict_order` (a JSON array of the tensor names), which `cnn::io::load_mapped` reads;
- `input.safetensors`: a batch `x` of 2 images [2, 3, 224, 224];
- `torch_logits.safetensors`: torchvision's evaluation-mode outputs `logits` [2, 1000].

Then runs `cargo run --release --example resnet18` on them, compares its logits with
torchvision's, prints the largest absolute difference, and exits with status 1 when it is above
the tolerance: 1e-5 of the largest logit (at least 1e-5). Both compute in f32, summing up to
4,608 products per output in different orders, which leaves differences of about 1e-6 of the
largest logit (4e-7 on 2026-12-01).

    python3 scripts/torchvision_resnet18.py [OUT_DIR]
"""

import json
import subprocess
import sys
from pathlib import Path

import torch
import torchvision
from safetensors.torch import load_file, save_file

ORDER_KEY = "state_dict_order"
RELATIVE_TOLERANCE = 1e-5


def main() -> int:
    root = Path(__file__).resolve().parent.parent
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else root / "out" / "resnet18"
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                n = m.num_features
                m.weight.copy_(0.8 + 0.4 * torch.rand(n, generator=generator))
                m.bias.copy_(0.1 * torch.randn(n, generator=generator))
                m.running_mean.copy_(0.1 * torch.randn(n, generator=generator))
                m.running_var.copy_(0.8 + 0.4 * torch.rand(n, generator=generator))
                m.num_batches_tracked.fill_(100)
    model.eval()

    sd = model.state_dict()
    weights = out / "resnet18.safetensors"
    save_file({k: v.contiguous() for k, v in sd.items()}, str(weights), metadata={ORDER_KEY: json.dumps(list(sd))})
    x = torch.randn(2, 3, 224, 224, generator=generator)
    with torch.no_grad():
        torch_logits = model(x)
    save_file({"x": x.contiguous()}, str(out / "input.safetensors"))
    save_file({"logits": torch_logits.contiguous()}, str(out / "torch_logits.safetensors"))

    ours_path = out / "logits.safetensors"
    command = [
        "cargo", "run", "--release", "--example", "resnet18", "--",
        "--weights", str(weights), "--input", str(out / "input.safetensors"), "--output", str(ours_path),
    ]
    print(" ".join(command), flush=True)
    subprocess.run(command, cwd=root, check=True)
    ours = load_file(str(ours_path))["logits"]

    difference = (ours - torch_logits).abs().max().item()
    scale = torch_logits.abs().max().item()
    tolerance = RELATIVE_TOLERANCE * max(scale, 1.0)
    same_top = (ours.argmax(1) == torch_logits.argmax(1)).all().item()
    print(f"largest logit (torchvision): {scale:.6f}")
    print(f"largest absolute difference of the logits: {difference:.3e} (tolerance {tolerance:.1e})")
    print(f"largest difference relative to the largest logit: {difference / scale:.3e}")
    print(f"same top class for every image: {same_top}")
    if difference > tolerance or not same_top:
        print("FAILED: the example's logits differ from torchvision's")
        return 1
    print("OK: the example gives torchvision's logits")
    return 0


if __name__ == "__main__":
    sys.exit(main())
