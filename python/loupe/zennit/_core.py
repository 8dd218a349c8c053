"""zennit's composites, rules, canonizers and Gradient attributor as Loupe's `lrp` method."""
import numpy as np

from .._model import _is_torch
from .._native import LoupeValueError
from .._torch import model_of, tensor_input

STABILIZER = 1e-6


def _number(value, what):
    if callable(value) or isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise LoupeValueError(f"{what}={value!r}: Loupe takes a number here (callable stabilizers are not supported)")
    return float(value)


def _common(what, stabilizer=STABILIZER, zero_params=None):
    if _number(stabilizer, f"{what}: stabilizer") != STABILIZER:
        raise LoupeValueError(f"{what}: stabilizer={stabilizer!r} is not supported by Loupe (only {STABILIZER})")
    if zero_params is not None:
        raise LoupeValueError(f"{what}: zero_params={zero_params!r} is not supported by Loupe (only None)")


# Rules: each knows how Loupe's composite spells it (`spec`).

class _Rule:
    spec = None

    def copy(self):
        return self


class Epsilon(_Rule):
    """LRP-epsilon (epsilon=0: LRP-0)."""
    def __init__(self, epsilon=1e-6, zero_params=None):
        _common("Epsilon", zero_params=zero_params)
        self.epsilon = _number(epsilon, "Epsilon: epsilon")
        if self.epsilon < 0:
            raise LoupeValueError(f"Epsilon: epsilon={epsilon!r} must be at least 0")
        self.spec = f"epsilon:{self.epsilon!r}"


class Gamma(_Rule):
    """Generalized LRP-gamma."""
    def __init__(self, gamma=0.25, stabilizer=STABILIZER, zero_params=None):
        _common("Gamma", stabilizer, zero_params)
        self.gamma = _number(gamma, "Gamma: gamma")
        if self.gamma < 0:
            raise LoupeValueError(f"Gamma: gamma={gamma!r} must be at least 0")
        self.spec = f"gamma:{self.gamma!r}"


class ZPlus(_Rule):
    """LRP z-plus (alpha 1, beta 0)."""
    spec = "z_plus"

    def __init__(self, stabilizer=STABILIZER, zero_params=None):
        _common("ZPlus", stabilizer, zero_params)


class AlphaBeta(_Rule):
    """LRP alpha-beta (alpha - beta = 1)."""
    def __init__(self, alpha=2., beta=1., stabilizer=STABILIZER, zero_params=None):
        _common("AlphaBeta", stabilizer, zero_params)
        alpha, beta = _number(alpha, "AlphaBeta: alpha"), _number(beta, "AlphaBeta: beta")
        if alpha < 0 or beta < 0:
            raise LoupeValueError("Both alpha and beta parameters must be positive!")
        if alpha - beta != 1.:
            raise LoupeValueError("The difference of parameters alpha - beta must equal 1!")
        self.spec = f"alpha_beta:{alpha!r}:{beta!r}"


class Flat(_Rule):
    """LRP flat (first layer)."""
    spec = "flat"

    def __init__(self, stabilizer=STABILIZER, zero_params=None):
        _common("Flat", stabilizer, zero_params)


class WSquare(_Rule):
    """LRP w-square (first layer)."""
    spec = "w_square"

    def __init__(self, stabilizer=STABILIZER, zero_params=None):
        _common("WSquare", stabilizer, zero_params)


def _per_channel(bound, what):
    """A scalar, or one value per channel of a tensor that is constant over every other axis."""
    if isinstance(bound, (int, float, np.integer, np.floating)) and not isinstance(bound, bool):
        return [float(bound)]
    values = bound.detach().cpu().double().numpy() if _is_torch(bound) else np.asarray(bound, dtype=np.float64)
    if values.ndim == 0:
        return [float(values)]
    if values.ndim < 2:
        raise LoupeValueError(f"ZBox: {what} of shape {values.shape}: Loupe takes a number or a [N or 1, C, ...] tensor")
    channels = np.moveaxis(values, 1, 0).reshape(values.shape[1], -1)
    if not np.all(channels == channels[:, :1]):
        raise LoupeValueError(f"ZBox: {what} varies within a channel; Loupe takes one bound per channel")
    return [float(v) for v in channels[:, 0]]


