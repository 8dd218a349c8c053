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

__all__ = ["Saliency", "InputXGradient", "GuidedBackprop", "Deconvolution", "IntegratedGradients", "DeepLift", "DeepLiftShap",
           "GradientShap", "Lime", "KernelShap", "NoiseTunnel",
           "LayerGradCam", "GuidedGradCam", "Occlusion", "LayerAttribution", "LayerGradientXActivation", "LayerConductance",
           "LayerIntegratedGradients", "NeuronGradient", "NeuronIntegratedGradients"]


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


def _distribution(baselines, x, what):
    """Captum's baselines of the SHAP methods (a tensor [B, ...] or a 1-tuple of one) as an array."""
    if isinstance(baselines, tuple):
        baselines, _ = tensor_input(baselines, f"{what} baselines")
    if callable(baselines):
        raise LoupeValueError(f"{what}: baselines must be a tensor of references [B, 3, H, W] in Loupe (a callable is not supported)")
    if baselines is None or isinstance(baselines, (int, float)) or np.ndim(baselines) != 4:
        raise LoupeValueError(f"{what}: baselines must be a tensor of references [B, 3, H, W] (as Captum's)")
    return baselines


class DeepLiftShap(DeepLift):
    """Captum's DeepLiftShap: DeepLift (its rules as loupe.captum.DeepLift) from each reference of
    the distribution `baselines` [B, 3, H, W], averaged."""

    def attribute(self, inputs, baselines, target=None, additional_forward_args=None, return_convergence_delta=False,
                  custom_attribution_func=None):
        x, as_tuple = tensor_input(inputs, "DeepLiftShap")
        _refuse("DeepLiftShap", additional_forward_args=(additional_forward_args, None), custom_attribution_func=(custom_attribution_func, None))
        a = self._model(x).attribute(x, "deeplift_shap", target=_targets(target, len(x), "DeepLiftShap"),
                                     baseline=_distribution(baselines, x, "DeepLiftShap"), rule_activations=["relu"], max_pool_rule=False)
        result = _wrap(a.raw, as_tuple)
        return (result, a.delta) if return_convergence_delta else result


class GradientShap(_Attribution):
    """Captum's GradientShap: for each of n_samples draws per image a reference from `baselines`
    (np.random.choice), Gaussian noise of `stdevs` (torch.normal for a torch input, else
    np.random.normal) and a point on the path (np.random.uniform), drawn in Captum's order, so
    seeded numpy and torch give Captum's draws; Loupe takes the gradients at those points."""

    def __init__(self, forward_func, multiply_by_inputs=True, device=None):
        _refuse("GradientShap", multiply_by_inputs=(multiply_by_inputs, True))
        super().__init__(forward_func, device)

    @property
    def multiplies_by_inputs(self):
        return True

    def attribute(self, inputs, baselines, n_samples=5, stdevs=0.0, target=None, additional_forward_args=None,
                  return_convergence_delta=False):
        x, as_tuple = tensor_input(inputs, "GradientShap")
        _refuse("GradientShap", additional_forward_args=(additional_forward_args, None),
                return_convergence_delta=(return_convergence_delta, False))
        if isinstance(stdevs, tuple):
            stdevs, _ = tensor_input(stdevs, "GradientShap stdevs")
        references = _distribution(baselines, x, "GradientShap")
        n, samples = len(x), int(n_samples)
        if samples < 1:
            raise LoupeValueError(f"GradientShap: n_samples {n_samples} must be at least 1")
        indices = np.random.choice(int(references.shape[0]), samples * n)
        noise = _noise(x, float(stdevs), samples)
        alphas = np.random.uniform(0.0, 1.0, samples * n)
        a = self._model(x).attribute(x, "gradient_shap", target=_targets(target, n, "GradientShap"), baseline=references,
                                     samples=samples, draws=(indices, alphas, noise if float(stdevs) else None))
        return _wrap(a.raw, as_tuple)


