"""Models: open, classify, attribute, visualize, invert, check."""
import os
import re
import warnings

import numpy as np

from . import _display
from ._native import ClosedModelError, LoupeValueError, call, check, library

import ctypes


def _is_torch(x):
    return type(x).__module__.startswith("torch") and hasattr(x, "detach")


def _like(reference, array):
    """`array` as a torch tensor when `reference` is one, else as numpy."""
    if _is_torch(reference):
        import torch
        return torch.from_numpy(np.ascontiguousarray(array)).to(reference.device)
    return array


def targets_list(target, n):
    """Captum's target forms (None, an int, a list, a 0-D or 1-D tensor or array) as n ints or None;
    an ImageNet class name ("tabby cat") stands for its index, alone or in a list."""
    if target is None:
        return None
    if isinstance(target, str):
        return [target] * n
    if _is_torch(target):
        target = target.detach().cpu().numpy()
    if isinstance(target, np.ndarray):
        if not np.issubdtype(target.dtype, np.integer):
            raise LoupeValueError(f"target must hold integers, got {target.dtype}")
        target = target.reshape(-1).tolist()
    if isinstance(target, (int, np.integer)) and not isinstance(target, bool):
        return [int(target)] * n
    if isinstance(target, (list, tuple)):
        if not all(isinstance(t, str) or (isinstance(t, (int, np.integer)) and not isinstance(t, bool)) for t in target):
            raise LoupeValueError("target: Loupe takes class indices or names (one per image); tuples of output indices are not supported")
        values = [t if isinstance(t, str) else int(t) for t in target]
        if len(values) == 1:
            return values * n
        if len(values) != n:
            raise LoupeValueError(f"{len(values)} targets for {n} images")
        return values
    raise LoupeValueError(f"target must be an int, a class name, a list of them or a tensor of ints, got {type(target).__name__}")


class Layer(tuple):
    """A layer: name, kind (the op), and its output shape for one image at the model's input size."""
    __slots__ = ()

    def __new__(cls, name, kind, shape):
        return tuple.__new__(cls, (name, kind, tuple(shape)))

    name = property(lambda self: self[0])
    kind = property(lambda self: self[1])
    shape = property(lambda self: self[2])

    def __repr__(self):
        return f"Layer({self.name!r}, {self.kind!r}, {self.shape})"


class Attribution:
    """An attribution of N images: `map` [N, H, W] (what `loupe saliency` draws), `raw` [N, 3, H, W]
    for gradient methods (None for CAMs), `delta` [N] for integrated gradients, `targets`;
    `layer_attribution` [N, C, h, w] for the layer methods; `objective` and its `values` [N]
    when an objective, not a class, was explained."""

    def __init__(self, method, payload, arrays, reference):
        self.method = method
        self.targets = payload.get("targets")
        self.layer = payload.get("layer")
        self.settings = payload.get("settings", {})
        self.milliseconds = payload.get("milliseconds")  # the method's wall time for the batch
        self.map = _like(reference, arrays["map"]) if "map" in arrays else None
        self.raw = _like(reference, arrays["raw"]) if "raw" in arrays else None
        self.delta = _like(reference, arrays["delta"]) if "delta" in arrays else None
        self.layer_map = _like(reference, arrays["layer_map"]) if "layer_map" in arrays else None
        self.layer_attribution = _like(reference, arrays["layer_attribution"]) if "layer_attribution" in arrays else None
        self.objective = payload.get("objective")
        self.values = _like(reference, arrays["values"]) if "values" in arrays else None
        self._maps = arrays.get("map", arrays.get("layer_map"))

    def __repr__(self):
        shape = tuple(self._maps.shape) if self._maps is not None else ()
        return f"Attribution({self.method!r}, maps {shape}, targets {self.targets})"

    def _pictures(self):
        maps = self._maps.reshape(self._maps.shape[0], self._maps.shape[-2], self._maps.shape[-1])
        return [_display.colormap(_display.normalized(m)) for m in maps]

    def _repr_png_(self):
        return _display.png(_display.row(self._pictures()[:8]))

    def pil(self, index=0):
        """Map `index` as a PIL image (viridis, scaled to its own range); needs Pillow."""
        return _display.pil(self._pictures()[index])

    def save(self, path, index=0):
        """Writes map `index` as a PNG file (viridis; whole or not at all)."""
        _display.save_png(path, self._pictures()[index])


