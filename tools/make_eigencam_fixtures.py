#!/usr/bin/env python3
"""Reference EigenCAM maps from pytorch-grad-cam for Tests/InterpretTests (EigenCAMTests).
Run by hand: pip install torch torchvision grad-cam && python3 tools/make_eigencam_fixtures.py

ResNet18 (layer3), VGG16 (features.22) and MobileNetV2 (features.13) with seeded weights
(tools/make_model_fixtures.py's generator) on one seeded input each (128x128; VGG16 64x64): every
layer is 8 x 8 positions. pytorch-grad-cam's EigenCAM projects the centred activations on their
first principal component with numpy's SVD, whose sign is arbitrary (LAPACK's); Loupe takes the
sign of Seg-Eigen-CAM's Eq. 13 (Chung and Ying 2025: flip when |min| > |max|), which
pytorch-grad-cam ships as get_2d_projection_with_sign_correction. The reference is EigenCAM with
that function in place of get_2d_projection (`eigencam`); the metadata says whether numpy's sign
already agreed (then `eigencam` is also EigenCAM's own output), the gap between the first two
singular values (the component is well defined only when they differ), and the map's distance
from the same run in float64.
"""
import json
import os
import sys

import numpy as np
import pytorch_grad_cam.eigen_cam as eigen_cam_module
import torch
from pytorch_grad_cam import EigenCAM
from pytorch_grad_cam.utils.svd_on_activations import get_2d_projection, get_2d_projection_with_sign_correction

sys.path.insert(0, os.path.dirname(__file__))
from make_model_fixtures import SEED, build, fill  # noqa: E402
from make_saliency_fixtures import module, no_inplace  # noqa: E402
from safetensors_io import write_safetensors  # noqa: E402

OUT = os.path.join(os.path.dirname(__file__), "..", "Tests", "InterpretTests", "Fixtures", "eigencam.safetensors")
CASES = {"resnet18": ("layer3", 128), "vgg16": ("features.22", 64), "mobilenet_v2": ("features.13", 128)}


def eigencam(model, layer, x, projection):
    """pytorch-grad-cam's EigenCAM of x with `projection` as its get_2d_projection."""
    eigen_cam_module.get_2d_projection = projection
    try:
        with EigenCAM(model=model, target_layers=[module(model, layer)]) as cam:
            return torch.from_numpy(cam(input_tensor=x, targets=None)[0])
    finally:
        eigen_cam_module.get_2d_projection = get_2d_projection


def main():
    tensors, meta = {}, {}
    for arch, (layer, size) in CASES.items():
        model = no_inplace(fill(build(arch))).eval()
        model64 = no_inplace(fill(build(arch))).eval().double()
        x = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(SEED))
        corrected = eigencam(model, layer, x, get_2d_projection_with_sign_correction)
        own = eigencam(model, layer, x, get_2d_projection)
        corrected64 = eigencam(model64, layer, x.double(), get_2d_projection_with_sign_correction)
        activations = []
        hook = module(model64, layer).register_forward_hook(lambda m, i, o: activations.append(o.detach()))
        with torch.no_grad():
            model64(x.double())
        hook.remove()
        a = activations[0][0].numpy().reshape(activations[0].shape[1], -1).T
        singular = np.linalg.svd(a - a.mean(axis=0), compute_uv=False)
        gap = float(singular[1] / singular[0])
        assert gap < 0.98, f"{arch}: the second singular value is {gap:.3f} of the first: no well-defined component"
        error = float((corrected.double() - corrected64).norm() / corrected64.norm())
        agrees = bool(torch.allclose(own, corrected, atol=1e-6))
        tensors[f"{arch}.input"] = x[0]
        tensors[f"{arch}.eigencam"] = corrected.float().contiguous()
        meta[arch] = json.dumps({"seed": SEED, "target": 0, "layer": layer, "numpy_sign_agrees": agrees,
                                 "singular_ratio": gap, "float64_error": error})
        print(arch, layer, "sigma2/sigma1", round(gap, 4), "numpy's sign agrees", agrees, "float32 vs float64", error)
    write_safetensors(OUT, tensors, meta)
    print("wrote", os.path.normpath(OUT), os.path.getsize(OUT), "bytes")


if __name__ == "__main__":
    main()
