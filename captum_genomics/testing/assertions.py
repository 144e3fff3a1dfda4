"""Assertions for your own test files, in the style of ``torch.testing.assert_close``.

Each function runs one check of :mod:`captum_genomics.testing.checks` and
returns its :class:`~captum_genomics.testing.checks.CheckReport` when the
property holds. When it does not, it raises :class:`AssertionError` whose
message gives the measured figure, the bound (and why the bound is what it
is) and *where* the property failed: the example-reference pair with the
largest convergence delta, the batch size or the example whose attributions
moved, the element index of the largest difference, the list of what changed
in the model::

    from captum_genomics import ShuffleDeepLiftShap
    from captum_genomics.testing.assertions import assert_additive, assert_batch_invariant

    def test_my_model_is_additive():
        explainer = ShuffleDeepLiftShap(build_model().double().eval())
        assert_additive(explainer, x, references, target=0)      # float64: 1e-10
        assert_batch_invariant(explainer, x, references, target=0)

The location is read from the calls the check itself made (the explainer is
wrapped in a recorder that keeps every ``attribute`` result), so a failure
costs no extra attribution call except for the peer's side of
:func:`assert_agrees_with`.

Default bounds, by the working dtype (the lower precision of the inputs and of
the model's first floating parameter), each with its reason in the message:
additivity ``1e-10`` float64 / ``1e-4`` float32 (:data:`ADDITIVITY_REASON`);
batch invariance ``INVARIANCE_TOL[dtype] * (1 + max|attr|)``, relative, not
bitwise (:data:`INVARIANCE_REASON`); determinism and model state ``0``
(the same call repeats the same kernels; nothing may change); agreement
tangermeme ``1e-6``, Captum ``1e-10`` in float64, ``1e-4`` in float32
(:data:`AGREEMENT_REASON`).
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Sequence

import torch
from torch import Tensor

from captum_genomics._utils.devices import module_dtype
from captum_genomics.testing.checks import (
    CheckReport,
    check_additivity,
    check_agreement_captum_deeplift,
    check_agreement_tangermeme,
    check_batch_invariance,
    check_determinism,
    check_model_unchanged,
    reference_outputs,
)

__all__ = [
    "ADDITIVITY_ATOL",
    "AGREEMENT_ATOL",
    "assert_additive",
    "assert_batch_invariant",
    "assert_deterministic",
    "assert_model_unchanged",
    "assert_agrees_with",
]

#: Default additivity bound by dtype (see :data:`ADDITIVITY_REASON`).
ADDITIVITY_ATOL = {torch.float64: 1e-10, torch.float32: 1e-4}

ADDITIVITY_REASON = (
    "DeepLIFT's summation-to-delta is exact up to rounding: measured ~1e-16 in float64 "
    "(never above ~2e-14) on the built-in models, while an op without an exact rule "
    "typically gives 1e-3 or more; float32 rounding (eps 1.2e-7) accumulates over the "
    "forward and the contribution sums, bounded by 1e-4 for outputs of order 1")

INVARIANCE_REASON = (
    "relative to the attributions' scale, not bitwise: on CPU, transcendental activations "
    "(GELU, SiLU, Softplus, ...), matrix products and float32 convolutions pick kernels by "
    "batch size, so a correct float64 transformer differs by ~1e-14; pass atol=0, rtol=0 "
    "for bitwise equality")

#: Default agreement bounds by peer and dtype (see :data:`AGREEMENT_REASON`).
AGREEMENT_ATOL = {"tangermeme": {torch.float64: 1e-6, torch.float32: 1e-4},
                  "captum": {torch.float64: 1e-10, torch.float32: 1e-4}}

AGREEMENT_REASON = (
    "where the peer is additive the two compute the same multipliers: measured ~2e-16 "
    "(tangermeme's hypothetical contributions up to ~5e-11, from cancellation in "
    "m - sum(m * r)) and ~1e-16 against Captum's DeepLift")

_PEERS = ("tangermeme", "captum")


# ------------------------------------------------------------------------- helpers

class _Recorder:
    """Delegates to an explainer and keeps every ``attribute`` call with its result."""

    def __init__(self, explainer: Any) -> None:
        self.__dict__["_explainer"] = explainer
        self.__dict__["calls"] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.__dict__["_explainer"], name)

    def attribute(self, *args, **kwargs):
        result = self._explainer.attribute(*args, **kwargs)
        self.calls.append((args, kwargs, result))
        return result


def _as_tuple(x) -> tuple:
    return tuple(x) if isinstance(x, (tuple, list)) else (x,)


def _model(explainer: Any):
    model = getattr(explainer, "forward_func", None)
    if model is None:
        raise TypeError(f"`explainer` must be a Captum-style attribution object with a "
                        f"`forward_func` (the model), got {type(explainer).__name__}.")
    return model


def _working_dtype(explainer: Any, inputs: Any) -> torch.dtype:
    """The lower precision of the inputs' dtype and the model's first floating parameter."""
    first = _as_tuple(inputs)[0]
    if not isinstance(first, Tensor):
        raise TypeError(f"`inputs` must be a tensor or a tuple of tensors, got "
                        f"{type(first).__name__}.")
    dtypes = [first.dtype] if first.is_floating_point() else []
    dtypes.append(module_dtype(_model(explainer), dtypes[0] if dtypes else torch.float64))
    return max(dtypes, key=lambda d: torch.finfo(d).eps)


def _default(value: float | None, table: dict, dtype: torch.dtype, name: str,
             reason: str) -> tuple[float, str]:
    """``(bound, why)``: the user's value, or the default of ``dtype`` from ``table``."""
    if value is not None:
        return float(value), f"`{name}` given"
    if dtype not in table:
        raise ValueError(f"`{name}`: there is no default bound for {dtype} (defaults exist "
                         f"for {sorted(str(d) for d in table)}); pass `{name}=` explicitly.")
    return table[dtype], f"default for {dtype}: {reason}"


