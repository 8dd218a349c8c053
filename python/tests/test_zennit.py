"""loupe.zennit against zennit itself: the same script with `zennit` or `loupe.zennit` imported,
on torchvision ResNet18 (seeded) and MobileNetV2 (its ImageNet weights) with real
photos, batch 1 and 4. Each relevance map is held to zennit's float64 answer within
max(1e-3, 4 x zennit's own float32 error) (max |difference| / max |reference|), its own error
measured as test_adapters.py measures Captum's: the largest of its float32 answers' errors on the
model and on two copies whose weights are one rounding step up or down at random. LRP divides by
each layer's output plus 1e-6 of its sign: an output within rounding of zero flips that sign, and
real photos (and MobileNetV2's narrow layers) reach such outputs.

Both sides get the network with its batch norms already folded into the convolutions (torch's
fuse_conv_bn_eval): zennit's canonizers fold them in float arithmetic of their own, the ONNX
exporter in another, and on a photo with flat areas (8-bit pixels give exact ties in ResNet's
first max pool) each fold picks other winners: the astronaut at 128 px moves PyTorch's own
gradient by 3.5% between the plain and zennit's canonized ResNet18. Folded once, both run the
same weights; what the test compares is the propagation, not the rounding of two folds.

zennit ships canonizers for ResNet and VGG; MobileNetV2's residual addition and global pool are
functions, which its rules never reach, so zennit's side gets a canonizer that makes them modules
(as ResNetCanonizer does for ResNet's additions): what Loupe always does."""
import copy
import importlib

import numpy as np
import pytest
import torch
from torchvision.models.mobilenetv2 import InvertedResidual, MobileNetV2
from zennit.canonizers import AttributeCanonizer
from zennit.layer import Sum

import loupe.zennit
from conftest import photos, relative_error
from test_adapters import rounded_copies

TARGETS = [285, 7, 409, 812]
COMPOSITES = ["EpsilonPlus", "EpsilonPlusFlat", "EpsilonGammaBox", "EpsilonAlpha2Beta1", "EpsilonAlpha2Beta1Flat", "custom"]


class MobileNetV2Canonizer(AttributeCanonizer):
    """InvertedResidual's addition as a Sum module and the global pool as a module (zennit's side)."""
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
        return self.classifier(torch.flatten(self.canonizer_pool(self.features(x)), 1))


_folded = {}


def folded(model):
    """A copy of `model` with each batch norm folded into the convolution registered right before
    it; one copy per model, so that Loupe exports it once."""
    if id(model) not in _folded:
        _folded[id(model)] = (model, _fold(model))
    return _folded[id(model)][1]


def _fold(model):
    model = copy.deepcopy(model)
    for parent in list(model.modules()):
        names = list(parent._modules)
        for a, b in zip(names, names[1:]):
            conv, norm = parent._modules[a], parent._modules[b]
            if isinstance(conv, torch.nn.Conv2d) and isinstance(norm, torch.nn.BatchNorm2d):
                parent._modules[a] = torch.nn.utils.fusion.fuse_conv_bn_eval(conv, norm)
                parent._modules[b] = torch.nn.Identity()
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    return model.eval()


