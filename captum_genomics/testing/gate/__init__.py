"""The correctness gate: every check a method owes on a user's model, as one run.

Used by ``captum-genomics validate`` and the pytest plugin; see
:mod:`captum_genomics.testing.gate.core` for the data model.
"""

from captum_genomics.testing.gate.core import (
    SUITES,
    CheckResult,
    GateContext,
    GateReport,
    SkipCheck,
    register_suite,
    run_gate,
    timed_check,
)

__all__ = [
    "SUITES",
    "CheckResult",
    "GateContext",
    "GateReport",
    "SkipCheck",
    "register_suite",
    "run_gate",
    "timed_check",
]
