#!/usr/bin/env python3
"""Reference scores of Quantus' and Captum's perturbation metrics for Tests/InterpretTests
(PerturbationMetricTests).
Run by hand: pip install torch torchvision captum quantus && python3 tools/make_perturbation_fixtures.py

ResNet18 and MobileNetV2 with seeded weights, the inputs and targets of the saliency
fixtures resized to 36x36 (Quantus' PixelFlipping needs a step that divides H x W, and a
step of whole pixels is 3 values). The map is the gradient's largest |value| over the colour
channels ([1, 1, H, W], Loupe's `gradient` map). Quantus 0.6 with its defaults but for the counts:
FaithfulnessCorrelation (12 runs of 64 features; its subsets recorded), PixelFlipping (features_in_step
3 x 108, that is 108 pixels), RegionPerturbation (patch 6, and patch 10 whose grid Quantus pads; 8
regions), MaxSensitivity and AvgSensitivity (3 samples; its noise recorded) with an explain_func
that makes the same map. Captum's infidelity (4 Gaussian perturbations of stdev 0.1, recorded;
normalize False and True) of the signed gradient x input. ROAD at 10, 30, ..., 90% through
Quantus' noisy_linear_imputation without noise (its ROAD class cannot run on images), with the
imputed images at 30% and 90%. Each case also in float64 with the same
draws: the float32-vs-float64 distance is the tests' floor.
"""
import json
import os
import sys
import warnings

import numpy as np
import quantus
import torch
from captum.metrics import infidelity

sys.path.insert(0, os.path.dirname(__file__))
from make_model_fixtures import SEED  # noqa: E402
from make_saliency_fixtures import saliency_cases  # noqa: E402
from safetensors_io import write_safetensors  # noqa: E402

SIZE = 36
OUT = os.path.join(os.path.dirname(__file__), "..", "Tests", "InterpretTests", "Fixtures", "perturbation.safetensors")


def gradient(model, x, targets):
    x = x.clone().requires_grad_(True)
    out = model(x)
    out[torch.arange(len(targets)), torch.as_tensor(targets)].sum().backward()
    return x.grad.detach()


def gradient_map(model, inputs, targets, **kwargs):
    """Quantus' explain_func: [N, 1, H, W] numpy, the largest |gradient| over channels."""
    dtype = next(model.parameters()).dtype
    x = torch.as_tensor(np.asarray(inputs), dtype=dtype)
    t = np.asarray(targets).reshape(-1).tolist()
    return gradient(model, x, t).abs().amax(1, keepdim=True).numpy()


