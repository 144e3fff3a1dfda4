"""Every method works inside the caller's ``torch.no_grad()`` and ``torch.inference_mode()``.

Issue #11, section 1: users call attribution inside evaluation loops that
switch autograd off. Each method must give the *same bits* as outside those
modes (the independent computation here is the method run with autograd on),
and must leave the caller's grad mode and inference mode as they were, also
after an error.
"""

from __future__ import annotations

import contextlib

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from captum_genomics import FastSHAP, HeadAblationExplainedVariance, ShuffleDeepLiftShap
from captum_genomics._utils.grad_mode import autograd_enabled, autograd_tensors
from captum_genomics.deeplift import deeplift_multipliers
from captum_genomics.zoo.ctcf_transformer import CTCFTransformer
from tests.head_models import NeighbourModel

MODES = {
    "no_grad": torch.no_grad,
    "inference_mode": torch.inference_mode,
    "set_grad_enabled_false": lambda: torch.set_grad_enabled(False),
    "enabled": contextlib.nullcontext,
}

pytestmark = pytest.mark.usefixtures("one_thread")


def _one_hot(n, length, seed):
    g = torch.Generator().manual_seed(seed)
    return F.one_hot(torch.randint(4, (n, length), generator=g), 4).transpose(1, 2).float()


def _cnn():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv1d(4, 8, 5), nn.ReLU(), nn.MaxPool1d(2), nn.Flatten(),
                         nn.LazyLinear(2)).eval()


def _modes_now():
    return torch.is_grad_enabled(), torch.is_inference_mode_enabled()


@pytest.fixture(scope="module")
def cnn():
    model = _cnn()
    model(_one_hot(1, 30, 0))  # materialize the lazy layer
    return model


@pytest.mark.parametrize("mode", sorted(MODES))
def test_shuffle_deep_lift_shap_same_bits_in_every_grad_mode(cnn, mode):
    x = _one_hot(4, 30, 1)
    expected, delta0 = ShuffleDeepLiftShap(cnn).attribute(
        x, target=1, n_references=5, random_state=3, return_convergence_delta=True)
    with MODES[mode]():
        inside = _modes_now()
        xs = x.clone()  # an inference tensor under inference_mode
        got, delta = ShuffleDeepLiftShap(cnn).attribute(
            xs, target=1, n_references=5, random_state=3, return_convergence_delta=True)
        assert _modes_now() == inside
    assert torch.equal(got, expected) and torch.equal(delta, delta0)
    assert delta.abs().max() < 1e-5


@pytest.mark.parametrize("mode", ["no_grad", "inference_mode"])
def test_transformer_in_grad_modes_is_additive_and_identical(mode):
    torch.manual_seed(0)
    model = CTCFTransformer().double().eval()
    x = _one_hot(2, 40, 2).double()
    expected = ShuffleDeepLiftShap(model).attribute(x, n_references=3, random_state=0)
    with MODES[mode]():
        got, delta = ShuffleDeepLiftShap(model).attribute(
            x.clone(), n_references=3, random_state=0, return_convergence_delta=True)
    assert torch.equal(got, expected)
    assert delta.abs().max() < 1e-10


def test_model_built_under_inference_mode(cnn):
    x = _one_hot(3, 30, 4)
    expected = ShuffleDeepLiftShap(cnn).attribute(x, target=0, n_references=4, random_state=1)
    with torch.inference_mode():
        model = _cnn()
        model(_one_hot(1, 30, 0))
        model.load_state_dict(cnn.state_dict())
        assert next(model.parameters()).is_inference()
        got = ShuffleDeepLiftShap(model).attribute(x, target=0, n_references=4, random_state=1)
    assert torch.equal(got, expected)
    assert next(model.parameters()).is_inference()  # the user's model is left as it was


@pytest.mark.parametrize("mode", ["no_grad", "inference_mode"])
def test_modes_restored_after_an_error(cnn, mode):
    with MODES[mode]():
        inside = _modes_now()
        with pytest.raises(ValueError):
            ShuffleDeepLiftShap(cnn).attribute(_one_hot(2, 30, 0), target=7)
        assert _modes_now() == inside
        with pytest.raises(RuntimeError, match="boom"):
            deeplift_multipliers(_Boom(), _one_hot(2, 30, 0), _one_hot(2, 30, 1))
        assert _modes_now() == inside


class _Boom(nn.Module):
    def forward(self, x):
        if torch.is_grad_enabled():  # the input pass
            raise RuntimeError("boom")
        return x.sum((1, 2))


def test_deeplift_multipliers_under_inference_mode(cnn):
    x, r = _one_hot(3, 30, 5), _one_hot(3, 30, 6)
    expected, d0 = deeplift_multipliers(cnn, x, r, target=1)
    with torch.inference_mode():
        got, d = deeplift_multipliers(cnn, x.clone(), r.clone(), target=1)
    assert torch.equal(got, expected) and torch.equal(d, d0)


# ----------------------------------------------------------------------------- FastSHAP


def _tabular():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 2)).eval()
    g = torch.Generator().manual_seed(1)
    return model, torch.randn(96, 5, generator=g), torch.randn(32, 5, generator=g)


@pytest.mark.parametrize("mode", ["no_grad", "inference_mode"])
def test_fastshap_fit_and_attribute_in_grad_modes(mode):
    model, xtr, xva = _tabular()
    kwargs = dict(random_state=0, train_kwargs={"max_epochs": 3, "n_samples": 4})
    expected = FastSHAP.fit(model, xtr, xva, **kwargs).attribute(xva[:8], target=1)
    with MODES[mode]():
        inside = _modes_now()
        fs = FastSHAP.fit(model, xtr.clone(), xva.clone(), **kwargs)
        got = fs.attribute(xva[:8].clone(), target=1)
        assert _modes_now() == inside
    assert torch.equal(got, expected)


# ----------------------------------------------------------------------------- head ablation


@pytest.mark.parametrize("mode", ["no_grad", "inference_mode"])
def test_head_ablation_in_grad_modes(mode):
    model = NeighbourModel()
    g = torch.Generator().manual_seed(1)
    nb = torch.randn(30, 4, 6, generator=g, dtype=torch.float64)
    ct = torch.arange(30) % 3
    with torch.no_grad():
        obs = model(nb, ct) + 0.1 * torch.randn(30, 6, generator=g, dtype=torch.float64)
    kwargs = dict(n_permutations=10, random_state=0)
    expected = HeadAblationExplainedVariance(model, "attention").attribute(
        (nb, ct), ct, obs, **kwargs)
    with MODES[mode]():
        got = HeadAblationExplainedVariance(model, "attention").attribute(
            (nb.clone(), ct.clone()), ct.clone(), obs.clone(), **kwargs)
    assert torch.equal(got.ev_gene, expected.ev_gene)
    assert torch.equal(got.p_value, expected.p_value)


# ----------------------------------------------------------------------------- the helpers


def test_autograd_tensors_copies_only_inference_tensors():
    normal = torch.ones(3)
    with torch.inference_mode():
        frozen = torch.arange(3.0)
    with autograd_enabled():
        assert torch.is_grad_enabled() and not torch.is_inference_mode_enabled()
        out = autograd_tensors((normal, [frozen], {"a": frozen, "b": 2}, "s"))
    assert out[0] is normal
    assert not out[1][0].is_inference() and torch.equal(out[1][0], frozen)
    assert not out[2]["a"].is_inference() and out[2]["b"] == 2 and out[3] == "s"
    assert frozen.is_inference()  # the caller's tensor is not converted in place
