"""The rescale rule's numba kernels give the torch version's bits (ReLU and any f)."""

import pytest
import torch
import torch.nn.functional as F

from captum_genomics.deeplift.kernels.rescale import relu_backward, secant_multipliers
from captum_genomics.deeplift.rules.rescale import elementwise_derivative

EPS = 1e-6


def _data(dtype, n=3, r=4, m=37, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, m, generator=g, dtype=torch.float64).to(dtype)
    ref = torch.randn(r, n, m, generator=g, dtype=torch.float64).to(dtype)
    ref[:, :, :5] = x[:, :5]                      # x == r: the derivative
    ref[:, :, 5:8] = x[:, 5:8] + 1e-7             # |x - r| < eps
    ref[0, :, 8:12] = -x[:, 8:12].abs() - 1e-7    # across the kink
    x[:, 12:14] = 0.0                              # relu'(0) = 0
    return x, ref


def _torch_ratio(fn, x, ref):
    """The rule's torch version: (f(x) - f(r)) / (x - r), the derivative where |x - r| < eps."""
    y = fn(x)
    ratio = fn(ref)
    torch.sub(y, ratio, out=ratio)
    dx = x - ref
    ratio.div_(dx)
    small = dx.abs_() < EPS
    return torch.where(small, elementwise_derivative(fn, x).expand_as(ratio), ratio)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_relu_backward_is_bitwise_the_torch_rule(dtype):
    x, ref = _data(dtype)
    grad = torch.randn(ref.shape[0] * ref.shape[1], ref.shape[2], dtype=dtype)
    want = grad * _torch_ratio(torch.relu, x, ref).reshape(grad.shape)
    got = relu_backward(grad, x, ref, EPS)
    assert got.dtype == dtype and torch.equal(got, want)
    # one reference at a time (the "examples" layout)
    one = relu_backward(grad[:3], x, ref[:1], EPS)
    assert torch.equal(one, want[:3])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("fn", [F.gelu, torch.tanh, torch.sigmoid, F.softplus, F.silu])
def test_secant_multipliers_are_bitwise_the_torch_rule(dtype, fn):
    x, ref = _data(dtype, seed=1)
    got = secant_multipliers(x, fn(x), elementwise_derivative(fn, x), ref, fn(ref), EPS)
    want = _torch_ratio(fn, x, ref)
    assert got.shape == want.shape and torch.equal(got, want)
