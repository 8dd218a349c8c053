"""zennit.layer's Sum, for LayerMapComposite's maps."""
from ._core import Sum  # noqa: F401
