"""The Captum contract of the sequence methods (per-example references, per-pair deltas).

Driven by the ``"sequence"`` entries of :data:`captum_genomics.testing.methods.METHODS`,
the one list of the package's methods: append a ``MethodSpec`` there for a new method.
Also checks that a call (returning or raising) leaves the model, the inputs
and torch's global state as they were, on every model of the suite.
"""

from __future__ import annotations


import pytest
import torch
import torch.nn as nn
from captum.attr import Attribution
from hypothesis import given
from hypothesis import strategies as st

from captum_genomics import ShuffleDeepLiftShap, UnsupportedOperationError
from captum_genomics.testing.checks import check_additivity, check_model_unchanged
from captum_genomics.testing.methods import SequenceModel as _Single
from captum_genomics.testing.methods import methods_of_kind
from captum_genomics.testing.models import DTYPE, Batch, batches, bounded, random_one_hot


METHODS = methods_of_kind("sequence")

method = pytest.mark.parametrize("spec", METHODS, ids=lambda s: s.name)


# ------------------------------------------------------------------ toy models

class _TwoInputs(nn.Module):
    """Two sequences and extra arguments: a per-example tensor and a Python float."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Conv1d(4, 5, 3), nn.Conv1d(4, 5, 5, padding=1)
        self.out = nn.Linear(5, 3)

    def forward(self, x1, x2, scale=None, offset=0.0):
        h = torch.relu(self.a(x1)) + torch.tanh(self.b(x2))
        y = self.out(h.mean(-1)) + offset
        return y if scale is None else y * scale[:, None]


class _Unsupported(nn.Module):
    """``logsumexp`` has no DeepLIFT rule."""

    def __init__(self):
        super().__init__()
        self.conv, self.out = nn.Conv1d(4, 5, 3), nn.Linear(5, 3)

    def forward(self, x):
        return self.out(torch.logsumexp(torch.relu(self.conv(x)), -1))


def _build(cls, seed=0):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return cls().to(DTYPE).eval()


def _batch(n=3, k=2, length=16, seed=0) -> Batch:
    g = torch.Generator().manual_seed(seed)
    return Batch(random_one_hot(n, length, g),
                 random_one_hot(n * k, length, g).reshape(n, k, 4, length), seed)


# ------------------------------------------------------------------- contract

@method
def test_attribute_is_wrapped_by_log_usage(spec):
    explainer = spec.make(_build(_Single))
    assert isinstance(explainer, Attribution)
    assert hasattr(type(explainer).attribute, "__wrapped__")
    assert explainer.has_convergence_delta() is True


@method
@pytest.mark.parametrize("mode", [{}, {"hypothetical": True}, {"return_multipliers": True}],
                         ids=["contributions", "hypothetical", "multipliers"])
def test_tensor_in_tensor_out(spec, mode):
    b = _batch()
    out = spec.make(_build(_Single)).attribute(b.inputs, target=1, **spec.kwargs(b.references),
                                               **mode)
    assert isinstance(out, torch.Tensor)
    want = (b.n, b.k, *b.inputs.shape[1:]) if mode.get("return_multipliers") else b.inputs.shape
    assert out.shape == want and out.dtype == b.inputs.dtype


@method
def test_tuple_in_tuple_out(spec):
    b1, b2 = _batch(seed=1), _batch(seed=2)
    explainer = spec.make(_build(_TwoInputs))
    refs = (b1.references, b2.references)
    out, delta = explainer.attribute((b1.inputs, b2.inputs), target=0, **spec.kwargs(refs),
                                     return_convergence_delta=True)
    assert isinstance(out, tuple) and len(out) == 2
    assert out[0].shape == b1.inputs.shape and out[1].shape == b2.inputs.shape
    assert delta.shape == (b1.n, b1.k)
    report = check_additivity(explainer, (b1.inputs, b2.inputs), refs, target=0)
    assert report.passed, report
    hyp = explainer.attribute((b1.inputs, b2.inputs), target=0, hypothetical=True,
                              **spec.kwargs(refs))
    assert isinstance(hyp, tuple) and torch.equal(hyp[0] * b1.inputs, out[0])


@method
def test_convergence_delta(spec):
    b = _batch(n=4, k=3)
    explainer = spec.make(_build(_Single))
    attr, delta = explainer.attribute(b.inputs, target=2, **spec.kwargs(b.references),
                                      return_convergence_delta=True)
    assert delta.shape == (b.n, b.k)
    assert delta.abs().max() < 1e-12
    recomputed = explainer.compute_convergence_delta(attr, b.references, b.inputs, target=2)
    assert recomputed.shape == (b.n,)
    torch.testing.assert_close(recomputed, delta.mean(1), rtol=0, atol=1e-12)


@method
def test_additional_forward_args(spec):
    """A per-example tensor argument is indexed per pair; other values pass unchanged."""
    b1, b2 = _batch(seed=3), _batch(seed=4)
    scale = torch.tensor([0.5, 2.0, -1.5], dtype=DTYPE)
    model = _build(_TwoInputs)
    explainer = spec.make(model)
    refs = (b1.references, b2.references)
    attr = explainer.attribute((b1.inputs, b2.inputs), target=1, **spec.kwargs(refs),
                               additional_forward_args=(scale, 0.25))
    report = check_additivity(explainer, (b1.inputs, b2.inputs), refs, target=1,
                              additional_forward_args=(scale, 0.25))
    assert report.passed, report
    for i in range(b1.n):  # the same as example i alone with its scale baked in
        alone = spec.make(lambda x1, x2, i=i: model(x1, x2, scale[i:i + 1], 0.25))
        one = alone.attribute((b1.inputs[i:i + 1], b2.inputs[i:i + 1]), target=1,
                              **spec.kwargs((b1.references[i:i + 1], b2.references[i:i + 1])))
        for a, o in zip(attr, one):
            torch.testing.assert_close(a[i:i + 1], o, rtol=0, atol=1e-15)


@method
def test_per_example_target(spec):
    b = _batch(n=4, k=2)
    explainer = spec.make(_build(_Single))
    targets = [2, 0, 1, 2]
    for target in (torch.tensor(targets), targets):
        attr = explainer.attribute(b.inputs, target=target, **spec.kwargs(b.references))
        for i, t in enumerate(targets):
            one = explainer.attribute(b.inputs[i:i + 1], target=t,
                                      **spec.kwargs(b.references[i:i + 1]))
            torch.testing.assert_close(attr[i:i + 1], one, rtol=0, atol=0)


@method
def test_targets_equal_separate_calls(spec):
    b = _batch(n=3, k=3)
    explainer = spec.make(_build(_Single))
    together = explainer.attribute(b.inputs, targets=[0, 1, 2], **spec.kwargs(b.references),
                                   return_convergence_delta=True)
    assert isinstance(together, list) and len(together) == 3
    for t, (attr, delta) in enumerate(together):
        alone, delta_alone = explainer.attribute(b.inputs, target=t, **spec.kwargs(b.references),
                                                 return_convergence_delta=True)
        assert torch.equal(attr, alone) and torch.equal(delta, delta_alone)


# ------------------------------------------------------- no leaks, no changes

@method
@bounded(2)
@given(data=st.data())
def test_model_unchanged_after_calls(spec, case, data, max_n, max_k):
    batch = data.draw(batches(case.length, max_n=max_n, max_k=max_k, dtype=case.dtype))
    report = check_model_unchanged(spec.make(case.model), batch.inputs,
                                   repeats=2, target=case.target,
                                   **spec.kwargs(batch.references))
    assert report.passed, f"{case.name}: {report}"


@method
def test_model_unchanged_after_target_out_of_range(spec, case):
    if case.n_outputs is None:
        pytest.skip("the model returns (B,): no target axis to overrun")
    b = _batch(n=2, k=2, length=case.length)
    b = Batch(b.inputs.to(case.dtype), b.references.to(case.dtype), b.seed)
    report = check_model_unchanged(spec.make(case.model), b.inputs, target=case.n_outputs + 3,
                                   expect_error=ValueError, **spec.kwargs(b.references))
    assert report.passed, f"{case.name}: {report}"


@method
def test_model_unchanged_after_strict_error_and_warning(spec):
    b = _batch()
    model = _build(_Unsupported)
    model.out.register_forward_hook(lambda module, inputs, output: None)  # a user's hook
    model.train(False)
    explainer = spec.make(model)
    report = check_model_unchanged(explainer, b.inputs, target=0, strict=True,
                                   expect_error=UnsupportedOperationError,
                                   **spec.kwargs(b.references))
    assert report.passed, report
    report = check_model_unchanged(explainer, b.inputs, target=0, **spec.kwargs(b.references))
    assert report.passed, report  # treated as linear with a warning; still no side effects


@method
def test_model_unchanged_in_training_mode_error(spec):
    """A model in training mode with dropout is refused, and left in training mode."""
    model = nn.Sequential(nn.Conv1d(4, 3, 3), nn.ReLU(), nn.Dropout(0.5), nn.Flatten(),
                          nn.Linear(3 * 14, 2)).to(DTYPE).train()
    b = _batch()
    report = check_model_unchanged(spec.make(model), b.inputs, target=0,
                                   expect_error=ValueError, **spec.kwargs(b.references))
    assert report.passed, report
    assert model.training


# ------------------------------------------- the checks catch broken methods

class _Broken(ShuffleDeepLiftShap):
    """ShuffleDeepLiftShap with one fault injected, to show each check notices it."""

    def __init__(self, model, fault):
        super().__init__(model)
        self.fault = fault

    def attribute(self, inputs, *args, **kwargs):
        out = super().attribute(inputs, *args, **kwargs)
        model = self.forward_func
        if self.fault == "hook":
            model.register_forward_hook(lambda *a: None)
        elif self.fault == "attribute":
            model._cache = out
        elif self.fault == "inputs":
            inputs.mul_(1.0 + 1e-12)
        elif self.fault == "grad_mode":
            torch.set_grad_enabled(False)
        elif self.fault == "batch":
            out = out + 1e-9 * inputs.shape[0]  # above the default relative bound
        elif self.fault == "noise":
            out = out + 1e-13 * torch.rand_like(out)
        return out


@pytest.mark.parametrize("fault", ["hook", "attribute", "inputs", "grad_mode"])
def test_check_model_unchanged_notices_side_effects(fault):
    b = _batch()
    model = _build(_Single)
    try:
        report = check_model_unchanged(_Broken(model, fault), b.inputs, references=b.references,
                                       target=0)
    finally:
        torch.set_grad_enabled(True)
    assert not report.passed and report.details["problems"], report


def test_checks_notice_batch_dependence_noise_and_missing_rules():
    from captum_genomics import default_rules
    from captum_genomics.testing.checks import (
        check_agreement_tangermeme,
        check_batch_invariance,
        check_determinism,
    )

    b = _batch(n=3, k=2)
    model = _build(_Single)
    assert not check_batch_invariance(_Broken(model, "batch"), b.inputs, b.references,
                                      target=0).passed
    assert not check_determinism(_Broken(model, "noise"), b.inputs, b.references,
                                 target=0).passed
    no_gelu = ShuffleDeepLiftShap(model, rules=default_rules().without("gelu"))
    report = check_additivity(no_gelu, b.inputs, b.references, target=0)
    assert not report.passed and report.max_error > 1e-6, report
    gelu_net = nn.Sequential(nn.Conv1d(4, 5, 3), nn.GELU(), nn.Flatten(),
                             nn.Linear(5 * 14, 2)).to(DTYPE).eval()
    report = check_agreement_tangermeme(
        gelu_net, b.inputs, b.references, target=0,
        explainer=ShuffleDeepLiftShap(gelu_net, rules=default_rules().without("gelu")))
    assert not report.passed and report.details["tangermeme_delta"] < 1e-12, report
