"""Memory layout of the engine's activations: channels-last 1-D convolutions on CPU.

A 1-D convolution's activations ``(N, C, L)`` are stored channel-major by torch
(each channel's ``L`` positions contiguous). oneDNN runs the same convolution
faster when they are stored position-major ("channels last", ``(N, L, C)`` in
memory): 1.5-1.9x for the dilated 64-channel convolutions of a BPNet-style tower,
1.1-1.3x for wide first layers, measured on a 2-core AMD EPYC with torch 2.13
(``benchmarks/deeplift_vs_peers.py`` records the end-to-end effect). The engine
therefore computes every float32 ``conv1d`` on CPU as a ``conv2d`` over a
channels-last ``(N, C, 1, L)`` view and returns its output ``(N, C, L)`` with
channels-last strides ``(C * L, 1, C)``: same shape, same values up to float32
rounding, different storage. Elementwise ops (activations, residual sums) keep
that layout, so a tower of convolutions never converts between layouts; the
rules' kernels read every operand in the reference activation's memory order
(:func:`row_order`, :func:`as_rows`, :func:`from_rows`).

The engine turns this on for models where it pays (:func:`wants_channels_last`:
models with a dilated ``nn.Conv1d``, the BPNet/Basenji residual towers). For
wide-kernel models with batch norm and max-pools (Basset) it does not: their
convolutions gain little, while torch's batch norm and max-pool run slower on
channels-last storage, so they keep the default layout.

A model that calls ``.view`` on such an activation (``h.view(N, -1)``) would get
torch's "view size is not compatible" error; the engine gives it
:func:`view_or_reshape` instead, which returns the same values as a copy.

Set :data:`CHANNELS_LAST` to True or False to force the choice for every model.
"""

from __future__ import annotations

import contextlib
import contextvars
from typing import Any, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["CHANNELS_LAST", "wants_channels_last", "channels_last_activations",
           "channels_last_applies", "conv1d_channels_last", "row_order",
           "as_rows", "from_rows", "empty_rows", "repeat_rows", "in_order", "view_or_reshape"]

#: Channels-last activations for every model (True), none (False), or where they pay
#: (None, the default: :func:`wants_channels_last`).
CHANNELS_LAST: bool | None = None

_ACTIVE: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "captum_genomics_channels_last", default=False)


def wants_channels_last(model: Any) -> bool:
    """Whether the engine should run ``model``'s 1-D convolutions channels-last.

    :data:`CHANNELS_LAST` when it is set; otherwise True for an ``nn.Module`` with a
    dilated ``nn.Conv1d`` among its modules, else False. The choice depends on the
    model only, never on the data or the batch, so results stay batch invariant.
    """
    if CHANNELS_LAST is not None:
        return bool(CHANNELS_LAST)
    if not isinstance(model, torch.nn.Module):
        return False
    return any(isinstance(m, torch.nn.Conv1d) and max(m.dilation) > 1
               for m in model.modules())


@contextlib.contextmanager
def channels_last_activations(enabled: bool) -> Iterator[None]:
    """Within the block, the engine's ``conv1d`` rule runs channels-last where
    :func:`channels_last_applies` (the engine sets it around both passes)."""
    token = _ACTIVE.set(bool(enabled))
    try:
        yield
    finally:
        _ACTIVE.reset(token)


def channels_last_applies(x: Tensor, weight: Tensor) -> bool:
    """Whether ``conv1d(x, weight)`` runs channels-last: inside
    :func:`channels_last_activations` ``(True)``, CPU, float32 input and weight, a
    batched 3-D input, oneDNN enabled, no autocast."""
    return (_ACTIVE.get() and isinstance(x, Tensor) and isinstance(weight, Tensor)
            and x.device.type == "cpu" and weight.device.type == "cpu"
            and x.dtype == torch.float32 and weight.dtype == torch.float32
            and x.ndim == 3 and weight.ndim == 3
            and torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled
            and not torch.is_autocast_enabled("cpu"))


def conv1d_channels_last(x: Tensor, weight: Tensor, bias: Tensor | None,
                         stride: Sequence[int], padding: Sequence[int],
                         dilation: Sequence[int], groups: int) -> Tensor:
    """``conv1d`` as a ``conv2d`` over channels-last storage.

    Parameters
    ----------
    x : Tensor ``(N, C_in, L)``, float32 on CPU, any strides.
    weight : Tensor ``(C_out, C_in / groups, k)``; bias : Tensor ``(C_out,)`` or None.
    stride, padding, dilation : 1-tuples of ints (``padding`` already resolved from
        ``"same"``/``"valid"``); groups : int.

    Returns
    -------
    Tensor ``(N, C_out, L_out)`` with strides ``(C_out * L_out, 1, C_out)``: the values
    of ``F.conv1d`` up to float32 rounding (a different summation order).
    """
    w = weight.unsqueeze(2).contiguous(memory_format=torch.channels_last)
    out = F.conv2d(x.unsqueeze(2), w, bias, (1, stride[0]), (0, padding[0]),
                   (1, dilation[0]), groups).squeeze(2)
    # without a graph, a tensor of its own rather than a view: a custom autograd
    # Function's output may then be written in place (nn.ReLU(inplace=True))
    return out if out.requires_grad else out.detach()


