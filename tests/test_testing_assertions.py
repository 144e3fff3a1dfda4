"""The assertions and hypothesis strategies of ``captum_genomics.testing`` for users' tests.

Each assertion passes on a correct float64 model and, on a deliberately
broken case whose failure is known (a multiplier of one example-reference
pair off by ``eps``, an op without a rule, an explainer that depends on its
batch, one that mutates a buffer), raises ``AssertionError`` naming the
measured figure, the bound and the known location; the figures and
locations are checked against independent computations.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse
import torch
import torch.nn as nn
from hypothesis import find, given, settings
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

from captum_genomics import ShuffleDeepLiftShap
from captum_genomics.deeplift.contributions import hypothetical_contributions, project_contributions
from captum_genomics.testing.assertions import (
    assert_additive,
    assert_agrees_with,
    assert_batch_invariant,
    assert_deterministic,
    assert_model_unchanged,
)
from captum_genomics.testing.models import catalog_case, random_one_hot
from captum_genomics.testing.strategies import (
    MAX_DRAWN_BASES,
    expression_matrices,
    one_hot_sequences,
)

pytestmark = pytest.mark.usefixtures("one_thread")

L, N, K = 24, 3, 3
EPS = 1e-3


def _data(seed: int = 0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    x = random_one_hot(N, L, g, dtype)
    r = random_one_hot(N * K, L, g, dtype).reshape(N, K, 4, L)
    return x, r


@pytest.fixture(scope="module")
def model():
    """conv -> ReLU -> MaxPool1d(2) -> linear, float64: exact for us and tangermeme."""
    return catalog_case("conv_relu_maxpool", length=L).model


@pytest.fixture(scope="module")
def exact_model():
    """conv -> MaxPool1d(3) -> linear: where Captum's DeepLift is exact too."""
    return catalog_case("conv_maxpool", length=L).model


class PerturbedPair:
    """ShuffleDeepLiftShap with one multiplier of pair ``(example, reference)`` off by ``eps``.

    The element is the first ``(a, l)`` where ``x - r == 1``, so the pair's
    convergence delta grows by exactly ``eps`` and the example's
    contribution at ``(a, l)`` by ``eps / K``.
    """

    def __init__(self, model, example: int, reference: int, eps: float = EPS):
        self.inner = ShuffleDeepLiftShap(model)
        self.forward_func = model
        self.example, self.reference, self.eps = example, reference, eps
        self.where = None

    def attribute(self, inputs, references=None, target=None, hypothetical=False,
                  return_multipliers=False, return_convergence_delta=False, **kwargs):
        m, delta = self.inner.attribute(inputs, references=references, target=target,
                                        return_multipliers=True, return_convergence_delta=True,
                                        **kwargs)
        i, k = self.example, self.reference
        a, pos = (int(v) for v in torch.nonzero((inputs[i] - references[i, k]) == 1)[0])
        self.where = (a, pos)
        m, delta = m.clone(), delta.clone()
        m[i, k, a, pos] += self.eps
        delta[i, k] += self.eps
        if return_multipliers:
            out = m
        else:
            h = hypothetical_contributions(m, inputs, references)
            out = h if hypothetical else project_contributions(h, inputs)
        return (out, delta) if return_convergence_delta else out


class Tampered:
    """Wraps ShuffleDeepLiftShap; ``tamper(result, inputs, kwargs)`` edits each result."""

    def __init__(self, model, tamper):
        self.inner = ShuffleDeepLiftShap(model)
        self.forward_func = model
        self.tamper = tamper

    def attribute(self, inputs, **kwargs):
        out = self.inner.attribute(inputs, **kwargs)
        return self.tamper(out.clone(), inputs, kwargs)


# ---------------------------------------------------------------------- additivity

