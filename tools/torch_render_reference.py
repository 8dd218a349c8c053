#!/usr/bin/env python3
"""PyTorch references for `loupe visualize` and `loupe invert` (run by hand, numbers for the notes):

1. visualize: Lucent's render_vis (pip install torch-lucent --no-deps), i.e. Lucid's defaults in
   PyTorch: Fourier parameterization with colour decorrelation, Adam 0.05, standard transforms,
   MobileNetV2 forward and backward at 224. Steps per second at batch 1 and 16, and the class
   the same model gives the class-948 picture.
2. invert: a plain loop, Adam (lr 0.05) on a sigmoid-parameterized image from noise, 600 steps,
   no regularizer, loss ||phi(x) - phi0||^2 / ||phi0||^2 at features.2 and features.4 of
   MobileNetV2 on the bundled photo; the relative feature error ||phi(x) - phi0|| / ||phi0|| of
   the saved 8-bit picture.

python3 tools/torch_render_reference.py [visualize|invert] (default: both)
"""
import os
import sys
import time
import warnings

import numpy as np
import torch
import torchvision
from PIL import Image

warnings.filterwarnings("ignore")
ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), ".."))
MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


def model():
    home = os.environ.get("TORCH_HOME", os.path.expanduser("~/.cache/torch"))
    m = torchvision.models.mobilenet_v2()
    m.load_state_dict(torch.load(os.path.join(home, "hub", "checkpoints", "mobilenet_v2-b0353104.pth"), weights_only=True))
    return m.eval()


def visualize():
    import kornia
    # Lucent 0.1.8 calls kornia's pre-0.6 names.
    kornia.get_rotation_matrix2d = kornia.geometry.transform.get_rotation_matrix2d
    kornia.warp_affine = kornia.geometry.transform.warp_affine
    from lucent.optvis import objectives, param, render
    m = model()
    for p in m.parameters():
        p.requires_grad_(False)
    for batch, steps in [(1, 64), (16, 8)]:
        obj = objectives.channel("classifier_1", 948) if batch == 1 else sum(
            objectives.channel("classifier_1", 948, batch=i) for i in range(batch))
        param_f = lambda: param.image(224, batch=batch, fft=True, decorrelate=True)
        render.render_vis(m, obj, param_f, thresholds=(1,), show_image=False, progress=False, fixed_image_size=224)  # warm-up
        start = time.perf_counter()
        images = render.render_vis(m, obj, param_f, thresholds=(steps,), show_image=False, progress=False, fixed_image_size=224)
        rate = steps / (time.perf_counter() - start)
        print(f"pytorch {torch.__version__} threads={torch.get_num_threads()} lucent render_vis mobilenet_v2 224 batch {batch}: {rate:.2f} steps/s")
    torch.manual_seed(0)
    images = render.render_vis(m, objectives.channel("classifier_1", 948), lambda: param.image(224, fft=True, decorrelate=True),
                               thresholds=(512,), show_image=False, progress=False, fixed_image_size=224)
    img = images[-1][0]  # HWC in [0, 1]
    x = torch.from_numpy(np.round(img * 255) / 255).permute(2, 0, 1).unsqueeze(0).float()
    with torch.no_grad():
        p = torch.softmax(m((x - MEAN) / STD), 1)[0]
    print(f"class-948 picture (512 steps): top-1 {int(p.argmax())} p = {float(p.max()):.4f}, p(948) = {float(p[948]):.4f}")


def invert():
    """Also writes Tests/InterpretTests/Fixtures/inversion_reference.json, the errors to beat."""
    import json
    m = model()
    for p in m.parameters():
        p.requires_grad_(False)
    photo = Image.open(os.path.join(ROOT, "Assets", "chelsea.png")).convert("RGB")
    photo = torchvision.transforms.CenterCrop(224)(torchvision.transforms.Resize(256)(photo))
    x0 = torchvision.transforms.ToTensor()(photo).unsqueeze(0)
    reference = {}
    for layer in (2, 4):
        features = m.features[: layer + 1]
        with torch.no_grad():
            phi0 = features((x0 - MEAN) / STD)
        torch.manual_seed(0)
        z = torch.randn(1, 3, 224, 224, requires_grad=True)
        opt = torch.optim.Adam([z], lr=0.05)
        start = time.perf_counter()
        for _ in range(600):
            opt.zero_grad()
            loss = ((features((torch.sigmoid(z) - MEAN) / STD) - phi0) ** 2).sum() / (phi0 ** 2).sum()
            loss.backward()
            opt.step()
        seconds = time.perf_counter() - start
        saved = torch.round(torch.sigmoid(z.detach()) * 255) / 255
        with torch.no_grad():
            error = float(((features((saved - MEAN) / STD) - phi0) ** 2).sum().sqrt() / (phi0 ** 2).sum().sqrt())
        print(f"plain PyTorch loop, features.{layer}: relative feature error of the 8-bit picture {error:.4f} ({seconds:.1f} s for 600 steps)")
        reference[f"features.{layer}"] = round(error, 4)
    with open(os.path.join(ROOT, "Tests", "InterpretTests", "Fixtures", "inversion_reference.json"), "w") as f:
        json.dump(reference, f, indent=1, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    jobs = sys.argv[1:] or ["invert", "visualize"]
    for job in jobs:
        {"visualize": visualize, "invert": invert}[job]()