class Float64(torch.nn.Module):
    """A float64 model that takes Quantus' float32 inputs."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(x.double())


class Recorder:
    """Wraps a numpy.random function, keeping what it returns (or replaying it)."""

    def __init__(self, name):
        self.name, self.calls, self.replay = name, [], None
        self.original = getattr(np.random, name)

    def __enter__(self):
        def wrapped(*args, **kwargs):
            if self.replay is not None:
                return self.replay.pop(0)
            value = self.original(*args, **kwargs)
            self.calls.append(value)
            return value
        setattr(np.random, self.name, wrapped)
        return self

    def __exit__(self, *exc):
        setattr(np.random, self.name, self.original)


def quantus_scores(model, x, target, a, draws=None):
    """The Quantus scores of map a [1, 1, H, W] and the draws they made."""
    xb, yb = x.numpy(), np.array([target])
    kw = dict(model=model, x_batch=xb, y_batch=yb, a_batch=a.copy(), device="cpu")
    out, made = {}, {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with Recorder("choice") as r:
            if draws:
                r.replay = list(draws["choice"])
            out["faithfulness_correlation"] = quantus.FaithfulnessCorrelation(
                nr_runs=12, subset_size=64, return_aggregate=False, disable_warnings=True)(**kw)[0]
        made["choice"] = r.calls
        out["pixel_flipping"] = quantus.PixelFlipping(features_in_step=3 * 108, disable_warnings=True)(**{**kw, "a_batch": a.copy()})[0]
        for patch in (6, 10):
            out[f"region_perturbation_{patch}"] = quantus.RegionPerturbation(
                patch_size=patch, regions_evaluation=8, disable_warnings=True)(**{**kw, "a_batch": a.copy()})[0]
        for name, cls in (("max_sensitivity", quantus.MaxSensitivity), ("avg_sensitivity", quantus.AvgSensitivity)):
            with Recorder("uniform") as r:
                if draws:
                    r.replay = list(draws[name])
                out[name] = cls(nr_samples=3, disable_warnings=True)(**{**kw, "a_batch": a.copy()}, explain_func=gradient_map)[0]
            made[name] = r.calls
    return out, made


ROAD_PERCENTAGES = [10, 30, 50, 70, 90]


def road(model, x, target, a):
    """ROAD's curve (the target's softmax probability after the top p% pixels of map a are
    imputed, Quantus' noisy_linear_imputation without noise) and the imputed images. Quantus'
    ROAD class is not used: its indices count the three channels, which its imputation takes
    for pixels (index out of bounds on any image attribution)."""
    from quantus.functions.perturb_func import noisy_linear_imputation
    flat = a.reshape(-1)
    order = np.argsort(-flat, kind="stable")  # ties by pixel index, as Loupe
    images = [noisy_linear_imputation(x[0].numpy().astype(np.float64), order[: int(flat.size * p / 100)], noise=0.0)
              for p in ROAD_PERCENTAGES]
    dtype = next(model.parameters()).dtype
    with torch.no_grad():
        probabilities = torch.softmax(model(torch.from_numpy(np.stack(images)).to(dtype)), -1)[:, target]
    return probabilities.double().numpy(), np.stack(images)


def infidelities(model, x, target, attributions, noise):
    def perturb(inputs):
        return noise, inputs - noise
    return {f"infidelity_{'normalized' if n else 'plain'}":
            float(infidelity(model, perturb, x, attributions, target=target, n_perturb_samples=len(noise),
                             max_examples_per_batch=len(noise), normalize=n)[0])
            for n in (False, True)}


def flatten(scores):
    return {k: np.asarray(v, np.float64).reshape(-1) for k, v in scores.items()}


def main():
    np.random.seed(SEED)
    tensors, meta = {}, {}
    for arch, x, target, model, model64 in saliency_cases():
        if arch == "vgg16":
            continue  # the metrics only run the model: two architectures check them, VGG16's passes cost the most
        # 36 x 36: Quantus' steps must divide H x W, and whole pixels need steps of 3 values.
        x = torch.nn.functional.interpolate(x, size=(SIZE, SIZE), mode="bilinear", align_corners=False)
        a = gradient_map(model, x, [target])
        scores, draws = quantus_scores(model, x, target, a)
        a64 = gradient_map(model64, x.double(), [target])
        scores64, _ = quantus_scores(Float64(model64).eval(), x.double(), target, a64, draws)
        noise = torch.from_numpy(np.random.normal(0, 0.1, (4,) + tuple(x.shape[1:])).astype(np.float32))
        gxi = gradient(model, x, [target]) * x
        scores.update(infidelities(model, x, target, gxi, noise))
        gxi64 = gradient(model64, x.double(), [target]) * x.double()
        scores64.update(infidelities(model64, x.double(), target, gxi64, noise.double()))
        scores["road"], imputed = road(model, x, target, a)
        scores64["road"], _ = road(model64, x.double(), target, a64)
        s32, s64 = flatten(scores), flatten(scores64)
        floors = {k: float(np.abs(s32[k] - s64[k]).max()) for k in s32}
        tensors[f"{arch}.input"] = x[0]
        tensors[f"{arch}.map"] = torch.from_numpy(a[0, 0].copy())
        tensors[f"{arch}.gradient_x_input"] = gxi[0].contiguous()
        tensors[f"{arch}.subsets"] = torch.from_numpy(np.stack(draws["choice"]).astype(np.int32).astype(np.float32))
        for name in ("max_sensitivity", "avg_sensitivity"):
            tensors[f"{arch}.{name}_noise"] = torch.from_numpy(np.stack(draws[name]).astype(np.float32).reshape(len(draws[name]), -1))
        tensors[f"{arch}.road_imputed"] = torch.from_numpy(imputed[[1, 4]].astype(np.float32))  # 30% and 90%
        tensors[f"{arch}.infidelity_noise"] = noise.reshape(len(noise), -1).contiguous()
        meta[arch] = json.dumps({"seed": SEED, "target": target, "scores": {k: v.tolist() for k, v in s32.items()},
                                 "float64_error": floors})
        print(arch, {k: (np.round(v, 5).tolist() if v.size < 4 else f"{v.size} values") for k, v in s32.items()})
        print("   float32 vs float64", {k: f"{v:.1e}" for k, v in floors.items()})
    write_safetensors(OUT, tensors, meta)
    print("wrote", os.path.normpath(OUT), os.path.getsize(OUT), "bytes")


if __name__ == "__main__":
    main()
