"""The Captum contract every attribution method of the package owes, from one list.

:data:`captum_genomics.testing.methods.METHODS` holds one entry per method;
each test here runs on all of them. The method families add their own
contracts in ``test_contract_sequence.py`` and ``test_contract_tabular.py``,
driven by the same list.
"""

from __future__ import annotations

import inspect

import pytest
from captum.attr import Attribution

import captum_genomics
from captum_genomics.testing.checks import check_model_unchanged
from captum_genomics.testing.methods import KINDS, METHODS

pytestmark = pytest.mark.builtin  # built-in models only: not the model of --cg-model

method = pytest.mark.parametrize("spec", METHODS, ids=lambda s: s.name)


def test_every_exported_attribution_has_an_entry():
    public = {name: getattr(captum_genomics, name) for name in captum_genomics.__all__}
    exported = {name for name, obj in public.items()
                if inspect.isclass(obj) and issubclass(obj, Attribution)}
    listed = {type(spec.example().explainer).__name__ for spec in METHODS}
    assert exported == listed
    assert all(spec.kind in KINDS for spec in METHODS)


@method
def test_is_a_logged_captum_attribution(spec):
    example = spec.example()
    assert isinstance(example.explainer, Attribution)
    assert hasattr(type(example.explainer).attribute, "__wrapped__")
    assert example.explainer.has_convergence_delta() is spec.has_convergence_delta


@method
def test_attribute_signature_follows_captum(spec):
    params = list(inspect.signature(type(spec.example().explainer).attribute).parameters)
    assert params[:2] == ["self", "inputs"]
    assert "additional_forward_args" in params


@method
def test_calls_leave_the_model_and_inputs_unchanged_and_repeat_bitwise(spec):
    example = spec.example()
    report = check_model_unchanged(example.explainer, example.inputs, repeats=2,
                                   **example.kwargs)
    assert report.passed, report


@method
def test_a_failed_call_leaves_the_model_and_inputs_unchanged(spec):
    example = spec.example()
    report = check_model_unchanged(example.explainer, example.inputs, repeats=2,
                                   expect_error=ValueError, **example.bad_kwargs)
    assert report.passed, report
