"""Loupe from Python: attribution, feature visualization and checks of image networks, computed
by Loupe's Swift library on any OpenCL device (or its CPU reference).

    import loupe
    model = loupe.load("resnet18.onnx")                     # or loupe.from_torch(module, x)
    maps = model.attribute(x, method="gradcam", target=281)
    from loupe.captum import IntegratedGradients            # Captum's classes, Loupe's compute
    from loupe.grad_cam import GradCAM                      # pytorch-grad-cam's
"""
import io
import os

from ._model import Attribution, Classification, Images, Layer, Model, RelevanceMaximization
from ._native import ClosedModelError, DeviceError, LoupeError, LoupeValueError, ModelFileError, call, library, set_progress

__all__ = ["load", "from_torch", "devices", "methods", "load_image", "version", "set_progress", "Model", "Attribution", "Classification",
           "Images", "Layer", "RelevanceMaximization", "LoupeError", "LoupeValueError", "ModelFileError", "DeviceError", "ClosedModelError"]
try:
    from ._version import __version__  # written into the wheel from Sources/Models/Version.swift
except ImportError:  # the source tree
    __version__ = "0+source"


def version():
    """The version of the loaded library."""
    return library().loupe_version().decode()


def devices():
    """The devices Loupe can run on: each OpenCL device (opencl:N) and the CPU reference (cpu)."""
    payload, _ = call(0, "devices")
    return payload["devices"]


def methods():
    """The attribution methods, with whether each reads a layer (the CAM family)."""
    payload, _ = call(0, "methods")
    return payload["methods"]


def _open_options(arch, device, preset, random_weights, preprocessing):
    options = {"device": device, "preset": preset}
    if arch:
        options["arch"] = arch
    if random_weights is not None:
        options["random_weights"] = int(random_weights)
    options.update(preprocessing)
    return options


def load(source, arch=None, device="auto", preset="imagenet", random_weights=None, name=None, **preprocessing):
    """Opens a model: a path (ONNX, a .pth checkpoint, safetensors), an architecture name whose
    torchvision weights are in $TORCH_HOME/hub/checkpoints, or a file's bytes. `arch` names the
    architecture of a weight file when its name and keys do not; `device` is "auto", "cpu" or
    "opencl:N"; `preset` and resize, crop, interpolation, mean, std set the preprocessing;
    input_size=[height, width] the size `layers()` and `info` run at (default: the crop)."""
    import ctypes
    from ._native import check
    options = _open_options(arch, device, preset, random_weights, preprocessing)
    import json
    text = json.dumps(options).encode()
    handle = ctypes.c_uint64(0)
    lib = library()
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        label = name or "model.onnx"
        check(lib.loupe_open_bytes(data, len(data), label.encode(), text, ctypes.byref(handle)))
    else:
        path = os.fspath(source)
        label = name or os.path.basename(path)
        check(lib.loupe_open(path.encode(), text, ctypes.byref(handle)))
    return Model(handle.value, label)


def from_torch(module, example_input, device="auto", preset="imagenet", opset=17, **preprocessing):
    """A torch module as a Loupe model: exported to ONNX in memory (torch.onnx's TorchScript
    exporter, batch left free), its layers named as the module names them (`layer4.1`,
    `features.18`), so `layer=model.layer4` or `"layer4"` reach the same layer. Needs torch and onnx."""
    import torch
    was_training = module.training
    module.eval()
    buffer = io.BytesIO()
    example_input = torch.as_tensor(example_input)
    example = example_input[:1] if example_input.dim() == 4 else example_input
    try:
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # The exporter names the graph's output by a number: name it by the module that
            # returns it (written as a scope, so that layer names reach it too).
            last = _last_module(module, example.detach().float())
            output = "/" + "/".join(last.split(".")) + "/output" if last else "output"
            torch.onnx.export(module, (example.detach().float(),), buffer, dynamo=False, opset_version=opset,
                              input_names=["input"], output_names=[output],
                              dynamic_axes={"input": {0: "batch"}, output: {0: "batch"}})
    finally:
        module.train(was_training)
    size = [int(example.shape[-2]), int(example.shape[-1])] if example.dim() == 4 else None
    model = load(buffer.getvalue(), device=device, preset=preset, name=f"{type(module).__name__}.onnx",
                 **({"input_size": size} if size else {}), **preprocessing)
    model._bind_torch(module)
    return model


def _last_module(module, example):
    """The name of the innermost submodule whose output is the network's output, or None."""
    import torch
    outputs, hooks = {}, []
    for name, sub in module.named_modules():
        if name:
            hooks.append(sub.register_forward_hook(lambda m, i, o, name=name: outputs.setdefault(name, o)))
    try:
        with torch.no_grad():
            y = module(example)
    finally:
        for h in hooks:
            h.remove()
    names = [name for name, o in outputs.items() if o is y]
    return max(names, key=lambda n: n.count("."), default=None)


def load_image(path, preset="imagenet", **preprocessing):
    """An image file (PNG or JPEG) as the network's input x [1, 3, H, W] (float32, normalized),
    resized and cropped as `preset` says (torchvision's transforms, pixel-exact)."""
    payload, arrays = call(0, "preprocess", {"path": os.fspath(path), "preset": preset, **preprocessing})
    return arrays["x"]