class Images:
    """Images [N, 3, H, W] in [0, 1] (visualizations, inversions), with what made them."""

    def __init__(self, images, info):
        self.images = images
        self.info = info

    def __array__(self, dtype=None, copy=None):
        return self.images if dtype is None else self.images.astype(dtype)

    def __len__(self):
        return len(self.images)

    def __repr__(self):
        return f"Images({tuple(self.images.shape)}, {self.info})"

    def _repr_png_(self):
        return _display.png(_display.row([np.transpose(i, (1, 2, 0)) for i in self.images[:8]]))

    def pil(self, index=0):
        """Image `index` as a PIL image; needs Pillow."""
        return _display.pil(np.transpose(self.images[index], (1, 2, 0)))

    def save(self, path, index=0):
        """Writes image `index` as a PNG file (whole or not at all: a temporary file renamed)."""
        _display.save_png(path, np.transpose(self.images[index], (1, 2, 0)))


class Classification:
    """Logits and probabilities [N, classes], and each image's top classes."""

    def __init__(self, logits, probabilities, names, reference, top):
        self.logits = _like(reference, logits)
        self.probabilities = _like(reference, probabilities)
        order = np.argsort(-probabilities, axis=1, kind="stable")[:, :top]
        self.top = [[(int(k), names[k] if names else f"class {k}", float(probabilities[i, k])) for k in row]
                    for i, row in enumerate(order)]

    def __repr__(self):
        return "\n".join(f"image {i}: " + ", ".join(f"{k} {name} {p:.4f}" for k, name, p in row) for i, row in enumerate(self.top))

    def _repr_html_(self):
        rows = "".join(f"<tr><td>{i}</td><td>{k}</td><td>{name}</td><td>{p:.4f}</td></tr>"
                       for i, r in enumerate(self.top) for k, name, p in r)
        return f"<table><tr><th>image</th><th>class</th><th>name</th><th>p</th></tr>{rows}</table>"


class RelevanceMaximization:
    """Each channel's reference images by relevance: `images`, `scores` and `neurons` [top, C],
    largest first (ties to the earlier image), as zennit-crp's data, rel and rf arrays; `all_scores`
    and `all_neurons` [N, C] of every image; `targets` each image's class."""

    def __init__(self, scores, neurons, targets, top):
        self.all_scores, self.all_neurons, self.targets = scores, neurons, targets
        order = np.argsort(-scores, axis=0, kind="stable")[:top]
        self.images = order
        self.scores = np.take_along_axis(scores, order, axis=0)
        self.neurons = np.take_along_axis(neurons, order, axis=0)

    def __repr__(self):
        return f"loupe.RelevanceMaximization({self.all_scores.shape[0]} images, {self.all_scores.shape[1]} channels, top {self.images.shape[0]})"