def _feature_mask(feature_mask, x, what):
    """Captum's feature_mask as one [H, W] label map for every image and channel."""
    if isinstance(feature_mask, tuple):
        feature_mask, _ = tensor_input(feature_mask, f"{what} feature_mask")
    if feature_mask is None:
        raise LoupeValueError(f"{what}: Loupe needs a feature_mask (Captum's default, one feature per input value, is 3 x H x W features)")
    m = feature_mask.detach().cpu().numpy() if _is_torch(feature_mask) else np.asarray(feature_mask)
    h, w = int(x.shape[-2]), int(x.shape[-1])
    if m.ndim < 2 or tuple(m.shape[-2:]) != (h, w) or any(d != 1 for d in m.shape[:-2]) and not np.all(m == m.reshape(-1, h, w)[:1]):
        raise LoupeValueError(f"{what}: feature_mask must be the same [H, W] labels for every image and channel ([1, 1, {h}, {w}] or [{h}, {w}]), got {tuple(m.shape)}")
    labels = m.reshape(-1, h, w)[0]
    count = int(labels.max()) + 1
    if labels.min() != 0 or len(np.unique(labels)) != count:
        raise LoupeValueError(f"{what}: feature_mask labels must be 0 to {count - 1}, each used")
    return labels.astype(np.float32), count


class _Surrogate(_Attribution):
    """Captum's Lime and KernelShap (their default interpretable model, kernel and sampling)."""
    method = None
    samples_default = 25

    def _draw(self, count, samples):
        """samples x count binary vectors for one image, as Captum draws them."""
        raise NotImplementedError

    def attribute(self, inputs, baselines=None, target=None, additional_forward_args=None, feature_mask=None, n_samples=None,
                  perturbations_per_eval=1, return_input_shape=True, show_progress=False):
        what = type(self).__name__
        x, as_tuple = tensor_input(inputs, what)
        _refuse(what, additional_forward_args=(additional_forward_args, None), return_input_shape=(return_input_shape, True))
        labels, count = _feature_mask(feature_mask, x, what)
        samples = int(self.samples_default if n_samples is None else n_samples)
        if samples < 1:
            raise LoupeValueError(f"{what}: n_samples {n_samples} must be at least 1")
        drawn = []
        for _ in range(len(x)):
            drawn.append(self._draw(count, samples))
            # Captum fits each image's model through a torch DataLoader (whose iterator takes a
            # number from torch's generator for its base seed) into a new nn.Linear (whose
            # initialization draws its weights): the next image's draws follow both.
            import torch
            torch.empty((), dtype=torch.int64).random_()
            torch.nn.Linear(count, 1)
        drawn = np.concatenate(drawn)
        a = self._model(x).attribute(x, self.method, target=_targets(target, len(x), what), baseline=_baseline(baselines, x, what),
                                     samples=samples, batch=max(int(perturbations_per_eval), 16), feature_mask=labels, surrogate_samples=drawn)
        return _wrap(a.raw, as_tuple)


class Lime(_Surrogate):
    """Captum's Lime with its defaults (Bernoulli(1/2) samples drawn with torch.bernoulli as
    Captum draws them, the exponential cosine kernel of width 1, Lasso alpha 0.01); a
    feature_mask is required (the same [H, W] labels for every image)."""
    method = "lime"
    samples_default = 50

    def __init__(self, forward_func, interpretable_model=None, similarity_func=None, perturb_func=None, device=None):
        _refuse("Lime", interpretable_model=(interpretable_model, None), similarity_func=(similarity_func, None),
                perturb_func=(perturb_func, None))
        super().__init__(forward_func, device)

    def _draw(self, count, samples):
        import torch
        return np.concatenate([torch.bernoulli(torch.ones(1, count) * 0.5).long().numpy() for _ in range(samples)]).astype(np.float32)


