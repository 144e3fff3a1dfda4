"""Gradient correction (Majdandzic, Rajesh & Koo 2023): closed forms and Captum identities."""

import math

import numpy as np
import pytest
import torch
import torch.nn as nn
from captum.attr import GradientShap, InputXGradient, IntegratedGradients, Saliency
from hypothesis import given, settings
from hypothesis import strategies as st

from captum_genomics.gradients import (
    GradientCorrectedModel,
    corrected,
    correct_gradients,
    off_simplex_angle,
)
from tests.conftest import random_one_hot

pytestmark = pytest.mark.usefixtures("one_thread")

N, L = 3, 12


class SmallCNN(nn.Module):
    def __init__(self, length=L):
        super().__init__()
        self.conv = nn.Conv1d(4, 6, 5, padding=2)
        self.relu = nn.ReLU()
        self.out = nn.Linear(6 * length, 2)

    def forward(self, x, scale=1.0):
        return self.out(self.relu(self.conv(x)).flatten(1)) * scale


@pytest.fixture
def model():
    torch.manual_seed(1)
    return SmallCNN().double().eval()


@pytest.fixture
def x():
    return random_one_hot(N, L, torch.Generator().manual_seed(2))


def plain_grad(model, points, target=0):
    """d model(points)[:, target] / d points, by torch.autograd directly."""
    p = points.detach().clone().requires_grad_(True)
    (g,) = torch.autograd.grad(model(p)[:, target].sum(), p)
    return g


def snapshot(model):
    return ({k: v.clone() for k, v in model.state_dict().items()},
            {name: dict(vars(m)).keys() for name, m in model.named_modules()})


def assert_unchanged(model, snap):
    state, attrs = snap
    now = model.state_dict()
    assert now.keys() == state.keys()
    assert all(torch.equal(now[k], state[k]) for k in state)
    for name, m in model.named_modules():
        assert dict(vars(m)).keys() == attrs[name]
        assert not m._forward_hooks and not m._forward_pre_hooks
        assert not m._backward_hooks and not getattr(m, "_backward_pre_hooks", {})


# ----------------------------------------------------------------------------- pure functions
def loop_correct(g):
    """Explicit loop over (example, position): g[:, b, l] - mean of the 4 bases."""
    out = torch.empty_like(g)
    for n in range(g.shape[0]):
        for pos in range(g.shape[2]):
            m = sum(g[n, b, pos].item() for b in range(4)) / 4
            for b in range(4):
                out[n, b, pos] = g[n, b, pos] - m
    return out


def test_correct_matches_loop_and_projection():
    g = torch.randn(2, 4, 7, dtype=torch.float64)
    c = correct_gradients(g)
    torch.testing.assert_close(c, loop_correct(g), rtol=0, atol=1e-14)
    # closed form: (I - 11^T / 4) g per position
    P = torch.eye(4, dtype=torch.float64) - torch.full((4, 4), 0.25, dtype=torch.float64)
    torch.testing.assert_close(c, torch.einsum("ab,nbl->nal", P, g), rtol=0, atol=1e-14)
    torch.testing.assert_close(c.sum(1), torch.zeros(2, 7, dtype=torch.float64), atol=1e-14,
                               rtol=0)
    torch.testing.assert_close(correct_gradients(c), c, rtol=0, atol=1e-14)  # idempotent
    residual = g - c  # parallel to ones: every base carries the same value
    torch.testing.assert_close(residual, residual[:, :1].expand_as(residual), rtol=0,
                               atol=1e-14)
    assert abs(float((residual * c).sum())) < 1e-12  # orthogonal projection
    # (4, L) input and other dims, dtype preserved, input untouched
    g2 = g[0].float().clone()
    c2 = correct_gradients(g2)
    assert c2.dtype == torch.float32 and torch.equal(g2, g[0].float())
    torch.testing.assert_close(c2, c[0].float())
    torch.testing.assert_close(correct_gradients(g.transpose(1, 2), dim=-1),
                               c.transpose(1, 2), rtol=0, atol=1e-14)


@pytest.mark.parametrize("vec, expected", [
    ((1.0, 1.0, 1.0, 1.0), 90.0),
    ((1.0, -1.0, 0.0, 0.0), 0.0),
    ((1.0, 0.0, 0.0, 0.0), 30.0),
    ((-2.0, 0.0, 0.0, 0.0), 30.0),
    ((0.0, 0.0, 0.0, 0.0), 0.0),
    ((1e-300, 0.0, 0.0, 0.0), 30.0),
    ((1.0, 1.0, 0.0, 0.0), 45.0),
])
def test_angle_hand_made(vec, expected):
    g = torch.tensor(vec, dtype=torch.float64).reshape(4, 1)
    a = off_simplex_angle(g)
    assert a.shape == (1,) and a.dtype == torch.float64
    assert abs(float(a[0]) - expected) < 1e-9


