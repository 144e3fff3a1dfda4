"""Efficiency normalization of predicted Shapley values.

FastSHAP (Jethani et al., ICLR 2022, Section 3.2, "additive efficient
normalization") projects the explainer's raw output onto the efficiency
constraint ``sum_i phi_i = v(1) - v(0)`` before the loss and at inference:

    phi_i <- phi_i + (v(1) - v(0) - sum_j phi_j) / d.

This is the Euclidean projection onto that hyperplane: the correction is the
same for every player and along the hyperplane's normal ``(1, ..., 1)``.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["additive_efficient_normalization", "efficiency_gap", "constrain"]


def _check_active(phi: Tensor, active: Tensor | None) -> None:
    if active is not None and (active.ndim != 2 or tuple(active.shape) != tuple(phi.shape[:2])):
        raise ValueError(
            f"`active` must have shape (B, d) = {tuple(phi.shape[:2])} to match `phi` "
            f"{tuple(phi.shape)}, got {tuple(active.shape)}."
        )


def _check(phi: Tensor, grand: Tensor, null: Tensor) -> None:
    if phi.ndim != 3:
        raise ValueError(f"`phi` must have shape (B, d, T), got {tuple(phi.shape)}.")
    b, _, t = phi.shape
    for name, v in (("grand", grand), ("null", null)):
        if tuple(v.shape) != (b, t):
            raise ValueError(
                f"`{name}` must have shape (B, T) = {(b, t)} to match `phi` "
                f"{tuple(phi.shape)}, got {tuple(v.shape)}."
            )


def efficiency_gap(phi: Tensor, grand: Tensor, null: Tensor) -> Tensor:
    """``v(1) - v(0) - sum_i phi_i`` per example and output.

    Parameters
    ----------
    phi
        ``shape=(B, d, T)``: ``B`` examples, ``d`` players, ``T`` outputs.
    grand
        ``shape=(B, T)``: the grand-coalition value ``v(x, 1)``.
    null
        ``shape=(B, T)``: the empty-coalition value ``v(x, 0)``.

    Returns
    -------
    Tensor
        ``shape=(B, T)``, the dtype of ``phi``; the sum is taken in float64 for
        floating inputs of lower precision.

    Raises
    ------
    ValueError
        If the shapes do not match.
    """
    _check(phi, grand, null)
    wide = phi.double() if phi.is_floating_point() else phi
    gap = (grand.to(wide.dtype) - null.to(wide.dtype)) - wide.sum(dim=1)
    return gap.to(phi.dtype)


def additive_efficient_normalization(phi: Tensor, grand: Tensor, null: Tensor,
                                     active: Tensor | None = None) -> Tensor:
    """Project ``phi`` onto ``sum_i phi_i = v(1) - v(0)`` (additive efficient normalization).

    Returns ``phi + (v(1) - v(0) - phi.sum(1)) / d``, the closest point in
    Euclidean norm (per example and output) that satisfies efficiency exactly.
    With ``active``, players outside it are set to exactly 0 (they are null
    players, whose Shapley value is 0) and the gap is spread over the ``d_a``
    active players only: the projection onto the efficiency hyperplane within
    the subspace where the null players are 0. Differentiable in ``phi``;
    gradients also flow into ``grand`` and ``null`` if they require them.

    Parameters
    ----------
    phi
        ``shape=(B, d, T)``, floating: raw predictions for ``d`` players and
        ``T`` outputs.
    grand
        ``shape=(B, T)``: ``v(x, 1)``.
    null
        ``shape=(B, T)``: ``v(x, 0)``.
    active
        Optional ``shape=(B, d)`` bool: the players that may be non-null.
        Default None: all. A row with no active player gets ``phi = 0``
        (for a game whose every player is null, ``v(1) = v(0)``).

    Returns
    -------
    Tensor
        ``shape=(B, d, T)``, the dtype of ``phi``. The gap is computed in
        float64, so in float32 ``|sum_i phi_i - (v(1) - v(0))|`` is a few ulps
        of the values' magnitude times ``sqrt(d)``.

    Raises
    ------
    ValueError
        If the shapes do not match.
    """
    _check(phi, grand, null)
    _check_active(phi, active)
    d = phi.shape[1]
    wide = phi.double()
    if active is None:
        gap = (grand.double() - null.double()) - wide.sum(dim=1)
        return (wide + gap.unsqueeze(1) / d).to(phi.dtype)
    keep = active.to(device=phi.device, dtype=torch.float64).unsqueeze(-1)  # (B, d, 1)
    wide = wide * keep
    n_active = keep.sum(dim=1).clamp_min(1.0)  # (B, 1)
    gap = (grand.double() - null.double()) - wide.sum(dim=1)
    return (wide + keep * (gap / n_active).unsqueeze(1)).to(phi.dtype)


def constrain(phi: Tensor, grand: Tensor | None, null: Tensor | None,
              active: Tensor | None = None) -> Tensor:
    """The constraints used in training and at inference, in one place.

    With ``grand`` (and ``null``): :func:`additive_efficient_normalization`
    (over the ``active`` players). Without: only the null players are set to
    0. With neither ``grand`` nor ``active``: ``phi`` unchanged.

    Parameters
    ----------
    phi
        ``shape=(B, d, T)``.
    grand, null
        ``shape=(B, T)`` or None (no normalization).
    active
        Optional ``shape=(B, d)`` bool; see
        :func:`additive_efficient_normalization`.

    Returns
    -------
    Tensor
        ``shape=(B, d, T)``, the dtype of ``phi``.
    """
    if grand is not None:
        return additive_efficient_normalization(phi, grand, null, active)
    if active is not None:
        _check_active(phi, active)
        return phi * active.to(device=phi.device, dtype=phi.dtype).unsqueeze(-1)
    return phi
