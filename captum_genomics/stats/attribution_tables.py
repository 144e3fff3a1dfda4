"""Per-class gene tables from attributions, as in scvi-tools' interpretability workflow.

Given attributions ``(N, G)`` (cells x genes, each cell explained for one
class) and one label per cell, or all-classes attributions ``(N, C, G)``,
:func:`attribution_table` summarizes each gene within each class.

* The classic table (default): mean, standard deviation, count, standard
  error and a t-based 95% confidence interval of the mean attribution, ranked
  by mean (scvi-tools' ``get_ranked_features`` + per-label averaging, with
  intervals).
* ``full=True`` adds the mean of absolute values, the fraction of cells with
  a positive attribution and a seeded percentile-bootstrap confidence
  interval over cells (Efron & Tibshirani 1993, ch. 13), computed for all
  genes at once from resampling counts.
* ``scvi_compatible=True`` reproduces scvi-tools' table
  (``SemisupervisedTrainingMixin.get_ranked_features``, scvi-tools 1.4.2, the
  table returned by ``model.predict(ig_interpretability=True)``) exactly: its
  columns, its population standard deviation (``ddof=0``), its sorting, its
  index and its dtypes (see :func:`scvi_table`).

:func:`top_genes` picks the top positive or negative genes per class.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

__all__ = ["attribution_table", "per_class_tables", "top_genes", "scvi_table",
           "bootstrap_mean_ci", "COLUMNS", "FULL_COLUMNS", "SCVI_COLUMNS"]

COLUMNS = ["class", "gene", "mean", "std", "n", "sem", "ci_low", "ci_high", "rank"]
"""Columns of :func:`attribution_table` (the classic table)."""

FULL_COLUMNS = ["class", "gene", "mean", "mean_abs", "std", "n", "sem", "ci_low", "ci_high",
                "boot_low", "boot_high", "frac_positive", "rank"]
"""Columns of :func:`attribution_table` with ``full=True``."""

SCVI_COLUMNS = ["feature", "feature_idx", "modality", "attribution_mean", "attribution_std",
                "cells"]
"""Columns of scvi-tools' ``get_ranked_features`` table (:func:`scvi_table`)."""


def _as_numpy(x) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def scvi_table(attributions, genes: Sequence[str] | None = None) -> pd.DataFrame:
    """scvi-tools' ranked-feature table of attributions ``(N, G)``, reproduced exactly.

    The same operations as ``SemisupervisedTrainingMixin.get_ranked_features``
    (scvi-tools 1.4.2, ``scvi/model/base/_training_mixin.py``; the table that
    ``model.predict(ig_interpretability=True)`` returns) for a single-modality
    AnnData, on the same dtype: ``attribution_mean = attrs.mean(0)``,
    ``attribution_std = attrs.std(0)`` (population standard deviation,
    ``ddof=0``), ``cells = N``, ``modality = "None"``, sorted by
    ``attribution_mean`` descending with pandas' default (unstable) sort.

    scvi-tools' quirk is kept: its ``feature_idx`` is the descending
    ``argsort`` of the means minus one (``mean_attrs.argsort()[::-1] - 1``),
    so each row's ``feature``, ``attribution_mean`` and ``attribution_std``
    belong to gene ``feature_idx`` (read modulo G: the last gene is
    reported as ``-1``), and the index is the row's position before sorting.

    Parameters
    ----------
    attributions : ndarray or Tensor, shape=(N, G)
        Float32 from scvi-tools; the statistics are computed in this dtype,
        as scvi-tools does.
    genes : sequence of str, length G, optional
        The model's feature names (scvi-tools: the registered ``var_names``).
        Default ``"0"``, ``"1"``, ...

    Returns
    -------
    pandas.DataFrame
        Columns :data:`SCVI_COLUMNS`, one row per gene.

    Raises
    ------
    ValueError
        If ``attributions`` is not 2-D with at least one row, or ``genes`` has
        the wrong length.
    """
    attrs = _as_numpy(attributions)
    if attrs.ndim != 2 or attrs.shape[0] == 0:
        raise ValueError(f"`attributions` must be (N, G) with N >= 1, got shape {attrs.shape}.")
    names = [str(j) for j in range(attrs.shape[1])] if genes is None else list(genes)
    if len(names) != attrs.shape[1]:
        raise ValueError(f"`genes` has {len(names)} names for {attrs.shape[1]} columns.")
    mean_attrs = attrs.mean(axis=0)
    std_attrs = attrs.std(axis=0)
    idx = mean_attrs.argsort()[::-1] - 1
    features_list = np.concatenate((np.array([]), np.asarray(names, dtype=object)))[idx]
    df = {
        "feature": features_list,
        "feature_idx": idx,
        "modality": "None",
        "attribution_mean": mean_attrs[idx],
        "attribution_std": std_attrs[idx],
        "cells": attrs.shape[0],
    }
    return pd.DataFrame(df).sort_values("attribution_mean", ascending=False)


