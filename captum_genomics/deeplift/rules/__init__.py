"""DeepLIFT rules for nonlinear operations, and the registry that maps ops to rules.

- :mod:`.base`: the rule interface and the unsupported-operation error and warning.
- :mod:`.ops`: the op lists (elementwise, linear, bilinear, division, comparison).
- one module per rule family: :mod:`.rescale`, :mod:`.maxpool`, :mod:`.softmax`,
  :mod:`.normalization`, :mod:`.glu`, :mod:`.product`, :mod:`.conv`.
- :mod:`.registry`: which rule handles which op (imports the rules).

See :mod:`captum_genomics.deeplift.rules.registry` for how ops are matched, and
:mod:`captum_genomics.deeplift.engine` for the engine that applies the rules.
"""

from captum_genomics.deeplift.rules.base import Rule, UnsupportedOperationError, UnsupportedOperationWarning
from captum_genomics.deeplift.rules.conv import Conv1dInputGradient
from captum_genomics.deeplift.rules.glu import GLU
from captum_genomics.deeplift.rules.maxpool import MaxPool, MaxReduce
from captum_genomics.deeplift.rules.normalization import Normalization
from captum_genomics.deeplift.rules.ops import ELEMENTWISE_OPS, LINEAR_OPS
from captum_genomics.deeplift.rules.product import Product
from captum_genomics.deeplift.rules.registry import RuleRegistry, default_rules, op_name
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
