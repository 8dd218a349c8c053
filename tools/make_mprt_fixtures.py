#!/usr/bin/env python3
"""Reference scores of Quantus' model parameter randomisation tests for Tests/InterpretTests
(MPRTTests). Run by hand: pip install torch torchvision quantus && python3 tools/make_mprt_fixtures.py

Quantus 0.6 runs MPRT, SmoothMPRT and EfficientMPRT on ResNet18 and MobileNetV2 with seeded
weights, the saliency fixture's inputs resized to 32x32, and the gradient map (the largest
|gradient| over the colour channels, Loupe's `gradient`) as the explanation. Quantus randomizes a
layer by calling the module's `reset_parameters` (torch's initializers, which Loupe cannot draw);
here that call draws the module's parameters as Loupe's `ModelRandomization` does
(tools/make_model_fixtures.py `fill` with seed 1 under the module's name), and everything else
(the layer list and order, the cascade, the explanations' noise, averaging and scoring) is
Quantus' own. SmoothMPRT's `quantus.explain` is routed to the same gradient map (it would call
Captum with a channel sum); its Gaussian draws are recorded for the first stages. Each case also
in float64 with the same draws: the float32-vs-float64 distance is the tests' floor.

Written: the layer names in Quantus' order, MPRT's Spearman correlation per layer (top down),
SmoothMPRT's per layer (bottom up, 4 samples, noise 0.1) with the noise of the first stages,
EfficientMPRT's score and the discrete entropies of the trained and fully random maps (and the
latter map, for the entropy function alone).
"""
import contextlib
import json
import os
import sys
import warnings

import numpy as np
import quantus
import torch

sys.path.insert(0, os.path.dirname(__file__))
from make_model_fixtures import SEED, fill  # noqa: E402
from make_perturbation_fixtures import Float64, Recorder, gradient_map  # noqa: E402
from make_saliency_fixtures import saliency_cases  # noqa: E402
from safetensors_io import write_safetensors  # noqa: E402

SIZE = 32
RANDOM_SEED = 1
SMOOTH_SAMPLES = 4
SMOOTH_NOISE = 0.1
SMOOTH_STAGES = 3  # stages whose noise the fixture keeps
OUT = os.path.join(os.path.dirname(__file__), "..", "Tests", "InterpretTests", "Fixtures", "mprt.safetensors")


def loupe_reset(module):
    """A module's reset_parameters as Loupe re-draws a layer: its parameters and buffers from
    SeededWeights' generator under their full names, with the randomization seed."""
    dtype = next(iter(module.state_dict().values())).dtype
    fill(module, seed=RANDOM_SEED, prefix=module._loupe_name + ".")
    module.to(dtype)


@contextlib.contextmanager
def loupe_randomization(model):
    for name, m in getattr(model, "model", model).named_modules():  # Float64 wraps the model
        m._loupe_name = name
    classes = (torch.nn.Conv2d, torch.nn.BatchNorm2d, torch.nn.Linear)
    saved = [c.reset_parameters for c in classes]
    for c in classes:
        c.reset_parameters = loupe_reset
    try:
        yield
    finally:
        for c, f in zip(classes, saved):
            c.reset_parameters = f


def explain(model, inputs, targets, **kwargs):
    return gradient_map(model, inputs, targets)