def _g(x: float) -> str:
    return f"{x:.3g}"


def _index(flat: int, shape: Sequence[int]) -> tuple[int, ...]:
    return tuple(int(i) for i in torch.unravel_index(torch.tensor(flat), tuple(shape)))


def _worst(a: Any, b: Any, offset: int = 0) -> tuple[float, str]:
    """Largest ``|a - b|`` over a tensor or tuple of tensors, and where (``offset`` on axis 0)."""
    a, b = _as_tuple(a), _as_tuple(b)
    if len(a) != len(b):
        return math.inf, f"{len(a)} tensors vs {len(b)} tensors"
    worst, where = 0.0, "nowhere (equal)"
    for j, (u, v) in enumerate(zip(a, b)):
        if u.shape != v.shape:
            return math.inf, f"shapes differ: {tuple(u.shape)} vs {tuple(v.shape)}"
        if not u.numel():
            continue
        d = (u.detach().cpu().double() - v.detach().cpu().double()).abs()
        d = torch.nan_to_num(d, nan=math.inf)
        flat = int(d.reshape(-1).argmax())
        value = float(d.reshape(-1)[flat])
        if value > worst or (j == 0 and value == worst and value > 0):
            idx = list(_index(flat, u.shape))
            if idx:
                idx[0] += offset
            worst = value
            where = f"index {tuple(idx)}" + (f" of output {j}" if len(a) > 1 else "")
    return worst, where


def _pair(flat: int, shape: Sequence[int]) -> str:
    idx = _index(flat, shape)
    if len(idx) == 2:
        return f"example {idx[0]}, reference {idx[1]}"
    if len(idx) == 1:
        return f"example {idx[0]}"
    return f"index {idx}"


# ------------------------------------------------------------------------- additivity

