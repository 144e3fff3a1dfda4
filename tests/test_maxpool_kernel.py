"""The max-pool rule's fused CPU backward (``deeplift.kernels.maxpool``) against its torch path.

The kernel must give the same bits as the torch ``_route`` (the property suite
checks bitwise batch invariance and compares strategies), for every window
layout: non-overlapping, overlapping, dilated, padded, ``ceil_mode``, 2-d and
adaptive windows, with ties inside windows and positions where ``x == r``.
"""

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from captum_genomics import ShuffleDeepLiftShap
from captum_genomics.deeplift.kernels.maxpool import maxpool_backward
from captum_genomics.deeplift.rules import maxpool as mp
from captum_genomics.deeplift.rules.base import PairCursor, attributed_inputs
from tests.conftest import random_one_hot

POOLS = {
    "non_overlapping": (F.max_pool1d, (4,), {}),
    "overlapping": (F.max_pool1d, (3, 1), {}),
    "overlapping_stride2": (F.max_pool1d, (4, 2), {}),
    "dilated": (F.max_pool1d, (3, 1), {"dilation": 2}),
    "padded": (F.max_pool1d, (3, 2), {"padding": 1}),
    "ceil_mode": (F.max_pool1d, (3, 2), {"ceil_mode": True}),
    "pool2d": (F.max_pool2d, (2,), {}),
    "pool2d_overlapping_dilated": (F.max_pool2d, ((2, 3), (1, 2)), {"dilation": (2, 1)}),
    "adaptive1d": (F.adaptive_max_pool1d, (5,), {}),
}


def _bits(t):
    return t.view(torch.int64 if t.dtype == torch.float64 else torch.int32)


def _same_bits(a, b):
    return a.shape == b.shape and a.dtype == b.dtype and torch.equal(_bits(a), _bits(b))


def _data(func, dtype, n=2, refs=3, seed=0):
    """ReLU of small integers: ties inside windows, zeros, and positions with x == r."""
    g = torch.Generator().manual_seed(seed)
    shape = (n, 3, 6, 7) if func is F.max_pool2d else (n, 3, 17)
    x = torch.relu(torch.randint(-2, 4, shape, generator=g).to(dtype) / 3)
    r = torch.relu(torch.randint(-2, 4, (refs * n, *shape[1:]), generator=g).to(dtype) / 3)
    r[: n, 0] = x[:, 0]  # a whole channel unchanged for reference 0
    return x, r


def _rule_multipliers(func, args, kwargs, x, r, layout, fused, upstream_seed=1):
    """Run the rule's two passes on one pool and return the multipliers of every pair
    row ``(R * n, ...)`` reference-major, with a random upstream gradient."""
    n, rr = x.shape[0], r.shape[0] // x.shape[0]
    rule = mp.MaxPool()
    saved = mp._fused_available
    mp._fused_available = (lambda a, b: saved(a, b)) if fused else (lambda a, b: False)
    try:
        _, state = rule.reference(func, (r, *args), kwargs)
        if layout == "batched":
            pairs, xr = PairCursor(n, rr, batched=True), x.repeat(rr, *([1] * (x.ndim - 1)))
        elif layout == "pairs":
            pairs, xr = PairCursor(rr * n, 1), x.repeat(rr, *([1] * (x.ndim - 1)))
        else:
            pairs, xr = PairCursor(n, rr), x.clone()
        xr.requires_grad_(True)
        with attributed_inputs([xr]):
            y = rule.apply(func, (xr, *args), kwargs, state, pairs)
        # one upstream gradient per pair row, the same in every layout
        g = torch.randn((rr * n, *y.shape[1:]),
                        generator=torch.Generator().manual_seed(upstream_seed), dtype=y.dtype)
        if layout == "examples":
            out = []
            for k in range(rr):
                pairs.k = k
                out.append(torch.autograd.grad(y, xr, g[k * n:(k + 1) * n],
                                               retain_graph=True)[0])
            return torch.cat(out)
        return torch.autograd.grad(y, xr, g)[0]
    finally:
        mp._fused_available = saved


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("name", list(POOLS))
def test_kernel_matches_torch_path_bitwise(name, dtype):
    func, args, kwargs = POOLS[name]
    x, r = _data(func, dtype)
    ref = _rule_multipliers(func, args, kwargs, x, r, "examples", fused=False)
    assert not torch.isnan(ref).any()
    for layout in ("examples", "batched", "pairs"):
        got = _rule_multipliers(func, args, kwargs, x, r, layout, fused=True)
        assert _same_bits(got, ref), (name, layout)
        if layout != "examples":  # the torch path in every layout, too
            torch_path = _rule_multipliers(func, args, kwargs, x, r, layout, fused=False)
            assert _same_bits(torch_path, ref), (name, layout)


