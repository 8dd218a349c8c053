#!/usr/bin/env python3
"""Reference map scores from Quantus for Tests/InterpretTests (MapQualityTests).
Run by hand: pip install torch quantus && python3 tools/make_quantus_fixtures.py

Maps from the committed Captum and pytorch-grad-cam fixtures (Tests/InterpretTests/Fixtures/
saliency.safetensors): ResNet18's gradient (max |.| over channels), VGG16's integrated gradients
(the channel sum, signed), MobileNetV2's Grad-CAM (zeros where ReLU cut it). Masks: a rectangle
and a seeded blob per map, and an empty one. Quantus 0.6 with its defaults: Sparseness and
Complexity (abs, normalised by the largest |value|), RelevanceMassAccuracy, RelevanceRankAccuracy
and PointingGame (signed, normalised). Each map is scored alone (Quantus normalises by the largest
value of the whole batch it is given). Rank accuracy orders ties by pixel index in Loupe; Quantus'
argsort leaves their order to numpy, so maps with ties inside the top K are not used for it.
"""
import json
import os
import sys
import warnings

import numpy as np
import quantus
import torch

sys.path.insert(0, os.path.dirname(__file__))
from safetensors_io import read_safetensors, write_safetensors  # noqa: E402

ROOT = os.path.join(os.path.dirname(__file__), "..")
SOURCE = os.path.join(ROOT, "Tests", "InterpretTests", "Fixtures", "saliency.safetensors")
OUT = os.path.join(ROOT, "Tests", "InterpretTests", "Fixtures", "quantus.safetensors")


def scores(a, s):
    """Quantus' five scores of one map a [H, W] and mask s [H, W]."""
    x = np.zeros((1, 3) + a.shape, np.float32)
    y = np.zeros(1, int)
    ab, sb = a[None, None].astype(np.float32), s[None, None].astype(np.float32)
    kw = dict(model=None, x_batch=x, y_batch=y, a_batch=ab.copy(), s_batch=sb)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = {"sparseness": quantus.Sparseness(disable_warnings=True)(**kw)[0],
               "complexity": quantus.Complexity(disable_warnings=True)(**{**kw, "a_batch": ab.copy()})[0]}
        if s.any():
            out["mass"] = quantus.RelevanceMassAccuracy(disable_warnings=True)(**{**kw, "a_batch": ab.copy()})[0]
            out["rank"] = quantus.RelevanceRankAccuracy(disable_warnings=True)(**{**kw, "a_batch": ab.copy()})[0]
            out["pointing"] = float(quantus.PointingGame(disable_warnings=True)(**{**kw, "a_batch": ab.copy()})[0])
    return {k: float(v) for k, v in out.items()}


def main():
    src, _ = read_safetensors(SOURCE)
    maps = {
        "resnet18_gradient": np.abs(src["resnet18.saliency"]).max(0),
        "vgg16_integrated_gradients": src["vgg16.integrated_gradients"].sum(0),
        "mobilenet_v2_gradcam": src["mobilenet_v2.gradcam"],
    }
    rng = np.random.default_rng(5)
    tensors, meta = {}, {}
    for name, a in maps.items():
        h, w = a.shape
        rect = np.zeros((h, w), bool)
        rect[h // 4:h // 2, w // 3:3 * w // 4] = True
        blob = rng.random((h, w)) < 0.3
        blob[: h // 2] = False
        tensors[f"{name}.map"] = torch.from_numpy(a.astype(np.float32).copy())
        cases = {}
        for mask_name, s in (("rect", rect), ("blob", blob), ("empty", np.zeros((h, w), bool))):
            tensors[f"{name}.{mask_name}"] = torch.from_numpy(s.astype(np.float32))
            result = scores(a, s)
            if "rank" in result:
                # Ties at the K-th largest value would leave the score to numpy's sort order.
                k = int(s.sum())
                ordered = np.sort(a.reshape(-1))[::-1]
                if k < ordered.size and ordered[k - 1] == ordered[k]:
                    del result["rank"]
            cases[mask_name] = result
            print(name, mask_name, result)
        meta[name] = json.dumps(cases)
    write_safetensors(OUT, tensors, meta)
    print("wrote", os.path.normpath(OUT), os.path.getsize(OUT), "bytes")


if __name__ == "__main__":
    main()
