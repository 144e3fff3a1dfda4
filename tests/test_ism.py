"""InSilicoMutagenesis: equal to a plain loop over every (position, base), on both paths."""

import warnings

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from hypothesis import given

from captum_genomics import FastPathFallbackWarning, InSilicoMutagenesis
from captum_genomics.testing.architectures import architectures, build_arch
from captum_genomics.testing.models import CATALOG, bounded, catalog_case
from captum_genomics.zoo.bpnet import BPNetLike
from captum_genomics.zoo.ctcf import load_ctcf_model
from tests.conftest import random_one_hot

pytestmark = pytest.mark.usefixtures("one_thread")

TOL = {torch.float32: 1e-5, torch.float64: 1e-10}


# ----------------------------------------------------------------------------- models
class Basset(nn.Module):
    """Basset's layout (Kelley et al. 2016), small: 3 x (conv, BN, ReLU, max-pool), 2 dense."""

    def __init__(self, length=96, inplace=False):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv1d(4, 12, 7, padding=3), nn.BatchNorm1d(12), nn.ReLU(inplace), nn.MaxPool1d(3),
            nn.Conv1d(12, 10, 5, padding=2), nn.BatchNorm1d(10), nn.ReLU(inplace),
            nn.MaxPool1d(2),
            nn.Conv1d(10, 8, 3, padding=1), nn.BatchNorm1d(8), nn.ReLU(inplace), nn.MaxPool1d(2))
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(8 * (length // 12), 16), nn.ReLU(),
                                  nn.Dropout(0.3), nn.Linear(16, 3), nn.Sigmoid())
        for m in self.body:
            if isinstance(m, nn.BatchNorm1d):  # non-trivial running statistics
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.data.uniform_(0.5, 1.5)
                m.bias.data.uniform_(-0.2, 0.2)

    def forward(self, x):
        return self.head(self.body(x))


class Attention(nn.Module):
    """A convolution, then self-attention over positions: spliced before the attention."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(4, 8, 5, padding=2)
        self.attention = nn.MultiheadAttention(8, 2, batch_first=True)
        self.out = nn.Linear(8, 3)

    def forward(self, x):
        h = F.gelu(self.conv(x)).transpose(1, 2)
        h, _ = self.attention(h, h, h)
        return self.out(h.mean(1))


class Untraceable(nn.Module):
    """Control flow on values: torch.fx cannot trace it, the naive path runs."""

    def __init__(self):
        super().__init__()
        self.conv, self.out = nn.Conv1d(4, 5, 3), nn.Linear(5, 2)

    def forward(self, x):
        h = torch.relu(self.conv(x))
        if h.sum() > 0:
            h = h * 2
        return self.out(h.mean(-1))


class Extra(nn.Module):
    """Additional forward args: a per-example tensor and a Python float."""

    def __init__(self):
        super().__init__()
        self.conv, self.out = nn.Conv1d(4, 6, 5, padding="same"), nn.Linear(6, 2)

    def forward(self, x, scale, offset=0.0):
        h = torch.tanh(self.conv(x)) * scale[:, None, None]
        return self.out(h.mean(-1)) + offset


class Mixed(nn.Module):
    """Odd graphs: elementwise ops on the input, a reused convolution, functional layers,
    padding, cropping, channel slices, a product of two local nodes, a flatten by view."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv1d(4, 6, 5, padding="same", dilation=2)
        self.c2 = nn.Conv1d(6, 6, 3, padding="valid", groups=2)
        self.w3 = nn.Parameter(torch.randn(6, 6, 3) * 0.4)
        self.scale = nn.Parameter(torch.randn(1, 6, 1))
        self.out = nn.Linear(3 * 10, 2)

    def forward(self, x):
        h = F.gelu(self.c1(torch.sigmoid(x * 3.0 - 1.0))) + F.gelu(self.c1(x))
        h = torch.sigmoid(self.c2(h)) * self.scale + 0.5
        h = h[:, :, 2:-3]
        h2 = torch.tanh(F.conv1d(h, self.w3, padding=1))
        h = h * h2 - h2
        h = F.max_pool1d(h, 2)
        h = F.avg_pool1d(F.pad(h, (1, 2)), 3, 2).exp()
        h = h[:, 1:4]
        return self.out(h.view(h.size(0), -1))


def _build(make, dtype, seed=0, gain=1.0):
    """The model in eval mode; ``gain`` scales the weights so that edits change the output."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = make().to(dtype).eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Conv1d, nn.Linear)):
                m.weight.mul_(gain)
            if isinstance(m, nn.MultiheadAttention):
                m.in_proj_weight.mul_(gain)
    return model


MODELS = {  # name -> (builder, length, target, weight gain): changes up to 0.2-25
    "basset": (lambda: Basset(96), 96, 1, 3.0),
    "bpnet": (lambda: BPNetLike(n_filters=16, n_layers=4, n_outputs=3), 64, 2, 2.5),
    "ctcf": (load_ctcf_model, 60, None, 1.0),
    "attention": (Attention, 32, 0, 3.0),
    "mixed": (Mixed, 44, 1, 2.0),
}


def loop_ism(model, x, target, extra=()):
    """The independent computation: one forward per (sequence, position, base)."""
    n, a, length = x.shape
    out = torch.zeros_like(x)

    def pick(y):
        return y.reshape(-1) if target is None else y[:, target]

    with torch.no_grad():
        for i in range(n):
            args = tuple(e[i:i + 1] if isinstance(e, torch.Tensor) else e for e in extra)
            y0 = pick(model(x[i:i + 1], *args))
            for pos in range(length):
                for b in range(a):
                    if x[i, b, pos] == 1:
                        continue  # the observed base: 0
                    edited = x[i:i + 1].clone()
                    edited[0, :, pos] = 0
                    edited[0, b, pos] = 1
                    out[i, b, pos] = (pick(model(edited, *args)) - y0)[0]
    return out


def _x(n, length, dtype, seed=0, n_columns=()):
    x = random_one_hot(n, length, torch.Generator().manual_seed(seed), dtype=dtype)
    for i, pos in n_columns:
        x[i, :, pos] = 0
    return x


# ----------------------------------------------------------------------------- equality
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("name", list(MODELS))
def test_equals_loop_on_both_paths(name, dtype):
    make, length, target, gain = MODELS[name]
    model = _build(make, dtype, gain=gain)
    x = _x(2, length, dtype, n_columns=[(1, 5)])
    expected = loop_ism(model, x, target)
    assert expected.abs().max() > 0.1  # edits change the output: the comparison means something
    fast = InSilicoMutagenesis(model, fast=True)
    got = fast.attribute(x, target=target, batch_size=40)
    assert fast.fast_path_used, fast.fast_path
    naive = InSilicoMutagenesis(model, fast=False).attribute(x, target=target, batch_size=40)
    assert (got - expected).abs().max() <= TOL[dtype]
    assert (naive - expected).abs().max() <= TOL[dtype]
    if dtype == torch.float64:
        assert (got - naive).abs().max() <= 1e-10
    assert torch.all(got[x.bool()] == 0)  # the observed base: exactly 0


def test_untraceable_model_runs_naive_and_equals_loop():
    model = _build(Untraceable, torch.float64)
    x = _x(2, 20, torch.float64)
    explainer = InSilicoMutagenesis(model, fast=True)
    with pytest.warns(FastPathFallbackWarning, match="torch.fx cannot trace"):
        got = explainer.attribute(x, target=1)
    assert explainer.fast_path_used is False
    assert (got - loop_ism(model, x, 1)).abs().max() <= 1e-10
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # one warning per instance, not per call
        explainer.attribute(x, target=1)


@pytest.mark.parametrize("name", CATALOG)
def test_fast_equals_naive_on_the_catalog(name):
    case = catalog_case(name, length=24)
    x = _x(2, 24, torch.float64, seed=1, n_columns=[(0, 3)])
    fast = InSilicoMutagenesis(case.model, fast=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FastPathFallbackWarning)
        got = fast.attribute(x, target=1, batch_size=30)
    naive = InSilicoMutagenesis(case.model, fast=False).attribute(x, target=1, batch_size=30)
    assert (got - naive).abs().max() <= 1e-10, fast.fast_path


@bounded(10)
@given(spec=architectures(min_length=16, max_length=40))
def test_fast_equals_naive_on_random_architectures(spec):
    model = build_arch(spec)
    x = _x(2, spec.length, torch.float64, seed=spec.seed % 1000)
    with warnings.catch_warnings():  # residual blocks compare shapes: fx cannot trace them
        warnings.simplefilter("ignore", FastPathFallbackWarning)
        got = InSilicoMutagenesis(model, fast=True).attribute(x, target=0, batch_size=17)
    naive = InSilicoMutagenesis(model, fast=False).attribute(x, target=0, batch_size=17)
    assert (got - naive).abs().max() <= 1e-10


@pytest.mark.parametrize("strategy", ["direct", "taps", "gemm"])
def test_every_convolution_kernel_equals_naive(strategy, monkeypatch):
    """The fast path picks a kernel for a convolution's change by its size: force each."""
    from captum_genomics.ism import fast as fast_module

    monkeypatch.setattr(fast_module, "_DIRECT_CHANNELS", 0 if strategy == "direct" else 10**9)
    monkeypatch.setattr(fast_module, "_DIRECT_WASTE", 100.0)
    monkeypatch.setattr(fast_module, "_WIDE", 1 if strategy == "taps" else 10**9)
    for make, length in [(lambda: Basset(48), 48), (lambda: BPNetLike(8, 4, 3), 40),
                         (lambda: nn.Sequential(nn.Conv1d(4, 6, 3, groups=2, padding=1),
                                                nn.ReLU(), nn.Conv1d(6, 4, 3, groups=2),
                                                nn.Flatten(), nn.Linear(4 * 38, 2)), 40)]:
        model = _build(make, torch.float64)
        x = _x(2, length, torch.float64, n_columns=[(0, 0)])
        explainer = InSilicoMutagenesis(model, fast=True)
        got = explainer.attribute(x, target=1)
        assert explainer.fast_path_used
        naive = InSilicoMutagenesis(model, fast=False).attribute(x, target=1)
        assert (got - naive).abs().max() <= 1e-10


def test_inplace_relu_and_additional_forward_args():
    model = _build(lambda: Basset(48, inplace=True), torch.float64)
    x = _x(2, 48, torch.float64)
    got = InSilicoMutagenesis(model, fast=True).attribute(x, target=0)
    assert (got - loop_ism(model, x, 0)).abs().max() <= 1e-10
    model = _build(Extra, torch.float64)
    scale = torch.tensor([0.5, 2.0], dtype=torch.float64)
    explainer = InSilicoMutagenesis(model, fast=True)
    got = explainer.attribute(x, target=1, additional_forward_args=(scale, 0.25))
    assert explainer.fast_path_used
    assert (got - loop_ism(model, x, 1, (scale, 0.25))).abs().max() <= 1e-10


# ----------------------------------------------------------------------------- conventions
@pytest.mark.parametrize("hypothetical", [False, True])
@pytest.mark.parametrize("window", [(0, None), (7, 50)])
def test_centered_matches_tangermeme(hypothetical, window):
    from tangermeme.saturation_mutagenesis import saturation_mutagenesis

    model = _build(lambda: Basset(60), torch.float64)
    x = _x(3, 60, torch.float64, seed=2)
    start, end = window
    ours = InSilicoMutagenesis(model).attribute(x, target=2, start=start, end=end,
                                                centered=True, hypothetical=hypothetical)
    theirs = saturation_mutagenesis(model, x, start=start, end=-1 if end is None else end,
                                    target=2, hypothetical=hypothetical, device="cpu",
                                    fast=False)
    hi = 60 if end is None else end
    assert (ours[:, :, start:hi] - theirs.to(ours)).abs().max() <= 1e-10
    assert not ours[:, :, :start].any() and not ours[:, :, hi:].any()


def test_centered_at_n_positions():
    model = _build(lambda: Basset(48), torch.float64)
    x = _x(1, 48, torch.float64, n_columns=[(0, 10)])
    raw = InSilicoMutagenesis(model).attribute(x, target=0)
    assert (raw[0, :, 10] != 0).all()  # N: every base is an edit, none is 0 by definition
    hyp = InSilicoMutagenesis(model).attribute(x, target=0, centered=True, hypothetical=True)
    assert (hyp[0, :, 10] - (raw[0, :, 10] - raw[0, :, 10].mean())).abs().max() <= 1e-12
    proj = InSilicoMutagenesis(model).attribute(x, target=0, centered=True)
    assert not proj[0, :, 10].any()  # projected on the (absent) observed base


def test_window_equals_full_result_inside_and_zero_outside():
    model = _build(lambda: BPNetLike(16, 4, 3), torch.float64)
    x = _x(2, 64, torch.float64)
    full = InSilicoMutagenesis(model).attribute(x, target=1)
    part = InSilicoMutagenesis(model).attribute(x, target=1, start=10, end=31)
    assert (part[:, :, 10:31] - full[:, :, 10:31]).abs().max() <= 1e-12
    assert not part[:, :, :10].any() and not part[:, :, 31:].any()


def test_targets_equal_separate_calls_and_batch_size_invariance():
    model = _build(lambda: Basset(48), torch.float64)
    x = _x(3, 48, torch.float64, n_columns=[(2, 0), (2, 47)])
    explainer = InSilicoMutagenesis(model)
    several = explainer.attribute(x, targets=[0, 2, torch.tensor([1, 0, 2])])
    for t, got in zip([0, 2, torch.tensor([1, 0, 2])], several):
        assert torch.equal(got, explainer.attribute(x, target=t))
    reference = explainer.attribute(x, target=1, batch_size=64)
    for batch_size in (1, 2, 5, 13, 500):
        for fast in (True, False):
            got = InSilicoMutagenesis(model, fast=fast).attribute(x, target=1,
                                                                  batch_size=batch_size)
            assert (got - reference).abs().max() <= 1e-12


def test_identity_edits_are_skipped_and_batches_are_bounded():
    model = _build(lambda: Basset(24), torch.float64)
    x = _x(2, 24, torch.float64, n_columns=[(0, 4)])
    rows = []

    def counting(inputs):
        rows.append(inputs.shape[0])
        return model(inputs)

    InSilicoMutagenesis(counting).attribute(x, target=0, batch_size=10)
    assert sum(rows) == 2 + (2 * 24 - 1) * 3 + 4  # originals, then the real edits
    assert max(rows) <= 10


def test_no_grad_inference_mode_and_unchanged_model_and_inputs():
    model = _build(lambda: Basset(48), torch.float64)
    x = _x(2, 48, torch.float64)
    x_before = x.clone()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    reference = InSilicoMutagenesis(model).attribute(x, target=0)
    with torch.no_grad():
        assert torch.equal(InSilicoMutagenesis(model).attribute(x, target=0), reference)
    with torch.inference_mode():
        got = InSilicoMutagenesis(model).attribute(x, target=0)
    assert torch.equal(got, reference)
    assert torch.is_grad_enabled()
    assert torch.equal(x, x_before)
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())
    assert not any(m._forward_hooks for m in model.modules())


