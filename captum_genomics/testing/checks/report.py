"""The outcome of a check, and the error measures every check shares."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import Tensor

__all__ = ["CheckReport", "INVARIANCE_TOL"]

#: Relative tolerance of batch invariance where bitwise equality cannot hold, by
#: dtype: ``max |diff| <= tol * (1 + max |attribution|)``. On CPU, transcendental
#: activations compute a tensor's tail in scalar code and the rest vectorized,
#: and float32 convolutions (oneDNN) and matrix products (MKL) block rows by batch
#: size, so an example's result can change in the last bits with its batch. The
#: worst differences measured on the built-in catalog are ~2e-15 in float64; a
#: float64 transformer gave 1.35e-14.
INVARIANCE_TOL = {torch.float64: 1e-12, torch.float32: 1e-5}


@dataclass(frozen=True)
class CheckReport:
    """The outcome of one check.

    Attributes
    ----------
    name : str
        Which check ran.
    passed : bool
        Whether ``max_error <= tolerance`` (and any other condition the
        check names in ``details``).
    max_error : float
        The largest absolute error measured (``inf`` for mismatched shapes).
    tolerance : float
        The bound ``max_error`` was held to. ``0.0`` means bitwise equality.
    details : dict
        Check-specific measurements (per-component errors, peer deltas,
        the exception a call raised, ...).
    """

    name: str
    passed: bool
    max_error: float
    tolerance: float
    details: dict = field(default_factory=dict)

    def __bool__(self) -> bool:
        return self.passed

    def __str__(self) -> str:
        status = "passed" if self.passed else "FAILED"
        extra = ", ".join(f"{k}={_fmt(v)}" for k, v in self.details.items())
        return (f"{self.name} {status}: max error {self.max_error:.3g} (tolerance "
                f"{self.tolerance:.3g})" + (f"; {extra}" if extra else ""))


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return repr(value) if not isinstance(value, str) else value


def _max_abs_diff(a: Tensor | Sequence[Tensor], b: Tensor | Sequence[Tensor]) -> float:
    a = (a,) if isinstance(a, Tensor) else tuple(a)
    b = (b,) if isinstance(b, Tensor) else tuple(b)
    if len(a) != len(b):
        return math.inf
    worst = 0.0
    for u, v in zip(a, b):
        if u.shape != v.shape:
            return math.inf
        if u.numel():
            worst = max(worst, float((u.detach().cpu().double() - v.detach().cpu().double())
                                     .abs().max()))
    return worst


def _bitwise_same(u: Tensor, v: Tensor) -> bool:
    """``torch.equal``, with NaN equal to NaN in the same places (results hold NaN by design,
    e.g. the explained variance of a gene constant within a group)."""
    if torch.equal(u, v):
        return True
    return (u.shape == v.shape and u.dtype == v.dtype and u.is_floating_point()
            and torch.equal(u.isnan(), v.isnan())
            and torch.equal(u.nan_to_num(0.0), v.nan_to_num(0.0)))


def _equal(a: Tensor | Sequence[Tensor], b: Tensor | Sequence[Tensor]) -> bool:
    a = (a,) if isinstance(a, Tensor) else tuple(a)
    b = (b,) if isinstance(b, Tensor) else tuple(b)
    return len(a) == len(b) and all(_bitwise_same(u.cpu(), v.cpu()) for u, v in zip(a, b))


def _passes(error: float, tolerance: float, exact: bool | None = None) -> bool:
    if tolerance == 0.0 and exact is not None:
        return exact
    return error <= tolerance  # False for nan


def _as_tuple(x) -> tuple[Tensor, ...]:
    return tuple(x) if isinstance(x, (tuple, list)) else (x,)


def _model_of(explainer) -> Callable:
    model = getattr(explainer, "forward_func", None)
    if model is None:
        raise TypeError(f"`explainer` must be a Captum Attribution with a `forward_func`, got "
                        f"{type(explainer).__name__}.")
    return model


def _explicit(references) -> bool:
    return isinstance(references, Tensor) or (
        isinstance(references, (tuple, list)) and len(references) > 0
        and all(isinstance(r, Tensor) for r in references))


def _generate_references(inputs: tuple[Tensor, ...], references, n_references: int,
                         random_state: int | None) -> tuple[Tensor, ...]:
    """The references ``ShuffleDeepLiftShap`` would generate, as explicit tensors."""
    from captum_genomics.references import resolve_reference_generator

    specs = tuple(references) if isinstance(references, (tuple, list)) else (
        (references,) * len(inputs))
    n = inputs[0].shape[0]
    ex = torch.arange(n)
    return tuple(resolve_reference_generator(s)(x, n_references, example_indices=ex,
                                                random_state=random_state).to(x.dtype)
                 for s, x in zip(specs, inputs))


def _flatten_result(result) -> tuple[Tensor, ...]:
    """The tensors of a result: a tensor, nested tuples, or a dataclass (numpy fields included)."""
    if isinstance(result, Tensor):
        return (result,)
    if isinstance(result, np.ndarray):
        return (torch.from_numpy(result),) if result.dtype.kind in "biuf" else ()
    if dataclasses.is_dataclass(result) and not isinstance(result, type):
        return _flatten_result(tuple(getattr(result, f.name) for f in dataclasses.fields(result)))
    if not isinstance(result, (tuple, list)):
        return ()
    out: list[Tensor] = []
    for item in result:
        out.extend(_flatten_result(item))
    return tuple(out)
