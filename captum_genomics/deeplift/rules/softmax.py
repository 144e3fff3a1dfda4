"""Exact DeepLIFT rules for softmax and log-softmax.

Write ``a_j = exp(x_j - c)``, ``s = sum_j a_j``, ``L = log s`` and
``z_i = x_i - L`` (so ``log_softmax(x) = z`` and ``softmax(x) = exp(z)``). Each
step has an exact multiplier between the input and the reference:

* ``exp``:   ``m_a_j = (a_j - a_ref_j) / (x_j - r_j)``  (fallback ``a_j``),
* ``log``:   ``m_L = (L - L_ref) / (s - s_ref)``       (fallback ``1 / s``),
* ``exp`` of ``z``: ``rho_i = (y_i - y_ref_i) / (z_i - z_ref_i)`` (fallback ``y_i``).

Chaining them, ``dL = sum_j m_L m_a_j dx_j`` exactly and the multiplier from
``x_j`` to ``y_i`` is ``rho_i (delta_ij - m_L m_a_j)``. The shift ``c`` (the
larger of the two maxima) cancels and only guards against overflow. This
follows the decomposition tangermeme 1.6 uses for ``nn.Softmax``; the
log-softmax rule is the same chain without the final ``exp``.
"""

from __future__ import annotations

import torch

from captum_genomics.deeplift.rules.base import Rule, requires_grad

__all__ = ["Softmax"]


def _secant(num, den, fallback, eps):
    # ``not >=`` also takes the fallback where ``den`` is NaN: a position masked with
    # ``-inf`` in both passes (``-inf - -inf``), whose fallback (``exp(-inf) = 0``) is exact
    small = ~(den.abs() >= eps)
    return torch.where(small, fallback, num / torch.where(small, torch.ones_like(den), den))


def _fused(x, r) -> bool:
    """Whether :mod:`captum_genomics.deeplift.kernels.softmax` computes the multipliers
    (CPU float32/float64 outside autocast); else the torch code below does."""
    from captum_genomics.deeplift.kernels.softmax import softmax_fused_available

    return softmax_fused_available(x, r)


class _SoftmaxFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x_rows, r, dim, log, eps, compute, pairs, fused):
        # x = pairs.examples(x_rows): (n, ...) seen as (1, n, ...); r: (R, n, ...); `dim`
        # counts the leading R axis
        x = pairs.examples(x_rows)
        out = pairs.tile(compute(x))
        ctx.dim, ctx.log, ctx.pairs, ctx.fused = dim - 1, log, pairs, fused
        if fused:  # CPU float32/float64: the same arithmetic, one pass per row (numba)
            from captum_genomics.deeplift.kernels.softmax import softmax_multipliers

            m_xl, rho = softmax_multipliers(x, r, dim - 1, eps, log)
            ctx.save_for_backward(*((m_xl,) if log else (m_xl, rho)))
            return out
        x = x.unsqueeze(0)
        c = torch.maximum(x.amax(dim, keepdim=True), r.amax(dim, keepdim=True))
        a, ar = torch.exp(x - c), torch.exp(r - c)
        s, sr = a.sum(dim, keepdim=True), ar.sum(dim, keepdim=True)
        big_l, big_lr = torch.log(s), torch.log(sr)
        m_a = _secant(a - ar, x - r, a, eps)
        m_l = _secant(big_l - big_lr, s - sr, 1.0 / s, eps * s.detach().abs().clamp_min(1e-30))
        m_xl = m_l * m_a
        if log:
            ctx.save_for_backward(m_xl)
        else:
            z, zr = x - c - big_l, r - c - big_lr
            y, yr = torch.exp(z), torch.exp(zr)
            rho = _secant(y - yr, z - zr, y, eps)
            ctx.save_for_backward(m_xl, rho)
        return out

    @staticmethod
    def backward(ctx, grad):
        select = ctx.pairs.select
        none = (None,) * 7
        if ctx.log:
            (m_xl,) = ctx.saved_tensors
            rho = None
        else:
            m_xl, rho = ctx.saved_tensors
        if ctx.fused and grad.device.type == "cpu":
            from captum_genomics.deeplift.kernels.softmax import softmax_backward

            return (softmax_backward(grad, select(m_xl), None if rho is None else select(rho),
                                     ctx.dim),) + none
        g = grad if rho is None else grad * select(rho)
        return (g - select(m_xl) * g.sum(ctx.dim, keepdim=True),) + none


class Softmax(Rule):
    """Exact rule for ``softmax`` (``log=False``) and ``log_softmax`` (``log=True``).

    Parameters
    ----------
    log
        Whether the op is ``log_softmax``. Default False.
    eps
        Absolute threshold below which a secant takes its derivative
        fallback. Default ``1e-6``.

    The normalized axis may be any axis but the batch axis (0), which holds
    example-reference pairs; softmax over it raises ``ValueError``.
    """

    name = "softmax"
    reads_examples_only = True

    def __init__(self, log: bool = False, eps: float = 1e-6):
        self.log, self.eps = bool(log), float(eps)

    def apply(self, func, args, kwargs, state, pairs):
        x = args[0]
        if not requires_grad(x):
            pairs.fill_in((args, kwargs))
            return func(*args, **kwargs)
        dim = args[1] if len(args) > 1 else kwargs.get("dim")
        if dim is None:
            raise ValueError(
                f"`{func.__name__}` was called without `dim`; DeepLIFT needs an explicit "
                "softmax axis."
            )
        dim = dim % x.ndim
        if dim == 0:
            raise ValueError(
                f"`{func.__name__}` over axis 0 mixes example-reference pairs; "
                "softmax over the batch axis is not supported."
            )
        dtype = kwargs.get("dtype")
        if dtype is not None:  # a converted copy reads every row
            pairs.fill(x)
        xx = x if dtype is None else x.to(dtype)
        rest = args[1:]

        def compute(t):
            return func(t, *rest, **kwargs)

        pairs = pairs.layout(xx)
        r = pairs.split(state).to(xx.dtype)
        return _SoftmaxFunction.apply(xx, r, dim + 1, self.log, self.eps, compute, pairs,
                                      _fused(pairs.examples(xx), r))

    def __repr__(self):
        return f"Softmax(log={self.log})"
