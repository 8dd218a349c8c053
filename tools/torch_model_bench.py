#!/usr/bin/env python3
"""PyTorch CPU reference for `loupe bench --model NAME`: forward, and forward + backward to the
input from the top-1 logit, at 224x224, batch 1 and 8, median of 5 after a warm-up.
Run by hand: python3 tools/torch_model_bench.py [mobilenet_v2 resnet18 ...]"""
import sys
import time

import torch
import torchvision

for name in sys.argv[1:] or ["mobilenet_v2", "resnet18"]:
    model = getattr(torchvision.models, name)(weights=None).eval()
    for n in (1, 8):
        x = torch.randn(n, 3, 224, 224)

        def forward():
            with torch.no_grad():
                model(x)

        def backward():
            xi = x.clone().requires_grad_(True)
            y = model(xi)
            y[:, 0].sum().backward()

        for label, f in [("forward", forward), ("forward+backward", backward)]:
            f()
            ts = []
            for _ in range(5):
                s = time.perf_counter()
                f()
                ts.append(time.perf_counter() - s)
            ms = sorted(ts)[2] * 1e3
            print(f"pytorch {torch.__version__} threads={torch.get_num_threads()} {name} batch {n} {label}: {ms:.1f} ms ({ms / n:.1f} ms/image)")
