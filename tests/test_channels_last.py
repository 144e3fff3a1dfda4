"""Channels-last activations (captum_genomics.deeplift.layout): same results, other storage.

Each check compares against an independent computation: ``F.conv1d`` itself, torch's
own ``repeat``/``reshape``, the torch rescale rule, the same attribution with the
layout switched off, and float64 attributions (where the layout never applies).
"""

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import captum_genomics.deeplift.layout as layout
from captum_genomics import ShuffleDeepLiftShap
from captum_genomics.deeplift.kernels.rescale import relu_backward
from captum_genomics.zoo.basset import BassetLike
from captum_genomics.zoo.bpnet import BPNetLike
from tests.conftest import random_one_hot


def _cl(t):
    """``t`` (N, C, L) stored channels-last."""
    return t.transpose(1, 2).contiguous().transpose(1, 2)


@pytest.fixture
def forced(request):
    """Set layout.CHANNELS_LAST for one test, restored afterwards."""
    old = layout.CHANNELS_LAST
    yield lambda value: setattr(layout, "CHANNELS_LAST", value)
    layout.CHANNELS_LAST = old


@pytest.mark.parametrize("stride,padding,dilation,groups", [
    (1, 0, 1, 1), (1, 2, 2, 1), (1, 8, 8, 1), (2, 3, 1, 1), (1, 1, 1, 4), (3, 5, 2, 2)])
