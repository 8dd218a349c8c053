#!/usr/bin/env python3
"""Reference relevance maps from zennit for Tests/InterpretTests (LRPTests).
Run by hand: pip install torch torchvision zennit && python3 tools/make_lrp_fixtures.py

ResNet18, VGG16 and MobileNetV2 with seeded weights (tools/make_model_fixtures.py's generator,
which Sources/Models/SeededWeights.swift mirrors), one 64x64 input (32x32 for VGG16), target =
top-1 class, relevance seeded with the one-hot vector (zennit's `attributor(x, one_hot)`).
Each of zennit's five LRP composites (epsilon_plus, epsilon_plus_flat, epsilon_gamma_box with
ImageNet's bounds, epsilon_alpha2_beta1, epsilon_alpha2_beta1_flat), and per model one composite
assembled from zennit's rules with other parameters (w_square and z-plus first, gamma 0.5,
alpha 1 beta 0, epsilon 0.01), which Loupe spells as `conv=...,linear=...,first=...`.

Canonizers: zennit's ResNetCanonizer (batch norms merged, each block's addition a Sum module
that the Norm rule splits by contribution) and VGGCanonizer. zennit ships none for MobileNetV2,
whose residual addition and global average pool are functions, not modules, so zennit's rules
never reach them and they take the plain gradient; the script applies the same canonization
ResNet gets (the addition as a Sum module, the pool as an AdaptiveAvgPool2d module), which is
what Loupe does for every addition and average pool.

Each map is computed in float32 and float64; the metadata records their relative L2 distance
(the reference's own rounding error, which bounds what the Swift tests can ask).
"""
import json
import os
import sys

import torch
from torchvision.models.mobilenetv2 import InvertedResidual, MobileNetV2
from zennit.attribution import Gradient
from zennit.canonizers import AttributeCanonizer, CompositeCanonizer, SequentialMergeBatchNorm
from zennit.composites import (EpsilonAlpha2Beta1, EpsilonAlpha2Beta1Flat, EpsilonGammaBox, EpsilonPlus, EpsilonPlusFlat,
                               LayerMapComposite, SpecialFirstLayerMapComposite)
from zennit.layer import Sum
from zennit.rules import AlphaBeta, Epsilon, Gamma, Norm, Pass, WSquare, ZPlus
from zennit.torchvision import ResNetCanonizer, VGGCanonizer
from zennit.types import Activation, AvgPool, BatchNorm, Convolution

sys.path.insert(0, os.path.dirname(__file__))
from make_model_fixtures import SEED, build, fill  # noqa: E402
from make_saliency_fixtures import no_inplace, safe_input  # noqa: E402
from safetensors_io import write_safetensors  # noqa: E402

OUT = os.path.join(os.path.dirname(__file__), "..", "Tests", "InterpretTests", "Fixtures", "lrp.safetensors")
SIZES = {"resnet18": 64, "vgg16": 32, "mobilenet_v2": 64}
MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
# The assembled composite per model, as Loupe's --composite spells it.
CUSTOM = {
    "resnet18": "conv=gamma:0.5,linear=epsilon:0.01,first=w_square",
    "vgg16": "conv=alpha_beta:1:0,linear=epsilon:0.01,first=z_plus",
    "mobilenet_v2": "conv=gamma:0.5,linear=epsilon:0.01,first=w_square",
}


class MobileNetV2Canonizer(AttributeCanonizer):
    """InvertedResidual's addition as a Sum module (as zennit's ResNet canonizers do) and
    MobileNetV2's functional global pool as an AdaptiveAvgPool2d module."""
    def __init__(self):
        super().__init__(self._attribute_map)

    @classmethod
    def _attribute_map(cls, name, module):
        if isinstance(module, InvertedResidual) and module.use_res_connect:
            return {"forward": cls.block_forward.__get__(module), "canonizer_sum": Sum()}
        if isinstance(module, MobileNetV2):
            return {"forward": cls.model_forward.__get__(module), "canonizer_pool": torch.nn.AdaptiveAvgPool2d(1)}
        return None

    @staticmethod
    def block_forward(self, x):
        return self.canonizer_sum(torch.stack([x, self.conv(x)], dim=-1))

    @staticmethod
    def model_forward(self, x):
        x = self.canonizer_pool(self.features(x))
        return self.classifier(torch.flatten(x, 1))