def bootstrap_mean_ci(rows, n_bootstrap: int = 1000, confidence: float = 0.95,
                      random_state: int | Sequence[int] = 0,
                      chunk_cells: int = 10_000_000) -> tuple[np.ndarray, np.ndarray]:
    """Percentile-bootstrap confidence interval of every column's mean, over rows.

    Resample ``b = 1..B``: ``idx_b = rng.integers(0, n, size=n)`` drawn in
    that order from ``numpy.random.default_rng(random_state)`` (so equal to a
    plain loop drawing one resample at a time); the resampled means of all
    columns at once are ``counts_b @ rows / n``, where ``counts_b[i]`` is how
    often row ``i`` was drawn; the interval is the ``(1 -+ confidence) / 2``
    quantiles of the ``B`` means (``numpy.quantile``, linear interpolation).

    Parameters
    ----------
    rows : ndarray, shape=(n, G)
        Float64 is used.
    n_bootstrap
        ``B``, resamples. Default 1000.
    confidence
        Default 0.95.
    random_state : int or sequence of int
        Seed of the generator. Default 0.
    chunk_cells
        Resamples are processed in chunks of about ``chunk_cells / n`` so that
        the counts matrix stays small; the result does not depend on it.

    Returns
    -------
    low, high : ndarray, shape=(G,)
        NaN for ``n == 1``.
    """
    rows = np.asarray(rows, dtype=np.float64)
    n, g = rows.shape
    if n < 2:
        return np.full(g, np.nan), np.full(g, np.nan)
    rng = np.random.default_rng(random_state)
    means = np.empty((n_bootstrap, g))
    step = max(1, min(n_bootstrap, chunk_cells // n))
    for lo in range(0, n_bootstrap, step):
        k = min(step, n_bootstrap - lo)
        idx = rng.integers(0, n, size=(k, n))
        flat = (idx + n * np.arange(k)[:, None]).ravel()
        counts = np.bincount(flat, minlength=k * n).reshape(k, n).astype(np.float64)
        means[lo:lo + k] = counts @ rows / n
    q = np.quantile(means, [(1 - confidence) / 2, (1 + confidence) / 2], axis=0)
    return q[0], q[1]


def _class_blocks(a: np.ndarray, labels, label_names, classes):
    """``(name, seed index, rows (n, G))`` for every class, in table order."""
    all_classes = a.ndim == 3
    n_cells = a.shape[0]
    if labels is not None:
        labels = _as_numpy(labels)
        if labels.shape != (n_cells,):
            raise ValueError(
                f"`labels` must have one entry per row of `attributions`, shape ({n_cells},), "
                f"got {labels.shape}.")
        if labels.dtype.kind == "f" and np.isnan(labels).any():
            raise ValueError(f"`labels` contains {int(np.isnan(labels).sum())} NaN value(s); "
                             "expected one class per cell.")
        if labels.dtype.kind == "O" and pd.isna(labels).any():
            raise ValueError(f"`labels` contains {int(pd.isna(labels).sum())} missing value(s); "
                             "expected one class per cell.")
    if all_classes:
        n_cls = a.shape[1]
        names = ([str(c) for c in range(n_cls)] if label_names is None
                 else [str(c) for c in label_names])
        if len(names) != n_cls:
            raise ValueError(f"`label_names` has {len(names)} names but `attributions` "
                             f"(N, C, G) has C={n_cls} classes.")
        if labels is None:
            members = {c: np.arange(n_cells) for c in range(n_cls)}
        else:
            if labels.dtype.kind in "iu":
                codes = labels.astype(np.int64)
            else:
                lookup = {nm: i for i, nm in enumerate(names)}
                unknown = sorted({str(v) for v in labels} - set(lookup))
                if unknown:
                    raise ValueError(f"`labels` holds names that are not in `label_names`: "
                                     f"{unknown[:5]}; expected integers in 0..{n_cls - 1} or "
                                     f"names among {names}.")
                codes = np.array([lookup[str(v)] for v in labels], dtype=np.int64)
            if codes.size and (codes.min() < 0 or codes.max() >= n_cls):
                raise ValueError(f"`labels` must be integers in 0..{n_cls - 1} (the class axis "
                                 "of `attributions`).")
            members = {c: np.flatnonzero(codes == c) for c in range(n_cls) if (codes == c).any()}
        order = list(members)
        block_names = {c: names[c] for c in order}
        get = {c: (lambda c=c: a[members[c], c, :]) for c in order}
    else:
        if labels is None:
            labels = np.zeros(n_cells, dtype=np.int64)
            label_names = ["all"] if label_names is None else label_names
        present = list(pd.unique(labels))
        if label_names is not None:
            present_set = set(present)
            order = [c for c in range(len(label_names)) if c in present_set]
            if len(order) != len(present):
                raise ValueError(
                    f"`labels` must be integers in 0..{len(label_names) - 1} when `label_names` "
                    "is given.")
            block_names = {c: str(label_names[c]) for c in order}
        else:
            order = sorted(present)
            block_names = {c: str(c) for c in order}
        get = {c: (lambda c=c: a[labels == c]) for c in order}
    seeds = {c: i for i, c in enumerate(order)}
    if classes is not None:
        by_name = {block_names[c]: c for c in order}
        known = (list(label_names) if label_names is not None else list(by_name))
        wanted = []
        for cls in classes:
            if str(cls) not in by_name:
                if str(cls) in {str(k) for k in known}:
                    raise ValueError(f"`classes`: class {str(cls)!r} has no cells in `labels`.")
                raise ValueError(f"`classes`: unknown class {str(cls)!r}; classes with cells: "
                                 f"{list(by_name)}.")
            wanted.append(by_name[str(cls)])
        order = wanted
    return [(block_names[c], seeds[c], get[c]()) for c in order]


def attribution_table(attributions, labels=None, genes: Sequence[str] | None = None,
                      label_names: Sequence[str] | None = None,
                      confidence: float = 0.95, *, full: bool = False,
                      n_bootstrap: int = 1000, random_state: int = 0,
                      classes: Sequence[str] | None = None,
                      scvi_compatible: bool = False) -> pd.DataFrame:
    """One tidy table: every gene's attribution summarized within every class.

    Parameters
    ----------
    attributions : ndarray or Tensor, shape=(N, G) or (N, C, G)
        ``(N, G)``: one row per cell, each cell explained for one class (its
        label or its predicted class), grouped by ``labels``. ``(N, C, G)``:
        every cell explained for every class (``target="all"`` of
        :func:`captum_genomics.sc.gene_attributions.class_gene_attributions`);
        class ``c`` is summarized over ``attributions[:, c, :]`` of all cells
        when ``labels`` is None, of the cells labelled ``c`` otherwise.
        Float64 is used for the statistics (the dtype as given with
        ``scvi_compatible``).
    labels : array-like, shape=(N,), optional
        Class of each cell: integers (indices into ``label_names``) or names
        (names of ``label_names`` for ``(N, C, G)``). Default None: one class
        ``"all"`` for ``(N, G)``; every cell in every class for ``(N, C, G)``.
    genes : sequence of str, length G, optional
        Default ``"gene0"``, ``"gene1"``, ... (``"0"``, ``"1"``, ... with
        ``scvi_compatible``, scvi-tools' names for an AnnData without
        ``var_names``).
    label_names : sequence of str, optional
        Names of integer labels; for ``(N, C, G)`` the C class names (default
        ``"0"`` ... ``"C-1"``). Default: the labels themselves as strings.
    confidence
        Level of the two-sided t interval and of the bootstrap interval.
        Default 0.95.
    full
        Add ``mean_abs``, ``boot_low``/``boot_high`` and ``frac_positive``
        (columns :data:`FULL_COLUMNS`). Default False (columns
        :data:`COLUMNS`).
    n_bootstrap
        Resamples of the bootstrap interval (``full=True``). Default 1000.
    random_state
        Seed of the bootstrap: class number ``k`` (its position among the
        classes with cells, in table order before ``classes`` selects) uses
        ``numpy.random.default_rng([random_state, k])``
        (:func:`bootstrap_mean_ci`). Default 0.
    classes : sequence of str, optional
        Only these classes, in this order. Default: every class with cells.
    scvi_compatible
        Return scvi-tools' table instead (:func:`scvi_table` per class):
        columns ``["class"] +`` :data:`SCVI_COLUMNS`, each class's rows and
        index exactly as ``model.predict(indices=<its cells>,
        ig_interpretability=True)`` returns them for the same attributions.
        Default False.

    Returns
    -------
    pandas.DataFrame
        One row per (class with cells, gene): ``mean``; ``std`` (``ddof=1``,
        NaN for ``n == 1``); ``n`` cells; ``sem = std / sqrt(n)``;
        ``ci_low``/``ci_high`` = ``mean -/+ t_{(1+confidence)/2, n-1} * sem``
        (NaN for ``n == 1``); with ``full``: ``mean_abs`` (mean of absolute
        values), ``boot_low``/``boot_high`` (percentile bootstrap over cells,
        NaN for ``n == 1``), ``frac_positive`` (fraction of cells with an
        attribution > 0); ``rank`` 1 for the highest mean within the class.
        Sorted by class (order of ``label_names`` or sorted labels, or
        ``classes``), then mean descending (ties by gene order).

    Raises
    ------
    ValueError
        Mismatched shapes, non-finite attributions, NaN labels,
        ``confidence`` outside (0, 1), ``n_bootstrap < 1``, a class of
        ``classes`` without cells.
    """
    from scipy import stats

    raw = _as_numpy(attributions)
    a = raw if scvi_compatible else raw.astype(np.float64)
    if a.ndim not in (2, 3):
        raise ValueError(f"`attributions` must be (N, G) or (N, C, G), got shape {a.shape}.")
    if a.shape[0] == 0:
        raise ValueError("`attributions` has no rows (N = 0); need at least one cell.")
    if a.dtype.kind not in "biuf":
        raise ValueError(f"`attributions` must hold real numbers, got dtype {a.dtype}.")
    if not np.isfinite(a).all():
        raise ValueError("`attributions` contains NaN or Inf.")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"`confidence` must be in (0, 1), got {confidence!r}.")
    if full and (isinstance(n_bootstrap, bool) or not isinstance(n_bootstrap, (int, np.integer))
                 or n_bootstrap < 1):
        raise ValueError(f"`n_bootstrap` must be an integer >= 1, got {n_bootstrap!r}.")
    n_genes = a.shape[-1]
    if genes is None:
        genes = [str(j) if scvi_compatible else f"gene{j}" for j in range(n_genes)]
    else:
        genes = [str(g) for g in genes]
    if len(genes) != n_genes:
        raise ValueError(f"`genes` has {len(genes)} names for {n_genes} columns.")
    blocks = _class_blocks(a, labels, label_names, classes)
    if scvi_compatible:
        frames = []
        for name, _, rows in blocks:
            t = scvi_table(rows, genes)
            t.insert(0, "class", name)
            frames.append(t)
        return pd.concat(frames)
    frames = []
    gene_idx = np.arange(n_genes)
    gene_arr = np.asarray(genes, dtype=object)
    for name, k, rows in blocks:
        n = rows.shape[0]
        mean = rows.mean(0)
        if n > 1:
            std = rows.std(0, ddof=1)
            sem = std / np.sqrt(n)
            half = stats.t.ppf(0.5 + confidence / 2, n - 1) * sem
        else:
            std = sem = half = np.full(n_genes, np.nan)
        order_g = np.lexsort((gene_idx, -mean))
        cols = {
            "class": name, "gene": gene_arr[order_g],
            "mean": mean[order_g], "std": std[order_g], "n": n, "sem": sem[order_g],
            "ci_low": (mean - half)[order_g], "ci_high": (mean + half)[order_g],
            "rank": np.arange(1, n_genes + 1),
        }
        if full:
            low, high = bootstrap_mean_ci(rows, int(n_bootstrap), confidence,
                                          [int(random_state), k])
            cols["mean_abs"] = np.abs(rows).mean(0)[order_g]
            cols["boot_low"], cols["boot_high"] = low[order_g], high[order_g]
            cols["frac_positive"] = (rows > 0).mean(0)[order_g]
        frames.append(pd.DataFrame(cols))
    return pd.concat(frames, ignore_index=True)[FULL_COLUMNS if full else COLUMNS]


def per_class_tables(table: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Split a tidy :func:`attribution_table` into one frame per class.

    Returns
    -------
    dict of str to DataFrame
        Class name to its rows (``gene`` ... ``rank``), sorted by mean descending,
        index reset. For a ``scvi_compatible`` table: scvi-tools' frame of the
        class, index kept (equal to what scvi-tools returns for those cells).
    """
    keep_index = "attribution_mean" in table.columns
    return {c: g.drop(columns="class") if keep_index
            else g.drop(columns="class").reset_index(drop=True)
            for c, g in table.groupby("class", sort=False)}


def top_genes(table: pd.DataFrame, k: int = 10, direction: str = "positive") -> pd.DataFrame:
    """The ``k`` genes with the highest (or lowest) mean attribution in each class.

    Parameters
    ----------
    table
        From :func:`attribution_table` (not a ``scvi_compatible`` one).
    k
        Genes per class. Default 10.
    direction : {"positive", "negative"}
        ``"positive"``: the largest means, largest first. ``"negative"``: the
        smallest (most negative) means, smallest first. Genes are not
        filtered by sign: with fewer than ``k`` positive means, the rest of
        the positive list has means <= 0. Default ``"positive"``.

    Returns
    -------
    pandas.DataFrame
        At most ``k`` rows per class, classes in the table's order.
    """
    if direction not in ("positive", "negative"):
        raise ValueError(f"`direction` must be 'positive' or 'negative', got {direction!r}.")
    if int(k) < 1:
        raise ValueError(f"`k` must be >= 1, got {k!r}.")
    if "rank" not in table.columns:
        raise ValueError("`table` must come from `attribution_table` without "
                         "`scvi_compatible` (it needs the `rank` column).")
    parts = []
    for _, g in table.groupby("class", sort=False):
        g = g.sort_values("rank")
        parts.append(g.head(k) if direction == "positive" else g.tail(k).iloc[::-1])
    return pd.concat(parts, ignore_index=True)