def assert_additive(explainer, inputs: Tensor | tuple[Tensor, ...], references: Any = None,
                    target: Any = None, atol: float | None = None,
                    **attribute_kwargs) -> CheckReport:
    """Assert DeepLIFT's summation-to-delta, per example-reference pair and per example.

    Runs :func:`~captum_genomics.testing.checks.check_additivity`: the
    ``(N, K)`` convergence deltas ``sum(m * (x - r)) - (f(x) - f(r))`` and
    ``sum(attributions_i) - mean_k (f(x_i) - f(r_ik))`` (``f`` run as a plain
    forward) must all be ``<= atol`` in absolute value (Shrikumar et al.
    2017, summation-to-delta; Lundberg & Lee 2017, DeepSHAP's averaging).

    Parameters
    ----------
    explainer
        A Captum-style attribution object (e.g. ``ShuffleDeepLiftShap(model)``)
        whose ``attribute`` takes ``references`` and ``return_convergence_delta``.
    inputs : Tensor ``(N, A, L)`` or tuple of ``(N, *shape_j)``, float
    references : Tensor ``(N, K, A, L)``, tuple, generator spec or None
        None (default) generates ``n_references`` (default 4) dinucleotide
        shuffles seeded by ``random_state`` (default 0).
    target
        Captum ``target``. Default None.
    atol : float, optional
        The bound. Default by dtype: ``1e-10`` (float64), ``1e-4`` (float32);
        see :data:`ADDITIVITY_REASON`.
    **attribute_kwargs
        ``n_references``, ``random_state``, ``additional_forward_args`` and
        anything ``attribute`` takes (e.g. ``batch_size``, ``strategy``).

    Returns
    -------
    CheckReport
        The passing report (``max_error``, ``tolerance``, ``details``).

    Raises
    ------
    AssertionError
        With the largest ``|delta|`` and its example-reference pair, the
        number of pairs over the bound, the example whose attributions are
        furthest from its output difference, and the bound with its reason.
    ValueError
        If ``atol`` is None and the dtype has no default bound.
    """
    atol, why = _default(atol, ADDITIVITY_ATOL, _working_dtype(explainer, inputs), "atol",
                         ADDITIVITY_REASON)
    recorder = _Recorder(explainer)
    report = check_additivity(recorder, inputs, references, target=target, atol=atol,
                              **attribute_kwargs)
    if report.passed:
        return report
    _, kwargs, (attr, delta) = recorder.calls[-1]
    fx, fr = reference_outputs(_model(explainer), inputs, kwargs["references"], target,
                               kwargs.get("additional_forward_args"))
    lines = [f"additivity failed: max error {_g(report.max_error)} exceeds the bound "
             f"atol={_g(atol)}."]
    d = torch.nan_to_num(delta.detach().double().cpu().abs(), nan=math.inf)
    if d.numel():
        order = d.reshape(-1).argsort(descending=True)
        over = [int(f) for f in order if d.reshape(-1)[f] > atol]
        lines.append(
            f"  convergence delta per pair, sum(m * (x - r)) - (f(x) - f(r)): largest |delta| "
            f"{_g(float(d.reshape(-1)[order[0]]))} at {_pair(int(order[0]), d.shape)}; "
            f"{len(over)} of {d.numel()} pairs over the bound"
            + (": " + "; ".join(_pair(f, d.shape) for f in over[:5])
               + (" ..." if len(over) > 5 else "") if over else ""))
    n = fx.shape[0]
    total = sum(a.detach().double().cpu().reshape(n, -1).sum(1) for a in _as_tuple(attr))
    gap = torch.nan_to_num((total - (fx[:, None] - fr).mean(1)).abs(), nan=math.inf)
    i = int(gap.argmax())
    lines.append(f"  sum(attributions) - mean_k (f(x) - f(r_k)), f a plain forward: largest "
                 f"{_g(float(gap[i]))} at example {i}")
    lines.append(f"  scale: largest |f(x) - f(r)| {_g(float((fx[:, None] - fr).abs().max()))}")
    lines.append("  The usual cause is an op without an exact DeepLIFT rule: run the explainer "
                 "with strict=True to have it named.")
    lines.append(f"  bound: {why}")
    raise AssertionError("\n".join(lines))


# ------------------------------------------------------------------ batch invariance

def _invariance_table() -> dict:
    # imported here: testing.models imports pytest and hypothesis
    from captum_genomics.testing.models import INVARIANCE_TOL

    return INVARIANCE_TOL


