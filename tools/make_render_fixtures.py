#!/usr/bin/env python3
"""Reference values for the optimization engine (Tests/InterpretTests/Fixtures/render.safetensors).
Run by hand: pip install torch numpy && python3 tools/make_render_fixtures.py

- affine: torch.nn.functional.grid_sample (bilinear, zeros padding, align_corners=True, so
  normalized -1..1 are pixel centres 0..W-1) of a [2, 3, 7, 9] batch through two affine maps,
  forward and the input gradient for a fixed output gradient. Loupe's fill value 0 is
  grid_sample's zeros padding.
- adam: three steps of torch.optim.Adam (lr 0.05) with fixed gradients.
- fourier: Lucid's fft_image + to_valid_rgb in numpy: sigmoid(C @ (irfft2(spectrum * scale) / 4))
  with scale = sqrt(HW) / max(|f|, 1/max(H, W))^decay, for 10x9 (odd width) and 8x8, batch 2.
- regularizers: torch autograd values and gradients of each penalty of Sources/Interpret/
  Regularizers.swift on a [2, 3, 6, 7] image in [0, 1].
- diversity: Lucid's diversity objective (Gram matrices scaled to unit norm, sum of the pairwise
  products over n != m, divided by the batch) on [3, 4, 5, 6] activations, value and gradient.
"""
import json
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(__file__))
from safetensors_io import write_safetensors  # noqa: E402

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), ".."))
OUT = os.path.join(ROOT, "Tests", "InterpretTests", "Fixtures", "render.safetensors")
COLOR = np.array([[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]], dtype=np.float32)
COLOR = COLOR / np.max(np.linalg.norm(COLOR, axis=0))


def affine():
    torch.manual_seed(1)
    x = torch.randn(2, 3, 7, 9, requires_grad=True)
    oh, ow = 6, 8
    maps = [[1.1, 0.2, -0.7, -0.15, 0.9, 0.4], [0.8, -0.3, 1.2, 0.25, 1.05, -0.6]]  # u = a x + b y + c, v = d x + e y + f
    grids = []
    for a, b, c, d, e, f in maps:
        ys, xs = torch.meshgrid(torch.arange(oh, dtype=torch.float64), torch.arange(ow, dtype=torch.float64), indexing="ij")
        u, v = a * xs + b * ys + c, d * xs + e * ys + f
        grids.append(torch.stack([2 * u / (9 - 1) - 1, 2 * v / (7 - 1) - 1], -1))
    grid = torch.stack(grids).float()
    y = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
    gy = torch.randn_like(y)
    y.backward(gy)
    return {"affine.x": x.detach(), "affine.y": y.detach(), "affine.gy": gy, "affine.gx": x.grad}, {"affine_maps": maps}


def adam():
    torch.manual_seed(2)
    p = torch.randn(11, requires_grad=True)
    opt = torch.optim.Adam([p], lr=0.05)
    out = {"adam.p0": p.detach().clone()}
    for t in range(3):
        g = torch.randn(11)
        out[f"adam.g{t}"] = g
        p.grad = g.clone()
        opt.step()
    out["adam.p3"] = p.detach().clone()
    return out, {}


def fourier_image(spectrum, h, w, decay):
    """spectrum [N*3, H, 2*Wf] laid out as Loupe's (real parts, then imaginary parts per row)."""
    wf = w // 2 + 1
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.fftfreq(w)[:wf][None, :]
    freqs = np.sqrt(fx * fx + fy * fy)
    scale = np.sqrt(w * h) / np.maximum(freqs, 1.0 / max(w, h)) ** decay
    complex_spectrum = (spectrum[:, :, :wf] + 1j * spectrum[:, :, wf:]) * scale
    image = np.fft.irfft2(complex_spectrum, s=(h, w)) / 4  # [N*3, H, W]
    n = spectrum.shape[0] // 3
    image = image.reshape(n, 3, h, w)
    decorrelated = np.einsum("ij,njhw->nihw", COLOR, image)
    return 1 / (1 + np.exp(-decorrelated)), image