class ZBox(_Rule):
    """LRP z^B for inputs in [low, high] (numbers, or tensors holding one value per channel)."""
    def __init__(self, low, high, stabilizer=STABILIZER, zero_params=None):
        _common("ZBox", stabilizer, zero_params)
        low, high = _per_channel(low, "low"), _per_channel(high, "high")
        if len(low) != len(high):
            low, high = (low * len(high), high) if len(low) == 1 else (low, high * len(low))
        if len(low) != len(high):
            raise LoupeValueError(f"ZBox: {len(low)} low bounds and {len(high)} high bounds")
        self.spec = "z_box:" + ":".join(repr(v) for v in low + high)


class Pass(_Rule):
    """Relevance passes unchanged (activations, batch norms)."""


class Norm(_Rule):
    """Relevance split by contribution (sums, average pools)."""
    def __init__(self, stabilizer=STABILIZER):
        _common("Norm", stabilizer)


# Layer kinds of LayerMapComposite's maps (zennit.types' names; zennit's own classes and
# torch.nn's Conv2d and Linear are read by name too).

class Activation:
    """Activation modules."""


class AvgPool:
    """Average pools."""


class BatchNorm:
    """Batch norms."""


class Convolution:
    """Convolutions."""


class Linear:
    """Convolutions and linear layers."""


class Sum:
    """zennit's Sum module (a canonized addition)."""


def _kind(layer_type):
    """What a map entry's type names: "conv", "linear", "both" (zennit's Linear), or a base kind."""
    name = getattr(layer_type, "__name__", str(layer_type))
    module = getattr(layer_type, "__module__", "")
    if name in ("Convolution", "ConvolutionStandard", "Conv2d"):
        return "conv"
    if name == "Linear":
        return "linear" if module.startswith("torch") else "both"
    if name in ("Activation", "AvgPool", "BatchNorm", "Sum", "ReLU", "ReLU6", "AdaptiveAvgPool2d", "AvgPool2d", "BatchNorm2d"):
        return {"ReLU": "Activation", "ReLU6": "Activation", "AdaptiveAvgPool2d": "AvgPool", "AvgPool2d": "AvgPool",
                "BatchNorm2d": "BatchNorm"}.get(name, name)
    raise LoupeValueError(f"layer map: {name} is not a layer kind Loupe assigns rules to (Convolution, Linear, torch.nn.Linear, "
                          "Activation, AvgPool, BatchNorm, Sum)")


def _rule(rule, where):
    name = type(rule).__name__
    if name in ("Pass", "Norm"):
        return name
    spec = getattr(rule, "spec", None)
    if spec is None:
        # zennit's own rule objects: rebuilt from their class name is not possible (they keep
        # no parameters), so only loupe.zennit.rules are taken.
        raise LoupeValueError(f"{where}: {name} from {type(rule).__module__}: build rules with loupe.zennit.rules")
    return spec


# Canonizers: Loupe always canonizes, so zennit's batch-norm and torchvision canonizers are
# accepted; others (a script's own) are refused.

class _Canonizer:
    pass


class SequentialMergeBatchNorm(_Canonizer):
    """Batch norms merged into the convolution before them (Loupe always does)."""


class MergeBatchNorm(SequentialMergeBatchNorm):
    """Batch norms merged into the convolution before them (Loupe always does)."""


class VGGCanonizer(SequentialMergeBatchNorm):
    """zennit's VGG canonizer (Loupe always canonizes)."""


class ResNetCanonizer(SequentialMergeBatchNorm):
    """zennit's ResNet canonizer: batch norms merged, additions split (Loupe always does both)."""


class CompositeCanonizer(_Canonizer):
    """Several canonizers."""
    def __init__(self, canonizers):
        self.canonizers = list(canonizers)
        _check_canonizers(self.canonizers)


KNOWN_CANONIZERS = {"SequentialMergeBatchNorm", "MergeBatchNorm", "NamedMergeBatchNorm", "VGGCanonizer", "ResNetCanonizer",
                    "ResNetBottleneckCanonizer", "ResNetBasicBlockCanonizer", "CompositeCanonizer"}


def _check_canonizers(canonizers):
    for c in canonizers or []:
        if type(c).__name__ not in KNOWN_CANONIZERS:
            raise LoupeValueError(f"canonizer {type(c).__name__} is not supported by Loupe: it always folds batch norms into the "
                                  "convolution before them and splits additions and average pools by contribution "
                                  f"(zennit's {', '.join(sorted(KNOWN_CANONIZERS))})")
        if hasattr(c, "canonizers"):
            _check_canonizers(c.canonizers)


# Composites: each knows Loupe's spelling (`options` for the attribute call).

class Composite:
    """A composite: Loupe's `lrp` options."""
    options = None

    def __init__(self, canonizers=None):
        _check_canonizers(canonizers)
        self.canonizers = canonizers

    def context(self, module):
        raise LoupeValueError("Composite.context: Loupe computes LRP itself; use loupe.zennit.attribution.Gradient")

    register = context