def assert_batch_invariant(explainer, inputs: Tensor | tuple[Tensor, ...],
                           references: Any = None, batch_sizes: Sequence[int] | None = None,
                           atol: float | None = None, rtol: float | None = None,
                           **attribute_kwargs) -> CheckReport:
    """Assert that an example's attributions do not depend on its batch or on ``batch_size``.

    Runs :func:`~captum_genomics.testing.checks.check_batch_invariance`:
    ``attribute(X)`` against ``attribute(X[i:i+1], example_indices=[i])`` for
    every example and against ``attribute(X, batch_size=b)`` for every ``b``.

    Parameters
    ----------
    explainer
        A Captum-style attribution object taking ``references``,
        ``example_indices`` and ``batch_size``.
    inputs : Tensor ``(N, A, L)`` or tuple of ``(N, *shape_j)``, float
    references : Tensor ``(N, K, A, L)``, tuple, generator spec or None
        None (default): generated, seeded by ``random_state`` (default 0).
    batch_sizes : sequence of int, optional
        Default ``(1, 3, K, 1000)``.
    atol, rtol : float, optional
        Passes when ``max |difference| <= atol + rtol * max|attributions|``.
        Both None (default): ``atol = rtol = INVARIANCE_TOL[dtype]``
        (:data:`captum_genomics.testing.models.INVARIANCE_TOL`: ``1e-12``
        float64, ``1e-5`` float32), a *relative* bound (see
        :data:`INVARIANCE_REASON`). One given: the other is 0. ``atol=0,
        rtol=0``: bitwise equality (``torch.equal``).
    **attribute_kwargs
        ``target``, ``n_references``, ``random_state`` and anything
        ``attribute`` takes except ``batch_size``.

    Returns
    -------
    CheckReport

    Raises
    ------
    AssertionError
        Naming each comparison over the bound (``example i`` computed alone,
        ``batch_size=b``) with its largest difference and the element index
        where it occurs (in the coordinates of the full result).
    ValueError
        If no default bound exists for the dtype, or generated references
        have no ``random_state``.
    """
    dtype = _working_dtype(explainer, inputs)
    if atol is None and rtol is None:
        table = _invariance_table()
        tol, why = _default(None, table, dtype, "atol", INVARIANCE_REASON)
        atol = rtol = tol
    else:
        atol, rtol = float(atol or 0.0), float(rtol or 0.0)
        why = "`atol`/`rtol` given" + ("; bitwise" if atol == rtol == 0.0 else "")
    recorder = _Recorder(explainer)
    report = check_batch_invariance(recorder, inputs, references, batch_sizes=batch_sizes,
                                    atol=atol, rtol=rtol, **attribute_kwargs)
    if report.passed:
        return report
    bound = report.tolerance
    calls = recorder.calls
    full = calls[0][2]
    xs = _as_tuple(inputs)
    n = xs[0].shape[0]
    failing, within = [], 0.0
    for i in range(n):
        want = tuple(a[i:i + 1] for a in _as_tuple(full))
        error, where = _worst(want, calls[1 + i][2], offset=i)
        label = f"example {i} computed alone (example_indices=[{i}]) vs in the batch of {n}"
        if error > bound or (bound == 0.0 and error != 0.0):
            failing.append(f"  {label}: max |difference| {_g(error)} at {where}")
        else:
            within = max(within, error)
    for _, kwargs, result in calls[1 + n:]:
        error, where = _worst(full, result)
        label = f"batch_size={kwargs.get('batch_size')} vs the default batch_size"
        if error > bound or (bound == 0.0 and error != 0.0):
            failing.append(f"  {label}: max |difference| {_g(error)} at {where}")
        else:
            within = max(within, error)
    terms = (f" = atol {_g(atol)} + rtol {_g(rtol)} * max|attributions| "
             f"{_g((bound - atol) / rtol)}" if rtol else "")
    lines = [f"batch invariance failed: max |difference| {_g(report.max_error)} exceeds the "
             f"bound {_g(bound)}{terms}."]
    lines += failing or [f"  (no single comparison over the bound; the check reported "
                         f"{report})"]
    lines.append(f"  every other comparison is within the bound (largest {_g(within)}).")
    lines.append(f"  bound: {why}")
    raise AssertionError("\n".join(lines))


# ------------------------------------------------------------------------ determinism

def assert_deterministic(explainer, inputs: Tensor | tuple[Tensor, ...],
                         **kwargs) -> CheckReport:
    """Assert same seed, same result (bitwise); another seed, other references.

    Runs :func:`~captum_genomics.testing.checks.check_determinism`: two calls
    with ``random_state`` must agree within ``atol`` (default 0: the same call
    repeats the same kernels on the same machine, so bitwise equality holds);
    with generated references a call with ``other_random_state`` must differ.

    Parameters
    ----------
    explainer
        A Captum-style attribution object.
    inputs : Tensor ``(N, A, L)`` or tuple of ``(N, *shape_j)``, float
    **kwargs
        ``references`` (default None: generated), ``target``,
        ``random_state`` (default 0), ``other_random_state`` (default 1),
        ``n_references`` (default 4), ``atol`` (default 0.0) and anything
        ``attribute`` takes.

    Returns
    -------
    CheckReport

    Raises
    ------
    AssertionError
        With the largest same-seed difference and its element index, or
        saying that another ``random_state`` gave identical attributions.
    """
    recorder = _Recorder(explainer)
    report = check_determinism(recorder, inputs, **kwargs)
    if report.passed:
        return report
    seed = kwargs.get("random_state", 0)
    calls = recorder.calls
    error, where = _worst(calls[0][2], calls[1][2])
    lines = ["determinism failed:"]
    if error > report.tolerance or (report.tolerance == 0.0 and not report.details["exact"]):
        lines.append(f"  two calls with random_state={seed} differ: max |difference| "
                     f"{_g(error)} at {where} (bound atol={_g(report.tolerance)}"
                     + ("; bitwise" if report.tolerance == 0.0 else "") + ").")
    if report.details.get("difference_other_seed", 1.0) <= 0.0:
        other = kwargs.get("other_random_state", 1)
        lines.append(f"  a call with other_random_state={other} returned the same attributions "
                     f"as random_state={seed} (max |difference| 0; must be > 0): the generated "
                     f"references do not depend on random_state.")
    if len(lines) == 1:
        lines.append(f"  {report}")
    raise AssertionError("\n".join(lines))


