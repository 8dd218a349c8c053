#!/usr/bin/env python3
"""Reference SHAP attributions from Captum for Tests/InterpretTests (ShapTests).
Run by hand: pip install torch torchvision captum && python3 tools/make_shap_fixtures.py

ResNet18, VGG16 and MobileNetV2 with seeded weights (tools/make_model_fixtures.py's generator),
the inputs and targets of the saliency fixtures (64x64, VGG16 32x32), and a distribution of three
references: zeros, a black image (zero pixels, normalized) and seeded uniform pixels, normalized.

- GradientShap (6 samples, stdevs 0.1): Captum draws a reference per sample (np.random.choice),
  a point on the path (np.random.uniform) and the noise (torch.normal); the script records those
  draws as Captum makes them and stores them for Loupe to take. The float64 reference recomputes
  the same expectation from the same draws in float64 (the float32 recomputation is checked
  against Captum's own output first, so the draws are the ones Captum used).
- DeepLiftShap: deterministic; the networks as tools/make_deeplift_fixtures.py prepares them
  (a second ReLU module in each BasicBlock; MobileNetV2's ReLU6 not rescaled, as Captum does).
"""
import json
import os
import sys

import numpy as np
import torch
from captum.attr import DeepLiftShap, GradientShap

sys.path.insert(0, os.path.dirname(__file__))
from make_deeplift_fixtures import separate_relus  # noqa: E402
from make_model_fixtures import SEED  # noqa: E402
from make_saliency_fixtures import saliency_cases  # noqa: E402
from safetensors_io import write_safetensors  # noqa: E402

ROOT = os.path.join(os.path.dirname(__file__), "..")
OUT = os.path.join(ROOT, "Tests", "InterpretTests", "Fixtures", "shap.safetensors")
MEAN, STD = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1), torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
SAMPLES, STDEV = 6, 0.1


class Recorder:
    """Wraps np.random.choice, np.random.uniform and torch.normal while Captum runs, keeping
    what they return."""

    def __init__(self):
        self.calls = {"choice": [], "uniform": [], "normal": []}

    def __enter__(self):
        self.saved = (np.random.choice, np.random.uniform, torch.normal)
        choice, uniform, normal = self.saved

        def rec(name, f):
            def wrapped(*a, **k):
                out = f(*a, **k)
                self.calls[name].append(out)
                return out
            return wrapped
        np.random.choice, np.random.uniform, torch.normal = rec("choice", choice), rec("uniform", uniform), rec("normal", normal)
        return self

    def __exit__(self, *exc):
        np.random.choice, np.random.uniform, torch.normal = self.saved


def expected_gradients(model, x, references, indices, alphas, noise, target):
    """mean over samples of (x + noise - x') * grad f(x' + a (x + noise - x')), in the model's dtype."""
    starts = references[indices]
    noisy = x + noise
    points = (alphas.view(-1, 1, 1, 1) * noisy + (1 - alphas.view(-1, 1, 1, 1)) * starts).requires_grad_()
    model(points)[:, target].sum().backward()
    return ((noisy - starts) * points.grad).mean(0, keepdim=True)


def main():
    tensors, meta = {}, {}
    for arch, x, target, model, model64 in saliency_cases(separate_relus):
        generator = torch.Generator().manual_seed(SEED)
        uniform = (torch.rand(x.shape, generator=generator) - MEAN) / STD
        references = torch.cat([torch.zeros_like(x), ((0 - MEAN) / STD).expand_as(x), uniform]).contiguous()

        # The first draws (seeds SEED, SEED + 1, ...) whose float32 floor is below 1e-4: a sample
        # whose point lies next to a ReLU's kink moves the float64 result by the whole flip.
        for draw in range(SEED, SEED + 50):
            np.random.seed(draw)
            torch.manual_seed(draw)
            with Recorder() as r:
                a32 = GradientShap(model).attribute(x, baselines=references, n_samples=SAMPLES, stdevs=STDEV, target=target)
            (indices,), (alphas,), (noisy,) = r.calls["choice"], r.calls["uniform"], r.calls["normal"]
            indices = torch.tensor(indices)
            alphas = torch.from_numpy(np.asarray(alphas)).float()
            noise = noisy.detach().float()
            again = expected_gradients(model, x, references, indices, alphas, noise, target)
            replay = float((again - a32).norm() / a32.norm())
            assert replay < 1e-5, f"{arch}: the recorded draws do not reproduce Captum's GradientShap ({replay})"
            a64 = expected_gradients(model64, x.double(), references.double(), indices, alphas.double(), noise.double(), target)
            shap_error = float((a32.double() - a64).norm() / a64.norm())
            print(arch, "draw seed", draw, "float32 vs float64", shap_error)
            if shap_error < 1e-4:
                break
        tensors[f"{arch}.gradient_shap"] = a32[0].detach().contiguous()
        tensors[f"{arch}.gradient_shap.indices"] = indices.float()
        tensors[f"{arch}.gradient_shap.alphas"] = alphas
        tensors[f"{arch}.gradient_shap.noise"] = noise.contiguous()

        d32 = DeepLiftShap(model).attribute(x, baselines=references, target=target)
        d64 = DeepLiftShap(model64).attribute(x.double(), baselines=references.double(), target=target)
        deeplift_error = float((d32.detach().double() - d64.detach()).norm() / d64.detach().norm())
        tensors[f"{arch}.deeplift_shap"] = d32[0].detach().contiguous()

        tensors[f"{arch}.input"] = x[0]
        tensors[f"{arch}.references"] = references
        meta[arch] = json.dumps({"seed": SEED, "target": target, "samples": SAMPLES, "stdevs": STDEV, "draw_seed": draw,
                                 "float64_error": {"gradient_shap": shap_error, "deeplift_shap": deeplift_error}})
        print(arch, "replay", replay, "float32 vs float64: gradient_shap", shap_error, "deeplift_shap", deeplift_error)
    write_safetensors(OUT, tensors, meta)
    print("wrote", os.path.normpath(OUT), os.path.getsize(OUT), "bytes")


if __name__ == "__main__":
    main()
