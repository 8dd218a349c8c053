#!/usr/bin/env python3
"""Fixtures for the architecture and weight-loading tests. Run by hand:
    pip install torch torchvision pillow safetensors && python3 tools/make_model_fixtures.py
Tests never run Python. Writes to Tests/ModelsTests/Fixtures/:
  models.safetensors   for each architecture with seeded weights (drawn exactly as
                       Sources/Models/SeededWeights.swift draws them): a small input, the logits,
                       and the gradient of the top-1 logit of each sample with respect to the input
  state_dict_keys.json every torchvision architecture's state_dict names and shapes
  tiny_zip.pth, tiny_legacy.pth   a small state_dict saved by torch.save in both formats
  tiny.safetensors                the same state_dict written by safetensors.torch.save_file
  malicious.pth        a pickle that asks for os.system (must be refused, never run)
  chelsea.json         the real MobileNetV2 on Assets/chelsea.png: top-5 and all logits, when
                       the torchvision weights are present (make models)
  chelsea_input.safetensors  torchvision's preprocessing of Assets/chelsea.png (3x224x224)
"""
import json
import os
import pickle
import sys

import numpy as np
import torch
import torchvision
from PIL import Image
from torchvision import transforms

sys.path.insert(0, os.path.dirname(__file__))
from safetensors_io import write_safetensors  # noqa: E402

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), ".."))
OUT = os.path.join(ROOT, "Tests", "ModelsTests", "Fixtures")
SEED = 20261126
M64 = (1 << 64) - 1


def fnv1a64(text):
    h = 0xCBF29CE484222325
    for b in text.encode():
        h = ((h ^ b) * 0x100000001B3) & M64
    return h


def seeded(name, count, seed=SEED):
    base = np.uint64(fnv1a64(name) ^ seed)
    with np.errstate(over="ignore"):
        z = base + (np.arange(1, count + 1, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15))
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(40)).astype(np.float32) / np.float32(1 << 24)


def fill(model, seed=SEED, only=None, prefix=""):
    """Draws every parameter (or those for which `only(name)` is true) from `seed`; `prefix`
    names a submodule's parameters as the whole model does (`layer1.0.conv1.`)."""
    state = model.state_dict()
    for name, t in state.items():
        if name.endswith("num_batches_tracked") or (only is not None and not only(name)):
            continue
        u = seeded(prefix + name, t.numel(), seed)
        if name.endswith("running_var") or (name.endswith("weight") and t.dim() == 1):
            v = 0.5 + u
        elif name.endswith("bias") or name.endswith("running_mean"):
            v = (2 * u - 1) * np.float32(0.1)
        else:
            fan_in = t[0].numel()
            v = (2 * u - 1) * np.float32(np.sqrt(np.float32(6.0) / np.float32(fan_in)))
        state[name] = torch.from_numpy(v.astype(np.float32)).reshape(t.shape)
    model.load_state_dict(state)
    return model.eval()


def build(arch):
    if arch == "googlenet":
        return torchvision.models.googlenet(weights=None, aux_logits=False, transform_input=True, init_weights=False)
    return getattr(torchvision.models, arch)(weights=None)



def main():
    tensors, meta = {}, {}
    cases = [("alexnet", 1, 64), ("vgg16", 1, 32), ("resnet18", 2, 32), ("resnet50", 1, 32),
             ("mobilenet_v2", 2, 32), ("googlenet", 2, 32)]
    for arch, n, size in cases:
        torch.manual_seed(1)
        model = fill(build(arch))
        x = torch.randn(n, 3, size, size, requires_grad=True)
        logits = model(x)
        target = logits.argmax(dim=1)
        seed = torch.zeros_like(logits)
        seed[torch.arange(n), target] = 1
        (grad,) = torch.autograd.grad(logits, x, seed)
        tensors[f"{arch}.input"] = x.detach()
        tensors[f"{arch}.logits"] = logits.detach()
        tensors[f"{arch}.input_grad"] = grad
        meta[arch] = json.dumps({"seed": SEED, "target": target.tolist()})
        print(arch, tuple(x.shape), "top-1", target.tolist())
    write_safetensors(os.path.join(OUT, "models.safetensors"), tensors, meta)

    keys = {}
    for arch in ["alexnet", "vgg11", "vgg13", "vgg16", "vgg19", "resnet18", "resnet34", "resnet50", "mobilenet_v2", "googlenet"]:
        sd = build(arch).state_dict()
        keys[arch] = [[k, list(v.shape)] for k, v in sd.items()]
    with open(os.path.join(OUT, "state_dict_keys.json"), "w") as f:
        json.dump(keys, f, separators=(",", ":"))

    # Small state_dicts written by torch.save in the zip format and the legacy format.
    torch.manual_seed(2)
    tiny = torch.nn.Sequential(torch.nn.Conv2d(2, 3, 3), torch.nn.BatchNorm2d(3), torch.nn.Linear(4, 5))
    tiny.state_dict()["1.running_var"].uniform_(0.5, 1.5)
    sd = tiny.state_dict()
    sd["half"] = torch.linspace(-1, 1, 6, dtype=torch.float16).reshape(2, 3)
    sd["view"] = torch.arange(12, dtype=torch.float32).reshape(3, 4).t()  # non-contiguous
    torch.save(sd, os.path.join(OUT, "tiny_zip.pth"))
    torch.save(sd, os.path.join(OUT, "tiny_legacy.pth"), _use_new_zipfile_serialization=False)
    # The same state_dict as safetensors' own writer saves it (num_batches_tracked as I64).
    from safetensors.torch import save_file
    save_file({k: v.contiguous() for k, v in sd.items()}, os.path.join(OUT, "tiny.safetensors"))
    write_safetensors(os.path.join(OUT, "tiny_expected.safetensors"),
                      {k: v.float().contiguous() for k, v in sd.items()}, {})


    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned > loupe-pwned-marker",))


    with open(os.path.join(OUT, "malicious.pth"), "wb") as f:
        pickle.dump({"conv.weight": Evil()}, f, protocol=2)

    # torchvision's classification preset on the bundled photo.
    preset = transforms.Compose([transforms.Resize(256), transforms.CenterCrop(224), transforms.ToTensor(),
                                 transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
    image = Image.open(os.path.join(ROOT, "Assets", "chelsea.png")).convert("RGB")
    x = preset(image).unsqueeze(0)
    write_safetensors(os.path.join(OUT, "chelsea_input.safetensors"), {"input": x[0]}, {})
    home = os.environ.get("TORCH_HOME", os.path.expanduser("~/.cache/torch"))
    weights = os.path.join(home, "hub", "checkpoints", "mobilenet_v2-b0353104.pth")
    if os.path.exists(weights):
        model = torchvision.models.mobilenet_v2()
        model.load_state_dict(torch.load(weights, weights_only=True))
        model.eval()
        with torch.no_grad():
            logits = model(x)[0]
        probs = logits.softmax(0)
        top = probs.topk(5)
        with open(os.path.join(OUT, "chelsea.json"), "w") as f:
            json.dump({"top": [{"index": int(i), "probability": float(p)} for p, i in zip(top.values, top.indices)],
                       "logits": [float(v) for v in logits]}, f)
        print("chelsea top-5", [(int(i), round(float(p), 4)) for p, i in zip(top.values, top.indices)])
    else:
        print("no", weights, "- run `make models` first for chelsea.json")


if __name__ == "__main__":
    main()