class LayerMapComposite(Composite):
    """Rules by layer kind: `layer_map` is a list of (types, rule), the first match wins."""
    def __init__(self, layer_map, canonizers=None):
        super().__init__(canonizers)
        self.options = {"composite": self._spec(layer_map, None)}

    @staticmethod
    def _spec(layer_map, first_map):
        rules = {}
        for types, rule in layer_map:
            spec = _rule(rule, "layer map")
            for t in types if isinstance(types, tuple) else (types,):
                kind = _kind(t)
                targets = ("conv", "linear") if kind == "both" else (kind,)
                for k in targets:
                    rules.setdefault(k, spec)
        for kind, base in (("Activation", "Pass"), ("BatchNorm", "Pass"), ("Sum", "Norm"), ("AvgPool", "Norm")):
            if rules.get(kind, base) != base:
                raise LoupeValueError(f"layer map: {kind} takes {rules[kind]}; Loupe gives it {base}, as every zennit composite does")
        for kind in ("conv", "linear"):
            if rules.get(kind) in (None, "Pass", "Norm"):
                raise LoupeValueError(f"layer map: no LRP rule for {'convolutions' if kind == 'conv' else 'linear layers'}")
        spec = f"conv={rules['conv']},linear={rules['linear']}"
        if first_map:
            types, rule = first_map[0]
            spec += f",first={_rule(rule, 'first map')}"
        return spec


class SpecialFirstLayerMapComposite(LayerMapComposite):
    """LayerMapComposite with `first_map`'s rule on the first convolution or linear layer."""
    def __init__(self, layer_map, first_map, canonizers=None):
        Composite.__init__(self, canonizers)
        if len(first_map) > 1:
            raise LoupeValueError("first map: Loupe takes one (types, rule) entry for the first layer")
        self.options = {"composite": self._spec(layer_map, first_map)}


def _named(name, epsilon, stabilizer, zero_params, layer_map, first_map=None):
    _common(name, stabilizer, zero_params)
    if layer_map or first_map:
        raise LoupeValueError(f"{name}: layer_map and first_map are not supported by Loupe; build a LayerMapComposite")
    e = _number(epsilon, f"{name}: epsilon")
    if e < 0:
        raise LoupeValueError(f"{name}: epsilon={epsilon!r} must be at least 0")
    return e


class EpsilonPlus(Composite):
    """z-plus on convolutions, epsilon on linear layers."""
    def __init__(self, epsilon=1e-6, stabilizer=STABILIZER, layer_map=None, zero_params=None, canonizers=None):
        super().__init__(canonizers)
        self.options = {"composite": "epsilon_plus", "epsilon": _named("EpsilonPlus", epsilon, stabilizer, zero_params, layer_map)}


class EpsilonPlusFlat(Composite):
    """EpsilonPlus with flat on the first layer."""
    def __init__(self, epsilon=1e-6, stabilizer=STABILIZER, layer_map=None, first_map=None, zero_params=None, canonizers=None):
        super().__init__(canonizers)
        self.options = {"composite": "epsilon_plus_flat",
                        "epsilon": _named("EpsilonPlusFlat", epsilon, stabilizer, zero_params, layer_map, first_map)}


class EpsilonAlpha2Beta1(Composite):
    """alpha 2 beta 1 on convolutions, epsilon on linear layers."""
    def __init__(self, epsilon=1e-6, stabilizer=STABILIZER, layer_map=None, zero_params=None, canonizers=None):
        super().__init__(canonizers)
        self.options = {"composite": "epsilon_alpha2_beta1",
                        "epsilon": _named("EpsilonAlpha2Beta1", epsilon, stabilizer, zero_params, layer_map)}


class EpsilonAlpha2Beta1Flat(Composite):
    """EpsilonAlpha2Beta1 with flat on the first layer."""
    def __init__(self, epsilon=1e-6, stabilizer=STABILIZER, layer_map=None, first_map=None, zero_params=None, canonizers=None):
        super().__init__(canonizers)
        self.options = {"composite": "epsilon_alpha2_beta1_flat",
                        "epsilon": _named("EpsilonAlpha2Beta1Flat", epsilon, stabilizer, zero_params, layer_map, first_map)}


