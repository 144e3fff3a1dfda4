"""The correctness gate on the user's model: every check of ``--cg-method``, as pytest tests.

Runs only with ``--cg-model`` (the built-in models have their own tests). The
gate runs once per session, as ``captum-genomics validate`` would; the test
records every check's figure, bound and verdict as JUnit properties
(``pytest --junitxml``), so CI systems show the numbers, and fails with the
table when a check fails. ``--cg-baseline DIR`` adds the drift check.
"""

from __future__ import annotations

import pytest

CHECKS_CACHE = pytest.StashKey[object]()


def _report(config):
    cached = config.stash.get(CHECKS_CACHE, None)
    if cached is None:
        from captum_genomics._utils.models import ModelSpecError
        from captum_genomics.workflows.validate import ValidationUsageError, run_validate

        try:
            cached = run_validate(
                config.getoption("--cg-model"),
                weights=config.getoption("--cg-weights"),
                method=config.getoption("--cg-method"),
                input_length=config.getoption("--cg-input-length"),
                target=config.getoption("--cg-target"),
                device=config.getoption("--cg-device"),
                dtype=config.getoption("--cg-dtype"),
                baseline=config.getoption("--cg-baseline"),
                update_baseline=config.getoption("--cg-update-baseline"),
                verbose=False,
            )
        except (ModelSpecError, ValidationUsageError) as err:
            raise pytest.UsageError(str(err)) from None
        config.stash[CHECKS_CACHE] = cached
    return cached


@pytest.fixture(scope="session")
def gate_report(request):
    """The :class:`~captum_genomics.testing.gate.GateReport` of the user's model."""
    if not request.config.getoption("--cg-model"):
        pytest.skip("the gate runs on a user model: pass --cg-model")
    return _report(request.config)


def test_gate(gate_report, record_property):
    """Every check of the gate holds (skipped checks say why in the report)."""
    from captum_genomics.testing.gate.reports import format_table, verdict

    for result in gate_report.results:
        record_property(f"{result.name}.figure", result.figure)
        record_property(f"{result.name}.bound", result.bound)
        record_property(f"{result.name}.verdict", verdict(result))
    failed = [r.name for r in gate_report.results if r.passed is False]
    assert not failed, f"failed checks: {failed}\n{format_table(gate_report)}"
