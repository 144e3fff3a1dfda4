"""Captum ``Attribution`` subclasses: orchestration only, the math lives elsewhere."""

from captum_genomics.methods.fast_shap import FastSHAP
from captum_genomics.methods.head_ablation import HeadAblationExplainedVariance
from captum_genomics.methods.head_ablation_classifier import HeadAblationClassifierEffect
from captum_genomics.methods.in_silico_mutagenesis import (
    FastPathFallbackWarning,
    InSilicoMutagenesis,
)
from captum_genomics.methods.layer_node_probe import LayerNodeProbe
from captum_genomics.methods.shuffle_deep_lift_shap import (
    ConvergenceDeltaWarning,
    ShuffleDeepLiftShap,
    UninformativeReferencesWarning,
)

__all__ = [
    "ShuffleDeepLiftShap",
    "ConvergenceDeltaWarning",
    "UninformativeReferencesWarning",
    "FastSHAP",
    "HeadAblationExplainedVariance",
    "HeadAblationClassifierEffect",
    "InSilicoMutagenesis",
    "FastPathFallbackWarning",
    "LayerNodeProbe",
]
