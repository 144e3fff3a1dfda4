"""Convolutions, dense layers and sums in the input pass: linear ops, not DeepLIFT rules.

A linear op keeps its ordinary gradient under DeepLIFT, so these "rules" change
only how the input pass computes it:

* **Once per example** (the engine's ``"batched"`` strategy). There the input
  pass holds every example-reference pair as its own row, ``R`` copies of each
  example (see :class:`~captum_genomics.deeplift.rules.base.PairCursor`). The
  convolution or dense layer runs on the ``n`` distinct rows only and its output
  is repeated, so the input pass costs ``n`` rows of these ops, not ``R * n``;
  the backward computes the input gradient of all ``R * n`` pair rows in one
  batched call (``aten.convolution_backward`` with only the input gradient, or
  ``grad @ W`` for ``linear``). Parameter gradients are never computed.
* **Stride-1 ``conv1d``** (any layout): the gradient of ``conv1d(x, W)`` with respect
  to ``x`` is itself a convolution, of the upstream gradient with the weights
  flipped along the kernel and with in/out channels swapped, padded by
  ``d(k-1) - p``. On CPU, oneDNN runs that forward convolution about 1.45x faster
  than ``convolution_backward`` for dilated 64-channel layers, so it is used where
  it applies: stride 1, one group, integer padding no larger than ``d(k-1)``, at
  least ``MIN_CHANNELS`` input channels (narrow first layers are faster through
  the default path).
* **Narrow stride-1 ``conv1d`` with many filters** (a one-hot first layer of 128 or more
  filters, on CPU): the input gradient is one GEMM of the upstream gradient with the
  weights, ``(rows, L, O) @ (O, K * C)``, and a fold of its ``K`` shifted slices (one
  reduction over a strided view), about twice as fast as oneDNN's
  ``convolution_backward`` there.

* **Sums** (``add``/``sub`` of two input-dependent tensors of one shape, a residual
  connection): in the batched layout the sum of the distinct rows, repeated; the
  backward passes the gradient of every pair row through (:func:`shared_sum`, which
  the engine calls for these ops; they have no rule).
* **Constant operands** (``x * c``, ``x / c``, ``x + c``, ``x - c``, ``c - x`` with ``c``
  a number or a tensor without pair rows: an attention score scale, a bias, a mask): in
  the batched layout the op on the distinct rows, repeated, with autograd's own backward
  over every pair row (:func:`shared_constant`, which the engine and the Product rule
  call for these ops).

Anything else (an input-dependent weight, a padding mode this module does not
translate, broadcasting sums) runs unchanged, with autograd's own backward. The
values agree with autograd's to rounding. Remove these with
``default_rules().without("conv1d", "conv2d", "conv3d", "linear")``.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from captum_genomics.deeplift.layout import (
    channels_last_applies,
    conv1d_channels_last,
    in_order,
    row_order,
)
from captum_genomics.deeplift.rules.base import PairCursor, Rule, out_of_place, requires_grad
from captum_genomics.deeplift.rules.ops import normalize_op_name

__all__ = ["Conv1dInputGradient", "SharedLinear", "SharedBatchNorm", "shared_sum",
           "shared_constant", "MIN_CHANNELS", "GEMM_MIN_FILTERS"]

#: Narrower inputs keep autograd's backward for stride-1 conv1d (faster there).
MIN_CHANNELS = 16

#: Narrower-than-``MIN_CHANNELS`` conv1d layers with at least this many filters take their
#: input gradient as a GEMM and a fold on CPU (:func:`_gemm_fold_input_gradient`).
GEMM_MIN_FILTERS = 128

_CONV_ARGS = ("input", "weight", "bias", "stride", "padding", "dilation", "groups")
_LINEAR_ARGS = ("input", "weight", "bias")


class _SharedFunction(torch.autograd.Function):
    """``tile(op(examples(x)))`` forward; ``vjp(grad)`` over every input row backward."""

    @staticmethod
    def forward(ctx, x_rows, compute, vjp, pairs):
        ctx.vjp, ctx.shape = vjp, x_rows.shape
        return pairs.tile(compute(pairs.examples(x_rows)))

    @staticmethod
    def backward(ctx, grad):
        return ctx.vjp(grad, ctx.shape), None, None, None


def _tuple(value: Any, d: int) -> tuple[int, ...] | None:
    """``value`` as a ``d``-tuple of ints, or None when it is not one."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return (value,) * d
    if isinstance(value, (tuple, list)) and all(
            isinstance(v, int) and not isinstance(v, bool) for v in value):
        if len(value) == d:
            return tuple(value)
        if len(value) == 1:
            return (value[0],) * d
    return None


