"""The gate's suite for ``ShuffleDeepLiftShap`` on a model of one-hot sequences ``(N, 4, L)``.

Every check is one :class:`~captum_genomics.testing.gate.core.CheckResult`
with its figure, its bound and the reason for the bound, built on the check
functions of :mod:`captum_genomics.testing.checks`:

========================  =============================================  ======================
check                     figure                                         bound (f64 / f32)
========================  =============================================  ======================
additivity                max ``|sum(m (x - r)) - (f(x) - f(r))|`` over   ``1e-10`` / ``1e-4``
                          example-reference pairs (the method's deltas)
completeness              max ``|sum(attr) - (f(x) - mean_k f(r_k))|``,  ``1e-10`` / ``1e-4``
                          ``f`` run as a plain forward
batch_invariance          max change of an example's attributions with   ``tol (1 + max|attr|)``
                          ``batch_size`` 1, 3, ``N*K`` (see below),      tol ``1e-12`` /
                          alone and in a reordered batch                 ``1e-5``
determinism               max difference of two calls with one           ``0`` (bitwise) on CPU
                          ``random_state`` (another seed must differ)
agreement_tangermeme      max ``|ours - tangermeme|`` (contributions)    ``1e-6`` / ``1e-4``
agreement_captum          max ``|ours - Captum DeepLift|`` per pair      ``1e-10`` / ``1e-4``
model_unchanged           changes to the model, inputs or torch state    ``0``
                          after two calls (and repeated results differ)
model_unchanged_on_error  the same after two calls that raise            ``0``
                          (target out of range)
no_leaked_hooks           hooks and torch-function modes added by all    ``0``
                          the suite's calls (those that raised included)
========================  =============================================  ======================

``batch_size`` ``N*K`` (every pair in one batch) is what the default
``batch_size`` (64) already does when ``N*K <= 64``; it is then not run again.

The agreement checks are skipped, with the reason, when the peer is not
installed, cannot take the model's target, or is itself not additive on the
model (its own max ``|delta|`` above :data:`PEER_ADDITIVE`: it has no rule for
one of the model's ops, so agreement is not expected).

When additivity or completeness fails, the ops that break it are named with
:func:`captum_genomics.testing.localize.localize_additivity` (when that module
is available): ``details["culprits"]`` holds the ten largest violations.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import os
import traceback
import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from captum_genomics.testing.checks import (
    check_additivity,
    check_agreement_captum_deeplift,
    check_agreement_tangermeme,
    check_batch_invariance,
    check_determinism,
    check_model_unchanged,
    snapshot_state,
)
from captum_genomics.testing.gate.core import (
    CheckResult,
    GateContext,
    SkipCheck,
    register_suite,
    timed_check,
)

__all__ = [
    "ADDITIVITY_BOUND",
    "AGREEMENT_BOUND",
    "PEER_ADDITIVE",
    "default_target",
    "invariance_tolerance",
    "out_of_range_target",
    "output_shape",
    "raised_in_peer",
    "sequence_suite",
    "shape_text",
    "shuffled_references",
]

#: Additivity bound by dtype: float64 sums of ~1e3-1e5 terms round to ~1e-14.
ADDITIVITY_BOUND = {torch.float64: 1e-10, torch.float32: 1e-4}

#: Agreement bounds by peer and dtype (tangermeme's hypothetical contributions
#: cancel in ``m - sum(m * r)``: ~5e-11 measured, hence ``1e-6``).
AGREEMENT_BOUND = {
    "tangermeme": {torch.float64: 1e-6, torch.float32: 1e-4},
    "captum": {torch.float64: 1e-10, torch.float32: 1e-4},
}

#: A peer whose own max ``|convergence delta|`` exceeds this lacks a rule on the
#: model (the bound of ``captum_genomics/testing/test_agreement.py``).
PEER_ADDITIVE = {torch.float64: 1e-8, torch.float32: 1e-3}

#: How many localized ops are kept in ``details["culprits"]``.
N_CULPRITS = 10


def invariance_tolerance(dtype: torch.dtype) -> float:
    """The relative batch-invariance tolerance of ``dtype``: ``INVARIANCE_TOL[dtype]``.

    Taken from :data:`captum_genomics.testing.checks.report.INVARIANCE_TOL`
    (``1e-12`` in float64, ``1e-5`` in float32); the check passes when
    ``max |diff| <= tol * (1 + max |attribution|)``.
    """
    from captum_genomics.testing.checks.report import INVARIANCE_TOL

    return INVARIANCE_TOL.get(dtype, INVARIANCE_TOL[torch.float32])


def _bound(table: dict, dtype: torch.dtype) -> float:
    return table.get(dtype, table[torch.float32])


def shuffled_references(context: GateContext) -> Tensor:
    """The references every sequence check uses: dinucleotide shuffles of the inputs.

    Parameters
    ----------
    context : GateContext
        ``inputs`` ``(N, 4, L)`` one-hot, ``n_references`` ``K`` and
        ``random_state``.

    Returns
    -------
    Tensor ``(N, K, 4, L)``
        Uniform dinucleotide shuffles (:func:`captum_genomics.references.dinucleotide_shuffle`,
        example ``i`` seeded by ``(random_state, i, k)``), on the inputs' device and dtype:
        the references ``ShuffleDeepLiftShap`` generates itself with the same ``random_state``.
    """
    from captum_genomics.references import dinucleotide_shuffle

    x = context.inputs
    return dinucleotide_shuffle(x, context.n_references, random_state=context.random_state,
                                example_indices=torch.arange(x.shape[0])).to(x.dtype)


def output_shape(model: Callable, inputs: Tensor) -> tuple[int, ...]:
    """The non-batch shape of the model's output: ``()`` for ``(B,)``, ``(T,)`` for ``(B, T)``.

    Raises
    ------
    ValueError
        If the model does not return a tensor with a first axis of size 1
        for ``inputs[:1]``.
    """
    with torch.no_grad():
        out = model(inputs[:1])
    if not isinstance(out, Tensor) or out.ndim < 1 or out.shape[0] != 1:
        shape = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
        raise ValueError(f"the model must return (B,), (B, T) or (B, T, ...); for inputs of "
                         f"shape {tuple(inputs[:1].shape)} it returned {shape}.")
    return tuple(out.shape[1:])


def shape_text(shape: tuple[int, ...]) -> str:
    """An output's shape with its batch axis: ``(B,)``, ``(B, 3)``, ``(B, 3, 100)``."""
    return f"(B, {', '.join(map(str, shape))})" if shape else "(B,)"


