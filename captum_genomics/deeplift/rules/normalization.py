"""Exact DeepLIFT rules for LayerNorm and RMSNorm.

For ``y_i = gamma_i a_i v + beta_i`` with ``a = x - mean(x)`` (``a = x`` for
RMSNorm), ``s = mean(a^2) + eps`` and ``v = s^(-1/2)``, the product rule at the
midpoint gives the exact decomposition

``d(a_i v) = (v + v_r)/2 * da_i + (a_i + a_r_i)/2 * dv``,

with ``dv = rho * ds``, ``rho = dv/ds = -v^2 v_r^2 / (v + v_r)`` (closed form, no
cancellation) and ``ds = mean((a + a_r) da)`` (a difference of squares). The
multipliers that follow are those of tangermeme 1.6's LayerNorm/RMSNorm rule.
Backward, with ``g~ = g * gamma`` and ``S = a + a_r`` summed over the ``D``
normalized positions:

``grad_a_j = vbar g~_j + rho S_j / (2D) * sum_i g~_i S_i``,

then ``grad_x = grad_a - mean(grad_a)`` for LayerNorm.
"""

from __future__ import annotations

import math

import torch

from captum_genomics.deeplift.rules.base import Rule, UnsupportedOperationError, requires_grad

__all__ = ["Normalization"]


def _stats(x, dims, eps, center):
    a = x - x.mean(dims, keepdim=True) if center else x
    v = (a.pow(2).mean(dims, keepdim=True) + eps).rsqrt()
    return a, v


class _NormFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x_rows, r, n_dims, weight, eps, center, compute, pairs):
        # x = pairs.examples(x_rows): (n, ...); r: (R, n, ...); normalized over the
        # trailing n_dims axes
        x = pairs.examples(x_rows)
        out = compute(x)
        dims = tuple(range(-n_dims, 0))
        a, v = _stats(x, dims, eps, center)
        ar, vr = _stats(r, dims, eps, center)
        s = a + ar
        vbar = (v + vr) / 2
        rho = -(v * v) * (vr * vr) / (v + vr)
        d = math.prod(x.shape[-n_dims:])
        ctx.dims, ctx.center, ctx.d, ctx.pairs = dims, center, d, pairs
        ctx.save_for_backward(s, vbar, rho, weight)
        return pairs.tile(out)

    @staticmethod
    def backward(ctx, grad):
        s, vbar, rho, weight = ctx.saved_tensors
        s, vbar, rho = (ctx.pairs.select(t) for t in (s, vbar, rho))
        g = grad if weight is None else grad * weight
        ga = vbar * g + rho * s / (2 * ctx.d) * (g * s).sum(ctx.dims, keepdim=True)
        if ctx.center:
            ga = ga - ga.mean(ctx.dims, keepdim=True)
        return ga, None, None, None, None, None, None, None


class Normalization(Rule):
    """Exact rule for ``layer_norm`` (``center=True``) and ``rms_norm`` (``center=False``).

    The affine weight and bias are constants; a weight or bias that depends on
    the attributed inputs raises
    :class:`~captum_genomics.deeplift.rules.UnsupportedOperationError`.
    """

    name = "normalization"
    reads_examples_only = True

    def __init__(self, center: bool = True):
        self.center = bool(center)

    def apply(self, func, args, kwargs, state, pairs):
        x = args[0]
        if not requires_grad(x):
            pairs.fill_in((args, kwargs))
            return func(*args, **kwargs)
        names = ("input", "normalized_shape", "weight", "bias", "eps") if self.center else (
            "input", "normalized_shape", "weight", "eps")
        bound = dict(zip(names, args))
        bound.update(kwargs)
        shape = bound["normalized_shape"]
        n_dims = 1 if isinstance(shape, int) else len(shape)
        weight, bias = bound.get("weight"), bound.get("bias")
        eps = bound.get("eps")
        if eps is None:
            eps = 1e-5 if self.center else torch.finfo(x.dtype).eps
        if requires_grad(weight) or requires_grad(bias):
            raise UnsupportedOperationError(
                f"`{func.__name__}` with an input-dependent weight or bias is not supported."
            )
        rest = args[1:]

        def compute(t):
            return func(t, *rest, **kwargs)

        pairs = pairs.layout(x)
        return _NormFunction.apply(x, pairs.split(state).to(x.dtype), n_dims, weight, float(eps),
                                   self.center, compute, pairs)

    def __repr__(self):
        return f"Normalization(center={self.center})"
