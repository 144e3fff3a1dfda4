"""Held-out importance of every (node, class): the fitted probes and their statistics.

:func:`node_probe_statistics` runs the math of :mod:`captum_genomics.stats.probes`
for every node of a layer: pooled out-of-fold AUROC, stratified bootstrap CI,
label-permutation p-value (every permutation refits every probe on its own
stratified folds; Ojala & Garriga 2010; ``(1 + b) / (1 + B)``, Phipson &
Smyth 2010), NetworkVI's in-sample AUROC as a diagnostic, width-matched
random nodes and an untrained model's activations. :class:`NodeProbeFit`
keeps the fitted probes, to score perturbed activations of the same cells.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from captum_genomics.stats.probes import (
    _fold_seed,
    auroc,
    bootstrap_auroc,
    bootstrap_weights,
    cross_validated_logits,
    in_sample_logits,
    percentile_interval,
    probe_entropy,
    probe_rng,
    stratified_folds,
)

__all__ = ["NodeProbeFit", "node_probe_statistics"]


# ----------------------------------------------------------------------------- fitted probes
@dataclass
class NodeProbeFit:
    """The fitted out-of-fold probes of every node, to score perturbed activations later.

    Attributes
    ----------
    node_names : list of str, length n_nodes
    index : list of numpy.ndarray of int64
        Units of each node.
    codes : numpy.ndarray, shape=(N,), int64
        Class code of each cell.
    n_classes : int
    folds : numpy.ndarray, shape=(N,), int64
        The held-out fold of each cell (:func:`stratified_folds`).
    n_folds : int
    C : float
    mean, scale : list of numpy.ndarray, shape=(n_folds, width)
        Per node, the training folds' standardization.
    coef : list of numpy.ndarray, shape=(n_folds, n_classes, width + 1)
        Per node, each fold's one-vs-rest coefficients (intercept last).
    logits : numpy.ndarray, shape=(n_nodes, n_classes, N), float64
        Out-of-fold logits on the activations the probes were fitted on.
    activations : numpy.ndarray, shape=(N, U), float64
        Those activations.
    entropy : int
        The seed entropy (:func:`probe_entropy`).
    n_bootstrap : int
    confidence : float
    max_iter : int
    """

    node_names: list[str]
    index: list[np.ndarray]
    codes: np.ndarray
    n_classes: int
    folds: np.ndarray
    n_folds: int
    C: float
    mean: list[np.ndarray]
    scale: list[np.ndarray]
    coef: list[np.ndarray]
    logits: np.ndarray
    activations: np.ndarray
    entropy: int
    n_bootstrap: int
    confidence: float
    max_iter: int = 100

    def score(self, activations: np.ndarray) -> np.ndarray:
        """Out-of-fold logits of the fitted probes on new activations of the same cells.

        Cell ``i`` is scored by the probes of its own held-out fold, fitted on
        the other folds' unperturbed activations.

        Parameters
        ----------
        activations : numpy.ndarray, shape=(N, U)

        Returns
        -------
        numpy.ndarray, shape=(n_nodes, n_classes, N), float64

        Raises
        ------
        ValueError
            If ``activations`` is not ``(N, U)`` like the fitted ones.
        """
        acts = np.asarray(activations, dtype=np.float64)
        if acts.shape != self.activations.shape:
            raise ValueError(
                f"`activations` must have the fitted shape {self.activations.shape} (cells, "
                f"units), got {acts.shape}.")
        out = np.empty((len(self.index), self.n_classes, acts.shape[0]))
        for j, idx in enumerate(self.index):
            x = acts[:, idx]
            xs = (x - self.mean[j][self.folds]) / self.scale[j][self.folds]  # (N, d)
            c = self.coef[j][self.folds]  # (N, C, d + 1)
            out[j] = (np.einsum("nd,ncd->cn", xs, c[..., :-1]) + c[..., -1].T)
        return out

    def bootstrap(self) -> np.ndarray:
        """The resampling counts ``(n_bootstrap, N)`` shared by every CI of this fit."""
        return bootstrap_weights(self.codes, self.n_classes, self.n_bootstrap, self.entropy)


# ----------------------------------------------------------------------------- statistics
def _progress(items, show: bool, desc: str):
    if not show:
        return items
    from tqdm.auto import tqdm

    return tqdm(items, desc=desc, unit="node")


def node_probe_statistics(
    activations: np.ndarray,
    codes: np.ndarray,
    n_classes: int,
    node_names: list[str],
    index: list[np.ndarray],
    n_folds: int = 5,
    C: float = 1.0,
    n_permutations: int = 99,
    n_bootstrap: int = 1000,
    confidence: float = 0.95,
    n_random: int = 20,
    untrained_activations: np.ndarray | None = None,
    random_state: int | None = 0,
    max_iter: int = 100,
    batch_size: int | None = None,
    show_progress: bool = False,
) -> tuple[dict[str, np.ndarray], NodeProbeFit]:
    """Held-out importance of every (node, class), with its CI, p-value and controls.

    For node ``j`` (units ``index[j]``) and class ``c`` (one against the rest):

    - ``auroc_oof``: the AUROC of the pooled out-of-fold logits
      (:func:`cross_validated_logits` on :func:`stratified_folds`).
    - ``ci_low, ci_high``: percentile interval of the AUROC of the same
      out-of-fold logits over ``n_bootstrap`` stratified resamples of the
      cells (:func:`bootstrap_weights`; the variability of the evaluation
      cells, the probes held fixed).
    - ``p_value``: ``(1 + #{b : AUROC_b >= AUROC}) / (1 + n_permutations)``
      (Phipson & Smyth 2010), where ``AUROC_b`` repeats the whole procedure
      (new stratified folds, refitted probes) on the ``b``-th permutation of
      the labels; the same permutations serve every node and class. The
      smallest possible p-value is ``1 / (1 + n_permutations)`` (0.01 at the
      default 99). NaN when ``n_permutations == 0``.
    - ``auroc_in_sample``: NetworkVI's number, probe fitted and scored on all
      cells (:func:`in_sample_logits`); optimistic, more so for wider nodes.
    - ``random_node_mean``, ``random_node_q95``, ``random_node_p``: the
      out-of-fold AUROC of ``n_random`` random sets of the layer's units of
      the node's width (same folds; drawn per width, so nodes of equal width
      share them): mean, 95th percentile, and ``(1 + #{random >=
      node}) / (1 + n_random)``. NaN when ``n_random == 0``.
    - ``untrained_auroc``: the out-of-fold AUROC of the same node on
      ``untrained_activations`` (same folds); NaN when not given.

    Parameters
    ----------
    activations : numpy.ndarray, shape=(N, U), float64
    codes : numpy.ndarray, shape=(N,), int
        Class codes in ``[0, n_classes)``; every class has at least
        ``n_folds`` cells.
    n_classes : int
    node_names, index
        From :func:`node_index`.
    n_folds : int
        Default 5.
    C : float
        Inverse L2 strength of the probes. Default 1.0.
    n_permutations : int
        Label permutations, ``>= 0``. Default 99.
    n_bootstrap : int
        Resamples for the CIs, ``>= 1``. Default 1000.
    confidence : float
        CI level in (0, 1). Default 0.95.
    n_random : int
        Random width-matched nodes per width, ``>= 0``. Default 20.
    untrained_activations : numpy.ndarray, shape=(N, U), optional
    random_state : int or None
        Entropy of every stream (:data:`SEED_STREAMS`). Default 0.
    max_iter, batch_size
        See :func:`cross_validated_logits`.
    show_progress : bool
        A tqdm bar over the nodes. Default False.

    Returns
    -------
    table : dict of numpy.ndarray, each shape=(n_nodes, n_classes), float64
        ``auroc_oof, ci_low, ci_high, p_value, auroc_in_sample,
        random_node_mean, random_node_q95, random_node_p, untrained_auroc``.
    fit : NodeProbeFit
        The probes of the observed labels.
    """
    entropy = probe_entropy(random_state)
    codes = np.asarray(codes, dtype=np.int64)
    acts = np.asarray(activations, dtype=np.float64)
    n, n_units = acts.shape
    fold_seed = _fold_seed(entropy)
    folds = stratified_folds(codes, n_folds, fold_seed)
    classes = np.arange(n_classes)
    positive = codes[None, :] == classes[:, None]  # (C, N)
    weights = bootstrap_weights(codes, n_classes, n_bootstrap, entropy)
    perm_codes = np.empty((n_permutations, n), dtype=np.int64)
    perm_folds = np.empty((n_permutations, n), dtype=np.int64)
    rng = probe_rng(entropy, "permutations")
    for b in range(n_permutations):
        perm_codes[b] = codes[rng.permutation(n)]
        perm_folds[b] = stratified_folds(perm_codes[b], n_folds, fold_seed)
    perm_positive = perm_codes[:, None, :] == classes[None, :, None]  # (B, C, N)

    n_nodes = len(index)
    shape = (n_nodes, n_classes)
    table = {k: np.full(shape, np.nan) for k in (
        "auroc_oof", "ci_low", "ci_high", "p_value", "auroc_in_sample", "random_node_mean",
        "random_node_q95", "random_node_p", "untrained_auroc")}
    logits_all = np.empty((n_nodes, n_classes, n))
    means, scales, coefs = [], [], []
    random_cache: dict[int, np.ndarray] = {}
    for j in _progress(range(n_nodes), show_progress, "node probes"):
        x = acts[:, index[j]]
        logits, probes = cross_validated_logits(x, codes, folds, n_classes, n_folds, C,
                                                max_iter, batch_size, return_probes=True)
        logits_all[j] = logits[0]
        means.append(probes["mean"][0])
        scales.append(probes["scale"][0])
        coefs.append(probes["coef"][0])
        obs = auroc(logits[0], positive)  # (C,)
        table["auroc_oof"][j] = obs
        for c in range(n_classes):
            boot = bootstrap_auroc(logits[0, c], positive[c], weights)
            table["ci_low"][j, c], table["ci_high"][j, c] = percentile_interval(boot, confidence)
        if n_permutations:
            null = auroc(cross_validated_logits(x, perm_codes, perm_folds, n_classes, n_folds, C,
                                                max_iter, batch_size), perm_positive)  # (B, C)
            hits = (null >= obs[None, :] - 1e-12).sum(0)
            table["p_value"][j] = (1.0 + hits) / (1.0 + n_permutations)
        table["auroc_in_sample"][j] = auroc(in_sample_logits(x, codes, n_classes, C, max_iter),
                                            positive)
        width = len(index[j])
        if n_random:
            if width not in random_cache:
                draw = probe_rng(entropy, "random_nodes", width)
                subsets = np.stack([np.sort(draw.choice(n_units, width, replace=False))
                                    for _ in range(n_random)])
                random_cache[width] = auroc(cross_validated_logits(
                    acts[:, subsets].transpose(1, 0, 2), codes, folds, n_classes, n_folds, C,
                    max_iter, batch_size), positive)  # (R, C)
            rnd = random_cache[width]
            table["random_node_mean"][j] = rnd.mean(0)
            table["random_node_q95"][j] = np.quantile(rnd, 0.95, axis=0)
            table["random_node_p"][j] = (1.0 + (rnd >= obs - 1e-12).sum(0)) / (1.0 + n_random)
        if untrained_activations is not None:
            xu = np.asarray(untrained_activations, dtype=np.float64)[:, index[j]]
            table["untrained_auroc"][j] = auroc(cross_validated_logits(
                xu, codes, folds, n_classes, n_folds, C, max_iter, batch_size)[0], positive)
    fit = NodeProbeFit(node_names=list(node_names), index=list(index), codes=codes,
                       n_classes=n_classes, folds=folds, n_folds=n_folds, C=float(C),
                       mean=means, scale=scales, coef=coefs, logits=logits_all, activations=acts,
                       entropy=entropy, n_bootstrap=n_bootstrap, confidence=float(confidence),
                       max_iter=max_iter)
    return table, fit