def canonizers(arch):
    if arch == "resnet18":
        return [ResNetCanonizer()]
    if arch == "vgg16":
        return [VGGCanonizer()]
    return [CompositeCanonizer((SequentialMergeBatchNorm(), MobileNetV2Canonizer()))]


def custom(spec, canon):
    """The composite `conv=...,linear=...,first=...` built from zennit's rules, with the base
    map every zennit composite has (Pass for activations and batch norms, Norm for sums and
    average pools)."""
    def rule(text):
        name, *args = text.split(":")
        args = [float(a) for a in args]
        return {"epsilon": lambda: Epsilon(*args), "gamma": lambda: Gamma(*args), "z_plus": lambda: ZPlus(),
                "alpha_beta": lambda: AlphaBeta(*args), "w_square": lambda: WSquare()}[name]()
    parts = dict(p.split("=", 1) for p in spec.split(","))
    base = [(Activation, Pass()), (Sum, Norm()), (AvgPool, Norm()), (BatchNorm, Pass())]
    layer_map = base + [(Convolution, rule(parts["conv"])), (torch.nn.Linear, rule(parts["linear"]))]
    first_map = [((Convolution, torch.nn.Linear), rule(parts["first"]))]
    return SpecialFirstLayerMapComposite(layer_map=layer_map, first_map=first_map, canonizers=canon)


def composite(name, arch, x):
    canon = canonizers(arch)
    mean = torch.tensor(MEAN, dtype=x.dtype).view(1, 3, 1, 1)
    std = torch.tensor(STD, dtype=x.dtype).view(1, 3, 1, 1)
    low, high = ((0 - mean) / std).expand_as(x), ((1 - mean) / std).expand_as(x)
    return {
        "epsilon_plus": lambda: EpsilonPlus(canonizers=canon),
        "epsilon_plus_flat": lambda: EpsilonPlusFlat(canonizers=canon),
        "epsilon_gamma_box": lambda: EpsilonGammaBox(low=low, high=high, canonizers=canon),
        "epsilon_alpha2_beta1": lambda: EpsilonAlpha2Beta1(canonizers=canon),
        "epsilon_alpha2_beta1_flat": lambda: EpsilonAlpha2Beta1Flat(canonizers=canon),
    }.get(name, lambda: custom(name, canon))()


def relevance(model, x, target, name, arch):
    one_hot = torch.zeros(1, 1000, dtype=x.dtype)
    one_hot[0, target] = 1
    with Gradient(model=model, composite=composite(name, arch, x)) as attributor:
        _, r = attributor(x, one_hot)
    return r.detach()


def main():
    tensors, meta = {}, {}
    for arch in ["resnet18", "vgg16", "mobilenet_v2"]:
        model = no_inplace(fill(build(arch))).eval()
        input_seed, x = safe_input(model, SIZES[arch])
        target = int(model(x).argmax())
        model64 = no_inplace(fill(build(arch))).eval().double()
        tensors[f"{arch}.input"] = x[0].float()
        errors = {}
        for name in ["epsilon_plus", "epsilon_plus_flat", "epsilon_gamma_box", "epsilon_alpha2_beta1",
                     "epsilon_alpha2_beta1_flat", CUSTOM[arch]]:
            r32 = relevance(model, x, target, name, arch)
            r64 = relevance(model64, x.double(), target, name, arch)
            key = "custom" if name == CUSTOM[arch] else name
            tensors[f"{arch}.{key}"] = r32[0].float().contiguous()
            errors[key] = float((r32.double() - r64).norm() / r64.norm())
            print(arch, key, "sum", float(r64.sum()), "float32 vs float64", errors[key])
        meta[arch] = json.dumps({"seed": SEED, "input_seed": input_seed, "target": target, "custom": CUSTOM[arch],
                                 "float64_error": errors})
    write_safetensors(OUT, tensors, meta)
    print("wrote", os.path.normpath(OUT), os.path.getsize(OUT), "bytes")


if __name__ == "__main__":
    main()
