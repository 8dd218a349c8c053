"""zennit.torchvision's canonizers: accepted, since Loupe always canonizes (see loupe.zennit)."""
from ._core import ResNetCanonizer, VGGCanonizer  # noqa: F401
