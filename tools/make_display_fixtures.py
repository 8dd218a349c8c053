#!/usr/bin/env python3
"""Writes Tests/ImageIOTests/Fixtures/display_reference.json: matplotlib's colour-map lookup
tables (the maps Loupe offers) and Captum's display scaling of attribution maps
(`visualize_image_attr`: channel sum, `_normalize_attr` per sign and outlier percentage).
Run by hand: pip install matplotlib captum && python3 tools/make_display_fixtures.py"""
import json
import os

import numpy as np
from matplotlib import colormaps
from matplotlib.colors import LinearSegmentedColormap
from captum.attr._utils.visualization import _normalize_attr

maps = {
    "viridis": colormaps["viridis"], "rdbu": colormaps["RdBu_r"],
    "rdwhgn": LinearSegmentedColormap.from_list("RdWhGn", ["red", "white", "green"]),
    "greens": colormaps["Greens"], "reds": colormaps["Reds"], "blues": colormaps["Blues"], "gray": colormaps["gray"],
}
tables = {name: (cmap.resampled(256)(np.arange(256))[:, :3] * 255).round().astype(int).tolist() for name, cmap in maps.items()}

rng = np.random.default_rng(7)
raw = rng.normal(size=(3, 12, 10)).astype(np.float32)
raw[0, 3, 4] = 40.0   # outliers the percentile rule must ignore
raw[1, 7, 2] = -25.0
combined = raw.sum(axis=0)
scaled = []
for sign in ["absolute_value", "positive", "negative", "all"]:
    for outlier in [2, 10, 0]:
        out = _normalize_attr(combined.copy(), sign, outlier)
        scaled.append({"sign": sign, "outlier_percent": outlier, "values": out.astype(np.float64).ravel().tolist()})

out = os.path.join(os.path.dirname(__file__), "..", "Tests", "ImageIOTests", "Fixtures", "display_reference.json")
with open(out, "w") as f:
    json.dump({"colormaps": tables, "raw": raw.astype(np.float64).ravel().tolist(), "shape": [3, 12, 10], "scaled": scaled}, f)
print("wrote", os.path.normpath(out))
