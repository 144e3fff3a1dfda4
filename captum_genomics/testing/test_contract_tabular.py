"""The Captum contract for amortized methods on tabular inputs ``(cells, genes)``.

:mod:`captum_genomics.testing.test_contract_sequence` drives the sequence methods (per-example
references, per-pair deltas). Methods here take no references and return one
efficiency gap per example; each entry of :data:`TABULAR_METHODS` says how to
build a fitted explainer for a model. The entries are the ``"tabular"`` ones of
:data:`captum_genomics.testing.methods.METHODS`, the one list of the package's
methods: append a ``MethodSpec`` there for a new method.
"""

from __future__ import annotations

import pytest
import torch
from captum.attr import Attribution

from captum_genomics.testing.checks import check_model_unchanged
from captum_genomics.testing.methods import methods_of_kind
from captum_genomics.testing.methods import tabular_cells as _cells
from captum_genomics.testing.methods import tabular_model as _model

pytestmark = pytest.mark.builtin  # tabular models: not the sequence model of --cg-model


TABULAR_METHODS = methods_of_kind("tabular")

method = pytest.mark.parametrize("spec", TABULAR_METHODS, ids=lambda s: s.name)


@pytest.fixture(scope="module")
def fitted():
    model = _model()
    xtr, xva = _cells(128, 1), _cells(32, 2)
    return model, {spec.name: spec.fit(model, xtr, xva) for spec in TABULAR_METHODS}


@method
def test_is_a_logged_captum_attribution(spec, fitted):
    _, methods = fitted
    explainer = methods[spec.name]
    assert isinstance(explainer, Attribution)
    assert hasattr(type(explainer).attribute, "__wrapped__")
    assert explainer.has_convergence_delta() is True


@method
def test_tensor_and_tuple_in_same_kind_out(spec, fitted):
    _, methods = fitted
    explainer, x = methods[spec.name], _cells(5, 3)
    out = explainer.attribute(x, target=1)
    assert isinstance(out, torch.Tensor) and out.shape == x.shape and out.dtype == x.dtype
    tup = explainer.attribute((x,), target=1)
    assert isinstance(tup, tuple) and len(tup) == 1 and torch.equal(tup[0], out)


@method
def test_convergence_delta_is_the_efficiency_gap(spec, fitted):
    model, methods = fitted
    explainer, x = methods[spec.name], _cells(6, 4)
    attr, delta = explainer.attribute(x, target=2, return_convergence_delta=True)
    assert delta.shape == (6,)
    with torch.no_grad():
        gap = (torch.softmax(model(x), -1) - torch.softmax(model(torch.zeros_like(x)), -1))[:, 2]
    torch.testing.assert_close(attr.sum(1), gap, rtol=0, atol=spec.delta_tol)
    assert delta.abs().max() <= spec.delta_tol
    torch.testing.assert_close(explainer.compute_convergence_delta(attr, x, target=2), delta,
                               rtol=0, atol=spec.delta_tol)


@method
def test_per_example_target_and_targets_equal_separate_calls(spec, fitted):
    _, methods = fitted
    explainer, x = methods[spec.name], _cells(4, 5)
    targets = [2, 0, 1, 2]
    attr = explainer.attribute(x, target=torch.tensor(targets))
    for i, t in enumerate(targets):
        # one row vs four rows: float64 matmul kernels may round differently
        torch.testing.assert_close(attr[i:i + 1], explainer.attribute(x[i:i + 1], target=t),
                                   rtol=0, atol=1e-15)
    together = explainer.attribute(x, targets=[0, 1, 2])
    for t, a in enumerate(together):
        # one `target` may compute only that output: equal up to rounding
        torch.testing.assert_close(a, explainer.attribute(x, target=t), rtol=0, atol=1e-15)


@method
def test_batch_invariance(spec, fitted):
    _, methods = fitted
    explainer, x = methods[spec.name], _cells(9, 6)
    whole = explainer.attribute(x, target=0)
    torch.testing.assert_close(explainer.attribute(x, target=0, batch_size=2), whole,
                               rtol=0, atol=1e-15)


@method
def test_fit_is_deterministic_under_a_seed(spec):
    model, xtr, xva, x = _model(3), _cells(64, 7), _cells(16, 8), _cells(5, 9)
    a = spec.fit(model, xtr, xva, seed=5).attribute(x, target=1)
    b = spec.fit(model, xtr, xva, seed=5).attribute(x, target=1)
    assert torch.equal(a, b)


@method
def test_model_and_inputs_unchanged(spec, fitted):
    _, methods = fitted
    explainer = methods[spec.name]
    report = check_model_unchanged(explainer, _cells(5, 10), repeats=2, target=1)
    assert report.passed, report
    report = check_model_unchanged(explainer, _cells(5, 10), repeats=2, target=7,
                                   expect_error=ValueError)
    assert report.passed, report