def test_assert_additive_passes_and_reports_the_figure(model):
    x, r = _data()
    report = assert_additive(ShuffleDeepLiftShap(model), x, r, target=0)
    # independent: plain forwards against the attributions
    attr = ShuffleDeepLiftShap(model).attribute(x, references=r, target=0)
    with torch.no_grad():
        want = model(x)[:, 0] - model(r.reshape(N * K, 4, L))[:, 0].reshape(N, K).mean(1)
    assert float((attr.sum((1, 2)) - want).abs().max()) <= report.max_error + 1e-15
    assert report.max_error <= 1e-10 and report.tolerance == 1e-10
    assert assert_additive(ShuffleDeepLiftShap(model), x, None, target=0).passed  # generated


def test_assert_additive_names_the_broken_pair(model):
    x, r = _data()
    x0, r0, state = x.clone(), r.clone(), {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(AssertionError) as info:
        assert_additive(PerturbedPair(model, 1, 2), x, r, target=0)
    assert torch.equal(x, x0) and torch.equal(r, r0)  # unchanged after the failure
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())
    msg = str(info.value)
    assert "max error 0.001 exceeds the bound atol=1e-10" in msg
    assert "largest |delta| 0.001 at example 1, reference 2; 1 of 9 pairs over the bound" in msg
    assert f"largest {EPS / K:.3g} at example 1" in msg  # sum of attributions: eps / K