class KernelShap(_Surrogate):
    """Captum's KernelShap: all features on, all off, then the Shapley kernel's draws (a
    Categorical count and torch.randn thresholded at its k-th value, as Captum draws them);
    least squares; a feature_mask is required."""
    method = "kernel_shap"
    samples_default = 25

    def _draw(self, count, samples):
        import torch
        from torch.distributions.categorical import Categorical
        if count < 2:
            raise LoupeValueError("KernelShap: the feature_mask needs at least two features")
        sizes = torch.arange(count, dtype=torch.float)
        probs = torch.tensor(count - 1) / (sizes * (count - sizes))
        probs[0] = 0.0
        distribution = Categorical(probs)
        out = [np.ones((1, count)), np.zeros((1, count))]
        while len(out) < samples:
            k = distribution.sample()
            values = torch.randn(1, count)
            threshold = torch.kthvalue(values, count - k).values.item()
            out.append((values > threshold).long().numpy())
        return np.concatenate(out[:samples]).astype(np.float32)


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


def _noise(x, stdev, samples):
    """N(0, stdev^2) noise for `samples` copies of each image of x, drawn as Captum's NoiseTunnel
    draws it (torch.normal for a torch input), in x's kind."""
    shape = (x.shape[0] * samples,) + tuple(x.shape[1:])
    if _is_torch(x):
        import torch
        return torch.normal(0, torch.tensor(stdev, device=x.device).repeat(shape))
    return np.random.normal(0, stdev, shape).astype(np.float32)


def _noisy(x, stdev, samples):
    """x repeated `samples` times per image plus N(0, stdev^2) noise, as Captum's NoiseTunnel draws it."""
    noise = _noise(x, stdev, samples)
    if _is_torch(x):
        return x.repeat_interleave(samples, dim=0) + noise
    return np.repeat(np.asarray(x, np.float32), samples, axis=0) + noise


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


class LayerGradientXActivation(_Attribution, LayerAttribution):
    """Captum's LayerGradientXActivation: the layer's activation times the target's gradient
    there, [N, C, h, w]."""

    def __init__(self, forward_func, layer, device_ids=None, multiply_by_inputs=True, device=None):
        _refuse("LayerGradientXActivation", device_ids=(device_ids, None), multiply_by_inputs=(multiply_by_inputs, True))
        super().__init__(forward_func, device)
        self.layer = layer

    @property
    def multiplies_by_inputs(self):
        return True

    def attribute(self, inputs, target=None, additional_forward_args=None, attribute_to_layer_input=False):
        x, _ = tensor_input(inputs, "LayerGradientXActivation")
        _refuse("LayerGradientXActivation", additional_forward_args=(additional_forward_args, None),
                attribute_to_layer_input=(attribute_to_layer_input, False))
        return self._model(x).attribute(x, "layer_gradient_x_activation", target=_targets(target, len(x), "LayerGradientXActivation"),
                                        layer=self.layer).layer_attribution


class _LayerPath(_Attribution, LayerAttribution):
    """Captum's layer path methods: Gauss-Legendre points from the baselines, [N, C, h, w]."""

    def __init__(self, forward_func, layer, device_ids=None, multiply_by_inputs=True, device=None):
        what = type(self).__name__
        _refuse(what, device_ids=(device_ids, None), multiply_by_inputs=(multiply_by_inputs, True))
        super().__init__(forward_func, device)
        self.layer = layer

    def has_convergence_delta(self):
        return True

    @property
    def multiplies_by_inputs(self):
        return True

    def attribute(self, inputs, baselines=None, target=None, additional_forward_args=None, n_steps=50, method="gausslegendre",
                  internal_batch_size=None, return_convergence_delta=False, attribute_to_layer_input=False, grad_kwargs=None):
        what = type(self).__name__
        x, _ = tensor_input(inputs, what)
        _refuse(what, additional_forward_args=(additional_forward_args, None), method=(method, "gausslegendre"),
                attribute_to_layer_input=(attribute_to_layer_input, False), grad_kwargs=(grad_kwargs, None))
        options = {"steps": int(n_steps)}
        if internal_batch_size:
            options["batch"] = int(internal_batch_size)
        a = self._model(x).attribute(x, self.method, target=_targets(target, len(x), what), layer=self.layer,
                                     baseline=_baseline(baselines, x, what), **options)
        return (a.layer_attribution, a.delta) if return_convergence_delta else a.layer_attribution