def relevance(lib, name, composite, model, x, targets):
    """The script a zennit user writes, with `lib` ("zennit" or "loupe.zennit") imported."""
    composites = importlib.import_module(f"{lib}.composites")
    rules = importlib.import_module(f"{lib}.rules")
    types = importlib.import_module(f"{lib}.types")
    canonizers = importlib.import_module(f"{lib}.canonizers")
    if name == "resnet18":
        canon = [importlib.import_module(f"{lib}.torchvision").ResNetCanonizer()]
    else:
        canon = [canonizers.SequentialMergeBatchNorm()] + ([MobileNetV2Canonizer()] if lib == "zennit" else [])
    mean = torch.tensor([0.485, 0.456, 0.406], dtype=x.dtype).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225], dtype=x.dtype).view(1, 3, 1, 1)
    if composite == "EpsilonGammaBox":
        c = composites.EpsilonGammaBox(low=((0 - mean) / std).expand_as(x), high=((1 - mean) / std).expand_as(x), gamma=0.5,
                                       canonizers=canon)
    elif composite == "custom":
        layer_map = [(types.Activation, rules.Pass()), (importlib.import_module(f"{lib}.layer").Sum, rules.Norm()), (types.AvgPool, rules.Norm()),
                     (types.BatchNorm, rules.Pass()), (types.Convolution, rules.Gamma(gamma=0.5)),
                     (torch.nn.Linear, rules.Epsilon(epsilon=0.01))]
        c = composites.SpecialFirstLayerMapComposite(layer_map=layer_map, first_map=[(types.Linear, rules.WSquare())],
                                                     canonizers=canon)
    else:
        c = getattr(composites, composite)(canonizers=canon)
    one_hot = torch.zeros(len(x), 1000, dtype=x.dtype)
    one_hot[range(len(x)), targets] = 1
    with importlib.import_module(f"{lib}.attribution").Gradient(model=model, composite=c) as attributor:
        output, r = attributor(x, one_hot)
    return output.detach(), r.detach()


@pytest.mark.parametrize("batch", [1, 4])
@pytest.mark.parametrize("composite", COMPOSITES)
@pytest.mark.parametrize("fixture", ["resnet18", "mobilenet_v2_imagenet"])
def test_zennit_adapter_matches_zennit(request, fixture, composite, batch):
    model = folded(request.getfixturevalue(fixture))
    name = "resnet18" if fixture == "resnet18" else "mobilenet_v2"
    x, targets = photos(batch), TARGETS[:batch]
    _, expected32 = relevance("zennit", name, composite, model, x, targets)
    _, expected64 = relevance("zennit", name, composite, copy.deepcopy(model).double(), x.double(), targets)
    output, got = relevance("loupe.zennit", name, composite, model, x, targets)
    assert isinstance(got, torch.Tensor) and got.dtype == torch.float32 and got.shape == x.shape
    with torch.no_grad():
        assert torch.equal(output, model(x))
    error = relative_error(got, expected64)
    own = [relative_error(expected32, expected64)]
    if error > 1e-3:
        own += [relative_error(relevance("zennit", name, composite, other, x, targets)[1], expected64)
                for other, _ in rounded_copies(model, model)]
    bound = max(1e-3, 4 * max(own))
    print(f"{fixture} {composite} batch {batch}: error {error:.2e}, bound {bound:.2e}")
    assert error <= bound, f"{fixture} {composite} batch {batch}: error {error:.2e} > bound {bound:.2e}"


def concept_heatmap(name, model, x, targets, layer, channels):
    """zennit-crp's CondAttribution heatmap of `channels` of `layer` (EpsilonPlusFlat, zennit's canonizers)."""
    from crp.attribution import CondAttribution
    from zennit.composites import EpsilonPlusFlat
    from zennit.canonizers import SequentialMergeBatchNorm
    from zennit.torchvision import ResNetCanonizer
    canon = [ResNetCanonizer()] if name == "resnet18" else [SequentialMergeBatchNorm(), MobileNetV2Canonizer()]
    x = x.clone().requires_grad_(True)
    conditions = [{"y": [t], layer: channels} for t in targets]
    return CondAttribution(model, no_param_grad=True)(x, conditions, EpsilonPlusFlat(canonizers=canon)).heatmap.detach()


@pytest.mark.parametrize("fixture", ["resnet18", "mobilenet_v2_imagenet"])
def test_concept_relevance_matches_zennit_crp(request, fixture):
    """model.attribute(x, "concept_relevance") against zennit-crp's conditional heatmap: the
    relevance from each target's logit masked to two channels of a layer, on to the input."""
    model = folded(request.getfixturevalue(fixture))
    name, layer = ("resnet18", "layer3") if fixture == "resnet18" else ("mobilenet_v2", "features.13")
    x, targets, channels = photos(2), TARGETS[:2], [5, 9]
    expected32 = concept_heatmap(name, copy.deepcopy(model), x, targets, layer, channels)
    expected64 = concept_heatmap(name, copy.deepcopy(model).double(), x.double(), targets, layer, channels)
    got = loupe.from_torch(model, x).attribute(x, "concept_relevance", target=targets, layer=layer, concept=channels,
                                               composite="epsilon_plus_flat").map
    error = relative_error(torch.as_tensor(np.asarray(got)), expected64)
    own = [relative_error(expected32, expected64)]
    if error > 1e-3:
        own += [relative_error(concept_heatmap(name, other, x, targets, layer, channels), expected64) for other, _ in rounded_copies(model, model)]
    bound = max(1e-3, 4 * max(own))
    print(f"{fixture} concept relevance: error {error:.2e}, bound {bound:.2e}")
    assert error <= bound, f"{fixture} concept relevance: error {error:.2e} > bound {bound:.2e}"


