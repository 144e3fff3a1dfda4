"""The midpoint rule for products of two input-dependent tensors.

For a bilinear ``y = f(a, b)`` (elementwise ``mul``, ``matmul``, ``bmm``) the
change is exactly ``dy = f(da, (b + b_r)/2) + f((a + a_r)/2, db)``, so the
multipliers are the ordinary derivatives at the midpoint of the two operands
(Shrikumar et al. 2017; tangermeme 1.6's bilinear rule). A product with one
constant operand is linear and keeps its ordinary gradient. This is what makes
hand-written activations such as ``x * torch.sigmoid(x)`` exact.
"""

from __future__ import annotations

import torch
from torch import Tensor

from captum_genomics.deeplift.rules.base import Rule, out_of_place, requires_grad
from captum_genomics.deeplift.rules.conv import shared_constant

__all__ = ["Product"]


def _direct_vjp(kind: str | None, am: Tensor, bm: Tensor, grad: Tensor):
    """``(grad_a, grad_b)`` of ``kind(am, bm)`` written out, or None where broadcasting or
    a 1-D operand would need autograd's general rules. ``kind``: ``"mul"``, ``"matmul"``,
    ``"mm"``, ``"bmm"`` (no extra arguments), else None."""
    if kind == "mul":
        if am.shape == bm.shape == grad.shape:
            return grad * bm, grad * am
        return None
    if kind in ("matmul", "mm", "bmm") and am.ndim >= 2 and bm.ndim >= 2 \
            and am.shape[:-2] == bm.shape[:-2]:
        return torch.matmul(grad, bm.transpose(-2, -1)), torch.matmul(am.transpose(-2, -1), grad)
    return None


def _midpoint(x: Tensor, r: Tensor) -> Tensor:
    """``(x + r) / 2`` for the examples ``x`` ``(n, ...)`` and references ``r`` ``(R, n, ...)``
    in one pass over the ``(R, n, ...)`` result: ``x / 2`` on the examples, then
    ``x / 2 + r / 2`` (halving is exact, so these are the bits of ``(x + r) / 2`` wherever
    neither halves nor the sum leave the normal range)."""
    return torch.add(x * 0.5, r, alpha=0.5)


class _ProductFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, a_rows, b_rows, ar, br, fn, pairs, kind):
        # a, b = pairs.examples(a_rows, b_rows): (n, ...); ar, br: (R, n, ...) references
        a, b = pairs.examples(a_rows), pairs.examples(b_rows)
        out = pairs.tile(fn(a, b))
        ctx.fn, ctx.pairs, ctx.kind = fn, pairs, kind
        ctx.save_for_backward(_midpoint(a, ar), _midpoint(b, br))
        return out

    @staticmethod
    def backward(ctx, grad):
        am, bm = (ctx.pairs.select(t) for t in ctx.saved_tensors)
        direct = _direct_vjp(ctx.kind, am, bm, grad)
        if direct is not None:  # the product's derivatives at the midpoints, no recompute
            return direct[0], direct[1], None, None, None, None, None
        with torch.enable_grad():
            am_ = am.detach().requires_grad_(True)
            bm_ = bm.detach().requires_grad_(True)
            y = ctx.fn(am_, bm_)
            ga, gb = torch.autograd.grad(y, (am_, bm_), grad)
        return ga, gb, None, None, None, None, None


def _writes_into_first(func, args):
    """``Tensor.mul`` (the out-of-place function) for ``a.mul_(b)`` / ``a *= b`` of two
    tensors, else None."""
    if len(args) >= 2 and isinstance(args[0], Tensor) and isinstance(args[1], Tensor):
        return out_of_place(func)
    return None


class Product(Rule):
    """Midpoint rule for ``mul``, ``matmul``, ``mm`` and ``bmm`` of two input-dependent tensors."""

    name = "product"
    reads_examples_only = True

    def record(self, args, kwargs, output):
        if len(args) >= 2 and isinstance(args[0], Tensor) and isinstance(args[1], Tensor):
            return args[0], args[1]
        return None

    def reference(self, func, args, kwargs):
        if _writes_into_first(func, args) is not None:
            # a.mul_(b): record a as it was before the write
            before = args[0].clone()
            out = func(*args, **kwargs)
            return out, (before, args[1])
        return super().reference(func, args, kwargs)

    def apply(self, func, args, kwargs, state, pairs):
        if state is None or len(args) < 2 or not (requires_grad(args[0])
                                                  and requires_grad(args[1])):
            # a constant operand: a linear op, with autograd's own backward
            shared = shared_constant(func, args, kwargs, pairs)
            if shared is not None:
                return shared
            pairs.fill_in((args, kwargs))
            return func(*args, **kwargs)
        a, b = args[0], args[1]
        plain = _writes_into_first(func, args)
        if plain is not None:
            # a.mul_(b) as a statement: the rule on a copy of a, written back into a
            pairs.fill(a)
            out = self.apply(plain, (a.clone(),) + tuple(args[1:]), kwargs, state, pairs)
            pairs.fill(out)  # every row is read here
            a.copy_(out)
            return a
        ar, br = state

        extra = args[2:]  # not `args`: the backward keeps fn, and must not keep a and b

        def fn(u, v):
            return func(u, v, *extra, **kwargs)

        pairs = pairs.layout(a, b)
        ar, br = pairs.split(ar).to(a.dtype), pairs.split(br).to(b.dtype)
        name = getattr(func, "__name__", "").strip("_")
        kind = name if name in ("mul", "matmul", "mm", "bmm") and len(args) == 2 \
            and not kwargs else None
        return _ProductFunction.apply(a, b, ar, br, fn, pairs, kind)