def test_assert_additive_locates_an_op_without_a_rule():
    class LogSumExp(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv1d(4, 5, 5, padding=2)

        def forward(self, x):
            return torch.logsumexp(torch.relu(self.conv(x)), dim=-1)

    torch.manual_seed(1)
    model = LogSumExp().double().eval()
    x, r = _data(1)
    with pytest.warns(Warning):
        m = ShuffleDeepLiftShap(model).attribute(x, references=r, target=0,
                                                 return_multipliers=True)
    with torch.no_grad():  # independent per-pair deltas from multipliers and plain forwards
        f_x = model(x)[:, 0]
        f_r = model(r.reshape(N * K, 4, L))[:, 0].reshape(N, K)
    delta = (m * (x[:, None] - r)).sum((2, 3)) - (f_x[:, None] - f_r)
    i, k = divmod(int(delta.abs().argmax()), K)
    with pytest.raises(AssertionError) as info:
        assert_additive(ShuffleDeepLiftShap(model), x, r, target=0)
    msg = str(info.value)
    assert f"largest |delta| {float(delta.abs().max()):.3g} at example {i}, reference {k}" in msg
    assert "atol=1e-10" in msg and "strict=True" in msg


def test_assert_additive_float32_default_bound():
    x, r = _data(dtype=torch.float32)
    model32 = catalog_case("conv_relu_maxpool", length=L).model.float()
    assert assert_additive(ShuffleDeepLiftShap(model32), x, r, target=0).tolerance == 1e-4
    float32_bound = r"atol=0\.0001\.(.|\n)*bound: default for torch\.float32"
    with pytest.raises(AssertionError, match=float32_bound):
        assert_additive(PerturbedPair(model32, 0, 1, eps=1e-2), x, r, target=0)
    with pytest.raises(ValueError, match="`atol`: there is no default bound for torch.float16"):
        assert_additive(ShuffleDeepLiftShap(model32.half()), x.half(), r.half(), target=0)


# ---------------------------------------------------------------- batch invariance

def test_assert_batch_invariant_passes(model):
    x, r = _data()
    report = assert_batch_invariant(ShuffleDeepLiftShap(model), x, r, target=0)
    assert report.passed and report.tolerance > 0  # relative by default, not bitwise


def test_assert_batch_invariant_default_is_relative_not_bitwise(model):
    """A last-bit dependence on the batch (as MKL/SLEEF kernels give) passes by default."""
    def tamper(out, inputs, kw):
        return out + 1e-16 * out.abs().max() * inputs.shape[0]

    x, r = _data()
    report = assert_batch_invariant(Tampered(model, tamper), x, r, target=0)
    assert 0 < report.max_error <= report.tolerance
    with pytest.raises(AssertionError, match="bitwise"):
        assert_batch_invariant(Tampered(model, tamper), x, r, target=0, atol=0.0, rtol=0.0)


def test_assert_batch_invariant_names_the_example(model):
    """Example 2's attributions move at (1, 7) when it shares its batch."""
    def tamper(out, inputs, kw):
        if inputs.shape[0] > 1:
            out[2, 1, 7] += EPS * (inputs.shape[0] - 1)
        return out

    x, r = _data()
    with pytest.raises(AssertionError) as info:
        assert_batch_invariant(Tampered(model, tamper), x, r, target=0)
    msg = str(info.value)
    assert "example 2 computed alone (example_indices=[2]) vs in the batch of 3: max " \
           f"|difference| {2 * EPS:.3g} at index (2, 1, 7)" in msg
    assert "example 0" not in msg and "batch_size=" not in msg.split("\n", 1)[1]
    assert "exceeds the bound" in msg and "rtol 1e-12" in msg


def test_assert_batch_invariant_names_the_batch_size(model):
    def tamper(out, inputs, kw):
        if kw.get("batch_size") == 2:
            out[0, 3, 5] -= EPS
        return out

    x, r = _data()
    with pytest.raises(AssertionError) as info:
        assert_batch_invariant(Tampered(model, tamper), x, r, batch_sizes=(1, 2, 5), target=0)
    msg = str(info.value)
    assert f"batch_size=2 vs the default batch_size: max |difference| {EPS:.3g} at index " \
           "(0, 3, 5)" in msg
    assert "batch_size=1" not in msg and "batch_size=5" not in msg


# --------------------------------------------------------------------- determinism

def test_assert_deterministic_passes(model):
    x, _ = _data()
    report = assert_deterministic(ShuffleDeepLiftShap(model), x, target=0, n_references=2)
    assert report.passed and report.details["difference_other_seed"] > 0


def test_assert_deterministic_names_the_index(model):
    calls = []

    def tamper(out, inputs, kw):  # call 2 differs at (1, 0, 4)
        calls.append(1)
        if len(calls) == 2:
            out[1, 0, 4] += EPS
        return out

    x, _ = _data()
    with pytest.raises(AssertionError) as info:
        assert_deterministic(Tampered(model, tamper), x, target=0, random_state=3,
                             n_references=2)
    assert (f"two calls with random_state=3 differ: max |difference| {EPS:.3g} at index "
            "(1, 0, 4) (bound atol=0; bitwise)") in str(info.value)


def test_assert_deterministic_catches_an_ignored_seed(model):
    class IgnoresSeed(ShuffleDeepLiftShap):
        def attribute(self, inputs, **kwargs):
            kwargs["random_state"] = 0
            return super().attribute(inputs, **kwargs)

    x, _ = _data()
    with pytest.raises(AssertionError, match="other_random_state=1 returned the same"):
        assert_deterministic(IgnoresSeed(model), x, target=0, n_references=2)


# ------------------------------------------------------------------ model unchanged

def _bn_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv1d(4, 3, 5, padding=2), nn.BatchNorm1d(3), nn.ReLU(),
                         nn.Flatten(), nn.Linear(3 * L, 2)).double().eval()


def test_assert_model_unchanged_passes(model):
    x, r = _data()
    assert assert_model_unchanged(ShuffleDeepLiftShap(model), x, r, target=0).passed
    assert assert_model_unchanged(ShuffleDeepLiftShap(model), x, r, target=7,
                                  expect_error=(ValueError, IndexError)).passed


def test_assert_model_unchanged_lists_what_changed():
    model = _bn_model()
    before = model[1].running_mean.clone()

    def tamper(out, inputs, kw):
        with torch.no_grad():
            model[1].running_mean.add_(0.5)
        return out

    x, r = _data()
    with pytest.raises(AssertionError) as info:
        assert_model_unchanged(Tampered(model, tamper), x, r, target=0)
    msg = str(info.value)
    assert "buffer '1.running_mean' changed" in msg
    assert "largest change of a tensor value: 1" in msg  # two calls of +0.5
    assert torch.equal(model[1].running_mean, before + 1.0)


