"""Captum-style ``target`` handling.

- :func:`validate_target` and :func:`make_selector`: any Captum target, for
  batches of example-reference pairs;
- :func:`resolve_output_target`, :func:`resolve_output_targets` and
  :func:`select_outputs`: the target(s) of a model with outputs ``(B, T)``
  (one target axis), as an output index or one index per example, and
  picking them from values with a trailing ``T`` axis.
"""

from __future__ import annotations

from typing import Any, Callable, Literal

import torch
from torch import Tensor

__all__ = ["validate_target", "make_selector", "resolve_output_target", "resolve_output_targets",
           "select_outputs"]


def validate_target(target: Any, n: int, name: str = "target") -> None:
    """Raise a clear error for a malformed Captum ``target`` for ``n`` examples."""
    if target is None or isinstance(target, int) and not isinstance(target, bool):
        return
    if isinstance(target, tuple):
        if not all(isinstance(t, int) for t in target):
            raise TypeError(f"`{name}` tuple must hold ints, got {target!r}.")
        return
    if isinstance(target, Tensor):
        if target.is_floating_point() or target.is_complex() or target.dtype == torch.bool:
            raise TypeError(f"`{name}` tensor must hold integers, got dtype {target.dtype}.")
        if target.numel() == 1:
            return
        if target.ndim != 1 or target.shape[0] != n:
            raise ValueError(
                f"`{name}` tensor must have one entry per example, shape ({n},), got "
                f"{tuple(target.shape)}."
            )
        if target.is_floating_point():
            raise TypeError(f"`{name}` tensor must hold integers, got dtype {target.dtype}.")
        return
    if isinstance(target, list):
        if len(target) != n:
            raise ValueError(
                f"`{name}` list gives one target per example and must have length {n}, got "
                f"{len(target)}. For several targets use `targets=[...]`."
            )
        for i, t in enumerate(target):
            ok = isinstance(t, int) and not isinstance(t, bool) or isinstance(t, tuple) and all(
                isinstance(u, int) and not isinstance(u, bool) for u in t)
            if not ok:
                raise TypeError(
                    f"`{name}` list must hold one int (or tuple of ints) per example; "
                    f"`{name}[{i}]` is {t!r} ({type(t).__name__})."
                )
        return
    raise TypeError(
        f"`{name}` must be None, an int, a tuple of ints, a tensor or a list of length N; got "
        f"{type(target).__name__}."
    )


def _squeeze_trailing(y: Tensor, target: Any) -> Tensor:
    if y.ndim > 1 and all(s == 1 for s in y.shape[1:]):
        return y.reshape(y.shape[0])
    raise ValueError(
        f"target={target!r} selects a tensor of shape {tuple(y.shape)} from the model output; "
        "it must select one scalar per example. Pass a target that indexes every non-batch "
        "axis, or wrap the model so that it returns (B, T)."
    )


def _check_range(index: Tensor | int, size: int, target: Any, shape) -> None:
    lo = int(index.min()) if isinstance(index, Tensor) else index
    hi = int(index.max()) if isinstance(index, Tensor) else index
    if lo < -size or hi >= size:
        raise ValueError(
            f"target {target!r} is out of range for a model output of shape {tuple(shape)} "
            f"(axis 1 has {size} entries)."
        )


def make_selector(target: Any, example: Tensor, n: int) -> Callable[[Tensor], Tensor]:
    """A function mapping the model output ``(B, ...)`` to the selected ``(B,)`` outputs.

    ``example`` ``(B,)`` gives each pair's example index, used for per-example
    targets (a tensor ``(N,)`` or a list of length ``N``).
    """

    def select(y: Tensor) -> Tensor:
        if not isinstance(y, Tensor):
            raise TypeError(f"The model must return a tensor, got {type(y).__name__}.")
        if y.ndim == 0:
            raise ValueError(
                "The model must return one output row per example, shape (B,) or (B, T, ...); "
                "it returned a 0-d tensor (a scalar). Do not reduce over the batch axis."
            )
        b = y.shape[0]
        if target is None:
            return y if y.ndim == 1 else _squeeze_trailing(y, target)
        if y.ndim < 2:
            raise ValueError(
                f"target={target!r} needs an output with a target axis, but the model returned "
                f"shape {tuple(y.shape)}; use target=None."
            )
        if isinstance(target, int) or (isinstance(target, Tensor) and target.numel() == 1):
            t = int(target)
            _check_range(t, y.shape[1], target, y.shape)
            out = y[:, t]
        elif isinstance(target, tuple):
            if len(target) > y.ndim - 1:
                raise ValueError(
                    f"target {target!r} has {len(target)} indices but the model output "
                    f"{tuple(y.shape)} has {y.ndim - 1} non-batch axes."
                )
            for axis, t in enumerate(target):
                if not -y.shape[axis + 1] <= t < y.shape[axis + 1]:
                    raise ValueError(
                        f"target {target!r} is out of range for a model output of shape "
                        f"{tuple(y.shape)} (axis {axis + 1} has {y.shape[axis + 1]} entries)."
                    )
            out = y[(slice(None),) + target]
        else:
            per_example = target
            if isinstance(per_example, list) and per_example and isinstance(per_example[0], tuple):
                cols = [torch.as_tensor([t[a] for t in per_example]) for a in range(len(per_example[0]))]
                for axis, c in enumerate(cols):
                    _check_range(c, y.shape[axis + 1], target, y.shape)
                index = (torch.arange(b, device=y.device),) + tuple(
                    c.to(y.device)[example.to(y.device)] for c in cols)
                out = y[index]
            else:
                t = torch.as_tensor(per_example, dtype=torch.long)
                _check_range(t, y.shape[1], target, y.shape)
                out = y[torch.arange(b, device=y.device), t.to(y.device)[example.to(y.device)]]
        return out if out.ndim == 1 else _squeeze_trailing(out, target)

    return select


