"""Held-out node importances from activations: the functional entry points and their results.

The model-free half of :class:`~captum_genomics.methods.layer_node_probe.LayerNodeProbe`
(the math is :mod:`captum_genomics.stats.probes`):

- :func:`probe_nodes`: activations ``(N, U)``, per-cell labels and named
  nodes -> :class:`NodeProbeResult`, with Benjamini-Hochberg q-values over
  every (node, class) test.
- :func:`compare_parent_children`: does a node add over its children (DCell,
  Ma et al. 2018; NetworkVI, Arnoldt et al.)? The held-out AUROC of the
  parent's units minus that of the union of its children's units, with a
  paired bootstrap CI (the same resamples for both), not a ratio of in-sample
  scores -> :class:`NodeComparisonResult`.
- :func:`perturbation_effects`: the probes fitted once on unperturbed cells
  score perturbed activations of the same (held-out) cells: the change of
  each node's AUROC and of each class's mean probability, with paired
  bootstrap CIs -> :class:`NodePerturbationResult`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from captum_genomics._utils.checks import check_positive_int
from captum_genomics.stats.explained_variance import encode_groups
from captum_genomics.stats.multiple_testing import adjust_p_values, check_alpha
from captum_genomics.stats.probe_statistics import NodeProbeFit, node_probe_statistics
from captum_genomics.stats.probes import (
    auroc,
    bootstrap_auroc,
    check_confidence,
    cross_validated_logits,
    node_index,
    percentile_interval,
)

__all__ = [
    "NodeComparisonResult",
    "NodePerturbationResult",
    "NodeProbeResult",
    "check_activations",
    "compare_parent_children",
    "perturbation_effects",
    "probe_nodes",
]

NODE_COLUMNS = ("auroc_oof", "ci_low", "ci_high", "p_value", "q_value", "auroc_in_sample",
                "random_node_mean", "random_node_q95", "random_node_p", "untrained_auroc")
"""The per-(node, class) statistics of :class:`NodeProbeResult`, in table order."""


def check_activations(activations: Any, name: str = "activations") -> np.ndarray:
    """Activations as a float64 ``(N, U)`` numpy array; clear errors for shape and NaN.

    Raises
    ------
    TypeError
        If ``activations`` is not a tensor or array of real numbers.
    ValueError
        If it is not two-dimensional or holds NaN/Inf (the first position is given).
    """
    if isinstance(activations, torch.Tensor):
        arr = activations.detach().cpu().to(torch.float64).numpy()
    else:
        arr = np.asarray(activations)
        if arr.dtype.kind not in "biuf":
            raise TypeError(f"`{name}` must be a real tensor or array (cells, units), got dtype "
                            f"{arr.dtype}.")
        arr = arr.astype(np.float64)
    if arr.ndim != 2:
        raise ValueError(f"`{name}` must have shape (cells, units), got {arr.shape}.")
    bad = ~np.isfinite(arr)
    if bad.any():
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(f"`{name}` contains {int(bad.sum())} non-finite value(s) (NaN/Inf), "
                         f"first at index {first}.")
    return arr


# ----------------------------------------------------------------------------- results
@dataclass
class NodeProbeResult:
    """Held-out importance of every (node, class), with CIs, p/q-values and controls.

    ``n_nodes`` nodes, ``n_classes`` classes; every statistic is a float64
    numpy array ``(n_nodes, n_classes)`` (NaN where not computed). See
    :func:`captum_genomics.stats.probe_statistics.node_probe_statistics` for their
    definitions.

    Attributes
    ----------
    node_names : list of str
    class_names : list of str
    widths : numpy.ndarray, shape=(n_nodes,), int64
        Units per node.
    n_cells : numpy.ndarray, shape=(n_classes,), int64
    auroc_oof, ci_low, ci_high : numpy.ndarray
        Pooled out-of-fold AUROC and its percentile bootstrap CI.
    p_value, q_value : numpy.ndarray
        Label-permutation p-value ``(1 + b) / (1 + B)`` and its
        Benjamini-Hochberg adjustment over all (node, class) tests.
    auroc_in_sample : numpy.ndarray
        NetworkVI's in-sample AUROC (a diagnostic; optimistic).
    random_node_mean, random_node_q95, random_node_p : numpy.ndarray
        Width-matched random nodes: mean and 95th percentile of their
        out-of-fold AUROC, and the node's rank p-value among them.
    untrained_auroc : numpy.ndarray
        The same probe on the untrained model's activations.
    alpha : float
        Level of the ``significant`` column (``q_value <= alpha``).
    probes : NodeProbeFit
        The fitted probes (for :func:`perturbation_effects` and
        :func:`compare_parent_children`).
    settings : dict
        ``n_folds, C, n_permutations, n_bootstrap, confidence, n_random,
        random_state`` and whatever the caller adds.
    """

    node_names: list[str]
    class_names: list[str]
    widths: np.ndarray
    n_cells: np.ndarray
    auroc_oof: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    p_value: np.ndarray
    q_value: np.ndarray
    auroc_in_sample: np.ndarray
    random_node_mean: np.ndarray
    random_node_q95: np.ndarray
    random_node_p: np.ndarray
    untrained_auroc: np.ndarray
    alpha: float
    probes: NodeProbeFit
    settings: dict = field(default_factory=dict)

    def class_index(self, class_: Any) -> int:
        """The position of ``class_`` (a name, or a label whose ``str`` is one) in ``class_names``.

        Raises
        ------
        ValueError
            If ``class_`` is not a class.
        """
        for key in (class_, str(class_)):
            if key in self.class_names:
                return self.class_names.index(key)
        raise ValueError(f"`class_` {class_!r} is not a class; classes: {self.class_names}.")

    def to_frame(self):
        """One tidy row per (node, class), in node then class order.

        Returns
        -------
        pandas.DataFrame
            Columns ``node, width, class, n_cells, auroc_oof, ci_low, ci_high,
            p_value, q_value, significant, auroc_in_sample, random_node_mean,
            random_node_q95, random_node_p, untrained_auroc``.
        """
        import pandas as pd

        n_nodes, n_classes = len(self.node_names), len(self.class_names)
        frame = pd.DataFrame({
            "node": np.repeat(np.array(self.node_names, dtype=object), n_classes),
            "width": np.repeat(self.widths, n_classes),
            "class": np.tile(np.array(self.class_names, dtype=object), n_nodes),
            "n_cells": np.tile(self.n_cells, n_nodes),
        })
        for col in NODE_COLUMNS:
            frame[col] = getattr(self, col).reshape(-1)
            if col == "q_value":
                frame["significant"] = frame["q_value"] <= self.alpha
        return frame

    def ranking(self, class_: Any):
        """The nodes of one class, best held-out AUROC first (ties keep node order).

        Returns
        -------
        pandas.DataFrame
            The rows of :meth:`to_frame` for ``class_``, sorted by ``auroc_oof``.
        """
        c = self.class_index(class_)
        frame = self.to_frame()
        frame = frame[frame["class"] == self.class_names[c]]
        return frame.sort_values("auroc_oof", ascending=False, kind="stable").reset_index(
            drop=True)

    def top_nodes(self, class_: Any, k: int = 10) -> list[str]:
        """The ``k`` nodes with the highest held-out AUROC for ``class_``."""
        check_positive_int(k, "k")
        return list(self.ranking(class_)["node"][:k])


@dataclass
class NodeComparisonResult:
    """Parent versus children: held-out AUROC differences with paired bootstrap CIs.

    ``n_pairs`` parents, ``n_classes`` classes; arrays ``(n_pairs, n_classes)``
    unless noted.

    Attributes
    ----------
    parents : list of str
    children : list of tuple of str
    class_names : list of str
    parent_width, children_width : numpy.ndarray, shape=(n_pairs,), int64
        Units of the parent and of the union of its children.
    auroc_parent, auroc_children : numpy.ndarray
        Out-of-fold AUROC of the parent's probe and of a probe on the union
        of the children's units (same folds).
    difference, ci_low, ci_high : numpy.ndarray
        ``auroc_parent - auroc_children`` and the percentile interval of the
        difference over the shared stratified resamples.
    confidence : float
    """

    parents: list[str]
    children: list[tuple[str, ...]]
    class_names: list[str]
    parent_width: np.ndarray
    children_width: np.ndarray
    auroc_parent: np.ndarray
    auroc_children: np.ndarray
    difference: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    confidence: float

    def to_frame(self):
        """One row per (parent, class): ``parent, children, n_children, parent_width,
        children_width, class, auroc_parent, auroc_children, difference, ci_low,
        ci_high, excludes_zero``."""
        import pandas as pd

        n_pairs, n_classes = len(self.parents), len(self.class_names)
        rep = lambda v: np.repeat(np.asarray(v, dtype=object), n_classes)  # noqa: E731
        frame = pd.DataFrame({
            "parent": rep(self.parents),
            "children": rep([",".join(c) for c in self.children]),
            "n_children": np.repeat([len(c) for c in self.children], n_classes),
            "parent_width": np.repeat(self.parent_width, n_classes),
            "children_width": np.repeat(self.children_width, n_classes),
            "class": np.tile(np.array(self.class_names, dtype=object), n_pairs),
        })
        for col in ("auroc_parent", "auroc_children", "difference", "ci_low", "ci_high"):
            frame[col] = getattr(self, col).reshape(-1)
        frame["excludes_zero"] = (frame["ci_low"] > 0) | (frame["ci_high"] < 0)
        return frame


@dataclass
class NodePerturbationResult:
    """Effects of a gene perturbation on held-out node AUROCs and class probabilities.

    Arrays ``(n_nodes, n_classes)`` unless noted; ``delta = perturbed -
    unperturbed``, CIs are percentile intervals over the probes' shared
    stratified resamples (paired: both values on the same resample).

    Attributes
    ----------
    node_names, class_names : list of str
    genes : list of str
        The perturbed genes (names, or indices as strings).
    value : str
        ``"zero"`` or ``"mean"``.
    auroc, auroc_perturbed, delta_auroc, delta_auroc_ci_low, delta_auroc_ci_high
        Out-of-fold AUROC of each node's probe on unperturbed and perturbed cells.
    probability, probability_perturbed, delta_probability, delta_probability_ci_low,
    delta_probability_ci_high
        The probe's mean out-of-fold probability of class ``c`` over the cells
        of class ``c``.
    output_probability, output_probability_perturbed, delta_output_probability,
    delta_output_ci_low, delta_output_ci_high : numpy.ndarray or None, shape=(n_classes,)
        The model's own softmax probability of class ``c`` over the cells of
        class ``c``, when its output has one logit per class; else None.
    confidence : float
    """

    node_names: list[str]
    class_names: list[str]
    genes: list[str]
    value: str
    auroc: np.ndarray
    auroc_perturbed: np.ndarray
    delta_auroc: np.ndarray
    delta_auroc_ci_low: np.ndarray
    delta_auroc_ci_high: np.ndarray
    probability: np.ndarray
    probability_perturbed: np.ndarray
    delta_probability: np.ndarray
    delta_probability_ci_low: np.ndarray
    delta_probability_ci_high: np.ndarray
    output_probability: np.ndarray | None
    output_probability_perturbed: np.ndarray | None
    delta_output_probability: np.ndarray | None
    delta_output_ci_low: np.ndarray | None
    delta_output_ci_high: np.ndarray | None
    confidence: float

    def to_frame(self):
        """One row per (node, class): ``node, class, auroc, auroc_perturbed, delta_auroc,
        delta_auroc_ci_low, delta_auroc_ci_high, probability, probability_perturbed,
        delta_probability, delta_probability_ci_low, delta_probability_ci_high``."""
        import pandas as pd

        n_nodes, n_classes = len(self.node_names), len(self.class_names)
        frame = pd.DataFrame({
            "node": np.repeat(np.array(self.node_names, dtype=object), n_classes),
            "class": np.tile(np.array(self.class_names, dtype=object), n_nodes),
        })
        for col in ("auroc", "auroc_perturbed", "delta_auroc", "delta_auroc_ci_low",
                    "delta_auroc_ci_high", "probability", "probability_perturbed",
                    "delta_probability", "delta_probability_ci_low",
                    "delta_probability_ci_high"):
            frame[col] = getattr(self, col).reshape(-1)
        return frame

    def output_frame(self):
        """One row per class for the model's own probabilities (None if it has none):
        ``class, probability, probability_perturbed, delta, ci_low, ci_high``."""
        import pandas as pd

        if self.output_probability is None:
            return None
        return pd.DataFrame({
            "class": list(self.class_names),
            "probability": self.output_probability,
            "probability_perturbed": self.output_probability_perturbed,
            "delta": self.delta_output_probability,
            "ci_low": self.delta_output_ci_low,
            "ci_high": self.delta_output_ci_high,
        })


# ----------------------------------------------------------------------------- entry points
def _check_count(value: Any, name: str, minimum: int) -> int:
    return check_positive_int(value, name, minimum=minimum)


def probe_nodes(
    activations: Any,
    labels: Any,
    nodes: Mapping[str, Any],
    n_folds: int = 5,
    C: float = 1.0,
    n_permutations: int = 99,
    n_bootstrap: int = 1000,
    confidence: float = 0.95,
    alpha: float = 0.05,
    n_random: int = 20,
    untrained_activations: Any = None,
    random_state: int | None = 0,
    class_names: Sequence[Any] | None = None,
    max_iter: int = 100,
    batch_size: int | None = None,
    show_progress: bool = False,
) -> NodeProbeResult:
    """Held-out node importances from a layer's activations (no model needed).

    Parameters
    ----------
    activations : Tensor or array, shape=(N, U)
        One row per cell, one column per unit of the layer; finite.
    labels : array-like, length N
        The class of each cell (strings, integers, a pandas ``Categorical``,
        a tensor); see :func:`~captum_genomics.stats.explained_variance.encode_groups`.
        At least two classes, each with at least ``n_folds`` cells.
    nodes : Mapping[str, slice | Sequence[int] | bool mask]
        Node name -> its units (:func:`~captum_genomics.stats.probes.node_index`).
    n_folds : int
        Stratified folds, at least 2. Default 5.
    C : float
        Inverse L2 strength of the probes (scikit-learn's ``C``). Default 1.0.
    n_permutations : int
        Label permutations for the p-values, ``>= 0`` (0: no p-values). The
        p-value floor is ``1 / (1 + n_permutations)``. Default 99.
    n_bootstrap : int
        Stratified resamples for the CIs. Default 1000.
    confidence : float
        CI level. Default 0.95.
    alpha : float
        Level of the ``significant`` column. Default 0.05.
    n_random : int
        Width-matched random nodes per width, ``>= 0``. Default 20.
    untrained_activations : Tensor or array, shape=(N, U), optional
        The same layer of an untrained copy of the model.
    random_state : int or None
        Seed of folds, permutations, resamples and random nodes. Default 0.
    class_names : sequence, optional
        With integer ``labels``: the name of each code. Default None.
    max_iter : int
        Newton steps per probe. Default 100.
    batch_size : int, optional
        Label versions fitted together (memory only). Default automatic.
    show_progress : bool
        A tqdm bar over the nodes. Default False.

    Returns
    -------
    NodeProbeResult

    Raises
    ------
    ValueError
        Labels of the wrong length or with fewer than two classes, a class
        with fewer cells than ``n_folds``, a node out of range, NaN/Inf
        activations, ``alpha`` or ``confidence`` outside (0, 1), counts that
        are not integers, activations of another shape than
        ``untrained_activations``.
    TypeError
        ``nodes`` not a mapping, non-numeric activations.
    """
    acts = check_activations(activations, "activations")
    n, n_units = acts.shape
    check_positive_int(n_folds, "n_folds", minimum=2)
    _check_count(n_permutations, "n_permutations", 0)
    _check_count(n_bootstrap, "n_bootstrap", 1)
    _check_count(n_random, "n_random", 0)
    _check_count(max_iter, "max_iter", 1)
    if batch_size is not None:
        _check_count(batch_size, "batch_size", 1)
    confidence = check_confidence(confidence)
    alpha = check_alpha(alpha)
    if isinstance(C, bool) or not isinstance(C, (int, float)) or not np.isfinite(C) or C <= 0:
        raise ValueError(f"`C` must be a positive finite number, got {C!r}.")
    codes_t, names = encode_groups(labels, n, "labels")
    if class_names is not None:
        names = _rename(names, class_names)
    codes = codes_t.numpy().astype(np.int64)
    if len(names) < 2:
        raise ValueError(f"`labels` must hold at least two classes, got {len(names)} "
                         f"({names}).")
    counts = np.bincount(codes, minlength=len(names))
    if counts.min() < n_folds:
        c = int(np.argmin(counts))
        raise ValueError(
            f"Class {names[c]!r} of `labels` has {int(counts[c])} cell(s), fewer than "
            f"`n_folds`={n_folds}: every class needs at least one cell per fold. Lower "
            f"`n_folds` or drop the class.")
    node_names, index = node_index(nodes, n_units, "nodes")
    untrained = None
    if untrained_activations is not None:
        untrained = check_activations(untrained_activations, "untrained_activations")
        if untrained.shape != acts.shape:
            raise ValueError(f"`untrained_activations` must have the shape of `activations` "
                             f"{acts.shape}, got {untrained.shape}.")
    table, fit = node_probe_statistics(
        acts, codes, len(names), node_names, index, n_folds=n_folds, C=float(C),
        n_permutations=n_permutations, n_bootstrap=n_bootstrap, confidence=confidence,
        n_random=n_random, untrained_activations=untrained, random_state=random_state,
        max_iter=max_iter, batch_size=batch_size, show_progress=show_progress)
    q = adjust_p_values(torch.from_numpy(table["p_value"])).numpy()
    return NodeProbeResult(
        node_names=node_names, class_names=list(names),
        widths=np.array([len(i) for i in index], dtype=np.int64), n_cells=counts.astype(np.int64),
        q_value=q, alpha=alpha, probes=fit,
        settings={"n_folds": n_folds, "C": float(C), "n_permutations": n_permutations,
                  "n_bootstrap": n_bootstrap, "confidence": confidence, "n_random": n_random,
                  "random_state": random_state, "entropy": fit.entropy},
        **table)


def _rename(names: list[str], class_names: Sequence[Any]) -> list[str]:
    if isinstance(class_names, (str, bytes)) or not hasattr(class_names, "__len__"):
        raise TypeError("`class_names` must be a sequence of names, one per integer code.")
    table = [str(c) for c in class_names]
    try:
        return [table[int(v)] for v in names]
    except (ValueError, IndexError):
        raise ValueError(f"`class_names` must name every integer code of `labels` "
                         f"({names}); got {len(table)} names.") from None


def check_probes(probes: Any, name: str = "probes") -> NodeProbeResult:
    """Raise unless ``probes`` is a fitted :class:`NodeProbeResult`; return it.

    Raises
    ------
    ValueError
        If ``probes`` is None (nothing fitted yet).
    TypeError
        If it is anything else.
    """
    if probes is None:
        raise ValueError(
            f"`{name}` is None: the probes are not fitted. Call `attribute(inputs, labels, "
            f"nodes)` (or `probe_nodes`) first and pass its result as `{name}=`.")
    if not isinstance(probes, NodeProbeResult) or not isinstance(probes.probes, NodeProbeFit):
        raise TypeError(f"`{name}` must be the NodeProbeResult of a fit, got "
                        f"{type(probes).__name__}.")
    return probes


def compare_parent_children(probes: NodeProbeResult,
                            parents: Mapping[str, Sequence[str]]) -> NodeComparisonResult:
    """Does a node add over its children? Held-out AUROC difference with a paired CI.

    For each parent ``p`` with children ``ch(p)`` and each class ``c``: the
    out-of-fold AUROC of ``p``'s probe (from ``probes``) minus the out-of-fold
    AUROC of a probe on the union of the children's units (fitted here, same
    folds, same ``C``). The CI is the percentile interval of the difference
    over the stratified resamples of ``probes`` (the same resample for both
    terms). DCell and NetworkVI compare a node with its children through a
    ratio of in-sample scores; a held-out difference with a paired CI says
    whether the parent's own units carry class information beyond what a
    probe can read from its children's units.

    Parameters
    ----------
    probes : NodeProbeResult
        A fit whose nodes include every parent and child.
    parents : Mapping[str, Sequence[str]]
        Parent node -> its child nodes (at least one each).

    Returns
    -------
    NodeComparisonResult

    Raises
    ------
    ValueError
        If ``parents`` is empty, names a node that is not in ``probes``, or
        lists no child for a parent.
    TypeError
        If ``parents`` is not a mapping of names to sequences of names.
    """
    res = check_probes(probes)
    fit = res.probes
    if not isinstance(parents, Mapping):
        raise TypeError(f"`parents` must be a mapping parent node -> child nodes, got "
                        f"{type(parents).__name__}.")
    if not parents:
        raise ValueError("`parents` is empty; give at least one parent node and its children.")
    where = {name: j for j, name in enumerate(fit.node_names)}
    positive = fit.codes[None, :] == np.arange(fit.n_classes)[:, None]
    weights = fit.bootstrap()
    out: dict[str, list] = {k: [] for k in ("parents", "children", "pw", "cw", "ap", "ac", "d",
                                            "lo", "hi")}
    for parent, kids in parents.items():
        if isinstance(kids, (str, bytes)) or not hasattr(kids, "__iter__"):
            raise TypeError(f"`parents[{parent!r}]` must be a sequence of child node names, got "
                            f"{type(kids).__name__}.")
        kids = tuple(str(k) for k in kids)
        if not kids:
            raise ValueError(f"`parents[{parent!r}]` lists no child node.")
        for name in (str(parent), *kids):
            if name not in where:
                raise ValueError(f"`parents` names node {name!r}, which is not among the "
                                 f"fitted nodes ({len(where)}: {list(where)[:5]}...).")
        j = where[str(parent)]
        units = np.unique(np.concatenate([fit.index[where[k]] for k in kids]))
        child_logits = cross_validated_logits(fit.activations[:, units], fit.codes, fit.folds,
                                              fit.n_classes, fit.n_folds, fit.C, fit.max_iter)[0]
        ap = auroc(fit.logits[j], positive)
        ac = auroc(child_logits, positive)
        lo, hi = np.empty(fit.n_classes), np.empty(fit.n_classes)
        for c in range(fit.n_classes):
            diff = (bootstrap_auroc(fit.logits[j, c], positive[c], weights)
                    - bootstrap_auroc(child_logits[c], positive[c], weights))
            lo[c], hi[c] = percentile_interval(diff, fit.confidence)
        for key, v in zip(("parents", "children", "pw", "cw", "ap", "ac", "d", "lo", "hi"),
                          (str(parent), kids, len(fit.index[j]), len(units), ap, ac, ap - ac,
                           lo, hi)):
            out[key].append(v)
    return NodeComparisonResult(
        parents=out["parents"], children=out["children"], class_names=list(res.class_names),
        parent_width=np.array(out["pw"], dtype=np.int64),
        children_width=np.array(out["cw"], dtype=np.int64),
        auroc_parent=np.stack(out["ap"]), auroc_children=np.stack(out["ac"]),
        difference=np.stack(out["d"]), ci_low=np.stack(out["lo"]), ci_high=np.stack(out["hi"]),
        confidence=fit.confidence)


def _class_mean_probability(prob: np.ndarray, codes: np.ndarray, weights: np.ndarray | None
                            ) -> np.ndarray:
    """Mean over the cells of class c of ``prob[..., c, i]``: ``(...)`` or ``(B, ...)``."""
    n_classes = prob.shape[-2]
    own = codes[None, :] == np.arange(n_classes)[:, None]  # (C, N)
    if weights is None:
        return (prob * own).sum(-1) / own.sum(-1)
    w = weights.astype(np.float64)  # (B, N)
    lead = prob.shape[:-1]
    num = (w @ (prob * own).reshape(-1, prob.shape[-1]).T).reshape((w.shape[0],) + lead)
    den = w @ own.T.astype(np.float64)  # (B, C)
    return num / den.reshape((den.shape[0],) + (1,) * (len(lead) - 1) + (n_classes,))


def perturbation_effects(
    probes: NodeProbeResult,
    perturbed_activations: Any,
    genes: Sequence[str],
    value: str,
    output_probabilities: np.ndarray | None = None,
    perturbed_output_probabilities: np.ndarray | None = None,
) -> NodePerturbationResult:
    """Change of node AUROCs and class probabilities when genes are perturbed.

    Each cell is scored by the probes of its own held-out fold, fitted on the
    other folds' unperturbed activations (``probes.probes.score``); so the
    unperturbed numbers are exactly the out-of-fold ones of ``probes``. All
    CIs are paired: the unperturbed and perturbed statistic are computed on
    the same stratified resample, and the interval is that of their
    difference.

    Parameters
    ----------
    probes : NodeProbeResult
    perturbed_activations : Tensor or array, shape=(N, U)
        The layer's activations of the same cells with the genes perturbed.
    genes : sequence of str
        The perturbed genes, for the record.
    value : str
        ``"zero"`` or ``"mean"``, for the record.
    output_probabilities, perturbed_output_probabilities : array, shape=(N, n_classes), optional
        The model's class probabilities without and with the perturbation.

    Returns
    -------
    NodePerturbationResult

    Raises
    ------
    ValueError
        Activations of another shape than the fitted ones, or NaN.
    """
    res = check_probes(probes)
    fit = res.probes
    pert = check_activations(perturbed_activations, "perturbed_activations")
    before = fit.logits
    after = fit.score(pert)
    positive = fit.codes[None, :] == np.arange(fit.n_classes)[:, None]
    weights = fit.bootstrap()
    n_nodes, n_classes = len(fit.index), fit.n_classes
    shape = (n_nodes, n_classes)
    a0, a1 = auroc(before, positive), auroc(after, positive)
    lo, hi = np.empty(shape), np.empty(shape)
    for j in range(n_nodes):
        for c in range(n_classes):
            diff = (bootstrap_auroc(after[j, c], positive[c], weights)
                    - bootstrap_auroc(before[j, c], positive[c], weights))
            lo[j, c], hi[j, c] = percentile_interval(diff, fit.confidence)
    sig0, sig1 = 1.0 / (1.0 + np.exp(-before)), 1.0 / (1.0 + np.exp(-after))
    p0 = _class_mean_probability(sig0, fit.codes, None)
    p1 = _class_mean_probability(sig1, fit.codes, None)
    boot = (_class_mean_probability(sig1, fit.codes, weights)
            - _class_mean_probability(sig0, fit.codes, weights))  # (B, n_nodes, C)
    plo, phi = percentile_interval(boot, fit.confidence, axis=0)
    out: dict[str, Any] = dict.fromkeys(("o0", "o1", "od", "olo", "ohi"))
    if output_probabilities is not None:
        q0 = np.asarray(output_probabilities, dtype=np.float64).T  # (C, N)
        q1 = np.asarray(perturbed_output_probabilities, dtype=np.float64).T
        out["o0"] = _class_mean_probability(q0, fit.codes, None)
        out["o1"] = _class_mean_probability(q1, fit.codes, None)
        out["od"] = out["o1"] - out["o0"]
        ob = (_class_mean_probability(q1, fit.codes, weights)
              - _class_mean_probability(q0, fit.codes, weights))  # (B, C)
        out["olo"], out["ohi"] = percentile_interval(ob, fit.confidence, axis=0)
    return NodePerturbationResult(
        node_names=list(fit.node_names), class_names=list(res.class_names),
        genes=[str(g) for g in genes], value=value, auroc=a0, auroc_perturbed=a1,
        delta_auroc=a1 - a0, delta_auroc_ci_low=lo, delta_auroc_ci_high=hi,
        probability=p0, probability_perturbed=p1, delta_probability=p1 - p0,
        delta_probability_ci_low=plo, delta_probability_ci_high=phi,
        output_probability=out["o0"], output_probability_perturbed=out["o1"],
        delta_output_probability=out["od"], delta_output_ci_low=out["olo"],
        delta_output_ci_high=out["ohi"], confidence=fit.confidence)
