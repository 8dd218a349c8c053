"""zennit's LRP with Loupe computing it: change `from zennit.composites import ...` (and
`zennit.attribution`, `zennit.rules`, `zennit.torchvision`, `zennit.canonizers`, `zennit.types`, `zennit.layer`)
to `from loupe.zennit.composites import ...` and keep the rest of the script.

    with Gradient(model=model, composite=EpsilonPlusFlat(canonizers=[ResNetCanonizer()])) as attributor:
        output, relevance = attributor(x, torch.eye(1000)[[target]])

Composites: zennit's five by class or registry name, and LayerMapComposite /
SpecialFirstLayerMapComposite built from the rules Epsilon, Gamma, ZPlus, AlphaBeta, Flat, WSquare
and ZBox on convolutions and linear layers (Pass on activations and batch norms, Norm on sums and
average pools: the map every zennit composite shares). Loupe always canonizes: batch norms fold
into the convolution before them, every addition is split by contribution and every average pool
takes the Norm rule, which is what zennit's ResNetCanonizer and VGGCanonizer do for those
networks. A model with batch norms and no canonizer, or a ResNet without ResNetCanonizer, is
refused (zennit would answer otherwise); MobileNetV2, for which zennit has no canonizer, gets its
additions and global pool canonized as ResNet's are. `attr_output` must hold one nonzero entry
per image (a class times a scale). Anything else is refused by name with
LoupeValueError, never ignored."""
from ._core import (AlphaBeta, Composite, CompositeCanonizer, Epsilon, EpsilonAlpha2Beta1, EpsilonAlpha2Beta1Flat,
                    EpsilonGammaBox, EpsilonPlus, EpsilonPlusFlat, Flat, Gamma, Gradient, LayerMapComposite, MergeBatchNorm,
                    Norm, Pass, ResNetCanonizer, SequentialMergeBatchNorm, SpecialFirstLayerMapComposite, VGGCanonizer,
                    WSquare, ZBox, ZPlus, COMPOSITES)

from . import attribution, canonizers, composites, layer, rules, torchvision, types  # noqa: E402,F401

__all__ = ["AlphaBeta", "Composite", "CompositeCanonizer", "Epsilon", "EpsilonAlpha2Beta1", "EpsilonAlpha2Beta1Flat",
           "EpsilonGammaBox", "EpsilonPlus", "EpsilonPlusFlat", "Flat", "Gamma", "Gradient", "LayerMapComposite",
           "MergeBatchNorm", "Norm", "Pass", "ResNetCanonizer", "SequentialMergeBatchNorm", "SpecialFirstLayerMapComposite",
           "VGGCanonizer", "WSquare", "ZBox", "ZPlus", "COMPOSITES"]