class Model:
    """A model open in Loupe's library on one device. Arrays are NCHW float32 (numpy, or torch
    CPU tensors: results then come back as torch tensors), normalized as the model expects."""

    def __init__(self, handle, name):
        self._handle = handle
        self.name = name
        self._aliases = {}
        self._modules = {}
        info, _ = self._call("info")
        self.info = info
        self.device = info["device"]
        self.classes = info["classes"]
        self.class_names = info.get("class_names")
        self.default_layer = info["default_layer"]
        for message in info.get("warnings", []):
            warnings.warn(message.removeprefix("warning: "), RuntimeWarning, stacklevel=3)

    # Handles

    def _call(self, op, options=None, arrays=None):
        if not self._handle:
            raise ClosedModelError(f"the model {self.name} is closed")
        return call(self._handle, op, options, arrays)

    def close(self):
        """Frees the model's memory on its device; later calls raise ClosedModelError."""
        handle, self._handle = self._handle, 0
        if handle:
            check(library().loupe_close(ctypes.c_uint64(handle)))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def __repr__(self):
        state = "closed" if not self._handle else self.device
        return f"loupe.Model({self.name!r}, {self.classes} classes, {state})"

    # Layer names

    def layer_name(self, layer):
        """Loupe's name of `layer`: a name as `layers()` lists it, or (for from_torch models) a torch
        module or its qualified name (`layer4.1`)."""
        if layer is None:
            return None
        if not isinstance(layer, str):
            name = self._modules.get(id(layer))
            if name is None:
                raise LoupeValueError(f"{type(layer).__name__} is not a module of this model's torch network")
            layer = name
        return self._aliases.get(layer, layer)

    def _objective_names(self, text):
        """An objective with each layer named as torch names its module (`layer3:88@7,7`) in the
        exported graph's names, for a from_torch model."""
        if not self._aliases:
            return text
        text = re.sub(r"([A-Za-z_][\w./]*)(?=\s*:)", lambda m: self._aliases.get(m.group(1), m.group(1)), text)
        return self._aliases.get(text.strip(), text)

    def layers(self, height=None, width=None, raw=False):
        """The layers a pass taps, in order, with their kinds and shapes. A from_torch model, and an
        ONNX file exported from torch, list their modules by their torch names, outermost first
        (`raw=True`: the exported graph's node outputs)."""
        options = {}
        if height:
            options["height"] = int(height)
        if width:
            options["width"] = int(width)
        payload, _ = self._call("layers", options)
        layers = [Layer(l["name"], l["kind"], l["shape"]) for l in payload["layers"]]
        if not raw and not self._aliases and payload.get("modules"):
            return [Layer(m["name"], m["kind"], m["shape"]) for m in payload["modules"]]
        if raw or not self._aliases:
            return layers
        by_name = {l.name: l for l in layers}
        return [Layer(module, by_name[tap].kind, by_name[tap].shape) for module, tap in self._aliases.items() if tap in by_name]

    # Work

    def classify(self, x, top=5):
        """Logits and probabilities of the batch x [N, 3, H, W]."""
        _, arrays = self._call("forward", arrays={"x": x})
        return Classification(arrays["logits"], arrays["probabilities"], self.class_names, x, top)

    def __call__(self, x):
        """The output of x, as the torch module would return it: logits [N, classes], or a
        segmentation's scores [N, classes, H, W]."""
        _, arrays = self._call("forward", arrays={"x": x})
        return _like(x, arrays["output"])

    def activations(self, x, layers):
        """{layer: its output for x}, for one layer name (or module) or a list of them."""
        layers = [layers] if isinstance(layers, str) or not isinstance(layers, (list, tuple)) else list(layers)
        names = [self.layer_name(l) for l in layers]
        _, arrays = self._call("activations", {"layers": names}, {"x": x})
        return {(l if isinstance(l, str) else n): _like(x, arrays[n]) for l, n in zip(layers, names)}

    def attribute(self, x, method="gradient", target=None, layer=None, baseline=None, draws=None, objective=None, region=None, **options):
        """The attribution of each image's target class (None: its top class) by `method`
        (loupe.methods() lists them), or of `objective` instead (`loupe visualize --objective`
        syntax: a neuron "layer3:88@3,1" (channel 88 at x 3, y 1), a channel's mean "layer3:88",
        a direction, a weighted sum; Captum's neuron methods are the gradient methods of a
        neuron). Options: batch, samples, noise, seed, steps, window, stride,
        occlusion_baseline, layer_map, stdevs (gradient_shap); `baseline` is "black", "zero", "blur",
        "uniform" or an array [N or 1, 3, H, W]; for gradient_shap and deeplift_shap a distribution:
        names joined by commas ("black,uniform") or an array [B, 3, H, W]. lime and kernel_shap:
        feature_mask, labels [H, W] (a grid of `window` pixels by default), and surrogate_samples,
        fixed binary vectors [N * samples, features]. `draws` fixes
        gradient_shap's draws: (reference indices [N * samples], points on the path [N * samples],
        noise [N * samples, 3, H, W] or None). For a segmentation model (output [N, classes, H, W])
        the target is the class summed over a region, pytorch-grad-cam's
        SemanticSegmentationTarget: `region` is a mask [H, W] or [N, H, W] on the output's grid
        (nonzero inside), by default the pixels predicted as the class."""
        n = int(np.shape(x)[0]) if np.ndim(x) else 0
        arrays = {"x": x}
        if region is not None:
            arrays["region"] = np.asarray(region, dtype=np.float32)
        for key in ("feature_mask", "surrogate_samples"):
            if options.get(key) is not None:
                arrays[key] = options.pop(key)
        opts = {"method": method, **options}
        if draws is not None:
            indices, alphas, noise = draws
            arrays["draw_indices"], arrays["draw_alphas"] = np.asarray(indices, np.float32), np.asarray(alphas, np.float32)
            if noise is not None:
                arrays["draw_noise"] = noise
        t = targets_list(target, n)
        if t is not None:
            opts["targets"] = t
        if objective is not None:
            opts["objective"] = self._objective_names(str(objective))
        if layer is not None:
            opts["layer"] = self.layer_name(layer)
        if isinstance(baseline, str):
            opts["baseline"] = baseline
        elif baseline is not None:
            arrays["baselines" if method in ("gradient_shap", "deeplift_shap") else "baseline"] = baseline
        payload, out = self._call("attribute", opts, arrays)
        return Attribution(method, payload, out, x)

    def visualize(self, objective, size=224, steps=512, seed=0, lr=0.05, basis="fourier", decorrelate=True, transforms="standard"):
        """Feature visualization (Lucid's render_vis): one image per objective, `loupe visualize
        --objective` syntax ("class:948", "features.10:5", "0.5*layer3:7 + class:1"), or a
        (layer, channel) pair."""
        objectives = objective if isinstance(objective, list) else [objective]
        texts = [f"{self.layer_name(o[0])}:{int(o[1])}" if isinstance(o, tuple) else str(o) for o in objectives]
        payload, arrays = self._call("visualize", {"objectives": texts, "size": size, "steps": steps, "seed": seed, "lr": lr,
                                                    "basis": basis, "decorrelate": decorrelate, "transforms": transforms})
        return Images(arrays["images"], payload)

    def invert(self, x, layer, steps=600, lr=0.1, seed=0, tv=None, jitter=4):
        """Feature inversion (Mahendran & Vedaldi): the image whose features at `layer` match those
        of the one image x [1, 3, H, W]."""
        options = {"layer": self.layer_name(layer), "steps": steps, "lr": lr, "seed": seed, "jitter": jitter}
        if tv is not None:
            options["tv"] = tv
        payload, arrays = self._call("invert", options, {"x": x})
        return Images(arrays["image"], payload)

    def metrics(self, x, maps, target=None, modes=("deletion", "insertion"), step=None, batch=16, masks=None,
                raw=None, method=None, layer=None, runs=None, subset_size=None, patch=None, regions=None,
                samples=None, radius=None, stdev=None, normalize=None, percentages=None, imputation_noise=None, seed=None,
                subsets=None, noise=None, perturbations=None):
        """Scores of maps [N, H, W] for x [N, 3, H, W], by `modes`: "deletion" and "insertion"
        (Petsiuk et al.: {"deletion": [auc per image], "deletion_curves": array, ...}), and the
        perturbation metrics "faithfulness_correlation", "pixel_flipping", "region_perturbation",
        "max_sensitivity", "avg_sensitivity", "road" (Quantus') and "infidelity" (Captum's) with their
        settings (runs, subset_size, patch, regions, samples, radius, stdev, normalize (infidelity's
        best scale first, default True), percentages and imputation_noise (ROAD's), seed; `method` and
        `layer`: what the sensitivities run again; `raw` [N, 3, H, W]: infidelity's signed
        attributions; given draws: `subsets` [runs, k] of feature indices into 3 x H x W,
        `noise` and `perturbations` [S, 3, H, W]); pixel flipping and region perturbation also
        and ROAD give "<name>_curves". Always Quantus' "sparseness" and "complexity" of each map; with masks
        [N, H, W] (nonzero where the evidence is) also "relevance_mass_accuracy",
        "relevance_rank_accuracy" and "pointing_game" (None for an empty mask)."""
        n = int(np.shape(x)[0])
        options = {"modes": list(modes), "batch": batch}
        for name, value in (("step", step), ("runs", runs), ("subset_size", subset_size), ("patch", patch), ("regions", regions),
                            ("samples", samples), ("radius", radius), ("stdev", stdev), ("normalize", normalize), ("seed", seed),
                            ("imputation_noise", imputation_noise), ("method", method)):
            if value is not None:
                options[name] = value
        if layer is not None:
            options["layer"] = self.layer_name(layer)
        if percentages is not None:
            options["percentages"] = [float(p) for p in percentages]
        t = targets_list(target, n)
        if t is not None:
            options["targets"] = t
        inputs = {"x": x, "maps": maps}
        for name, value in (("masks", masks), ("raw", raw), ("subsets", subsets), ("noise", noise), ("perturbations", perturbations)):
            if value is not None:
                inputs[name] = np.asarray(value.detach().cpu().numpy() if _is_torch(value) else value, dtype=np.float32)
        payload, arrays = self._call("metrics", options, inputs)
        payload.update(arrays)
        return payload

    def relevance_maximization(self, x, layer, target=None, top=40, max_target="sum", abs_norm=True, batch=16,
                               composite="epsilon_plus_flat", epsilon=None, gamma=None):
        """zennit-crp's relevance maximization over the images x [N, 3, H, W]: each channel of
        `layer` ranks the images by its relevance there (LRP by `composite` from each image's
        target, None: its top class), summed over positions (max_target "sum") or at the most
        relevant one ("max"), each image's scores divided by their absolute sum over the channels
        when abs_norm. Returns RelevanceMaximization: `images`, `scores` and `neurons` [top, C],
        largest first, as zennit-crp's data, rel and rf arrays (neurons as y * W + x of the
        layer's H x W); `batch` images per pass."""
        n = int(np.shape(x)[0])
        t = targets_list(target, n)
        options = {"layer": self.layer_name(layer), "max_target": max_target, "abs_norm": bool(abs_norm), "composite": composite}
        for name, value in (("epsilon", epsilon), ("gamma", gamma)):
            if value is not None:
                options[name] = float(value)
        scores, neurons, targets = [], [], []
        for lo in range(0, n, int(batch)):
            part = dict(options)
            if t is not None:
                part["targets"] = t[lo:lo + int(batch)] if len(t) == n else t
            payload, arrays = self._call("concept_scores", part, {"x": x[lo:lo + int(batch)]})
            scores.append(arrays["scores"])
            neurons.append(arrays["neurons"])
            targets += payload["targets"]
        return RelevanceMaximization(np.concatenate(scores), np.concatenate(neurons).astype(np.int64), targets, int(top))

    def reference_heatmaps(self, x, layer, channel, neurons=None, composite="epsilon_plus_flat", epsilon=None, gamma=None):
        """zennit-crp's reference heatmaps (get_max_reference with rf=True) of `channel` of `layer`
        on x [N, 3, H, W]: LRP started at the layer from its activation at each image's neuron
        (y * W + x; None: the whole channel), on to the input, summed over colour channels.
        Returns (heatmaps [N, H, W], crops): each crop zennit-crp's window (row0, row1, col0,
        col1), ends excluded, or None where nothing passes its threshold."""
        options = {"layer": self.layer_name(layer), "channel": int(channel), "composite": composite}
        if neurons is not None:
            options["neurons"] = [int(v) for v in neurons]
        for name, value in (("epsilon", epsilon), ("gamma", gamma)):
            if value is not None:
                options[name] = float(value)
        payload, arrays = self._call("reference_heatmaps", options, {"x": x})
        return _like(x, arrays["heatmaps"]), [tuple(c) if c is not None else None for c in payload["crops"]]

    def sanity(self, x, methods=("gradient", "gradcam"), target=None, stages=None, seed=1, layer=None, test="cascade",
               granularity=None, order=None, smooth_samples=None, smooth_noise=None, noise_seed=None, batch=None):
        """Model randomization checks on one image: test "cascade" (Adebayo et al.: blocks from
        the top down), "mprt", "smooth_mprt" or "efficient_mprt" (Quantus'); granularity
        ("block", "layer") and order ("top_down", "bottom_up", "independent") override the
        test's. Returns each stage's maps, their Spearman correlation and SSIM with the trained
        model's, their discrete entropy, and per method the mean Spearman and the entropy rise
        (efficient MPRT's score)."""
        options = {"methods": list(methods), "seed": seed, "test": test}
        optional = {"stages": stages, "granularity": granularity, "order": order, "smooth_samples": smooth_samples,
                    "smooth_noise": smooth_noise, "noise_seed": noise_seed, "batch": batch}
        options.update({k: v for k, v in optional.items() if v is not None})
        t = targets_list(target, 1)
        if t is not None:
            options["targets"] = t
        if layer is not None:
            options["layer"] = self.layer_name(layer)
        payload, arrays = self._call("sanity", options, {"x": x})
        payload["maps"] = arrays["maps"]
        # A bound torch module names each layer (the deepest module whose output it is).
        modules = {tap: module for module, tap in self._aliases.items()}
        payload["stages"] = [modules.get(stage, stage) for stage in payload["stages"]]
        return payload

    # torch names

    def _bind_torch(self, module):
        """Names the exported graph's layers as `module` names its submodules: each module stands
        for the last node of its scope (its output)."""
        names = {name for name, _ in module.named_modules() if name}
        self._modules = {id(m): name for name, m in module.named_modules() if name}
        outputs = {}
        for layer in self.layers(raw=True):
            scope = _scope(layer.name, names)
            while scope:
                outputs[scope] = layer.name  # the last node of the scope wins
                scope = scope.rpartition(".")[0] if "." in scope and scope.rpartition(".")[0] in names else None
        order = [name for name, _ in module.named_modules() if name in outputs]
        self._aliases = {name: outputs[name] for name in order}


def _scope(output, names):
    """The torch module name of an exported node's output (`/layer4/layer4.1/relu_1/Relu_output_0`
    -> `layer4.1.relu`), or None for a node outside every module."""
    # Each scope is the module's name relative to its parent's scope ("features.17" under
    # "features", "conv.0" under "conv"), or its attribute name; "_N" marks its N-th call.
    parts = output.strip("/").split("/")[:-1]
    full, previous = None, None
    for part in parts:
        local = part[len(previous) + 1:] if previous and part.startswith(previous + ".") else part
        candidate = local if full is None else f"{full}.{local}"
        if candidate not in names:
            stripped = re.sub(r"_\d+$", "", candidate)
            if stripped not in names:
                return full
            candidate = stripped
        full, previous = candidate, part
    return full