def test_the_seed_scales_and_broadcasts(resnet18):
    """A one-hot row times 3 triples the relevance (every rule is linear in it); one row serves every image."""
    x = photos(2)
    composite = loupe.zennit.EpsilonPlusFlat(canonizers=[loupe.zennit.ResNetCanonizer()])
    with loupe.zennit.Gradient(model=resnet18, composite=composite) as attributor:
        _, once = attributor(x, torch.eye(1000)[[285, 285]])
        _, thrice = attributor(x, 3 * torch.eye(1000)[[285]])
        _, called = attributor(x, lambda output: torch.eye(1000)[[285]])
    assert torch.allclose(thrice, 3 * once, rtol=1e-5, atol=0) and torch.equal(called, once)
    via_model = loupe.from_torch(resnet18, x).attribute(x, "lrp", target=285, composite="epsilon_plus_flat").raw
    assert np.allclose(via_model, once.numpy(), rtol=1e-6, atol=1e-12)


def test_what_loupe_cannot_compute_is_refused_by_name(resnet18):
    from zennit.canonizers import AttributeCanonizer as ZennitAttributeCanonizer
    import zennit.rules
    x = photos(1)
    canonized = loupe.zennit.EpsilonPlus(canonizers=[loupe.zennit.ResNetCanonizer()])
    refusals = [
        (lambda: loupe.zennit.EpsilonPlus(stabilizer=1e-3), "stabilizer"),
        (lambda: loupe.zennit.EpsilonPlus(zero_params=["bias"]), "zero_params"),
        (lambda: loupe.zennit.EpsilonPlus(epsilon=lambda v: v), "callable"),
        (lambda: loupe.zennit.EpsilonPlusFlat(canonizers=[ZennitAttributeCanonizer(lambda n, m: None)]), "AttributeCanonizer"),
        (lambda: loupe.zennit.LayerMapComposite([(loupe.zennit.types.Convolution, zennit.rules.ZPlus())]), "loupe.zennit.rules"),
        (lambda: loupe.zennit.LayerMapComposite([(loupe.zennit.types.Convolution, loupe.zennit.ZPlus())]), "no LRP rule for linear"),
        (lambda: loupe.zennit.LayerMapComposite([(loupe.zennit.types.Activation, loupe.zennit.Norm()),
                                                 (loupe.zennit.types.Linear, loupe.zennit.ZPlus())]), "Activation takes Norm"),
        (lambda: loupe.zennit.ZBox(low=torch.randn(1, 3, 4, 4), high=3.0), "varies within a channel"),
        (lambda: loupe.zennit.AlphaBeta(alpha=2, beta=2), "alpha - beta"),
        (lambda: loupe.zennit.Gradient(model=resnet18, composite=loupe.zennit.EpsilonPlus(), create_graph=True), "create_graph"),
        (lambda: loupe.zennit.Gradient(model=resnet18, composite=canonized)(x), "attr_output=None"),
        (lambda: loupe.zennit.Gradient(model=resnet18, composite=canonized)(x, torch.ones(1, 1000)), "one nonzero"),
        (lambda: loupe.zennit.Gradient(model=resnet18, composite=canonized)(x, torch.eye(10)[[1]]), "[N or 1, 1000]"),
        (lambda: loupe.zennit.Gradient(model=resnet18, composite=loupe.zennit.EpsilonPlus())(x, torch.eye(1000)[[1]]),
         "batch norms and the composite no canonizer"),
        (lambda: loupe.zennit.Gradient(model=resnet18, composite=loupe.zennit.EpsilonPlus(
            canonizers=[loupe.zennit.SequentialMergeBatchNorm()]))(x, torch.eye(1000)[[1]]), "without ResNetCanonizer"),
    ]
    for call, words in refusals:
        with pytest.raises(ValueError, match=None) as caught:
            call()
        assert words in str(caught.value), f"{words!r} not in {caught.value}"


