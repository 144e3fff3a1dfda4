"""Configuration of the validation suite: built-in models, or the user's model.

Without options the suite runs on the hand-written models of
``captum_genomics/testing/models.py`` (``CATALOG``) and on random architectures drawn by
hypothesis. With ``--cg-model`` it runs the model-agnostic checks on the user's
model instead (see ``docs/validation.md``)::

    pytest --pyargs captum_genomics.testing --cg-model mypkg.models:build --cg-weights w.pt \
        --cg-input-length 1000

Hypothesis profiles: ``ci`` (default: 10 examples, derandomized, no
deadline), ``dev`` (15 examples, random), ``user-model`` (3 examples, the
default with ``--cg-model``). Pick one with ``--hypothesis-profile NAME`` or the
``HYPOTHESIS_PROFILE`` environment variable; the suite's tests take their
settings from it through :func:`captum_genomics.testing.models.bounded`, and the profile is
not loaded globally, so other test directories keep their own settings.
"""

from __future__ import annotations

import os

import pytest
import torch
from hypothesis import HealthCheck, settings

from captum_genomics._utils.models import ModelSpecError, load_user_model
from captum_genomics.testing import models
from captum_genomics.testing.models import CATALOG, STRATEGIES, ModelCase, catalog_case, catalog_flags

@pytest.fixture(autouse=True, scope="session")
def _poison_lazy_tiles():
    """The DeepLIFT engine's lazy tiles hold NaN in their unwritten rows while the suite
    runs, so an engine read of one on any model (yours too) fails its checks
    (captum_genomics.deeplift.rules.base.PairCursor.poison_pending)."""
    from captum_genomics.deeplift.rules.base import PairCursor

    PairCursor.poison_pending = True
    yield
    PairCursor.poison_pending = False


settings.register_profile(
    "ci", max_examples=10, deadline=None, derandomize=True, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile(
    "dev", max_examples=15, deadline=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow])
settings.register_profile(
    "user-model", max_examples=3, deadline=None, derandomize=True, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def pytest_configure(config):
    # The suite's hypothesis profile applies to its own tests only (through
    # captum_genomics.testing.models.bounded); other test directories keep their settings.
    models.PROFILE = (config.getoption("hypothesis_profile", None)
                      or os.environ.get("HYPOTHESIS_PROFILE")
                      or ("user-model" if config.getoption("--cg-model", None) else "ci"))


@pytest.fixture(scope="package", autouse=True)
def _threads(request):
    """``torch.set_num_threads`` for the suite's tests only, restored afterwards."""
    threads = request.config.getoption("--cg-threads")
    if threads is None and not request.config.getoption("--cg-model"):
        threads = 1
    saved = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    yield
    torch.set_num_threads(saved)


def pytest_collection_modifyitems(config, items):
    if not config.getoption("--cg-model"):
        return
    skip = pytest.mark.skip(reason="built-in models only; skipped with --cg-model")
    for item in items:
        if item.get_closest_marker("builtin") is not None:
            item.add_marker(skip)


def pytest_generate_tests(metafunc):
    if "case" not in metafunc.fixturenames:
        return
    if metafunc.config.getoption("--cg-model"):
        names = ["user"]
    else:
        marker = metafunc.definition.get_closest_marker("cases")
        wanted = dict(marker.kwargs) if marker else {}
        names = [n for n in CATALOG if _matches(n, wanted)]
    metafunc.parametrize("case", names, indirect=True, scope="session")


def _matches(name: str, wanted: dict) -> bool:
    flags = catalog_flags(name)
    if "names" in wanted and name not in wanted["names"]:
        return False
    return all(flags[k] == v for k, v in wanted.items() if k != "names")


@pytest.fixture(scope="session")
def case(request) -> ModelCase:
    """The model under test: a catalog model, or the user's with ``--cg-model``."""
    if request.param == "user":
        return _user_case(request.config)
    return catalog_case(request.param)


@pytest.fixture(scope="session", params=STRATEGIES,
                ids=[s.get("strategy", "default") for s in STRATEGIES])
def strategy(request) -> dict:
    """Keyword arguments selecting each engine strategy of ``ShuffleDeepLiftShap``."""
    return request.param


@pytest.fixture(scope="session")
def atol(request) -> float:
    """The additivity bound for the model under test."""
    given = request.config.getoption("--cg-atol")
    if given is not None:
        return given
    return 1e-10 if request.config.getoption("--cg-dtype") == "float64" else 1e-4


@pytest.fixture(scope="session")
def max_n(request) -> int:
    return (request.config.getoption("--cg-n-examples")
            if request.config.getoption("--cg-model") else 4)


@pytest.fixture(scope="session")
def max_k(request) -> int:
    return request.config.getoption("--cg-n-references") if request.config.getoption(
        "--cg-model") else 4


def _parse_target(text: str | None, output_shape: torch.Size):
    if text is None:
        return None if len(output_shape) == 1 else 0
    if text.lower() == "none":
        return None
    parts = [int(p) for p in text.split(",") if p.strip()]
    return parts[0] if len(parts) == 1 else tuple(parts)


def _user_case(config) -> ModelCase:
    spec = config.getoption("--cg-model")
    length = config.getoption("--cg-input-length")
    if length is None:
        raise pytest.UsageError("--cg-model needs --cg-input-length L (the sequence length).")
    try:
        model = load_user_model(spec, config.getoption("--cg-weights"), option="--cg-model",
                                weights_option="--cg-weights")
    except ModelSpecError as err:
        raise pytest.UsageError(str(err)) from None
    dtype = getattr(torch, config.getoption("--cg-dtype"))
    model = model.to(dtype).eval()
    with torch.no_grad():
        out = model(torch.zeros(1, 4, length, dtype=dtype))
    target = _parse_target(config.getoption("--cg-target"), out.shape)
    n_outputs = out.shape[1] if out.ndim == 2 else None
    return ModelCase(f"user:{spec}", model, length, n_outputs, target, None, None, None)



# ------------------------------------------------------------------ measurements

_MEASURED = pytest.StashKey[dict]()


@pytest.fixture(scope="session")
def measured(request):
    """``measured(check, case_name, value)`` keeps the largest value per (check, case).

    The table is printed at the end of the run (worst case per check; every
    case with ``-v``) so a CI log shows the numbers, not just pass/fail.
    """
    store = request.config.stash.setdefault(_MEASURED, {})

    def record(check: str, case: str, value: float) -> None:
        key = (check, case)
        store[key] = max(store.get(key, float("-inf")), float(value))

    return record


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    store = config.stash.get(_MEASURED, None)
    if not store:
        return
    write = terminalreporter.write_line
    terminalreporter.section("captum-genomics validation: measured errors")
    checks = sorted({check for check, _ in store})
    verbose = config.getoption("verbose") > 0
    for check in checks:
        rows = sorted(((v, c) for (k, c), v in store.items() if k == check), reverse=True)
        worst, where = rows[0]
        write(f"{check:<44} max {worst:10.3e}  ({where}; {len(rows)} model(s))")
        if verbose:
            for value, name in rows:
                write(f"    {name:<40} {value:10.3e}")
