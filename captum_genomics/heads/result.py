"""The tables of a head-ablation explained-variance run, as a dataclass with pandas views.

:class:`HeadAblationResult` holds what
:meth:`captum_genomics.methods.head_ablation.HeadAblationExplainedVariance.attribute`
computes (AMICI's head-ablation explained variance, Hong et al. 2025): per
(head, group, gene) explained variance
(:func:`captum_genomics.stats.explained_variance.explained_variance`),
permutation p-values (:func:`captum_genomics.stats.permutation.permutation_test`)
and their Benjamini-Hochberg adjustment
(:func:`captum_genomics.stats.multiple_testing.adjust_p_values`).

:class:`HeadAblationClassifierResult` holds what
:meth:`captum_genomics.methods.head_ablation_classifier.HeadAblationClassifierEffect.attribute`
computes for a classifier: per (metric, head, group) the drop of the target
logit, of the true-class probability and of the accuracy when a head is
ablated, with paired sign-flip p-values and BH-adjusted q-values
(:mod:`captum_genomics.stats.classifier_effects`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from torch import Tensor

from captum_genomics._utils.checks import check_positive_int
from captum_genomics.stats.classifier_effects import METRICS

__all__ = ["CLASSIFIER_METRICS", "HeadAblationClassifierResult", "HeadAblationResult"]


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


CLASSIFIER_METRICS = METRICS
"""The metrics of :class:`HeadAblationClassifierResult`, in the order of its first axis
(:data:`captum_genomics.stats.classifier_effects.METRICS`)."""


@dataclass
class HeadAblationClassifierResult:
    """The tables of a classifier's head-ablation effects, per (metric, head, group).

    What :meth:`captum_genomics.methods.head_ablation_classifier.HeadAblationClassifierEffect.attribute`
    computes (statistics in
    :func:`captum_genomics.stats.classifier_effects.classifier_effects`):
    ``M = 3`` metrics (:data:`CLASSIFIER_METRICS`), ``V`` variants (one per
    tested head, ordered layer by layer, head 0..H-1), ``n_groups`` groups.
    Tensors are float64 on the CPU unless noted; NaN marks skipped groups.

    Attributes
    ----------
    heads : list of (str, int), length V
        ``(layer, head_index)`` of each variant; ``layer`` is the attention
        module's path in ``model.named_modules()`` (e.g.
        ``"encoder.layers.0.self_attn"``).
    group_names : list of str, length n_groups
    metrics : tuple of str, length M
        ``("target_logit", "true_class_probability", "accuracy")``.
    effect : Tensor, shape=(M, V, n_groups)
        Mean over the group's examples of ``full - ablated`` (the drop of
        the metric when the head is ablated; negative = ablation raises it).
    p_value, q_value : Tensor, shape=(M, V, n_groups)
        Paired sign-flip test p-values
        (:func:`~captum_genomics.stats.classifier_effects.sign_flip_test`) and
        their Benjamini-Hochberg adjustment over all (variant, group) tests of
        the same metric.
    full_value : Tensor, shape=(M, n_groups)
        The unablated model's metric, averaged over the group's examples.
    ablated_value : Tensor, shape=(M, V, n_groups)
        The ablated model's metric, averaged over the group's examples
        (``full_value - effect`` to rounding).
    n : Tensor, shape=(n_groups,), int64
        Examples per group (skipped groups included).
    exact : Tensor, shape=(n_groups,), bool
        True where the group's p-values enumerate all ``2**n`` sign flips
        (exact test) rather than ``n_permutations`` random ones.
    skipped_groups : list of str
        Groups with fewer than ``min_examples`` examples (NaN everywhere).
    ablation : str
        ``"remove"`` (remove one head) or ``"keep"`` (keep one head).
    mode : str
        ``"zero"`` or ``"mean"``.
    n_permutations : int
    alpha : float
        Significance level of the ``significant`` column.
    alternative : str
        ``"two-sided"``, ``"greater"`` (the metric drops) or ``"less"``.
    extra : dict
        Free-form metadata (``random_state``, ``min_examples``, ``binary``,
        ``n_classes``, ...); not used by the tables.
    """

    heads: list[tuple[str, int]]
    group_names: list[str]
    metrics: tuple[str, ...]
    effect: Tensor
    p_value: Tensor
    q_value: Tensor
    full_value: Tensor
    ablated_value: Tensor
    n: Tensor
    exact: Tensor
    skipped_groups: list[str]
    ablation: str
    mode: str
    n_permutations: int
    alpha: float
    alternative: str
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        m, v, k = len(self.metrics), len(self.heads), len(self.group_names)
        expected = {"effect": (m, v, k), "p_value": (m, v, k), "q_value": (m, v, k),
                    "full_value": (m, k), "ablated_value": (m, v, k), "n": (k,),
                    "exact": (k,)}
        for attr, shape in expected.items():
            got = tuple(getattr(self, attr).shape)
            if got != shape:
                raise ValueError(
                    f"HeadAblationClassifierResult.{attr} must have shape {shape} (metrics, "
                    f"heads, groups = {m}, {v}, {k}), got {got}.")

    @staticmethod
    def _np(x: Tensor) -> np.ndarray:
        return x.detach().cpu().numpy()

    def kept_group_indices(self) -> np.ndarray:
        """Indices of the tested (not skipped) groups, in group order.

        Returns
        -------
        numpy.ndarray, shape=(n_kept,), int64
        """
        skipped = set(self.skipped_groups)
        return np.array([i for i, name in enumerate(self.group_names) if name not in skipped],
                        dtype=np.int64)

    def metric_index(self, metric: str) -> int:
        """The position of ``metric`` in ``metrics``.

        Raises
        ------
        ValueError
            If ``metric`` is not one of ``metrics``.
        """
        if metric not in self.metrics:
            raise ValueError(f"`metric` must be one of {self.metrics}, got {metric!r}.")
        return self.metrics.index(metric)

    def to_frame(self, metric: str | None = None):
        """One tidy row per (metric, head, group); skipped groups omitted.

        Parameters
        ----------
        metric : str, optional
            Only this metric's rows. Default None: all metrics.

        Returns
        -------
        pandas.DataFrame
            Columns ``layer, head, group, metric, n, full_value,
            ablated_value, effect, p_value, q_value, significant, exact``
            (``significant = q_value <= alpha``); rows ordered by metric,
            variant, group. ``layer`` is the module path, ``head`` the head
            index within it.
        """
        import pandas as pd

        metrics = list(range(len(self.metrics))) if metric is None else [
            self.metric_index(metric)]
        kept = self.kept_group_indices()
        v, k = len(self.heads), len(kept)
        np_ = self._np
        cols = {name: [] for name in ("effect", "p_value", "q_value", "ablated_value",
                                      "full_value")}
        for mi in metrics:
            for name in ("effect", "p_value", "q_value", "ablated_value"):
                cols[name].append(np_(getattr(self, name))[mi][:, kept].reshape(-1))
            cols["full_value"].append(np.tile(np_(self.full_value)[mi][kept], v))
        cat = {name: np.concatenate(vals) for name, vals in cols.items()}
        reps = len(metrics)
        return pd.DataFrame({
            "layer": np.tile(np.repeat(np.array([h[0] for h in self.heads], dtype=object), k),
                             reps),
            "head": np.tile(np.repeat(np.array([int(h[1]) for h in self.heads],
                                               dtype=np.int64), k), reps),
            "group": np.tile(np.array(self.group_names, dtype=object)[kept], v * reps),
            "metric": np.repeat(np.array([self.metrics[i] for i in metrics], dtype=object),
                                v * k),
            "n": np.tile(np_(self.n)[kept], v * reps).astype(np.int64),
            "full_value": cat["full_value"],
            "ablated_value": cat["ablated_value"],
            "effect": cat["effect"],
            "p_value": cat["p_value"],
            "q_value": cat["q_value"],
            "significant": cat["q_value"] <= self.alpha,
            "exact": np.tile(np_(self.exact)[kept], v * reps).astype(bool),
        })

    def pivot(self, metric: str = "accuracy", value: str = "effect"):
        """A head x group table of one column of :meth:`to_frame` for one metric.

        Parameters
        ----------
        metric : str
            One of ``metrics``. Default ``"accuracy"``.
        value : str
            A numeric column of :meth:`to_frame` (``"effect"``, ``"p_value"``,
            ``"q_value"``, ``"ablated_value"``, ...). Default ``"effect"``.

        Returns
        -------
        pandas.DataFrame
            Index :meth:`head_labels` (variant order), columns the tested
            groups (group order).

        Raises
        ------
        ValueError
            For an unknown ``metric`` or ``value``.
        """
        frame = self.to_frame(metric)
        allowed = ("full_value", "ablated_value", "effect", "p_value", "q_value")
        if value not in allowed:
            raise ValueError(f"`value` must be one of {allowed}, got {value!r}.")
        kept = [self.group_names[i] for i in self.kept_group_indices()]
        labels = self.head_labels()
        table = frame[value].to_numpy().reshape(len(self.heads), len(kept))
        import pandas as pd

        return pd.DataFrame(table, index=pd.Index(labels, name="head"),
                            columns=pd.Index(kept, name="group"))

    def head_labels(self) -> list[str]:
        """Labels of the variants: ``"<module path>:<head>"``, e.g. ``"encoder.layers.0.self_attn:2"``."""
        return [f"{h[0]}:{int(h[1])}" for h in self.heads]