class LayerConductance(_LayerPath):
    """Captum's LayerConductance: the sum over the path's points of the gradient at the layer
    times the change of the layer's activation to the next point (n_steps + 1 points)."""
    method = "layer_conductance"

    def __init__(self, forward_func, layer, device_ids=None, device=None):
        super().__init__(forward_func, layer, device_ids=device_ids, device=device)


class LayerIntegratedGradients(_LayerPath):
    """Captum's LayerIntegratedGradients: Integrated Gradients in the layer's space (the layer's
    output replaced by points between its values for the baselines and the inputs)."""
    method = "layer_integrated_gradients"


def _neuron_objective(model, layer, neuron_selector, what):
    """Captum's neuron_selector (an int, or a tuple of ints indexing the layer's output without
    its batch dimension) as a Loupe objective."""
    selector = (neuron_selector,) if isinstance(neuron_selector, int) else neuron_selector
    if callable(selector) or not isinstance(selector, tuple) or not all(isinstance(i, int) for i in selector):
        raise LoupeValueError(f"{what}: neuron_selector must be an int or a tuple of ints in Loupe "
                              f"(slices and functions are not supported), got {neuron_selector!r}")
    name = model.layer_name(layer)
    if len(selector) == 1:
        return f"{name}:{selector[0]}"
    if len(selector) == 3:
        channel, y, x = selector
        return f"{name}:{channel}@{x},{y}"
    raise LoupeValueError(f"{what}: neuron_selector {selector!r}: Loupe takes (channel, y, x) of a 4-D layer or (unit,) of a 2-D one")


class NeuronGradient(_Attribution):
    """Captum's NeuronGradient: the gradient of one unit of a layer with respect to the input."""

    def __init__(self, forward_func, layer, device_ids=None, device=None):
        _refuse("NeuronGradient", device_ids=(device_ids, None))
        super().__init__(forward_func, device)
        self.layer = layer

    def attribute(self, inputs, neuron_selector, additional_forward_args=None, attribute_to_neuron_input=False):
        x, as_tuple = tensor_input(inputs, "NeuronGradient")
        _refuse("NeuronGradient", additional_forward_args=(additional_forward_args, None),
                attribute_to_neuron_input=(attribute_to_neuron_input, False))
        model = self._model(x)
        a = model.attribute(x, "gradient", objective=_neuron_objective(model, self.layer, neuron_selector, "NeuronGradient"))
        return _wrap(a.raw, as_tuple)


class NeuronIntegratedGradients(_Attribution):
    """Captum's NeuronIntegratedGradients: Integrated Gradients of one unit of a layer."""

    def __init__(self, forward_func, layer, device_ids=None, multiply_by_inputs=True, device=None):
        _refuse("NeuronIntegratedGradients", device_ids=(device_ids, None), multiply_by_inputs=(multiply_by_inputs, True))
        super().__init__(forward_func, device)
        self.layer = layer

    @property
    def multiplies_by_inputs(self):
        return True

    def attribute(self, inputs, neuron_selector, baselines=None, additional_forward_args=None, n_steps=50, method="gausslegendre",
                  internal_batch_size=None, attribute_to_neuron_input=False):
        x, as_tuple = tensor_input(inputs, "NeuronIntegratedGradients")
        _refuse("NeuronIntegratedGradients", additional_forward_args=(additional_forward_args, None), method=(method, "gausslegendre"),
                attribute_to_neuron_input=(attribute_to_neuron_input, False))
        model = self._model(x)
        options = {"steps": int(n_steps)}
        if internal_batch_size:
            options["batch"] = int(internal_batch_size)
        a = model.attribute(x, "integrated_gradients", baseline=_baseline(baselines, x, "NeuronIntegratedGradients"),
                            objective=_neuron_objective(model, self.layer, neuron_selector, "NeuronIntegratedGradients"), **options)
        return _wrap(a.raw, as_tuple)


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
