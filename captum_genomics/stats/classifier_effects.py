"""Effects of head ablation on a classifier, per group, with a paired sign-flip test.

The functions here know nothing about models or heads: they take the logits
of the unablated classifier ``(N, C)`` and of ``V`` ablated variants of it
``(V, N, C)``, the true classes ``(N,)`` and one group code per example, and
return tables over (metric, variant, group).

- :func:`classifier_metrics`: per example, the target logit, the probability
  of the true class and whether the prediction is correct, for multi-class
  logits (softmax, argmax) or a single binary logit (sigmoid, ``logit > 0``).
- :func:`sign_flip_test`: within each group, a paired sign-flip
  (randomization) test of per-example differences: exact over all ``2**n``
  sign vectors when ``2**n <= n_permutations``, else ``n_permutations``
  seeded random ones with ``p = (1 + b) / (1 + n_permutations)``.
- :func:`classifier_effects`: the effect of each variant in each group,
  ``mean(full - ablated)`` per metric, its sign-flip p-value and the
  Benjamini-Hochberg q-value over all (variant, group) tests of that metric.

Why a sign-flip test. The question is whether ablating a head changes the
classifier's output on the group's examples: each example is seen twice, by
the full and by the ablated model, so the comparison is paired. Under the null
hypothesis that ablation does not change the metric's distribution on the
group (the full and ablated values of each example are exchangeable), every
per-example difference ``d_i = full_i - ablated_i`` is as likely to be
``+d_i`` as ``-d_i``, independently across examples, so the sum of the
differences under random sign flips is the exact null distribution of the
observed sum (Fisher 1935, "The Design of Experiments", section 21; Pitman
1937; Good 2005, "Permutation, Parametric and Bootstrap Tests of Hypotheses",
section 3.1). This is the approximate randomization test used to compare two
classifiers on the same test set (Noreen 1989, "Computer-Intensive Methods
for Testing Hypotheses"; Dror et al. 2018, ACL, "The Hitchhiker's Guide to
Testing Statistical Significance in Natural Language Processing"); on the
correctness differences ``d_i in {-1, 0, 1}`` of the accuracy it is the exact
McNemar (sign) test of the discordant examples (McNemar 1947). Zero
differences stay zero under a flip. The permutation scheme of the
explained-variance method (:func:`~captum_genomics.stats.permutation.permutation_test`,
shuffling predictions against observations) tests a different null, that the
predictions carry no information about the observations, and does not apply.

Random sign vectors come from a ``torch.Generator`` seeded with
``random_state`` (the same seed gives bit-identical p-values; the same sign
vectors serve every metric and variant of a group, as the permutations of the
explained-variance test do); the Monte-Carlo p-value is that of Phipson &
Smyth (2010), never 0.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor

from captum_genomics._utils.checks import check_finite, check_positive_int
from captum_genomics.stats.multiple_testing import adjust_p_values
from captum_genomics.stats.permutation import TIE_RTOL, _check_seed

__all__ = [
    "ALTERNATIVES",
    "METRICS",
    "ClassifierEffects",
    "SignFlipResult",
    "classifier_effects",
    "classifier_metrics",
    "sign_flip_test",
]

METRICS = ("target_logit", "true_class_probability", "accuracy")
"""The metrics of :func:`classifier_metrics`, in the order of its first axis."""

ALTERNATIVES = ("two-sided", "greater", "less")
"""Alternative hypotheses of :func:`sign_flip_test`, as in ``scipy.stats``."""

_DEFAULT_ELEMENTS = 1 << 22
"""Elements (float64) of a batch of flipped statistics when ``batch_size`` is None (32 MiB)."""


# ----------------------------------------------------------------------------- checks
def _float64(x: Any, name: str) -> Tensor:
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(x)
    if not isinstance(x, Tensor):
        raise TypeError(f"`{name}` must be a torch.Tensor or numpy array, got {type(x).__name__}.")
    if x.is_complex() or x.dtype == torch.bool or not x.is_floating_point():
        raise TypeError(f"`{name}` must hold floating-point values, got dtype {x.dtype}.")
    x = x.detach()
    check_finite(x, name)
    return x.to(torch.float64)


def _classes(x: Any, n: int, n_classes: int, name: str) -> Tensor:
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(x)
    if not isinstance(x, Tensor):
        raise TypeError(f"`{name}` must be a torch.Tensor or numpy array, got {type(x).__name__}.")
    if x.is_floating_point() or x.is_complex():
        raise TypeError(f"`{name}` must hold integer classes, got dtype {x.dtype}.")
    if tuple(x.shape) != (n,):
        raise ValueError(f"`{name}` must have shape (N,) = ({n},), got {tuple(x.shape)}.")
    x = x.detach().to(torch.int64)
    hi = max(n_classes, 2)
    if x.numel() and (int(x.min()) < 0 or int(x.max()) >= hi):
        raise ValueError(
            f"`{name}` must hold classes in [0, {hi}), got values in [{int(x.min())}, "
            f"{int(x.max())}].")
    return x


def _check_alternative(alternative: Any) -> str:
    if alternative not in ALTERNATIVES:
        raise ValueError(f"`alternative` must be one of {ALTERNATIVES}, got {alternative!r}.")
    return alternative


def _check_codes(codes: Any, n: int, n_groups: int) -> Tensor:
    check_positive_int(n_groups, "n_groups")
    if isinstance(codes, np.ndarray):
        codes = torch.from_numpy(codes)
    if not isinstance(codes, Tensor):
        raise TypeError(
            f"`codes` must be an int64 tensor of shape (N,) (see `encode_groups`), got "
            f"{type(codes).__name__}.")
    if codes.is_floating_point() or codes.is_complex() or codes.dtype == torch.bool:
        raise TypeError(f"`codes` must be an integer tensor, got dtype {codes.dtype}.")
    if tuple(codes.shape) != (n,):
        raise ValueError(f"`codes` must have shape (N,) = ({n},), got {tuple(codes.shape)}.")
    codes = codes.to(torch.int64)
    if codes.numel() and (int(codes.min()) < 0 or int(codes.max()) >= n_groups):
        raise ValueError(
            f"`codes` must lie in [0, n_groups) = [0, {n_groups}), got values in "
            f"[{int(codes.min())}, {int(codes.max())}].")
    return codes


# ----------------------------------------------------------------------------- metrics
def classifier_metrics(logits: Tensor, labels: Tensor, target: Tensor | None = None) -> Tensor:
    """Per-example target logit, true-class probability and correctness of a classifier.

    Multi-class logits ``z`` (``C >= 2``): ``target_logit = z[t]``,
    ``true_class_probability = softmax(z)[y]``, ``accuracy = [argmax(z) == y]``
    (the first maximum on ties, as ``torch.argmax``). A single binary logit
    ``z`` (``C == 1``, the log-odds of class 1): the logit of class ``c`` is
    ``(2c - 1) z`` (``z`` for class 1, ``-z`` for class 0), so
    ``target_logit = (2t - 1) z``, ``true_class_probability = sigmoid((2y - 1) z)``
    and ``accuracy = [(z > 0) == (y == 1)]`` (``z == 0`` predicts class 0).

    Parameters
    ----------
    logits : Tensor, shape=(..., N, C), floating
        Any leading axes (e.g. variants ``V``). ``C == 1``: binary logit.
    labels : Tensor, shape=(N,), integer
        True classes in ``[0, C)`` (``{0, 1}`` for a binary logit).
    target : Tensor, shape=(N,), integer, optional
        The class whose logit is reported, per example. Default None: the
        true class (``labels``).

    Returns
    -------
    Tensor, shape=(3, ..., N), float64
        ``[target_logit, true_class_probability, accuracy]`` (see
        :data:`METRICS`); accuracy is 0.0 or 1.0.

    Raises
    ------
    TypeError
        Non-floating ``logits`` or non-integer ``labels``/``target``.
    ValueError
        NaN/Inf logits, ``logits`` with fewer than two axes, or classes out of
        range.
    """
    z = _float64(logits, "logits")
    if z.dim() < 2:
        raise ValueError(
            f"`logits` must have shape (..., N, C) (C = 1 for a binary logit), got "
            f"{tuple(z.shape)}.")
    n, c = z.shape[-2], z.shape[-1]
    y = _classes(labels, n, c, "labels").to(z.device)
    t = y if target is None else _classes(target, n, c, "target").to(z.device)
    if c == 1:
        logit = z[..., 0]                                       # (..., N)
        sign_t = (2 * t - 1).to(z.dtype)
        sign_y = (2 * y - 1).to(z.dtype)
        tl = sign_t * logit
        prob = torch.sigmoid(sign_y * logit)
        acc = ((logit > 0) == (y == 1)).to(z.dtype)
    else:
        shape = (*z.shape[:-1], 1)
        tl = z.gather(-1, t.view(-1, 1).expand(shape)).squeeze(-1)
        logp = torch.log_softmax(z, dim=-1)
        prob = logp.gather(-1, y.view(-1, 1).expand(shape)).squeeze(-1).exp()
        acc = (z.argmax(-1) == y).to(z.dtype)
    return torch.stack([tl, prob, acc])


# ----------------------------------------------------------------------------- test
class SignFlipResult(NamedTuple):
    """What :func:`sign_flip_test` returns (see there for shapes)."""

    mean: Tensor
    p_value: Tensor
    exact: Tensor
    n: Tensor


def _count(stats: Tensor, observed: Tensor, tol: Tensor, alternative: str) -> Tensor:
    """Per row, how many flipped statistics ``(T, m)`` are at least as extreme as observed."""
    if alternative == "two-sided":
        hit = stats.abs() >= (observed.abs() - tol).unsqueeze(1)
    elif alternative == "greater":
        hit = stats >= (observed - tol).unsqueeze(1)
    else:
        hit = stats <= (observed + tol).unsqueeze(1)
    return hit.sum(1)


def sign_flip_test(differences: Tensor, codes: Tensor, n_groups: int, n_permutations: int,
                   random_state: int | None = 0, min_examples: int = 2,
                   alternative: str = "two-sided", batch_size: int | None = None
                   ) -> SignFlipResult:
    """Paired sign-flip test of per-example differences, within each group.

    For each row ``r`` (e.g. a metric of one variant) and group ``g`` with
    examples ``i = 1..n_g`` (in index order), the statistic is the sum of the
    differences ``S = sum_i d[r, i]``; under a sign vector ``s in {-1, 1}^n_g``
    it is ``S_s = sum_i s_i d[r, i]``. A sign vector counts when ``S_s`` is at
    least as extreme as ``S``: ``|S_s| >= |S|`` (``"two-sided"``),
    ``S_s >= S`` (``"greater"``: the differences are positive) or ``S_s <= S``
    (``"less"``), each up to ``TIE_RTOL * sum_i |d[r, i]|`` (rounding counts
    as a tie, as in :func:`~captum_genomics.stats.permutation.permutation_test`).

    - **Exact** when ``2**n_g <= n_permutations``: all ``2**n_g`` sign
      vectors, the identity included, and ``p = count / 2**n_g`` (at least
      ``2**-n_g``); no random numbers are drawn for the group.
    - **Monte Carlo** otherwise: ``n_permutations`` sign vectors with
      independent fair signs, ``p = (1 + b) / (1 + n_permutations)`` with
      ``b`` the count (Phipson & Smyth 2010; never 0).

    Random signs: a CPU ``torch.Generator`` seeded with ``random_state``
    draws, for each tested Monte-Carlo group in increasing code order, a
    ``(n_permutations, n_g)`` float64 ``torch.rand`` matrix (in chunks of
    ``batch_size`` rows, the same numbers as one draw), and ``s = -1`` where
    the key is below 0.5, else ``+1``. The same sign vectors serve every row;
    the result does not depend on ``batch_size``. All differences zero gives
    ``p = 1``.

    Parameters
    ----------
    differences : Tensor, shape=(T, N) or (N,), floating
        Per-example paired differences (e.g. ``full - ablated``); finite.
    codes : Tensor, shape=(N,), integer
        Group codes in ``[0, n_groups)``
        (:func:`~captum_genomics.stats.explained_variance.encode_groups`).
    n_groups : int
    n_permutations : int
        Sign vectors per group, at least 1; also the threshold of the exact
        enumeration.
    random_state : int or None
        Seed; None draws one from torch's global generator. Default 0.
    min_examples : int
        Groups with fewer examples are skipped (NaN). Default 2.
    alternative : {"two-sided", "greater", "less"}
        Default ``"two-sided"``.
    batch_size : int, optional
        Sign vectors scored per batch (memory ``~ 8 * (T + n_g) * batch_size``
        bytes). Default None: about 2**22 elements per batch.

    Returns
    -------
    SignFlipResult
        ``mean`` (T, n_groups) float64, the mean difference ``S / n_g``;
        ``p_value`` (T, n_groups) float64 in ``(0, 1]``; both NaN for skipped
        groups and shaped ``(n_groups,)`` for 1-D ``differences``. ``exact``
        (n_groups,) bool, True where the group was enumerated exactly; ``n``
        (n_groups,) int64, examples per group.

    Raises
    ------
    TypeError
        Non-floating ``differences``, non-integer ``codes``, a non-int
        ``random_state``.
    ValueError
        Shapes that do not match, NaN/Inf, codes out of range, an unknown
        ``alternative``, or a count that is not a positive integer.
    """
    d = _float64(differences, "differences")
    squeeze = d.dim() == 1
    if squeeze:
        d = d.unsqueeze(0)
    if d.dim() != 2:
        raise ValueError(f"`differences` must have shape (T, N) or (N,), got {tuple(d.shape)}.")
    n_rows, n = d.shape
    codes = _check_codes(codes, n, n_groups).to(d.device)
    check_positive_int(n_permutations, "n_permutations")
    check_positive_int(min_examples, "min_examples")
    if batch_size is not None:
        check_positive_int(batch_size, "batch_size")
    alternative = _check_alternative(alternative)
    gen = torch.Generator(device="cpu").manual_seed(_check_seed(random_state))

    mean = torch.full((n_rows, n_groups), math.nan, dtype=torch.float64, device=d.device)
    p_value = mean.clone()
    exact = torch.zeros(n_groups, dtype=torch.bool)
    counts = torch.bincount(codes, minlength=n_groups)
    order = torch.argsort(codes, stable=True)
    starts = torch.cumsum(counts, 0) - counts
    for g in range(n_groups):
        n_g = int(counts[g])
        if n_g < min_examples:
            continue
        x = d.index_select(1, order[int(starts[g]):int(starts[g]) + n_g])     # (T, n_g)
        observed = x.sum(1)
        tol = TIE_RTOL * x.abs().sum(1)
        mean[:, g] = observed / n_g
        step = batch_size or max(1, _DEFAULT_ELEMENTS // (n_rows + n_g))
        if n_g < 62 and (1 << n_g) <= n_permutations:
            exact[g] = True
            total = 1 << n_g
            bit = torch.arange(n_g, dtype=torch.int64)
            hits = torch.zeros(n_rows, dtype=torch.int64, device=d.device)
            for lo in range(0, total, step):
                index = torch.arange(lo, min(lo + step, total), dtype=torch.int64)
                signs = 1.0 - 2.0 * ((index.unsqueeze(1) >> bit) & 1).to(torch.float64)
                hits += _count(x @ signs.to(d.device).T, observed, tol, alternative)
            p_value[:, g] = hits.to(torch.float64) / total
            continue
        hits = torch.zeros(n_rows, dtype=torch.int64, device=d.device)
        done = 0
        while done < n_permutations:
            m = min(step, n_permutations - done)
            keys = torch.rand((m, n_g), generator=gen, dtype=torch.float64)
            signs = (1.0 - 2.0 * (keys < 0.5).to(torch.float64)).to(d.device)
            hits += _count(x @ signs.T, observed, tol, alternative)
            done += m
        p_value[:, g] = (1.0 + hits.to(torch.float64)) / (1.0 + n_permutations)
    if squeeze:
        mean, p_value = mean[0], p_value[0]
    return SignFlipResult(mean, p_value, exact, counts.cpu())


# ----------------------------------------------------------------------------- effects
class ClassifierEffects(NamedTuple):
    """What :func:`classifier_effects` returns (see there for shapes)."""

    effect: Tensor
    p_value: Tensor
    q_value: Tensor
    full_value: Tensor
    ablated_value: Tensor
    n: Tensor
    exact: Tensor


def _group_means(x: Tensor, codes: Tensor, counts: Tensor, n_groups: int,
                 min_examples: int) -> Tensor:
    """Means over the examples of each group: ``(..., N) -> (..., n_groups)``; NaN if skipped."""
    member = torch.zeros(n_groups, x.shape[-1], dtype=x.dtype, device=x.device)
    member[codes, torch.arange(x.shape[-1], device=x.device)] = 1.0
    out = x @ member.T / counts.clamp(min=1).to(x.dtype)
    return out.masked_fill(counts < min_examples, math.nan)


def classifier_effects(full_logits: Tensor, ablated_logits: Tensor, labels: Tensor,
                       codes: Tensor, n_groups: int, n_permutations: int,
                       target: Tensor | None = None, random_state: int | None = 0,
                       min_examples: int = 2, alternative: str = "two-sided",
                       batch_size: int | None = None) -> ClassifierEffects:
    """Per (metric, variant, group): the drop of a classifier metric under ablation, tested.

    For each metric of :func:`classifier_metrics` (target logit, true-class
    probability, accuracy), variant ``v`` and group ``g``::

        effect[m, v, g] = mean_{i in g} (metric_full[m, i] - metric_v[m, i])

    the drop of the group's mean metric when the variant's head is ablated
    (negative: ablation raises it). Each is tested with the paired sign-flip
    test of the per-example differences (:func:`sign_flip_test`; the same
    sign vectors for all metrics and variants of a group), and the p-values
    are Benjamini-Hochberg adjusted over all (variant, group) tests of one
    metric (:func:`~captum_genomics.stats.multiple_testing.adjust_p_values`).

    Parameters
    ----------
    full_logits : Tensor, shape=(N, C), floating
        The unablated model's logits; ``C == 1``: one binary logit.
    ablated_logits : Tensor, shape=(V, N, C), floating
        The logits under each variant.
    labels : Tensor, shape=(N,), integer
        True classes in ``[0, C)`` (``{0, 1}`` for a binary logit).
    codes : Tensor, shape=(N,), integer
        Group codes in ``[0, n_groups)``.
    n_groups : int
    n_permutations : int
        Sign vectors per group (see :func:`sign_flip_test`).
    target : Tensor, shape=(N,), integer, optional
        The class whose logit drop is reported. Default None: the true class.
    random_state : int or None
        Seed of the sign flips. Default 0.
    min_examples : int
        Groups with fewer examples are skipped (NaN). Default 2.
    alternative : {"two-sided", "greater", "less"}
        ``"greater"``: the metric drops under ablation. Default ``"two-sided"``.
    batch_size : int, optional
        Sign vectors scored per batch. Default None: automatic.

    Returns
    -------
    ClassifierEffects
        ``effect``, ``p_value``, ``q_value``, ``ablated_value`` (3, V,
        n_groups) float64; ``full_value`` (3, n_groups) float64; ``n``
        (n_groups,) int64; ``exact`` (n_groups,) bool. NaN for skipped groups.

    Raises
    ------
    TypeError, ValueError
        As :func:`classifier_metrics` and :func:`sign_flip_test`; ``ValueError``
        if ``ablated_logits`` is not ``(V, N, C)`` for ``full_logits`` ``(N, C)``.
    """
    full = _float64(full_logits, "full_logits")
    ablated = _float64(ablated_logits, "ablated_logits")
    if full.dim() != 2:
        raise ValueError(f"`full_logits` must have shape (N, C), got {tuple(full.shape)}.")
    if ablated.dim() != 3 or tuple(ablated.shape[1:]) != tuple(full.shape):
        raise ValueError(
            f"`ablated_logits` must have shape (V, N, C) with (N, C) = {tuple(full.shape)}, "
            f"got {tuple(ablated.shape)}.")
    n_var, n = ablated.shape[0], full.shape[0]
    check_positive_int(min_examples, "min_examples")
    codes = _check_codes(codes, n, n_groups).to(full.device)
    full_m = classifier_metrics(full, labels, target)                 # (M, N)
    ablated_m = classifier_metrics(ablated, labels, target)           # (M, V, N)
    n_metrics = full_m.shape[0]
    diff = (full_m.unsqueeze(1) - ablated_m).reshape(n_metrics * n_var, n)
    test = sign_flip_test(diff, codes, n_groups, n_permutations, random_state=random_state,
                          min_examples=min_examples, alternative=alternative,
                          batch_size=batch_size)
    effect = test.mean.reshape(n_metrics, n_var, n_groups)
    p_value = test.p_value.reshape(n_metrics, n_var, n_groups)
    q_value = torch.stack([adjust_p_values(p_value[m]).to(p_value.device)
                           for m in range(n_metrics)])
    counts = test.n.to(full.device)
    full_value = _group_means(full_m, codes, counts, n_groups, min_examples)
    ablated_value = _group_means(ablated_m, codes, counts, n_groups, min_examples)
    return ClassifierEffects(effect, p_value, q_value, full_value, ablated_value, test.n,
                             test.exact)
