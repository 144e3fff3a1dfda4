"""FastSHAP's per-call work: what a call computes once, and that nothing goes stale.

``FastSHAP.attribute`` looks up each network's device and dtype once per call
(not per batch and helper), computes ``v(x, 0)`` of a game whose empty
coalition does not depend on ``x`` (baseline, marginal) on one example, and
runs the explainer's single-output layer without tensor bookkeeping. Nothing
is kept between calls, so weights changed in place (also through ``.data``),
``train()``, a moved model, another baseline or another model are always seen.
The values are checked bit for bit against the same normalization written out
with the generic (unshortened) game calls.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from captum_genomics._utils.devices import module_device, module_dtype
from captum_genomics.fastshap.explainer import MLPExplainer
from captum_genomics.fastshap.games import BaselineGame, Game, MarginalGame
from captum_genomics.fastshap.inference import _placement
from captum_genomics.fastshap.normalization import additive_efficient_normalization
from captum_genomics.fastshap.players import Players
from captum_genomics.methods.fast_shap import FastSHAP

F = 10
GROUPS = [[0, 1], [2], [3, 4, 5], [6], [7, 8, 9]]


def _model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(F, 32), nn.ReLU(), nn.Dropout(0.2), nn.Linear(32, 3)).eval()


def _fastshap(model=None, players=None, **kw) -> FastSHAP:
    model = _model() if model is None else model
    d = F if players is None else len(players)
    explainer = MLPExplainer(F, d, 3, random_state=1, zero_init_output=False).eval()
    return FastSHAP(model, explainer, players=players, trained=True, **kw)


def _cells(n: int, seed: int = 2) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, F, generator=g) * (torch.rand(n, F, generator=g) > 0.3)


def _reference(fs: FastSHAP, x: torch.Tensor, target) -> torch.Tensor:
    """Player values written out with the generic game calls.

    ``target``: an int, a ``(N,)`` tensor (one output per example) or ``"all"``;
    returns ``(N, d, 1)``, or ``(N, d, T)`` for ``"all"``.
    """
    game = fs.game
    per_example = None if target == "all" else torch.as_tensor(target).expand(x.shape[0])
    with torch.no_grad():
        raw = fs.explainer(x) if per_example is None else fs.explainer(
            x, outputs=per_example.clone())
    grand = game.grand(x)
    empty = torch.zeros(1, game.n_players, dtype=torch.bool)
    null = Game.__call__(game, x[:1], empty).expand(x.shape[0], -1)  # S = {} on one example
    if per_example is not None:
        col = per_example.reshape(-1, 1)
        grand, null = grand.gather(1, col), null.gather(1, col)
    flat = x.reshape(x.shape[0], -1)
    differs = (flat != game.baseline).double()
    count = torch.zeros(x.shape[0], game.n_players, dtype=torch.float64)
    count.index_add_(1, game.players.player_of_feature, differs)
    return additive_efficient_normalization(raw, grand, null, count > 0)


# --------------------------------------------------------------------------- values
@pytest.mark.parametrize("players", [None, GROUPS], ids=["singletons", "groups"])
@pytest.mark.parametrize("link", ["identity", "softmax"])
@pytest.mark.parametrize("n", [1, 2, 30, 257])
def test_values_bit_identical_to_generic_computation(players, link, n):
    fs = _fastshap(players=players, link=link, baseline=0.0)
    x = _cells(n)
    for target in (0, 2):
        got = fs.attribute(x, target=target, return_player_values=True)
        assert torch.equal(got, _reference(fs, x, target).squeeze(-1))
    got = fs.attribute(x, targets="all", return_player_values=True)
    assert torch.equal(got, _reference(fs, x, "all"))
    per_example = torch.arange(n) % 3
    got = fs.attribute(x, target=per_example, return_player_values=True)
    assert torch.equal(got, _reference(fs, x, per_example).squeeze(-1))


def test_feature_values_and_delta_match_player_values():
    fs = _fastshap(players=GROUPS, link="softmax")
    x = _cells(30)
    attr, delta = fs.attribute(x, target=1, return_convergence_delta=True)
    phi = fs.attribute(x, target=1, return_player_values=True)
    assert torch.equal(attr, phi[:, fs.players.player_of_feature])
    assert delta.abs().max() < 1e-6
    assert torch.allclose(fs.compute_convergence_delta(attr, x, target=1), delta, atol=1e-6)
    # singletons: feature values are the player values
    fs1 = _fastshap()
    assert torch.equal(fs1.attribute(x, target=1), fs1.attribute(x, target=1,
                                                                  return_player_values=True))


def test_batches_share_one_null_value():
    fs = _fastshap(link="softmax")
    x = _cells(23)
    whole = fs.attribute(x, target=0, return_convergence_delta=True)
    batched = fs.attribute(x, target=0, batch_size=5, return_convergence_delta=True)
    torch.testing.assert_close(batched[0], whole[0], rtol=0, atol=1e-6)
    torch.testing.assert_close(batched[1], whole[1], rtol=0, atol=1e-6)


def test_marginal_game_null_from_one_example():
    model = _model()
    bg = _cells(16, seed=5)
    game = MarginalGame(model, bg, players=Players.singletons(F))
    fs = FastSHAP(model, MLPExplainer(F, F, 3, random_state=1, zero_init_output=False).eval(),
                  game=game, trained=True)
    x = _cells(12)
    got = fs.attribute(x, target=1, return_player_values=True)
    with torch.no_grad():
        raw = fs.explainer(x, outputs=1)
    grand = game.grand(x)[:, 1:2]
    null = game.null(x[:1])[:, 1:2].expand(12, -1)
    # every example's own v(x, 0) is the same number up to rounding
    torch.testing.assert_close(game.null(x)[:, 1:2], null, rtol=0, atol=1e-6)
    assert torch.equal(got, additive_efficient_normalization(raw, grand, null).squeeze(-1))


# --------------------------------------------------------------------------- work per call
class _Counting(nn.Module):
    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.rows: list[int] = []

    def forward(self, x):
        self.rows.append(int(x.shape[0]))
        return self.inner(x)


@pytest.mark.parametrize("batch_size", [None, 40])
def test_model_rows_per_call(batch_size):
    """``f(x)`` on the examples and ``f(baseline)`` on one row, not one per example."""
    counting = _Counting(_model()).eval()
    fs = _fastshap(model=counting)
    fs.attribute(_cells(100), target=0, batch_size=batch_size, return_convergence_delta=True)
    expected = [100, 1] if batch_size is None else [40, 1, 40, 20]
    assert counting.rows == expected


def test_singleton_null_players_match_counting():
    game = BaselineGame(_model(), Players.singletons(F), baseline=torch.linspace(0, 0.5, F))
    grouped = BaselineGame(_model(), Players.from_groups([[i] for i in range(F)], F),
                           baseline=torch.linspace(0, 0.5, F))
    x = _cells(50)
    x[:, 3] = game.baseline[3]
    x[0, 7] = float("nan")
    assert game.players.is_singletons
    assert torch.equal(game.null_players(x), grouped.null_players(x))
    x = _cells(30)
    for g in (game, grouped):  # the direct v(x, 0) builds the same rows as v(x, {})
        assert torch.equal(g.null(x), Game.null(g, x))
    assert not Players.from_groups(GROUPS, F).is_singletons
    assert not Players(torch.tensor([1, 0, 2])).is_singletons


# --------------------------------------------------------------------------- nothing stale
def _fresh_like(fs: FastSHAP, model=None, baseline=None) -> FastSHAP:
    return FastSHAP(fs.model_game.model if model is None else model, fs.explainer,
                    players=fs.players, link=fs.link,
                    baseline=fs.baseline if baseline is None else baseline, trained=True)


@pytest.mark.parametrize("how", ["no_grad", "data", "load_state_dict"])
def test_weights_changed_in_place_are_seen(how):
    model = _model()
    fs = _fastshap(model=model, link="softmax")
    x = _cells(30)
    before = fs.attribute(x, target=0, return_convergence_delta=True)
    if how == "no_grad":
        with torch.no_grad():
            model[3].bias.add_(0.5)
    elif how == "data":  # bypasses the version counter: must still be seen
        model[3].bias.data.add_(0.5)
    else:
        state = {k: v + 0.5 if k.endswith("bias") else v for k, v in model.state_dict().items()}
        model.load_state_dict(state)
    after = fs.attribute(x, target=0, return_convergence_delta=True)
    assert not torch.equal(after[0], before[0])
    fresh = _fresh_like(fs).attribute(x, target=0, return_convergence_delta=True)
    assert torch.equal(after[0], fresh[0]) and torch.equal(after[1], fresh[1])
    assert after[1].abs().max() < 1e-6  # still efficient against the changed model


def test_train_mode_raises_the_same_error_every_time():
    model = _model()
    fs = _fastshap(model=model)
    x = _cells(4)
    ok = fs.attribute(x, target=0)
    model.train()
    for _ in range(2):
        with pytest.raises(ValueError, match=r"`model` is in training mode: submodule '2' "
                                             r"\(Dropout\).*call `model.eval\(\)`"):
            fs.attribute(x, target=0)
    model.eval()
    assert torch.equal(fs.attribute(x, target=0), ok)
    fs.explainer.train()
    fs.explainer.net.append(nn.Dropout(0.5))  # a stochastic layer added after the first call
    with pytest.raises(ValueError, match="`explainer` is in training mode"):
        fs.attribute(x, target=0)


def test_another_baseline_is_seen():
    fs = _fastshap(link="softmax", baseline=0.0)
    x = _cells(30)
    before = fs.attribute(x, target=0)
    b = torch.full((F,), 0.25)
    fs2 = _fresh_like(fs, baseline=b)
    r1 = fs2.attribute(x, target=0)
    assert not torch.equal(r1, before)
    b.add_(0.25)  # the game holds a view of the caller's tensor: edited in place
    r2 = fs2.attribute(x, target=0)
    assert not torch.equal(r2, r1)
    assert torch.equal(r2, _fresh_like(fs, baseline=torch.full((F,), 0.5)).attribute(x, target=0))
    fs.model_game.baseline = torch.full((F,), 0.5)  # replaced on the game
    assert torch.equal(fs.attribute(x, target=0), r2)


def test_another_model_and_dtype_are_seen():
    fs = _fastshap(link="softmax")
    x = _cells(30)
    before = fs.attribute(x, target=0)
    other = _model(seed=7)
    fs.model_game.model = other
    assert torch.equal(fs.attribute(x, target=0),
                       _fresh_like(fs, model=other).attribute(x, target=0))
    fs.model_game.model.double()
    out = fs.attribute(x, target=0, return_convergence_delta=True)
    assert out[0].dtype == torch.float32 and out[1].abs().max() < 1e-6
    assert not torch.equal(out[0], before)


def test_repeat_calls_leave_the_model_as_it_was():
    model = _model()
    fs = _fastshap(model=model)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    versions = [p._version for p in model.parameters()]
    x = _cells(8)
    first = fs.attribute(x, target=0)
    for _ in range(3):
        assert torch.equal(fs.attribute(x, target=0), first)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in state.items())
    assert [p._version for p in model.parameters()] == versions
    assert not model._forward_hooks and not model._forward_pre_hooks


# --------------------------------------------------------------------------- helpers
class _BuffersOnly(nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("count", torch.zeros(2, dtype=torch.long))
        self.register_buffer("scale", torch.ones(2, dtype=torch.float64))


class _IntParamFirst(nn.Module):
    def __init__(self):
        super().__init__()
        self.idx = nn.Parameter(torch.zeros(2, dtype=torch.long), requires_grad=False)
        self.lin = nn.Linear(2, 2).half()


@pytest.mark.parametrize("module", [
    _model(), nn.Sequential(nn.ReLU(), nn.Linear(2, 2).double()), _BuffersOnly(),
    _IntParamFirst(), nn.ReLU(), lambda x: x, nn.BatchNorm1d(3).double(),
], ids=["mlp", "relu-first", "buffers-only", "int-param-first", "no-tensors", "callable",
        "batchnorm"])
def test_placement_agrees_with_module_device_and_dtype(module):
    fallback_device, fallback_dtype = torch.device("cpu"), torch.float16
    assert _placement(module, fallback_device, fallback_dtype) == (
        module_device(module, fallback_device), module_dtype(module, fallback_dtype))


def test_explainer_int_output_equals_tensor_output():
    e = MLPExplainer(F, F, 3, random_state=0, zero_init_output=False).eval()
    x = _cells(9)
    with torch.no_grad():
        for c in range(3):
            assert torch.equal(e(x, outputs=c), e(x, outputs=torch.full((9,), c)))
        mixed = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1, 2])
        torch.testing.assert_close(e(x, outputs=mixed).squeeze(-1),  # other GEMM shapes
                                   e(x)[torch.arange(9), :, mixed], rtol=0, atol=1e-6)
    for bad in (3, -1):
        with pytest.raises(ValueError, match="`outputs` must hold values in 0..2"):
            e(x, outputs=bad)
    with pytest.raises(ValueError, match="`outputs` must hold values in 0..2"):
        e(x, outputs=torch.tensor([0] * 8 + [5]))
    with pytest.raises(ValueError, match=r"`outputs` must have shape \(B,\)"):
        e(x, outputs=True)


def test_subclass_with_own_coalition_values_keeps_per_example_null():
    class Shifted(BaselineGame):  # v(x, S) depends on x even for the empty coalition
        def _values(self, x, flat, S):
            return super()._values(x, flat, S) + flat.sum(1, keepdim=True)

    game = Shifted(_model(), Players.singletons(F))
    assert not game.null_is_constant
    assert BaselineGame(_model(), Players.singletons(F)).null_is_constant
    x = _cells(6)
    assert torch.equal(game.null(x), Game.null(game, x))
    fs = FastSHAP(game.model, MLPExplainer(F, F, 3, random_state=1).eval(), game=game,
                  trained=True)
    phi = fs.attribute(x, targets="all", return_player_values=True)
    torch.testing.assert_close(phi.double().sum(1), (game.grand(x) - game.null(x)).double(),
                               rtol=0, atol=1e-6)
