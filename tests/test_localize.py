"""Where additivity breaks: per-op shares of the convergence delta, on the failure zoo.

Sign convention (documented in ``captum_genomics.testing.localize``): the shares
of a pair sum to ``-delta``, with Captum's ``delta = sum m (x - r) - (f(x) - f(r))``.
"""

from __future__ import annotations

import math
import warnings

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from captum_genomics import ShuffleDeepLiftShap
from captum_genomics.deeplift.engine import DeepLiftPasses, PassObserver, detached_forward
from captum_genomics.deeplift.rules import default_rules
from captum_genomics.testing.checks import (
    check_agreement_captum_deeplift,
    check_agreement_tangermeme,
    compare_states,
    snapshot_state,
)
from captum_genomics.testing.failure_zoo import (
    PEER_TOL,
    ZOO,
    SwishFunction,
    gc_biased_one_hot,
    zoo_case,
)
from captum_genomics.testing.localize import (
    LocalizationResult,
    OpViolation,
    format_violations,
    localize_additivity,
)

D = torch.float64
EXACT = [name for name in ZOO if zoo_case(name).exact]
FAILING = [name for name in ZOO if not zoo_case(name).exact]


@pytest.fixture(scope="module", autouse=True)
def _one_thread(one_thread):
    yield


@pytest.fixture(scope="module")
def localized():
    """Each zoo model, its batch (N=2, K=2, L=12) and its localization, computed once."""
    out = {}
    for name in ZOO:
        case = zoo_case(name)
        x, r = case.batch()
        out[name] = (case, x, r, localize_additivity(case.model, x, r, target=case.target))
    return out


def _relative_gap(res: LocalizationResult, scale: torch.Tensor) -> float:
    gap = (res.per_pair_shares.sum(-1) + res.delta).abs()
    return float((gap / (1.0 + scale.abs())).max())


def _output_differences(model, x, r, target):
    n, k = r.shape[:2]
    with torch.no_grad():
        fx = model(x)[:, target]
        fr = model(r.reshape(n * k, *r.shape[2:]))[:, target].reshape(n, k)
    return fx[:, None] - fr