@pytest.mark.parametrize("channels_last_input", [False, True])
def test_conv1d_channels_last_equals_conv1d(stride, padding, dilation, groups,
                                            channels_last_input):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(5, 16, 57, generator=g)
    w = torch.randn(12, 16 // groups, 3, generator=g)
    b = torch.randn(12, generator=g)
    expected = F.conv1d(x, w, b, stride, padding, dilation, groups)
    got = layout.conv1d_channels_last(_cl(x) if channels_last_input else x, w, b, (stride,),
                                      (padding,), (dilation,), groups)
    assert got.shape == expected.shape
    assert got.stride() == (expected.shape[1] * expected.shape[2], 1, expected.shape[1])
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_row_order_and_rows_round_trip():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(4, 3, 7, generator=g)
    assert layout.row_order(x) == (0, 1)
    assert layout.row_order(_cl(x)) == (1, 0)
    assert layout.row_order(x.expand(2, 4, 3, 7)[0].unsqueeze(0).expand(3, 4, 3, 7)) is None
    assert layout.row_order(x[:, :, ::2]) is None  # gaps
    for t in (x, _cl(x)):
        for order in ((0, 1), (1, 0), None):
            rows = layout.as_rows(t, order)
            assert rows.shape == (4, 21)
            back = layout.from_rows(rows.copy(), t.shape, order)
            assert torch.equal(back, t)
            if order is not None:
                assert layout.row_order(back) == order
    # no copy when the tensor is already stored in the order asked for
    assert layout.as_rows(_cl(x), (1, 0)).base is not None


def test_in_order_and_repeat_rows_keep_values_and_set_the_layout():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(2, 5, 9, generator=g)
    y = layout.in_order(x, (1, 0))
    assert torch.equal(y, x) and layout.row_order(y) == (1, 0)
    assert layout.in_order(y, (1, 0)) is y
    assert layout.in_order(x, None) is x
    for t in (x, _cl(x)):
        r = layout.repeat_rows(t, 3)
        assert torch.equal(r, x.repeat(3, 1, 1))
        assert layout.row_order(r) == layout.row_order(t)


def test_view_or_reshape():
    x = _cl(torch.arange(24.0).reshape(2, 3, 4))
    with pytest.raises(RuntimeError, match="view"):
        x.view(2, -1)
    out = layout.view_or_reshape(torch.Tensor.view, (x, 2, -1), {})
    assert torch.equal(out, x.reshape(2, -1))
    out = layout.view_or_reshape(torch.Tensor.view, (x, (2, 12)), {})
    assert torch.equal(out, x.reshape(2, 12))
    y = torch.zeros(2, 4)
    assert layout.view_or_reshape(torch.Tensor.view, (y, 8), {}).data_ptr() == y.data_ptr()
    with pytest.raises(RuntimeError):  # a dtype view that cannot be taken is not rewritten
        layout.view_or_reshape(torch.Tensor.view, (x, torch.float64), {})


def test_relu_kernel_reads_channels_last_operands_bitwise():
    """The fused ReLU backward on channels-last operands gives the torch rule's bits
    (grad * secant, derivative below eps), whatever mix of layouts it is handed."""
    g = torch.Generator().manual_seed(3)
    n, R, C, L = 2, 3, 8, 11
    x = torch.randn(n, C, L, generator=g)
    r = torch.randn(R, n, C, L, generator=g)
    r[0, 0, :, :3] = x[0, :, :3]  # |x - r| < eps: the derivative
    grad = torch.randn(R * n, C, L, generator=g)
    d = x.unsqueeze(0) - r
    secant = (torch.relu(x).unsqueeze(0) - torch.relu(r)) / d
    ratio = torch.where(d.abs() < 1e-6, (x > 0).to(x.dtype).expand_as(r), secant)
    expected = grad * ratio.reshape(R * n, C, L)
    for xs, rs, gs in [(x, r, grad), (_cl(x), _cl(r.flatten(0, 1)).unflatten(0, (R, n)), _cl(grad)),
                       (_cl(x), _cl(r.flatten(0, 1)).unflatten(0, (R, n)), grad),
                       (x, _cl(r.flatten(0, 1)).unflatten(0, (R, n)), _cl(grad))]:
        got = relu_backward(gs, xs, rs, 1e-6)
        assert torch.equal(got, expected)
        assert layout.row_order(got) == layout.row_order(rs.flatten(0, 1))


def test_the_layout_is_chosen_per_model(forced):
    assert layout.wants_channels_last(BPNetLike())  # dilated residual tower
    assert not layout.wants_channels_last(BassetLike())
    assert not layout.wants_channels_last(lambda x: x)
    forced(True)
    assert layout.wants_channels_last(BassetLike())
    forced(False)
    assert not layout.wants_channels_last(BPNetLike())


class _DilatedFlatten(nn.Module):
    """Dilated convolutions, an in-place ReLU and a residual sum, then ``.view`` flatten
    and a dense head: every op the layout touches, and one it must not break."""

    def __init__(self, length=40):
        super().__init__()
        self.c1 = nn.Conv1d(4, 16, 5, padding=2)
        self.c2 = nn.Conv1d(16, 16, 3, padding=2, dilation=2)
        self.c3 = nn.Conv1d(16, 16, 3, padding="same", dilation=4)
        self.relu = nn.ReLU(inplace=True)
        self.head = nn.Linear(16 * length, 3)

    def forward(self, x):
        h = torch.relu(self.c1(x))
        h = h + self.relu(self.c2(h))
        h = h + F.gelu(self.c3(h))
        return self.head(h.view(h.shape[0], -1))


@pytest.mark.parametrize("make", [lambda: BPNetLike(n_filters=16, n_layers=4, n_outputs=2),
                                  lambda: _DilatedFlatten()])
def test_channels_last_attributions_equal_the_default_layout(make, forced):
    torch.manual_seed(0)
    model = make().eval()
    assert layout.wants_channels_last(model)
    length = 40
    g = torch.Generator().manual_seed(4)
    x = random_one_hot(3, length, g, torch.float32)
    refs = random_one_hot(3 * 5, length, g, torch.float32).reshape(3, 5, 4, length)

    def run(value, m=model, dtype=torch.float32, **kwargs):
        forced(value)
        return ShuffleDeepLiftShap(m).attribute(
            x.to(dtype), references=refs.to(dtype), target=1, return_convergence_delta=True,
            warning_threshold=float("inf"), **kwargs)

    plain, plain_delta = run(False)
    fast, fast_delta = run(True)
    torch.testing.assert_close(fast, plain, rtol=1e-4, atol=1e-5 * float(plain.abs().max()))
    assert fast_delta.abs().max() < 1e-4
    assert plain_delta.abs().max() < 1e-4
    exact, _ = run(True, m=_double(model), dtype=torch.float64)
    torch.testing.assert_close(fast.double(), exact, rtol=1e-4,
                               atol=1e-5 * float(exact.abs().max()))
    # determinism is bitwise; batch invariance in float32 to rounding (oneDNN picks its
    # convolution kernels by batch size in either layout: testing.assertions'
    # INVARIANCE_REASON)
    again, _ = run(True)
    assert torch.equal(again, fast)
    for batch_size in (5, 10):
        other, _ = run(True, batch_size=batch_size)
        torch.testing.assert_close(other, fast, rtol=1e-5, atol=1e-6 * float(fast.abs().max()))


def _double(model):
    import copy

    return copy.deepcopy(model).double()
