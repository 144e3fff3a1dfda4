"""Cascading randomisation (Adebayo et al. 2018): order, isolation, determinism, verdicts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from captum.attr import Saliency
from scipy.stats import spearmanr
from torch import nn

from captum_genomics.comparison.metrics import observed_scores
from captum_genomics.comparison.randomization import (
    cascading_randomization,
    flag_insensitive,
    randomizable_layers,
    randomization_spearman,
)

LAYERS = ["body.0", "body.2", "head"]


class SmallCNN(nn.Module):
    def __init__(self, length=24):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv1d(4, 8, 5, padding=2), nn.ReLU(), nn.Conv1d(8, 8, 5, padding=2), nn.ReLU()
        )
        self.head = nn.Linear(8 * length, 1)

    def forward(self, x):
        return self.head(self.body(x).flatten(1))


def _model():
    torch.manual_seed(0)
    return SmallCNN().eval()


def _inputs(n=6, length=24):
    g = torch.Generator().manual_seed(1)
    idx = torch.randint(0, 4, (n, length), generator=g)
    return nn.functional.one_hot(idx, 4).permute(0, 2, 1).float()


def _saliency(model, x):
    return Saliency(model).attribute(x.clone().requires_grad_(), target=0, abs=False)


def _fixed_weights(model, x):
    """Ignores the model: a fixed per-position weight at the observed base."""
    return x * torch.linspace(-1.0, 1.0, x.shape[-1])


def _state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def _params_of(model, name):
    return [p.detach().clone() for p in dict(model.named_modules())[name].parameters()]


def _same(ps, qs):
    return all(torch.equal(p, q) for p, q in zip(ps, qs))


# ----------------------------------------------------------------------------- layers
def test_randomizable_layers_registration_order():
    model = _model()
    assert randomizable_layers(model) == LAYERS
    assert randomizable_layers(nn.Conv1d(4, 2, 3)) == [""]
    assert randomizable_layers(nn.Sequential(nn.ReLU())) == []


# ----------------------------------------------------------------------------- cascade
def test_cascade_is_top_down_cumulative_and_isolated():
    model = _model()
    before = _state(model)
    rng = torch.get_rng_state()
    originals = {name: _params_of(model, name) for name in LAYERS}
    steps = list(cascading_randomization(model, random_state=3))
    assert [(s, name) for s, name, _ in steps] == [(1, "head"), (2, "body.2"), (3, "body.0")]
    for step, _, copy_ in steps:
        assert not copy_.training and copy_ is not model
        top = LAYERS[len(LAYERS) - step:]
        for name in LAYERS:
            changed = not _same(_params_of(copy_, name), originals[name])
            assert changed == (name in top), (step, name)
    # a layer keeps the values it got when it was randomised
    for (s1, _, c1), (s2, _, c2) in zip(steps, steps[1:]):
        assert _same(_params_of(c1, "head"), _params_of(c2, "head"))
    # copies are independent of each other
    with torch.no_grad():
        steps[0][2].head.weight.zero_()
    assert not torch.equal(steps[1][2].head.weight, steps[0][2].head.weight)
    # user model and global RNG untouched
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert torch.equal(torch.get_rng_state(), rng)


def test_cascade_deterministic_and_seed_dependent():
    model = _model()
    a = [_state(c) for _, _, c in cascading_randomization(model, random_state=7)]
    b = [_state(c) for _, _, c in cascading_randomization(model, random_state=7)]
    c = [_state(c) for _, _, c in cascading_randomization(model, random_state=8)]
    for sa, sb in zip(a, b):
        assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not torch.equal(a[0]["head.weight"], c[0]["head.weight"])


def test_cascade_layers_subset_in_given_order():
    model = _model()
    steps = list(cascading_randomization(model, layers=["body.0", "head"]))
    assert [name for _, name, _ in steps] == ["head", "body.0"]
    last = steps[-1][2]
    assert _same(_params_of(last, "body.2"), _params_of(model, "body.2"))


# ----------------------------------------------------------------------------- spearman
def test_randomization_spearman_values_and_flags():
    model = _model()
    x = _inputs()
    x0, before, rng = x.clone(), _state(model), torch.get_rng_state()
    frame = randomization_spearman(_saliency, model, x, random_state=0)
    assert list(frame.columns) == ["step", "layer", "example", "spearman"]
    assert len(frame) == 6 * 4
    assert frame["layer"].tolist()[::6] == ["", "head", "body.2", "body.0"]
    assert (frame.loc[frame.step == 0, "spearman"] == 1.0).all()
    # independent recomputation of each step
    base = observed_scores(_saliency(model, x.clone()), x).numpy()
    for step, _, copy_ in cascading_randomization(model, random_state=0):
        scores = observed_scores(_saliency(copy_, x.clone()), x).numpy()
        want = [spearmanr(scores[n], base[n]).statistic for n in range(6)]
        got = frame.loc[frame.step == step].sort_values("example")["spearman"].to_numpy()
        np.testing.assert_allclose(got, want)
    assert not flag_insensitive(frame)
    assert frame.loc[frame.step == 3, "spearman"].median() < 0.5
    assert torch.equal(x, x0) and torch.equal(torch.get_rng_state(), rng)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


@pytest.mark.parametrize("method", [_fixed_weights, lambda m, x: x.clone()])
def test_model_independent_method_is_flagged(method):
    frame = randomization_spearman(method, _model(), _inputs(), show_progress=True)
    assert (frame["spearman"] == 1.0).all()
    assert flag_insensitive(frame)


def test_flag_insensitive_threshold_and_nan():
    frame = pd.DataFrame({"step": [0, 0, 1, 1, 1], "spearman": [1, 1, 0.4, 0.6, 0.7]})
    assert flag_insensitive(frame, threshold=0.5)
    assert not flag_insensitive(frame, threshold=0.6)
    frame.loc[frame.step == 1, "spearman"] = np.nan
    assert not flag_insensitive(frame)


# ----------------------------------------------------------------------------- bad inputs
_X = _inputs(n=2)

BAD = [
    (lambda: randomizable_layers("model"), TypeError, "model"),
    (lambda: cascading_randomization(_model(), layers=["nope"]), ValueError, "layers"),
    (lambda: cascading_randomization(_model(), layers="head"), TypeError, "layers"),
    (lambda: cascading_randomization(_model(), layers=["head", "head"]), ValueError, "layers"),
    (lambda: cascading_randomization(_model(), layers=[]), ValueError, "layers"),
    (lambda: cascading_randomization(nn.ReLU()), ValueError, "model"),
    (lambda: cascading_randomization(_model(), random_state=1.5), TypeError, "random_state"),
    (lambda: randomization_spearman("f", _model(), _X), TypeError, "attribute"),
    (lambda: randomization_spearman(_saliency, _model(), _X * 2), ValueError, "inputs"),
    (lambda: randomization_spearman(_saliency, _model(), _X.numpy()), TypeError, "inputs"),
    (lambda: randomization_spearman(lambda m, x: x[:, :2], _model(), _X), ValueError,
     "attribute"),
    (lambda: randomization_spearman(lambda m, x: x * float("nan"), _model(), _X), ValueError,
     "attribute"),
    (lambda: randomization_spearman(lambda m, x: 1.0, _model(), _X), TypeError, "attribute"),
    (lambda: flag_insensitive([1, 2]), TypeError, "frame"),
    (lambda: flag_insensitive(pd.DataFrame({"step": [0]})), ValueError, "frame"),
    (lambda: flag_insensitive(pd.DataFrame({"step": [0], "spearman": [1.0]})), ValueError,
     "frame"),
    (lambda: flag_insensitive(pd.DataFrame({"step": [1], "spearman": [1.0]}), threshold="a"),
     TypeError, "threshold"),
]


@pytest.mark.parametrize("call,exc,name", BAD)
def test_bad_inputs_name_the_argument(call, exc, name):
    with pytest.raises(exc, match=f"`{name}"):
        call()


def test_model_unchanged_after_error():
    model = _model()
    before = _state(model)
    with pytest.raises(ValueError):
        randomization_spearman(lambda m, x: x[:, :2], model, _inputs(n=2))
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
