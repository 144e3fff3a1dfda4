"""Per-example metrics of a method-comparison study on one-hot DNA.

Pure functions: no models, no state. Each takes CPU ``torch.Tensor`` s or
``numpy`` arrays (a tensor on another device is copied to the CPU; nothing is
modified) and returns ``numpy`` ``float64`` arrays with one value per example,
except :func:`observed_scores`, which returns a tensor (tensor in, tensor out).

- :func:`observed_scores`: the attribution at the observed base, ``(N, L)``.
- :func:`ground_truth_auc`: per-sequence AUROC and AUPR of the observed-base
  score against the planted-motif mask -- the evaluation of Koo & Ploenzke 2021
  ("Improving representations of genomic sequence motifs in convolutional
  networks with exponential activations", Nat. Mach. Intell.) and Majdandzic et
  al. 2023 ("Correcting gradient-based interpretations of deep neural networks
  for genomics", Genome Biology).
- :func:`pwm_cosine`: per-sequence mean cosine between attribution columns and
  centred-PWM columns at planted positions (Majdandzic et al. 2023).
- :func:`pairwise_agreement`: Spearman and cosine between two methods'
  observed-base scores, per example.
- :func:`convergence_delta_summary`: max ``|delta|`` over the references of each
  example.

Undefined values are NaN, never an error: an example whose mask is all False or
all True (AUROC/AUPR), with no masked position (PWM cosine), or with a constant
score vector (Spearman).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from captum_genomics._utils.checks import (
    check_finite,
    check_one_hot,
    check_positive_int,
    check_shape,
)

__all__ = [
    "observed_scores",
    "ground_truth_auc",
    "pwm_cosine",
    "pairwise_agreement",
    "convergence_delta_summary",
]


# ----------------------------------------------------------------------------- checks
def _as_tensor(x, name: str) -> Tensor:
    """A CPU tensor view of a tensor or numpy array; ``TypeError`` for anything else."""
    if isinstance(x, np.ndarray):
        return torch.from_numpy(x)
    if isinstance(x, Tensor):
        return x.detach().cpu()
    raise TypeError(
        f"`{name}` must be a torch.Tensor or numpy.ndarray, got {type(x).__name__}."
    )


def _attributions(x, name: str, shape=(None, 4, None)) -> Tensor:
    x = _as_tensor(x, name)
    if x.is_complex() or x.dtype == torch.bool:
        raise TypeError(f"`{name}` must hold real numbers, got dtype {x.dtype}.")
    check_shape(x, name, shape)
    x = x.to(torch.float64)
    check_finite(x, name)
    return x


def _inputs(x, name: str, shape) -> Tensor:
    x = _as_tensor(x, name)
    check_shape(x, name, shape)
    check_one_hot(x, name, dim=1)
    return x.to(torch.float64)


def _mask(mask, name: str, shape) -> Tensor:
    mask = _as_tensor(mask, name)
    if mask.dtype != torch.bool:
        raise TypeError(
            f"`{name}` must be a boolean tensor of shape (N, L) (True at informative "
            f"positions), got dtype {mask.dtype}."
        )
    check_shape(mask, name, shape)
    return mask


def _spearman_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Spearman correlation of each row of ``a`` with the same row of ``b``; NaN if constant."""
    from scipy.stats import spearmanr

    out = np.full(a.shape[0], np.nan)
    for i in range(a.shape[0]):
        if np.ptp(a[i]) == 0 or np.ptp(b[i]) == 0:
            continue  # spearmanr would warn and return NaN
        out[i] = float(spearmanr(a[i], b[i]).statistic)
    return out


# ----------------------------------------------------------------------------- metrics
def observed_scores(attributions, inputs) -> Tensor:
    """The attribution at the observed base of each position.

    ``score[n, l] = sum_b attributions[n, b, l] * inputs[n, b, l]``: the one-hot
    projection used by attribution logos and by the per-sequence evaluations
    below. A position with an ``N`` (all-zero column) scores 0.

    Parameters
    ----------
    attributions : Tensor or ndarray, float, shape=(N, 4, L)
        Attributions, ACGT rows; projected (observed base only) or hypothetical
        (all four bases) maps give the same score.
    inputs : Tensor or ndarray, shape=(N, 4, L)
        One-hot sequences, ACGT rows; all-zero columns allowed.

    Returns
    -------
    Tensor, float64, shape=(N, L)
        On the CPU.

    Raises
    ------
    TypeError
        If an argument is not a tensor / array of real numbers.
    ValueError
        If a shape is not ``(N, 4, L)``, the shapes differ, ``inputs`` is not
        one-hot or ``attributions`` holds NaN/Inf.
    """
    attr = _attributions(attributions, "attributions")
    x = _inputs(inputs, "inputs", tuple(attr.shape))
    return (attr * x).sum(dim=1)


