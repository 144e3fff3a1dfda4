"""DeepLIFT rules for nonlinear operations, and the registry that maps ops to rules.

See :mod:`captum_genomics.rules.registry` for how ops are matched, and
:mod:`captum_genomics.deeplift` for the engine that applies the rules.
"""

from .base import Rule
from .conv import Conv1dInputGradient
from .glu import GLU
from .maxpool import MaxPool, MaxReduce
from .normalization import Normalization
from .product import Product
from .registry import (
    ELEMENTWISE_OPS,
    LINEAR_OPS,
    RuleRegistry,
    UnsupportedOperationError,
    UnsupportedOperationWarning,
    default_rules,
    op_name,
)
from .rescale import Rescale
from .softmax import Softmax

__all__ = [
    "Rule",
    "Rescale",
    "MaxPool",
    "MaxReduce",
    "Softmax",
    "Normalization",
    "GLU",
    "Product",
    "Conv1dInputGradient",
    "RuleRegistry",
    "default_rules",
    "op_name",
    "UnsupportedOperationError",
    "UnsupportedOperationWarning",
    "ELEMENTWISE_OPS",
    "LINEAR_OPS",
]