def row_order(t: Tensor) -> tuple[int, ...] | None:
    """The order of ``t``'s trailing axes in memory, if ``t`` is dense with axis 0 outermost.

    Returns a permutation ``p`` of ``range(t.ndim - 1)`` such that
    ``t.permute(0, *(i + 1 for i in p))`` is contiguous (identity for a contiguous
    tensor), or None (overlapping or gapped strides, a broadcast).
    """
    if t.ndim < 2:
        return () if t.ndim == 1 or t.is_contiguous() else None
    if t.is_contiguous():
        return tuple(range(t.ndim - 1))
    inner = sorted(range(t.ndim - 1), key=lambda i: (-t.stride(i + 1), -t.shape[i + 1]))
    perm = (0,) + tuple(i + 1 for i in inner)
    if not t.permute(perm).is_contiguous():
        return None
    return tuple(inner)


def _permutation(order: tuple[int, ...]) -> tuple[int, ...]:
    return (0,) + tuple(i + 1 for i in order)


def _inverse(perm: tuple[int, ...]) -> list[int]:
    inverse = [0] * len(perm)
    for i, p in enumerate(perm):
        inverse[p] = i
    return inverse


def as_rows(t: Tensor, order: tuple[int, ...] | None) -> np.ndarray:
    """``t`` ``(k, *S)`` as a ``(k, M)`` numpy array whose rows hold ``S`` in ``order``.

    ``order`` is a permutation of the axes of ``S``, from :func:`row_order` of the
    tensor whose layout the result should follow (None: row-major). No copy when
    ``t`` is already stored that way.
    """
    t = t.detach()
    if order is not None and len(order) == t.ndim - 1:
        t = t.permute(_permutation(order))
    return t.contiguous().reshape(t.shape[0], -1).numpy()


def from_rows(a: np.ndarray, shape: Sequence[int], order: tuple[int, ...] | None) -> Tensor:
    """Inverse of :func:`as_rows`: a tensor of logical ``shape`` (``(k, *S)``) stored in
    ``order`` (no copy)."""
    shape = tuple(shape)
    t = torch.from_numpy(a)
    if order is None or len(order) != len(shape) - 1 or order == tuple(range(len(order))):
        return t.reshape(shape)
    perm = _permutation(order)
    return t.reshape([shape[p] for p in perm]).permute(_inverse(perm))


def in_order(t: Tensor, order: tuple[int, ...] | None) -> Tensor:
    """``t`` stored with its trailing axes in ``order`` (:func:`row_order`): ``t`` itself
    when it already is (or ``order`` is None), else a copy stored so.

    Gradients take the layout of the tensor autograd builds them from; the engine
    passes them on in its activations' layout so that sums of gradients (residual
    connections) and the rules' kernels never read two layouts at once.
    """
    if order is None or t.ndim != len(order) + 1 or row_order(t) == order:
        return t
    perm = _permutation(order)
    return t.permute(perm).contiguous().permute(_inverse(perm))


def empty_rows(y: Tensor, times: int) -> Tensor:
    """An uninitialised ``(times * n, ...)`` tensor stored like ``y`` ``(n, ...)``
    (channels-last stays channels-last); a tensor of its own, not a view."""
    shape = (times * y.shape[0],) + tuple(y.shape[1:])
    order = row_order(y) if y.ndim > 1 else None
    if order is None or y.is_contiguous():
        return y.new_empty(shape)
    perm = _permutation(order)
    strides = [0] * len(shape)
    step = 1
    for p in reversed(perm):
        strides[p] = step
        step *= shape[p]
    return torch.empty_strided(shape, strides, dtype=y.dtype, device=y.device)


def repeat_rows(y: Tensor, times: int) -> Tensor:
    """``y.repeat(times, 1, ...)`` stored in ``y``'s own layout (a copy).

    ``Tensor.repeat`` returns a row-major tensor whatever ``y``'s strides; this keeps a
    channels-last ``y`` channels-last, so the ops after it read it as fast as ``y``.
    """
    out = empty_rows(y, times)
    out.view(times, *y.shape).copy_(y.unsqueeze(0).expand(times, *y.shape))
    return out


def view_or_reshape(func, args: tuple, kwargs: dict):
    """``Tensor.view(*shape)``; on a tensor whose strides cannot be viewed so (a
    channels-last activation), the same values as :meth:`Tensor.reshape` would give."""
    try:
        return func(*args, **kwargs)
    except RuntimeError as error:
        x = args[0] if args else None
        if not isinstance(x, Tensor) or x.is_contiguous() or "view" not in str(error):
            raise
        shape = args[1:] if len(args) > 1 else tuple(kwargs.values())
        if len(shape) == 1 and isinstance(shape[0], (tuple, list, torch.Size)):
            shape = tuple(shape[0])
        if any(not isinstance(s, int) for s in shape):  # a dtype view: not a shape
            raise
        return x.reshape(*shape)
