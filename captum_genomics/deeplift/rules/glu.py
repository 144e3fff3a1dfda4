"""Exact DeepLIFT rule for the gated linear unit ``glu(x) = a * sigmoid(b)``.

``x`` is split in halves ``a, b`` along ``dim``. With ``s = sigmoid(b)`` the
midpoint product rule gives the exact decomposition
``dy = da (s + s_r)/2 + (a + a_r)/2 * ds`` and the rescale rule gives
``ds = (ds/db) db`` (fallback: the sigmoid's derivative at ``b`` where
``|db| < eps``). These are the multipliers of tangermeme 1.6's GLU rule.
"""

from __future__ import annotations

import torch

from captum_genomics.deeplift.rules.base import Rule, requires_grad

__all__ = ["GLU"]


class _GLUFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x_rows, r, dim, eps, compute, pairs):
        # x = pairs.examples(x_rows): (n, ...); r: (R, n, ...)
        x = pairs.examples(x_rows)
        out = compute(x)
        a, b = x.chunk(2, dim)
        ar, br = r.chunk(2, dim + 1)
        s, sr = torch.sigmoid(b), torch.sigmoid(br)
        db = b - br
        small = db.abs() < eps
        ds_db = torch.where(small, s * (1 - s), (s - sr) / torch.where(small, torch.ones_like(db), db))
        ctx.dim, ctx.pairs = dim, pairs
        ctx.save_for_backward((s + sr) / 2, (a + ar) / 2 * ds_db)
        return pairs.tile(out)

    @staticmethod
    def backward(ctx, grad):
        m_a, m_b = (ctx.pairs.select(m) for m in ctx.saved_tensors)
        return torch.cat([grad * m_a, grad * m_b], ctx.dim), None, None, None, None, None


class GLU(Rule):
    """Exact rule for ``torch.nn.functional.glu`` (any axis but the batch axis).

    Parameters
    ----------
    eps
        Threshold for the sigmoid secant's fallback. Default ``1e-6``.
    """

    name = "glu"

    def __init__(self, eps: float = 1e-6):
        self.eps = float(eps)

    def apply(self, func, args, kwargs, state, pairs):
        x = args[0]
        if not requires_grad(x):
            return func(*args, **kwargs)
        dim = args[1] if len(args) > 1 else kwargs.get("dim", -1)
        dim = dim % x.ndim
        if dim == 0:
            raise ValueError("`glu` over axis 0 mixes example-reference pairs; not supported.")
        rest = args[1:]

        def compute(t):
            return func(t, *rest, **kwargs)

        pairs = pairs.layout(x)
        return _GLUFunction.apply(x, pairs.split(state).to(x.dtype), dim, self.eps, compute, pairs)