# --------------------------------------------------------------------- model state

def assert_model_unchanged(explainer, inputs: Tensor | tuple[Tensor, ...],
                           references: Any = None,
                           expect_error: type[BaseException] | tuple | None = None,
                           **kwargs) -> CheckReport:
    """Assert that ``attribute`` leaves the model, the inputs and torch's state as they were.

    Runs :func:`~captum_genomics.testing.checks.check_model_unchanged`
    (parameters, ``requires_grad`` and ``.grad``, buffers, hooks, ``training``
    flags, attributes, children, global hooks, grad mode, torch-function
    modes, the input and reference tensors; repeated calls bitwise equal).
    Nothing may change: the bound is 0.

    Parameters
    ----------
    explainer
        A Captum-style attribution object; its ``forward_func`` is the model.
    inputs : Tensor ``(N, A, L)`` or tuple of ``(N, *shape_j)``
    references : optional
        Passed as ``references=`` when not None. Default None.
    expect_error : exception type(s), optional
        Every call must raise it (e.g. ``ValueError`` for a bad target); the
        assertion then checks that a failed call leaves nothing behind.
    **kwargs
        ``repeats`` (default 2) and anything ``attribute`` takes.

    Returns
    -------
    CheckReport

    Raises
    ------
    AssertionError
        Listing every change (e.g. ``buffer 'bn.running_mean' changed``),
        the largest change of a tensor value and what the calls raised.
    """
    report = check_model_unchanged(explainer, inputs, references,
                                   expect_error=expect_error, **kwargs)
    if report.passed:
        return report
    problems = report.details["problems"]
    lines = [f"model_unchanged failed: {len(problems)} change(s) after "
             f"{kwargs.get('repeats', 2)} call(s) of attribute (bound: nothing may change):"]
    lines += [f"  - {p}" for p in problems]
    lines.append(f"  largest change of a tensor value: {_g(report.max_error)}")
    if report.details["raised"]:
        lines.append(f"  the calls raised: {report.details['raised']}")
    raise AssertionError("\n".join(lines))


# ------------------------------------------------------------------------- agreement