def _padding(value: Any, kernel: tuple[int, ...], dilation: tuple[int, ...]):
    """Symmetric integer padding per spatial axis (``"valid"``; ``"same"`` when even)."""
    if value == "valid":
        return (0,) * len(kernel)
    if value == "same":
        total = [d * (k - 1) for k, d in zip(kernel, dilation)]
        return None if any(t % 2 for t in total) else tuple(t // 2 for t in total)
    return _tuple(value, len(kernel))


def _geometry(bound: dict, weight: Tensor) -> tuple | None:
    """``(stride, padding, dilation, groups)`` of a bound convolution call, as tuples of
    ints per spatial axis (padding resolved from ``"valid"``/``"same"``) and an int, or
    None for arguments this module does not translate."""
    d = weight.ndim - 2
    stride = _tuple(bound.get("stride", 1), d)
    dilation = _tuple(bound.get("dilation", 1), d)
    groups = bound.get("groups", 1)
    if stride is None or dilation is None or not isinstance(groups, int) or \
            isinstance(groups, bool):
        return None
    padding = _padding(bound.get("padding", 0), tuple(weight.shape[2:]), dilation)
    return None if padding is None else (stride, padding, dilation, groups)


def _conv_vjp(weight: Tensor, stride, padding, dilation, groups,
              channels_last: bool = False) -> Callable:
    """Input gradient of a convolution for ``grad`` over any number of rows
    (channels-last where the forward was, :mod:`captum_genomics.deeplift.layout`); its
    ``own_kernel`` attribute says whether it computes it otherwise than autograd would
    (the flipped convolution, the GEMM and fold)."""
    d = weight.ndim - 2
    flip = (d == 1 and groups == 1 and stride == (1,) and weight.shape[1] >= MIN_CHANNELS
            and padding[0] <= dilation[0] * (weight.shape[-1] - 1))
    if flip:
        flipped = weight.flip(-1).transpose(0, 1).contiguous()
        back = dilation[0] * (weight.shape[-1] - 1) - padding[0]

        def vjp(grad, shape):
            w = flipped.to(grad.dtype)
            if channels_last and grad.dtype == torch.float32:
                return conv1d_channels_last(grad, w, None, (1,), (back,), dilation, 1)
            return F.conv1d(grad, w, None, 1, back, dilation[0], 1)
        vjp.own_kernel = True
        return vjp

    gemm = _gemm_fold_applies(weight, stride, padding, dilation, groups)

    def vjp(grad, shape):
        w = weight.to(grad.dtype)
        if gemm and grad.device.type == "cpu" and grad.ndim == 3:
            return _gemm_fold_input_gradient(grad, w, padding[0], dilation[0], shape[-1])
        dummy = grad.new_empty(1).expand(shape)
        return torch.ops.aten.convolution_backward(
            grad, dummy, w, None, list(stride), list(padding), list(dilation), False,
            [0] * d, groups, [True, False, False])[0]
    vjp.own_kernel = gemm  # else autograd's own kernel, convolution_backward
    return vjp


def _gemm_fold_applies(weight: Tensor, stride, padding, dilation, groups) -> bool:
    """Whether a ``conv1d``'s input gradient goes through :func:`_gemm_fold_input_gradient`:
    stride 1, one group, fewer than ``MIN_CHANNELS`` input channels, at least
    ``GEMM_MIN_FILTERS`` filters, padding no larger than ``d(k-1)``."""
    return (weight.ndim == 3 and groups == 1 and stride == (1,)
            and weight.shape[1] < MIN_CHANNELS and weight.shape[0] >= GEMM_MIN_FILTERS
            and padding[0] <= dilation[0] * (weight.shape[-1] - 1))


def _gemm_fold_input_gradient(grad: Tensor, weight: Tensor, padding: int, dilation: int,
                              length_in: int) -> Tensor:
    """Input gradient of a stride-1, one-group ``conv1d`` as one GEMM and a fold.

    ``grad`` ``(rows, O, L_out)`` (any strides), ``weight`` ``(O, C, K)`` of ``grad``'s
    dtype, ``length_in`` the input length ``L_in = L_out + d(K-1) - 2 * padding``; returns
    ``(rows, C, L_in)`` (a channels-last view). The GEMM gives
    ``cols[j, k, c] = sum_o grad[o, j] W[o, c, k]`` for every output position ``j``, written
    between zero margins of ``m = d(K-1) - padding`` positions; the fold
    ``x_grad[i, c] = sum_k cols[i + d(K-1-k), k, c]`` (in margin coordinates) is one
    reduction over a strided view. With few input channels (a one-hot first layer) and many
    filters, oneDNN's ``convolution_backward`` on CPU takes about twice as long as this
    (Basset's 300 x 4 x 19 layer at 600 bp, 20 rows: 11.7 vs 5.2 ms).
    """
    rows, out_channels, length = grad.shape
    channels, width = weight.shape[1], weight.shape[2]
    margin = dilation * (width - 1) - padding
    right = length_in + dilation * (width - 1) - margin - length  # = margin for stride 1
    w = weight.permute(0, 2, 1).reshape(out_channels, width * channels)  # (O, K*C)
    cols = grad.new_empty(rows, margin + length + right, width * channels)
    if margin:
        cols[:, :margin].zero_()
    if right:
        cols[:, margin + length:].zero_()
    torch.bmm(grad.transpose(1, 2), w.expand(rows, -1, -1), out=cols[:, margin:margin + length])
    s_row, s_pos = cols.stride(0), cols.stride(1)
    # with k' = K-1-k: x_grad[i, c] = sum_k' cols[i + d k', K-1-k', c]
    diagonal = cols.as_strided((rows, length_in, width, channels),
                               (s_row, s_pos, dilation * s_pos - channels, 1),
                               cols.storage_offset() + (width - 1) * channels)
    return diagonal.sum(2).transpose(1, 2)


def _linear_vjp(weight: Tensor) -> Callable:
    def vjp(grad, shape):
        return torch.matmul(grad, weight.to(grad.dtype))
    return vjp


class SharedLinear(Rule):
    """A convolution (``conv1d/2d/3d``) or ``linear`` computed once per example.

    In the engine's batched layout its input rows repeat each example once per
    reference; the op runs on the distinct rows and its input gradient covers
    every pair row in one call (see the module docstring). In the other layouts,
    and for calls it does not cover (an input-dependent weight or bias, string
    padding other than ``"valid"`` or an even ``"same"``), the op runs unchanged.
    """

    name = "shared-linear"
    reads_examples_only = True

    def record(self, args, kwargs, output):
        return None

    def reference(self, func, args, kwargs):
        bound = self._bind(func, args, kwargs)
        fast = self._channels_last(func, bound)
        if fast is None:
            return func(*args, **kwargs), None
        return fast(bound["input"]), None

    def _channels_last(self, func, bound: dict) -> Callable | None:
        """``x -> conv1d(x, weight, ...)`` on channels-last storage
        (:mod:`captum_genomics.deeplift.layout`), or None where that does not apply."""
        if getattr(func, "__name__", "") != "conv1d":
            return None
        x, weight, bias = bound.get("input"), bound.get("weight"), bound.get("bias")
        if not channels_last_applies(x, weight) or requires_grad(weight) or requires_grad(bias) \
                or (bias is not None and not (isinstance(bias, Tensor)
                                              and bias.dtype == weight.dtype)) \
                or set(bound) - set(_CONV_ARGS):
            return None
        geometry = _geometry(bound, weight)
        if geometry is None:
            return None
        weight = weight.detach()
        bias = None if bias is None else bias.detach()

        def conv(t):
            return conv1d_channels_last(t, weight, bias, *geometry)
        return conv

    def _bind(self, func, args, kwargs) -> dict:
        names = _LINEAR_ARGS if getattr(func, "__name__", "") == "linear" else _CONV_ARGS
        bound = dict(zip(names, args))
        bound.update(kwargs)
        return bound

    def apply(self, func, args, kwargs, state, pairs):
        bound = self._bind(func, args, kwargs)
        x, weight, bias = bound.get("input"), bound.get("weight"), bound.get("bias")
        fast = self._channels_last(func, bound)  # as in the reference pass

        def whole():  # the op on every row, unchanged
            pairs.fill_in((args, kwargs))
            return func(*args, **kwargs) if fast is None else fast(x)

        if not requires_grad(x) or requires_grad(weight) or requires_grad(bias) or \
                not isinstance(weight, Tensor):
            return whole()
        weight = weight.detach()
        bias = None if bias is None else bias.detach()
        vjp = self._vjp(func, bound, x, weight, fast is not None)  # the forward's layout
        if vjp is None:
            return whole()
        if pairs.batched and pairs.dedupable(x):
            layout = pairs
        elif self._own_backward_on_every_row(x, vjp):
            pairs.fill(x)
            layout = PairCursor(x.shape[0], 1)  # every row computed, nothing to share
        else:
            return whole()
        rest = {k: v for k, v in bound.items() if k not in ("input", "weight", "bias")}
        compute = fast
        if compute is None:
            def compute(t):
                return func(t, weight, bias, **rest)

        return _SharedFunction.apply(x, compute, vjp, layout)

    def _own_backward_on_every_row(self, x: Tensor, vjp: Callable) -> bool:
        """Whether, with no rows to share, the op still uses this rule's input gradient
        ``vjp`` (else autograd's own; see :class:`Conv1dInputGradient`)."""
        return False

    def _vjp(self, func, bound, x, weight, channels_last: bool) -> Callable | None:
        if getattr(func, "__name__", "") == "linear":
            return _linear_vjp(weight) if weight.ndim == 2 else None
        if weight.ndim < 3 or x.ndim != weight.ndim:  # unbatched input: leave it to autograd
            return None
        geometry = _geometry(bound, weight)
        return None if geometry is None else _conv_vjp(weight, *geometry, channels_last)


class Conv1dInputGradient(SharedLinear):
    """:class:`SharedLinear` for ``conv1d``, whose input gradient is a flipped
    convolution (stride 1, one group, ``MIN_CHANNELS`` or more input channels) or, on
    CPU, a GEMM and a fold (fewer input channels, ``GEMM_MIN_FILTERS`` or more filters)
    where those apply, in every layout (see the module docstring)."""

    name = "conv1d-input-gradient"

    def _own_backward_on_every_row(self, x, vjp):
        return x.ndim == 3 and getattr(vjp, "own_kernel", False)


_BATCH_NORM_ARGS = ("input", "running_mean", "running_var", "weight", "bias", "training",
                    "momentum", "eps")


class SharedBatchNorm(Rule):
    """``batch_norm`` with running statistics (a model in eval mode) computed once per example.

    With running statistics batch norm is a per-channel affine map,
    ``y = (x - mean) / sqrt(var + eps) * weight + bias``, so in the batched layout it
    runs on the ``n`` distinct rows (torch's own kernel: the same bits per row as on
    every row) and its input gradient is ``grad * weight / sqrt(var + eps)`` over every
    pair row. Batch statistics (``training=True``), input-dependent statistics or affine
    parameters, and the other layouts run the op unchanged, with autograd's backward.
    """

    name = "shared-batch-norm"
    reads_examples_only = True

    def record(self, args, kwargs, output):
        return None

    def apply(self, func, args, kwargs, state, pairs):
        bound = dict(zip(_BATCH_NORM_ARGS, args))
        bound.update(kwargs)
        x, mean, var = bound.get("input"), bound.get("running_mean"), bound.get("running_var")
        weight, bias = bound.get("weight"), bound.get("bias")
        eps = bound.get("eps", 1e-5)
        if (func is not F.batch_norm  # torch.batch_norm orders its arguments otherwise
                or bound.get("training", False) or not requires_grad(x) or x.ndim < 2
                or not isinstance(mean, Tensor) or not isinstance(var, Tensor)
                or any(requires_grad(t) for t in (mean, var, weight, bias))
                or not isinstance(eps, (int, float)) or set(bound) - set(_BATCH_NORM_ARGS)
                or not (pairs.batched and pairs.dedupable(x))):
            pairs.fill_in((args, kwargs))
            return func(*args, **kwargs)
        scale = torch.rsqrt(var.detach().to(x.dtype) + eps)
        if weight is not None:
            scale = scale * weight.detach().to(x.dtype)
        scale = scale.reshape(1, -1, *([1] * (x.ndim - 2)))
        rest = {k: v for k, v in bound.items() if k != "input"}

        def compute(t):
            return func(t, **rest)

        def vjp(grad, shape):
            return grad * scale

        return _SharedFunction.apply(x, compute, vjp, pairs)


class _SharedSumFunction(torch.autograd.Function):
    """``tile(a[:n] + alpha * b[:n])`` forward; ``(grad, alpha * grad)`` backward."""

    @staticmethod
    def forward(ctx, a_rows, b_rows, alpha, pairs):
        ctx.alpha = alpha
        a, b = pairs.examples(a_rows), pairs.examples(b_rows)
        out = pairs.tile(torch.add(a, b, alpha=alpha) if alpha != 1 else a + b)
        ctx.order = row_order(out)
        return out

    @staticmethod
    def backward(ctx, grad):
        grad = in_order(grad, ctx.order)  # in the activations' layout (deeplift.layout)
        return grad, (grad if ctx.alpha == 1 else grad * ctx.alpha), None, None


def shared_sum(func, args: tuple, kwargs: dict, pairs) -> Tensor | None:
    """``add``/``sub``/``rsub`` of two input-dependent tensors of one shape, once per example.

    The engine calls it for these ops (which have no rule: they are linear) in its
    batched layout, where both operands repeat each example once per reference: the
    sum runs on the distinct rows and is repeated, so a residual connection costs ``n``
    rows of arithmetic instead of ``R * n``; the backward passes every pair row's
    gradient through. Returns None (the caller runs
    the op unchanged) for other calls: in place (``add_``), ``out=``, a constant
    operand, broadcasting, other layouts.
    """
    if not pairs.batched or len(args) != 2 or set(kwargs) - {"alpha"} or (
            out_of_place(func) is not None):  # add_/sub_: in place
        return None
    a, b = args
    alpha = kwargs.get("alpha", 1)
    name = getattr(func, "__name__", "").strip("_")
    if name in ("sub", "rsub"):
        if name == "rsub":
            a, b = b, a
        alpha = -alpha
    elif name != "add":
        return None
    if not (isinstance(alpha, (int, float)) and not isinstance(alpha, bool)
            and isinstance(a, Tensor) and isinstance(b, Tensor)
            and requires_grad(a) and requires_grad(b) and a.shape == b.shape
            and a.dtype == b.dtype and pairs.dedupable(a) and pairs.dedupable(b)):
        return None
    return _SharedSumFunction.apply(a, b, alpha, pairs)


#: ``op name -> vjp(grad, constant, alpha, x_first)`` of the ops :func:`shared_constant`
#: computes once per example: linear in their one input-dependent operand ``x``
_CONSTANT_OPS: dict[str, Callable] = {
    "mul": lambda grad, c, alpha, x_first: grad * c,
    "div": lambda grad, c, alpha, x_first: grad / c,  # x / c only (x_first)
    "add": lambda grad, c, alpha, x_first: grad if x_first or alpha == 1 else grad * alpha,
    "sub": lambda grad, c, alpha, x_first: grad if x_first else grad * -alpha,
}

#: ``c * x`` and ``c + x`` as ``Tensor.__rmul__(x, c)`` / ``__radd__``, and ``x / c`` as
#: ``__truediv__`` (registry names): the backward of ``mul``, ``add``, ``div``
_REFLECTED = {"rmul": "mul", "radd": "add", "truediv": "div"}

#: Registry names (rules.ops.normalize_op_name) the engine hands to :func:`shared_constant`;
#: ``mul`` goes through the Product rule, which calls it as well
CONSTANT_OP_NAMES = frozenset(_CONSTANT_OPS) | frozenset(_REFLECTED)


def _row_free_constant(c: Any, x: Tensor) -> bool:
    """Whether ``c`` is a constant that broadcasts against ``x`` without rows of its own:
    a Python int or float (not bool), or a tensor without grad on ``x``'s device whose
    dtype does not promote ``x``, of fewer dimensions than ``x`` or one row, that leaves
    ``x``'s shape unchanged when broadcast."""
    if isinstance(c, bool):
        return False
    if isinstance(c, (int, float)):
        return torch.result_type(x, c) == x.dtype
    if not isinstance(c, Tensor) or requires_grad(c) or c.device != x.device:
        return False
    if c.ndim > x.ndim or (c.ndim == x.ndim and c.shape[0] != 1):  # rows of its own
        return False
    try:
        shape = torch.broadcast_shapes(c.shape, x.shape)
    except RuntimeError:
        return False
    return tuple(shape) == tuple(x.shape) and torch.result_type(x, c) == x.dtype


def shared_constant(func, args: tuple, kwargs: dict, pairs) -> Tensor | None:
    """``x * c``, ``c * x``, ``x / c``, ``x + c``, ``c + x``, ``x - c`` or ``c - x`` for an
    input-dependent ``x`` and a constant ``c``, once per example.

    In the batched layout, where ``x`` ``(R * n, ...)`` repeats each example once per
    reference (:meth:`PairCursor.dedupable`) and ``c`` is a number or a tensor without
    pair rows (a score scale, a bias, a mask broadcast over the batch), the op runs on
    the ``n`` distinct rows and is repeated (a lazy tile: the repeated rows are written
    only when read). The backward is autograd's own formula for the op over every pair
    row (``grad * c``, ``grad / c``, ``grad``, ``-alpha * grad``), so the multipliers have
    the same bits as without this. Returns None (the caller runs the op unchanged) for
    anything else: other layouts, in-place calls, ``out=``, two input-dependent operands,
    ``c / x``, a constant with pair rows or one that broadcasts ``x`` to a larger shape or
    promotes its dtype.
    """
    name = normalize_op_name(getattr(func, "__name__", ""))
    name = _REFLECTED.get(name, name)
    if (name not in _CONSTANT_OPS or not pairs.batched or len(args) != 2
            or set(kwargs) - ({"alpha"} if name in ("add", "sub") else set())
            or out_of_place(func) is not None):  # mul_/add_/...: in place
        return None
    a, b = args
    x_first = requires_grad(a)
    x, c = (a, b) if x_first else (b, a)
    alpha = kwargs.get("alpha", 1)
    if (not isinstance(x, Tensor) or requires_grad(c) or not requires_grad(x)
            or (name == "div" and not x_first)
            or isinstance(alpha, bool) or not isinstance(alpha, (int, float))
            or not _row_free_constant(c, x) or not pairs.dedupable(x)):
        return None
    if isinstance(c, Tensor):
        c = c.detach()
    backward = _CONSTANT_OPS[name]

    def compute(t):
        return func(t, c, **kwargs) if x_first else func(c, t, **kwargs)

    def vjp(grad, shape):
        return backward(grad, c, alpha, x_first)

    return _SharedFunction.apply(x, compute, vjp, pairs)
