"""captum-genomics: validated, fast interpretability methods for genomics models.

Attribution methods follow Captum's ``Attribution`` API; see the README and
``docs/`` for the workflows.

The public names below are imported on first use (PEP 562), so that
``import captum_genomics`` (and the pytest plugin in
:mod:`captum_genomics.testing.plugin`) does not import torch until a name is used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0.dev0"

#: Public name -> the module that defines it.
_EXPORTS = {
    "ShuffleDeepLiftShap": "captum_genomics.methods",
    "ConvergenceDeltaWarning": "captum_genomics.methods",
    "UninformativeReferencesWarning": "captum_genomics.methods",
    "FastSHAP": "captum_genomics.methods",
    "HeadAblationExplainedVariance": "captum_genomics.methods",
    "HeadAblationClassifierEffect": "captum_genomics.methods",
    "InSilicoMutagenesis": "captum_genomics.methods",
    "FastPathFallbackWarning": "captum_genomics.methods",
    "LayerNodeProbe": "captum_genomics.methods",
    "compare": "captum_genomics.comparison",
    "ComparisonResult": "captum_genomics.comparison",
    "ComparisonWarning": "captum_genomics.comparison",
    "GradientCorrectedModel": "captum_genomics.gradients",
    "correct_gradients": "captum_genomics.gradients",
    "off_simplex_angle": "captum_genomics.gradients",
    "HeadAdapterRegistry": "captum_genomics.heads",
    "default_head_adapters": "captum_genomics.heads",
    "MultiheadAttentionAdapter": "captum_genomics.heads",
    "HeadAxisAdapter": "captum_genomics.heads",
    "OutputProjectionAdapter": "captum_genomics.heads",
    "UnsupportedAttentionError": "captum_genomics.heads",
    "deeplift_multipliers": "captum_genomics.deeplift.engine",
    "hypothetical_contributions": "captum_genomics.deeplift.contributions",
    "project_contributions": "captum_genomics.deeplift.contributions",
    "RuleRegistry": "captum_genomics.deeplift.rules",
    "default_rules": "captum_genomics.deeplift.rules",
    "UnsupportedOperationError": "captum_genomics.deeplift.rules",
    "UnsupportedOperationWarning": "captum_genomics.deeplift.rules",
}

__all__ = [*_EXPORTS, "__version__"]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'captum_genomics' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


if TYPE_CHECKING:  # static analysers and IDEs see the real names
    from captum_genomics.deeplift.contributions import (  # noqa: F401
        hypothetical_contributions,
        project_contributions,
    )
    from captum_genomics.deeplift.engine import deeplift_multipliers  # noqa: F401
    from captum_genomics.deeplift.rules import (  # noqa: F401
        RuleRegistry,
        UnsupportedOperationError,
        UnsupportedOperationWarning,
        default_rules,
    )
    from captum_genomics.heads import (  # noqa: F401
        HeadAdapterRegistry,
        HeadAxisAdapter,
        MultiheadAttentionAdapter,
        OutputProjectionAdapter,
        UnsupportedAttentionError,
        default_head_adapters,
    )
    from captum_genomics.methods import (  # noqa: F401
        ConvergenceDeltaWarning,
        FastSHAP,
        HeadAblationClassifierEffect,
        HeadAblationExplainedVariance,
        InSilicoMutagenesis,
        FastPathFallbackWarning,
        LayerNodeProbe,
        ShuffleDeepLiftShap,
        UninformativeReferencesWarning,
    )
    from captum_genomics.comparison import (  # noqa: F401
        ComparisonResult,
        ComparisonWarning,
        compare,
    )
    from captum_genomics.gradients import (  # noqa: F401
        GradientCorrectedModel,
        correct_gradients,
        off_simplex_angle,
    )
