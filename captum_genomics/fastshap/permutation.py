"""Permutation-sampling Shapley estimates, batched over examples: noisy labels for amortization.

A Shapley value is the expected marginal contribution of a player over uniformly
random orderings of the players (Shapley 1953; the estimator of Castro, Gómez &
Tejada 2009, Captum's ``ShapleyValueSampling``). One ordering ``pi`` gives the
unbiased estimate

    phi_i(pi) = v(x, Pre_pi(i) u {i}) - v(x, Pre_pi(i)),

which is also exactly efficient (the marginal contributions telescope to
``v(x, 1) - v(x, 0)``). The reversed ordering is an antithetic partner: the
average of the two has lower variance (Mitchell et al., JMLR 2022).

Covert, Kim, Lee, Zou & Hashimoto ("Stochastic amortization", ICML 2024) train
an amortized explainer by regressing on such noisy, unbiased labels, drawn
fresh at every step; the regression's minimizer is the exact Shapley value.
:func:`~captum_genomics.fastshap.training.train_explainer` uses them with
``objective="permutation"``.

Null players (``active`` False, e.g. genes already at the baseline) contribute
exactly 0 to every coalition, so they are placed after all active players and
never evaluated: an example with ``a`` active players costs ``a + 1`` game
evaluations per ordering instead of ``d + 1``.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["permutation_shapley_estimates"]


def permutation_shapley_estimates(game, x: Tensor, generator: torch.Generator,
                                  active: Tensor | None = None, antithetic: bool = True,
                                  grand: Tensor | None = None, null: Tensor | None = None,
                                  ) -> Tensor:
    """One (or an antithetic pair of) random-ordering Shapley estimates per example.

    Parameters
    ----------
    game
        A :class:`~captum_genomics.fastshap.games.Game` over ``d`` players.
    x
        ``shape=(B, *feature_shape)``.
    generator
        CPU ``torch.Generator``: the orderings are drawn from it on the CPU,
        so the same state gives the same estimates on any device.
    active
        Optional ``shape=(B, d)`` bool: players that may be non-null; the
        others get exactly 0 and cost no evaluation. Default None: all.
    antithetic
        Also evaluate each ordering reversed (over the active players) and
        average the two estimates. Default True.
    grand, null
        Optional precomputed ``shape=(B, T)`` values ``v(x, 1)`` and
        ``v(x, 0)``; computed from the game if not given.

    Returns
    -------
    Tensor
        ``shape=(B, d, T)``, the game's dtype; per example
        ``sum_i phi_i = v(x, 1) - v(x, 0)`` up to rounding.

    Raises
    ------
    ValueError
        If ``active`` does not have shape ``(B, d)``.
    """
    b = x.shape[0]
    d = game.n_players
    device = x.device
    if active is None:
        active = torch.ones(b, d, dtype=torch.bool)
    if active.shape != (b, d):
        raise ValueError(f"`active` must have shape (B, d) = {(b, d)}, got {tuple(active.shape)}.")
    act = active.cpu()
    n_active = act.sum(1)  # (B,)
    m = int(n_active.max()) if b else 0
    # A uniform ordering of each example's active players, null players last.
    keys = torch.rand(b, d, generator=generator, dtype=torch.float64)
    keys = torch.where(act, keys, torch.full_like(keys, 2.0))
    order = keys.argsort(dim=1)  # (B, d): position -> player
    orders = [order]
    if antithetic:
        # Reverse the active prefix of each row: position p < a -> a - 1 - p.
        pos = torch.arange(d).expand(b, d)
        rev = torch.where(pos < n_active[:, None], n_active[:, None] - 1 - pos, pos)
        orders.append(order.gather(1, rev))
    if grand is None:
        grand = game.grand(x)
    if null is None:
        null = game.null(x)
    t = grand.shape[1]
    # The example rows of the inner coalitions, shared by both orderings.
    rows = x.repeat_interleave(m - 1, dim=0) if m > 1 else None
    estimates = []
    for o in orders:
        # Coalitions after adding the first k players, k = 1..m-1 (k = 0 and k >= a_b are the
        # empty and the grand coalition, known already).
        rank = torch.empty_like(o)
        rank.scatter_(1, o, torch.arange(d).expand(b, d))  # player -> position
        values = torch.empty(b, m + 1, t, dtype=grand.dtype, device=grand.device)
        values[:, 0] = null
        if m > 1:
            k = torch.arange(1, m)
            S = rank[:, None, :] < k[None, :, None]  # (B, m-1, d)
            inner = game(rows, S.reshape(b * (m - 1), d).to(device)).reshape(b, m - 1, t)
            values[:, 1:m] = inner.to(values.dtype)
        # Positions at or beyond the example's active count hold the grand coalition.
        full = torch.arange(m + 1)[None, :] >= n_active[:, None]  # (B, m+1)
        full = full.to(grand.device)
        values = torch.where(full[:, :, None], grand[:, None, :].to(values.dtype), values)
        marginal = values[:, 1:] - values[:, :-1]  # (B, m, T): player at position p
        phi = torch.zeros(b, d, t, dtype=values.dtype, device=values.device)
        idx = o[:, :m].to(values.device)[:, :, None].expand(b, m, t)
        phi.scatter_(1, idx, marginal)
        phi = phi * act.to(device=phi.device, dtype=phi.dtype)[:, :, None]
        estimates.append(phi)
    return estimates[0] if len(estimates) == 1 else (estimates[0] + estimates[1]) / 2
