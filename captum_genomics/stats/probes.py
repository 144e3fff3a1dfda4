"""Held-out node importances: cross-validated logistic-regression probes on a layer's units.

The importance of a *node* (a named group of a layer's units, e.g. the units
of one Gene Ontology term in a GO-structured layer) for a class is how well a
logistic-regression probe on the node's activations separates that class
from the rest (DCell: Ma et al. 2018, Nat Methods 15:290; NetworkVI: Arnoldt
et al. 2024/2025). NetworkVI reports the AUROC on the cells the probe was
fitted on; here every number is held out:

- :func:`stratified_folds`: one fold per cell (scikit-learn ``StratifiedKFold``,
  shuffled, seeded), shared by every node and class.
- :func:`fit_logistic`: L2-regularized logistic regression, scikit-learn's
  objective ``0.5 ||w||^2 + C sum_i loss_i`` (intercept unpenalized), fitted by
  damped Newton steps for a whole batch of problems at once (folds x
  permutations x classes), so that a permutation test that refits every probe
  stays affordable. Equal to ``LogisticRegression(C=C)`` at tight tolerance.
- :func:`cross_validated_logits`: out-of-fold logits of one-vs-rest probes,
  with the features standardized on each training fold (as
  ``make_pipeline(StandardScaler(), LogisticRegression(C=C))``).
- :func:`auroc`, :func:`bootstrap_weights`, :func:`bootstrap_auroc`: the
  AUROC (Mann-Whitney, ties count 1/2), and its stratified bootstrap over cells
  as resampling counts, so that the AUROCs of every node and class, and their
  paired differences, are computed on the same resamples.
- :func:`~captum_genomics.stats.probe_statistics.node_probe_statistics`
  runs them per (node, class): pooled out-of-fold AUROC, percentile bootstrap
  CI, label-permutation p-value ``(1 + b) / (1 + B)`` (Phipson & Smyth 2010),
  the in-sample AUROC (NetworkVI's number, as a diagnostic), width-matched
  random nodes and an untrained model's activations.

Seeds: ``random_state`` is the entropy of :class:`numpy.random.SeedSequence`;
each stream has its own spawn key (:data:`SEED_STREAMS`), so changing the
permutation count does not change the folds or the bootstrap.
"""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor

from captum_genomics._utils.checks import check_positive_int

__all__ = [
    "SEED_STREAMS",
    "ProbeConvergenceWarning",
    "auroc",
    "bootstrap_auroc",
    "bootstrap_weights",
    "cross_validated_logits",
    "fit_logistic",
    "check_confidence",
    "in_sample_logits",
    "node_index",
    "percentile_interval",
    "probe_entropy",
    "probe_rng",
    "stratified_folds",
]

SEED_STREAMS = {"folds": 0, "permutations": 1, "bootstrap": 2, "random_nodes": 3,
                "untrained": 4}
"""Spawn key of each random stream: ``SeedSequence(random_state, spawn_key=(key, ...))``.

``"folds"``: the ``random_state`` of ``StratifiedKFold`` (the first 32-bit word);
``"permutations"``: ``Generator.permutation(N)``, once per permutation;
``"bootstrap"``: per class ``Generator.integers(0, n_k, (B, n_k))``;
``"random_nodes"`` (key ``(3, width)``): ``Generator.choice(U, width, replace=False)``
per draw; ``"untrained"``: the torch seed of a re-initialized copy.
"""

_MAX_ELEMENTS = 1 << 23
"""float64 elements of the largest temporary of one batch of probe fits (64 MiB)."""


class ProbeConvergenceWarning(UserWarning):
    """A logistic-regression probe did not converge within ``max_iter`` Newton steps."""


# ----------------------------------------------------------------------------- seeds
def probe_entropy(random_state: Any) -> int:
    """The entropy behind every stream: ``random_state`` itself, or fresh entropy for None.

    Raises
    ------
    TypeError, ValueError
        If ``random_state`` is not None or an int in ``[0, 2**64)``.
    """
    from captum_genomics._utils.checks import check_random_state

    seed = check_random_state(random_state)
    return int(np.random.SeedSequence().entropy) if seed is None else seed


