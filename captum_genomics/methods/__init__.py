"""Captum ``Attribution`` subclasses: orchestration only, the math lives elsewhere."""

from .fast_shap import FastSHAP
from .shuffle_deep_lift_shap import ConvergenceDeltaWarning, ShuffleDeepLiftShap

__all__ = ["ShuffleDeepLiftShap", "ConvergenceDeltaWarning", "FastSHAP"]