@pytest.mark.parametrize("name", ZOO)
def test_shares_sum_to_minus_delta(localized, name):
    case, x, r, res = localized[name]
    shares = res.per_pair_shares
    assert shares.dtype == D and shares.shape == (2, 2, len(res.ops))
    # the identity: sum over ops of v_o == -(convergence delta), per pair
    assert _relative_gap(res, _output_differences(case.model, x, r, case.target)) <= 1e-10
    assert float(res.unaccounted.abs().max()) <= 1e-10
    # the delta is the engine's own, as ShuffleDeepLiftShap reports it (batched, other strategy)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, delta = ShuffleDeepLiftShap(case.model).attribute(
            x, references=r, target=case.target, return_convergence_delta=True)
    assert torch.allclose(res.delta, delta, rtol=1e-9, atol=1e-12)
    # and it is what it claims: sum m (x - r) - (f(x) - f(r)), from an independent forward
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mult = ShuffleDeepLiftShap(case.model).attribute(
            x, references=r, target=case.target, return_multipliers=True)
    total = (mult * (x[:, None] - r)).sum((2, 3))
    expected = total - _output_differences(case.model, x, r, case.target)
    assert torch.allclose(res.delta, expected, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("name", EXACT)
def test_exact_models_have_no_violation(localized, name):
    _, _, _, res = localized[name]
    assert len(res.ops) > 0
    assert max(row.violation for row in res) <= 1e-10
    assert float(res.delta.abs().max()) <= 1e-10


@pytest.mark.parametrize("name", FAILING)
def test_culprit_is_named_first(localized, name):
    case, _, _, res = localized[name]
    top = res[0]
    assert isinstance(top, OpViolation) and top is res.culprit and top is res.rows[0]
    assert (top.op, top.caller) == (case.culprit, case.culprit_caller), format_violations(res)
    assert float(res.delta.abs().max()) > 1e-6
    # the culprit carries (nearly) all of the delta; every other op is exact
    assert top.violation >= 0.99 * float(res.delta.abs().max())
    assert all(row.violation <= 1e-10 for row in res.rows[1:]), format_violations(res)
    assert top.note


@pytest.mark.parametrize("name", ZOO)
def test_rows_sorted_and_indexed(localized, name):
    _, _, _, res = localized[name]
    rows = list(res)
    assert len(rows) == len(res) == len(res.ops)
    assert all(isinstance(r, OpViolation) for r in rows)
    assert [r.violation for r in rows] == sorted((r.violation for r in rows), reverse=True)
    assert [r.index for r in res.ops] == list(range(len(res.ops)))
    assert sorted(rows, key=lambda r: r.index) == list(res.ops)
    worst = res.per_pair_shares.abs().amax((0, 1))
    assert [r.violation for r in res.ops] == [float(v) for v in worst]


def test_rules_and_callers_on_a_known_model(localized):
    _, _, _, res = localized["normalize"]
    by_op = {(r.op, r.caller): r for r in res.ops}
    assert by_op[("conv1d", "c1")].rule == "Conv1dInputGradient"
    assert by_op[("relu", "act")].rule == "Rescale"
    assert by_op[("linear", "out")].rule == "SharedLinear"
    assert res[0].rule is None and "no rule" in res[0].note
    _, _, _, res = localized["softmin_module"]
    assert res[0].module == "0.1" and res[0].rule is None
    _, _, _, res = localized["reused_relu"]
    assert [r.caller for r in res.ops if r.op == "relu"] == ["act", "act", "act"]


def test_violation_matches_a_hand_computation(localized):
    """v of F.normalize, from closed forms: the ops after it are linear, before it exact."""
    case, x, r, res = localized["normalize"]
    m = case.model
    row = res[0]

    def head(y):  # everything after F.normalize: linear in y
        return m.out(m.c2(y).flatten(1))[:, 0]

    for e in range(2):
        for k in range(2):
            hx = torch.relu(m.c1(x[e:e + 1])).detach()
            hr = torch.relu(m.c1(r[e, k:k + 1])).detach()
            y = F.normalize(hx, dim=1).requires_grad_(True)
            (m_y,) = torch.autograd.grad(head(y).sum(), y)
            h = hx.clone().requires_grad_(True)  # the pullback: F.normalize's own gradient at x
            (p,) = torch.autograd.grad(F.normalize(h, dim=1), h, m_y)
            dy = F.normalize(hx, dim=1) - F.normalize(hr, dim=1)
            v = float((m_y * dy).sum() - (p * (hx - hr)).sum())
            assert res.per_pair_shares[e, k, row.index].item() == pytest.approx(v, abs=1e-13)
            assert -res.delta[e, k].item() == pytest.approx(v, abs=1e-13)


def test_hand_mask_violation_is_the_mask_change(localized):
    """``h * mask``: ``v = <m, mask_x h_x - mask_r h_r> - <m mask_x, D h> = <m h_r, D mask>``."""
    case, x, r, res = localized["hand_mask"]
    m = case.model
    for e in range(2):
        for k in range(2):
            hx, hr = m.c1(x[e:e + 1]).detach(), m.c1(r[e, k:k + 1]).detach()
            y = (hx * (hx > 0)).requires_grad_(True)
            (m_y,) = torch.autograd.grad(m.out(m.c2(y).flatten(1))[:, 0].sum(), y)
            v = float((m_y * hr * ((hx > 0).to(D) - (hr > 0).to(D))).sum())
            assert res.per_pair_shares[e, k, res[0].index].item() == pytest.approx(v, abs=1e-13)


@pytest.mark.parametrize("name", ZOO)
def test_model_unchanged(localized, name):
    case, x, r, _ = localized[name]
    before = snapshot_state(case.model, [x, r])
    localize_additivity(case.model, x, r, target=0)
    with pytest.raises(ValueError, match="target"):
        localize_additivity(case.model, x, r, target=7)
    problems, worst = compare_states(before, snapshot_state(case.model, [x, r]))
    assert problems == [] and worst == 0.0


@pytest.mark.parametrize("name", ZOO)
def test_peers_as_recorded(localized, name):
    case, x, r, _ = localized[name]
    if math.isnan(case.captum_delta):
        with pytest.raises(RuntimeError):
            check_agreement_captum_deeplift(case.model, x, r, target=case.target)
    else:
        report = check_agreement_captum_deeplift(case.model, x, r, target=case.target)
        captum = report.details["captum_delta"]
        assert (captum > PEER_TOL) == case.captum_wrong
        assert captum == pytest.approx(case.captum_delta, rel=1e-3, abs=1e-12)
    if case.captum_wrong:
        assert math.isnan(case.captum_delta) or case.captum_delta > 1e-6


@pytest.mark.parametrize("name", ZOO)
def test_tangermeme_as_recorded(localized, name):
    pytest.importorskip("tangermeme")
    case, x, r, _ = localized[name]
    report = check_agreement_tangermeme(case.model, x, r, target=case.target)
    theirs = report.details["tangermeme_delta"]
    assert (theirs > PEER_TOL) == case.tangermeme_wrong
    assert theirs == pytest.approx(case.tangermeme_delta, rel=1e-3, abs=1e-12)


@settings(max_examples=6, deadline=None)
@given(name=st.sampled_from(["hand_mask", "attention", "custom_function", "inplace_residual"]),
       seed=st.integers(0, 2**31 - 1), length=st.integers(6, 14))
def test_shares_telescope_on_random_batches(name, seed, length):
    case = zoo_case(name, length=length, random_state=seed % 1000)
    x, r = case.batch(n=2, k=2, random_state=seed)
    res = localize_additivity(case.model, x, r, target=1)
    assert _relative_gap(res, _output_differences(case.model, x, r, 1)) <= 1e-10
    if case.exact:
        assert max(row.violation for row in res) <= 1e-10


class _TwoInputs(nn.Module):
    """Tuple inputs, an extra argument, and a custom Function as the model's last op."""

    def __init__(self):
        super().__init__()
        self.c, self.d = nn.Conv1d(4, 3, 3), nn.Linear(5, 3)

    def forward(self, x, z, scale):
        h = torch.tanh(self.c(x)).mean(-1) + F.normalize(self.d(z), dim=1)
        return SwishFunction.apply(h * scale)


def test_tuple_inputs_targets_and_a_final_custom_function():
    torch.manual_seed(0)
    model = _TwoInputs().double().eval()
    g = torch.Generator().manual_seed(3)
    x = gc_biased_one_hot(3, 8, 0.5, g)
    r = gc_biased_one_hot(6, 8, 0.5, g).reshape(3, 2, 4, 8)
    z, rz = torch.randn(3, 5, dtype=D, generator=g), torch.randn(3, 2, 5, dtype=D, generator=g)
    scale = torch.tensor([[1.0], [2.0], [0.5]], dtype=D)
    target = [0, 2, 1]
    res = localize_additivity(model, (x, z), (r, rz), target=target,
                              additional_forward_args=(scale,))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, delta = ShuffleDeepLiftShap(model).attribute(
            (x, z), references=(r, rz), target=target, additional_forward_args=(scale,),
            return_convergence_delta=True)
    assert torch.allclose(res.delta, delta, rtol=1e-9, atol=1e-12)
    assert float((res.per_pair_shares.sum(-1) + res.delta).abs().max()) <= 1e-10
    named = {r.op for r in res.rows[:2]}
    assert named == {"SwishFunction", "normalize"}, format_violations(res)
    swish = next(r for r in res if r.op == "SwishFunction")
    assert swish.caller.startswith("test_localize.py:") and swish.rule is None


class _DataDependentOps(nn.Module):
    def __init__(self):
        super().__init__()
        self.c = nn.Conv1d(4, 3, 3)

    def forward(self, x):
        h = self.c(x)
        h = torch.relu(h) if bool(x[:, 1:3].sum() > x[:, 0::3].sum()) else torch.tanh(h)
        return h.flatten(1)


def test_errors_are_clear_and_leave_the_model_alone():
    model = _DataDependentOps().double().eval()
    g = torch.Generator().manual_seed(0)
    x = gc_biased_one_hot(1, 6, 0.9, g)
    r = gc_biased_one_hot(1, 6, 0.1, g).reshape(1, 1, 4, 6)
    before = snapshot_state(model, [x, r])
    with pytest.raises(RuntimeError, match=r"`relu`.*test_localize.py:\d+.*`tanh`"):
        localize_additivity(model, x, r, target=0)
    with pytest.raises(ValueError, match="references"):
        localize_additivity(model, x, r[:, :, :3], target=0)
    with pytest.raises(TypeError, match="rules"):
        localize_additivity(model, x, r, target=0, rules={"relu": None})
    model.train()
    model.drop = nn.Dropout(0.5)
    with pytest.raises(ValueError, match="eval"):
        localize_additivity(model, x, r, target=0)
    del model.drop
    model.eval()
    problems, _ = compare_states(before, snapshot_state(model, [x, r]))
    assert problems == []


def test_format_violations(localized):
    _, _, _, res = localized["normalize"]
    text = format_violations(res, top=3)
    lines = text.splitlines()
    assert lines[0].split()[:6] == ["#", "index", "op", "caller", "rule", "violation"]
    assert len(lines) == 1 + 3 + 1 and "more op(s)" in lines[-1]
    assert "normalize" in lines[1] and f"{res[0].violation:.3g}" in lines[1]
    assert format_violations(list(res), top=100).count("\n") == len(res)
    assert str(res) == format_violations(res)
    assert res.to_dicts(top=1)[0]["op"] == "normalize"


def test_a_pass_through_observer_changes_nothing():
    """The engine's optional observer hook: results bit-identical with a no-op observer."""
    case = zoo_case("attention")
    x, r = case.batch(n=3, k=2)
    select = [(lambda y: y[:, 0], lambda y: y[:, 0])]
    runs = []
    for observer in (None, PassObserver()):
        passes = DeepLiftPasses(detached_forward(case.model), default_rules(), strategy="pairs",
                                observer=observer)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            runs.append(passes.run((x,), (r,), select))
    (m0,), (y0,), (yr0,) = runs[0]
    (m1,), (y1,), (yr1,) = runs[1]
    assert torch.equal(m0[0], m1[0]) and torch.equal(y0, y1) and torch.equal(yr0, yr1)


def test_masked_attention_gives_finite_shares_that_sum_to_the_delta():
    """A -inf padding mask is -inf in both passes: its difference is 0, not NaN."""
    import torch.nn as nn

    from captum_genomics.testing.localize import localize_additivity

    class Masked(nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.stem = nn.Conv1d(4, 8, 3, padding=1)
            self.attn = nn.MultiheadAttention(8, 2, batch_first=True)
            self.out = nn.Linear(8, 2)

        def forward(self, x):
            h = self.stem(x).transpose(1, 2)
            pad = torch.zeros(h.shape[:2], dtype=torch.bool)
            pad[:, -2:] = True
            a, _ = self.attn(h, h, h, key_padding_mask=pad, need_weights=False)
            return self.out(a[:, :-2].mean(1))

    model = Masked().double().eval()
    g = torch.Generator().manual_seed(1)
    x = torch.nn.functional.one_hot(torch.randint(0, 4, (2, 10), generator=g), 4)
    x = x.transpose(1, 2).double()
    r = torch.nn.functional.one_hot(torch.randint(0, 4, (2, 2, 10), generator=g), 4)
    r = r.permute(0, 1, 3, 2).double()
    result = localize_additivity(model, x, r, target=0)
    shares = result.per_pair_shares
    assert torch.isfinite(shares).all()
    torch.testing.assert_close(shares.sum(-1), -result.delta, rtol=0, atol=1e-10)
