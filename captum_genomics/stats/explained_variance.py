"""Explained variance of model predictions within groups of cells, with a permutation test.

The statistics behind head ablation (AMICI: Hong et al. 2025, "AMICI: attention
mechanism interpretation of cell-cell interactions"), implemented from their
definitions, vectorized, and with the statistical fixes listed below. The
functions here know nothing about models: they take predictions of one or more
*variants* of a model (``(V, N, G)``: variants x cells x genes), the observed
expression ``(N, G)`` and one group code per cell (cell types), and return
tables over (variant, group, gene).

- :func:`encode_groups`: group labels (strings, integers, a pandas
  ``Categorical``, a tensor) to integer codes and names.
- :func:`explained_variance`: per (variant, group, gene)
  ``EV = 1 - var(pred - obs) / var(obs)`` within the group, and per (variant,
  group) ``1 - sum_genes var(pred - obs) / sum_genes var(obs)``. Segment sums
  (``index_add``) over all variants and groups at once.
- :func:`permutation_test`: within each group, shuffle prediction rows against
  observed rows; the statistic is the mean squared error. Every permutation of
  every variant is scored from one cross Gram matrix per group, with no model
  pass and no Python loop per permutation.
- :func:`default_n_permutations`, :func:`adjust_p_values` (Benjamini-Hochberg
  via :func:`scipy.stats.false_discovery_control`, mapped back by position).
- :class:`HeadAblationResult`: the tables of a head-ablation run, as pandas
  frames.

What differs from AMICI's description: genes whose observed expression is
constant within a group give NaN (not 0); groups with fewer than ``min_cells``
cells are skipped and reported; the p-value is ``(1 + b) / (1 + n)`` (never 0);
the default permutation count resolves a Bonferroni-level p-value; adjusted
p-values are placed back by position, so tied p-values cannot collide.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor

from captum_genomics._utils.checks import check_finite, check_positive_int

__all__ = [
    "encode_groups",
    "explained_variance",
    "permutation_test",
    "default_n_permutations",
    "adjust_p_values",
    "check_alpha",
    "HeadAblationResult",
    "TIE_RTOL",
]

TIE_RTOL = 1e-12
"""Relative tolerance under which a permutation's MSE counts as a tie with the observed MSE.

