"""Captum's attribution classes with Loupe computing them: change `from captum.attr import ...`
to `from loupe.captum import ...` and keep the rest of the script.

Each class takes what Captum's takes (a torch.nn.Module, or a loupe.Model) and its
`attribute(inputs, target=..., ...)` returns what Captum's returns: a tensor of the input's
shape (LayerGradCam: the layer's [N, 1, h, w]); numpy in, numpy out. The module is exported to
ONNX at the first call (and again when its weights change). An argument Loupe does not support
is refused by name with LoupeValueError, never ignored."""
import numpy as np

from ._model import _is_torch, _like, targets_list
from ._native import LoupeValueError
from ._torch import model_of, tensor_input

__all__ = ["Saliency", "InputXGradient", "GuidedBackprop", "Deconvolution", "IntegratedGradients", "DeepLift", "NoiseTunnel",
           "LayerGradCam", "GuidedGradCam", "Occlusion", "LayerAttribution"]


def _refuse(what, **arguments):
    for name, (value, default) in arguments.items():
        if value is not default and value != default:
            raise LoupeValueError(f"{what}: {name}={value!r} is not supported by Loupe (only {name}={default!r})")


def _targets(target, n, what):
    t = targets_list(target, n)
    if t is None:
        raise LoupeValueError(f"{what}: target is required for a model with several outputs (as in Captum)")
    return t


def _baseline(baselines, x, what):
    """Captum's baselines (None: zeros, a number, a tensor or a 1-tuple of one) as Loupe's."""
    if isinstance(baselines, tuple):
        baselines, _ = tensor_input(baselines, f"{what} baselines")
    if baselines is None:
        return "zero"
    if isinstance(baselines, (int, float)):
        return np.full((1,) + tuple(x.shape[1:]), float(baselines), np.float32)
    return baselines


def _wrap(result, as_tuple):
    return (result,) if as_tuple else result


class _Attribution:
    method = None

    def __init__(self, forward_func, device=None):
        self.forward_func = forward_func
        self.device = device

    def _model(self, x):
        return model_of(self.forward_func, x, self.device)

    def has_convergence_delta(self):
        return False

    @property
    def multiplies_by_inputs(self):
        return False


class _Gradient(_Attribution):
    # Captum's guided backprop and deconvolution hook nn.ReLU modules only (ReLU6 keeps its gradient).
    options = {}

    def attribute(self, inputs, target=None, additional_forward_args=None):
        x, as_tuple = tensor_input(inputs, type(self).__name__)
        _refuse(type(self).__name__, additional_forward_args=(additional_forward_args, None))
        a = self._model(x).attribute(x, self.method, target=_targets(target, len(x), type(self).__name__), **self.options)
        return _wrap(a.raw, as_tuple)


class Saliency(_Gradient):
    """Captum's Saliency: the gradient of the target (abs=True: its absolute value)."""
    method = "gradient"

    def attribute(self, inputs, target=None, abs=True, additional_forward_args=None):
        result = super().attribute(inputs, target=target, additional_forward_args=additional_forward_args)
        if not abs:
            return result
        return tuple(r.abs() if _is_torch(r) else np.abs(r) for r in result) if isinstance(result, tuple) else (
            result.abs() if _is_torch(result) else np.abs(result))


class InputXGradient(_Gradient):
    """Captum's InputXGradient: gradient times input."""
    method = "gradient_x_input"

    @property
    def multiplies_by_inputs(self):
        return True


class GuidedBackprop(_Gradient):
    """Captum's GuidedBackprop: ReLUs (nn.ReLU, not ReLU6) pass only positive gradients where their input was positive."""
    method = "guided_backprop"
    options = {"rule_activations": ["relu"]}

    def __init__(self, model, device=None):
        super().__init__(model, device)


class Deconvolution(_Gradient):
    """Captum's Deconvolution: ReLUs (nn.ReLU, not ReLU6) pass the positive part of the gradient."""
    method = "deconvnet"
    options = {"rule_activations": ["relu"]}

    def __init__(self, model, device=None):
        super().__init__(model, device)