def test_assert_model_unchanged_after_an_error_names_the_leaked_hook():
    model = _bn_model()

    class LeaksHook:
        forward_func = model

        def attribute(self, inputs, **kwargs):
            model.register_forward_hook(lambda *a: None)
            raise ValueError("bad target")

    x, _ = _data()
    with pytest.raises(AssertionError) as info:
        assert_model_unchanged(LeaksHook(), x, expect_error=ValueError)
    assert "module '<root>' _forward_hooks changed" in str(info.value)
    assert "['ValueError', 'ValueError']" in str(info.value)


# ----------------------------------------------------------------------- agreement

@pytest.mark.parametrize("peer", ["captum", "tangermeme"])
def test_assert_agrees_with_passes(exact_model, peer):
    x, r = _data()
    report = assert_agrees_with(ShuffleDeepLiftShap(exact_model), peer, x, r, target=0)
    assert report.max_error <= (1e-10 if peer == "captum" else 1e-6)


def test_assert_agrees_with_captum_names_the_pair(exact_model):
    x, r = _data()
    ours = PerturbedPair(exact_model, 2, 1)
    with pytest.raises(AssertionError) as info:
        assert_agrees_with(ours, "captum", x, r, target=0)
    a, pos = ours.where
    msg = str(info.value)
    assert f"largest difference {EPS:.3g} at index (2, 1, {a}, {pos}) (example, reference, " \
           "channel, position)" in msg
    assert "atol=1e-10" in msg and "ours 0.001" in msg


def test_assert_agrees_with_tangermeme_names_the_example(exact_model):
    x, r = _data()
    ours = PerturbedPair(exact_model, 1, 0)
    with pytest.raises(AssertionError) as info:
        assert_agrees_with(ours, "tangermeme", x, r, target=0)
    a, pos = ours.where
    assert f"largest difference {EPS / K:.3g} at index (1, {a}, {pos}) (example, channel, " \
           "position)" in str(info.value)


def test_assert_agrees_with_blames_a_peer_that_is_not_additive(model):
    """Captum 0.9's max-pool rule after a ReLU is not additive (delta ~0.1); ours is."""
    x, r = _data()
    with pytest.raises(AssertionError) as info:
        assert_agrees_with(ShuffleDeepLiftShap(model), "captum", x, r, target=0)
    assert "captum is not additive on this model" in str(info.value)
    with pytest.raises(ValueError, match="`peer` must be one of"):
        assert_agrees_with(ShuffleDeepLiftShap(model), "shap", x, r)
    with pytest.raises(ValueError, match="`references` must be an explicit tensor"):
        assert_agrees_with(ShuffleDeepLiftShap(model), "captum", x, None)


# ---------------------------------------------------------------------- strategies

def _n_runs(column_is_n: torch.Tensor) -> int:
    flags = column_is_n.int().tolist()
    return sum(1 for j, f in enumerate(flags) if f and (j == 0 or not flags[j - 1]))


@settings(max_examples=20, deadline=None)
@given(data=st.data(), n=st.integers(1, 3), length=st.integers(1, 40),
       fraction=st.floats(0.0, 1.0))
def test_one_hot_sequences_are_one_hot_with_the_requested_n(data, n, length, fraction):
    x = data.draw(one_hot_sequences(n=n, length=length, n_fraction=fraction, max_n_runs=2))
    assert x.shape == (n, 4, length) and x.dtype == torch.float64
    assert set(x.unique().tolist()) <= {0.0, 1.0}
    sums = x.sum(1)
    assert set(sums.unique().tolist()) <= {0.0, 1.0}
    want = math.floor(fraction * length + 0.5)
    for i in range(n):
        assert int((sums[i] == 0).sum()) == want
        assert (want == 0) == (_n_runs(sums[i] == 0) == 0) and _n_runs(sums[i] == 0) <= 2