See :func:`permutation_test`: differences smaller than ``TIE_RTOL`` times the
scale of the summed terms are rounding, not signal, and count as ``<=``.
"""

_DEFAULT_GATHER_ELEMENTS = 1 << 22
"""Elements (float64) gathered per permutation batch when ``batch_size`` is None (32 MiB)."""


# ----------------------------------------------------------------------------- groups
def _is_missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        return bool(value != value)  # NaN, pd.NA raises -> handled below
    except TypeError:
        return True  # pd.NA: its truth value is ambiguous, i.e. missing


def encode_groups(groups: Any, n: int, name: str = "groups") -> tuple[Tensor, list[str]]:
    """Integer codes and names for per-cell group labels.

    Parameters
    ----------
    groups
        Length-``n`` labels, one per cell: a list, tuple or 1-D numpy array of
        ``str``, ``int``, ``bool`` or ``float``; a pandas ``Series`` (any of
        those dtypes, or categorical); a pandas ``Categorical``; or a 1-D
        ``torch.Tensor`` of integers, booleans or floats.
    n
        The number of cells ``N`` (the first axis of the inputs).
    name
        The argument name used in error messages. Default ``"groups"``.

    Returns
    -------
    codes : Tensor, shape=(N,), int64
        ``codes[i]`` indexes ``names``; every value lies in ``[0, n_groups)``.
    names : list of str, length n_groups
        The distinct labels as strings: sorted (numerically for numbers,
        lexicographically for strings), except for categorical input, where
        the category order is kept and categories with no cell are dropped.

    Raises
    ------
    ValueError
        If ``groups`` is not one-dimensional, its length is not ``n`` (the
        message names ``name``, the expected and received lengths), it holds a
        missing label (``None``, NaN, ``pd.NA``; the first position is given),
        or two different labels have the same string form (``1`` and ``"1"``).
    TypeError
        If ``groups`` is a bare string or scalar, or mixes strings and numbers.
    """
    import pandas as pd

    n = check_positive_int(n, "n", minimum=0)
    if isinstance(groups, (str, bytes)) or not hasattr(groups, "__len__"):
        raise TypeError(
            f"`{name}` must be a sequence of per-cell labels (list, array, pandas Series or "
            f"Categorical, tensor), got {type(groups).__name__}."
        )
    if isinstance(groups, Tensor):
        if groups.is_complex():
            raise TypeError(f"`{name}` must hold real labels, got a tensor of dtype {groups.dtype}.")
        values: Any = groups.detach().cpu().numpy()
    elif isinstance(groups, pd.Series):
        values = groups.array
        if isinstance(values, pd.arrays.NumpyExtensionArray):
            values = values.to_numpy()
    elif isinstance(groups, (pd.Categorical, pd.api.extensions.ExtensionArray)):
        values = groups
    else:
        values = groups if isinstance(groups, np.ndarray) else np.asarray(groups, dtype=object)
        if values.dtype == object and values.ndim == 1 and len(values) and all(
                isinstance(v, str) for v in values):
            values = values.astype(str)
    ndim = 1 if isinstance(values, pd.api.extensions.ExtensionArray) else np.ndim(values)
    if ndim != 1:
        raise ValueError(
            f"`{name}` must be one-dimensional (one label per cell), got shape "
            f"{tuple(np.shape(values))}."
        )
    if len(values) != n:
        raise ValueError(
            f"`{name}` must have one label per cell: expected length {n}, got {len(values)}."
        )

    if isinstance(values, pd.api.extensions.ExtensionArray) and not isinstance(
            values, pd.Categorical):
        values = values.to_numpy(dtype=object, na_value=None)

    if isinstance(values, pd.Categorical):
        missing = np.asarray(values.isna())
        if missing.any():
            first = int(np.flatnonzero(missing)[0])
            raise ValueError(
                f"`{name}` has {int(missing.sum())} missing label(s) (NaN/None), first at "
                f"position {first}; every cell needs a group."
            )
        cat = values.remove_unused_categories()
        codes = np.asarray(cat.codes, dtype=np.int64)
        names = [str(c) for c in cat.categories]
    else:
        arr = np.asarray(values)
        if arr.dtype == object:
            missing = np.fromiter((_is_missing(v) for v in arr), bool, len(arr))
        elif arr.dtype.kind == "f":
            missing = np.isnan(arr)
        else:
            missing = np.zeros(len(arr), bool)
        if missing.any():
            first = int(np.flatnonzero(missing)[0])
            raise ValueError(
                f"`{name}` has {int(missing.sum())} missing label(s) (NaN/None), first at "
                f"position {first}; every cell needs a group."
            )
        if arr.dtype == object:
            is_str = np.fromiter((isinstance(v, str) for v in arr), bool, len(arr))
            is_num = np.fromiter((isinstance(v, (numbers.Real, np.bool_)) for v in arr), bool,
                                 len(arr))
            if is_str.all():
                arr = arr.astype(str)
            elif is_num.all():
                arr = np.asarray(arr.tolist())
            else:
                bad = arr[~is_str][0] if is_str.any() else arr[~is_num][0]
                raise TypeError(
                    f"`{name}` must hold labels of one kind (all strings or all numbers), "
                    f"got {type(bad).__name__} {bad!r} among them."
                )
        if arr.dtype.kind not in "biufUS":
            raise TypeError(
                f"`{name}` must hold strings or real numbers, got dtype {arr.dtype}."
            )
        uniques, inverse = np.unique(arr, return_inverse=True)
        codes = np.asarray(inverse, dtype=np.int64).reshape(-1)
        names = [str(u.item()) if hasattr(u, "item") else str(u) for u in uniques]
    if len(set(names)) != len(names):
        seen: dict[str, int] = {}
        for s in names:
            seen[s] = seen.get(s, 0) + 1
        dup = next(s for s, c in seen.items() if c > 1)
        raise ValueError(
            f"`{name}` has different labels with the same name {dup!r}; use one label type."
        )
    return torch.from_numpy(codes), names


# ----------------------------------------------------------------------------- checks
def _as_float64(x: Any, name: str) -> Tensor:
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(x)
    if not isinstance(x, Tensor):
        raise TypeError(f"`{name}` must be a torch.Tensor or numpy array, got {type(x).__name__}.")
    if x.is_complex() or x.dtype == torch.bool:
        raise TypeError(f"`{name}` must hold real numbers, got dtype {x.dtype}.")
    x = x.detach()
    check_finite(x, name)
    return x.to(torch.float64)


def _prepare(predictions: Any, observed: Any, codes: Any, n_groups: int, min_cells: int
             ) -> tuple[Tensor, Tensor, Tensor, bool]:
    """float64 ``(V, N, G)`` predictions, ``(N, G)`` observed, ``(N,)`` codes, squeeze flag."""
    pred = _as_float64(predictions, "predictions")
    obs = _as_float64(observed, "observed")
    check_positive_int(n_groups, "n_groups")
    check_positive_int(min_cells, "min_cells")
    if obs.ndim != 2:
        raise ValueError(
            f"`observed` must have shape (N, G) (cells x genes), got {tuple(obs.shape)}.")
    if pred.ndim not in (2, 3) or tuple(pred.shape[-2:]) != tuple(obs.shape):
        raise ValueError(
            f"`predictions` must have shape (V, N, G) or (N, G) with (N, G) = "
            f"{tuple(obs.shape)} from `observed`, got {tuple(pred.shape)}."
        )
    squeeze = pred.ndim == 2
    if squeeze:
        pred = pred.unsqueeze(0)
    if isinstance(codes, np.ndarray):
        codes = torch.from_numpy(codes)
    if not isinstance(codes, Tensor):
        raise TypeError(
            f"`codes` must be an int64 tensor of shape (N,) (see `encode_groups`), got "
            f"{type(codes).__name__}.")
    if codes.is_floating_point() or codes.is_complex() or codes.dtype == torch.bool:
        raise TypeError(f"`codes` must be an integer tensor, got dtype {codes.dtype}.")
    if tuple(codes.shape) != (obs.shape[0],):
        raise ValueError(
            f"`codes` must have shape (N,) = ({obs.shape[0]},), got {tuple(codes.shape)}.")
    codes = codes.to(torch.int64)
    if codes.numel() and (int(codes.min()) < 0 or int(codes.max()) >= n_groups):
        raise ValueError(
            f"`codes` must lie in [0, n_groups) = [0, {n_groups}), got values in "
            f"[{int(codes.min())}, {int(codes.max())}].")
    return pred, obs, codes.to(obs.device), squeeze


# ----------------------------------------------------------------------------- EV
def _group_variance(x: Tensor, codes: Tensor, counts: Tensor, n_groups: int) -> Tensor:
    """Population variance within groups along axis -2 of ``x`` (..., N, G) -> (..., n_groups, G).

    Two passes (group means, then squared deviations) with segment sums, so it
    is stable when the mean is large compared with the spread.
    """
    # Segment sums as a product with the (n_groups, N) membership matrix: one GEMM per
    # pass, several times faster on the CPU than index_add_ along a middle axis.
    dim = x.ndim - 2
    member = torch.zeros(n_groups, x.shape[dim], dtype=x.dtype, device=x.device)
    member[codes, torch.arange(x.shape[dim], device=x.device)] = 1.0
    denom = counts.clamp(min=1).to(x.dtype).unsqueeze(-1)
    mean = torch.matmul(member, x) / denom
    dev = x - mean[..., codes, :]  # advanced indexing: faster than index_select on a middle axis
    return torch.matmul(member, dev.square_()) / denom


def explained_variance(predictions: Tensor, observed: Tensor, codes: Tensor, n_groups: int,
                       min_cells: int = 2) -> tuple[Tensor, Tensor, Tensor]:
    """Per-gene and per-group explained variance of predictions within groups of cells.

    For variant ``v``, group ``g`` and gene ``j``, with ``r = pred - obs`` and
    variances taken over the cells of group ``g`` (population variance,
    ``ddof=0``)::

        ev_gene[v, g, j] = 1 - var_g(r[v, :, j]) / var_g(obs[:, j])
        ev_head[v, g]    = 1 - sum_j var_g(r[v, :, j]) / sum_j var_g(obs[:, j])

    (AMICI, Hong et al. 2025, head-ablation explained variance; the per-group
    score sums over all genes, including those with zero observed variance.)
    Computed in float64 with segment sums over all variants and groups at once,
    two-pass (means first, then squared deviations).

    Parameters
    ----------
    predictions
        Shape=(V, N, G) (one prediction per variant, cell and gene) or (N, G).
        Any real dtype; float32 is fine (converted to float64).
    observed
        Shape=(N, G), the expression the model predicts.
    codes
        Shape=(N,), integer group codes in ``[0, n_groups)``
        (:func:`encode_groups`).
    n_groups
        The number of groups.
    min_cells
        Groups with fewer cells are skipped (NaN rows). Default 2; at least 1.

    Returns
    -------
    ev_gene : Tensor, shape=(V, n_groups, G), float64
        NaN where the gene's observed expression is constant within the group
        (zero variance: EV undefined, not 0) and for skipped groups. Shape
        (n_groups, G) for 2-D ``predictions``.
    ev_head : Tensor, shape=(V, n_groups), float64
        NaN for skipped groups and where every gene is constant in the group.
        Shape (n_groups,) for 2-D ``predictions``.
    n_cells : Tensor, shape=(n_groups,), int64
        Cells per group (skipped groups included).

    Raises
    ------
    TypeError
        If an argument is not a tensor/array of the right kind.
    ValueError
        On shape mismatches, non-finite values, codes out of range, or
        ``n_groups``/``min_cells`` below 1.
    """
    pred, obs, codes, squeeze = _prepare(predictions, observed, codes, n_groups, min_cells)
    counts = torch.bincount(codes, minlength=n_groups)
    var_obs = _group_variance(obs, codes, counts, n_groups)
    var_res = _group_variance(pred - obs.unsqueeze(0), codes, counts, n_groups)
    # A gene is constant in a group iff its max equals its min there: exact, unlike
    # testing a floating variance for zero (the mean of equal values may round).
    idx = codes.unsqueeze(-1).expand_as(obs)
    hi = obs.new_full((n_groups, obs.shape[1]), -math.inf).scatter_reduce_(
        0, idx, obs, "amax", include_self=True)
    lo = obs.new_full((n_groups, obs.shape[1]), math.inf).scatter_reduce_(
        0, idx, obs, "amin", include_self=True)
    constant = hi <= lo
    var_obs = var_obs.masked_fill(constant, 0.0)
    skipped = counts < min_cells
    nan = torch.tensor(math.nan, dtype=torch.float64, device=obs.device)
    ev_gene = torch.where(constant, nan, 1.0 - var_res / torch.where(constant, 1.0, var_obs))
    ev_gene = ev_gene.masked_fill(skipped.unsqueeze(-1), math.nan)
    tot_obs = var_obs.sum(-1)
    tot_res = var_res.sum(-1)
    ok = (tot_obs > 0) & ~skipped
    ev_head = torch.where(ok, 1.0 - tot_res / torch.where(ok, tot_obs, 1.0), nan)
    if squeeze:
        ev_gene, ev_head = ev_gene[0], ev_head[0]
    return ev_gene, ev_head, counts


# ----------------------------------------------------------------------------- permutations
def _check_seed(random_state: Any) -> int:
    if random_state is None:
        return int(torch.randint(0, 2**62, (1,)).item())
    if isinstance(random_state, bool) or not isinstance(random_state, numbers.Integral):
        raise TypeError(
            f"`random_state` must be an int or None, got {type(random_state).__name__}.")
    return int(random_state)


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
        As :func:`explained_variance`; ``ValueError`` if ``n_permutations`` or
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


# ----------------------------------------------------------------------------- result
@dataclass
class HeadAblationResult:
    """The tables of a head-ablation explained-variance run.

    ``V`` variants (one per tested head, ordered layer by layer, head 0..H-1),
    ``n_groups`` groups, ``G`` genes. Tensors are float64 on the CPU unless
    noted; NaN marks skipped groups and undefined EVs.

    Attributes
    ----------
    heads : list of (str, int), length V
        ``(layer_name, head_index)`` of each variant.
    group_names : list of str, length n_groups
    gene_names : list of str, length G
    ev_gene : Tensor, shape=(V, n_groups, G)
        Per-gene EV with only that head kept (or removed), see
        :func:`explained_variance`.
    ev_head : Tensor, shape=(V, n_groups)
        Per-group EV over all genes.
    mse : Tensor, shape=(V, n_groups)
        Observed MSE (the permutation statistic).
    p_value, p_adj : Tensor, shape=(V, n_groups)
        Permutation p-values (:func:`permutation_test`) and their
        Benjamini-Hochberg adjustment over all (variant, group) tests
        (:func:`adjust_p_values`).
    n_cells : Tensor, shape=(n_groups,), int64
    skipped_groups : list of str
        Groups with fewer than ``min_cells`` cells (NaN rows everywhere).
    full_ev_gene : Tensor or None, shape=(n_groups, G)
        The unablated model's per-gene EV.
    full_ev_head : Tensor or None, shape=(n_groups,)
    ablation : str
        ``"keep"`` (keep one head) or ``"remove"`` (remove one head).
    mode : str
        ``"zero"`` or ``"mean"``.
    n_permutations : int
    alpha : float
        Significance level for ``head_table()["significant"]``.
    """

    heads: list[tuple[str, int]]
    group_names: list[str]
    gene_names: list[str]
    ev_gene: Tensor
    ev_head: Tensor
    mse: Tensor
    p_value: Tensor
    p_adj: Tensor
    n_cells: Tensor
    skipped_groups: list[str]
    full_ev_gene: Tensor | None
    full_ev_head: Tensor | None
    ablation: str
    mode: str
    n_permutations: int
    alpha: float
    extra: dict = field(default_factory=dict)
    """Free-form metadata (e.g. ``min_cells``, ``random_state``); not used by the tables."""

    def __post_init__(self) -> None:
        v, k, g = len(self.heads), len(self.group_names), len(self.gene_names)
        expected = {"ev_gene": (v, k, g), "ev_head": (v, k), "mse": (v, k),
                    "p_value": (v, k), "p_adj": (v, k), "n_cells": (k,)}
        if self.full_ev_gene is not None:
            expected["full_ev_gene"] = (k, g)
        if self.full_ev_head is not None:
            expected["full_ev_head"] = (k,)
        for attr, shape in expected.items():
            got = tuple(getattr(self, attr).shape)
            if got != shape:
                raise ValueError(
                    f"HeadAblationResult.{attr} must have shape {shape} (heads, groups, genes "
                    f"= {v}, {k}, {g}), got {got}.")

    # -- helpers
    def _kept_groups(self) -> np.ndarray:
        skipped = set(self.skipped_groups)
        return np.array([i for i, name in enumerate(self.group_names) if name not in skipped],
                        dtype=np.int64)

    def _group_index(self, group: Any) -> int:
        if group in self.group_names:
            return self.group_names.index(group)
        if str(group) in self.group_names:
            return self.group_names.index(str(group))
        raise ValueError(f"`group` {group!r} is not a group; groups: {self.group_names}.")

    @staticmethod
    def _np(x: Tensor) -> np.ndarray:
        return x.detach().cpu().numpy()

    # -- tables
    def to_frame(self):
        """One tidy row per (head, group, gene); skipped groups omitted.

        Returns
        -------
        pandas.DataFrame
            Columns ``layer, head, group, gene, n_cells, ev_gene, ev_head,
            mse, p_value, p_adj``; rows ordered by variant, then group, then
            gene. ``head`` is the head index within ``layer``.
        """
        import pandas as pd

        kept = self._kept_groups()
        v, k, g = len(self.heads), len(kept), len(self.gene_names)
        layers = np.array([h[0] for h in self.heads], dtype=object)
        head_idx = np.array([int(h[1]) for h in self.heads], dtype=np.int64)
        groups = np.array(self.group_names, dtype=object)[kept]
        per_head = lambda t: np.repeat(self._np(t)[:, kept].reshape(-1), g)  # noqa: E731
        return pd.DataFrame({
            "layer": np.repeat(layers, k * g),
            "head": np.repeat(head_idx, k * g),
            "group": np.tile(np.repeat(groups, g), v),
            "gene": np.tile(np.array(self.gene_names, dtype=object), v * k),
            "n_cells": np.tile(np.repeat(self._np(self.n_cells)[kept], g), v).astype(np.int64),
            "ev_gene": self._np(self.ev_gene)[:, kept, :].reshape(-1),
            "ev_head": per_head(self.ev_head),
            "mse": per_head(self.mse),
            "p_value": per_head(self.p_value),
            "p_adj": per_head(self.p_adj),
        })

    def head_table(self):
        """One row per (head, group); skipped groups omitted.

        Returns
        -------
        pandas.DataFrame
            Columns ``layer, head, group, n_cells, ev_head, mse, p_value,
            p_adj, significant`` (``p_adj <= alpha``); rows ordered by
            variant, then group.
        """
        import pandas as pd

        kept = self._kept_groups()
        v, k = len(self.heads), len(kept)
        p_adj = self._np(self.p_adj)[:, kept].reshape(-1)
        return pd.DataFrame({
            "layer": np.repeat(np.array([h[0] for h in self.heads], dtype=object), k),
            "head": np.repeat(np.array([int(h[1]) for h in self.heads], dtype=np.int64), k),
            "group": np.tile(np.array(self.group_names, dtype=object)[kept], v),
            "n_cells": np.tile(self._np(self.n_cells)[kept], v).astype(np.int64),
            "ev_head": self._np(self.ev_head)[:, kept].reshape(-1),
            "mse": self._np(self.mse)[:, kept].reshape(-1),
            "p_value": self._np(self.p_value)[:, kept].reshape(-1),
            "p_adj": p_adj,
            "significant": p_adj <= self.alpha,
        })

    def top_genes(self, group: Any, k: int = 10) -> list[str]:
        """The ``k`` genes best explained in ``group``.

        Ranked by the full (unablated) model's per-gene EV in the group when
        ``full_ev_gene`` is available, otherwise by the maximum EV over the
        tested heads. Genes with an undefined (NaN) score are left out; ties
        keep gene order.

        Parameters
        ----------
        group
            A group name (or a label whose ``str`` is one).
        k
            How many genes, at least 1. Default 10.

        Returns
        -------
        list of str
            At most ``k`` gene names, best first.

        Raises
        ------
        ValueError
            If ``group`` is unknown or was skipped, or ``k`` < 1.
        """
        check_positive_int(k, "k")
        gi = self._group_index(group)
        if self.group_names[gi] in self.skipped_groups:
            raise ValueError(
                f"`group` {self.group_names[gi]!r} was skipped (fewer cells than `min_cells`); "
                "it has no explained variance.")
        if self.full_ev_gene is not None:
            score = self._np(self.full_ev_gene)[gi]
        else:
            ev = self._np(self.ev_gene)[:, gi, :]
            finite = np.isfinite(ev)
            score = np.where(finite.any(0), np.where(finite, ev, -np.inf).max(0), np.nan)
        valid = np.flatnonzero(np.isfinite(score))
        ranked = valid[np.argsort(-score[valid], kind="stable")][:k]
        return [self.gene_names[i] for i in ranked]

    def head_labels(self) -> list[str]:
        """Axis labels of the variants: ``"layer:h"``, or ``"head h"`` when all share one layer."""
        layers = {h[0] for h in self.heads}
        if len(layers) == 1:
            return [f"head {int(h[1])}" for h in self.heads]
        return [f"{h[0]}:{int(h[1])}" for h in self.heads]
