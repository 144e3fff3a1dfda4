"""Multiple-testing correction of p-values (Benjamini-Hochberg) and the significance level.

- :func:`adjust_p_values`: Benjamini-Hochberg adjusted p-values via
  :func:`scipy.stats.false_discovery_control`, mapped back by position (so
  tied p-values of different tests cannot collide, unlike AMICI's lookup by
  float value; Hong et al. 2025).
- :func:`check_alpha`: validation of a significance level ``0 < alpha < 1``.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "adjust_p_values",
    "check_alpha",
]


def check_alpha(alpha: Any) -> float:
    """Raise ``ValueError`` unless ``alpha`` is a real number with ``0 < alpha < 1``; return it."""
    if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real) or not (
            0.0 < float(alpha) < 1.0):
        raise ValueError(
            f"`alpha` must be a number in the open interval (0, 1), got {alpha!r}.")
    return float(alpha)


def adjust_p_values(p_values: Tensor) -> Tensor:
    """Benjamini-Hochberg adjusted p-values, computed jointly over all finite entries.

    Uses :func:`scipy.stats.false_discovery_control` (``method="bh"``) on the
    finite entries in row-major order and writes each adjusted value back to
    the position it came from (AMICI maps them back through a dict keyed by
    the float p-value, which conflates equal p-values of different tests).

    Parameters
    ----------
    p_values
        Any shape, values in [0, 1] or NaN (NaN = not tested, e.g. a skipped
        group). Tensor or numpy array.

    Returns
    -------
    Tensor, same shape, float64
        Adjusted p-values; NaN where the input is NaN.

    Raises
    ------
    TypeError
        If ``p_values`` is not a tensor or array of real numbers.
    ValueError
        If an entry is infinite or outside [0, 1].
    """
    from scipy.stats import false_discovery_control

    if isinstance(p_values, np.ndarray):
        p_values = torch.from_numpy(p_values)
    if not isinstance(p_values, Tensor) or p_values.is_complex() or p_values.dtype == torch.bool:
        raise TypeError(
            f"`p_values` must be a real tensor or numpy array, got {type(p_values).__name__}.")
    p = p_values.detach().cpu().to(torch.float64)
    if bool(torch.isinf(p).any()):
        raise ValueError("`p_values` must be in [0, 1] or NaN, got an infinite value.")
    finite = ~torch.isnan(p)
    vals = p[finite]
    if vals.numel() and (float(vals.min()) < 0.0 or float(vals.max()) > 1.0):
        raise ValueError(
            f"`p_values` must be in [0, 1] or NaN, got values in [{float(vals.min())}, "
            f"{float(vals.max())}].")
    out = torch.full_like(p, math.nan)
    if vals.numel():
        adj = false_discovery_control(vals.numpy(), method="bh")
        out[finite] = torch.from_numpy(np.asarray(adj, dtype=np.float64))
    return out.to(p_values.device)
