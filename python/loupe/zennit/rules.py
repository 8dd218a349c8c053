"""zennit.rules' LRP rules, for loupe.zennit's composites."""
from ._core import AlphaBeta, Epsilon, Flat, Gamma, Norm, Pass, WSquare, ZBox, ZPlus  # noqa: F401