def run(model, x, target, smooth_noise=None):
    """Quantus' three tests of the gradient map: (scores, layer names, SmoothMPRT's draws,
    EfficientMPRT's entropies and last map)."""
    xb, yb = x.numpy(), np.array([target])
    kw = dict(model=model, x_batch=xb, y_batch=yb, a_batch=None, explain_func=gradient_map, device="cpu")
    out = {}
    with warnings.catch_warnings(), loupe_randomization(model):
        warnings.simplefilter("ignore")
        mprt = quantus.MPRT(layer_order="top_down", seed=RANDOM_SEED, disable_warnings=True)(**kw)
        layers = [k for k in mprt if k != "original"]
        out["mprt"] = [mprt[k][0] for k in layers]
        saved, quantus.explain = quantus.explain, explain
        try:
            with Recorder("randn") as r:
                if smooth_noise is not None:
                    r.replay = list(smooth_noise)
                smooth = quantus.SmoothMPRT(nr_samples=SMOOTH_SAMPLES, noise_magnitude=SMOOTH_NOISE, layer_order="bottom_up",
                                            seed=RANDOM_SEED, disable_warnings=True)(**kw)
        finally:
            quantus.explain = saved
        out["smooth_mprt"] = [smooth[k][0] for k in smooth if k != "original"]
        assert [k for k in smooth if k != "original"] == layers[::-1]
        efficient = quantus.EfficientMPRT(seed=RANDOM_SEED, disable_warnings=True)
        out["efficient_mprt"] = efficient(**kw)
        entropies = efficient.explanation_scores_by_layer
        out["entropy"] = [entropies["orig"][0], entropies[layers[0]][0]]
    # The fully random model's map, for the entropy function alone.
    for name, m in getattr(model, "model", model).named_modules():
        if isinstance(m, (torch.nn.Conv2d, torch.nn.BatchNorm2d, torch.nn.Linear)):
            m._loupe_name = name
            loupe_reset(m)
    last = gradient_map(model, xb, [target])[0, 0]
    return out, layers, r.calls, last


def main():
    tensors, meta = {}, {}
    for arch, x, target, model, model64 in saliency_cases():
        if arch == "vgg16":
            continue  # VGG16's passes cost the most; two architectures check the procedure
        x = torch.nn.functional.interpolate(x, size=(SIZE, SIZE), mode="bilinear", align_corners=False)
        np.random.seed(RANDOM_SEED)
        scores, layers, noise, last = run(model, x, target)
        scores64, _, _, _ = run(Float64(model64).eval(), x.double(), target, smooth_noise=noise)
        floors = {k: float(np.abs(np.asarray(scores[k], np.float64) - np.asarray(scores64[k], np.float64)).max()) for k in scores}
        # Draw sets: 0 makes the map every stage is compared with, 1 the "original" score (not
        # kept), then one per stage.
        per = SMOOTH_SAMPLES - 1
        sets = [noise[k * per:(k + 1) * per] for k in [0] + list(range(2, 2 + SMOOTH_STAGES))]
        tensors[f"{arch}.input"] = x[0]
        tensors[f"{arch}.smooth_noise"] = torch.from_numpy(np.stack([np.stack(s) for s in sets]).astype(np.float32).reshape(len(sets), per, -1))
        tensors[f"{arch}.random_map"] = torch.from_numpy(last.copy())
        meta[arch] = json.dumps({"seed": SEED, "target": target, "layers": layers, "random_seed": RANDOM_SEED, "smooth_samples": SMOOTH_SAMPLES,
                                 "smooth_noise": SMOOTH_NOISE, "scores": {k: np.asarray(v, np.float64).reshape(-1).tolist() for k, v in scores.items()},
                                 "float64_error": floors})
        print(arch, len(layers), "layers:", layers[:3], "...", layers[-2:])
        print("   MPRT", np.round(scores["mprt"][:6], 4).tolist(), "... last", round(scores["mprt"][-1], 4))
        print("   SmoothMPRT", np.round(scores["smooth_mprt"][:6], 4).tolist(), "... last", round(scores["smooth_mprt"][-1], 4))
        print("   EfficientMPRT", scores["efficient_mprt"], "entropies", scores["entropy"])
        print("   float32 vs float64", {k: f"{v:.1e}" for k, v in floors.items()})
    write_safetensors(OUT, tensors, meta)
    print("wrote", os.path.normpath(OUT), os.path.getsize(OUT), "bytes")


if __name__ == "__main__":
    main()
