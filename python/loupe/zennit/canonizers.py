"""zennit.canonizers' batch-norm canonizers: accepted, since Loupe always canonizes (see loupe.zennit)."""
from ._core import CompositeCanonizer, MergeBatchNorm, SequentialMergeBatchNorm  # noqa: F401