def probe_rng(entropy: int, stream: str, *key: int) -> np.random.Generator:
    """The generator of one stream (:data:`SEED_STREAMS`), e.g. ``probe_rng(0, "bootstrap")``."""
    return np.random.default_rng(np.random.SeedSequence(entropy,
                                                        spawn_key=(SEED_STREAMS[stream], *key)))


def _fold_seed(entropy: int) -> int:
    return int(np.random.SeedSequence(entropy, spawn_key=(SEED_STREAMS["folds"],))
               .generate_state(1)[0])


# ----------------------------------------------------------------------------- nodes
def node_index(nodes: Any, n_units: int, name: str = "nodes") -> tuple[list[str], list[np.ndarray]]:
    """Node names and unit indices from a mapping ``name -> units``.

    Parameters
    ----------
    nodes : Mapping[str, slice | Sequence[int] | bool mask]
        For each node, its units among the layer's ``n_units`` output units
        (trailing axes flattened in C order): a ``slice`` (``start``/``stop``
        in ``[0, n_units]``, positive step), a sequence, 1-D array or tensor of
        distinct unit indices in ``[0, n_units)``, or a boolean mask of length
        ``n_units`` (e.g. a GO term's row of a gene-set mask, for a layer with
        one unit per term-gene connection). Nodes may overlap.
    n_units : int
        ``U``, the layer's units per example.
    name : str
        The argument name used in messages. Default ``"nodes"``.

    Returns
    -------
    names : list of str
    index : list of numpy.ndarray of int64
        Sorted unit indices of each node, non-empty.

    Raises
    ------
    TypeError
        If ``nodes`` is not a mapping, or a node is not one of the forms above.
    ValueError
        If ``nodes`` is empty, a slice or index is out of range, a mask has
        the wrong length, a node has no unit or a repeated unit, or two names
        have the same string form.
    """
    if not isinstance(nodes, Mapping):
        raise TypeError(
            f"`{name}` must be a mapping node name -> units (slice, index sequence or boolean "
            f"mask over the layer's {n_units} units), got {type(nodes).__name__}.")
    if not nodes:
        raise ValueError(f"`{name}` is empty; name at least one node.")
    names: list[str] = []
    index: list[np.ndarray] = []
    for key, spec in nodes.items():
        label = f"{name}[{key!r}]"
        if isinstance(spec, slice):
            for part in ("start", "stop"):
                v = getattr(spec, part)
                if v is not None and (isinstance(v, bool) or not isinstance(v, numbers.Integral)
                                      or not 0 <= int(v) <= n_units):
                    raise ValueError(
                        f"`{label}` = {spec!r} is out of range for a layer with {n_units} units: "
                        f"`{part}` must be in [0, {n_units}].")
            if spec.step is not None and (not isinstance(spec.step, numbers.Integral)
                                          or spec.step < 1):
                raise ValueError(f"`{label}` = {spec!r} must have a positive step.")
            idx = np.arange(n_units, dtype=np.int64)[spec]
        else:
            if isinstance(spec, Tensor):
                arr = spec.detach().cpu().numpy()
            elif isinstance(spec, (str, bytes)) or not hasattr(spec, "__len__"):
                raise TypeError(
                    f"`{label}` must be a slice, a sequence of unit indices or a boolean mask, "
                    f"got {type(spec).__name__}.")
            else:
                arr = np.asarray(spec)
            if arr.ndim != 1:
                raise ValueError(f"`{label}` must be one-dimensional, got shape {arr.shape}.")
            if arr.dtype == bool:
                if arr.shape[0] != n_units:
                    raise ValueError(
                        f"`{label}` is a boolean mask of length {arr.shape[0]}; the layer has "
                        f"{n_units} units.")
                idx = np.flatnonzero(arr).astype(np.int64)
            elif arr.size == 0:
                idx = np.zeros(0, dtype=np.int64)
            elif arr.dtype.kind not in "iu":
                raise TypeError(
                    f"`{label}` must hold integer unit indices or booleans, got dtype {arr.dtype}.")
            else:
                if int(arr.min()) < 0 or int(arr.max()) >= n_units:
                    raise ValueError(
                        f"`{label}` has unit indices in [{int(arr.min())}, {int(arr.max())}], out "
                        f"of range for a layer with {n_units} units (valid: 0..{n_units - 1}).")
                idx = np.sort(arr.astype(np.int64))
                if np.any(idx[1:] == idx[:-1]):
                    raise ValueError(f"`{label}` lists a unit more than once.")
        if idx.size == 0:
            raise ValueError(f"`{label}` selects no unit.")
        if str(key) in names:
            raise ValueError(f"`{name}` has two nodes named {str(key)!r}.")
        names.append(str(key))
        index.append(idx)
    return names, index