class IntegratedGradients(_Attribution):
    """Captum's IntegratedGradients with the Gauss-Legendre rule (Captum's default)."""

    def __init__(self, forward_func, multiply_by_inputs=True, device=None):
        _refuse("IntegratedGradients", multiply_by_inputs=(multiply_by_inputs, True))
        super().__init__(forward_func, device)

    def has_convergence_delta(self):
        return True

    @property
    def multiplies_by_inputs(self):
        return True

    def attribute(self, inputs, baselines=None, target=None, additional_forward_args=None, n_steps=50,
                  method="gausslegendre", internal_batch_size=None, return_convergence_delta=False):
        x, as_tuple = tensor_input(inputs, "IntegratedGradients")
        _refuse("IntegratedGradients", additional_forward_args=(additional_forward_args, None), method=(method, "gausslegendre"))
        options = {"steps": int(n_steps)}
        if internal_batch_size:
            options["batch"] = int(internal_batch_size)
        a = self._model(x).attribute(x, "integrated_gradients", target=_targets(target, len(x), "IntegratedGradients"),
                                     baseline=_baseline(baselines, x, "IntegratedGradients"), **options)
        result = _wrap(a.raw, as_tuple)
        return (result, a.delta) if return_convergence_delta else result


class DeepLift(_Attribution):
    """Captum's DeepLift: the rescale rule on nn.ReLU (ReLU6 and other activations keep their
    gradient, as in Captum), max pools by their gradient (what Captum 0.9 computes: its max-pool
    rule does not reach the result), times (inputs - baselines)."""

    def __init__(self, model, multiply_by_inputs=True, eps=1e-10, device=None):
        _refuse("DeepLift", multiply_by_inputs=(multiply_by_inputs, True), eps=(eps, 1e-10))
        super().__init__(model, device)

    def has_convergence_delta(self):
        return True

    @property
    def multiplies_by_inputs(self):
        return True

    def attribute(self, inputs, baselines=None, target=None, additional_forward_args=None, return_convergence_delta=False,
                  custom_attribution_func=None):
        x, as_tuple = tensor_input(inputs, "DeepLift")
        _refuse("DeepLift", additional_forward_args=(additional_forward_args, None), custom_attribution_func=(custom_attribution_func, None))
        a = self._model(x).attribute(x, "deeplift", target=_targets(target, len(x), "DeepLift"), baseline=_baseline(baselines, x, "DeepLift"),
                                     rule_activations=["relu"], max_pool_rule=False)
        result = _wrap(a.raw, as_tuple)
        return (result, a.delta) if return_convergence_delta else result