def _captum_pairs(model, inputs: Tensor, references: Tensor, target: Any) -> Tensor:
    """Captum's ``DeepLift`` attributions of every pair, ``(N, K, A, L)`` (as the check runs it)."""
    from captum.attr import DeepLift

    n, k = references.shape[:2]
    pair_target = target
    if isinstance(target, Tensor) and target.numel() > 1:
        pair_target = target.repeat_interleave(k)
    elif isinstance(target, list):
        pair_target = [t for t in target for _ in range(k)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = DeepLift(model).attribute(inputs.repeat_interleave(k, 0),
                                        baselines=references.reshape(n * k, *references.shape[2:]),
                                        target=pair_target)
    return out.reshape(references.shape)


def _tangermeme(model, inputs: Tensor, references: Tensor, target: int) -> Tensor:
    from tangermeme.deep_lift_shap import deep_lift_shap

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return deep_lift_shap(model, inputs, target=target, references=references,
                              device=inputs.device, batch_size=64)


def assert_agrees_with(explainer, peer: str, inputs: Tensor, references: Tensor,
                       target: Any = None, atol: float | None = None) -> CheckReport:
    """Assert agreement with a peer implementation of DeepLIFT on the same references.

    ``peer="tangermeme"`` compares the attributions with tangermeme's
    ``deep_lift_shap`` (:func:`~captum_genomics.testing.checks.check_agreement_tangermeme`);
    ``peer="captum"`` compares ``multipliers * (x - r)`` with Captum's
    ``DeepLift`` run on every example-reference pair
    (:func:`~captum_genomics.testing.checks.check_agreement_captum_deeplift`).
    Both peers attach rules to modules and treat anything else as linear, so
    they are only exact on some models: the message gives both sides' own
    convergence deltas so a disagreement can be blamed on the side that is
    not additive.

    Parameters
    ----------
    explainer
        Ours, e.g. ``ShuffleDeepLiftShap(model)``; its ``forward_func`` (an
        ``nn.Module`` returning ``(B, T)``) is given to the peer.
    peer : {"tangermeme", "captum"}
    inputs : Tensor ``(N, A, L)``, float
    references : Tensor ``(N, K, A, L)``
        Explicit references, given to both.
    target
        Captum ``target``; tangermeme takes one int column (None means 0,
        tangermeme's default). Default None.
    atol : float, optional
        Default by peer and dtype: tangermeme ``1e-6``, Captum ``1e-10`` in
        float64, ``1e-4`` in float32 (see :data:`AGREEMENT_REASON`).

    Returns
    -------
    CheckReport

    Raises
    ------
    AssertionError
        With the largest difference and where (example, reference for
        Captum, channel, position), and each side's max ``|delta|``.
    ValueError
        If ``peer`` is not one of the two, ``references`` is not a
        ``(N, K, A, L)`` tensor, or ``target`` is not an int for tangermeme.
    """
    if peer not in _PEERS:
        raise ValueError(f"`peer` must be one of {_PEERS}, got {peer!r}.")
    if not isinstance(inputs, Tensor):
        raise TypeError(f"`inputs` must be one tensor (N, A, L) for a peer comparison, got "
                        f"{type(inputs).__name__}.")
    if not isinstance(references, Tensor) or references.dim() != inputs.dim() + 1:
        raise ValueError(f"`references` must be an explicit tensor (N, K, A, L) for "
                         f"inputs of shape {tuple(inputs.shape)}, got "
                         f"{getattr(references, 'shape', type(references).__name__)}.")
    dtype = _working_dtype(explainer, inputs)
    atol, why = _default(atol, AGREEMENT_ATOL[peer], dtype, "atol", AGREEMENT_REASON)
    model = _model(explainer)
    recorder = _Recorder(explainer)
    if peer == "tangermeme":
        column = 0 if target is None else target
        if isinstance(column, bool) or not isinstance(column, int):
            raise ValueError(f"`target` must be one int output column for tangermeme, got "
                             f"{target!r}.")
        report = check_agreement_tangermeme(model, inputs, references, target=column,
                                            atol=atol, explainer=recorder)
        peer_delta = report.details["tangermeme_delta"]
    else:
        report = check_agreement_captum_deeplift(model, inputs, references, target=target,
                                                 atol=atol, explainer=recorder)
        peer_delta = report.details["captum_delta"]
    if report.passed:
        return report
    ours = recorder.calls[0][2][0]
    if peer == "tangermeme":
        theirs = _tangermeme(model, inputs, references, column)
        error, where = _worst(ours, theirs)
        located = f"{where} (example, channel, position)"
    else:
        theirs = _captum_pairs(model, inputs, references, target)
        error, where = _worst(ours * (inputs[:, None] - references), theirs)
        located = f"{where} (example, reference, channel, position)"
    ours_delta = report.details["ours_delta"]
    additive = ADDITIVITY_ATOL.get(dtype, atol)
    lines = [f"agreement with {peer} failed: max |difference| {_g(report.max_error)} "
             f"exceeds the bound atol={_g(atol)}.",
             f"  largest difference {_g(error)} at {located}",
             f"  own max |convergence delta|: ours {_g(ours_delta)}, {peer} {_g(peer_delta)}"]
    if peer_delta > additive >= ours_delta:
        lines.append(f"  {peer} is not additive on this model (its delta {_g(peer_delta)} > "
                     f"{_g(additive)}) and ours is: the disagreement is {peer}'s error (it "
                     f"attaches rules to modules and treats the rest as linear).")
    elif ours_delta > additive:
        lines.append(f"  ours is not additive on this model (delta {_g(ours_delta)} > "
                     f"{_g(additive)}): see assert_additive.")
    lines.append(f"  bound: {why}")
    raise AssertionError("\n".join(lines))
