"""captum-genomics: validated, fast interpretability methods for genomics models.

Attribution methods follow Captum's ``Attribution`` API; see the README and
``docs/`` for the workflows.
"""

from .contributions import hypothetical_contributions, project_contributions
from .deeplift import deeplift_multipliers
from .heads import (
    HeadAdapterRegistry,
    HeadAxisAdapter,
    MultiheadAttentionAdapter,
    OutputProjectionAdapter,
    UnsupportedAttentionError,
    default_head_adapters,
)
from .methods import (
    ConvergenceDeltaWarning,
    FastSHAP,
    HeadAblationExplainedVariance,
    ShuffleDeepLiftShap,
)
from .rules import RuleRegistry, UnsupportedOperationError, UnsupportedOperationWarning, default_rules

__version__ = "0.1.0.dev0"

__all__ = [
    "ShuffleDeepLiftShap",
    "ConvergenceDeltaWarning",
    "FastSHAP",
    "HeadAblationExplainedVariance",
    "HeadAdapterRegistry",
    "default_head_adapters",
    "MultiheadAttentionAdapter",
    "HeadAxisAdapter",
    "OutputProjectionAdapter",
    "UnsupportedAttentionError",
    "deeplift_multipliers",
    "hypothetical_contributions",
    "project_contributions",
    "RuleRegistry",
    "default_rules",
    "UnsupportedOperationError",
    "UnsupportedOperationWarning",
    "__version__",
]
