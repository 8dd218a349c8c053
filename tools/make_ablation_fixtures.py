#!/usr/bin/env python3
"""Reference AblationCAM maps from pytorch-grad-cam for Tests/InterpretTests (AblationAndFullGradTests).
Run by hand: pip install torch torchvision grad-cam && python3 tools/make_ablation_fixtures.py

ResNet18 (layer1), VGG16 (features.3) and MobileNetV2 (features.1.conv.0) with seeded weights
(tools/make_model_fixtures.py's generator), the inputs and targets of the saliency fixtures
(64x64, VGG16 32x32), in-place activations off. Each layer is a ReLU's (or ReLU6's) output, so
its smallest value is 0 and pytorch-grad-cam's AblationLayer sets an ablated channel to 0 (on a
layer with negative values it sets it to the minimum less 1e7, a value that its loop lowers by
another 1e7 for each row of a batch). The weights are (s - s_c) / s, s the target's logit and
s_c the logit with channel c ablated; the map is pytorch-grad-cam's post-processing of
sum_c w_c A_c. With the map: its distance from the same run in float64, and the largest |w_c|
(how far ablating one channel moves the logit: far above float32's step of 6e-8, so the weights
are not rounding).
"""
import json
import os
import sys

import torch
from pytorch_grad_cam import AblationCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

sys.path.insert(0, os.path.dirname(__file__))
from make_model_fixtures import SEED  # noqa: E402
from make_saliency_fixtures import module, saliency_cases  # noqa: E402
from safetensors_io import write_safetensors  # noqa: E402

OUT = os.path.join(os.path.dirname(__file__), "..", "Tests", "InterpretTests", "Fixtures", "ablation.safetensors")
LAYERS = {"resnet18": "layer1", "vgg16": "features.3", "mobilenet_v2": "features.1.conv.0"}


def ablation_cam(model, layer, x, target):
    with AblationCAM(model=model, target_layers=[module(model, layer)], batch_size=32) as cam:
        return torch.from_numpy(cam(input_tensor=x, targets=[ClassifierOutputTarget(target)])[0])


def weight_changes(model, layer, x, target):
    """(s - s_c) / s for every channel c, in float64."""
    m = module(model, layer)
    seen = []
    hook = m.register_forward_hook(lambda mod, i, o: seen.append(o.detach()))
    with torch.no_grad():
        score = float(model(x)[0, target])
    hook.remove()
    a = seen[0]
    changes = []
    for c in range(a.shape[1]):
        ablated = a.clone()
        ablated[:, c] = 0
        hook = m.register_forward_hook(lambda mod, i, o: ablated)
        with torch.no_grad():
            changes.append((score - float(model(x)[0, target])) / score)
        hook.remove()
    return torch.tensor(changes, dtype=torch.float64), float(a.min())


def main():
    tensors, meta = {}, {}
    for arch, x, target, model, model64 in saliency_cases():
        layer = LAYERS[arch]
        m32 = ablation_cam(model, layer, x, target)
        m64 = ablation_cam(model64, layer, x.double(), target)
        changes, low = weight_changes(model64, layer, x.double(), target)
        assert low == 0, f"{arch} {layer}: the layer's smallest value is {low}, not 0"
        error = float((m32.double() - m64.double()).norm() / m64.double().norm())
        tensors[f"{arch}.input"] = x[0]
        tensors[f"{arch}.ablationcam"] = m32.float().contiguous()
        largest = float(changes.abs().max())
        meta[arch] = json.dumps({"seed": SEED, "target": target, "layer": layer, "float64_error": error,
                                 "largest_weight": largest})
        print(arch, layer, "channels", len(changes), "largest |weight|", f"{largest:.2e}", "float32 vs float64", f"{error:.2e}")
    write_safetensors(OUT, tensors, meta)
    print("wrote", os.path.normpath(OUT), os.path.getsize(OUT), "bytes")


if __name__ == "__main__":
    main()
