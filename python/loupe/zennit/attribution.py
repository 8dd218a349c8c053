"""zennit.attribution's Gradient, computed by Loupe (see loupe.zennit)."""
from ._core import Gradient  # noqa: F401