def resolve_output_target(target: Any, n: int, n_outputs: int, name: str = "target") -> int | Tensor:
    """A Captum ``target`` for a model with outputs ``(B, T)``, as an index or one per example.

    Parameters
    ----------
    target : None, int, 1-tuple of an int, Tensor or list of ints
        None (valid only when ``n_outputs == 1``); an int, negative ints
        counting from the end; a 1-tuple holding one of these; a one-element
        integer tensor; an integer tensor ``(n,)`` or a list of ``n`` ints,
        one target per example.
    n : int
        ``N``, the number of examples.
    n_outputs : int
        ``T``, the model's outputs.
    name : str
        The argument's name, for the messages. Default ``"target"``.

    Returns
    -------
    int or Tensor
        An index in ``0..T-1``, or a CPU int64 tensor ``(N,)`` of such
        indices (negative targets wrapped).

    Raises
    ------
    TypeError
        A bool, a float/complex/bool tensor, a list holding non-ints, or
        another type.
    ValueError
        None for ``T > 1``, a tuple of another length, a tensor or list that
        does not give one target per example, or an index out of
        ``-T..T-1``.
    """
    t = n_outputs
    if target is None:
        if t != 1:
            raise ValueError(
                f"`{name}` is None but the model has {t} outputs; pass an int in 0..{t - 1}, "
                "one target per example, or `targets='all'`."
            )
        return 0
    if isinstance(target, tuple):
        if len(target) != 1:
            raise ValueError(
                f"`{name}`={target!r}: the model's outputs have shape (B, T), so a tuple "
                "target must hold exactly one index."
            )
        target = target[0]
    if isinstance(target, bool):
        raise TypeError(f"`{name}` must be an int, a tensor or a list, got a bool ({target!r}).")
    if isinstance(target, Tensor):
        if target.is_floating_point() or target.is_complex() or target.dtype == torch.bool:
            raise TypeError(f"`{name}` tensor must hold integers, got dtype {target.dtype}.")
        if target.numel() == 1:
            target = int(target.item())
        else:
            validate_target(target, n, name)  # one entry per example, shape (n,)
            target = target.detach().to("cpu", torch.long)
    elif isinstance(target, list):
        if len(target) != n:
            raise ValueError(
                f"`{name}` list gives one target per example and must have length {n}, got "
                f"{len(target)}."
            )
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in target):
            raise TypeError(f"`{name}` list must hold ints, got {target[:5]!r}...")
        target = torch.tensor(target, dtype=torch.long)
    elif not isinstance(target, int):
        raise TypeError(
            f"`{name}` must be None, an int, a tensor or a list of length N; got "
            f"{type(target).__name__}."
        )
    if isinstance(target, int):
        if not -t <= target < t:
            raise ValueError(
                f"`{name}`={target} is out of range: the model has {t} output(s), expected an "
                f"int in 0..{t - 1} (or {-t}..-1)."
            )
        return target % t
    bad = ((target < -t) | (target >= t)).nonzero().flatten()
    if bad.numel():
        i = int(bad[0])
        raise ValueError(
            f"`{name}` holds {int(target[i])} for example {i}, out of range: the model has {t} "
            f"output(s), expected values in 0..{t - 1} (or {-t}..-1)."
        )
    return target % t


def resolve_output_targets(target: Any, targets: Any, n: int,
                           n_outputs: int) -> list[int | Tensor | Literal["all"]]:
    """The targets of one call taking either ``target=`` or ``targets=`` (outputs ``(B, T)``).

    Parameters
    ----------
    target
        One Captum target (see :func:`resolve_output_target`), or None.
    targets : "all", sequence of targets, or None
        ``"all"``: every output; a non-empty sequence: several targets, each
        as ``target``.
    n : int
        ``N``, the number of examples.
    n_outputs : int
        ``T``, the model's outputs.

    Returns
    -------
    list
        ``["all"]``, one resolved target per entry of ``targets``, or
        ``[resolve_output_target(target)]`` when ``targets`` is None.

    Raises
    ------
    ValueError
        Both ``target`` and ``targets``, a string other than ``"all"``, an
        empty sequence, or an invalid target.
    TypeError
        An invalid target type.
    """
    if targets is not None and target is not None:
        raise ValueError("Pass either `target` or `targets`, not both.")
    if isinstance(targets, str):
        if targets != "all":
            raise ValueError(f"`targets` must be 'all' or a sequence of targets, got {targets!r}.")
        return ["all"]
    if targets is not None:
        if len(targets) == 0:
            raise ValueError("`targets` must hold at least one target, got an empty sequence.")
        return [resolve_output_target(tg, n, n_outputs, "targets") for tg in targets]
    return [resolve_output_target(target, n, n_outputs, "target")]


def select_outputs(values: Tensor, spec: int | Tensor | Literal["all"]) -> Tensor:
    """Pick the targets of :func:`resolve_output_target` from values with a trailing ``T`` axis.

    Parameters
    ----------
    values : Tensor ``(N, ..., T)``
        Any dtype and device.
    spec : int, Tensor ``(N,)`` or ``"all"``
        An output index, one index per example (any device), or ``"all"``.

    Returns
    -------
    Tensor
        ``(N, ...)``: ``values[..., spec]`` for an int, ``values[i, ..., spec[i]]``
        per example for a tensor; ``values`` itself for ``"all"``.
    """
    if isinstance(spec, str):
        return values
    if isinstance(spec, int):
        return values[..., spec]
    idx = spec.to(values.device)
    rows = torch.arange(values.shape[0], device=values.device)
    return values.movedim(-1, 1)[rows, idx]
