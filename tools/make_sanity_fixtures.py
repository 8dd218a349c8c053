#!/usr/bin/env python3
"""Reference values for the model-randomization sanity check (Tests/InterpretTests).
Run by hand: pip install torch torchvision captum grad-cam scipy scikit-image
             python3 tools/make_sanity_fixtures.py

1. Spearman rank correlation (scipy.stats.spearmanr) and SSIM (skimage's structural_similarity
   with a Gaussian window, sigma 1.5, population covariance, data range 1, on min-max normalized
   maps) of a few pairs of maps, with ties.
2. The cascade on ResNet18 with seeded weights (tools/make_model_fixtures.py), the saliency
   fixture's 64x64 input and target: blocks re-drawn from the top (fc, layer4.1, layer4.0, layer3.1)
   with seed 1, Captum's Saliency map (max |gradient| over channels) and pytorch-grad-cam's
   GradCAM on layer4 at each stage, and their Spearman / SSIM against the trained model's maps.
"""
import json
import os
import struct
import sys

import numpy as np
import torch
from captum.attr import Saliency
from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from scipy.stats import spearmanr
from skimage.metrics import structural_similarity

sys.path.insert(0, os.path.dirname(__file__))
from make_model_fixtures import ROOT, build, fill  # noqa: E402
from safetensors_io import write_safetensors  # noqa: E402

OUT = os.path.join(ROOT, "Tests", "InterpretTests", "Fixtures", "sanity.safetensors")
SALIENCY = os.path.join(ROOT, "Tests", "InterpretTests", "Fixtures", "saliency.safetensors")
STAGES = ["fc", "layer4.1", "layer4.0", "layer3.1"]
RANDOM_SEED = 1


def normalized(m):
    lo, hi = m.min(), m.max()
    return (m - lo) / (hi - lo) if hi > lo else np.zeros_like(m)


def ssim(a, b):
    return structural_similarity(normalized(a.astype(np.float64)), normalized(b.astype(np.float64)), data_range=1,
                                 gaussian_weights=True, sigma=1.5, use_sample_covariance=False)


def spearman(a, b):
    return float(spearmanr(a.reshape(-1), b.reshape(-1)).statistic)


def read_fixture(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    def get(name):
        e = header[name]
        a, b = e["data_offsets"]
        return np.frombuffer(data[a:b], dtype="<f4").reshape(e["shape"]).copy()
    return header["__metadata__"], get


def block(name):
    parts = name.split(".")
    for i, p in enumerate(parts):
        if p.isdigit():
            return ".".join(parts[:i + 1])
    return parts[0]


def maps(model, x, target):
    gradient = Saliency(model).attribute(x, target=target, abs=True)[0].amax(0).detach().numpy()
    with GradCAM(model=model, target_layers=[model.layer4]) as cam:
        gradcam = cam(input_tensor=x, targets=[ClassifierOutputTarget(target)])[0]
    return [gradient, gradcam]


def main():
    rng = np.random.default_rng(7)
    tensors = {}
    pairs = []
    for k, (h, w) in enumerate([(20, 24), (16, 16), (31, 13)]):
        a = rng.random((h, w)).astype(np.float32)
        b = (a + rng.normal(0, 0.3 * (k + 1), (h, w))).astype(np.float32)
        if k == 1:  # ties
            a, b = np.round(a * 4) / 4, np.round(b * 3) / 3
        tensors[f"pair{k}.a"], tensors[f"pair{k}.b"] = torch.from_numpy(a), torch.from_numpy(b)
        pairs.append({"spearman": spearman(a, b), "ssim": float(ssim(a, b))})

    meta, get = read_fixture(SALIENCY)
    target = json.loads(meta["resnet18"])["target"]
    x = torch.from_numpy(get("resnet18.input")).unsqueeze(0)
    model = fill(build("resnet18"))
    for m in model.modules():
        if hasattr(m, "inplace"):
            m.inplace = False
    original = maps(model, x, target)
    spear, sims, stage_maps = [], [], []
    for stage in STAGES:
        fill(model, seed=RANDOM_SEED, only=lambda name: block(name) == stage)
        current = maps(model, x, target)
        stage_maps.append(current)
        spear.append([spearman(o, c) for o, c in zip(original, current)])
        sims.append([float(ssim(o, c)) for o, c in zip(original, current)])
        print(stage, "spearman", spear[-1], "ssim", sims[-1])
    # Every stage's maps (the last Grad-CAM map of a fully random network is all zeros: ReLU of
    # a negative weighting; the earlier stages' are not, so the test has maps to compare).
    tensors["cascade.gradient"] = torch.from_numpy(np.ascontiguousarray(np.stack([m[0] for m in stage_maps])))
    tensors["cascade.gradcam"] = torch.from_numpy(np.ascontiguousarray(np.stack([m[1] for m in stage_maps])))
    print("non-constant Grad-CAM maps at stages", [s for s, m in zip(STAGES, stage_maps) if np.ptp(m[1]) > 0])
    tensors["cascade.spearman"] = torch.tensor(spear, dtype=torch.float32)
    tensors["cascade.ssim"] = torch.tensor(sims, dtype=torch.float32)
    info = {"pairs": pairs, "stages": STAGES, "methods": ["gradient", "gradcam"], "layer": "layer4",
            "target": target, "random_seed": RANDOM_SEED}
    write_safetensors(OUT, {k: v.float().contiguous() for k, v in tensors.items()}, {"sanity": json.dumps(info)})
    print("pairs", pairs)
    print("wrote", os.path.normpath(OUT), os.path.getsize(OUT), "bytes")


if __name__ == "__main__":
    main()
