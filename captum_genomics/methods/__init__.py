"""Captum ``Attribution`` subclasses: orchestration only, the math lives elsewhere."""

from .shuffle_deep_lift_shap import ConvergenceDeltaWarning, ShuffleDeepLiftShap

__all__ = ["ShuffleDeepLiftShap", "ConvergenceDeltaWarning"]