def default_target(target: Any, shape: tuple[int, ...]) -> Any:
    """``target``, or when None: ``0`` for outputs ``(B, T)`` (None for ``(B,)``)."""
    return 0 if target is None and len(shape) == 1 else target


def out_of_range_target(shape: tuple[int, ...]) -> Any:
    """A target one past the output's first axis (``1`` for ``(B,)``): every call must raise."""
    if len(shape) <= 1:
        return shape[0] if shape else 1
    return (shape[0], *([0] * (len(shape) - 1)))


def raised_in_peer(error: BaseException, package: str) -> bool:
    """Whether ``error`` was raised inside ``package`` (``"captum"``, ``"tangermeme"``, ``"shap"``).

    The frames below the last frame of a ``captum_genomics.testing`` module
    (the check that called the peer) decide: the error is the peer's when
    one of them lives in ``package`` and none in ``captum_genomics`` (our
    method is wrapped by Captum's ``log_usage``, so an error of ours passes
    through a Captum frame too). Errors of the user's model called by the
    peer are the peer's.
    """
    frames = traceback.extract_tb(error.__traceback__)
    ours = [i for i, f in enumerate(frames)
            if f"{os.sep}captum_genomics{os.sep}testing{os.sep}" in f.filename]
    below = frames[ours[-1] + 1:] if ours else frames
    if any(f"{os.sep}captum_genomics{os.sep}" in f.filename for f in below):
        return False
    return any(f"{os.sep}{package}{os.sep}" in f.filename for f in below)


