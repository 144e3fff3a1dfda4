"""DeepLIFT rules for nonlinear operations, and the registry that maps ops to rules.

See :mod:`captum_genomics.deeplift.rules.registry` for how ops are matched, and
:mod:`captum_genomics.deeplift.engine` for the engine that applies the rules.
"""

from captum_genomics.deeplift.rules.base import Rule
from captum_genomics.deeplift.rules.conv import Conv1dInputGradient
from captum_genomics.deeplift.rules.glu import GLU
from captum_genomics.deeplift.rules.maxpool import MaxPool, MaxReduce
from captum_genomics.deeplift.rules.normalization import Normalization
from captum_genomics.deeplift.rules.product import Product
from captum_genomics.deeplift.rules.registry import (
    ELEMENTWISE_OPS,
    LINEAR_OPS,
    RuleRegistry,
    UnsupportedOperationError,
    UnsupportedOperationWarning,
    default_rules,
    op_name,
)
from captum_genomics.deeplift.rules.rescale import Rescale
from captum_genomics.deeplift.rules.softmax import Softmax

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