# ----------------------------------------------------------------------------- folds
def stratified_folds(codes: np.ndarray, n_folds: int, random_state: int,
                     name: str = "labels") -> np.ndarray:
    """The fold of each cell: ``StratifiedKFold(n_folds, shuffle=True, random_state)``.

    Parameters
    ----------
    codes : numpy.ndarray, shape=(N,), int
        Class code of each cell.
    n_folds : int
        At least 2; every class needs at least ``n_folds`` cells.
    random_state : int
        In ``[0, 2**32)`` (scikit-learn's range).
    name : str
        The labels' argument name, for the message.

    Returns
    -------
    numpy.ndarray, shape=(N,), int64
        ``folds[i]`` is the fold in which cell ``i`` is held out.

    Raises
    ------
    ValueError
        If a class has fewer cells than ``n_folds``.
    """
    from sklearn.model_selection import StratifiedKFold

    check_positive_int(n_folds, "n_folds", minimum=2)
    counts = np.bincount(codes)
    small = np.flatnonzero((counts > 0) & (counts < n_folds))
    if small.size:
        raise ValueError(
            f"Class code {int(small[0])} of `{name}` has {int(counts[small[0]])} cell(s), fewer "
            f"than `n_folds`={n_folds}: every class needs at least one cell per fold. Lower "
            f"`n_folds` or drop the class.")
    folds = np.empty(len(codes), dtype=np.int64)
    splitter = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=int(random_state))
    for k, (_, test) in enumerate(splitter.split(np.zeros((len(codes), 1)), codes)):
        folds[test] = k
    return folds


