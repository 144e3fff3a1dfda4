"""Values of the comparison metrics against independent computations."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

from captum_genomics.comparison.metrics import (
    convergence_delta_summary,
    ground_truth_auc,
    observed_scores,
    pairwise_agreement,
    pwm_cosine,
)


def _one_hot(n, length, seed=0):
    g = torch.Generator().manual_seed(seed)
    idx = torch.randint(0, 4, (n, length), generator=g)
    return torch.nn.functional.one_hot(idx, 4).permute(0, 2, 1).float()


def _data(n=6, length=20, seed=0):
    g = torch.Generator().manual_seed(seed + 1)
    x = _one_hot(n, length, seed)
    attr = torch.randn(n, 4, length, generator=g)
    mask = torch.rand(n, length, generator=g) < 0.3
    mask[:, 0] = True
    mask[:, 1] = False
    return attr, x, mask


def _brute_auroc(scores, labels):
    pos = [s for s, y in zip(scores, labels) if y]
    neg = [s for s, y in zip(scores, labels) if not y]
    total = 0.0
    for p in pos:
        for q in neg:
            total += 1.0 if p > q else (0.5 if p == q else 0.0)
    return total / (len(pos) * len(neg))


def _brute_ap(scores, labels):
    """sum_n (R_n - R_{n-1}) P_n over distinct thresholds, ties taken together."""
    n_pos = sum(labels)
    ap, prev_recall = 0.0, 0.0
    for t in sorted(set(scores), reverse=True):
        sel = [y for s, y in zip(scores, labels) if s >= t]
        tp = sum(sel)
        recall, precision = tp / n_pos, tp / len(sel)
        ap += (recall - prev_recall) * precision
        prev_recall = recall
    return ap


# ----------------------------------------------------------------------------- observed
def test_observed_scores_loop():
    attr, x, _ = _data()
    x[0, :, 3] = 0  # an N base scores 0
    got = observed_scores(attr, x)
    assert got.shape == (6, 20) and got.dtype == torch.float64
    for n in range(6):
        for pos in range(20):
            bases = [b for b in range(4) if x[n, b, pos] == 1]
            want = float(attr[n, bases[0], pos]) if bases else 0.0
            assert got[n, pos].item() == pytest.approx(want)


def test_observed_scores_numpy_and_unchanged():
    attr, x, _ = _data()
    a0, x0 = attr.clone(), x.clone()
    got = observed_scores(attr.numpy(), x.numpy())
    torch.testing.assert_close(got, observed_scores(attr, x))
    assert torch.equal(attr, a0) and torch.equal(x, x0)


# ----------------------------------------------------------------------------- AUC
@pytest.mark.parametrize("absolute", [False, True])
def test_ground_truth_auc_brute_force(absolute):
    attr, x, mask = _data()
    attr[2] = attr[2].round()  # ties
    auroc, aupr = ground_truth_auc(attr, x, mask, absolute=absolute)
    scores = observed_scores(attr, x).numpy()
    if absolute:
        scores = np.abs(scores)
    for n in range(6):
        s, y = scores[n].tolist(), mask[n].tolist()
        assert auroc[n] == pytest.approx(_brute_auroc(s, y))
        assert aupr[n] == pytest.approx(_brute_ap(s, y))


def test_ground_truth_auc_hand_example():
    x = _one_hot(1, 4)
    attr = x * torch.tensor([0.9, 0.8, 0.7, 0.6])
    mask = torch.tensor([[True, False, True, False]])
    auroc, aupr = ground_truth_auc(attr, x, mask)
    assert auroc[0] == pytest.approx(3 / 4)  # pairs (0.9>0.8, 0.9>0.6, 0.7<0.8, 0.7>0.6)
    assert aupr[0] == pytest.approx(0.5 * 1.0 + 0.5 * (2 / 3))


def test_ground_truth_auc_nan_for_degenerate_masks():
    attr, x, mask = _data(n=3)
    mask[0] = False
    mask[1] = True
    auroc, aupr = ground_truth_auc(attr, x, mask)
    assert np.isnan(auroc[:2]).all() and np.isnan(aupr[:2]).all()
    assert np.isfinite(auroc[2]) and np.isfinite(aupr[2])


# ----------------------------------------------------------------------------- PWM cosine
def test_pwm_cosine_loop():
    attr, x, mask = _data()
    g = torch.Generator().manual_seed(5)
    pwm = (torch.rand(6, 4, 20, generator=g) - 0.25) * mask[:, None, :]
    attr[0, :, 0] = 0  # a zero column at a masked position: cosine 0
    mask[3] = False
    got = pwm_cosine(attr, pwm, mask)
    for n in range(6):
        cos = []
        for pos in range(20):
            if not mask[n, pos]:
                continue
            a, p = attr[n, :, pos].double(), pwm[n, :, pos].double()
            den = a.norm().item() * p.norm().item()
            cos.append(0.0 if den == 0 else (a @ p).item() / den)
        if cos:
            assert got[n] == pytest.approx(sum(cos) / len(cos))
        else:
            assert math.isnan(got[n])


def test_pwm_cosine_projected_vs_hypothetical():
    x = _one_hot(1, 5)
    pwm = torch.randn(1, 4, 5)
    pwm = pwm - pwm.mean(dim=1, keepdim=True)
    mask = torch.ones(1, 5, dtype=torch.bool)
    assert pwm_cosine(pwm, pwm, mask)[0] == pytest.approx(1.0)
    assert pwm_cosine(pwm * x, pwm, mask)[0] < 1.0


# ----------------------------------------------------------------------------- agreement
def test_pairwise_agreement_loop():
    attr, x, _ = _data()
    g = torch.Generator().manual_seed(9)
    other = attr + 0.5 * torch.randn(attr.shape, generator=g)
    other[4] = 1.0  # constant scores: NaN Spearman
    spear, cos = pairwise_agreement(attr, other, x)
    sa, sb = observed_scores(attr, x).numpy(), observed_scores(other, x).numpy()
    for n in range(6):
        if n == 4:
            assert math.isnan(spear[n])
        else:
            assert spear[n] == pytest.approx(spearmanr(sa[n], sb[n]).statistic)
        want = float(np.dot(sa[n], sb[n]) / (np.linalg.norm(sa[n]) * np.linalg.norm(sb[n])))
        assert cos[n] == pytest.approx(want)


def test_pairwise_agreement_zero_map_cosine_nan():
    attr, x, _ = _data(n=2)
    spear, cos = pairwise_agreement(attr, torch.zeros_like(attr), x)
    assert np.isnan(spear).all() and np.isnan(cos).all()


# ----------------------------------------------------------------------------- deltas
def test_convergence_delta_summary_layouts():
    d = torch.tensor([[0.1, -0.5, 0.2], [0.0, 0.3, -0.05]])
    want = np.array([0.5, 0.3])
    np.testing.assert_allclose(convergence_delta_summary(d, 2), want)
    # Captum's flat layout is example-major (repeat_interleave)
    np.testing.assert_allclose(convergence_delta_summary(d.reshape(-1), 2), want)
    np.testing.assert_allclose(convergence_delta_summary(torch.tensor([-1.0, 2.0]), 2), [1, 2])
    np.testing.assert_allclose(convergence_delta_summary(np.array([0.5, -0.7]), 2), [0.5, 0.7])


# ----------------------------------------------------------------------------- bad inputs
_A, _X, _M = _data(n=2, length=8)

BAD = [
    (lambda: observed_scores([1, 2], _X), TypeError, "attributions"),
    (lambda: observed_scores(_A[:, :3], _X), ValueError, "attributions"),
    (lambda: observed_scores(_A, _X[:, :, :5]), ValueError, "inputs"),
    (lambda: observed_scores(_A, _X * 2), ValueError, "inputs"),
    (lambda: observed_scores(_A.masked_fill(_A > 1, float("nan")), _X), ValueError,
     "attributions"),
    (lambda: ground_truth_auc(_A, _X, _M.float()), TypeError, "mask"),
    (lambda: ground_truth_auc(_A, _X, _M[:, :5]), ValueError, "mask"),
    (lambda: ground_truth_auc(_A, _X, _M[0]), ValueError, "mask"),
    (lambda: ground_truth_auc(_A, _X, _M, absolute="yes"), TypeError, "absolute"),
    (lambda: pwm_cosine(_A, _A[:, :, :4], _M), ValueError, "pwm"),
    (lambda: pwm_cosine(_A, _A, _M.long()), TypeError, "mask"),
    (lambda: pwm_cosine(_A.masked_fill(_A > 1, float("inf")), _A, _M), ValueError,
     "attributions"),
    (lambda: pairwise_agreement(_A, _A[:1], _X), ValueError, "b"),
    (lambda: pairwise_agreement(_A, _A, "x"), TypeError, "inputs"),
    (lambda: convergence_delta_summary(torch.zeros(5), 2), ValueError, "delta"),
    (lambda: convergence_delta_summary(torch.zeros(3, 2), 2), ValueError, "delta"),
    (lambda: convergence_delta_summary(torch.zeros(2), 0), ValueError, "n"),
    (lambda: convergence_delta_summary(None, 2), TypeError, "delta"),
]


@pytest.mark.parametrize("call,exc,name", BAD)
def test_bad_inputs_name_the_argument(call, exc, name):
    with pytest.raises(exc, match=f"`{name}`"):
        call()
