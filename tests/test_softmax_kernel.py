"""The fused softmax-rule kernels (:mod:`captum_genomics.deeplift.kernels.softmax`)
against the rule's torch path, and the rule through ``ShuffleDeepLiftShap``.

The torch path is the reference: the same multipliers (``m_xl``, ``rho``) and
the same backward, float64 to 1e-12 and float32 to 1e-5 relative to the largest
entry. Agreement is only to rounding (the kernels' ``exp`` and row sums are not
torch's), so the data keep ``|x - r|`` either below ``eps`` (the fallback, exact)
or well above it (a secant of two nearly equal values magnifies an ulp).
Also: the vectorized ``exp`` against ``long double``, every row length up to 40
(and a few chunks' worth) and rows with NaN, infinities, masked positions and
under- or overflowing exps against the torch path, and the same bits whatever the
number of threads or the split of the rows into kernel calls.
"""

from __future__ import annotations

import warnings

import numba
import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from captum_genomics import ShuffleDeepLiftShap
from captum_genomics.deeplift.kernels import softmax as kernels
from captum_genomics.deeplift.kernels.softmax import (
    _vexp,
    softmax_backward,
    softmax_fused_available,
    softmax_multipliers,
)
from captum_genomics.deeplift.rules.base import PairCursor
from captum_genomics.deeplift.rules.softmax import _SoftmaxFunction

# relative to the largest value; float32: the secants divide differences of nearly equal
# exps (|x - r| just above eps), so last-ulp differences of exp are magnified ~100x
TOL = {torch.float64: 1e-12, torch.float32: 5e-5}


def _rule(x, r, dim, log, fused, pairs, grad_seed=0):
    """Saved multipliers and input gradient of one rule call (``dim`` counts r's R axis)."""
    xx = x.clone().requires_grad_(True)
    d = dim - 1

    def compute(t):
        return torch.log_softmax(t, d) if log else torch.softmax(t, d)

    out = _SoftmaxFunction.apply(xx, r, dim, log, 1e-6, compute, pairs, fused)
    saved = [t.clone() for t in out.grad_fn.saved_tensors]
    grad = torch.randn(out.shape, generator=torch.Generator().manual_seed(grad_seed),
                       dtype=out.dtype)
    out.backward(grad)
    return out.detach(), saved, xx.grad


