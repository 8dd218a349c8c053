"""zennit.composites' names, computed by Loupe (see loupe.zennit)."""
from ._core import (COMPOSITES, Composite, EpsilonAlpha2Beta1, EpsilonAlpha2Beta1Flat, EpsilonGammaBox,  # noqa: F401
                    EpsilonPlus, EpsilonPlusFlat, LayerMapComposite, SpecialFirstLayerMapComposite)
