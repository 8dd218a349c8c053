#!/usr/bin/env python3
"""Reference LIME and KernelSHAP attributions from Captum for Tests/InterpretTests (SurrogateTests).
Run by hand: pip install torch torchvision captum scikit-learn && python3 tools/make_surrogate_fixtures.py

ResNet18, VGG16 and MobileNetV2 with seeded weights (tools/make_model_fixtures.py's generator),
the inputs and targets of the saliency fixtures (64x64, VGG16 32x32), features a grid of 8-pixel
cells (Captum's feature_mask [1, 1, H, W], every channel of a cell together).

- Lime (Captum's defaults: Bernoulli(1/2) samples, exponential kernel of the cosine distance,
  width 1, sklearn Lasso alpha 0.01) from a zero baseline, 40 samples.
- KernelShap (all features on, all off, then the Shapley kernel's draws; sklearn
  LinearRegression) from a black baseline (zero pixels, normalized), 40 samples.

Captum draws the binary vectors with torch's generator; the script records them as Captum's
perturbation function returns them and stores them for Loupe to take. Captum fits in float32
(it casts the samples, scores and weights to float); the float64 reference scores the same
perturbed inputs with the float64 network and fits in float64 (Lasso to a 1e-12 tolerance), and
the metadata keeps Captum's relative L2 distance from it; that float64 fit is stored too.
"""
import inspect
import json
import math
import os
import sys

import numpy as np
import torch
from captum.attr import KernelShap, Lime
from sklearn.linear_model import Lasso, LinearRegression

sys.path.insert(0, os.path.dirname(__file__))
from make_model_fixtures import SEED  # noqa: E402
from make_saliency_fixtures import saliency_cases  # noqa: E402
from safetensors_io import write_safetensors  # noqa: E402

ROOT = os.path.join(os.path.dirname(__file__), "..")
OUT = os.path.join(ROOT, "Tests", "InterpretTests", "Fixtures", "surrogate.safetensors")
MEAN, STD = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1), torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
CELL, SAMPLES = 8, 40


def recording(method):
    """Wraps the method's perturbation function (a function or a generator function) so that
    every binary vector it hands Captum is kept in `method.recorded`."""
    original = method.perturb_func
    method.recorded = []
    if inspect.isgeneratorfunction(original):
        def generator(*a, **k):
            for z in original(*a, **k):
                method.recorded.append(z.clone())
                yield z
        method.perturb_func = generator
    else:
        def function(*a, **k):
            z = original(*a, **k)
            method.recorded.append(z.clone())
            return z
        method.perturb_func = function
    return method


def reference64(kind, model64, x, baseline, mask, zs, target):
    """The same fit in float64: scores of the float64 network, weights, sklearn to tight tolerance."""
    z = zs.double()
    on = z[:, mask.flatten()].view(len(z), 1, *mask.shape[-2:])
    perturbed = on * x.double() + (1 - on) * baseline.double()
    with torch.no_grad():
        scores = model64(perturbed)[:, target].numpy()
    if kind == "lime":
        flat = x.double().flatten()
        distance = 1 - torch.nn.functional.cosine_similarity(flat[None], perturbed.flatten(1), dim=1)
        weights = torch.exp(-distance ** 2 / 2).numpy()
        fit = Lasso(alpha=0.01, tol=1e-12, max_iter=1_000_000).fit(z.numpy(), scores, sample_weight=weights)
    else:
        count = z.sum(1)
        weights = torch.where((count == 0) | (count == z.shape[1]), 1e6, 1.0).numpy()
        fit = LinearRegression().fit(z.numpy(), scores, sample_weight=weights)
    return torch.from_numpy(fit.coef_)[mask.flatten()].view(1, 1, *mask.shape[-2:]).expand_as(x)


def main():
    tensors, meta = {}, {}
    for arch, x, target, model, model64 in saliency_cases():
        h, w = x.shape[-2:]
        columns = math.ceil(w / CELL)
        mask = torch.tensor([[(r // CELL) * columns + c // CELL for c in range(w)] for r in range(h)]).view(1, 1, h, w)
        baselines = {"lime": torch.zeros_like(x), "kernel_shap": ((0 - MEAN) / STD).expand_as(x).contiguous()}
        errors = {}
        for kind, cls in (("lime", Lime), ("kernel_shap", KernelShap)):
            torch.manual_seed(SEED)
            method = recording(cls(model))
            a32 = method.attribute(x, baselines=baselines[kind], target=target, feature_mask=mask, n_samples=SAMPLES)
            zs = torch.cat(method.recorded).float()
            a64 = reference64(kind, model64, x, baselines[kind], mask, zs, target)
            errors[kind] = float((a32.double() - a64).norm() / a64.norm())
            tensors[f"{arch}.{kind}"] = a32[0].detach().float().contiguous()
            tensors[f"{arch}.{kind}.samples"] = zs.contiguous()
            tensors[f"{arch}.{kind}.float64"] = a64[0].float().contiguous()
            print(arch, kind, "features", int(mask.max()) + 1, "samples", len(zs), "float32 vs float64", errors[kind])
        tensors[f"{arch}.input"] = x[0]
        meta[arch] = json.dumps({"seed": SEED, "target": target, "cell": CELL, "samples": SAMPLES, "float64_error": errors})
    write_safetensors(OUT, tensors, meta)
    print("wrote", os.path.normpath(OUT), os.path.getsize(OUT), "bytes")


if __name__ == "__main__":
    main()
