"""Per-class gene tables from attributions, as in scvi-tools' interpretability tutorial.

Given attributions ``(N, G)`` (cells x genes, e.g. FastSHAP values for each
cell's class) and one label per cell, :func:`attribution_table` summarizes
each gene within each class: mean, standard deviation, count, standard error
and a t-based 95% confidence interval of the mean attribution, ranked by mean
(scvi-tools "Integrated Gradients" tutorial, ``get_ig_attributions`` +
per-label averaging; here with intervals). :func:`top_genes` picks the top
positive or negative genes per class.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

__all__ = ["attribution_table", "per_class_tables", "top_genes", "COLUMNS"]

COLUMNS = ["class", "gene", "mean", "std", "n", "sem", "ci_low", "ci_high", "rank"]
"""Columns of :func:`attribution_table`."""


def _as_numpy(x) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def attribution_table(attributions, labels, genes: Sequence[str] | None = None,
                      label_names: Sequence[str] | None = None,
                      confidence: float = 0.95) -> pd.DataFrame:
    """One tidy table: every gene's attribution summarized within every class.

    Parameters
    ----------
    attributions : ndarray or Tensor, shape=(N, G)
        One row per cell (float64 is used for the statistics).
    labels : array-like, shape=(N,)
        Class of each cell: integers (indices into ``label_names``) or names.
    genes : sequence of str, length G, optional
        Default ``"gene0"``, ``"gene1"``, ...
    label_names : sequence of str, optional
        Names of integer labels. Default: the labels themselves as strings.
    confidence
        Level of the two-sided t interval. Default 0.95.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`COLUMNS`, one row per (class present in ``labels``,
        gene): ``mean``; ``std`` (``ddof=1``, NaN for ``n == 1``); ``n``
        cells; ``sem = std / sqrt(n)``; ``ci_low``/``ci_high`` =
        ``mean -/+ t_{(1+confidence)/2, n-1} * sem`` (NaN for ``n == 1``);
        ``rank`` 1 for the highest mean within the class. Sorted by class
        (order of first appearance in ``label_names`` or sorted labels),
        then mean descending (ties by gene order).

    Raises
    ------
    ValueError
        Mismatched shapes, non-finite attributions, ``confidence`` outside (0, 1).
    """
    from scipy import stats

    a = _as_numpy(attributions).astype(np.float64)
    labels = _as_numpy(labels)
    if a.ndim != 2:
        raise ValueError(f"`attributions` must be (N, G), got shape {a.shape}.")
    if labels.shape != (a.shape[0],):
        raise ValueError(
            f"`labels` must have one entry per row of `attributions`, shape ({a.shape[0]},), "
            f"got {labels.shape}.")
    if not np.isfinite(a).all():
        raise ValueError("`attributions` contains NaN or Inf.")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"`confidence` must be in (0, 1), got {confidence!r}.")
    n_genes = a.shape[1]
    genes = [f"gene{j}" for j in range(n_genes)] if genes is None else [str(g) for g in genes]
    if len(genes) != n_genes:
        raise ValueError(f"`genes` has {len(genes)} names for {n_genes} columns.")
    present = list(pd.unique(labels))
    if label_names is not None:
        order = [c for c in range(len(label_names)) if c in set(present)]
        if len(order) != len(present):
            raise ValueError(
                f"`labels` must be integers in 0..{len(label_names) - 1} when `label_names` "
                "is given.")
        names = [str(label_names[c]) for c in order]
    else:
        order = sorted(present)
        names = [str(c) for c in order]
    frames = []
    gene_idx = np.arange(n_genes)
    for c, name in zip(order, names):
        rows = a[labels == c]
        n = rows.shape[0]
        mean = rows.mean(0)
        if n > 1:
            std = rows.std(0, ddof=1)
            sem = std / np.sqrt(n)
            half = stats.t.ppf(0.5 + confidence / 2, n - 1) * sem
        else:
            std = sem = half = np.full(n_genes, np.nan)
        order_g = np.lexsort((gene_idx, -mean))
        frames.append(pd.DataFrame({
            "class": name, "gene": np.asarray(genes, dtype=object)[order_g],
            "mean": mean[order_g], "std": std[order_g], "n": n, "sem": sem[order_g],
            "ci_low": (mean - half)[order_g], "ci_high": (mean + half)[order_g],
            "rank": np.arange(1, n_genes + 1),
        }))
    return pd.concat(frames, ignore_index=True)[COLUMNS]


def per_class_tables(table: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Split a tidy :func:`attribution_table` into one frame per class.

    Returns
    -------
    dict of str to DataFrame
        Class name to its rows (``gene`` ... ``rank``), sorted by mean descending,
        index reset.
    """
    return {c: g.drop(columns="class").reset_index(drop=True)
            for c, g in table.groupby("class", sort=False)}


def top_genes(table: pd.DataFrame, k: int = 10, direction: str = "positive") -> pd.DataFrame:
    """The ``k`` genes with the highest (or lowest) mean attribution in each class.

    Parameters
    ----------
    table
        From :func:`attribution_table`.
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
    parts = []
    for _, g in table.groupby("class", sort=False):
        g = g.sort_values("rank")
        parts.append(g.head(k) if direction == "positive" else g.tail(k).iloc[::-1])
    return pd.concat(parts, ignore_index=True)
