"""Per-example batching: the inputs and ``additional_forward_args`` of a batch of examples.

Captum's convention: ``inputs`` is a tensor or a tuple of tensors that share
the first (batch) axis ``N``; ``additional_forward_args`` is anything, and a
tensor among it whose first axis is ``N`` holds one row per example. Every
method that splits a batch into chunks, or repeats examples once per
reference or per ablation variant, indexes those rows here.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import Tensor

from captum_genomics._utils.captum import format_additional_forward_args
from captum_genomics._utils.checks import check_finite

__all__ = ["as_input_tuple", "as_forward_args", "index_examples"]


def as_input_tuple(inputs: Any, name: str = "inputs", validate: bool = True) -> tuple[Tensor, ...]:
    """``inputs`` as a non-empty tuple of tensors sharing a first (batch) axis ``N >= 1``.

    Parameters
    ----------
    inputs : Tensor ``(N, ...)`` or sequence of Tensor ``(N, ...)``
    name : str
        The user's argument name, used in error messages. Default ``"inputs"``.
    validate : bool
        Also check that floating tensors are finite. Default True.

    Returns
    -------
    tuple of Tensor
        The same tensor objects (never copied or modified).

    Raises
    ------
    TypeError
        If an entry is not a tensor.
    ValueError
        If ``inputs`` is empty, an entry is a scalar, the batch axes differ,
        ``N == 0``, or (``validate``) a value is NaN or Inf.
    """
    tup = inputs if isinstance(inputs, (tuple, list)) else (inputs,)
    if len(tup) == 0:
        raise ValueError(f"`{name}` is empty; expected a tensor or a tuple of tensors.")
    for i, t in enumerate(tup):
        label = name if len(tup) == 1 else f"{name}[{i}]"
        if not isinstance(t, Tensor):
            raise TypeError(f"`{label}` must be a torch.Tensor, got {type(t).__name__}.")
        if t.dim() == 0:
            raise ValueError(f"`{label}` must have a batch axis (first axis), got a scalar.")
    n = tup[0].shape[0]
    for i, t in enumerate(tup):
        if t.shape[0] != n:
            raise ValueError(
                f"All tensors of `{name}` must have the same first (batch) axis; `{name}[0]` "
                f"has {n} rows, `{name}[{i}]` has {t.shape[0]}."
            )
        if validate:
            check_finite(t, name if len(tup) == 1 else f"{name}[{i}]")
    if n == 0:
        raise ValueError(f"`{name}` is an empty batch; need at least one example.")
    return tuple(tup)


def as_forward_args(args: Any, n: int, name: str = "additional_forward_args",
                    validate: bool = True) -> tuple:
    """Captum's ``additional_forward_args`` as a tuple whose tensors all have one row per example.

    Parameters
    ----------
    args : any
        None, one value, or a tuple of values (Captum's normalization).
    n : int
        ``N``, the number of examples.
    name : str
        The user's argument name, used in error messages.
    validate : bool
        Also check that floating tensors are finite. Default True.

    Returns
    -------
    tuple
        ``()`` for None.

    Raises
    ------
    ValueError
        If a tensor's first axis is not ``N``, or (``validate``) it holds NaN or Inf.
    """
    out = format_additional_forward_args(args)
    for i, a in enumerate(out):
        if isinstance(a, Tensor):
            if a.dim() == 0 or a.shape[0] != n:
                raise ValueError(
                    f"Tensor `{name}[{i}]` must have one row per example (first axis {n}), "
                    f"got shape {tuple(a.shape)}; pass other values as non-tensors."
                )
            if validate:
                check_finite(a, f"{name}[{i}]")
    return out


def index_examples(values: Sequence[Any], rows: Tensor, n: int | None = None,
                   device: torch.device | str | None = None) -> tuple:
    """Gather example rows of the per-example tensors among ``values``.

    Parameters
    ----------
    values : sequence
        Inputs or ``additional_forward_args`` (as a tuple).
    rows : Tensor ``(B,)`` of int64
        Example index of each output row (e.g. ``arange(N).repeat_interleave(K)``
        for example-reference pairs).
    n : int, optional
        ``N``. If given, only tensors with at least one axis and first axis
        ``N`` are indexed, other values pass through unchanged (Captum's rule
        for ``additional_forward_args``). Default None: every tensor is indexed.
    device : torch.device, optional
        Move the gathered tensors there. Default None: leave them where they are.

    Returns
    -------
    tuple
        Gathered tensors ``(B, ...)``, other values as given.
    """
    out = []
    for a in values:
        if isinstance(a, Tensor) and (n is None or (a.ndim > 0 and a.shape[0] == n)):
            a = a[rows.to(a.device)]
            if device is not None:
                a = a.to(device)
        out.append(a)
    return tuple(out)