def _localize(model, inputs: Tensor, references: Tensor, target: Any) -> dict:
    """``{"culprits": [...]}`` from ``localize_additivity``, or why it is not there."""
    try:
        from captum_genomics.testing.localize import localize_additivity
    except ImportError:
        return {"culprits_unavailable": "captum_genomics.testing.localize is not installed"}
    try:
        rows = localize_additivity(model, inputs, references, target=target)
    except Exception as err:  # noqa: BLE001 - localization is a diagnosis, never a crash
        return {"culprits_error": f"{type(err).__name__}: {err}"}
    return {"culprits": [dataclasses.asdict(r) if dataclasses.is_dataclass(r) else dict(r)
                         for r in list(rows)[:N_CULPRITS]]}


@dataclasses.dataclass
class _Setup:
    """What the checks share: the explainer, the references, the target and the bounds."""

    context: GateContext
    explainer: Any
    references: Tensor
    target: Any
    out_shape: tuple[int, ...]
    dtype: torch.dtype
    on_cpu: bool
    cache: dict = dataclasses.field(default_factory=dict)

    @classmethod
    def build(cls, context: GateContext) -> _Setup:
        from captum_genomics import ShuffleDeepLiftShap

        x = context.inputs
        if not isinstance(x, Tensor) or x.ndim != 3 or x.shape[1] != 4:
            shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"The ShuffleDeepLiftShap suite takes one-hot inputs (N, 4, L); "
                             f"got {shape}.")
        shape = output_shape(context.model, x)
        target = default_target(context.target, shape)
        return cls(context, ShuffleDeepLiftShap(context.model), shuffled_references(context),
                   target, shape, x.dtype, x.device.type == "cpu")

    @property
    def k(self) -> int:
        return self.references.shape[1]

    def generated(self) -> dict:
        """Keyword arguments for the method's own generated references."""
        return {"references": None, "n_references": self.context.n_references,
                "random_state": self.context.random_state}

    def additivity_report(self):
        if "additivity" not in self.cache:
            self.cache["additivity"] = check_additivity(
                self.explainer, self.context.inputs, self.references, target=self.target,
                atol=_bound(ADDITIVITY_BOUND, self.dtype))
        return self.cache["additivity"]

    def generated_attributions(self) -> Tensor:
        """One default call with the method's own generated references (computed once)."""
        if "full" not in self.cache:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self.cache["full"] = self.explainer.attribute(
                    self.context.inputs, target=self.target, **self.generated()).detach()
        return self.cache["full"]

    def attribution_scale(self) -> float:
        full = self.generated_attributions()
        return float(full.abs().max()) if full.numel() else 0.0


def _additivity(s: _Setup) -> CheckResult:
    bound = _bound(ADDITIVITY_BOUND, s.dtype)

    def measure():
        report = s.additivity_report()
        details = {"pairs": s.context.inputs.shape[0] * s.k,
                   "max_abs_output_difference": report.details["max_abs_output_difference"]}
        figure = report.details["pair_delta"]
        if not figure <= bound:
            details.update(_localize(s.context.model, s.context.inputs, s.references, s.target))
        return figure, details

    return timed_check(
        "additivity", bound,
        "DeepLIFT's summation-to-delta is exact up to rounding (~1e-14 in float64, ~1e-6 "
        "in float32); a larger delta means an op without an exact rule", measure)


def _completeness(s: _Setup) -> CheckResult:
    bound = _bound(ADDITIVITY_BOUND, s.dtype)

    def measure():
        report = s.additivity_report()
        figure = report.details["sum_vs_output"]
        details: dict[str, Any] = {}
        if not figure <= bound and report.details["pair_delta"] <= bound:
            details.update(_localize(s.context.model, s.context.inputs, s.references, s.target))
        return figure, details

    return timed_check(
        "completeness", bound,
        "each example's attributions must sum to f(x) - mean_k f(r_k), with f run as a "
        "plain forward independently of the method; same rounding as additivity", measure)