def test_hooks_and_auto_choose_the_naive_path():
    model = _build(lambda: Basset(48), torch.float64)
    x = _x(1, 48, torch.float64)
    handle = model.body[0].register_forward_hook(lambda m, i, o: o * 2)
    try:
        explainer = InSilicoMutagenesis(model, fast="auto")
        got = explainer.attribute(x, target=0)
        assert explainer.fast_path_used is False and "hooks" in explainer.fast_path.note
        assert (got - loop_ism(model, x, 0)).abs().max() <= 1e-10
    finally:
        handle.remove()
    small = _build(lambda: Basset(12), torch.float64)
    explainer = InSilicoMutagenesis(small)  # "auto": one batch is not worth tracing
    explainer.attribute(_x(1, 12, torch.float64), target=0, batch_size=64)
    assert explainer.fast_path_used is False and "one batch" in explainer.fast_path.note


# ----------------------------------------------------------------------------- bad input
BAD = [
    ({"inputs": "x"}, TypeError, "`inputs`"),
    ({"inputs": (None,)}, TypeError, "`inputs` must be one tensor"),
    ({"inputs": torch.zeros(2, 4, 10, dtype=torch.long)}, TypeError, "floating-point"),
    ({"inputs": torch.zeros(4, 12, dtype=torch.float64)}, ValueError, r"\(N, A, L\)"),
    ({"inputs": torch.zeros(0, 4, 12, dtype=torch.float64)}, ValueError, "empty"),
    ({"inputs": torch.full((1, 4, 12), 0.5, dtype=torch.float64)}, ValueError, "one-hot"),
    ({"inputs": torch.ones(1, 4, 12, dtype=torch.float64)}, ValueError, "one-hot"),
    ({"inputs": torch.zeros(1, 4, 12)}, TypeError, "dtype"),
    ({"start": -1}, ValueError, "`start`"),
    ({"start": 12}, ValueError, "`start`"),
    ({"end": -1}, ValueError, "`end`"),
    ({"start": 5, "end": 5}, ValueError, "`end`"),
    ({"end": 13}, ValueError, "`end`"),
    ({"start": 1.5}, TypeError, "`start`"),
    ({"batch_size": 0}, ValueError, "`batch_size`"),
    ({"centered": "yes"}, TypeError, "`centered`"),
    ({"hypothetical": 1}, TypeError, "`hypothetical`"),
    ({"target": 9}, ValueError, "out of range"),
    ({"target": [0, 1, 2]}, ValueError, "`target`"),
    ({"target": 0, "targets": [1]}, ValueError, "either `target` or `targets`"),
    ({"targets": []}, ValueError, "`targets`"),
    ({"targets": 1}, TypeError, "`targets`"),
    ({"fast": "yes"}, ValueError, "`fast`"),
    ({"additional_forward_args": (torch.zeros(3),)}, ValueError, "additional_forward_args"),
]


@pytest.mark.parametrize("kwargs,error,match", BAD, ids=lambda v: str(v)[:40])
def test_bad_inputs_raise_clear_errors(kwargs, error, match):
    model = _build(lambda: Basset(12), torch.float64)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    kwargs = dict(kwargs)
    inputs = kwargs.pop("inputs", _x(2, 12, torch.float64))
    with pytest.raises(error, match=match):
        InSilicoMutagenesis(model).attribute(inputs, **{"target": 0, **kwargs} if
                                             "targets" not in kwargs else kwargs)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_bad_constructor_and_training_mode():
    model = _build(lambda: Basset(12), torch.float64)
    with pytest.raises(ValueError, match="`fast`"):
        InSilicoMutagenesis(model, fast=2)
    model.train()
    with pytest.raises(ValueError, match="training mode"):
        InSilicoMutagenesis(model).attribute(_x(1, 12, torch.float64), target=0)