def test_relevance_maximization_matches_zennit_crp(resnet18):
    """model.relevance_maximization and reference_heatmaps against zennit-crp's
    FeatureVisualization (its defaults: the relevance sum, normalized over channels) and
    get_max_reference(rf=True) on ResNet18's layer2, four photos at 64 px in batches of 2."""
    import tempfile
    from crp.attribution import CondAttribution
    from crp.concepts import ChannelConcept
    from crp.helper import load_maximization, max_norm
    from crp.image import get_crop_range
    from crp.visualization import FeatureVisualization
    from torchvision.transforms.functional import gaussian_blur
    from zennit.composites import EpsilonPlusFlat
    from zennit.torchvision import ResNetCanonizer

    model = folded(resnet18)
    x = photos(4, size=64)
    targets = model(x).argmax(1).tolist()

    class Data(torch.utils.data.Dataset):
        def __len__(self):
            return len(x)

        def __getitem__(self, i):
            return x[i], targets[i]

    with tempfile.TemporaryDirectory() as tmp:
        fv = FeatureVisualization(CondAttribution(model, no_param_grad=True), Data(), {"layer2": ChannelConcept()}, path=tmp)
        fv.run(EpsilonPlusFlat(canonizers=[ResNetCanonizer()]), 0, len(x), batch_size=2)
        data, rel, rf = (np.array(a) for a in load_maximization(fv.RelMax.PATH, "layer2"))
        channel = int(np.argmax(rel[0]))
        _, heat = fv.get_max_reference([channel], "layer2", "relevance", (0, 3), composite=EpsilonPlusFlat(canonizers=[ResNetCanonizer()]),
                                       rf=True, plot_fn=None)[channel]

    ours = loupe.from_torch(model, x)
    got = ours.relevance_maximization(x, "layer2", target=targets, top=len(x), batch=2)
    assert got.targets == targets and got.scores.shape == rel.shape
    error = np.linalg.norm(got.scores - rel) / np.linalg.norm(rel)
    print(f"relevance maximization: scores' relative L2 {error:.2e}")
    assert error < 1e-3
    # Ranks and neurons equal, except between images whose scores are within rounding (a dead
    # channel's are all zero).
    scale = np.abs(rel).max(0)
    tied = np.array([[np.any(np.abs(np.delete(rel[:, k], r) - rel[r, k]) <= 1e-4 * scale[k]) for k in range(rel.shape[1])] for r in range(rel.shape[0])])
    assert np.all((got.images == data) | tied) and np.all((got.neurons == rf) | tied)

    top = data[:3, channel]
    maps, crops = ours.reference_heatmaps(x[top], "layer2", channel, neurons=rf[:3, channel])
    for i in range(3):
        e = relative_error(maps[i], heat[i])
        assert e < 1e-3, f"reference heatmap {i}: error {e:.2e}"
        window = get_crop_range(max_norm(gaussian_blur(heat[i].detach().unsqueeze(0), kernel_size=19)[0]), 0.1)
        want = None if [int(v) for v in window] == [0, -1, 0, -1] else tuple(int(v) for v in window)
        assert crops[i] == want or (want and crops[i] and max(abs(a - b) for a, b in zip(crops[i], want)) <= 1), f"{crops[i]} != {want}"
    with pytest.raises(loupe.LoupeValueError, match="max_target mean: expected sum or max"):
        ours.relevance_maximization(x, "layer2", max_target="mean")
    with pytest.raises(loupe.LoupeValueError, match="channel 9999 does not exist"):
        ours.reference_heatmaps(x[:1], "layer2", 9999)
