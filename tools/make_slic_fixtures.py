#!/usr/bin/env python3
"""SLIC superpixels from scikit-image for Tests/ImageIOTests (SuperpixelTests).
Run by hand: pip install scikit-image pillow && python3 tools/make_slic_fixtures.py

scikit-image's `segmentation.slic` with its defaults for a colour image (Lab, compactness 10,
10 iterations, connectivity enforced) but start_label=0, on real photos made small (Assets'
chelsea at 48 x 40 and two of scikit-image's CC0 photos, astronaut at 40 x 56 and coffee at
64 x 48), for 16, 40 and 150 segments (150 leaves segments of a few pixels: connectivity's
merging at work); also `rgb2lab` of each photo (after slic's scaling to [0, 1]) and
`regular_grid`'s seeds.
"""
import json
import os
import sys

import numpy as np
from PIL import Image
from skimage import data
from skimage.color import rgb2lab
from skimage.segmentation import slic
from skimage.util import regular_grid

sys.path.insert(0, os.path.dirname(__file__))
from safetensors_io import write_safetensors  # noqa: E402

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), ".."))
OUT = os.path.join(ROOT, "Tests", "ImageIOTests", "Fixtures", "slic.safetensors")
SEGMENTS = [16, 40, 150]


def photos():
    chelsea = np.asarray(Image.open(os.path.join(ROOT, "Assets", "chelsea.png")).convert("RGB"))
    for name, image, (w, h) in [("chelsea", chelsea, (48, 40)), ("astronaut", data.astronaut(), (40, 56)), ("coffee", data.coffee(), (64, 48))]:
        yield name, np.asarray(Image.fromarray(image).resize((w, h), Image.BILINEAR))


def main():
    tensors, meta = {}, {}
    import torch
    for name, image in photos():
        h, w = image.shape[:2]
        tensors[f"{name}.image"] = torch.from_numpy(image.astype(np.float32))
        scaled = image.astype(np.float64) / 255
        scaled = (scaled - scaled.min()) / (scaled.max() - scaled.min())
        tensors[f"{name}.lab"] = torch.from_numpy(rgb2lab(scaled).astype(np.float32))
        info = {}
        for n in SEGMENTS:
            labels = slic(image, n_segments=n, start_label=0)
            grid = regular_grid((1, h, w), n)
            info[str(n)] = {"count": int(labels.max()) + 1,
                            "start": [int(grid[1].start), int(grid[2].start)], "step": [int(grid[1].step), int(grid[2].step)]}
            tensors[f"{name}.labels{n}"] = torch.from_numpy(labels.astype(np.float32))
            print(name, (h, w), n, "segments ->", info[str(n)])
        meta[name] = json.dumps(info)
    write_safetensors(OUT, tensors, meta)
    print("wrote", os.path.relpath(OUT, ROOT), os.path.getsize(OUT), "bytes")


if __name__ == "__main__":
    main()
