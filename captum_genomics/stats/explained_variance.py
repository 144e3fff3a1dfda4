"""Explained variance of model predictions within groups of cells.

The statistic behind head ablation (AMICI: Hong et al. 2025, "AMICI: attention
mechanism interpretation of cell-cell interactions"), implemented from its
definition and vectorized. The functions here know nothing about models: they
take predictions of one or more *variants* of a model (``(V, N, G)``:
variants x cells x genes), the observed expression ``(N, G)`` and one group
code per cell (cell types), and return tables over (variant, group, gene).

- :func:`encode_groups`: group labels (strings, integers, a pandas
  ``Categorical``, a tensor) to integer codes and names.
- :func:`explained_variance`: per (variant, group, gene)
  ``EV = 1 - var(pred - obs) / var(obs)`` within the group, and per (variant,
  group) ``1 - sum_genes var(pred - obs) / sum_genes var(obs)``. Segment sums
  (``index_add``) over all variants and groups at once.

The permutation test is :mod:`captum_genomics.stats.permutation`, the
Benjamini-Hochberg adjustment :mod:`captum_genomics.stats.multiple_testing`,
and the result tables :class:`captum_genomics.heads.result.HeadAblationResult`.

What differs from AMICI's description: genes whose observed expression is
constant within a group give NaN (not 0); groups with fewer than ``min_cells``
cells are skipped and reported.
"""

from __future__ import annotations

import math
import numbers
import warnings
from typing import Any

import numpy as np
import torch
from torch import Tensor

from captum_genomics._utils.checks import check_finite, check_positive_int

__all__ = [
    "check_group_sizes",
    "encode_groups",
    "explained_variance",
]


# ----------------------------------------------------------------------------- groups
def _is_missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        return bool(value != value)  # NaN, pd.NA raises -> handled below
    except TypeError:
        return True  # pd.NA: its truth value is ambiguous, i.e. missing


def check_group_sizes(codes: Tensor, names: list[str], min_size: int, name: str = "groups",
                      min_name: str = "min_cells") -> list[str]:
    """Refuse group labels that leave no group to test; warn about the groups skipped.

    Parameters
    ----------
    codes : Tensor, int64, shape=(N,)
        Group code of each example (from :func:`encode_groups`).
    names : list of str
        The group names, one per code.
    min_size : int
        Groups with fewer examples are skipped by the caller.
    name, min_name : str
        The user's argument names, for the messages.

    Returns
    -------
    list of str
        The names of the groups that will be skipped (empty if none).

    Raises
    ------
    ValueError
        If every group has fewer than ``min_size`` examples (for example
        continuous values passed as labels, one group per example).

    Warns
    -----
    UserWarning
        If some groups are skipped; their results are NaN.
    """
    counts = torch.bincount(codes.reshape(-1).cpu(), minlength=len(names))
    small = [names[g] for g in range(len(names)) if int(counts[g]) < min_size]
    if len(small) == len(names):
        raise ValueError(
            f"Every one of the {len(names)} groups in `{name}` has fewer than "
            f"`{min_name}`={min_size} examples ({int(counts.max())} at most), so nothing can "
            f"be tested. Are `{name}` continuous values rather than labels?"
        )
    if small:
        shown = ", ".join(repr(s) for s in small[:5]) + (", ..." if len(small) > 5 else "")
        warnings.warn(
            f"{len(small)} of {len(names)} groups in `{name}` have fewer than "
            f"`{min_name}`={min_size} examples and are skipped (NaN results): {shown}.",
            UserWarning,
            stacklevel=3,
        )
    return small


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
