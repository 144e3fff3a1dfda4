"""The correctness gate's core: one check result, one report, the registry of check suites.

A *suite* is the list of checks one attribution method owes on a user's model
(see :mod:`captum_genomics.testing.gate.sequence` and the other suite modules).
Each check measures one figure and holds it to a stated bound;
:func:`run_gate` runs the suite of a method and returns a :class:`GateReport`,
which the command line (``captum-genomics validate``), the reports (table,
JSON, JUnit XML) and the drift baselines all read.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable

__all__ = [
    "CheckResult",
    "GateContext",
    "GateReport",
    "SUITES",
    "register_suite",
    "run_gate",
    "SkipCheck",
    "state_result",
    "timed_check",
]


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check of the gate.

    Attributes
    ----------
    name : str
        The check, e.g. ``"additivity"``, ``"batch_invariance"``.
    figure : float
        What was measured (e.g. the largest ``|convergence delta|``); ``nan``
        for a skipped check.
    bound : float
        What ``figure`` is held to (``figure <= bound`` passes).
    passed : bool or None
        None when the check was skipped (see ``reason``).
    seconds : float
        Wall-clock time of the check.
    reason : str
        Why the bound is what it is, or why the check was skipped.
    details : dict
        Check-specific measurements (JSON-serializable), e.g. the ops that
        break additivity.
    """

    name: str
    figure: float
    bound: float
    passed: bool | None
    seconds: float = 0.0
    reason: str = ""
    details: dict = field(default_factory=dict)

    @property
    def skipped(self) -> bool:
        """True when the check did not run."""
        return self.passed is None


@dataclass
class GateContext:
    """Everything a suite needs to check one method on one model.

    Attributes
    ----------
    model : torch.nn.Module
        The user's model, in eval mode, on ``device`` in ``dtype``.
    method : str
        The method under test: a package method (``"ShuffleDeepLiftShap"``,
        ``"FastSHAP"``, ``"HeadAblationExplainedVariance"``) or a peer
        (``"captum:DeepLiftShap"``, ``"captum:DeepLift"``,
        ``"captum:IntegratedGradients"``, ``"tangermeme:deep_lift_shap"``,
        ``"shap:DeepExplainer"``).
    inputs : Tensor
        ``(N, 4, L)`` one-hot sequences or ``(N, G)`` expression, on ``device``.
    target : any
        Captum ``target`` of the explained output.
    device : torch.device
    dtype : torch.dtype
    random_state : int
        Seeds every random choice of the suite.
    n_references : int
        References per example for reference-based methods.
    options : dict
        Suite-specific options (e.g. ``"attention"`` for head ablation).
    """

    model: Any
    method: str
    inputs: Any
    target: Any = None
    device: Any = "cpu"
    dtype: Any = None
    random_state: int = 0
    n_references: int = 4
    options: dict = field(default_factory=dict)


@dataclass
class GateReport:
    """The results of one gate run.

    Attributes
    ----------
    method : str
    model : str
        How the model was named (e.g. ``"mymodels.py:build"``).
    results : list of CheckResult
    metadata : dict
        Package, torch and Captum versions, device, dtype, input shape, model
        state-dict hash, wall-clock seconds.
    """

    method: str
    model: str
    results: list[CheckResult]
    metadata: dict = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        """True when every check that ran passed (skipped checks do not fail the gate)."""
        return all(r.passed is not False for r in self.results)

    @property
    def failed(self) -> list[CheckResult]:
        """The checks that ran and failed."""
        return [r for r in self.results if r.passed is False]


SuiteFunction = Callable[[GateContext], "list[CheckResult]"]
SUITES: dict[str, SuiteFunction] = {}
"""Method name -> the function that runs its checks. Filled by :func:`register_suite`."""


def register_suite(*methods: str) -> Callable[[SuiteFunction], SuiteFunction]:
    """Decorator: ``fn(context) -> list[CheckResult]`` is the suite of ``methods``."""

    def register(fn: SuiteFunction) -> SuiteFunction:
        for m in methods:
            SUITES[m] = fn
        return fn

    return register


def timed_check(name: str, bound: float, reason: str,
                measure: Callable[[], tuple[float, dict]]) -> CheckResult:
    """Run ``measure() -> (figure, details)`` and hold ``figure`` to ``bound``.

    ``measure`` may raise :class:`SkipCheck` to skip the check with a reason.
    Any other exception fails the check, with the exception in ``details``
    (a check never crashes the gate). ``nan`` figures fail.
    """
    start = time.perf_counter()
    try:
        figure, details = measure()
    except SkipCheck as skip:
        return CheckResult(name, math.nan, bound, None, time.perf_counter() - start, str(skip))
    except Exception as err:  # noqa: BLE001 - reported, never raised
        return CheckResult(name, math.inf, bound, False, time.perf_counter() - start, reason,
                           {"error": f"{type(err).__name__}: {err}"})
    figure = float(figure)
    return CheckResult(name, figure, bound, bool(figure <= bound),
                       time.perf_counter() - start, reason, details)


def state_result(report: Any, start: dict | None = None, model: Any = None,
                 tensors: Any = ()) -> tuple[float, dict]:
    """``(figure, details)`` of a model-state check: the number of changes found.

    Parameters
    ----------
    report : CheckReport
        Of :func:`~captum_genomics.testing.checks.check_model_unchanged`.
    start : dict, optional
        A :func:`~captum_genomics.testing.checks.snapshot_state` taken when the
        suite began; changes since then (by any check) are added.
    model, tensors
        What ``start`` snapshotted.

    Returns
    -------
    figure : float
        How many changes were found (0 passes).
    details : dict
        ``problems`` (one line each), ``max_value_change``, ``raised``.
    """
    from captum_genomics.testing.checks import compare_states, snapshot_state

    problems = list(report.details.get("problems", []))
    worst = float(report.max_error)
    if start is not None:
        during, changed = compare_states(start, snapshot_state(model, list(tensors)))
        problems += [f"during the suite: {p}" for p in during]
        worst = max(worst, changed)
    return float(len(problems)), {"problems": problems, "max_value_change": worst,
                                  "raised": list(report.details.get("raised", []))}


class SkipCheck(Exception):
    """Raised by a check's ``measure`` to skip it; the message says why."""


def run_gate(context: GateContext, model_name: str = "model") -> GateReport:
    """Run the suite of ``context.method`` on ``context.model``.

    Raises
    ------
    ValueError
        If no suite is registered for ``context.method`` (the message lists them).
    """
    from captum_genomics.testing.gate import suites  # noqa: F401 - registers the suites

    suite = SUITES.get(context.method)
    if suite is None:
        raise ValueError(
            f"--method {context.method!r} is not known; expected one of {sorted(SUITES)}."
        )
    start = time.perf_counter()
    results = suite(context)
    return GateReport(context.method, model_name, results,
                      {"seconds": round(time.perf_counter() - start, 3)})
