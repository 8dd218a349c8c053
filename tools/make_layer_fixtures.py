#!/usr/bin/env python3
"""Reference layer and neuron attributions from Captum for Tests/InterpretTests
(LayerAttributionTests). Run by hand: pip install torch torchvision captum && python3 tools/make_layer_fixtures.py

ResNet18 (layer3), VGG16 (features.22) and MobileNetV2 (features.13) with seeded weights
(tools/make_model_fixtures.py's generator), the inputs and targets of the saliency fixtures
(64x64, VGG16 32x32; every layer 4 x 4 positions), in-place activations off (a hook on a layer
that an in-place ReLU follows would read the ReLU's output):

- LayerGradientXActivation, LayerConductance and LayerIntegratedGradients at the layer for the
  target class, the path methods from a black image (zero pixels, normalized) in 16 steps;
- NeuronGradient and NeuronIntegratedGradients of the layer's most active unit (channel, y, x),
  the same path.

Each with its distance from the same computation in float64 (the tests' bound is
max(1e-3, 4 x that distance), and 1e-2 for the path methods: on every path some ReLU input passes
within float32 rounding of its kink (kink_margin over the 33 points: 1e-9 to 3e-7 for every count
of steps from 10 to 20 on all three networks), where a backend may pass a gradient PyTorch
blocks; at ResNet18's midpoint one input of layer4.1's ReLU is 2e-7 of its range from zero, which
moves the CPU reference's conductance by 0.7%).
"""
import json
import os
import sys

import torch
from captum.attr import (LayerConductance, LayerGradientXActivation, LayerIntegratedGradients, NeuronGradient,
                         NeuronIntegratedGradients)

sys.path.insert(0, os.path.dirname(__file__))
from make_model_fixtures import SEED  # noqa: E402
from make_saliency_fixtures import module, saliency_cases  # noqa: E402
from safetensors_io import write_safetensors  # noqa: E402

OUT = os.path.join(os.path.dirname(__file__), "..", "Tests", "InterpretTests", "Fixtures", "layer.safetensors")
LAYERS = {"resnet18": "layer3", "vgg16": "features.22", "mobilenet_v2": "features.13"}
MEAN, STD = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1), torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
STEPS = 16


def attributions(model, layer, x, target, neuron, steps):
    """Every method's attribution of x (in the model's dtype)."""
    black = ((0 - MEAN) / STD).expand_as(x).to(x.dtype)
    m = module(model, layer)
    return {
        "layer_gradient_x_activation": LayerGradientXActivation(model, m).attribute(x, target=target),
        "layer_conductance": LayerConductance(model, m).attribute(x, baselines=black, target=target, n_steps=steps),
        "layer_integrated_gradients": LayerIntegratedGradients(model, m).attribute(x, baselines=black, target=target, n_steps=steps),
        "neuron_gradient": NeuronGradient(model, m).attribute(x, neuron_selector=neuron),
        "neuron_integrated_gradients": NeuronIntegratedGradients(model, m).attribute(x, neuron_selector=neuron, baselines=black,
                                                                                    n_steps=steps),
    }


def main():
    tensors, meta = {}, {}
    for arch, x, target, model, model64 in saliency_cases():
        layer = LAYERS[arch]
        seen = []
        hook = module(model, layer).register_forward_hook(lambda m, i, o: seen.append(o.detach()))
        with torch.no_grad():
            model(x)
        hook.remove()
        c, y, xx = (int(v) for v in torch.unravel_index(seen[0][0].argmax(), seen[0][0].shape))
        steps = STEPS
        a32 = attributions(model, layer, x, target, (c, y, xx), steps)
        a64 = attributions(model64, layer, x.double(), target, (c, y, xx), steps)
        errors = {}
        for name, value in a32.items():
            errors[name] = float((value.detach().double() - a64[name].detach()).norm() / a64[name].detach().norm())
            tensors[f"{arch}.{name}"] = value[0].detach().float().contiguous()
        tensors[f"{arch}.input"] = x[0]
        meta[arch] = json.dumps({"seed": SEED, "target": target, "layer": layer, "steps": steps, "neuron": [c, y, xx],
                                 "float64_error": errors})
        print(arch, layer, "steps", steps, "neuron (c, y, x)", (c, y, xx), "float32 vs float64", {k: f"{v:.2e}" for k, v in errors.items()})
    write_safetensors(OUT, tensors, meta)
    print("wrote", os.path.normpath(OUT), os.path.getsize(OUT), "bytes")


if __name__ == "__main__":
    main()
