"""Reusable correctness checks for attribution methods on any model.

Each check runs an attribution method (or a peer implementation) on a
batch and returns a :class:`CheckReport` with the measured error and a pass
flag. Checks never raise because a property fails; they raise only for
misuse (wrong shapes, a missing dependency). The property suite in
``captum_genomics/testing/`` is built on these functions, and users can call them from
their own tests::

    from captum_genomics import ShuffleDeepLiftShap
    from captum_genomics.testing.checks import check_additivity

    report = check_additivity(ShuffleDeepLiftShap(model.double()), x, references, target=0)
    assert report.passed, report

Terms follow the package: ``inputs`` ``(N, A, L)`` one-hot sequences,
``references`` ``(N, K, A, L)`` (``K`` per example), *multipliers* are
DeepLIFT's modified gradients and the *convergence delta* of an
example-reference pair is ``sum(m * (x - r)) - (f(x) - f(r))``.
"""

from captum_genomics.testing.checks.additivity import check_additivity, reference_outputs
from captum_genomics.testing.checks.agreement import (
    check_agreement_captum_deeplift,
    check_agreement_tangermeme,
)
from captum_genomics.testing.checks.invariance import check_batch_invariance, check_determinism
from captum_genomics.testing.checks.model_state import (
    check_model_unchanged,
    compare_states,
    snapshot_state,
)
from captum_genomics.testing.checks.report import CheckReport

__all__ = [
    "CheckReport",
    "check_additivity",
    "check_batch_invariance",
    "check_determinism",
    "check_agreement_tangermeme",
    "check_agreement_captum_deeplift",
    "check_model_unchanged",
    "compare_states",
    "reference_outputs",
    "snapshot_state",
]