def ground_truth_auc(
    attributions, inputs, mask, absolute: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Per-sequence AUROC and AUPR of the observed-base score against a ground-truth mask.

    For each example, positions are ranked by :func:`observed_scores` (or its
    absolute value) and compared with the mask of planted-motif positions with
    ``sklearn.metrics.roc_auc_score`` and ``average_precision_score`` (AUPR as
    average precision, the step-wise sum ``sum_n (R_n - R_{n-1}) P_n``, no
    interpolation). This is the per-sequence evaluation of Koo & Ploenzke 2021
    and Majdandzic et al. 2023 (where the score is the saliency at the observed
    base, after gradient correction for Majdandzic et al.).

    Parameters
    ----------
    attributions : Tensor or ndarray, float, shape=(N, 4, L)
        Attributions, ACGT rows.
    inputs : Tensor or ndarray, shape=(N, 4, L)
        One-hot sequences.
    mask : Tensor or ndarray, bool, shape=(N, L)
        True where a planted (informative) base lies.
    absolute : bool
        Rank by ``|score|`` instead of the signed score (a method whose sign is
        not meaningful, or to count negative evidence as found). Default False.

    Returns
    -------
    auroc, aupr : ndarray, float64, shape=(N,)
        NaN for an example whose mask is all False or all True (undefined).

    Raises
    ------
    TypeError
        If ``mask`` is not boolean, ``absolute`` not a bool, or an argument is
        not a tensor / array.
    ValueError
        For a shape mismatch, ``inputs`` not one-hot, or non-finite
        ``attributions``.
    """
    from sklearn.metrics import average_precision_score, roc_auc_score

    if not isinstance(absolute, (bool, np.bool_)):
        raise TypeError(f"`absolute` must be a bool, got {type(absolute).__name__}.")
    scores = observed_scores(attributions, inputs)
    m = _mask(mask, "mask", tuple(scores.shape)).numpy()
    s = scores.numpy()
    if absolute:
        s = np.abs(s)
    n = s.shape[0]
    auroc = np.full(n, np.nan)
    aupr = np.full(n, np.nan)
    for i in range(n):
        n_pos = int(m[i].sum())
        if n_pos == 0 or n_pos == m.shape[1]:
            continue
        auroc[i] = roc_auc_score(m[i], s[i])
        aupr[i] = average_precision_score(m[i], s[i])
    return auroc, aupr


def pwm_cosine(attributions, pwm, mask) -> np.ndarray:
    """Per-sequence mean cosine between attribution columns and centred-PWM columns.

    For each example, the mean over masked positions ``l`` of
    ``cos(attributions[n, :, l], pwm[n, :, l])`` (4-vectors), following the
    evaluation of Majdandzic et al. 2023. A zero attribution column (or a zero
    PWM column, a uniform motif base) gives cosine 0: no alignment.

    The number depends on the kind of map. A projected map (non-zero only at
    the observed base, e.g. input x gradient or DeepLIFT contributions) has a
    cosine of at most ``|pwm[b_obs]| / ||pwm||`` per column; a hypothetical map
    (all four bases, e.g. raw or gradient-corrected saliency, hypothetical
    contributions) can reach 1. The comparison study passes each method's map
    as that method returns it, so compare this metric within a kind of map.

    Parameters
    ----------
    attributions : Tensor or ndarray, float, shape=(N, 4, L)
        Attributions, ACGT rows.
    pwm : Tensor or ndarray, float, shape=(N, 4, L)
        Centred PWM (column probabilities minus 0.25) at planted positions,
        oriented to the planted strand (``GroundTruth.pwm``).
    mask : Tensor or ndarray, bool, shape=(N, L)
        The positions to average over (``GroundTruth.mask``).

    Returns
    -------
    ndarray, float64, shape=(N,)
        In ``[-1, 1]``; NaN for an example with no masked position.

    Raises
    ------
    TypeError
        If ``mask`` is not boolean or an argument is not a tensor / array.
    ValueError
        For a shape mismatch or non-finite ``attributions`` / ``pwm``.
    """
    attr = _attributions(attributions, "attributions")
    p = _attributions(pwm, "pwm", tuple(attr.shape))
    m = _mask(mask, "mask", (attr.shape[0], attr.shape[2]))
    dot = (attr * p).sum(dim=1)
    norm = attr.norm(dim=1) * p.norm(dim=1)
    cos = torch.where(norm > 0, dot / torch.where(norm > 0, norm, 1.0), torch.zeros_like(dot))
    count = m.sum(dim=1)
    total = (cos * m).sum(dim=1)
    out = (total / count.clamp(min=1)).numpy().copy()
    out[count.numpy() == 0] = np.nan
    return out


def pairwise_agreement(a, b, inputs) -> tuple[np.ndarray, np.ndarray]:
    """Per-example agreement of two methods' observed-base scores.

    The Spearman rank correlation (``scipy.stats.spearmanr``) and the cosine
    between ``observed_scores(a, inputs)[n]`` and ``observed_scores(b,
    inputs)[n]``, vectors over the ``L`` positions.

    Parameters
    ----------
    a, b : Tensor or ndarray, float, shape=(N, 4, L)
        The two methods' attributions.
    inputs : Tensor or ndarray, shape=(N, 4, L)
        One-hot sequences.

    Returns
    -------
    spearman, cosine : ndarray, float64, shape=(N,)
        Spearman is NaN where either score vector is constant; cosine is NaN
        where either score vector is all zero.

    Raises
    ------
    TypeError
        If an argument is not a tensor / array of real numbers.
    ValueError
        For a shape mismatch, ``inputs`` not one-hot or non-finite ``a``/``b``.
    """
    sa = observed_scores(_attributions(a, "a"), inputs)
    b_t = _attributions(b, "b", tuple(sa.shape[:1]) + (4,) + tuple(sa.shape[1:]))
    sb = observed_scores(b_t, inputs)
    sa_np, sb_np = sa.numpy(), sb.numpy()
    spearman = _spearman_rows(sa_np, sb_np)
    norm = np.linalg.norm(sa_np, axis=1) * np.linalg.norm(sb_np, axis=1)
    dot = (sa_np * sb_np).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        cosine = np.where(norm > 0, dot / np.where(norm > 0, norm, 1.0), np.nan)
    return spearman, cosine


def convergence_delta_summary(delta, n: int) -> np.ndarray:
    """The largest ``|convergence delta|`` of each example.

    Methods return one delta per example (``IntegratedGradients``: ``(N,)``) or
    one per example-reference pair: ``(N, K)`` (this package's methods) or
    Captum's flat ``(N*K,)`` (``DeepLiftShap``, ``GradientShap``), which is
    example-major (inputs are expanded with ``repeat_interleave``), so it is
    read as ``delta.reshape(n, K)``.

    Parameters
    ----------
    delta : Tensor or ndarray, float, shape=(N,), (N*K,) or (N, K)
        Convergence deltas; NaN propagates to its example.
    n : int
        The number of examples ``N`` (>= 1).

    Returns
    -------
    ndarray, float64, shape=(N,)
        ``max_k |delta[n, k]|``.

    Raises
    ------
    TypeError
        If ``delta`` is not a tensor / array of real numbers.
    ValueError
        If ``n`` is not a positive int, or ``delta`` is not 1-D with a length
        that is a multiple of ``n`` or 2-D with ``n`` rows.
    """
    check_positive_int(n, "n")
    d = _as_tensor(delta, "delta")
    if d.is_complex() or d.dtype == torch.bool:
        raise TypeError(f"`delta` must hold real numbers, got dtype {d.dtype}.")
    d = d.to(torch.float64)
    if d.ndim == 1 and d.numel() >= n and d.numel() % n == 0:
        d = d.reshape(n, -1)
    elif not (d.ndim == 2 and d.shape[0] == n and d.shape[1] >= 1):
        raise ValueError(
            f"`delta` must have shape ({n},), ({n}*K,) or ({n}, K) for n={n}, "
            f"got {tuple(d.shape)}."
        )
    return d.abs().amax(dim=1).numpy()
