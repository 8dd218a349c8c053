#!/usr/bin/env python3
"""Reference conditional heatmaps from zennit-crp for Tests/InterpretTests (ConceptRelevanceTests).
Run by hand: pip install torch torchvision zennit zennit-crp && python3 tools/make_crp_fixtures.py

The networks, inputs, targets and composites of tools/make_lrp_fixtures.py (seeded ResNet18,
VGG16 and MobileNetV2 with zennit's canonizers), and zennit-crp's CondAttribution with its
defaults: the relevance starts at the target's logit (its value, not 1), flows to the layer
through every path (exclude_parallel), is masked to the concept's channels there
(ChannelConcept.mask) and flows on to the input; the heatmap is the input relevance summed over
colour channels. Per network one layer (ResNet18's layer3, VGG16's features.22, MobileNetV2's
features.13) and two concepts: the channel of largest relevance there, and it with the next
largest together. With each heatmap: its distance from the same run in float64.
"""
import json
import os
import sys

import torch
from crp.attribution import CondAttribution

sys.path.insert(0, os.path.dirname(__file__))
from make_lrp_fixtures import composite  # noqa: E402
from make_model_fixtures import SEED, build, fill  # noqa: E402
from make_saliency_fixtures import no_inplace  # noqa: E402
from safetensors_io import read_safetensors, write_safetensors  # noqa: E402

ROOT = os.path.join(os.path.dirname(__file__), "..", "Tests", "InterpretTests", "Fixtures")
OUT = os.path.join(ROOT, "crp.safetensors")
LAYERS = {"resnet18": "layer3", "vgg16": "features.22", "mobilenet_v2": "features.13"}
COMPOSITE = "epsilon_plus_flat"


def attribute(model, x, conditions, arch, record=()):
    x = x.clone().requires_grad_(True)
    return CondAttribution(model, no_param_grad=True)(x, conditions, composite(COMPOSITE, arch, x), record_layer=list(record))


def main():
    lrp, lrp_meta = read_safetensors(os.path.join(ROOT, "lrp.safetensors"))
    tensors, meta = {}, {}
    for arch, layer in LAYERS.items():
        target = json.loads(lrp_meta[arch])["target"]
        x = torch.from_numpy(lrp[f"{arch}.input"])[None]
        model = no_inplace(fill(build(arch))).eval()
        model64 = no_inplace(fill(build(arch))).eval().double()
        whole = attribute(model, x, [{"y": [target]}], arch, record=[layer])
        ranked = whole.relevances[layer][0].sum(dim=(1, 2)).argsort(descending=True).tolist()
        concepts = {"one": ranked[:1], "two": ranked[:2]}
        errors = {}
        for key, channels in concepts.items():
            h32 = attribute(model, x, [{"y": [target], layer: channels}], arch).heatmap
            h64 = attribute(model64, x.double(), [{"y": [target], layer: channels}], arch).heatmap
            errors[key] = float((h32.double() - h64).norm() / h64.norm())
            tensors[f"{arch}.{key}"] = h32[0].detach().float().contiguous()
        tensors[f"{arch}.input"] = x[0]
        meta[arch] = json.dumps({"seed": SEED, "target": target, "layer": layer, "composite": COMPOSITE,
                                 "concepts": concepts, "float64_error": errors})
        print(arch, layer, "concepts", concepts, "float32 vs float64", {k: f"{v:.2e}" for k, v in errors.items()})
    write_safetensors(OUT, tensors, meta)
    print("wrote", os.path.normpath(OUT), os.path.getsize(OUT), "bytes")


if __name__ == "__main__":
    main()