def _data(dtype, shape=(3, 4, 6, 9), n_refs=2, seed=0, dim=-1):
    """x ``(3, 4, 6, 9)``, r ``(R, 3, 4, 6, 9)`` with the special cases along axis ``dim``."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(*shape, generator=g, dtype=torch.float64) * 3
    r = torch.randn(n_refs, *shape, generator=g, dtype=torch.float64) * 3
    # ties within rows, positions equal or within eps of the input, masked positions
    xm, rm = x.movedim(dim, -1), r.movedim(dim % x.ndim + 1, -1)  # views
    xm[..., 1] = xm[..., 0]
    rm[..., 2] = rm[..., 3]
    rm[0, ..., 4] = xm[..., 4]
    rm[1, ..., 4] = xm[..., 4] + 3e-7
    xm[0, 1, :, 5] = float("-inf")
    rm[:, 0, 1, :, 5] = float("-inf")
    rm[1, 2, 3, 2, :] = xm[2, 3, 2, :]  # a whole row equal: s == s_ref, the 1 / s fallback
    return x.to(dtype), r.to(dtype)


def _close(a, b, dtype):
    assert a.shape == b.shape
    assert torch.isnan(a).equal(torch.isnan(b))
    fin = ~torch.isnan(b)
    scale = float(b[fin].abs().max())
    err = float((a[fin] - b[fin]).abs().max()) / scale
    assert err <= TOL[dtype], err
    return err


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("log", [False, True])
@pytest.mark.parametrize("dim", [-1, 2])
def test_fused_matches_torch_path(dtype, log, dim):
    x, r = _data(dtype, dim=dim)
    d = dim % x.ndim + 1
    assert softmax_fused_available(x, r)
    for batched in (False, True):
        xr = x.repeat(r.shape[0], 1, 1, 1) if batched else x
        ref = _rule(xr, r, d, log, False, PairCursor(x.shape[0], r.shape[0], batched))
        got = _rule(xr, r, d, log, True, PairCursor(x.shape[0], r.shape[0], batched))
        assert torch.equal(ref[0], got[0])  # the op's output is torch's in both
        assert len(ref[1]) == len(got[1]) == (1 if log else 2)
        for a, b in zip(got[1], ref[1]):
            _close(a, b, dtype)
        _close(got[2], ref[2], dtype)
        m_xl = got[1][0]
        # -inf in both passes: 0 multipliers (the fallback exp(-inf)), no NaN
        assert not torch.isnan(m_xl).any() and not torch.isnan(got[2]).any()
        if not batched:
            assert float(m_xl.movedim(d, -1)[:, 0, 1, :, 5].abs().max()) == 0.0
        if not log:
            assert not torch.isnan(got[1][1]).any()


def test_examples_layout_backward_selects_reference():
    x, r = _data(torch.float64, n_refs=3)
    for k in range(3):
        pairs = [PairCursor(3, 3), PairCursor(3, 3)]
        for p in pairs:
            p.k = k
        ref = _rule(x, r, 4, False, False, pairs[0], grad_seed=k)
        got = _rule(x, r, 4, False, True, pairs[1], grad_seed=k)
        _close(got[2], ref[2], torch.float64)


def test_torch_path_kept_elsewhere():
    x, r = _data(torch.float32)
    assert not softmax_fused_available(x.half(), r.half())
    assert not softmax_fused_available(x.bfloat16(), r.bfloat16())
    assert not softmax_fused_available(x, r.double())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert not softmax_fused_available(x, r)


# measured on 2e7 arguments: 0.5013 ulp (float32, evaluated in float64 and rounded once)
# and 1.001 ulp (float64); subnormal results within 0.5006 (float32) and 1 smallest
# subnormal (float64)
@pytest.mark.parametrize("dtype,ulps,sub", [(np.float32, 0.51, 0.51), (np.float64, 1.05, 1.0)])
def test_vectorized_exp(dtype, ulps, sub):
    rng = np.random.default_rng(0)
    lo, hi = (-110, 95) if dtype == np.float32 else (-750, 715)
    t = np.concatenate([rng.uniform(lo, hi, 100_000), rng.normal(0, 4, 100_000),
                        rng.uniform(-0.35, 0.35, 100_000), -np.abs(rng.normal(0, 30, 100_000)),
                        [-np.inf, np.inf, np.nan, -np.nan, 0.0, -0.0, 1e-30, -88.0, -745.5]]
                       ).astype(dtype)
    out = np.empty_like(t)
    _vexp(t, out, t.size)
    with np.errstate(over="ignore"):
        ref = np.exp(t.astype(np.longdouble))
        ulp = np.spacing(ref.astype(dtype)).astype(np.longdouble)
    normal = np.isfinite(ref) & (ref >= np.finfo(dtype).tiny) & (ref <= np.finfo(dtype).max)
    assert float(np.max(np.abs(out[normal] - ref[normal]) / ulp[normal])) <= ulps
    small = ref < np.finfo(dtype).tiny
    tiny = float(np.finfo(dtype).smallest_subnormal)
    assert float(np.max(np.abs(out[small] - ref[small]))) <= sub * tiny
    big = ref > np.finfo(dtype).max
    assert np.all(np.isposinf(out[big]))
    assert np.isnan(out[np.isnan(t)]).all() and np.isnan(t).sum() == 2
    assert out[t == -np.inf].tolist() == [0.0] and out[t == 0].tolist() == [1.0, 1.0]
    assert np.all(out[~np.isnan(t)] >= 0)


def _compare(got, ref, dtype):
    """NaN and infinities in the same places, finite values within TOL of the largest."""
    assert got.shape == ref.shape
    assert torch.isnan(got).equal(torch.isnan(ref))
    assert torch.isposinf(got).equal(torch.isposinf(ref))
    assert torch.isneginf(got).equal(torch.isneginf(ref))
    fin = torch.isfinite(ref)
    if fin.any():
        scale = max(float(ref[fin].abs().max()), 1e-300)
        err = float((got[fin] - ref[fin]).abs().max()) / scale
        assert err <= TOL[dtype], err


def _rule_both(x, r, log):
    """The rule's saved multipliers and input gradient, fused and torch path, softmax over
    the last axis of ``x`` ``(n, ..., D)``."""
    pairs = (PairCursor(x.shape[0], r.shape[0]), PairCursor(x.shape[0], r.shape[0]))
    return [_rule(x, r, x.ndim, log, fused, p) for fused, p in zip((True, False), pairs)]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("log", [False, True])
def test_row_lengths(dtype, log):
    # every remainder of the 32-lane chunks and padding, short rows, and rows of a few
    # chunks; torch's path is the reference
    for d in list(range(1, 41)) + [63, 64, 65, 96, 125, 300]:
        g = torch.Generator().manual_seed(d)
        x = torch.randn(2, 3, d, generator=g, dtype=torch.float64) * 3
        r = torch.randn(2, 2, 3, d, generator=g, dtype=torch.float64) * 3
        x, r = x.to(dtype), r.to(dtype)
        got, ref = _rule_both(x, r, log)
        for a, b in zip(got[1], ref[1]):
            _close(a, b, dtype)
        if d > 1:  # d == 1: the gradient is 0 up to rounding
            _close(got[2], ref[2], dtype)


def _special_rows(dtype, d):
    """x ``(3, 8, d)``, r ``(2, 3, 8, d)`` with a special case in each row of the second
    axis: NaN, +inf, -inf (masked) positions, whole masked rows, a reference far below the
    example (its exps underflow) or above it."""
    g = torch.Generator().manual_seed(d)
    x = torch.randn(3, 8, d, generator=g, dtype=torch.float64) * 2
    r = torch.randn(2, 3, 8, d, generator=g, dtype=torch.float64) * 2
    inf, nan = float("inf"), float("nan")
    r[0, 0, 0, d // 2] = nan
    x[1, 1, d - 1] = nan
    r[1, 2, 2, 0] = inf
    x[2, 3, d // 3] = inf
    x[:, 4, : (d + 1) // 2] = -inf
    r[:, :, 4, : (d + 1) // 2] = -inf
    r[0, :, 5] = -inf
    x[1, 5] = -inf
    r[1, 1, 5] = -inf
    # (not a shifted copy of x: its z - z_ref would cancel to a few ulps of the shift)
    r[:, 0, 6] = x[0, 6] / 2 - 60.0  # a_ref ~ exp(-60): far below 1
    r[:, 1, 6] = x[1, 6] / 2 - 200.0  # a_ref underflows: s_ref = 0
    r[:, 2, 6] = x[2, 6] / 2 + 50.0  # the reference's max is c
    r[:, :, 7] = 20.0 + r[:, :, 7]  # c from the reference: a small scale exp(cx - c)
    return x.to(dtype), r.to(dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("log", [False, True])
@pytest.mark.parametrize("d", [1, 5, 32, 45, 125])
def test_special_rows_match_torch(dtype, log, d):
    x, r = _special_rows(dtype, d)
    got, ref = _rule_both(x, r, log)
    for a, b in zip(got[1], ref[1]):
        _compare(a, b, dtype)


def test_long_rows():
    # rows past 2**17 padded elements: float32 sums in float64 lanes, not fixed point
    g = torch.Generator().manual_seed(0)
    for dtype in (torch.float32, torch.float64):
        x = (torch.randn(1, 140_000, generator=g, dtype=torch.float64) * 3).to(dtype)
        r = (torch.randn(2, 1, 140_000, generator=g, dtype=torch.float64) * 3).to(dtype)
        got, ref = _rule_both(x, r, False)
        for a, b in zip(got[1], ref[1]):
            _close(a, b, dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("log", [False, True])
def test_same_bits_for_any_split(dtype, log):
    """Each row is computed on its own: the same bits for one or two threads, and when
    the kernels run over the rows in pieces."""
    d = 125
    x, r = _special_rows(dtype, d)
    g = torch.Generator().manual_seed(1)
    x = torch.cat([x, torch.randn(80, 8, d, generator=g).to(dtype)])  # >= 2 threads' worth
    r = torch.cat([r, torch.randn(2, 80, 8, d, generator=g).to(dtype)], 1)
    grad = torch.randn(2 * 83, 8, d, generator=g).to(dtype)
    before = numba.get_num_threads()
    runs = []
    try:
        for threads in sorted({1, min(2, numba.config.NUMBA_NUM_THREADS)}):
            numba.set_num_threads(threads)
            m, rho = softmax_multipliers(x, r, 2, 1e-6, log)
            back = softmax_backward(grad, m.flatten(0, 1), None if log else rho.flatten(0, 1), 2)
            runs.append((m, rho, back))
    finally:
        numba.set_num_threads(before)
    m, rho, back = runs[0]
    for other in runs[1:]:
        assert torch.equal(other[0].isnan(), m.isnan())
        assert torch.equal(other[0].nan_to_num(), m.nan_to_num())
        assert log or torch.equal(other[1].nan_to_num(), rho.nan_to_num())
        assert torch.equal(other[2].nan_to_num(), back.nan_to_num())
    # the kernels over arbitrary pieces of the rows
    xa, ra = x.reshape(-1, d).numpy(), r.reshape(-1, d).numpy()
    n, lanes = xa.shape[0], kernels._LANES
    dp = -(-d // lanes) * lanes
    consts = np.array([1, 1e-30], dtype=xa.dtype)
    stats = [np.empty(n, xa.dtype), np.empty((n, dp), xa.dtype), np.empty(n, xa.dtype),
             np.empty((n, dp), xa.dtype)]
    for lo, hi in ((0, 7), (7, 100), (100, n)):
        kernels._example_rows(xa, lanes, *stats, lo, hi)
    m2, rho2 = np.empty_like(ra), np.empty_like(ra)
    for lo, hi in ((0, 1), (1, 333), (333, 334), (334, ra.shape[0])):
        kernels._softmax_forward_rows(xa, ra, *stats, xa.dtype.type(1e-6), consts, lanes,
                                      log, m2, rho2, lo, hi)
    assert np.array_equal(m2, m.reshape(-1, d).numpy(), equal_nan=True)
    if not log:
        assert np.array_equal(rho2, rho.reshape(-1, d).numpy(), equal_nan=True)
    ga, ma = grad.reshape(-1, d).numpy(), m.reshape(-1, d).numpy()
    pa = ga if log else rho.reshape(-1, d).numpy()
    out = np.empty_like(ga)
    for lo, hi in ((0, 5), (5, 6), (6, ga.shape[0])):
        kernels._softmax_backward_rows(ga, ma, pa, not log, lanes, out, lo, hi)
    assert np.array_equal(out, back.reshape(-1, d).numpy(), equal_nan=True)


class _Attention(nn.Module):
    """Conv stem + two-head self-attention written out (batch-first, so every strategy
    applies), a masked key (``-1e9``: with ``-inf`` the batched layout's row-dedup
    check in ``PairCursor.dedupable`` fails on its infinite tolerance), softmax over the
    keys and over a non-last axis, and a log-softmax head."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(4, 8, 3, padding=1)
        self.qkv = nn.Linear(8, 24)
        self.head = nn.Linear(8, 3)
        self.register_buffer("mask", torch.zeros(10).masked_fill(torch.arange(10) >= 8, -1e9))

    def forward(self, x):
        h = F.gelu(self.conv(x)).transpose(1, 2)  # (n, T, E)
        n, t, _ = h.shape
        q, k, v = self.qkv(h).reshape(n, t, 3, 2, 4).permute(2, 0, 3, 1, 4)  # (n, 2, T, 4)
        scores = q @ k.transpose(-1, -2) / 2.0 + self.mask  # (n, 2, T, T)
        att = torch.softmax(scores, dim=-1) + 0.1 * torch.softmax(scores, dim=2)
        h = (att @ v).transpose(1, 2).reshape(n, t, 8)
        return F.log_softmax(self.head(h.mean(1)), dim=1)


def _one_hot(n, seed):
    g = torch.Generator().manual_seed(seed)
    return F.one_hot(torch.randint(4, (n, 10), generator=g), 4).transpose(1, 2).double()


def test_strategies_agree_on_attention_model():
    torch.manual_seed(0)
    model = _Attention().double().eval()
    x = _one_hot(2, 1)
    refs = _one_hot(6, 2).reshape(2, 3, 4, 10)
    results = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for strategy in ("batched", "examples", "pairs"):
            m, delta = ShuffleDeepLiftShap(model).attribute(
                x, references=refs, target=1, return_multipliers=True,
                return_convergence_delta=True, strategy=strategy)
            assert float(delta.abs().max()) < 1e-10, (strategy, float(delta.abs().max()))
            results[strategy] = m
    for strategy in ("examples", "pairs"):
        assert float((results[strategy] - results["batched"]).abs().max()) < 1e-10