def test_angle_closed_form_batch():
    g = torch.randn(3, 4, 9, dtype=torch.float64)
    a = off_simplex_angle(g)
    assert a.shape == (3, 9)
    c = correct_gradients(g)
    # angle between g and its projection c on the plane: cos = ||c|| / ||g||
    ref = torch.rad2deg(torch.acos((c.norm(dim=1) / g.norm(dim=1)).clamp(max=1)))
    torch.testing.assert_close(a, ref, rtol=0, atol=1e-6)


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 5).flatmap(lambda k: st.lists(
    st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False), min_size=4 * k,
    max_size=4 * k)))
def test_angle_property(values):
    g = torch.tensor(values, dtype=torch.float64).reshape(-1, 4).T
    a = off_simplex_angle(g)
    assert bool(((a >= 0) & (a <= 90)).all())
    after = off_simplex_angle(correct_gradients(g))
    assert float(after.max()) < 1e-5


@pytest.mark.parametrize("fn", [correct_gradients, off_simplex_angle])
@pytest.mark.parametrize("bad, kwargs, exc, words", [
    (np.zeros((4, 3)), {}, TypeError, "`gradients`"),
    (torch.zeros(4, 3, dtype=torch.int64), {}, TypeError, "floating"),
    (torch.zeros(2, 5, 3), {}, ValueError, "`gradients`"),
    (torch.zeros(2, 4, 3), {"dim": 3}, ValueError, "`dim`"),
    (torch.zeros(2, 4, 3), {"dim": 1.0}, TypeError, "`dim`"),
])
def test_bad_inputs(fn, bad, kwargs, exc, words):
    with pytest.raises(exc, match=words):
        fn(bad, **kwargs)


# ----------------------------------------------------------------------------- Captum identities
def test_forward_identical_and_saliency(model, x):
    snap = snapshot(model)
    wrapped = GradientCorrectedModel(model)
    torch.testing.assert_close(wrapped(x, scale=2.0), model(x, scale=2.0), rtol=0, atol=0)
    with wrapped.record_angles() as rec:
        got = Saliency(wrapped).attribute(x, target=1, abs=False)
    g = plain_grad(model, x, target=1)
    torch.testing.assert_close(got, correct_gradients(Saliency(model).attribute(
        x, target=1, abs=False)), rtol=0, atol=1e-12)
    torch.testing.assert_close(got, correct_gradients(g), rtol=0, atol=1e-12)
    torch.testing.assert_close(rec.mean_angle(), off_simplex_angle(g).mean(-1), rtol=0,
                               atol=1e-10)
    assert len(rec) == 1
    assert_unchanged(model, snap)


def test_input_x_gradient(model, x):
    got = InputXGradient(GradientCorrectedModel(model)).attribute(x, target=0)
    torch.testing.assert_close(got, x * correct_gradients(plain_grad(model, x)), rtol=0,
                               atol=1e-12)


def test_integrated_gradients_and_angles(model, x):
    wrapped = GradientCorrectedModel(model)
    kw = dict(target=0, n_steps=16, method="riemann_trapezoid")
    with wrapped.record_angles() as rec:
        got = IntegratedGradients(wrapped).attribute(x, baselines=torch.zeros_like(x), **kw)
    mean_g = IntegratedGradients(model, multiply_by_inputs=False).attribute(
        x, baselines=torch.zeros_like(x), **kw)
    torch.testing.assert_close(got, (x - 0) * correct_gradients(mean_g), rtol=0, atol=1e-12)
    # angles: plain gradients at the 16 path points, by hand, mean over steps and positions
    alphas = torch.linspace(0, 1, 16, dtype=torch.float64).tolist()
    ref = torch.stack([off_simplex_angle(plain_grad(model, a * x)).mean(-1) for a in alphas])
    torch.testing.assert_close(rec.mean_angle(n_examples=N, layout="step_major"),
                               ref.mean(0), rtol=0, atol=1e-9)
    # chunked by internal_batch_size: same layout per chunk, same answer
    with wrapped.record_angles() as rec2:
        IntegratedGradients(wrapped).attribute(x, internal_batch_size=5 * N, **kw)
    assert len(rec2) > 1
    torch.testing.assert_close(rec2.mean_angle(n_examples=N), ref.mean(0), rtol=0, atol=1e-9)
    with pytest.raises(ValueError, match="`n_examples`"):
        rec2.mean_angle()  # unequal row counts need n_examples


