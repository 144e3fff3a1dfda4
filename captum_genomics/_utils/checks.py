"""Input validation: the one place that raises the package's clear errors.

Every check names the argument, says what was expected and what was received.
Checks never modify their inputs.
"""

from __future__ import annotations

import numbers
from typing import Sequence

import torch
from torch import Tensor

__all__ = [
    "check_tensor",
    "check_finite",
    "check_one_hot",
    "check_shape",
    "check_eval_mode",
    "check_positive_int",
]


def check_tensor(x, name: str) -> Tensor:
    """Raise ``TypeError`` unless ``x`` is a ``torch.Tensor``; return it."""
    if not isinstance(x, Tensor):
        raise TypeError(f"`{name}` must be a torch.Tensor, got {type(x).__name__}.")
    return x


def check_finite(x: Tensor, name: str) -> None:
    """Raise ``ValueError`` if floating ``x`` holds NaN or Inf.

    The message gives how many entries are not finite and the index of the first.
    NaN and Inf always make the sum non-finite, so a finite sum proves every
    entry finite: one reduction, no boolean temporary; only a non-finite sum
    (bad entries, or overflow of large finite values) runs the full check.
    """
    if x.is_floating_point() or x.is_complex():
        if x.numel() and bool(torch.isfinite(x.sum())):
            return
        bad = ~torch.isfinite(x)
        if bool(bad.any()):
            first = tuple(int(i) for i in bad.nonzero()[0].tolist())
            kind = "NaN" if bool(torch.isnan(x).any()) else "Inf"
            raise ValueError(
                f"`{name}` contains {int(bad.sum())} non-finite value(s) ({kind}), "
                f"first at index {first}; expected finite values."
            )


def check_shape(x: Tensor, name: str, shape: Sequence[int | None]) -> None:
    """Raise ``ValueError`` unless ``x.shape`` matches ``shape``.

    ``None`` in ``shape`` matches any size on that axis. The message shows the
    expected pattern (``?`` for free axes) and the received shape.
    """
    expected = "(" + ", ".join("?" if s is None else str(s) for s in shape) + ")"
    if x.ndim != len(shape) or any(
        s is not None and int(d) != int(s) for d, s in zip(x.shape, shape)
    ):
        raise ValueError(
            f"`{name}` must have shape {expected}, got {tuple(x.shape)}."
        )


def check_one_hot(x: Tensor, name: str, dim: int = -2, allow_n: bool = True) -> None:
    """Raise ``ValueError`` unless ``x`` is one-hot along ``dim``.

    Parameters
    ----------
    x
        Tensor of any dtype, e.g. sequences ``(N, 4, L)`` (``dim=1`` or ``-2``).
    name
        The argument name used in the message.
    dim
        The alphabet axis. Default ``-2``.
    allow_n
        If True (default), all-zero columns (an ``N`` base) are accepted.

    Raises
    ------
    ValueError
        If a value is not 0 or 1, or a column sums to more than 1 (or to 0 when
        ``allow_n`` is False). The message gives the first offending position.
    """
    check_finite(x, name)
    if x.numel() == 0:
        return
    binary = (x == 0) | (x == 1)
    if not bool(binary.all()):
        idx = tuple(int(i) for i in (~binary).nonzero()[0].tolist())
        raise ValueError(
            f"`{name}` must be one-hot encoded (values 0 or 1 along axis {dim}); "
            f"found value {x[idx].item()!r} at index {idx}."
        )
    s = x.sum(dim=dim)
    bad = (s > 1) if allow_n else (s != 1)
    if bool(bad.any()):
        idx = tuple(int(i) for i in bad.nonzero()[0].tolist())
        what = "all-zero columns (N) allowed" if allow_n else "no all-zero columns"
        raise ValueError(
            f"`{name}` must be one-hot encoded along axis {dim} ({what}); the "
            f"column at {idx} sums to {s[idx].item()!r}."
        )


def check_random_state(value, name: str = "random_state", allow_none: bool = True) -> int | None:
    """A seed as a Python int in ``[0, 2**64)`` (or None when ``allow_none``).

    Parameters
    ----------
    value
        The user's seed: an int (Python or numpy integer), or None.
    name
        The user's argument name, for the message. Default ``"random_state"``.
    allow_none
        Accept None (fresh entropy, not reproducible). Default True.

    Returns
    -------
    int or None

    Raises
    ------
    TypeError
        For a bool, float, string or other non-integer (or None when not allowed).
    ValueError
        For an integer outside ``[0, 2**64)``.
    """
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        allowed = "None or an int" if allow_none else "an int"
        raise TypeError(
            f"`{name}` must be {allowed} in [0, 2**64), got {value!r} ({type(value).__name__})."
        )
    if not 0 <= int(value) < 2**64:
        raise ValueError(f"`{name}` must be in [0, 2**64), got {int(value)}.")
    return int(value)


def check_positive_int(value, name: str, minimum: int = 1) -> int:
    """Raise ``ValueError`` unless ``value`` is an integer ``>= minimum``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"`{name}` must be an integer >= {minimum}, got {value!r}.")
    return value


_STOCHASTIC = (
    torch.nn.modules.dropout._DropoutNd,
    torch.nn.AlphaDropout,
    torch.nn.FeatureAlphaDropout,
    torch.nn.modules.batchnorm._BatchNorm,
    torch.nn.modules.instancenorm._InstanceNorm,
)


def check_eval_mode(model, name: str = "model") -> None:
    """Raise ``ValueError`` if ``model`` has a dropout or batch-norm layer in training mode.

    In training mode dropout draws random masks and batch-norm uses (and
    updates) batch statistics, so attributions are neither deterministic nor
    additive. The message names the first offending submodule and says to call
    ``model.eval()``.
    """
    if not isinstance(model, torch.nn.Module):
        return
    for mod in model.modules():  # names are built only for the message
        if not mod.training or not isinstance(mod, _STOCHASTIC):
            continue
        if isinstance(mod, torch.nn.modules.dropout._DropoutNd) and mod.p == 0:
            continue
        mod_name = next(name for name, m in model.named_modules() if m is mod)
        label = mod_name or type(model).__name__
        raise ValueError(
            f"`{name}` is in training mode: submodule {label!r} "
            f"({type(mod).__name__}) would use random dropout masks or batch "
            f"statistics; call `{name}.eval()` before attributing."
        )
