"""The tables of a head-ablation explained-variance run, as a dataclass with pandas views.

:class:`HeadAblationResult` holds what
:meth:`captum_genomics.methods.head_ablation.HeadAblationExplainedVariance.attribute`
computes (AMICI's head-ablation explained variance, Hong et al. 2025): per
(head, group, gene) explained variance
(:func:`captum_genomics.stats.explained_variance.explained_variance`),
permutation p-values (:func:`captum_genomics.stats.permutation.permutation_test`)
and their Benjamini-Hochberg adjustment
(:func:`captum_genomics.stats.multiple_testing.adjust_p_values`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from torch import Tensor

from captum_genomics._utils.checks import check_positive_int

__all__ = ["HeadAblationResult"]


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
        :func:`~captum_genomics.stats.explained_variance.explained_variance`.
    ev_head : Tensor, shape=(V, n_groups)
        Per-group EV over all genes.
    mse : Tensor, shape=(V, n_groups)
        Observed MSE (the permutation statistic).
    p_value, p_adj : Tensor, shape=(V, n_groups)
        Permutation p-values
        (:func:`~captum_genomics.stats.permutation.permutation_test`) and their
        Benjamini-Hochberg adjustment over all (variant, group) tests
        (:func:`~captum_genomics.stats.multiple_testing.adjust_p_values`).
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
    def kept_group_indices(self) -> np.ndarray:
        """Indices of the groups that were tested (not skipped), in group order.

        Returns
        -------
        numpy.ndarray, shape=(n_kept,), int64
            Positions in ``group_names`` of the groups not in ``skipped_groups``.
        """
        skipped = set(self.skipped_groups)
        return np.array([i for i, name in enumerate(self.group_names) if name not in skipped],
                        dtype=np.int64)

    def group_index(self, group: Any) -> int:
        """The position of ``group`` in ``group_names``.

        Parameters
        ----------
        group
            A group name, or a label whose ``str`` is one.

        Returns
        -------
        int
            ``0 <= index < n_groups``.

        Raises
        ------
        ValueError
            If ``group`` is not a group.
        """
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

        kept = self.kept_group_indices()
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

        kept = self.kept_group_indices()
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
        gi = self.group_index(group)
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
