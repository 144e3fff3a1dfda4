"""Exact Shapley values by enumerating all ``2^d`` coalitions (``d <= 16``).

The reference against which FastSHAP estimates are tested. With ``w(s) =
s! (d - s - 1)! / d!`` (Shapley 1953),

    phi_i = sum_{S ∌ i} w(|S|) [v(S ∪ {i}) - v(S)]
          = sum_S W[i, S] v(S),   W[i, S] = w(|S| - 1) if i ∈ S else -w(|S|),

so all ``d`` values are one matrix product of the ``(d, 2^d)`` weight matrix
with the table of the ``2^d`` coalition values. The game is evaluated on
(example, coalition) rows in batches; the weights are combined in float64.

Coalition ``c`` (an integer in ``0..2^d-1``) holds player ``i`` iff bit ``i``
of ``c`` is set.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import Tensor

from captum_genomics._utils.checks import check_positive_int

__all__ = [
    "MAX_EXACT_PLAYERS",
    "all_coalitions",
    "shapley_coefficients",
    "exact_shapley_from_values",
    "exact_shapley",
]

MAX_EXACT_PLAYERS = 16
"""Largest ``d`` accepted by the enumeration (``2^16 = 65,536`` coalitions per example)."""


def _check_d(n_players: int) -> int:
    check_positive_int(n_players, "n_players")
    if n_players > MAX_EXACT_PLAYERS:
        raise ValueError(
            f"exact Shapley values enumerate 2^d coalitions and accept d <= "
            f"{MAX_EXACT_PLAYERS}; got d = {n_players}. Group features into fewer players, or "
            "use a sampling estimator."
        )
    return n_players


def all_coalitions(n_players: int, dtype: torch.dtype = torch.bool,
                   device: torch.device | str | None = None) -> Tensor:
    """Every coalition of ``d`` players, in binary order.

    Parameters
    ----------
    n_players
        ``d``, ``1 <= d <= 16``.
    dtype, device
        Of the result. Default ``torch.bool`` on the CPU.

    Returns
    -------
    Tensor
        ``shape=(2^d, d)``; row ``c`` has entry ``i`` equal to bit ``i`` of
        ``c`` (row 0 is empty, the last row is the grand coalition).

    Raises
    ------
    ValueError
        If ``d`` is not in ``1..16``.
    """
    _check_d(n_players)
    codes = torch.arange(2 ** n_players, device=device).unsqueeze(1)
    bits = torch.arange(n_players, device=device)
    return ((codes >> bits) & 1).to(dtype)


def shapley_coefficients(n_players: int, dtype: torch.dtype = torch.float64) -> Tensor:
    """The matrix ``W`` with ``phi = W @ v`` over coalitions in binary order.

    Parameters
    ----------
    n_players
        ``d``, ``1 <= d <= 16``.
    dtype
        Of the result. Default ``torch.float64``.

    Returns
    -------
    Tensor
        ``shape=(d, 2^d)``: ``W[i, S] = w(|S| - 1)`` if ``i ∈ S`` else
        ``-w(|S|)``, with ``w(s) = s! (d - s - 1)! / d!`` (``w`` at ``s = d``
        never used: only the grand coalition has size ``d`` and it holds every
        player).
    """
    d = _check_d(n_players)
    w = torch.tensor([math.factorial(s) * math.factorial(d - s - 1) / math.factorial(d)
                      for s in range(d)] + [0.0], dtype=torch.float64)
    S = all_coalitions(d, torch.bool)
    size = S.sum(1)
    plus = w[(size - 1).clamp(min=0)]
    minus = w[size]
    W = torch.where(S, plus.unsqueeze(1), -minus.unsqueeze(1)).T
    return W.to(dtype).contiguous()


def exact_shapley_from_values(values: Tensor, n_players: int) -> Tensor:
    """Shapley values from the table of all coalition values.

    Parameters
    ----------
    values
        ``shape=(B, 2^d, T)`` or ``(2^d,)`` / ``(2^d, T)``: ``v(S)`` for every
        coalition in the order of :func:`all_coalitions`.
    n_players
        ``d``.

    Returns
    -------
    Tensor
        ``shape=(B, d, T)`` (``(d,)`` / ``(d, T)`` for the shorter inputs), the
        dtype of ``values`` (computed in float64).

    Raises
    ------
    ValueError
        If the coalition axis does not have ``2^d`` entries.
    """
    W = shapley_coefficients(n_players)
    squeeze = values.ndim < 3
    v = values
    if v.ndim == 1:
        v = v.reshape(1, -1, 1)
    elif v.ndim == 2:
        v = v.unsqueeze(0)
    if v.ndim != 3 or v.shape[1] != W.shape[1]:
        raise ValueError(
            f"`values` must have 2^d = {W.shape[1]} coalitions on axis 1 (or 0), got shape "
            f"{tuple(values.shape)}."
        )
    phi = torch.einsum("ic,bct->bit", W.to(v.device), v.double()).to(values.dtype)
    if squeeze:
        phi = phi[0]
        if values.ndim == 1:
            phi = phi[:, 0]
    return phi


def exact_shapley(game: Callable[[Tensor, Tensor], Tensor], x: Tensor,
                  n_players: int | None = None, batch_size: int = 4096) -> Tensor:
    """Exact Shapley values of ``game`` for each example of ``x``.

    Evaluates ``game(x_rows, S_rows)`` on all ``B * 2^d`` (example, coalition)
    pairs, ``batch_size`` rows at a time, then applies
    :func:`exact_shapley_from_values`.

    Parameters
    ----------
    game
        A value function ``(x (R, ...), S (R, d)) -> (R, T)`` such as a
        :class:`~captum_genomics.fastshap.games.Game`; ``S`` is passed as bool.
    x
        ``shape=(B, *feature_shape)``.
    n_players
        ``d``. Default: ``game.n_players``.
    batch_size
        Most (example, coalition) rows per game call. Default 4096.

    Returns
    -------
    Tensor
        ``shape=(B, d, T)``, the dtype of the game's output.

    Raises
    ------
    ValueError
        If ``d > 16`` or cannot be determined.
    """
    if n_players is None:
        n_players = getattr(game, "n_players", None)
        if n_players is None:
            raise ValueError("`n_players` is required when `game` has no `n_players` attribute.")
    d = _check_d(int(n_players))
    check_positive_int(batch_size, "batch_size")
    coalitions = all_coalitions(d, torch.bool, device=x.device)
    n_coal = coalitions.shape[0]
    b = x.shape[0]
    total = b * n_coal
    outs = []
    with torch.no_grad():
        for start in range(0, total, batch_size):
            idx = torch.arange(start, min(start + batch_size, total), device=x.device)
            out = game(x[idx // n_coal], coalitions[idx % n_coal])
            if out.ndim == 1:
                out = out.unsqueeze(1)
            outs.append(out)
    values = torch.cat(outs, dim=0).reshape(b, n_coal, -1)
    return exact_shapley_from_values(values, d)
