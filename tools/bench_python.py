#!/usr/bin/env python3
"""The Python path beside the libraries it replaces and beside the CLI, in one run on this
machine: each loupe.captum / loupe.grad_cam adapter against Captum / pytorch-grad-cam on the same
torchvision ResNet18 (random weights, 224x224) at batch 1 and 8, and loupe.captum.Saliency
against `loupe bench --model resnet18 --method gradient` (the CLI's own timing of the same
work), as a markdown table of medians and ratios (below 1: Loupe is faster).

Loupe runs on its default device (`loupe devices`); torch on the CPU with its default threads,
or with --device cuda on the GPU (for a GPU machine: Loupe's OpenCL on that GPU beside Captum on
CUDA on the same GPU; tools/gpu/run.sh runs it so). The first call of an adapter exports the
module and is not timed.
Run: make bench-python   (or, in a venv with the wheel, torch, torchvision, captum and grad-cam:
python3 tools/bench_python.py [--runs N] [--batch 1,8] [--device cuda] [--quick])"""
import argparse
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
import types
import warnings

warnings.filterwarnings("ignore")
import torch  # noqa: E402

if torch.version.cuda is None:  # see python/tests/conftest.py
    sys.modules.setdefault("torchvision._meta_registrations", types.ModuleType("torchvision._meta_registrations"))
import captum.attr as captum  # noqa: E402
import pytorch_grad_cam  # noqa: E402
import torchvision  # noqa: E402
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget  # noqa: E402

from bench_tables import add_record_arguments, machine_words, record  # noqa: E402  (beside this script)

import loupe  # noqa: E402
import loupe.captum  # noqa: E402
import loupe.grad_cam  # noqa: E402


DEVICE = "cpu"


def median_ms(call, runs):
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        call()
        if DEVICE != "cpu":
            torch.cuda.synchronize()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def cases(model, batch):
    """(row, pytorch-grad-cam's or not, call(namespace, x, targets)): Captum's classes, then pytorch-grad-cam's."""
    layer = model.layer4
    yield from ((title, False, call) for title, call in captum_cases(model, layer))
    for kind in ("GradCAM", "GradCAMPlusPlus", "LayerCAM") + (("ScoreCAM",) if batch == 1 else ()):
        yield kind, True, lambda c, x, t, kind=kind: getattr(c, kind)(model=model, target_layers=[layer])(
            input_tensor=x, targets=[ClassifierOutputTarget(int(k)) for k in t])


def captum_cases(model, layer):
    yield "Saliency", lambda c, x, t: c.Saliency(model).attribute(x, target=t)
    yield "InputXGradient", lambda c, x, t: c.InputXGradient(model).attribute(x, target=t)
    yield "GuidedBackprop", lambda c, x, t: c.GuidedBackprop(model).attribute(x, target=t)
    yield "Deconvolution", lambda c, x, t: c.Deconvolution(model).attribute(x, target=t)
    yield "IntegratedGradients (50 steps)", lambda c, x, t: c.IntegratedGradients(model).attribute(x, target=t, n_steps=50, internal_batch_size=16)
    yield "NoiseTunnel(Saliency) (10 samples)", lambda c, x, t: c.NoiseTunnel(c.Saliency(model)).attribute(x, target=t, nt_samples=10, stdevs=0.1)
    yield "LayerGradCam", lambda c, x, t: c.LayerGradCam(model, layer).attribute(x, target=t)
    yield "GuidedGradCam", lambda c, x, t: c.GuidedGradCam(model, layer).attribute(x, target=t)
    yield "Occlusion (56x56 window, stride 28)", lambda c, x, t: c.Occlusion(model).attribute(
        x, sliding_window_shapes=(3, 56, 56), strides=(3, 28, 28), target=t, perturbations_per_eval=16)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--batch", default="1,8")
    ap.add_argument("--device", default="cpu", help="where torch runs the references: cpu or cuda")
    ap.add_argument("--quick", action="store_true", help="Saliency, IG, LayerGradCam and GradCAM only")
    add_record_arguments(ap)
    a = ap.parse_args()
    global DEVICE
    DEVICE = a.device
    torch.manual_seed(0)
    model = torchvision.models.resnet18().eval().to(DEVICE)
    device = next(d["device"] for d in loupe.devices() if d["default"])
    rows = []
    cli = os.path.join(os.path.dirname(loupe.__file__), "_native", "loupe")
    for batch in [int(b) for b in a.batch.split(",")]:
        x = torch.randn(batch, 3, 224, 224, device=DEVICE)
        t = torch.tensor([(i * 37) % 1000 for i in range(batch)], device=DEVICE)
        quick = ("Saliency", "IntegratedGradients (50 steps)", "LayerGradCam", "GradCAM")
        for title, is_cam, call in cases(model, batch):
            if a.quick and title not in quick:
                continue
            reference, ours = (pytorch_grad_cam, loupe.grad_cam) if is_cam else (captum, loupe.captum)
            call(ours, x, t)  # exports once
            mine = median_ms(lambda: call(ours, x, t), a.runs)
            theirs = median_ms(lambda: call(reference, x, t), a.runs)
            rows.append((f"{title}, batch {batch}", mine, theirs, reference.__name__.split(".")[0]))
            print(f"  {rows[-1][0]}: Loupe {mine:.1f} ms, {rows[-1][3]} {theirs:.1f} ms", file=sys.stderr, flush=True)
        if batch == 8 or batch == max(int(b) for b in a.batch.split(",")):
            out = subprocess.run([cli, "bench", "--model", "resnet18", "--method", "gradient", "--batch", str(batch),
                                  "--runs", str(max(a.runs, 3)), "--json"], capture_output=True, text=True, check=True).stdout
            bench = json.loads(out[out.index("["):])[0]["wallMilliseconds"]
            python = median_ms(lambda: loupe.captum.Saliency(model).attribute(x, target=t), max(a.runs, 3))
            rows.append((f"loupe.captum.Saliency vs `loupe bench --method gradient`, batch {batch}", python, bench, "loupe CLI"))
    where = torch.cuda.get_device_name() if DEVICE != "cpu" else f"the CPU ({torch.get_num_threads()} threads)"
    print(f"\nLoupe on {device}; torch {torch.__version__} on {where}; "
          f"{platform.machine()}, {os.cpu_count()} cores; median of {a.runs} runs\n")
    print("| work | Loupe ms | reference ms | Loupe / reference | reference |")
    print("|---|---|---|---|---|")
    for work, mine, theirs, ref in rows:
        print(f"| {work} | {mine:.1f} | {theirs:.1f} | {mine / theirs:.2f} | {ref} |")
    if a.record:
        record(a.record, rows, a.machine or machine_words(), f"{loupe.version()} (Python package) on {device}",
               f"torch {torch.__version__} on {where}", "tools/bench_python.py " + shlex.join(sys.argv[1:]))


if __name__ == "__main__":
    main()
