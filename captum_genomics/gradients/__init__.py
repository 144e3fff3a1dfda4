"""Gradient correction for one-hot genomics models (Majdandzic, Rajesh & Koo 2023).

- :mod:`~captum_genomics.gradients.correction`: the pure functions
  :func:`correct_gradients` and :func:`off_simplex_angle`;
- :mod:`~captum_genomics.gradients.model`: :class:`GradientCorrectedModel`, a
  wrapper that makes any Captum gradient method return corrected attributions,
  and the :class:`AngleRecord` of the angles it removed.
"""

from captum_genomics.gradients.correction import correct_gradients, off_simplex_angle
from captum_genomics.gradients.model import (
    AngleRecord,
    CorrectGradient,
    GradientCorrectedModel,
    corrected,
)

__all__ = [
    "correct_gradients",
    "off_simplex_angle",
    "GradientCorrectedModel",
    "AngleRecord",
    "CorrectGradient",
    "corrected",
]
