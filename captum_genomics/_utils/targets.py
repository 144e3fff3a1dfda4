"""Captum-style ``target`` handling for batches of example-reference pairs."""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import Tensor

__all__ = ["validate_target", "make_selector"]


def validate_target(target: Any, n: int, name: str = "target") -> None:
    """Raise a clear error for a malformed Captum ``target`` for ``n`` examples."""
    if target is None or isinstance(target, int) and not isinstance(target, bool):
        return
    if isinstance(target, tuple):
        if not all(isinstance(t, int) for t in target):
            raise TypeError(f"`{name}` tuple must hold ints, got {target!r}.")
        return
    if isinstance(target, Tensor):
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
