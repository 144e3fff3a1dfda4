"""Batch invariance and determinism: the same attributions whatever the batching, call after call."""

from __future__ import annotations

import warnings
from typing import Any, Sequence

import torch
from torch import Tensor

from captum_genomics.testing.checks.report import (INVARIANCE_TOL, CheckReport, _as_tuple, _equal, _explicit,
                                                   _flatten_result, _max_abs_diff, _passes)

__all__ = ["check_batch_invariance", "check_determinism"]


def check_batch_invariance(
    explainer,
    inputs: Tensor | tuple[Tensor, ...],
    references: Any = None,
    target: Any = None,
    batch_sizes: Sequence[int] | None = None,
    n_references: int = 4,
    random_state: int | None = 0,
    atol: float | None = None,
    rtol: float | None = None,
    **attribute_kwargs,
) -> CheckReport:
    """An example's attributions do not depend on the batch it is computed in.

    Compares ``attribute(X)`` with

    * ``attribute(X[i:i+1], example_indices=[i])`` for every example ``i``
      (with ``references[i:i+1]`` when they are explicit tensors), and
    * ``attribute(X, batch_size=b)`` for every ``b`` in ``batch_sizes``.

    Parameters
    ----------
    explainer
        A Captum-style attribution object taking ``references``,
        ``example_indices`` and ``batch_size``.
    inputs : Tensor ``(N, A, L)`` or tuple of ``(N, *shape_j)``
    references : Tensor ``(N, K, A, L)``, tuple, or a generator spec
        Default None (generated dinucleotide shuffles, seeded by
        ``random_state``; a generated-reference check needs a seed).
    target
        Captum ``target``; a per-example tensor or list is sliced with the
        examples. Default None.
    batch_sizes : sequence of int, optional
        Default ``(1, 3, K, 1000)``.
    n_references, random_state
        For generated references. Defaults 4 and 0.
    atol, rtol : float, optional
        Passes when ``max_error <= atol + rtol * max|attributions|``; both
        ``0.0`` requires bitwise equality (``torch.equal``), right only where
        the kernels allow it. Default None: ``atol=0`` and
        ``rtol=INVARIANCE_TOL[dtype]`` (``1e-12`` in float64, ``1e-5`` in
        float32): on CPU some kernels cannot give bitwise batch invariance
        (transcendental activations such as ELU, SiLU, Softplus, Sigmoid compute
        the tail of a tensor in scalar code and the rest vectorized; float32
        convolutions (oneDNN) and matrix products (MKL) block rows by batch
        size), so a correct float64 transformer differs by ~1e-14.
    **attribute_kwargs
        Passed to every ``attribute`` call.

    Returns
    -------
    CheckReport
        ``tolerance`` is ``atol + rtol * max|attributions|``; ``details``:
        ``per_example`` and ``per_batch_size`` (max errors), ``exact``
        (whether every comparison was bitwise equal).
    """
    if not _explicit(references) and random_state is None:
        raise ValueError("Batch invariance with generated references needs a seed: pass "
                         "`random_state`.")
    xs = _as_tuple(inputs)
    if atol is None and rtol is None:
        atol, rtol = 0.0, INVARIANCE_TOL.get(xs[0].dtype, INVARIANCE_TOL[torch.float32])
    atol, rtol = float(atol or 0.0), float(rtol or 0.0)
    is_tuple = isinstance(inputs, (tuple, list))
    n = xs[0].shape[0]
    k = _as_tuple(references)[0].shape[1] if _explicit(references) else n_references
    sizes = tuple(batch_sizes) if batch_sizes is not None else (1, 3, k, 1000)
    common = dict(target=target, random_state=random_state, n_references=n_references,
                  **attribute_kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        full = explainer.attribute(inputs, references=references, **common)
        per_example, per_size, exact = 0.0, {}, True
        for i in range(n):
            x_i = tuple(x[i:i + 1] for x in xs)
            r_i = references
            if _explicit(references):
                r_i = tuple(r[i:i + 1] for r in _as_tuple(references))
                r_i = r_i if is_tuple else r_i[0]
            t_i = target
            if isinstance(target, Tensor) and target.numel() > 1:
                t_i = target[i:i + 1]
            elif isinstance(target, list):
                t_i = target[i:i + 1]
            one = explainer.attribute(x_i if is_tuple else x_i[0], references=r_i,
                                      example_indices=[i], **{**common, "target": t_i})
            want = tuple(a[i:i + 1] for a in _as_tuple(full))
            per_example = max(per_example, _max_abs_diff(want, one))
            exact &= _equal(want, one)
        for b in sizes:
            other = explainer.attribute(inputs, references=references, batch_size=b, **common)
            per_size[b] = _max_abs_diff(full, other)
            exact &= _equal(full, other)
    error = max([per_example, *per_size.values()])
    scale = max((float(a.detach().abs().max()) for a in _flatten_result(full) if a.numel()),
                default=0.0)
    tolerance = atol + rtol * scale
    return CheckReport("batch_invariance", _passes(error, tolerance, exact), error, tolerance,
                       {"per_example": per_example, "per_batch_size": per_size,
                        "exact": exact})


def check_determinism(
    explainer,
    inputs: Tensor | tuple[Tensor, ...],
    references: Any = None,
    target: Any = None,
    random_state: int = 0,
    other_random_state: int = 1,
    n_references: int = 4,
    atol: float = 0.0,
    **attribute_kwargs,
) -> CheckReport:
    """Same seed, same result; another seed, another result.

    Two calls with ``random_state`` must agree within ``atol`` (bitwise for
    the default ``0.0``). When the references are generated, a call with
    ``other_random_state`` must differ from them (different references);
    with explicit reference tensors only the repeat is checked.

    Parameters
    ----------
    explainer
        A Captum-style attribution object.
    inputs : Tensor ``(N, A, L)`` or tuple of ``(N, *shape_j)``
    references : Tensor ``(N, K, A, L)``, tuple, or a generator spec
        Default None (generated dinucleotide shuffles).
    target
        Captum ``target``. Default None.
    random_state, other_random_state : int
        The seed repeated, and a different one. Defaults 0 and 1.
    n_references : int
        ``K`` for generated references. Default 4.
    atol : float
        Bound on the difference of the two same-seed calls. Default ``0.0``.
    **attribute_kwargs
        Passed to every ``attribute`` call.

    Returns
    -------
    CheckReport
        ``max_error`` is the same-seed difference; ``details``: ``exact`` and,
        for generated references, ``difference_other_seed`` (must be > 0).
    """
    common = dict(references=references, target=target, n_references=n_references,
                  **attribute_kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        first = explainer.attribute(inputs, random_state=random_state, **common)
        second = explainer.attribute(inputs, random_state=random_state, **common)
        details: dict[str, Any] = {"exact": _equal(first, second)}
        differs = True
        if not _explicit(references):
            other = explainer.attribute(inputs, random_state=other_random_state, **common)
            details["difference_other_seed"] = _max_abs_diff(first, other)
            differs = details["difference_other_seed"] > 0
    error = _max_abs_diff(first, second)
    return CheckReport("determinism", _passes(error, atol, details["exact"]) and differs,
                       error, atol, details)
