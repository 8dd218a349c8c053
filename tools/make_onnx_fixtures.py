#!/usr/bin/env python3
"""ONNX graphs for Tests/ModelsTests (run by hand: pip install torch torchvision onnx).

torchvision's VGG16, ResNet18, MobileNetV2 and GoogLeNet exported by torch.onnx.export (opset 17,
dynamo=False, do_constant_folding=False so batchnorm stays a node and initializers keep
torchvision's names), at the batch and input size of tools/make_model_fixtures.py's cases
(VGG16 at 224x224, with its own reference, vgg16_224.safetensors). The
initializers' data is stripped (dimensions and types kept): the tests fill them with the seeded
weights that make_model_fixtures.py used (SeededWeights in Swift draws the same values by name),
so models.safetensors' logits and input gradients are the reference and no weights are committed.
unsupported.onnx has two nodes Loupe does not support (HardSwish, Resize), for the error test.
"""
import io
import os
import sys
import warnings

import numpy as np
import onnx
import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(__file__))
from make_model_fixtures import ROOT, SEED, build, fill, seeded  # noqa: E402
from safetensors_io import write_safetensors  # noqa: E402

warnings.filterwarnings("ignore")
OUT = os.path.join(ROOT, "Tests", "ModelsTests", "Fixtures", "onnx")
CASES = [("resnet18", 2, 32), ("mobilenet_v2", 2, 32), ("googlenet", 2, 32)]


def export(model, x, path, strip=True, fold=False):
    f = io.BytesIO()
    torch.onnx.export(model, x, f, opset_version=17, dynamo=False, do_constant_folding=fold,
                      input_names=["input"], output_names=["logits"])
    proto = onnx.load_from_string(f.getvalue())
    if strip:
        for t in proto.graph.initializer:
            if t.data_type == onnx.TensorProto.FLOAT and len(t.dims) > 0:
                t.ClearField("raw_data")
                t.ClearField("float_data")
    onnx.save(proto, path)
    ops = sorted({n.op_type for n in proto.graph.node})
    print(os.path.relpath(path, ROOT), os.path.getsize(path), "bytes, ops:", " ".join(ops))


def main():
    os.makedirs(OUT, exist_ok=True)
    for arch, n, size in CASES:
        model = fill(build(arch))
        export(model, torch.zeros(n, 3, size, size), os.path.join(OUT, f"{arch}.onnx"))
    # VGG16's adaptive 7x7 pool exports only when 7 divides the feature map: 224x224. Its input
    # is drawn by the seeded generator ((2u - 1) * 0.1 under the name below, as SeededWeights'
    # bias role); the reference keeps the logits and the input gradient summed over 8x8 blocks.
    model = fill(build("vgg16"))
    x = torch.from_numpy((2 * seeded("vgg16.onnx.input", 3 * 224 * 224) - 1) * np.float32(0.1)).reshape(1, 3, 224, 224).requires_grad_(True)
    logits = model(x)
    target = int(logits.argmax())
    logits[0, target].backward()
    pooled = torch.nn.functional.avg_pool2d(x.grad, 8) * 64
    write_safetensors(os.path.join(OUT, "vgg16_224.safetensors"), {"logits": logits.detach(), "pooled_grad": pooled[0]},
                      {"target": str(target), "seed": str(SEED)})
    export(model, torch.zeros(1, 3, 224, 224), os.path.join(OUT, "vgg16.onnx"))
    # The ops torchvision's four networks do not use, in one small net with its weights, and
    # PyTorch's output and input gradient (of the sum of outputs times a fixed seed). (torch
    # exports ZeroPad2d as a shape computation, Shape/Slice/ConstantOfShape, that Loupe does not
    # evaluate; a Pad node with constant pads is what other exporters write.)
    class Ops(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 6, 3, padding=2)
            self.leaky = nn.LeakyReLU(0.2)
            self.pool = nn.AvgPool2d(2, ceil_mode=True)
            self.proj = nn.Parameter(torch.randn(6 * 5 * 5, 7) * 0.1)

        def forward(self, x):
            y = self.pool(self.leaky(self.conv(x)))
            y = torch.sigmoid(y) * 2.0 - y / 4.0
            y = y.flatten(1) @ self.proj
            return torch.softmax(y, dim=1)

    torch.manual_seed(3)
    ops = Ops().eval()
    x = torch.randn(2, 3, 7, 7, requires_grad=True)
    y = ops(x)
    seed = torch.randn_like(y)
    y.backward(seed)
    export(ops, x.detach(), os.path.join(OUT, "ops.onnx"), strip=False, fold=True)
    write_safetensors(os.path.join(OUT, "ops.safetensors"), {"input": x.detach(), "output": y.detach(), "seed": seed, "input_grad": x.grad}, {})
    odd = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Hardswish(), nn.Upsample(scale_factor=2), nn.ReLU()).eval()
    export(odd, torch.zeros(1, 3, 8, 8), os.path.join(OUT, "unsupported.onnx"), strip=False)


if __name__ == "__main__":
    main()