class EpsilonGammaBox(Composite):
    """z^B in [low, high] on the first convolution, gamma on the others, epsilon on linear layers."""
    def __init__(self, low, high, epsilon=1e-6, gamma=0.25, stabilizer=STABILIZER, layer_map=None, first_map=None,
                 zero_params=None, canonizers=None):
        super().__init__(canonizers)
        e = _named("EpsilonGammaBox", epsilon, stabilizer, zero_params, layer_map, first_map)
        self.options = {"composite": f"conv={Gamma(gamma).spec},linear={Epsilon(e).spec},first={ZBox(low, high).spec}"}


COMPOSITES = {"epsilon_plus": EpsilonPlus, "epsilon_plus_flat": EpsilonPlusFlat, "epsilon_gamma_box": EpsilonGammaBox,
              "epsilon_alpha2_beta1": EpsilonAlpha2Beta1, "epsilon_alpha2_beta1_flat": EpsilonAlpha2Beta1Flat}


class Gradient:
    """zennit's Gradient attributor: `attributor(input, attr_output)` returns the model's output
    and the input's relevance. `attr_output` (here or at the call) is a tensor [N or 1, classes]
    or a function of the output giving one, with one nonzero entry per image."""
    def __init__(self, model=None, composite=None, attr_output=None, create_graph=False, retain_graph=None):
        if create_graph:
            raise LoupeValueError("Gradient: create_graph=True is not supported by Loupe (its relevance is not a torch graph)")
        if composite is None or not isinstance(getattr(composite, "options", None), dict):
            raise LoupeValueError("Gradient: Loupe needs a composite from loupe.zennit.composites (EpsilonPlusFlat, ...)")
        self.model, self.composite, self.attr_output = model, composite, attr_output

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def _check_canonized(self):
        """zennit without a canonizer runs LRP through unmerged batch norms and adds ResNet's
        branches by gradient; Loupe never does: such a script is refused, not answered otherwise."""
        names = set()

        def collect(canonizers):
            for c in canonizers or []:
                names.add(type(c).__name__)
                collect(getattr(c, "canonizers", None))
        collect(self.composite.canonizers)
        kinds = {type(m).__name__ for m in self.model.modules()} if hasattr(self.model, "modules") else set()
        if kinds & {"BatchNorm1d", "BatchNorm2d", "BatchNorm3d"} and not names & (KNOWN_CANONIZERS - {"CompositeCanonizer"}):
            raise LoupeValueError("Gradient: the model has batch norms and the composite no canonizer; zennit would pass relevance "
                                  "through them unmerged, Loupe folds them into the convolutions: pass "
                                  "canonizers=[SequentialMergeBatchNorm()] (ResNetCanonizer() for a ResNet, VGGCanonizer() for VGG)")
        if kinds & {"BasicBlock", "Bottleneck"} and not names & {"ResNetCanonizer", "ResNetBasicBlockCanonizer", "ResNetBottleneckCanonizer"}:
            raise LoupeValueError("Gradient: a ResNet without ResNetCanonizer; zennit would pass the gradient through its additions, "
                                  "Loupe splits them by contribution: pass canonizers=[ResNetCanonizer()]")

    def __call__(self, input, attr_output=None):
        import torch
        x, _ = tensor_input(input, "Gradient")
        self._check_canonized()
        with torch.no_grad():
            output = self.model(x)
        seed = attr_output if attr_output is not None else self.attr_output
        if callable(seed):
            seed = seed(output.detach())
        if seed is None:
            raise LoupeValueError("Gradient: attr_output=None (relevance seeded with every logit) is not supported by Loupe; "
                                  "pass a one-hot tensor such as torch.eye(1000)[[target]]")
        values = seed.detach().cpu().double().numpy() if _is_torch(seed) else np.asarray(seed, dtype=np.float64)
        n = len(x)
        if values.ndim != 2 or values.shape[1] != output.shape[1] or values.shape[0] not in (1, n):
            raise LoupeValueError(f"Gradient: attr_output of shape {tuple(values.shape)}; Loupe takes [N or 1, {output.shape[1]}]")
        if values.shape[0] == 1:
            values = np.repeat(values, n, axis=0)
        targets, scales = [], []
        for row in values:
            nonzero = np.flatnonzero(row)
            if len(nonzero) != 1:
                raise LoupeValueError(f"Gradient: attr_output rows need exactly one nonzero entry (a class) for Loupe; one has {len(nonzero)}")
            targets.append(int(nonzero[0]))
            scales.append(row[nonzero[0]])
        a = model_of(self.model, x).attribute(x, "lrp", target=targets, **self.composite.options)
        relevance = a.raw
        scale = torch.tensor(scales, dtype=relevance.dtype, device=relevance.device).view(-1, 1, 1, 1)
        return output, relevance * scale if any(s != 1 for s in scales) else relevance
