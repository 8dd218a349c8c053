"""zennit.types' layer kinds, for LayerMapComposite's maps."""
from ._core import Activation, AvgPool, BatchNorm, Convolution, Linear  # noqa: F401