def _batch_invariance(s: _Setup) -> CheckResult:
    tol = invariance_tolerance(s.dtype)
    x = s.context.inputs
    n = x.shape[0]
    # every pair in one batch is the default call's batching when N*K <= its batch_size
    default = inspect.signature(s.explainer.attribute).parameters["batch_size"].default
    sizes = tuple(b for b in dict.fromkeys((1, 3, n * s.k)) if b < n * s.k or n * s.k > default)

    def measure():
        report = check_batch_invariance(s.explainer, x, target=s.target, batch_sizes=sizes,
                                        atol=tol, rtol=tol, **s.generated())
        # batch composition: the examples in reverse order, each keeping its index
        order = torch.arange(n - 1, -1, -1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rev = s.explainer.attribute(x[order], target=s.target, example_indices=order,
                                        **s.generated())
        full = s.generated_attributions()
        reordered = float((full[order] - rev).abs().max()) if full.numel() else 0.0
        details = {"batch_sizes": list(sizes), "per_example": report.details["per_example"],
                   "per_batch_size": {str(b): e
                                      for b, e in report.details["per_batch_size"].items()},
                   "reordered": reordered, "exact": bool(report.details["exact"]
                                                         and torch.equal(full[order], rev)),
                   "max_abs_attribution": s.attribution_scale()}
        figure = max(report.max_error, reordered)
        s.cache["invariance_bound"] = tol * (1 + s.attribution_scale())
        return figure, details

    # the bound depends on the attributions: measure first, then hold to it
    result = timed_check("batch_invariance", math.inf, "", measure)
    bound = s.cache.get("invariance_bound", tol)
    passed = result.passed if result.passed is None or math.isinf(result.figure) else bool(
        result.figure <= bound)
    reason = (f"relative: {tol:g} * (1 + max|attr|); bitwise equality holds only where the "
              "CPU kernels allow it (transcendental activations, matrix products and float32 "
              "convolutions change their last bits with the batch size, ~1e-14 in float64)")
    return dataclasses.replace(result, bound=bound, passed=passed,
                               reason=result.reason if result.skipped else reason)


def _determinism(s: _Setup) -> CheckResult:
    rs = s.context.random_state
    if s.on_cpu:
        bound, reason = 0.0, ("bitwise: on CPU the same random_state gives the same references "
                              "and every kernel the same bits; another random_state must give "
                              "other attributions")
    else:
        tol = invariance_tolerance(s.dtype)
        try:
            bound = tol * (1 + s.attribution_scale())
        except Exception:  # noqa: BLE001 - the check itself reports the failing call
            bound = tol
        reason = (f"relative {tol:g} * (1 + max|attr|): GPU kernels (atomics in reductions) "
                  "need not be bitwise repeatable; another random_state must differ")

    def measure():
        report = check_determinism(s.explainer, s.context.inputs, references=None,
                                   target=s.target, random_state=rs, other_random_state=rs + 1,
                                   n_references=s.context.n_references, atol=bound)
        details = {"exact": bool(report.details["exact"]),
                   "difference_other_seed": report.details.get("difference_other_seed")}
        if not details["difference_other_seed"]:
            details["problem"] = (f"random_state={rs + 1} gave the same attributions as "
                                  f"random_state={rs}: the seed is ignored")
            return math.inf, details
        return report.max_error, details

    return timed_check("determinism", bound, reason, measure)


def _skip_unless_additive(peer: str, delta: float, dtype: torch.dtype) -> None:
    limit = _bound(PEER_ADDITIVE, dtype)
    if not delta <= limit:
        raise SkipCheck(f"{peer} is not additive on this model (its own max |delta| is "
                        f"{delta:.2e} > {limit:g}): it has no rule for one of the model's ops, "
                        "so agreement is not expected; see the peers suite "
                        f"(--method {'captum:DeepLift' if peer == 'Captum' else peer})")


def _run_peer(package: str, call: Callable):
    try:
        return call()
    except ImportError as err:
        raise SkipCheck(f"{package} is not installed ({err}); pip install {package}") from None
    except Exception as err:
        if raised_in_peer(err, package):
            raise SkipCheck(f"{package} cannot run this model: {type(err).__name__}: "
                            f"{str(err).splitlines()[0] if str(err) else ''}") from None
        raise


def _agreement_tangermeme(s: _Setup) -> CheckResult:
    bound = _bound(AGREEMENT_BOUND["tangermeme"], s.dtype)

    def measure():
        if len(s.out_shape) != 1:
            raise SkipCheck("tangermeme's deep_lift_shap needs a (B, T) output; the model "
                            f"returns {shape_text(s.out_shape)}")
        if not isinstance(s.target, int):
            raise SkipCheck(f"tangermeme takes an int target, got {s.target!r}")
        report = _run_peer("tangermeme", lambda: check_agreement_tangermeme(
            s.context.model, s.context.inputs, s.references, target=s.target, atol=bound))
        _skip_unless_additive("tangermeme:deep_lift_shap", report.details["tangermeme_delta"],
                              s.dtype)
        return report.max_error, {k: report.details[k] for k in ("tangermeme_delta",
                                                                  "ours_delta")}

    return timed_check("agreement_tangermeme", bound,
                       "tangermeme's deep_lift_shap on the same references, where it is itself "
                       "additive (measured ~2e-16 on the built-in models)", measure)


def _agreement_captum(s: _Setup) -> CheckResult:
    bound = _bound(AGREEMENT_BOUND["captum"], s.dtype)

    def measure():
        report = _run_peer("captum", lambda: check_agreement_captum_deeplift(
            s.context.model, s.context.inputs, s.references, target=s.target, atol=bound))
        _skip_unless_additive("Captum", report.details["captum_delta"], s.dtype)
        return report.max_error, {k: report.details[k] for k in ("channel_sums", "captum_delta",
                                                                  "ours_delta")}

    return timed_check("agreement_captum", bound,
                       "Captum's DeepLift on every example-reference pair, where it is itself "
                       "additive (measured ~1e-16 on the built-in models)", measure)


def _state_result(report) -> tuple[float, dict]:
    problems = list(report.details["problems"])
    return float(len(problems)), {"problems": problems, "max_change": report.max_error,
                                  "raised": report.details["raised"]}


def _model_unchanged(s: _Setup) -> CheckResult:
    def measure():
        report = check_model_unchanged(s.explainer, s.context.inputs, references=s.references,
                                       repeats=2, target=s.target)
        return _state_result(report)

    return timed_check("model_unchanged", 0.0,
                       "count of changes (parameters, buffers, hooks, training flags, "
                       "attributes, grad mode, inputs; repeated calls bitwise equal): any "
                       "change is a side effect", measure)


def _model_unchanged_on_error(s: _Setup) -> CheckResult:
    bad = out_of_range_target(s.out_shape)

    def measure():
        report = check_model_unchanged(s.explainer, s.context.inputs, references=s.references,
                                       repeats=2, expect_error=(ValueError, IndexError),
                                       target=bad)
        figure, details = _state_result(report)
        details["target"] = bad
        return figure, details

    return timed_check("model_unchanged_on_error", 0.0,
                       f"two calls with target={bad} (out of range) must raise and leave "
                       "nothing behind: any change is a side effect", measure)


def _hook_count(model) -> int:
    state = snapshot_state(model, [])
    count = state["function_modes"] + sum(len(h) for h in state["global_hooks"].values())
    for module in state.get("modules", {}).values():
        count += sum(len(h) for h in module["hooks"].values())
    return count


def _no_leaked_hooks(s: _Setup, before: int) -> CheckResult:
    def measure():
        after = _hook_count(s.context.model)
        return float(abs(after - before)), {"hooks_before": before, "hooks_after": after}

    return timed_check("no_leaked_hooks", 0.0,
                       "module hooks, global hooks and torch-function modes before the suite "
                       "and after all its calls (those that raised included): every hook the "
                       "method adds must be removed", measure)


DEVICE_BOUND = {torch.float64: 1e-10, torch.float32: 1e-5}
"""Largest |attribution difference| between the user's device and the CPU, relative to
``1 + max|attribution|``: float64 kernels agree to rounding (~1e-15 per op), float32 GPU
kernels (TF32 off) to ~1e-6."""


def device_agreement(explainer_device: Any, inputs: Tensor, references: Tensor,
                     target: Any, model: Callable) -> tuple[float, dict]:
    """Attributions on ``inputs.device`` against a CPU copy of the model on the same pairs.

    Parameters
    ----------
    explainer_device : ShuffleDeepLiftShap
        The method on the user's device.
    inputs : Tensor ``(N, 4, L)``, references : Tensor ``(N, K, 4, L)``
        On the user's device.
    target : any
        Captum ``target``.
    model : nn.Module
        The user's model (deep-copied to the CPU; the original is untouched).

    Returns
    -------
    figure : float
        ``max |a_device - a_cpu| / (1 + max |a_cpu|)``.
    details : dict
        ``max_abs_difference`` and the two devices.
    """
    import copy

    from captum_genomics import ShuffleDeepLiftShap

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        on_device = explainer_device.attribute(inputs, references=references,
                                               target=target).detach()
        cpu_model = copy.deepcopy(model).cpu()
        on_cpu = ShuffleDeepLiftShap(cpu_model).attribute(
            inputs.cpu(), references=references.cpu(),
            target=target.cpu() if isinstance(target, Tensor) else target).detach()
    diff = float((on_device.cpu().double() - on_cpu.double()).abs().max()) \
        if on_cpu.numel() else 0.0
    scale = float(on_cpu.abs().max()) if on_cpu.numel() else 0.0
    return diff / (1.0 + scale), {"max_abs_difference": diff,
                                  "devices": [str(inputs.device), "cpu"]}


def _device_agreement(s: _Setup) -> CheckResult:
    bound = _bound(DEVICE_BOUND, s.dtype)

    def measure():
        if s.context.inputs.device.type == "cpu":
            raise SkipCheck("runs on the CPU already (use --device cuda to compare a GPU "
                            "with the CPU)")
        return device_agreement(s.explainer, s.context.inputs, s.references, s.target,
                                s.context.model)

    return timed_check("device_agreement", bound,
                       "the same pairs on the CPU: float64 agrees to rounding (1e-10 relative), "
                       "float32 to 1e-5", measure)


@register_suite("ShuffleDeepLiftShap")
def sequence_suite(context: GateContext) -> list[CheckResult]:
    """Every check ``ShuffleDeepLiftShap`` owes on the user's sequence model.

    Parameters
    ----------
    context : GateContext
        ``model`` (eval mode, on ``device`` in ``dtype``) mapping ``(B, 4, L)``
        to ``(B,)`` or ``(B, T)``; ``inputs`` ``(N, 4, L)`` one-hot on the same
        device and dtype; ``target`` (None: ``0`` for ``(B, T)``, None for
        ``(B,)``); ``n_references`` ``K``; ``random_state``.

    Returns
    -------
    list of CheckResult
        In the order of the table in this module's docstring. A check never
        raises: an exception fails it (``details["error"]``).

    Raises
    ------
    ValueError
        If ``inputs`` is not ``(N, 4, L)`` or the model does not return
        ``(B,)`` / ``(B, T)``.
    """
    s = _Setup.build(context)
    hooks = _hook_count(context.model)
    results = [check(s) for check in (_additivity, _completeness, _batch_invariance,
                                      _determinism, _agreement_tangermeme, _agreement_captum,
                                      _model_unchanged, _model_unchanged_on_error,
                                      _device_agreement)]
    return [*results, _no_leaked_hooks(s, hooks)]
