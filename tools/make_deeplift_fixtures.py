#!/usr/bin/env python3
"""Reference DeepLIFT attributions from Captum for Tests/InterpretTests (DeepLiftTests).
Run by hand: pip install torch torchvision captum && python3 tools/make_deeplift_fixtures.py

ResNet18, VGG16 and MobileNetV2 with seeded weights (tools/make_model_fixtures.py's generator),
the inputs and targets of the saliency fixtures (64x64, VGG16 32x32): Captum's DeepLift (the
rescale rule on nn.ReLU, its max-pool rule on nn.MaxPool2d, multiply_by_inputs) from a zero
baseline and from a black image (zero pixels, normalized), float32 and float64 (the metadata keeps
their relative L2 distance).

Captum's DeepLift keeps one input and output per module, so a module the forward pass calls
twice breaks it: torchvision's BasicBlock calls its `relu` after the first convolution and after
the addition. The script gives each block a second ReLU module for the second call (the same
network). nn.ReLU6 is not among Captum's DeepLift nonlinearities: MobileNetV2's take the plain
gradient of each half of the pass (input and baseline), which is what Loupe does.
"""
import json
import os
import sys

import torch
from captum.attr import DeepLift
from torchvision.models.resnet import BasicBlock

sys.path.insert(0, os.path.dirname(__file__))
from make_model_fixtures import SEED  # noqa: E402
from make_saliency_fixtures import saliency_cases  # noqa: E402
from safetensors_io import write_safetensors  # noqa: E402

ROOT = os.path.join(os.path.dirname(__file__), "..")
OUT = os.path.join(ROOT, "Tests", "InterpretTests", "Fixtures", "deeplift.safetensors")
MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


def basic_block_forward(self, x):
    identity = x if self.downsample is None else self.downsample(x)
    out = self.relu(self.bn1(self.conv1(x)))
    out = self.bn2(self.conv2(out))
    return self.relu_out(out + identity)


def separate_relus(model):
    for m in model.modules():
        if isinstance(m, BasicBlock):
            m.relu_out = torch.nn.ReLU()
            m.forward = basic_block_forward.__get__(m)
    return model


def main():
    tensors, meta = {}, {}
    for arch, x, target, model, model64 in saliency_cases(separate_relus):
        black = ((0 - torch.tensor(MEAN)) / torch.tensor(STD)).view(1, 3, 1, 1).expand_as(x).contiguous()
        errors = {}
        for name, baseline in (("zero", torch.zeros_like(x)), ("black", black)):
            a32 = DeepLift(model).attribute(x, baselines=baseline, target=target)
            a64 = DeepLift(model64).attribute(x.double(), baselines=baseline.double(), target=target)
            tensors[f"{arch}.{name}"] = a32[0].detach().float().contiguous()
            errors[name] = float((a32.double() - a64).norm() / a64.norm())
            with torch.no_grad():
                delta = float(model64(x.double())[0, target] - model64(baseline.double())[0, target])
            print(arch, name, "sum", float(a64.sum()), "f(x) - f(baseline)", delta, "float32 vs float64", errors[name])
        meta[arch] = json.dumps({"seed": SEED, "target": target, "float64_error": errors})
        tensors[f"{arch}.input"] = x[0]
    write_safetensors(OUT, tensors, meta)
    print("wrote", os.path.normpath(OUT), os.path.getsize(OUT), "bytes")


if __name__ == "__main__":
    main()
