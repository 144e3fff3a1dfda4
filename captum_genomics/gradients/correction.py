"""Gradient correction for one-hot inputs: remove the off-simplex component.

A one-hot model only ever sees inputs on the simplex plane: at each position the
4 channels sum to 1. The gradient's component along the plane's normal
``(1, 1, 1, 1) / 2`` is never constrained by data, so it is arbitrary and adds
noise to gradient-based attributions. The correction removes it by subtracting,
at each position, the mean over the 4 bases (an orthogonal projection onto the
plane ``sum_b g_b = 0``).

Reference: Majdandzic A., Rajesh C. & Koo P. K. "Correcting gradient-based
interpretations of deep neural networks for genomics." Genome Biology 24, 109
(2023). https://doi.org/10.1186/s13059-023-02956-3
"""

from __future__ import annotations

import torch
from torch import Tensor

from captum_genomics._utils.checks import check_tensor

__all__ = ["correct_gradients", "off_simplex_angle"]

ALPHABET_SIZE = 4


def _check(gradients, dim: int) -> int:
    """Validate ``gradients`` and ``dim``; return ``dim`` as a non-negative axis."""
    check_tensor(gradients, "gradients")
    if not gradients.is_floating_point():
        raise TypeError(
            f"`gradients` must have a floating dtype, got {gradients.dtype}."
        )
    if isinstance(dim, bool) or not isinstance(dim, int):
        raise TypeError(f"`dim` must be an int, got {type(dim).__name__}.")
    if not -gradients.ndim <= dim < gradients.ndim:
        raise ValueError(
            f"`dim` must be an axis of `gradients` (ndim {gradients.ndim}), got {dim}."
        )
    dim = dim % gradients.ndim
    if gradients.shape[dim] != ALPHABET_SIZE:
        raise ValueError(
            f"`gradients` must have {ALPHABET_SIZE} channels (A, C, G, T) along the "
            f"alphabet axis dim={dim}, got shape {tuple(gradients.shape)}."
        )
    return dim


def correct_gradients(gradients: Tensor, dim: int = -2) -> Tensor:
    """Subtract, at each position, the mean over the 4 bases from the gradient.

    ``g_corrected[b] = g[b] - mean_b' g[b']``: the orthogonal projection of each
    position's gradient onto the simplex plane's direction space
    (``sum_b g_b = 0``). Linear and idempotent. Majdandzic, Rajesh & Koo,
    Genome Biology 24:109 (2023).

    Parameters
    ----------
    gradients
        Float tensor (any floating dtype, any device), e.g. ``shape=(N, 4, L)``
        or ``(4, L)``. Not modified. NaN/Inf propagate.
    dim
        The alphabet axis (size 4). Default ``-2`` (the 4 of ``(N, 4, L)``).

    Returns
    -------
    Tensor
        Same shape, dtype and device as ``gradients``; sums to 0 along ``dim``.

    Raises
    ------
    TypeError
        If ``gradients`` is not a tensor or not floating point, or ``dim`` not an int.
    ValueError
        If ``dim`` is not an axis of ``gradients`` or that axis is not of size 4.
    """
    dim = _check(gradients, dim)
    return gradients - gradients.mean(dim=dim, keepdim=True)


def off_simplex_angle(gradients: Tensor, dim: int = -2) -> Tensor:
    """Angle, in degrees, between each position's gradient and the simplex plane.

    ``sin(theta) = |sum_b g_b| / (2 ||g||)``: the angle the correction of
    :func:`correct_gradients` removes (0 deg: nothing removed; 90 deg: the
    gradient is all along ``(1, 1, 1, 1)``). Majdandzic, Rajesh & Koo (2023) use
    it to show how far naive gradients leave the data manifold.

    Parameters
    ----------
    gradients
        Float tensor, e.g. ``shape=(N, 4, L)`` or ``(4, L)``. Not modified.
    dim
        The alphabet axis (size 4). Default ``-2``.

    Returns
    -------
    Tensor
        Angles in degrees in ``[0, 90]``, ``gradients``' shape without ``dim``
        (e.g. ``(N, L)``), same floating dtype and device. 0 where the gradient
        is all zero. Scale-invariant: each position is divided by its largest
        absolute value first, so tiny or huge gradients do not under/overflow;
        ``sin`` is clamped to ``[0, 1]`` before ``asin``.

    Raises
    ------
    TypeError
        If ``gradients`` is not a tensor or not floating point, or ``dim`` not an int.
    ValueError
        If ``dim`` is not an axis of ``gradients`` or that axis is not of size 4.
    """
    dim = _check(gradients, dim)
    scale = gradients.abs().amax(dim=dim, keepdim=True)
    g = gradients / torch.where(scale > 0, scale, torch.ones_like(scale))
    total = g.sum(dim=dim).abs()
    norm = torch.linalg.vector_norm(g, dim=dim)
    safe = torch.where(norm > 0, norm, torch.ones_like(norm))
    sin = torch.where(norm > 0, total / (2 * safe), torch.zeros_like(norm))
    return torch.rad2deg(torch.asin(sin.clamp(0.0, 1.0)))
