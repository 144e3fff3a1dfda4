"""Captum ``Attribution`` subclasses: orchestration only, the math lives elsewhere."""

from .fast_shap import FastSHAP
from .head_ablation import HeadAblationExplainedVariance
from .shuffle_deep_lift_shap import ConvergenceDeltaWarning, ShuffleDeepLiftShap

__all__ = [
    "ShuffleDeepLiftShap",
    "ConvergenceDeltaWarning",
    "FastSHAP",
    "HeadAblationExplainedVariance",
]