def test_kernel_direct_call_matches_route():
    # the kernel alone against _route, float32, overlapping windows, grads with ties
    torch.manual_seed(0)
    x = torch.relu(torch.randint(-1, 3, (2, 4, 20)).float())
    r = torch.relu(torch.randint(-1, 3, (6, 4, 20)).float())
    y, ix = F.max_pool1d(x, 4, 2, return_indices=True)
    yr, ir = F.max_pool1d(r, 4, 2, return_indices=True)
    g = torch.randn(6, 4, y.shape[-1])
    got = maxpool_backward(g, x, r, y, ix, yr, ir)
    rr = 3
    cx, cr = mp._coefficients(y.repeat(rr, 1, 1), yr)
    want = mp._route(g, ix.repeat(rr, 1, 1), ir, cx, cr, x.repeat(rr, 1, 1) - r)
    assert _same_bits(got, want)


def test_reference_pass_pools_once_and_returns_what_was_asked():
    r = torch.randn(4, 2, 9, dtype=torch.float64)
    rule = mp.MaxPool()
    out, (rs, yr, ir) = rule.reference(F.max_pool1d, (r, 3), {})
    assert isinstance(out, torch.Tensor) and torch.equal(out, F.max_pool1d(r, 3))
    assert rs is r and torch.equal(yr, out) and ir.dtype == torch.int64
    out, _ = rule.reference(F.max_pool1d, (r, 3), {"return_indices": True})
    assert isinstance(out, tuple) and torch.equal(out[1], ir)


class _PoolNet(nn.Module):
    def __init__(self, pool, length_out, with_indices=False):
        super().__init__()
        self.conv = nn.Conv1d(4, 5, 5, padding=2)
        self.pool = pool
        self.fc = nn.Linear(5 * length_out, 2)
        self.with_indices = with_indices

    def forward(self, x):
        h = torch.relu(self.conv(x))
        if self.with_indices:
            p, idx = F.max_pool1d(h, 3, 2, return_indices=True)
            # the indices point at the pooled values in both passes; used as a (unit) mask
            assert idx.dtype == torch.int64 and idx.shape == p.shape
            assert torch.equal(h.detach().gather(-1, idx), p.detach())
            p = p * (idx >= 0).to(p.dtype)
        else:
            p = self.pool(h)
        return self.fc(p.flatten(1))


@pytest.mark.parametrize("case", ["non_overlapping", "overlapping", "dilated", "indices"])
def test_strategies_agree_and_are_exact(case):
    torch.manual_seed(0)
    length = 24
    if case == "indices":
        model = _PoolNet(None, 11, with_indices=True)
    else:
        pool = {"non_overlapping": nn.MaxPool1d(3), "overlapping": nn.MaxPool1d(4, 2),
                "dilated": nn.MaxPool1d(3, 1, dilation=2)}[case]
        lout = pool(torch.zeros(1, 1, length)).shape[-1]
        model = _PoolNet(pool, lout)
    model = model.double().eval()
    x = random_one_hot(3, length)
    refs = random_one_hot(3 * 4, length).reshape(3, 4, 4, length)
    results = {}
    for strategy in ("examples", "batched", "pairs"):
        attr, delta = ShuffleDeepLiftShap(model).attribute(
            x, references=refs, target=1, strategy=strategy, return_convergence_delta=True)
        assert delta.abs().max() < 1e-10, strategy
        results[strategy] = attr
    for strategy in ("batched", "pairs"):
        assert torch.allclose(results[strategy], results["examples"], rtol=0, atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("kwargs", [
    {"kernel_size": 3}, {"kernel_size": 4, "stride": 1}, {"kernel_size": 3, "padding": 1},
    {"kernel_size": 2, "dilation": 2}, {"kernel_size": 4, "ceil_mode": True},
    {"kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True}])
def test_channels_last_pool_gives_torch_values_and_indices(dtype, kwargs):
    """The reference pass's max-pool on channels-last storage: same values, same indices,
    exact ties included (integer-valued inputs, ReLU zeros), same layout out."""
    from captum_genomics.deeplift.rules.maxpool import _max_pool1d_channels_last

    g = torch.Generator().manual_seed(7)
    for x in (torch.randn(5, 6, 23, generator=g, dtype=dtype),
              torch.randint(0, 3, (5, 6, 23), generator=g).to(dtype),
              torch.relu(torch.randn(5, 6, 23, generator=g, dtype=dtype))):
        y, i = F.max_pool1d(x, **kwargs, return_indices=True)
        kw = dict(kwargs)
        k = kw.pop("kernel_size")
        fy, fi = _max_pool1d_channels_last(x, (k,), kw)
        assert torch.equal(fy, y) and torch.equal(fi, i)
        assert fy.is_contiguous() and fi.is_contiguous()
