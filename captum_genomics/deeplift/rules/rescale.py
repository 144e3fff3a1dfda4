"""The rescale rule for elementwise nonlinearities.

DeepLIFT's rescale rule (Shrikumar, Greenside & Kundaje 2017, "Learning
Important Features Through Propagating Activation Differences", ICML) replaces
the derivative of an elementwise function ``f`` by the secant
``(f(x) - f(r)) / (x - r)`` between the input activation ``x`` and its
reference ``r``. Where ``|x - r| < eps`` the secant is numerically unstable and
the ordinary derivative at ``x`` is used instead, as Captum and tangermeme do
(tangermeme's threshold of ``1e-6`` is the default, so the two agree).
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from captum_genomics.deeplift.kernels import fused_available
from captum_genomics.deeplift.rules.base import (
    Rule,
    UnsupportedOperationError,
    out_of_place,
    requires_grad,
    strip_inplace,
)

__all__ = ["Rescale", "elementwise_derivative"]


def _writes_into_input(func: Callable, args: tuple, kwargs: dict) -> Callable | None:
    """The out-of-place function of a call that writes into its input (``x.relu_()``,
    ``torch.sigmoid_(x)``, ``F.relu(x, inplace=True)``), or None.

    The rule runs it out of place and writes the result into ``x``, so a model that relies
    on the write (the call as a statement) sees what it would without the rule.
    """
    if not args or not isinstance(args[0], Tensor):
        return None
    if kwargs.get("inplace"):
        return func  # run out of place: strip_inplace
    return out_of_place(func)


def _is_relu(name: str, rest: tuple, kwargs: dict) -> bool:
    """``relu(x)`` with no arguments besides ``x`` (``rest``) but ``inplace``."""
    return (name.strip("_") == "relu" and not rest
            and not {k: v for k, v in kwargs.items() if k != "inplace"})


def elementwise_derivative(fn: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    """Ordinary derivative of an elementwise ``fn`` at ``x``; same shape and dtype as ``x``."""
    with torch.enable_grad():
        xx = x.detach().requires_grad_(True)
        yy = fn(xx)
        (d,) = torch.autograd.grad(yy, xx, torch.ones_like(yy), allow_unused=True)
    return torch.zeros_like(x) if d is None else d


class _RescaleFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x_rows, r, fn, fn_ref, eps, pairs, fused, yr):
        # x_rows: the input pass's rows; x = pairs.examples(x_rows): (n, ...) inputs;
        # r: (R * n, ...) references, reference-major; ratio: (R, n, ...)
        # fn_ref applies the op with the reference pass's own constant arguments, which
        # may be batch-shaped (R * n rows) where the input pass's have n rows
        x = pairs.examples(x_rows)
        y = fn(x)
        ctx.pairs = pairs
        ctx.fused, ctx.eps = fused, eps
        if fused:  # ReLU on CPU: the multipliers are computed in the backward's one pass
            # a copy of the example rows: a view would keep the whole R * n tile alive
            ctx.save_for_backward(x.clone() if pairs.batched else x, pairs.split(r))
            return pairs.tile(y)
        if yr is not None:  # f(r) from the reference pass: one pass (deeplift.kernels)
            from captum_genomics.deeplift.kernels.rescale import secant_multipliers

            ratio = secant_multipliers(x, y, elementwise_derivative(fn, x), pairs.split(r),
                                       pairs.split(yr), eps)
            ctx.save_for_backward(ratio)
            return pairs.tile(y)
        ratio = fn_ref(r)
        if ratio.data_ptr() == r.data_ptr():
            ratio = ratio.clone()
        ratio = pairs.split(ratio)
        torch.sub(y, ratio, out=ratio)
        dx = x - pairs.split(r)
        ratio.div_(dx)
        small = dx.abs_() < eps
        del dx
        if bool(small.any()):  # the derivative costs a forward and backward of fn on x
            torch.where(small, elementwise_derivative(fn, x).expand_as(ratio), ratio, out=ratio)
        ctx.save_for_backward(ratio)
        return pairs.tile(y)

    @staticmethod
    def backward(ctx, grad):
        pairs = ctx.pairs
        if ctx.fused:
            from captum_genomics.deeplift.kernels.rescale import relu_backward

            x, r = ctx.saved_tensors
            if not pairs.batched and r.shape[0] > 1:
                r = r[pairs.k:pairs.k + 1]
            elif pairs.batched and pairs.n_backward > 1:  # several targets: keep the ratio
                ratio = getattr(ctx, "ratio", None)
                if ratio is None:  # 1 * ratio: the kernel's bits, as grad * ratio are
                    ratio = ctx.ratio = relu_backward(torch.ones_like(grad), x, r, ctx.eps)
                return grad * ratio, None, None, None, None, None, None, None
            return relu_backward(grad, x, r, ctx.eps), None, None, None, None, None, None, None
        (ratio,) = ctx.saved_tensors
        return grad * pairs.select(ratio), None, None, None, None, None, None, None


class Rescale(Rule):
    """Rescale rule for an elementwise function of one input-dependent tensor.

    Applies to any function whose first argument is the input-dependent tensor
    and whose other arguments are constants (slopes, bounds, learned PReLU
    weights), e.g. ``relu``, ``gelu``, ``silu``, ``sigmoid``, ``tanh``,
    ``softplus``, ``leaky_relu``, ``exp``, ``clamp``, ``pow(x, 2)``.

    Parameters
    ----------
    eps
        Below this absolute input difference the ordinary derivative at the
        input replaces the secant. Default ``1e-6`` (tangermeme's value).

    Multipliers are ``grad_output * (f(x) - f(r)) / (x - r)``, shaped like the
    input. ``inplace=True`` calls are run out of place.
    """

    name = "rescale"
    reads_examples_only = True

    def __init__(self, eps: float = 1e-6):
        self.eps = float(eps)

    def record(self, args, kwargs, output):
        # the reference activation and the constant arguments it was called with
        return args[0], args[1:], kwargs, None

    def reference(self, func, args, kwargs):
        plain = _writes_into_input(func, args, kwargs)
        if plain is not None:  # x.relu_(): on a copy (recorded), written back into x
            out, state = self.reference(plain, (args[0].clone(),) + args[1:],
                                        strip_inplace(kwargs))
            args[0].copy_(out)
            return args[0], state
        kwargs = strip_inplace(kwargs)
        out = func(*args, **kwargs)
        r, rest, kw, _ = self.record(args, kwargs, out)
        # for the one-pass kernel (CPU float32/float64; not ReLU, whose kernel needs none):
        # f(r) with its version counter, so that an in-place change by the model is noticed
        keep = (isinstance(out, Tensor) and isinstance(r, Tensor) and out.shape == r.shape
                and fused_available(r, out)
                and not _is_relu(getattr(func, "__name__", ""), rest, kw))
        return out, (r, rest, kw, (out, out._version) if keep else None)

    def apply(self, func, args, kwargs, state, pairs):
        plain = _writes_into_input(func, args, kwargs)
        if plain is not None and requires_grad(args[0]):
            # x.relu_(): the rule on a copy of x (its saved tensors must not change), written
            # back into x, whose history then continues through the rule
            pairs.fill(args[0])
            out = self.apply(plain, (args[0].clone(),) + args[1:], strip_inplace(kwargs),
                             state, pairs)
            pairs.fill(out)  # every row is read here
            args[0].copy_(out)
            return args[0]
        kwargs = strip_inplace(kwargs)
        x = args[0]
        if not requires_grad(x):
            pairs.fill_in((args, kwargs))
            return func(*args, **kwargs)
        if any(requires_grad(a) for a in args[1:]) or any(
            requires_grad(v) for v in kwargs.values()
        ):
            raise _two_inputs_error(func)
        rest = args[1:]
        r, ref_rest, ref_kwargs, recorded = state
        ref_kwargs = strip_inplace(ref_kwargs)

        pairs = pairs.layout(x)
        if pairs.batched:  # constant arguments with the pair rows: those of the examples
            rest = tuple(pairs.constant(a, x.ndim) for a in rest)
            kwargs = {k: pairs.constant(v, x.ndim) for k, v in kwargs.items()}

        def fn(t):
            return func(t, *rest, **kwargs)

        def fn_ref(t):
            return func(t, *ref_rest, **ref_kwargs)

        r = r.to(x.dtype)
        fused = _is_relu(getattr(func, "__name__", ""), rest, kwargs) and fused_available(x, r)
        yr = None
        if recorded is not None and recorded[0]._version == recorded[1] \
                and fused_available(x, r, recorded[0]):
            yr = recorded[0]
        return _RescaleFunction.apply(x, r, fn, fn_ref, self.eps, pairs, fused, yr)

    def __repr__(self):
        return f"Rescale(eps={self.eps:g})"


def _two_inputs_error(func) -> NotImplementedError:
    name = getattr(func, "__name__", repr(func))
    return UnsupportedOperationError(
        f"`{name}` is called with more than one input-dependent tensor; the "
        "rescale rule covers functions of one input-dependent tensor only. "
        "Register a rule for it (see captum_genomics.deeplift.rules.RuleRegistry)."
    )
