#!/usr/bin/env python3
"""Reference relevance maximization from zennit-crp for Tests/InterpretTests (RelevanceMaximizationTests).
Run by hand: pip install torch torchvision zennit zennit-crp && python3 tools/make_relmax_fixtures.py

Seeded ResNet18 (layer1) and MobileNetV2 (features.4) with zennit's canonizers and
epsilon_plus_flat, as tools/make_crp_fixtures.py; a dataset of six real photos (Assets/, the
shorter side resized to 64 then the centre 64 x 64, ImageNet-normalized), each image's target
its top-1 class. zennit-crp's FeatureVisualization.run in batches of 4 (so its running top-k is
merged across batches), twice: with its defaults (max_target "sum", abs_norm) and with "max"
unnormalized. For each: the images ranked per channel, their scores and the most relevant
neuron (zennit-crp's data/rel/rf arrays). Then get_max_reference(rf=True) for two channels,
top three images: the conditional heatmap of the channel's most relevant neuron (relevance
started at the layer with its activation), and the crop window vis_img_heatmap takes from it.
"""
import json
import os
import shutil
import sys
import tempfile

import numpy as np
import torch
from torchvision.transforms.functional import gaussian_blur

from crp.attribution import CondAttribution
from crp.concepts import ChannelConcept
from crp.helper import load_maximization, max_norm
from crp.image import get_crop_range
from crp.visualization import FeatureVisualization

sys.path.insert(0, os.path.dirname(__file__))
from make_lrp_fixtures import composite  # noqa: E402
from make_model_fixtures import SEED, build, fill  # noqa: E402
from make_saliency_fixtures import no_inplace  # noqa: E402
from photo_input import photo_tensor  # noqa: E402
from safetensors_io import write_safetensors  # noqa: E402

ROOT = os.path.join(os.path.dirname(__file__), "..")
OUT = os.path.join(ROOT, "Tests", "InterpretTests", "Fixtures", "relmax.safetensors")
LAYERS = {"resnet18": "layer1", "mobilenet_v2": "features.4"}
PHOTOS = ["chelsea.png", "astronaut.png", "coffee.png", "gravel.png", "brick.png", "coins.png"]
COMPOSITE = "epsilon_plus_flat"
SIZE = 64


def photo(name):
    return photo_tensor(os.path.join(ROOT, "Assets", "photos", name), SIZE)


class Photos(torch.utils.data.Dataset):
    def __init__(self, x, targets):
        self.x, self.targets = x, targets

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i], self.targets[i]


def main():
    x = torch.stack([photo(n) for n in PHOTOS])
    tensors, meta = {"input": x.contiguous()}, {"photos": json.dumps(PHOTOS)}
    for arch, layer in LAYERS.items():
        model = no_inplace(fill(build(arch))).eval()
        targets = model(x).argmax(1).tolist()
        attribution = CondAttribution(model, no_param_grad=True)
        settings = {}
        model64 = no_inplace(fill(build(arch))).eval().double()
        attribution64 = CondAttribution(model64, no_param_grad=True)
        floors = {}
        for key, target, norm in [("sum_normed", "sum", True), ("max_unnormed", "max", False)]:
            # zennit-crp keeps its results in files, read again by get_max_reference below.
            results = tempfile.mkdtemp()
            fv = FeatureVisualization(attribution, Photos(x, targets), {layer: ChannelConcept()},
                                      max_target=target, abs_norm=norm, path=results)
            fv.run(composite(COMPOSITE, arch, x), 0, len(x), batch_size=4)
            data, rel, rf = (np.array(a) for a in load_maximization(fv.RelMax.PATH, layer))
            with tempfile.TemporaryDirectory() as tmp:
                # The same run in float64: how far float32 rounding alone moves the scores
                # (each entry's distance over its channel's largest score).
                fv64 = FeatureVisualization(attribution64, Photos(x.double(), targets), {layer: ChannelConcept()},
                                            max_target=target, abs_norm=norm, path=tmp)
                fv64.run(composite(COMPOSITE, arch, x.double()), 0, len(x), batch_size=4)
                data64, rel64, _ = (np.array(a) for a in load_maximization(fv64.RelMax.PATH, layer))
                by_image = {(int(i), k): v for k in range(rel64.shape[1]) for i, v in zip(data64[:, k], rel64[:, k])}
                scale = np.abs(rel64).max(0) + 1e-12
                floors[key] = float(max(abs(rel[r, k] - by_image[(int(data[r, k]), k)]) / scale[k]
                                        for r in range(rel.shape[0]) for k in range(rel.shape[1])))
            tensors[f"{arch}.{key}.images"] = torch.from_numpy(data.astype(np.float32))
            tensors[f"{arch}.{key}.scores"] = torch.from_numpy(rel.astype(np.float32))
            tensors[f"{arch}.{key}.neurons"] = torch.from_numpy(rf.astype(np.float32))
            if key == "sum_normed":
                # Two channels: the one most relevant for the first photo and the one ranked
                # lowest there; their three top images' conditional heatmaps and crops.
                channels = [int(np.argmax(rel[0])), int(np.argmin(rel[0]))]
                refs = fv.get_max_reference(channels, layer, "relevance", (0, 3),
                                            composite=composite(COMPOSITE, arch, x[:3]), rf=True, plot_fn=None)
                crops = {}
                for c in channels:
                    _, heat = refs[c]
                    tensors[f"{arch}.heatmaps.{c}"] = heat.detach().float().contiguous()
                    crops[c] = []
                    for h in heat:
                        blurred = max_norm(gaussian_blur(h.detach().unsqueeze(0), kernel_size=19)[0])
                        tensors.setdefault(f"{arch}.blurred.{c}", []).append(blurred)
                        crops[c].append([int(v) for v in get_crop_range(blurred, 0.1)])
                    tensors[f"{arch}.blurred.{c}"] = torch.stack(tensors[f"{arch}.blurred.{c}"]).float().contiguous()
                settings = {"channels": channels, "crops": {str(c): v for c, v in crops.items()},
                            "images": [[int(i) for i in data[:3, c]] for c in channels],
                            "neurons": [[int(i) for i in rf[:3, c]] for c in channels]}
            shutil.rmtree(results)
        meta[arch] = json.dumps({"seed": SEED, "layer": layer, "composite": COMPOSITE, "targets": targets,
                                 "float64_error": floors, **settings})
        print(arch, layer, "targets", targets, "reference channels", settings["channels"], "crops", settings["crops"],
              "float32 vs float64", {k: f"{v:.2e}" for k, v in floors.items()})
    write_safetensors(OUT, tensors, meta)
    print("wrote", os.path.normpath(OUT), os.path.getsize(OUT), "bytes")


if __name__ == "__main__":
    main()
