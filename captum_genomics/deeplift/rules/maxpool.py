"""The max-pool rule, exact for any window layout.

For a pooling window ``W`` with input ``x`` and reference ``r``, the change in
the output is ``dy = max(x_W) - max(r_W)``. The rule routes all of ``dy`` to a
single input position and divides it by that position's own change, so the
multipliers reproduce ``dy`` exactly:

* if ``dy >= 0`` it goes to the argmax of ``x`` in ``W``;
* if ``dy < 0`` it goes to the argmax of ``r`` in ``W``.

The chosen position always has a nonzero input change unless ``dy == 0``
(if ``x_a == r_a`` at ``a = argmax x`` then ``max x <= max r``), so the rule is
exact, including for overlapping and dilated windows, where contributions
routed to the same position accumulate. Positions whose input does not change
take the ordinary max-pool gradient (its value cannot change the sum). This is
the rule tangermeme 1.6 uses (``_maxpool`` in ``_deep_lift_utils.py``); Captum
0.9 instead splits ``dy`` half and half between the two argmaxes and falls back
to the gradient where the split position does not change, which loses
additivity after a ReLU (6.7e-2 in float64 on a conv-ReLU-max-pool block).

The same routing handles ``torch.max(x, dim)`` / ``torch.amax(x, dim)`` global
max pooling.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from captum_genomics.deeplift.kernels import fused_available as _fused_available
from captum_genomics.deeplift.rules.base import Rule, UnsupportedOperationError, requires_grad

__all__ = ["MaxPool", "MaxReduce"]


def _route(grad, ix, ir, cx, cr, dx, dim=-1):
    """Multipliers along ``dim``: ``grad * cx`` to the input argmax ``ix`` plus ``grad * cr``
    to the reference argmax ``ir``, divided by the input change ``dx``; where ``dx == 0``
    the ordinary max gradient (``grad`` to ``ix``)."""
    numer = torch.zeros_like(dx)
    numer.scatter_add_(dim, ix, grad * cx)
    numer.scatter_add_(dim, ir, grad * cr)
    fallback = torch.zeros_like(dx)
    fallback.scatter_add_(dim, ix, grad)
    zero = dx == 0
    return torch.where(zero, fallback, numer / torch.where(zero, torch.ones_like(dx), dx))


def _coefficients(y, yr):
    top = torch.maximum(y, yr)
    return top - yr, y - top


class _MaxPoolFunction(torch.autograd.Function):
    """The pool on the examples with the rule's multipliers as its backward.

    Shapes, flattened: ``x = pairs.examples(x_rows)`` ``(n, C, S)``; the reference
    pass's input ``r`` and pool ``yr``, ``ir`` ``(R * n, C, S)``, ``(R * n, C, W)``
    reference-major (``C`` every axis between the rows and the pooled axes, ``S``,
    ``W`` the flat spatial positions of input and output). ``fused``: the backward
    runs :func:`captum_genomics.deeplift.kernels.maxpool.maxpool_backward` (CPU
    float32/float64); otherwise the torch ``_route``.
    """

    @staticmethod
    def forward(ctx, x_rows, r, yr, ir, pool, spatial, pairs, fused):
        x = pairs.examples(x_rows)
        y, ix = pool(x)
        n = x.shape[0]
        c = _channels(x, spatial)
        rr = pairs.n_references
        ctx.shapes = (x_rows.shape, (x_rows.shape[0], c, -1))
        ctx.pairs, ctx.fused = pairs, fused
        if fused:  # the window coefficients and multipliers are computed in the backward
            # a copy of the example rows in the batched layout: a view would keep the
            # whole R * n tile alive
            xs = x.reshape(n, c, -1)
            ctx.save_for_backward(xs.clone() if pairs.batched else xs, r.reshape(rr * n, c, -1),
                                  y.reshape(n, c, -1), ix.reshape(n, c, -1),
                                  yr.reshape(rr * n, c, -1), ir.reshape(rr * n, c, -1))
        else:
            yr, ir = yr.reshape(rr, n, c, -1), ir.reshape(rr, n, c, -1)
            cx, cr = _coefficients(y.reshape(1, n, c, -1), yr)
            dx = x.reshape(1, n, c, -1) - r.reshape(rr, n, c, -1)
            ctx.save_for_backward(ix.reshape(1, n, c, -1), ir, cx, cr, dx)
        ix = pairs.tile(ix)
        ctx.mark_non_differentiable(ix)
        return pairs.tile(y), ix

    @staticmethod
    def backward(ctx, grad, _grad_ix):
        shape, flat = ctx.shapes
        pairs = ctx.pairs
        g = grad.reshape(flat)
        if ctx.fused:
            from captum_genomics.deeplift.kernels.maxpool import maxpool_backward

            x, r, y, ix, yr, ir = ctx.saved_tensors
            if not pairs.batched and pairs.n_references > 1:  # reference k's rows only
                n, k = pairs.n_examples, pairs.k
                r, yr, ir = r[k * n:(k + 1) * n], yr[k * n:(k + 1) * n], ir[k * n:(k + 1) * n]
            m = maxpool_backward(g, x, r, y, ix, yr, ir)
        else:
            ix, ir, cx, cr, dx = (pairs.select(t) for t in ctx.saved_tensors)
            m = _route(g, ix, ir, cx, cr, dx)
        return m.reshape(shape), None, None, None, None, None, None, None


#: the pool that returns indices, and its number of spatial (pooled) axes
_WITH_INDICES = {
    "max_pool1d": (F.max_pool1d, 1),
    "max_pool2d": (F.max_pool2d, 2),
    "max_pool3d": (F.max_pool3d, 3),
    "max_pool1d_with_indices": (F.max_pool1d, 1),
    "max_pool2d_with_indices": (F.max_pool2d, 2),
    "max_pool3d_with_indices": (F.max_pool3d, 3),
    "adaptive_max_pool1d": (F.adaptive_max_pool1d, 1),
    "adaptive_max_pool2d": (F.adaptive_max_pool2d, 2),
    "adaptive_max_pool3d": (F.adaptive_max_pool3d, 3),
    "adaptive_max_pool1d_with_indices": (F.adaptive_max_pool1d, 1),
    "adaptive_max_pool2d_with_indices": (F.adaptive_max_pool2d, 2),
    "adaptive_max_pool3d_with_indices": (F.adaptive_max_pool3d, 3),
}


def _channels(x: Tensor, spatial: int) -> int:
    """Elements per row of ``x`` between the rows (axis 0) and its ``spatial`` pooled axes."""
    c = 1
    for d in x.shape[1:max(x.ndim - spatial, 1)]:
        c *= d
    return c


def _pool_call(func, args, kwargs):
    """``(pool, spatial, want_indices)`` for a pooling call: ``pool(t)`` runs it on ``t``
    returning ``(values, indices)``; ``spatial`` its pooled axes; ``want_indices``
    whether the call asked for the indices."""
    name = getattr(func, "__name__", "")
    want_indices = bool(kwargs.get("return_indices", False)) or name.endswith("with_indices")
    base, spatial = _WITH_INDICES.get(name.strip("_"), (func, 1))
    kw = {k: v for k, v in kwargs.items() if k != "return_indices"}
    rest = args[1:]

    def pool(t):
        if base is F.max_pool1d and _channels_last_pays(t):
            return _max_pool1d_channels_last(t, rest, kw)
        return base(t, *rest, **kw, return_indices=True)

    return pool, spatial, want_indices


def _channels_last_pays(t: Tensor) -> bool:
    """Whether torch's CPU ``max_pool1d(..., return_indices=True)`` is faster on a
    channels-last copy of ``t``: a contiguous float32/float64 ``(N, C, L)`` CPU tensor."""
    return (isinstance(t, Tensor) and t.device.type == "cpu" and t.ndim == 3
            and t.dtype in (torch.float32, torch.float64) and t.is_contiguous()
            and t.shape[1] > 1)


def _max_pool1d_channels_last(t: Tensor, rest: tuple, kw: dict) -> tuple[Tensor, Tensor]:
    """``F.max_pool1d(t, ..., return_indices=True)`` through torch's channels-last kernel.

    torch's kernel for ``(N, C, L)`` storage with indices is the slow one (11.3 ms on a
    ``(20, 300, 600)`` float32 input on a 2-core EPYC; 0.7 ms without indices); on a
    channels-last copy it takes 2.9 ms, and 6.9 ms with both outputs back in the default
    layout. Values and indices are the same, ties included (first index of the maximum;
    ``tests/test_maxpool_kernel.py``). Outputs are returned contiguous.
    """
    y, i = F.max_pool1d(t.transpose(1, 2).contiguous().transpose(1, 2), *rest, **kw,
                        return_indices=True)
    return y.contiguous(), i.contiguous()


class MaxPool(Rule):
    """Exact max-pool rule for ``max_pool{1,2,3}d`` and ``adaptive_max_pool{1,2,3}d``.

    Works for overlapping, dilated and padded windows (``ceil_mode`` too) and
    for batched inputs ``(B, C, *spatial)``. When the call asked for
    ``return_indices=True`` the indices of the input pass are returned.
    Follows tangermeme 1.6's max-pool rule (see the module docstring).

    The reference pass pools once with indices and records the reference input
    with its pooled values and indices ``(r, yr, ir)``; the input pass pools the
    ``n`` examples only. On CPU in float32/float64 (outside autocast) the backward
    is one fused pass (:mod:`captum_genomics.deeplift.kernels.maxpool`), with the
    same bits as the torch version used elsewhere.
    """

    name = "maxpool"
    reads_examples_only = True

    def reference(self, func, args, kwargs):
        pool, _, want_indices = _pool_call(func, args, kwargs)
        y, i = pool(args[0])
        return ((y, i) if want_indices else y), (args[0], y, i)

    def apply(self, func, args, kwargs, state, pairs):
        x = args[0]
        if not requires_grad(x):
            pairs.fill_in((args, kwargs))
            return func(*args, **kwargs)
        pool, spatial, want_indices = _pool_call(func, args, kwargs)
        r, yr, ir = state
        if r.dtype != x.dtype:  # a reference pass in another precision: pool it in this one
            r = r.to(x.dtype)
            yr, ir = pool(r)
        y, ix = _MaxPoolFunction.apply(x, r, yr, ir, pool, spatial, pairs.layout(x),
                                       _fused_available(x, r))
        return (y, ix) if want_indices else y


class _MaxReduceFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x_rows, r, dim, keepdim, pairs):
        # x = pairs.examples(x_rows): (n, ...); r: (R, n, ...)
        x = pairs.examples(x_rows)
        y, ix = x.max(dim=dim, keepdim=True)
        yr, ir = r.max(dim=dim + 1, keepdim=True)
        cx, cr = _coefficients(y, yr)
        ctx.dim, ctx.keepdim, ctx.pairs = dim, keepdim, pairs
        ctx.save_for_backward(ix.unsqueeze(0), ir, cx, cr, x - r)
        if not keepdim:
            y, ix = y.squeeze(dim), ix.squeeze(dim)
        ix = pairs.tile(ix)
        ctx.mark_non_differentiable(ix)
        return pairs.tile(y), ix

    @staticmethod
    def backward(ctx, grad, _grad_ix):
        ix, ir, cx, cr, dx = (ctx.pairs.select(t) for t in ctx.saved_tensors)
        g = grad if ctx.keepdim else grad.unsqueeze(ctx.dim)
        return _route(g, ix, ir, cx, cr, dx, ctx.dim), None, None, None, None


def _parse_dim(args, kwargs):
    dim = args[1] if len(args) > 1 else kwargs.get("dim")
    keepdim = args[2] if len(args) > 2 else kwargs.get("keepdim", False)
    return dim, keepdim


class MaxReduce(Rule):
    """Exact rule for max over one axis: ``torch.max(x, dim)`` and ``torch.amax(x, dim)``.

    The same routing as :class:`MaxPool` with the whole axis as the window
    (global max pooling). Calls without a ``dim``, over several dims, or
    comparing two tensors (``torch.max(a, b)``) are not covered and raise
    :class:`~captum_genomics.deeplift.rules.UnsupportedOperationError` when the input
    depends on the attributed inputs.
    """

    name = "maxreduce"

    def apply(self, func, args, kwargs, state, pairs):
        x = args[0]
        if not requires_grad(x):
            return func(*args, **kwargs)
        dim, keepdim = _parse_dim(args, kwargs)
        fname = getattr(func, "__name__", "max")
        if isinstance(dim, (tuple, list)) and len(dim) == 1:
            dim = dim[0]
        if isinstance(dim, Tensor) or not isinstance(dim, int):
            raise UnsupportedOperationError(
                f"`{fname}` on an input-dependent tensor is supported over a single "
                f"integer `dim` only (global max pooling); got dim={dim!r}."
            )
        dim = dim % x.ndim
        pairs = pairs.layout(x)
        y, ix = _MaxReduceFunction.apply(x, pairs.split(state).to(x.dtype), dim, bool(keepdim),
                                         pairs)
        if fname.strip("_") == "amax":
            return y
        return torch.return_types.max((y, ix))
