#!/usr/bin/env python3
"""Writes the fixtures of tests/torch_mapped.rs into OUT_DIR: a ResNet-18 in miniature whose
tensors have exactly the names, and the order, of `torchvision.models.resnet18()`'s.

The model is torchvision's own `BasicBlock`s and forward pass (`ResNet._forward_impl`) in a
module built as torchvision's `ResNet` builds itself, with ResNet-18's layout (the 7x7 stride-2
stem, the 3x3 stride-2 max pooling, four stages of two blocks, a projected shortcut opening stages
2-4, global average pooling, a linear classifier) but widths 4, 8, 16, 32 (ResNet-18's divided by
16), 64x64 inputs and 10 classes: torchvision's `ResNet` fixes its widths, and ResNet-18's own
weights (45 MB) are too large for a fixture.

- `torchvision_tiny.safetensors`: the state_dict (seed 0, initialised as torchvision initialises
  ResNets; batch normalisation's scales and shifts randomised and its running statistics those of
  4 random batches, so that they matter), with the state_dict's order under the metadata key
  `state_dict_order` (a JSON array of the tensor names);
- `torchvision_tiny_io.safetensors`: a batch `x` of 4 images [4, 3, 64, 64] and the model's
  evaluation-mode outputs `logits` [4, 10].

    python3 scripts/torchvision_fixture.py tests/fixtures
"""

import json
import sys
from pathlib import Path

import torch
import torchvision
from safetensors.torch import save_file
from torchvision.models.resnet import BasicBlock, ResNet, conv1x1

# The metadata key of the state_dict's order, read by `cnn::io::load_mapped`.
ORDER_KEY = "state_dict_order"


class TinyResNet(torch.nn.Module):
    """torchvision's ResNet with BasicBlocks, with the widths given (torchvision's are 64..512)."""

    def __init__(self, widths=(4, 8, 16, 32), layers=(2, 2, 2, 2), classes=10):
        super().__init__()
        self.inplanes = widths[0]
        self.conv1 = torch.nn.Conv2d(3, widths[0], kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = torch.nn.BatchNorm2d(widths[0])
        self.relu = torch.nn.ReLU(inplace=True)
        self.maxpool = torch.nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(widths[0], layers[0], 1)
        self.layer2 = self._make_layer(widths[1], layers[1], 2)
        self.layer3 = self._make_layer(widths[2], layers[2], 2)
        self.layer4 = self._make_layer(widths[3], layers[3], 2)
        self.avgpool = torch.nn.AdaptiveAvgPool2d((1, 1))
        self.fc = torch.nn.Linear(widths[3], classes)

    def _make_layer(self, planes, blocks, stride):
        # As torchvision's ResNet._make_layer, for BasicBlock (expansion 1).
        downsample = None
        if stride != 1 or self.inplanes != planes:
            downsample = torch.nn.Sequential(conv1x1(self.inplanes, planes, stride), torch.nn.BatchNorm2d(planes))
        layers = [BasicBlock(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes
        layers += [BasicBlock(planes, planes) for _ in range(1, blocks)]
        return torch.nn.Sequential(*layers)

    def forward(self, x):
        return ResNet._forward_impl(self, x)


def init_like_torchvision(model):
    """torchvision's ResNet initialisation: He's normal initialisation of the convolutions
    (fan-out), batch normalisation's scales 1 and shifts 0."""
    for m in model.modules():
        if isinstance(m, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, torch.nn.BatchNorm2d):
            torch.nn.init.constant_(m.weight, 1)
            torch.nn.init.constant_(m.bias, 0)


def randomise_batch_norms(model, generator, batches):
    """Batch normalisation's scales and shifts away from 1 and 0, and running statistics that
    are the cumulative statistics of `batches` (training-mode passes with PyTorch's
    `momentum=None`), so that every one matters to the outputs and they stay of a sensible
    scale; the batch counts are then those passes' count."""
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    with torch.no_grad():
        for m in norms:
            n = m.num_features
            m.weight.copy_(0.5 + torch.rand(n, generator=generator))
            m.bias.copy_(0.2 * torch.randn(n, generator=generator))
            m.reset_running_stats()
            m.momentum = None
        model.train()
        for x in batches:
            model(x)
        for m in norms:
            m.momentum = 0.1
    model.eval()


def save_state_dict(model, path):
    """Saves the state_dict with its order in the metadata."""
    sd = model.state_dict()
    tensors = {k: v.detach().contiguous() for k, v in sd.items()}
    save_file(tensors, str(path), metadata={ORDER_KEY: json.dumps(list(sd))})


def main() -> None:
    out = Path(sys.argv[1])
    torch.manual_seed(0)
    model = TinyResNet()
    names = list(model.state_dict())
    reference = list(torchvision.models.resnet18(weights=None).state_dict())
    assert names == reference, "the names differ from torchvision's resnet18"
    init_like_torchvision(model)
    generator = torch.Generator().manual_seed(1)
    randomise_batch_norms(model, generator, [torch.randn(8, 3, 64, 64, generator=generator) for _ in range(4)])
    save_state_dict(model, out / "torchvision_tiny.safetensors")
    x = torch.randn(4, 3, 64, 64, generator=generator)
    with torch.no_grad():
        logits = model(x)
    save_file({"x": x.contiguous(), "logits": logits.contiguous()}, str(out / "torchvision_tiny_io.safetensors"))
    torch.set_printoptions(precision=6, sci_mode=False)
    print(f"{len(names)} tensors, the same names and order as torchvision's resnet18")
    print(logits)


if __name__ == "__main__":
    main()