# ----------------------------------------------------------------------------- probes
def _standardize(x: Tensor, train: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """``x (m, N, d)``, ``train (m, K, N)`` -> ``(m, K, N, d)`` standardized, mean, scale.

    ``mean`` and ``scale`` have shape ``(m, K, d)``.

    Mean and population variance over the training rows, as scikit-learn's
    ``StandardScaler``; features constant on the training rows get scale 1.
    """
    w = train.to(x.dtype)
    n = w.sum(-1, keepdim=True)  # (m, K, 1)
    mean = (w @ x) / n  # (m, K, d)
    centred = x.unsqueeze(1) - mean.unsqueeze(2)  # (m, K, N, d)
    var = (w.unsqueeze(-1) * centred.square()).sum(-2) / n
    eps = torch.finfo(x.dtype).eps
    constant = var <= n * eps * var + (n * mean * eps).square()
    scale = torch.where(constant, torch.ones_like(var), var.sqrt())
    return centred / scale.unsqueeze(2), mean, scale


def fit_logistic(x: Tensor, weights: Tensor, targets: Tensor, C: float = 1.0,
                 tol: float = 1e-24, max_iter: int = 100) -> Tensor:
    r"""L2-regularized logistic regressions, a batch of problems at once (damped Newton).

    Problem ``(p, c)`` minimizes scikit-learn's objective (``penalty="l2"``,
    unpenalized intercept)::

        f(w, b) = 0.5 ||w||^2 + C sum_i weights[p, i] * (log(1 + exp(z_i)) - t_i z_i),
        z_i = x[p, i] @ w + b,  t_i = targets[p, c, i]

    Newton steps with an Armijo backtracking line search, from ``w = 0`` and
    the intercept at the training prevalence; a problem stops when its
    Newton decrement ``g^T H^-1 g <= tol * (1 + |f|)`` or its Newton step is
    below ``1e-13 (1 + max |theta|)`` (rounding). The objective is
    strictly convex, so the result is the unique minimizer that
    ``LogisticRegression(C=C).fit(x, t, sample_weight=weights)`` approaches
    as its ``tol`` shrinks.

    Parameters
    ----------
    x : Tensor, shape=(P, N, d), float64
        Features of each problem (rows with weight 0 are ignored).
    weights : Tensor, shape=(P, N)
        Row weights (1 = training row, 0 = held out).
    targets : Tensor, shape=(P, C_, N), bool or {0, 1}
        One binary target vector per class (one-vs-rest), sharing ``x``.
    C : float
        Inverse regularization strength, > 0. Default 1.0 (scikit-learn's).
    tol : float
        Relative Newton-decrement tolerance. Default 1e-24.
    max_iter : int
        Newton steps at most. Default 100.

    Returns
    -------
    Tensor, shape=(P, C_, d + 1), float64
        Coefficients, intercept last.

    Warns
    -----
    ProbeConvergenceWarning
        If a problem has not converged after ``max_iter`` steps.
    """
    p, n, d = x.shape
    n_targets = targets.shape[1]
    xt = torch.cat([x, x.new_ones(p, n, 1)], -1)  # (P, N, D)
    xt_t = xt.transpose(1, 2)  # (P, D, N)
    w = weights.to(x.dtype).unsqueeze(1)  # (P, 1, N)
    t = targets.to(x.dtype)
    r = x.new_ones(d + 1)
    r[-1] = 0.0
    prevalence = ((w * t).sum(-1) / w.sum(-1)).clamp(1e-9, 1 - 1e-9)
    theta = x.new_zeros(p, n_targets, d + 1)
    theta[..., -1] = torch.logit(prevalence)

    def objective(th: Tensor, z: Tensor) -> Tensor:
        loss = (w * (torch.logaddexp(z, torch.zeros_like(z)) - t * z)).sum(-1)
        return 0.5 * (r * th.square()).sum(-1) + C * loss

    z = theta @ xt_t  # (P, C_, N)
    f = objective(theta, z)
    dim = d + 1
    # the Hessian sum_i s_i x_i x_i^T: from the rows' outer products (P, N, D^2), computed once,
    # when they are no larger than the per-class weighted rows (P, C_, D, N) they replace
    outer = (xt.unsqueeze(-1) * xt.unsqueeze(-2)).reshape(p, n, dim * dim) \
        if dim <= 4 * n_targets else None
    converged = False
    for _ in range(max_iter):
        mu = torch.sigmoid(z)
        g = r * theta + C * ((w * (mu - t)) @ xt)  # (P, C_, D)
        s = C * w * mu * (1.0 - mu)  # (P, C_, N)
        if outer is not None:
            h = (s @ outer).reshape(p, n_targets, dim, dim)
        else:
            h = (xt_t.unsqueeze(1) * s.unsqueeze(2)) @ xt.unsqueeze(1)  # (P, C_, D, D)
        h.diagonal(dim1=-2, dim2=-1).add_(r)
        step = torch.linalg.solve(h, g.unsqueeze(-1)).squeeze(-1)
        dec = (g * step).sum(-1)
        active = (dec > tol * (1.0 + f.abs())) & (
            step.abs().amax(-1) > 1e-13 * (1.0 + theta.abs().amax(-1)))
        if not bool(active.any()):
            converged = True
            break
        a = torch.ones_like(f)
        for _ in range(60):
            cand = theta - a.unsqueeze(-1) * step
            zc = cand @ xt_t
            fc = objective(cand, zc)
            # a full Newton step that does not raise f beyond rounding is taken (near the optimum)
            ok = (fc <= f - 1e-4 * a * dec) | ((a == 1.0) & (fc <= f + 8 * 2.2e-16 * f.abs()))
            ok |= ~active
            if bool(ok.all()):
                break
            a = torch.where(ok, a, 0.5 * a)
        upd = active.unsqueeze(-1)
        theta = torch.where(upd, cand, theta)
        z = torch.where(upd, zc, z)
        f = torch.where(active, fc, f)
    if not converged:
        warnings.warn(
            f"Logistic-regression probes did not converge in {max_iter} Newton steps (C={C}); "
            "raise `max_iter` or lower `C`.", ProbeConvergenceWarning, stacklevel=2)
    return theta


def _as_versions(values: np.ndarray, n_versions: int) -> np.ndarray:
    values = np.asarray(values)
    return np.broadcast_to(values, (n_versions, values.shape[-1])) if values.ndim == 1 else values


def cross_validated_logits(
    features: np.ndarray | Tensor,
    codes: np.ndarray,
    folds: np.ndarray,
    n_classes: int,
    n_folds: int,
    C: float = 1.0,
    max_iter: int = 100,
    batch_size: int | None = None,
    return_probes: bool = False,
) -> np.ndarray | tuple[np.ndarray, dict[str, np.ndarray]]:
    """Out-of-fold logits of one-vs-rest logistic-regression probes, for many versions at once.

    A *version* is one (features, labels, folds) triple: the observed labels,
    a label permutation with its own folds, or a random unit subset. For
    version ``v``, fold ``k`` and class ``c`` a probe is fitted on the cells
    with ``folds[v] != k``, features standardized with the training rows'
    mean and population s.d. (``StandardScaler``), target ``codes[v] == c``,
    by :func:`fit_logistic`; it scores the held-out cells ``folds[v] == k``.
    Equal to ``make_pipeline(StandardScaler(), LogisticRegression(C=C))``
    refitted per fold and class, with ``decision_function`` on the held-out
    cells.

    Parameters
    ----------
    features : array or Tensor, shape=(N, d) or (V, N, d)
        Shared by every version, or one per version.
    codes, folds : numpy.ndarray, shape=(N,) or (V, N), int
        Class codes in ``[0, n_classes)`` and folds in ``[0, n_folds)``.
    n_classes, n_folds : int
    C : float
        Inverse L2 strength. Default 1.0.
    max_iter : int
        Newton steps at most. Default 100.
    batch_size : int, optional
        Versions fitted together (memory). Default None: about 64 MiB of
        temporaries. Results do not depend on it.
    return_probes : bool
        Also return the fitted probes. Default False.

    Returns
    -------
    logits : numpy.ndarray, shape=(V, n_classes, N), float64
        ``logits[v, c, i]``: the probe of fold ``folds[v, i]`` and class ``c``
        on cell ``i`` (``V = 1`` when nothing has a version axis).
    probes : dict, only with ``return_probes``
        ``"mean"``, ``"scale"`` ``(V, n_folds, d)``, ``"coef"`` ``(V, n_folds,
        n_classes, d + 1)`` (intercept last): the standardization and the
        coefficients of each (version, fold, class).
    """
    x = torch.as_tensor(np.asarray(features, dtype=np.float64))
    codes, folds = np.asarray(codes), np.asarray(folds)
    n, d = x.shape[-2:]
    n_versions = max(x.shape[0] if x.dim() == 3 else 1,
                     codes.shape[0] if codes.ndim == 2 else 1,
                     folds.shape[0] if folds.ndim == 2 else 1)
    codes_v = _as_versions(codes, n_versions)
    folds_v = _as_versions(folds, n_versions)
    per_version = n_folds * n * (n_classes * (d + 2) + min((d + 1) ** 2, 4 * n_classes * (d + 1))
                                 + 2 * d)
    step = batch_size or max(1, _MAX_ELEMENTS // per_version)
    logits = np.empty((n_versions, n_classes, n), dtype=np.float64)
    probes: dict[str, list[np.ndarray]] = {"mean": [], "scale": [], "coef": []}
    fold_ids = torch.arange(n_folds)
    for start in range(0, n_versions, step):
        stop = min(n_versions, start + step)
        m = stop - start
        xv = x.expand(m, n, d) if x.dim() == 2 else x[start:stop]
        f = torch.tensor(folds_v[start:stop], dtype=torch.int64)
        y = torch.tensor(codes_v[start:stop], dtype=torch.int64)
        train = f.unsqueeze(1) != fold_ids.view(1, -1, 1)  # (m, K, N)
        z, mean, scale, coef = _fit_versions(xv, train, y, n_classes, C, max_iter)
        own = f.view(m, 1, 1, n).expand(m, 1, n_classes, n)
        logits[start:stop] = torch.gather(z, 1, own).squeeze(1).numpy()
        if return_probes:
            probes["mean"].append(mean.numpy())
            probes["scale"].append(scale.numpy())
            probes["coef"].append(coef.numpy())
    if not return_probes:
        return logits
    return logits, {k: np.concatenate(v) for k, v in probes.items()}


def _fit_versions(xv: Tensor, train: Tensor, y: Tensor, n_classes: int, C: float,
                  max_iter: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Fit ``(m, K, n_classes)`` probes; logits of every cell ``(m, K, n_classes, N)``."""
    m, n_folds, n = train.shape
    d = xv.shape[-1]
    targets = y.unsqueeze(1) == torch.arange(n_classes).view(1, -1, 1)  # (m, C, N)
    xs, mean, scale = _standardize(xv, train)
    coef = fit_logistic(xs.reshape(m * n_folds, n, d), train.reshape(m * n_folds, n),
                        targets.unsqueeze(1).expand(m, n_folds, n_classes, n)
                        .reshape(m * n_folds, n_classes, n), C=C, max_iter=max_iter)
    coef = coef.reshape(m, n_folds, n_classes, d + 1)
    z = xs @ coef[..., :-1].transpose(-1, -2) + coef[..., -1].unsqueeze(2)  # (m, K, N, C)
    return z.transpose(-1, -2), mean, scale, coef


def in_sample_logits(features: np.ndarray, codes: np.ndarray, n_classes: int, C: float = 1.0,
                     max_iter: int = 100) -> np.ndarray:
    """Logits of one-vs-rest probes fitted on all cells and scored on the same cells.

    NetworkVI's in-sample evaluation, kept as a diagnostic: standardized on
    all cells, ``LogisticRegression(C=C)`` per class, scored on its own
    training cells.

    Parameters
    ----------
    features : numpy.ndarray, shape=(N, d)
    codes : numpy.ndarray, shape=(N,)
    n_classes : int
    C : float
    max_iter : int

    Returns
    -------
    numpy.ndarray, shape=(n_classes, N), float64
    """
    x = torch.as_tensor(np.asarray(features, dtype=np.float64)).unsqueeze(0)
    y = torch.from_numpy(np.asarray(codes, dtype=np.int64)).unsqueeze(0)
    train = torch.ones(1, 1, x.shape[1], dtype=torch.bool)
    return _fit_versions(x, train, y, n_classes, C, max_iter)[0][0, 0].numpy()


# ----------------------------------------------------------------------------- AUROC
def auroc(scores: np.ndarray, positive: np.ndarray) -> np.ndarray:
    """The AUROC of scores for a positive class, over the last axis (ties count 1/2).

    ``(sum of the positives' mid-ranks - n1 (n1 + 1) / 2) / (n1 n0)``, the
    Mann-Whitney form; equal to ``sklearn.metrics.roc_auc_score``.

    Parameters
    ----------
    scores : numpy.ndarray, shape=(..., N)
    positive : numpy.ndarray of bool, broadcastable to ``scores``

    Returns
    -------
    numpy.ndarray, shape=scores.shape[:-1], float64
        NaN where a row has no positive or no negative.
    """
    from scipy.stats import rankdata

    scores = np.asarray(scores, dtype=np.float64)
    pos = np.broadcast_to(np.asarray(positive, dtype=bool), scores.shape)
    ranks = rankdata(scores, axis=-1)
    n1 = pos.sum(-1).astype(np.float64)
    n0 = scores.shape[-1] - n1
    with np.errstate(invalid="ignore", divide="ignore"):
        return ((ranks * pos).sum(-1) - n1 * (n1 + 1) / 2) / (n1 * n0)


def bootstrap_weights(codes: np.ndarray, n_classes: int, n_bootstrap: int,
                      entropy: int) -> np.ndarray:
    """Stratified bootstrap resamples of the cells, as counts.

    For each class ``k`` in increasing order, with the generator
    ``probe_rng(entropy, "bootstrap")``: ``draws = integers(0, n_k, (B,
    n_k))``; resample ``b`` holds the class's ``j``-th cell (in index order)
    ``draws[b].count(j)`` times. Every resample keeps each class's size, so
    every one-vs-rest AUROC is defined on every resample.

    Parameters
    ----------
    codes : numpy.ndarray, shape=(N,), int
    n_classes : int
    n_bootstrap : int
        ``B``, at least 1.
    entropy : int
        See :func:`probe_entropy`.

    Returns
    -------
    numpy.ndarray, shape=(B, N), int32
        ``weights[b, i]``: how often cell ``i`` is in resample ``b``
        (memory ``4 B N`` bytes).
    """
    rng = probe_rng(entropy, "bootstrap")
    n = len(codes)
    weights = np.zeros((n_bootstrap, n), dtype=np.int32)
    offsets = (np.arange(n_bootstrap, dtype=np.int64) * n)[:, None]
    for k in range(n_classes):
        members = np.flatnonzero(codes == k)
        draws = rng.integers(0, len(members), size=(n_bootstrap, len(members)))
        flat = (offsets + members[draws]).ravel()
        weights += np.bincount(flat, minlength=n_bootstrap * n).reshape(n_bootstrap, n) \
            .astype(np.int32)
    return weights


def bootstrap_auroc(scores: np.ndarray, positive: np.ndarray, weights: np.ndarray,
                    chunk: int = 256) -> np.ndarray:
    """The AUROC on each bootstrap resample, from resampling counts (no copies of the cells).

    For counts ``w`` the AUROC of the resample is ``sum_{i pos, j neg} w_i w_j
    [s_i > s_j] + 0.5 [s_i = s_j]`` over ``W_pos W_neg``: cells are sorted
    once, tie groups summed, and the negatives below each group cumulated,
    for all resamples at once. Equal to ``roc_auc_score(positive[idx],
    scores[idx])`` for the resample's indices ``idx``.

    Parameters
    ----------
    scores : numpy.ndarray, shape=(N,)
    positive : numpy.ndarray, shape=(N,), bool
    weights : numpy.ndarray, shape=(B, N), int
        From :func:`bootstrap_weights`.
    chunk : int
        Resamples per step (memory). Default 256.

    Returns
    -------
    numpy.ndarray, shape=(B,), float64
    """
    scores = np.asarray(scores, dtype=np.float64)
    order = np.argsort(scores, kind="stable")
    s = scores[order]
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
    pos = np.asarray(positive, dtype=bool)[order]
    out = np.empty(weights.shape[0], dtype=np.float64)
    for b0 in range(0, weights.shape[0], chunk):
        w = weights[b0:b0 + chunk][:, order].astype(np.float64)
        gp = np.add.reduceat(w * pos, starts, axis=1)
        gn = np.add.reduceat(w * ~pos, starts, axis=1)
        below = np.cumsum(gn, axis=1) - gn
        with np.errstate(invalid="ignore", divide="ignore"):
            out[b0:b0 + chunk] = (gp * (below + 0.5 * gn)).sum(1) / (gp.sum(1) * gn.sum(1))
    return out


def percentile_interval(values: np.ndarray, confidence: float, axis: int = -1
                        ) -> tuple[np.ndarray, np.ndarray]:
    """The percentile bootstrap interval: quantiles ``(1 -+ confidence) / 2`` along ``axis``.

    Returns
    -------
    low, high : numpy.ndarray
        ``numpy.quantile`` (linear interpolation), NaN ignored.
    """
    lo = (1.0 - confidence) / 2.0
    q = np.nanquantile(values, [lo, 1.0 - lo], axis=axis)
    return q[0], q[1]


def check_confidence(confidence: Any, name: str = "confidence") -> float:
    """Raise ``ValueError`` unless ``confidence`` is a number in (0, 1); return it."""
    if isinstance(confidence, bool) or not isinstance(confidence, numbers.Real) or not (
            0.0 < float(confidence) < 1.0) or math.isnan(float(confidence)):
        raise ValueError(f"`{name}` must be a number in the open interval (0, 1), got "
                         f"{confidence!r}.")
    return float(confidence)
