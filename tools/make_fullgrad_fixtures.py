#!/usr/bin/env python3
"""Reference FullGrad maps from pytorch-grad-cam for Tests/InterpretTests (AblationAndFullGradTests).
Run by hand: pip install torch torchvision grad-cam && python3 tools/make_fullgrad_fixtures.py

ResNet18, VGG16 and MobileNetV2 with seeded weights (tools/make_model_fixtures.py's generator),
the inputs and targets of the saliency fixtures (64x64, VGG16 32x32), in-place activations off:
pytorch-grad-cam takes the gradient at each bias layer's output through a tensor hook, which an
in-place ReLU after a batch norm would move to the ReLU's output. Its bias layers are every
Conv2d with a bias (VGG16's) and every BatchNorm2d (ResNet18's and MobileNetV2's, downsampling
included). With each map: its distance from the same run in float64 and the number of bias
layers.
"""
import json
import os
import sys

import torch
from pytorch_grad_cam import FullGrad
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

sys.path.insert(0, os.path.dirname(__file__))
from make_model_fixtures import SEED  # noqa: E402
from make_saliency_fixtures import saliency_cases  # noqa: E402
from safetensors_io import write_safetensors  # noqa: E402

OUT = os.path.join(os.path.dirname(__file__), "..", "Tests", "InterpretTests", "Fixtures", "fullgrad.safetensors")


def fullgrad(model, x, target):
    cam = FullGrad(model=model, target_layers=[])
    return torch.from_numpy(cam(input_tensor=x, targets=[ClassifierOutputTarget(target)])[0]), len(cam.bias_data)


def main():
    tensors, meta = {}, {}
    for arch, x, target, model, model64 in saliency_cases():
        m32, layers = fullgrad(model, x, target)
        m64, _ = fullgrad(model64, x.double(), target)
        error = float((m32.double() - m64.double()).norm() / m64.double().norm())
        tensors[f"{arch}.input"] = x[0]
        tensors[f"{arch}.fullgrad"] = m32.float().contiguous()
        meta[arch] = json.dumps({"seed": SEED, "target": target, "bias_layers": layers, "float64_error": error})
        print(arch, "bias layers", layers, "float32 vs float64", f"{error:.2e}")
    write_safetensors(OUT, tensors, meta)
    print("wrote", os.path.normpath(OUT), os.path.getsize(OUT), "bytes")


if __name__ == "__main__":
    main()
