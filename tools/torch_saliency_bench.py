#!/usr/bin/env python3
"""Captum / pytorch-grad-cam on PyTorch CPU, the reference for
`loupe bench --model NAME --method gradient,guided_backprop,gradcam`: each method at 224x224,
batch 1 and 16, median of 3 after a warm-up, on torchvision's architecture with random weights.
Run by hand: pip install torch torchvision captum grad-cam
             python3 tools/torch_saliency_bench.py [mobilenet_v2 resnet18 ...]"""
import sys
import time
import warnings

import torch
import torchvision
from captum.attr import GuidedBackprop, Saliency
from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

warnings.filterwarnings("ignore")
LAYERS = {"mobilenet_v2": lambda m: m.features[18], "resnet18": lambda m: m.layer4, "vgg16": lambda m: m.features[29]}

for name in sys.argv[1:] or ["mobilenet_v2", "resnet18"]:
    model = getattr(torchvision.models, name)(weights=None).eval()
    for m in model.modules():
        if hasattr(m, "inplace"):
            m.inplace = False
    for n in (1, 16):
        x = torch.randn(n, 3, 224, 224)
        targets = [i * 37 % 1000 for i in range(n)]
        cam = GradCAM(model=model, target_layers=[LAYERS[name](model)])
        methods = [
            ("gradient (Captum Saliency)", lambda: Saliency(model).attribute(x, target=targets, abs=True).amax(1)),
            ("guided_backprop (Captum)", lambda: GuidedBackprop(model).attribute(x, target=targets)),
            ("gradcam (pytorch-grad-cam)", lambda: cam(input_tensor=x, targets=[ClassifierOutputTarget(t) for t in targets])),
        ]
        for label, f in methods:
            f()
            ts = []
            for _ in range(3):
                s = time.perf_counter()
                f()
                ts.append(time.perf_counter() - s)
            ms = sorted(ts)[1] * 1e3
            print(f"pytorch {torch.__version__} threads={torch.get_num_threads()} {name} batch {n} {label}: {ms:.1f} ms ({ms / n:.1f} ms/image)")
