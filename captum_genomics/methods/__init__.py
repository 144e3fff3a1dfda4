"""Captum ``Attribution`` subclasses: orchestration only, the math lives elsewhere.

Names are imported on first use (PEP 562), so ``from captum_genomics import
ShuffleDeepLiftShap`` does not import FastSHAP's or head ablation's modules (and
pandas with them).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

#: Public name -> the submodule that defines it.
_EXPORTS = {
    "ShuffleDeepLiftShap": "shuffle_deep_lift_shap",
    "ConvergenceDeltaWarning": "shuffle_deep_lift_shap",
    "UninformativeReferencesWarning": "shuffle_deep_lift_shap",
    "FastSHAP": "fast_shap",
    "HeadAblationExplainedVariance": "head_ablation",
    "HeadAblationClassifierEffect": "head_ablation_classifier",
    "InSilicoMutagenesis": "in_silico_mutagenesis",
    "FastPathFallbackWarning": "in_silico_mutagenesis",
    "LayerNodeProbe": "layer_node_probe",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


if TYPE_CHECKING:
    from captum_genomics.methods.fast_shap import FastSHAP  # noqa: F401
    from captum_genomics.methods.head_ablation import HeadAblationExplainedVariance  # noqa: F401
    from captum_genomics.methods.head_ablation_classifier import (  # noqa: F401
        HeadAblationClassifierEffect,
    )
    from captum_genomics.methods.in_silico_mutagenesis import (  # noqa: F401
        FastPathFallbackWarning,
        InSilicoMutagenesis,
    )
    from captum_genomics.methods.layer_node_probe import LayerNodeProbe  # noqa: F401
    from captum_genomics.methods.shuffle_deep_lift_shap import (  # noqa: F401
        ConvergenceDeltaWarning,
        ShuffleDeepLiftShap,
        UninformativeReferencesWarning,
    )