@settings(max_examples=5, deadline=None)
@given(x=one_hot_sequences(n=st.integers(2, 3), length=st.just(MAX_DRAWN_BASES // 2 + 1),
                           n_fraction=st.sampled_from([0.0, 0.25]), dtype=torch.float32))
def test_one_hot_sequences_sizes_from_strategies_and_the_seeded_path(x):
    assert x.shape[0] in (2, 3) and x.shape[1:] == (4, MAX_DRAWN_BASES // 2 + 1)
    assert x.dtype == torch.float32
    assert set(x.sum(1).unique().tolist()) <= {0.0, 1.0}


def test_one_hot_sequences_shrink_and_replay_without_torch_random_state():
    torch.manual_seed(0)
    state = torch.random.get_rng_state()
    quiet = settings(database=None, max_examples=20)
    # shrinks: the minimal batch is all-A with its N run at the start
    x = find(one_hot_sequences(n=st.integers(1, 3), length=8, n_fraction=0.25),
             lambda x: True, settings=quiet)
    want = torch.zeros(1, 4, 8, dtype=torch.float64)
    want[0, 0, 2:] = 1
    assert torch.equal(x, want)
    big = one_hot_sequences(n=2, length=MAX_DRAWN_BASES, n_fraction=0.1)
    assert torch.equal(find(big, lambda x: True, settings=quiet),
                       find(big, lambda x: True, settings=quiet))
    assert torch.equal(torch.random.get_rng_state(), state)  # never touches torch's RNG
    with pytest.raises(InvalidArgument, match="`n_fraction` must be in"):
        one_hot_sequences(n_fraction=1.5)
    with pytest.raises(InvalidArgument, match="`length` must be an int"):
        one_hot_sequences(length=2.5)


def _dense(m):
    return torch.as_tensor(m.toarray()) if scipy.sparse.issparse(m) else m


@settings(max_examples=20, deadline=None)
@given(data=st.data(), cells=st.integers(1, 8), genes=st.integers(1, 12),
       sparse=st.booleans(), fraction=st.floats(0.0, 0.95))
def test_expression_matrices_have_the_requested_zero_genes(data, cells, genes, sparse, fraction):
    k = data.draw(st.integers(0, genes))
    m = data.draw(expression_matrices(cells, genes, fraction, sparse=sparse, zero_genes=k))
    if sparse:
        assert scipy.sparse.isspmatrix_csr(m) and m.dtype == np.float32
        assert (m.data != 0).all()  # no explicit zeros
    else:
        assert isinstance(m, torch.Tensor) and m.dtype == torch.float32
    x = _dense(m).double()
    assert x.shape == (cells, genes) and torch.isfinite(x).all() and (x >= 0).all()
    assert int((x.sum(0) == 0).sum()) == k  # exactly k silent genes, the rest expressed
    # log1p(1e4 * counts / total): each non-empty cell's expm1 sums to 1e4
    rows = x.expm1().sum(1)
    expressed = rows > 0
    assert torch.allclose(rows[expressed], torch.full_like(rows[expressed], 1e4), rtol=1e-5)


@settings(max_examples=10, deadline=None)
@given(m=expression_matrices(n_cells=6, n_genes=10, zero_fraction=0.0, zero_genes=True,
                             dtype=torch.float64))
def test_expression_matrices_zero_fraction_zero_leaves_only_silent_genes(m):
    silent = m.sum(0) == 0
    assert 1 <= int(silent.sum()) <= 10 // 4
    assert (m[:, ~silent] > 0).all()


def test_expression_matrices_argument_errors():
    with pytest.raises(InvalidArgument, match="`zero_genes`"):
        expression_matrices(n_genes=3, zero_genes=4)
    with pytest.raises(InvalidArgument, match="`sparse` must be a bool"):
        expression_matrices(sparse="csr")
    with pytest.raises(InvalidArgument, match="`dtype` must be a floating"):
        expression_matrices(dtype=torch.int64)
