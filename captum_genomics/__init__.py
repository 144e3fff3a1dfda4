"""captum-genomics: validated, fast interpretability methods for genomics models.

Attribution methods follow Captum's ``Attribution`` API; see the README and
``docs/`` for the workflows.
"""

from captum_genomics.deeplift.contributions import hypothetical_contributions, project_contributions
from captum_genomics.deeplift.engine import deeplift_multipliers
from captum_genomics.heads import (
    HeadAdapterRegistry,
    HeadAxisAdapter,
    MultiheadAttentionAdapter,
    OutputProjectionAdapter,
    UnsupportedAttentionError,
    default_head_adapters,
)
from captum_genomics.methods import (
    ConvergenceDeltaWarning,
    FastSHAP,
    HeadAblationExplainedVariance,
    ShuffleDeepLiftShap,
)
from captum_genomics.deeplift.rules import RuleRegistry, UnsupportedOperationError, UnsupportedOperationWarning, default_rules

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
