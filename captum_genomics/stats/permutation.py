"""Within-group permutation test of predictions against observations, and its default count.

The test of head ablation (AMICI: Hong et al. 2025, "AMICI: attention
mechanism interpretation of cell-cell interactions"), implemented from its
definition, vectorized, with the p-value correction of Phipson & Smyth (2010).

- :func:`permutation_test`: within each group, shuffle prediction rows against
  observed rows; the statistic is the mean squared error. Every permutation of
  every variant is scored from one cross Gram matrix per group, with no model
  pass and no Python loop per permutation.
- :func:`default_n_permutations`: a count that resolves a Bonferroni-level
  p-value.

What differs from AMICI's description: the p-value is ``(1 + b) / (1 + n)``
(never 0); the default permutation count grows with the number of tests.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from captum_genomics._utils.checks import check_positive_int, check_random_state
from captum_genomics.stats.explained_variance import _prepare
from captum_genomics.stats.multiple_testing import check_alpha

__all__ = [
    "permutation_test",
    "default_n_permutations",
    "TIE_RTOL",
]

TIE_RTOL = 1e-12
"""Relative tolerance under which a permutation's MSE counts as a tie with the observed MSE.

See :func:`permutation_test`: differences smaller than ``TIE_RTOL`` times the
scale of the summed terms are rounding, not signal, and count as ``<=``.
"""

_DEFAULT_GATHER_ELEMENTS = 1 << 22
"""Elements (float64) gathered per permutation batch when ``batch_size`` is None (32 MiB)."""

# ----------------------------------------------------------------------------- permutations
def _check_seed(random_state: Any) -> int:
    if random_state is None:
        return int(torch.randint(0, 2**62, (1,)).item())
    # torch.Generator.manual_seed takes [0, 2**64); checked here with a clear message
    return check_random_state(random_state)


def permutation_test(predictions: Tensor, observed: Tensor, codes: Tensor, n_groups: int,
                     n_permutations: int, random_state: int | None = 0, min_cells: int = 2,
                     batch_size: int | None = None) -> tuple[Tensor, Tensor]:
    """Within-group permutation test of predictions against observations (MSE statistic).

    For each group ``g`` (cells ``i = 1..n_g`` in index order) and variant
    ``v``, the statistic is the mean squared error over the group's cells and
    all ``G`` genes, ``MSE = sum_i ||P_i - Y_i||^2 / (n_g G)``. Under a
    permutation ``pi`` the prediction row ``P_pi(i)`` is paired with the
    observed row ``Y_i``. ``b`` counts the permutations whose MSE is ``<=``
    the observed MSE and ``p = (1 + b) / (1 + n_permutations)``, so ``p > 0``
    (Phipson & Smyth 2010). This is the test of AMICI (Hong et al. 2025),
    with that correction.

    Computation, per group: since ``sum_i ||P_pi(i)||^2`` does not depend on
    ``pi``, ``MSE_pi - MSE = 2 D_pi / (n_g G)`` with ``D_pi = sum_i (C[i, i] -
    C[pi(i), i])`` and ``C = Pc Yc^T`` the cross Gram matrix of the rows
    centred within the group (centring adds the same constant to every
    ``sum_i C[pi(i), i]``, so ``D`` is unchanged, and it avoids cancellation).
    ``C`` (shape (V, n_g, n_g)) is computed once; each batch of permutations
    gathers ``C[pi(i), i]`` for all variants at once. There is no model pass
    and no Python loop per permutation or variant (only one per group).

    Ties: the identity permutation gives ``D = 0`` exactly, and a permutation
    is counted when ``D_pi <= TIE_RTOL * S`` with ``S = sum_i (||Pc_i||^2 +
    ||Yc_i||^2) / 2`` (a bound on ``|sum_i C[pi(i), i]|``): permutations whose
    MSE equals the observed one up to rounding, such as swaps of identical
    prediction rows, count as ties (``<=``), as they do in exact arithmetic.

    Permutations: a ``torch.Generator`` seeded with ``random_state`` draws,
    for each non-skipped group in increasing code order, a
    ``(n_permutations, n_g)`` float64 ``torch.rand`` key matrix (in
    ``batch_size``-row chunks, which yields the same numbers as one draw);
    ``pi = argsort(keys, dim=1, stable=True)``, i.e. uniform random
    permutations. The same permutations are used for every variant, and the
    result does not depend on ``batch_size``.

    Parameters
    ----------
    predictions
        Shape=(V, N, G) or (N, G), any real dtype (float64 is used).
    observed
        Shape=(N, G).
    codes
        Shape=(N,), integer group codes in ``[0, n_groups)``.
    n_groups
        The number of groups.
    n_permutations
        Permutations per group, at least 1 (see :func:`default_n_permutations`).
    random_state
        Seed; the same seed gives bit-identical results. ``None`` draws a seed
        from torch's global generator. Default 0.
    min_cells
        Groups with fewer cells are skipped (NaN). Default 2.
    batch_size
        Permutations scored per batch (memory ``~ 8 * V * batch_size * n_g``
        bytes). Default None: about 2**22 gathered elements per batch.

    Returns
    -------
    mse : Tensor, shape=(V, n_groups), float64
        The observed MSE of each variant in each group (computed directly).
    p_value : Tensor, shape=(V, n_groups), float64
        In ``[1 / (1 + n_permutations), 1]``. Both are NaN for skipped groups
        and have shape (n_groups,) for 2-D ``predictions``.

    Raises
    ------
    TypeError, ValueError
        As :func:`~captum_genomics.stats.explained_variance.explained_variance`;
        ``ValueError`` if ``n_permutations`` or
        ``batch_size`` is not a positive integer.
    """
    pred, obs, codes, squeeze = _prepare(predictions, observed, codes, n_groups, min_cells)
    check_positive_int(n_permutations, "n_permutations")
    if batch_size is not None:
        check_positive_int(batch_size, "batch_size")
    seed = _check_seed(random_state)
    gen = torch.Generator(device="cpu").manual_seed(seed)
    n_var, _, n_genes = pred.shape
    mse = torch.full((n_var, n_groups), math.nan, dtype=torch.float64, device=obs.device)
    p_value = mse.clone()
    counts = torch.bincount(codes, minlength=n_groups)
    order = torch.argsort(codes, stable=True)
    starts = torch.cumsum(counts, 0) - counts
    for g in range(n_groups):
        n_g = int(counts[g])
        if n_g < min_cells:
            continue
        idx = order[int(starts[g]):int(starts[g]) + n_g]
        y = obs.index_select(0, idx)  # (n_g, G)
        p = pred.index_select(1, idx)  # (V, n_g, G)
        mse[:, g] = (p - y).square().sum((-2, -1)) / (n_g * n_genes)
        yc = y - y.mean(0, keepdim=True)
        pc = p - p.mean(1, keepdim=True)
        cross = pc @ yc.T  # (V, n_g, n_g): cross[v, j, i] = <Pc_j, Yc_i>
        diag = torch.diagonal(cross, dim1=-2, dim2=-1)  # (V, n_g)
        scale = 0.5 * (pc.square().sum((-2, -1)) + yc.square().sum())  # (V,)
        tol = TIE_RTOL * scale
        flat = cross.reshape(n_var, n_g * n_g)
        col = torch.arange(n_g, device=obs.device)
        step = batch_size or max(1, _DEFAULT_GATHER_ELEMENTS // (n_var * n_g))
        b = torch.zeros(n_var, dtype=torch.int64, device=obs.device)
        done = 0
        while done < n_permutations:
            m = min(step, n_permutations - done)
            keys = torch.rand((m, n_g), generator=gen, dtype=torch.float64)
            perm = torch.argsort(keys, dim=1, stable=True).to(obs.device)  # (m, n_g)
            lin = (perm * n_g + col).reshape(-1)
            gathered = flat.index_select(1, lin).reshape(n_var, m, n_g)
            d = (diag.unsqueeze(1) - gathered).sum(-1)  # (V, m) = D_pi
            b += (d <= tol.unsqueeze(1)).sum(1)
            done += m
        p_value[:, g] = (1.0 + b.to(torch.float64)) / (1.0 + n_permutations)
    if squeeze:
        mse, p_value = mse[0], p_value[0]
    return mse, p_value


def default_n_permutations(n_heads: int, n_groups: int, alpha: float) -> int:
    """The permutation count ``ceil(n_heads * n_groups / alpha)``.

    With ``n`` permutations the smallest p-value is ``1 / (1 + n)``; this
    count makes it smaller than the Bonferroni threshold
    ``alpha / (n_heads * n_groups)``, so every test can reach significance
    after correction (AMICI's fixed count cannot for many heads and groups).
    A quotient within ``1e-9`` (relative) of an integer is taken as that
    integer, so ``alpha=0.05`` with 40 tests gives 800, not 801.

    Parameters
    ----------
    n_heads
        Tested heads (variants), at least 1.
    n_groups
        Tested groups, at least 1.
    alpha
        The significance level, ``0 < alpha < 1``.

    Returns
    -------
    int

    Raises
    ------
    ValueError
        If ``alpha`` is not a number in the open interval (0, 1), or a count
        is not a positive integer.
    """
    check_positive_int(n_heads, "n_heads")
    check_positive_int(n_groups, "n_groups")
    check_alpha(alpha)
    v = n_heads * n_groups / float(alpha)
    r = round(v)
    return int(r) if abs(v - r) <= 1e-9 * v else int(math.ceil(v))
