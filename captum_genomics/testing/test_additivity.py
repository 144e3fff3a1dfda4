"""Additivity (summation-to-delta) of ShuffleDeepLiftShap on every supported layer type.

In float64 every example-reference pair must satisfy
``|sum(m * (x - r)) - (f(x) - f(r))| <= 1e-10``, and the returned
attributions of an example must sum to ``mean_k (f(x) - f(r_k))`` with ``f``
evaluated by plain forward passes.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from captum_genomics import ShuffleDeepLiftShap
from captum_genomics.testing.checks import check_additivity, reference_outputs
from captum_genomics.testing.architectures import architectures, build_arch
from captum_genomics.testing.models import (
    STRATEGIES,
    batches,
    bounded,
    catalog_case,
    needs_generated_references,
    random_one_hot,
)


@bounded(4)
@given(data=st.data())
def test_additivity(case, strategy, data, atol, max_n, max_k, measured):
    batch = data.draw(batches(case.length, max_n=max_n, max_k=max_k, dtype=case.dtype))
    report = check_additivity(ShuffleDeepLiftShap(case.model), batch.inputs, batch.references,
                              target=case.target, atol=atol, **strategy)
    measured("additivity: |delta| per pair", case.name, report.details["pair_delta"])
    measured("additivity: sum(attr) - mean_k(f(x)-f(r))", case.name,
             report.details["sum_vs_output"])
    assert report.passed, f"{case.name}: {report}"


@bounded(4)
@given(data=st.data())
def test_additivity_per_example_targets(case, data, atol, max_n, max_k, measured):
    """A target per example, and hypothetical contributions projected on the input."""
    if case.n_outputs is None:
        pytest.skip("the model returns (B,): there is no per-example target")
    batch = data.draw(batches(case.length, max_n=max_n, max_k=max_k, dtype=case.dtype))
    g = torch.Generator().manual_seed(batch.seed)
    target = torch.randint(0, case.n_outputs, (batch.n,), generator=g)
    report = check_additivity(ShuffleDeepLiftShap(case.model), batch.inputs, batch.references,
                              target=target, atol=atol)
    measured("additivity: per-example targets", case.name, report.max_error)
    assert report.passed, f"{case.name}: {report}"


@bounded(3)
@given(data=st.data())
def test_hypothetical_times_input_is_contributions(case, data, max_n, max_k):
    batch = data.draw(batches(case.length, max_n=max_n, max_k=max_k, dtype=case.dtype))
    explainer = ShuffleDeepLiftShap(case.model)
    kw = dict(references=batch.references, target=case.target)
    contributions = explainer.attribute(batch.inputs, **kw)
    hypothetical = explainer.attribute(batch.inputs, hypothetical=True, **kw)
    assert torch.equal(hypothetical * batch.inputs, contributions)


@needs_generated_references
@bounded(3)
@given(data=st.data())
def test_additivity_generated_references(case, data, atol, max_n, max_k, measured):
    batch = data.draw(batches(case.length, max_n=max_n, max_k=1, dtype=case.dtype))
    report = check_additivity(ShuffleDeepLiftShap(case.model), batch.inputs, None,
                              target=case.target, atol=atol, n_references=max_k,
                              random_state=batch.seed, **data.draw(st.sampled_from(STRATEGIES)))
    measured("additivity: generated references", case.name, report.max_error)
    assert report.passed, f"{case.name}: {report}"


@pytest.mark.builtin
@bounded(15)
@given(spec=architectures(), data=st.data())
def test_additivity_random_architectures(spec, data, measured):
    model = build_arch(spec)
    batch = data.draw(batches(spec.length))
    target = data.draw(st.integers(0, 2))
    report = check_additivity(ShuffleDeepLiftShap(model), batch.inputs, batch.references,
                              target=target, atol=1e-10, **data.draw(st.sampled_from(STRATEGIES)))
    measured("additivity: random architectures", "random", report.max_error)
    assert report.passed, f"{spec}: {report}"


@pytest.mark.builtin
def test_n_columns_are_dropped_by_projection(measured):
    """Documents where attributions stop summing to the output difference: N columns.

    At an all-zero input column the DeepLIFT contribution ``m * (x - r)`` is
    ``-sum_a m_a r_a``, but projecting onto the observed base (there is none)
    drops it. The pair deltas stay ~0; the projected attributions miss exactly
    that mass, which is zero only when the references are N there too.
    """
    case = catalog_case("act_gelu")
    g = torch.Generator().manual_seed(0)
    x = random_one_hot(2, case.length, g)
    refs = random_one_hot(6, case.length, g).reshape(2, 3, 4, case.length)
    x[:, :, [3, 10]] = 0
    explainer = ShuffleDeepLiftShap(case.model)
    attr, delta = explainer.attribute(x, references=refs, target=0, return_convergence_delta=True)
    mult = explainer.attribute(x, references=refs, target=0, return_multipliers=True)
    fx, fr = reference_outputs(case.model, x, refs, 0)
    dropped = (mult * (x[:, None] - refs))[..., [3, 10]].sum((2, 3)).mean(1)
    gap = attr.sum((1, 2)) - (fx[:, None] - fr).mean(1)
    measured("N columns: |sum(attr) - mean diff| (documented)", case.name, gap.abs().max())
    assert delta.abs().max() < 1e-12
    assert gap.abs().max() > 1e-6  # nonzero: the N columns' contribution is not in attr
    torch.testing.assert_close(gap, -dropped, rtol=0, atol=1e-12)
    # With references that are N at the same columns, additivity is restored.
    refs[..., [3, 10]] = 0
    report = check_additivity(explainer, x, refs, target=0)
    assert report.passed, report