def test_gradient_shap_by_hand(model, x):
    n_samples, K = 4, 5
    baselines = torch.rand(K, 4, L, dtype=torch.float64)
    wrapped = GradientCorrectedModel(model)
    torch.manual_seed(7)
    np.random.seed(7)
    with wrapped.record_angles() as rec:
        got = GradientShap(wrapped).attribute(x, baselines=baselines, n_samples=n_samples,
                                              target=0)
    # by hand: Captum draws baseline indices, then path coefficients, from numpy
    np.random.seed(7)
    idx = np.random.choice(K, n_samples * N).tolist()
    alpha = torch.tensor(np.random.uniform(0.0, 1.0, n_samples * N), dtype=torch.float64)
    xs = x.repeat_interleave(n_samples, dim=0)  # example-major rows
    b = baselines[idx]
    points = b + alpha[:, None, None] * (xs - b)
    g = plain_grad(model, points)
    ref = (correct_gradients(g) * (xs - b)).reshape(N, n_samples, 4, L).mean(1)
    torch.testing.assert_close(got, ref, rtol=0, atol=1e-12)
    ref_angle = off_simplex_angle(g).mean(-1).reshape(N, n_samples).mean(1)
    torch.testing.assert_close(rec.mean_angle(n_examples=N, layout="example_major"),
                               ref_angle, rtol=0, atol=1e-9)


def test_simplex_reference_sums_unchanged(model, x):
    g = plain_grad(model, x)
    c = correct_gradients(g)
    shuffled = x[..., torch.randperm(L)]  # one-hot reference
    uniform = torch.full_like(x, 0.25)  # any simplex reference
    for r in (shuffled, uniform):
        torch.testing.assert_close(((x - r) * c).sum(1), ((x - r) * g).sum(1), rtol=0,
                                   atol=1e-12)
    # a zero reference is off the simplex: the correction does change x * g
    assert not torch.allclose((x * c).sum(1), (x * g).sum(1))


# ----------------------------------------------------------------------------- wrapper contract
def test_train_eval_passthrough_and_model_untouched(model, x):
    snap = snapshot(model)
    wrapped = GradientCorrectedModel(model)
    assert not wrapped.training and not model.training
    wrapped.train()
    assert model.training
    wrapped.eval()
    assert not model.training
    trained = SmallCNN().double().train()
    assert GradientCorrectedModel(trained).training and trained.training
    assert [m for m in wrapped.modules()][1] is model
    for _ in range(2):  # repeat calls: nothing leaks
        Saliency(wrapped).attribute(x, target=0)
    assert_unchanged(model, snap)


def test_error_inside_forward_leaves_model_and_recorder_clean(model, x):
    snap = snapshot(model)
    wrapped = GradientCorrectedModel(model)
    with pytest.raises(TypeError):
        with wrapped.record_angles():
            wrapped(x, scale="bad")  # raises inside the user's forward
    assert wrapped._record is None
    assert_unchanged(model, snap)
    # still works afterwards, and without recording nothing is recorded
    torch.testing.assert_close(Saliency(wrapped).attribute(x, target=0, abs=False),
                               correct_gradients(plain_grad(model, x)), rtol=0, atol=1e-12)


def test_nested_records_and_corrected_helper(model, x):
    wrapped = GradientCorrectedModel(model)
    with wrapped.record_angles() as outer:
        Saliency(wrapped).attribute(x, target=0)
        with wrapped.record_angles() as inner:
            Saliency(wrapped).attribute(x, target=0)
        Saliency(wrapped).attribute(x, target=0)
    assert len(outer) == 2 and len(inner) == 1
    sal = corrected(Saliency, model)
    assert isinstance(sal.forward_func, GradientCorrectedModel)
    torch.testing.assert_close(sal.attribute(x, target=0, abs=False),
                               correct_gradients(plain_grad(model, x)), rtol=0, atol=1e-12)


def test_wrapper_bad_inputs(model, x):
    with pytest.raises(TypeError, match="`model`"):
        GradientCorrectedModel(lambda t: t)
    wrapped = GradientCorrectedModel(model)
    with pytest.raises(ValueError, match="`inputs`"):
        wrapped(torch.zeros(2, 5, L, dtype=torch.float64))
    with pytest.raises(TypeError, match="`inputs`"):
        wrapped(x.long())
    with wrapped.record_angles() as rec:
        pass
    with pytest.raises(RuntimeError, match="No angles"):
        rec.mean_angle()
    with wrapped.record_angles() as rec:
        Saliency(wrapped).attribute(x, target=0)
    with pytest.raises(ValueError, match="`layout`"):
        rec.mean_angle(layout="rows")
    with pytest.raises(ValueError, match="`n_examples`"):
        rec.mean_angle(n_examples=2)
    assert math.isfinite(float(rec.mean_angle(n_examples=1)[0]))
