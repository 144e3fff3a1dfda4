"""ShuffleDeepLiftShap: values against independent computations, options and bad input."""


import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from captum_genomics import (
    ConvergenceDeltaWarning,
    ShuffleDeepLiftShap,
    UnsupportedOperationError,
    UnsupportedOperationWarning,
    default_rules,
    deeplift_multipliers,
    hypothetical_contributions,
)
from tests.conftest import random_one_hot

D = torch.float64


class CNN(nn.Module):
    def __init__(self, act=None, n_out=3, length=20):
        super().__init__()
        self.conv = nn.Conv1d(4, 6, 5, padding=2)
        self.act = act or nn.ReLU()
        self.pool = nn.MaxPool1d(2)
        self.dropout = nn.Dropout(0.2)
        self.fc = nn.Linear(6 * (length // 2), n_out)

    def forward(self, x):
        h = self.pool(self.act(self.conv(x)))
        return self.fc(self.dropout(h.flatten(1)))


@pytest.fixture
def setup():
    model = CNN().double().eval()
    x = random_one_hot(4, 20)
    refs = torch.stack([random_one_hot(4, 20) for _ in range(5)], 1)
    return model, x, refs


def _brute_force(model, x, refs, target):
    """Loop over pairs with the functional engine and average by hand."""
    n, k = refs.shape[:2]
    out = torch.zeros_like(x)
    hyp = torch.zeros_like(x)
    for i in range(n):
        for j in range(k):
            m, _ = deeplift_multipliers(model, x[i:i + 1], refs[i:i + 1, j], target=target)
            h = m - (m * refs[i:i + 1, j]).sum(1, keepdim=True)
            hyp[i] += h[0] / k
    out = hyp * x
    return out, hyp


def test_matches_pairwise_loop_and_is_additive(setup):
    model, x, refs = setup
    explainer = ShuffleDeepLiftShap(model)
    attr, delta = explainer.attribute(x, references=refs, target=2, return_convergence_delta=True)
    hyp = explainer.attribute(x, references=refs, target=2, hypothetical=True)
    expected, expected_hyp = _brute_force(model, x, refs, 2)
    assert torch.allclose(attr, expected, atol=1e-14)
    assert torch.allclose(hyp, expected_hyp, atol=1e-14)
    assert delta.shape == (4, 5) and delta.abs().max() < 1e-12
    with torch.no_grad():
        diff = model(x)[:, 2] - model(refs.flatten(0, 1))[:, 2].reshape(4, 5).mean(1)
    assert torch.allclose(attr.sum((1, 2)), diff, atol=1e-12)
    # contributions sit on the observed base only
    assert torch.all(attr[x == 0] == 0)


def test_public_hypothetical_contributions_matches(setup):
    model, x, refs = setup
    explainer = ShuffleDeepLiftShap(model)
    mult = explainer.attribute(x, references=refs, target=0, return_multipliers=True)
    assert mult.shape == (4, 5, 4, 20)
    hyp = explainer.attribute(x, references=refs, target=0, hypothetical=True)
    assert torch.allclose(hypothetical_contributions(mult, x, refs), hyp, atol=1e-15)


def test_batch_size_and_batch_composition_do_not_change_results(setup):
    model, x, refs = setup
    explainer = ShuffleDeepLiftShap(model)
    base = explainer.attribute(x, references=refs, target=1, batch_size=1000)
    for bs in (1, 3, 5, 7):
        assert torch.equal(explainer.attribute(x, references=refs, target=1, batch_size=bs), base)
    alone = explainer.attribute(x[2:3], references=refs[2:3], target=1)
    assert torch.equal(alone[0], base[2])


def test_several_targets_from_one_call_equal_single_calls(setup):
    model, x, refs = setup
    explainer = ShuffleDeepLiftShap(model)
    together = explainer.attribute(x, references=refs, targets=[0, 1, 2],
                                   return_convergence_delta=True)
    for t, (attr, delta) in enumerate(together):
        single, single_delta = explainer.attribute(x, references=refs, target=t,
                                                   return_convergence_delta=True)
        assert torch.equal(attr, single) and torch.equal(delta, single_delta)


def test_per_example_targets(setup):
    model, x, refs = setup
    explainer = ShuffleDeepLiftShap(model)
    per = explainer.attribute(x, references=refs, target=torch.tensor([0, 1, 2, 0]))
    for i, t in enumerate([0, 1, 2, 0]):
        assert torch.equal(per[i], explainer.attribute(x, references=refs, target=t)[i])


def test_additional_forward_args_follow_their_example():
    class Scaled(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv1d(4, 3, 3)

        def forward(self, x, scale):
            return torch.tanh(self.conv(x)).sum((1, 2)) * scale

    model = Scaled().double()
    x = random_one_hot(3, 10)
    refs = torch.stack([random_one_hot(3, 10) for _ in range(2)], 1)
    scale = torch.tensor([1.0, 2.0, -3.0], dtype=D)
    explainer = ShuffleDeepLiftShap(model)
    attr, delta = explainer.attribute(x, references=refs, additional_forward_args=(scale,),
                                      batch_size=4, return_convergence_delta=True)
    assert delta.abs().max() < 1e-12
    for i in range(3):
        alone = explainer.attribute(x[i:i + 1], references=refs[i:i + 1],
                                    additional_forward_args=(scale[i:i + 1],))
        assert torch.allclose(alone[0], attr[i], atol=1e-15)


def test_tuple_inputs_give_tuple_outputs():
    class Two(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Conv1d(4, 2, 3)
            self.b = nn.Linear(5, 1)

        def forward(self, seq, track):
            return F.relu(self.a(seq)).sum((1, 2)) + torch.sigmoid(self.b(track)).squeeze(1)

    model = Two().double()
    seq = random_one_hot(3, 8)
    track = torch.randn(3, 5, dtype=D)
    refs = (torch.stack([random_one_hot(3, 8) for _ in range(2)], 1), torch.zeros(3, 2, 5, dtype=D))
    attr, delta = ShuffleDeepLiftShap(model).attribute((seq, track), references=refs,
                                                       return_convergence_delta=True)
    assert isinstance(attr, tuple) and attr[0].shape == seq.shape and attr[1].shape == track.shape
    assert delta.abs().max() < 1e-12


def test_convergence_delta_warning_and_compute_convergence_delta(setup):
    model = CNN(act=nn.GELU()).double().eval()
    _, x, refs = setup
    explainer = ShuffleDeepLiftShap(model, rules=default_rules().without("gelu"))
    with pytest.warns(UnsupportedOperationWarning, match="gelu"):
        with pytest.warns(ConvergenceDeltaWarning, match="warning_threshold"):
            explainer.attribute(x, references=refs, warning_threshold=1e-12, target=0)
    exact = ShuffleDeepLiftShap(model)
    attr, delta = exact.attribute(x, references=refs, target=0, return_convergence_delta=True)
    assert exact.has_convergence_delta()
    per_example = exact.compute_convergence_delta(attr, refs, x, target=0)
    assert torch.allclose(per_example, delta.mean(1), atol=1e-12)


def test_model_and_inputs_unchanged(setup):
    model, x, refs = setup
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x0, r0 = x.clone(), refs.clone()
    explainer = ShuffleDeepLiftShap(model)
    first = explainer.attribute(x, references=refs, target=0)
    with pytest.raises(ValueError):
        explainer.attribute(x, references=refs, target=7)
    assert torch.equal(explainer.attribute(x, references=refs, target=0), first)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert torch.equal(x, x0) and torch.equal(refs, r0)
    assert all(p.grad is None for p in model.parameters())
    assert not any(m._forward_hooks or m._backward_hooks or m._forward_pre_hooks
                   for m in model.modules())


# ---- bad input: every error names the argument and what was received -------------------

def test_error_nan_and_inf(setup):
    model, x, refs = setup
    bad = x.clone()
    bad[0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="`inputs`.*NaN"):
        ShuffleDeepLiftShap(model).attribute(bad, references=refs)
    bad_refs = refs.clone()
    bad_refs[1, 1, 1, 1] = float("inf")
    with pytest.raises(ValueError, match="`references`.*Inf"):
        ShuffleDeepLiftShap(model).attribute(x, references=bad_refs)


def test_error_reference_shape(setup):
    model, x, refs = setup
    with pytest.raises(ValueError, match=r"`references` must have shape \(N, K, \*input.shape"):
        ShuffleDeepLiftShap(model).attribute(x, references=refs[:, :, :, :10])
    with pytest.raises(ValueError, match="got \\(3, 5, 4, 20\\)"):
        ShuffleDeepLiftShap(model).attribute(x, references=refs[:3])


def test_error_zero_references(setup):
    model, x, refs = setup
    with pytest.raises(ValueError, match="K = 0"):
        ShuffleDeepLiftShap(model).attribute(x, references=refs[:, :0])
    with pytest.raises(ValueError, match="`n_references` must be an integer >= 1, got 0"):
        ShuffleDeepLiftShap(model).attribute(x, n_references=0)


def test_error_target_out_of_range(setup):
    model, x, refs = setup
    with pytest.raises(ValueError, match=r"target 3 is out of range .*shape \(20, 3\)"):
        ShuffleDeepLiftShap(model).attribute(x, references=refs, target=3)
    with pytest.raises(ValueError, match="`target` list .* length 4, got 2"):
        ShuffleDeepLiftShap(model).attribute(x, references=refs, target=[0, 1])
    with pytest.raises(ValueError, match="one scalar per example"):
        ShuffleDeepLiftShap(model).attribute(x, references=refs, target=None)


def test_error_empty_batch(setup):
    model, x, refs = setup
    with pytest.raises(ValueError, match="`inputs` is an empty batch"):
        ShuffleDeepLiftShap(model).attribute(x[:0], references=refs[:0])


def test_error_training_mode(setup):
    model, x, refs = setup
    model.train()
    with pytest.raises(ValueError, match=r"`model` is in training mode: submodule 'dropout'"):
        ShuffleDeepLiftShap(model).attribute(x, references=refs, target=0)
    assert model.training  # left as it was


def test_error_unsupported_nonlinearity_strict(setup):
    _, x, refs = setup

    class Weird(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv1d(4, 2, 3)

        def forward(self, t):
            return torch.special.i0(self.conv(t)).sum((1, 2))

    with pytest.raises(UnsupportedOperationError, match="i0"):
        ShuffleDeepLiftShap(Weird().double(), strict=True).attribute(x, references=refs)


def test_error_hypothetical_needs_one_hot(setup):
    model, x, refs = setup
    with pytest.raises(ValueError, match="hypothetical=True"):
        ShuffleDeepLiftShap(model).attribute(x * 0.5, references=refs, hypothetical=True)


def test_error_non_one_hot_to_shuffle(setup):
    model, x, _ = setup
    with pytest.raises(ValueError, match="one-hot"):
        ShuffleDeepLiftShap(model).attribute(x * 0.5, n_references=2, target=0)


@pytest.mark.parametrize("strategy", ["examples", "pairs", "batched", "auto"])
def test_strategies_agree_with_each_other(setup, strategy):
    model, x, refs = setup
    explainer = ShuffleDeepLiftShap(model)
    base = explainer.attribute(x, references=refs, target=1, strategy="examples",
                               return_multipliers=True)
    other, delta = explainer.attribute(x, references=refs, target=1, strategy=strategy,
                                       batch_size=7, return_multipliers=True,
                                       return_convergence_delta=True)
    assert torch.allclose(base, other, atol=1e-13)
    assert delta.abs().max() < 1e-12


def test_error_unknown_strategy(setup):
    model, x, refs = setup
    with pytest.raises(ValueError, match="`strategy` must be"):
        ShuffleDeepLiftShap(model).attribute(x, references=refs, strategy="fast")


def test_auto_strategy_is_batched_and_handles_sequence_first_layers():
    from captum_genomics.deeplift.engine import DeepLiftPasses, detached_forward

    small = CNN().double().eval()
    layer = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=False).double().eval()
    proj = nn.Conv1d(4, 8, 1).double()

    def sequence_first(t):  # (N, 4, L) -> (L, N, 8): activations with the examples on axis 1
        return layer(proj(t).permute(2, 0, 1)).mean((0, 2))

    sel = (lambda y: y.reshape(len(y), -1)[:, 0], lambda y: y.reshape(len(y), -1)[:, 0])
    x, refs = random_one_hot(2, 20), random_one_hot(6, 20).reshape(2, 3, 4, 20)
    for model in (small, sequence_first):
        passes = DeepLiftPasses(detached_forward(model), default_rules(), strategy="auto")
        (m_auto,), _, _ = passes.run((x,), (refs,), [sel])
        assert passes.last_strategy == "batched"
        pairs = DeepLiftPasses(detached_forward(model), default_rules(), strategy="pairs")
        (m_pairs,), _, _ = pairs.run((x,), (refs,), [sel])
        assert torch.allclose(m_auto[0], m_pairs[0], rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="examples on its first axis"):
        DeepLiftPasses(detached_forward(sequence_first), default_rules(),
                       strategy="examples").run((x,), (refs,), [sel])
