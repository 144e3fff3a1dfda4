"""The fused softmax-rule kernels (:mod:`captum_genomics.deeplift.kernels.softmax`)
against the rule's torch path, and the rule through ``ShuffleDeepLiftShap``.

The torch path is the reference: the same multipliers (``m_xl``, ``rho``) and
the same backward, float64 to 1e-12 and float32 to 1e-5 relative to the largest
entry. Agreement is only to rounding (the kernels' ``exp`` and row sums are not
torch's), so the data keep ``|x - r|`` either below ``eps`` (the fallback, exact)
or well above it (a secant of two nearly equal values magnifies an ulp).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from captum_genomics import ShuffleDeepLiftShap
from captum_genomics.deeplift.kernels.softmax import (
    _exp_constants,
    _vexp,
    softmax_fused_available,
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


@pytest.mark.parametrize("dtype,ulps", [(np.float32, 1.0), (np.float64, 2.0)])
def test_vectorized_exp(dtype, ulps):
    it = np.int32 if dtype == np.float32 else np.int64
    rng = np.random.default_rng(0)
    lo, hi = (-110, 95) if dtype == np.float32 else (-750, 715)
    t = np.concatenate([rng.uniform(lo, hi, 4000), rng.normal(0, 4, 4000),
                        [-np.inf, np.inf, np.nan, 0.0, -0.0, 1e-30, -88.0, -745.5]]).astype(dtype)
    out = np.empty_like(t)
    k, bits = _exp_constants(np.dtype(dtype))
    ib1, ib2 = np.empty(t.size, it), np.empty(t.size, it)
    _vexp(t, out, t.size, k, ib1, ib2, ib1.view(dtype), ib2.view(dtype), bits[0], bits[1])
    with np.errstate(over="ignore"):
        ref = np.exp(t.astype(np.longdouble))
        ulp = np.spacing(ref.astype(dtype)).astype(np.longdouble)
    normal = np.isfinite(ref) & (ref >= np.finfo(dtype).tiny) & (ref <= np.finfo(dtype).max)
    assert float(np.max(np.abs(out[normal] - ref[normal]) / ulp[normal])) <= ulps
    sub = ref < np.finfo(dtype).tiny
    assert float(np.max(np.abs(out[sub] - ref[sub]))) <= float(np.finfo(dtype).smallest_subnormal)
    big = ref > np.finfo(dtype).max
    assert np.all(np.isposinf(out[big]))
    assert np.isnan(out[np.isnan(t)]).all()
    assert out[t == -np.inf].tolist() == [0.0] and out[t == 0].tolist() == [1.0, 1.0]


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