class NoiseTunnel:
    """Captum's NoiseTunnel over any class of this module: the wrapped method runs on noisy copies
    drawn as Captum draws them (torch.normal, so a seeded torch gives Captum's noise), in one
    Loupe call per batch of samples; smoothgrad, smoothgrad_sq or vargrad."""

    def __init__(self, attribution_method):
        if not isinstance(attribution_method, (_Attribution, GuidedGradCam)):
            raise LoupeValueError(f"NoiseTunnel: wrap a class of loupe.captum, not {type(attribution_method).__name__}")
        self.attribution_method = attribution_method

    def has_convergence_delta(self):
        return self.attribution_method.has_convergence_delta()

    @property
    def multiplies_by_inputs(self):
        return self.attribution_method.multiplies_by_inputs

    def attribute(self, inputs, nt_type="smoothgrad", nt_samples=5, nt_samples_batch_size=None, stdevs=1.0,
                  draw_baseline_from_distrib=False, **kwargs):
        x, as_tuple = tensor_input(inputs, "NoiseTunnel")
        if nt_type not in ("smoothgrad", "smoothgrad_sq", "vargrad"):
            raise LoupeValueError(f"NoiseTunnel: nt_type {nt_type!r}: expected smoothgrad, smoothgrad_sq or vargrad")
        _refuse("NoiseTunnel", draw_baseline_from_distrib=(draw_baseline_from_distrib, False))
        if isinstance(stdevs, tuple):
            stdevs, _ = tensor_input(stdevs, "NoiseTunnel stdevs")
        wants_delta = bool(kwargs.get("return_convergence_delta"))
        n = len(x)
        per_call = nt_samples if nt_samples_batch_size is None else min(nt_samples, nt_samples_batch_size)
        sizes = [per_call] * (nt_samples // per_call) + ([nt_samples % per_call] if nt_samples % per_call else [])
        total = total_sq = None
        deltas = []
        for size in sizes:
            noisy = _noisy(x, float(stdevs), size)
            args = dict(kwargs)
            if "target" in args and args["target"] is not None:
                args["target"] = [t for t in targets_list(args["target"], n) for _ in range(size)]
            b = args.get("baselines")
            if b is not None and not isinstance(b, (int, float)) and b.shape[0] == n and n > 1:
                args["baselines"] = b.repeat_interleave(size, dim=0) if _is_torch(b) else np.repeat(b, size, axis=0)
            r, delta = _in_chunks(self.attribution_method, noisy, args, wants_delta)
            if wants_delta:
                deltas.append(delta)
            r = r.reshape((n, size) + r.shape[1:]).astype(np.float64)
            total = r.sum(axis=1) if total is None else total + r.sum(axis=1)
            total_sq = (r ** 2).sum(axis=1) if total_sq is None else total_sq + (r ** 2).sum(axis=1)
        mean, mean_sq = total / nt_samples, total_sq / nt_samples
        out = {"smoothgrad": mean, "smoothgrad_sq": mean_sq, "vargrad": mean_sq - mean ** 2}[nt_type].astype(np.float32)
        out = _wrap(_like(x, out), as_tuple)
        if wants_delta:
            return out, _like(x, np.concatenate(deltas))
        return out


def _in_chunks(method, x, args, wants_delta, chunk=16):
    """The wrapped method on x (numpy result, and its deltas) `chunk` images per call: a pass of a
    few dozen images runs slower per image than a few passes of 16."""
    parts, deltas = [], []
    for start in range(0, len(x), chunk):
        part = dict(args)
        for key in ("target", "baselines"):
            value = part.get(key)
            if isinstance(value, list) or (value is not None and not isinstance(value, (int, float)) and getattr(value, "ndim", 0) >= 1
                                           and value.shape[0] == len(x)):
                part[key] = value[start:start + chunk]
        result = method.attribute(x[start:start + chunk], **part)
        if wants_delta:
            result, delta = result
            deltas.append(delta.detach().cpu().numpy() if _is_torch(delta) else np.asarray(delta))
        parts.append(result.detach().cpu().numpy() if _is_torch(result) else np.asarray(result))
    return np.concatenate(parts), (np.concatenate(deltas) if wants_delta else None)


def _noisy(x, stdev, samples):
    """x repeated `samples` times per image plus N(0, stdev^2) noise, as Captum's NoiseTunnel draws it."""
    if _is_torch(x):
        import torch
        shape = (x.shape[0] * samples,) + tuple(x.shape[1:])
        noise = torch.normal(0, torch.tensor(stdev, device=x.device).repeat(shape))
        return x.repeat_interleave(samples, dim=0) + noise
    x = np.asarray(x, np.float32)
    return np.repeat(x, samples, axis=0) + np.random.normal(0, stdev, (x.shape[0] * samples,) + x.shape[1:]).astype(np.float32)


class LayerAttribution:
    """Captum's LayerAttribution.interpolate."""

    @staticmethod
    def interpolate(layer_attribution, interpolate_dims, interpolate_mode="nearest"):
        import torch.nn.functional as F
        return F.interpolate(layer_attribution, interpolate_dims, mode=interpolate_mode)


class LayerGradCam(_Attribution, LayerAttribution):
    """Captum's LayerGradCam: sum over channels of the layer's activations weighted by the mean
    gradient of each channel, at the layer's resolution [N, 1, h, w]."""

    def __init__(self, forward_func, layer, device_ids=None, device=None):
        _refuse("LayerGradCam", device_ids=(device_ids, None))
        super().__init__(forward_func, device)
        self.layer = layer

    def attribute(self, inputs, target=None, additional_forward_args=None, attribute_to_layer_input=False,
                  relu_attributions=False, attr_dim_summation=True, grad_kwargs=None):
        x, _ = tensor_input(inputs, "LayerGradCam")
        _refuse("LayerGradCam", additional_forward_args=(additional_forward_args, None),
                attribute_to_layer_input=(attribute_to_layer_input, False), attr_dim_summation=(attr_dim_summation, True),
                grad_kwargs=(grad_kwargs, None))
        model = self._model(x)
        a = model.attribute(x, "gradcam", target=_targets(target, len(x), "LayerGradCam"), layer=self.layer, layer_map=True)
        m = a.layer_map
        if relu_attributions:
            m = m.clamp(min=0) if _is_torch(m) else np.maximum(m, 0)
        return m


class GuidedGradCam(_Attribution):
    """Captum's GuidedGradCam: guided backprop times the layer's Grad-CAM (with ReLU) upsampled to
    the input (interpolate_mode, nearest by default)."""

    def __init__(self, model, layer, device_ids=None, device=None):
        _refuse("GuidedGradCam", device_ids=(device_ids, None))
        super().__init__(model, device)
        self.grad_cam = LayerGradCam(model, layer, device=device)
        self.guided_backprop = GuidedBackprop(model, device=device)

    def attribute(self, inputs, target=None, additional_forward_args=None, interpolate_mode="nearest", attribute_to_layer_input=False):
        x, as_tuple = tensor_input(inputs, "GuidedGradCam")
        _refuse("GuidedGradCam", additional_forward_args=(additional_forward_args, None), attribute_to_layer_input=(attribute_to_layer_input, False))
        cam = self.grad_cam.attribute(x, target=target, relu_attributions=True)
        guided = self.guided_backprop.attribute(x, target=target)
        if _is_torch(x):
            up = LayerAttribution.interpolate(cam, tuple(x.shape[2:]), interpolate_mode)
        else:
            if interpolate_mode != "nearest":
                raise LoupeValueError(f"GuidedGradCam on numpy input: interpolate_mode {interpolate_mode!r} needs torch; nearest works without")
            up = _nearest(cam, x.shape[2], x.shape[3])
        return _wrap(guided * up, as_tuple)


def _nearest(maps, h, w):
    """torch's nearest interpolation of [N, 1, h0, w0] to [N, 1, h, w] (index floor(i * h0 / h))."""
    h0, w0 = maps.shape[2], maps.shape[3]
    rows = np.minimum((np.arange(h) * (h0 / h)).astype(int), h0 - 1)
    cols = np.minimum((np.arange(w) * (w0 / w)).astype(int), w0 - 1)
    return maps[:, :, rows][:, :, :, cols]


class Occlusion(_Attribution):
    """Captum's Occlusion with a window over all channels: sliding_window_shapes (C, k, k) and
    strides s, (s, s) or (C or any, s, s); baselines a number (0 by default)."""

    def attribute(self, inputs, sliding_window_shapes, strides=None, baselines=None, target=None,
                  additional_forward_args=None, perturbations_per_eval=1, show_progress=False):
        x, as_tuple = tensor_input(inputs, "Occlusion")
        _refuse("Occlusion", additional_forward_args=(additional_forward_args, None))
        if isinstance(sliding_window_shapes, list) or (isinstance(sliding_window_shapes, tuple) and sliding_window_shapes and isinstance(sliding_window_shapes[0], tuple)):
            sliding_window_shapes = tensor_input(tuple(sliding_window_shapes), "Occlusion sliding_window_shapes")[0]
        shape = tuple(int(v) for v in sliding_window_shapes)
        if len(shape) != 3 or shape[0] != x.shape[1] or shape[1] != shape[2]:
            raise LoupeValueError(f"Occlusion: sliding_window_shapes {shape}: Loupe occludes square windows over all {x.shape[1]} channels, ({x.shape[1]}, k, k)")
        if strides is None:
            stride = 1
        elif isinstance(strides, int):
            stride = strides
        else:
            s = tuple(int(v) for v in strides)
            if len(s) not in (2, 3) or s[-1] != s[-2]:
                raise LoupeValueError(f"Occlusion: strides {s}: Loupe takes one stride for both image axes (s, (s, s) or (c, s, s))")
            stride = s[-1]
        if baselines is None:
            baseline = 0.0
        elif isinstance(baselines, (int, float)):
            baseline = float(baselines)
        else:
            raise LoupeValueError("Occlusion: baselines must be a number in Loupe (a baseline tensor is not supported)")
        a = self._model(x).attribute(x, "occlusion", target=_targets(target, len(x), "Occlusion"), window=shape[1], stride=stride,
                                     occlusion_baseline=baseline, batch=max(int(perturbations_per_eval), 16))
        return _wrap(a.raw, as_tuple)


def __getattr__(name):
    if name.startswith("__"):
        raise AttributeError(name)
    raise ImportError(f"loupe.captum has no {name}: Loupe does not compute it (yet); it has {', '.join(__all__)}")