def fourier():
    rng = np.random.default_rng(3)
    out = {}
    for h, w in [(10, 9), (8, 8)]:
        wf = w // 2 + 1
        spectrum = rng.normal(0, 0.05, (2 * 3, h, 2 * wf)).astype(np.float64)
        rgb, plain = fourier_image(spectrum, h, w, 1.0)
        out[f"fourier{h}x{w}.spectrum"] = torch.from_numpy(spectrum.astype(np.float32))
        out[f"fourier{h}x{w}.image"] = torch.from_numpy(rgb.astype(np.float32))
        out[f"fourier{h}x{w}.plain"] = torch.from_numpy(plain.astype(np.float32))
    return out, {}


def regularizers():
    torch.manual_seed(4)
    x = torch.rand(2, 3, 6, 7, dtype=torch.float64)
    n, c, h, w = x.shape
    out = {"reg.x": x.float()}
    blur_k = torch.tensor([[1, 2, 1], [2, 4, 2], [1, 2, 1]], dtype=torch.float64) / 16

    def tv(x, beta):
        dx = x[:, :, :-1, 1:] - x[:, :, :-1, :-1]
        dy = x[:, :, 1:, :-1] - x[:, :, :-1, :-1]
        return ((dx * dx + dy * dy + 1e-8) ** (beta / 2)).flatten(1).mean(1)

    def freq(x):
        spec = torch.fft.rfft2(x)  # [N, C, H, Wf]
        wf = w // 2 + 1
        fy = torch.fft.fftfreq(h, dtype=torch.float64)[:, None]
        fx = torch.arange(wf, dtype=torch.float64)[None, :] / w
        twice = torch.full((wf,), 2.0, dtype=torch.float64)
        twice[0] = 1
        if w % 2 == 0:
            twice[-1] = 1
        weight = twice[None, :] * torch.sqrt(fy * fy + fx * fx) / (h * w) ** 2
        return ((spec.real ** 2 + spec.imag ** 2) * weight).flatten(1).sum(1)

    def blur(x):
        b = F.conv2d(x, blur_k.expand(c, 1, 3, 3), padding=1, groups=c)
        return ((x - b) ** 2).flatten(1).mean(1)

    terms = {
        "l2": lambda x: ((x - 0.5) ** 2).flatten(1).mean(1),
        "l1": lambda x: (x - 0.5).abs().flatten(1).mean(1),
        "alpha": lambda x: ((x - 0.5).abs() ** 6).flatten(1).mean(1),
        "tv": lambda x: tv(x, 1.0),
        "tv2": lambda x: tv(x, 2.0),
        "freq": freq,
        "blur": blur,
    }
    for name, f in terms.items():
        xi = x.clone().requires_grad_(True)
        v = f(xi)
        v.sum().backward()
        out[f"reg.{name}.value"] = v.detach().float()
        out[f"reg.{name}.grad"] = xi.grad.float()
    return out, {}


def diversity():
    """Lucid's objectives.diversity on activations [3, 4, 5, 6] (NCHW): value and gradient."""
    torch.manual_seed(5)
    a = torch.randn(3, 4, 5, 6, dtype=torch.float64, requires_grad=True)
    n, c = a.shape[:2]
    flat = a.reshape(n, c, -1)
    grams = flat @ flat.transpose(1, 2)
    grams = grams / grams.flatten(1).norm(dim=1).clamp_min(1e-10).view(n, 1, 1)
    value = sum(sum((grams[i] * grams[j]).sum() for j in range(n) if j != i) for i in range(n)) / n
    value.backward()
    return {"diversity.a": a.detach().float(), "diversity.value": value.detach().float().reshape(1), "diversity.grad": a.grad.float()}, {}


def main():
    tensors, meta = {}, {}
    for part in (affine, adam, fourier, regularizers, diversity):
        t, m = part()
        tensors.update(t)
        meta.update(m)
    write_safetensors(OUT, {k: v.float().contiguous() for k, v in tensors.items()}, {"render": json.dumps(meta)})
    print("wrote", os.path.relpath(OUT, ROOT), os.path.getsize(OUT), "bytes")


if __name__ == "__main__":
    main()
