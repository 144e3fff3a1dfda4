"""FastSHAP core: players, games, sampling, normalization, training, save/load."""

import copy
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from captum_genomics.fastshap import (
    BaselineGame,
    MarginalGame,
    MaskedSurrogate,
    MLPExplainer,
    Players,
    SurrogateGame,
    additive_efficient_normalization,
    as_players,
    coalitions_of_sizes,
    efficiency_gap,
    estimate_shapley,
    exact_shapley,
    load_module,
    sample_shapley_coalitions,
    sample_uniform_size_coalitions,
    save_module,
    shapley_kernel_size_probs,
    surrogate_loss,
    train_explainer,
    train_surrogate,
)

DT = torch.float64


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(params=["cpu", pytest.param("cuda", marks=pytest.mark.cuda)])
def device(request):
    if request.param == "cuda" and not torch.cuda.is_available():
        pytest.skip("CUDA not available")
    return torch.device(request.param)


# ----------------------------------------------------------------------------- players
def test_players_from_feature_mask_and_groups_agree():
    mask = torch.tensor([[[0, 1, 1], [2, 0, 2]]])  # leading axis of 1, one input is (2, 3)
    p = Players.from_feature_mask(mask, input_shape=(2, 3))
    assert (p.n_players, p.n_features, p.feature_shape) == (3, 6, (2, 3))
    assert p.groups() == [[0, 4], [1, 2], [3, 5]]
    q = Players.from_groups([[4, 0], [1, 2], [5, 3]], (2, 3))
    assert p == q
    S = torch.tensor([[1, 0, 1], [0, 1, 0]], dtype=torch.bool)
    m = p.to_feature_mask(S)
    assert m.dtype == torch.bool and m.tolist() == [[1, 0, 0, 1, 1, 1], [0, 1, 1, 0, 0, 0]]
    assert p.group_sizes().tolist() == [2, 2, 2]
    assert Players.from_config(p.to_config()) == p


def test_as_players_variants():
    assert as_players(None, 4) == Players.singletons(4)
    assert as_players(torch.tensor([0, 0, 1, 1]), 4).n_players == 2
    assert as_players([[0, 1], [2], [3]], (4,)).n_players == 3
    with pytest.raises(ValueError, match="covers 3 features but one input has 4"):
        as_players(Players.singletons(3), 4)


@pytest.mark.parametrize("mask, match", [
    (torch.tensor([0, 2, 2, 3]), r"skips player ids \[1\]"),
    (torch.tensor([0, -1, 1, 1]), r"negative player ids at flat feature indices \[1\]"),
    (torch.tensor([0.0, 1.0, 1.0, 0.0]), "integer player ids"),
])
def test_feature_mask_errors(mask, match):
    with pytest.raises(ValueError, match=match) as err:
        Players.from_feature_mask(mask)
    assert "`feature_mask`" in str(err.value)


def test_feature_mask_out_of_range_and_shape():
    with pytest.raises(ValueError, match=r"feature_mask.*ids \[4\] >= n_players=3"):
        Players.from_feature_mask(torch.tensor([0, 1, 2, 4]), n_players=3)
    with pytest.raises(ValueError, match=r"ids \[3\] own no feature"):
        Players.from_feature_mask(torch.tensor([0, 1, 2, 2]), n_players=4)
    with pytest.raises(ValueError, match=r"shape of one input \(5,\)"):
        Players.from_feature_mask(torch.tensor([0, 1, 2, 2]), input_shape=(5,))


@pytest.mark.parametrize("groups, match", [
    ([[0, 1], [3]], r"`groups` leaves features \[2\] in no group"),
    ([[0, 1], [1, 2, 3]], r"`groups` lists features \[1\] more than once"),
    ([[0, 0, 1], [2, 3]], r"`groups` lists features \[0\] more than once"),
    ([[0, 1], [2, 3, 4]], r"`groups\[1\]` holds feature indices \[4\] outside 0..3"),
    ([[0, 1, 2, 3], []], r"`groups\[1\]` is empty"),
    ([[0.5, 1], [2, 3]], "integer feature indices"),
])
def test_group_errors(groups, match):
    with pytest.raises(ValueError, match=match):
        Players.from_groups(groups, 4)


def test_player_mask_shape_error():
    with pytest.raises(ValueError, match=r"shape \(B, 3\)"):
        Players.singletons(3).to_feature_mask(torch.ones(2, 4))


# ----------------------------------------------------------------------------- sampling
def test_kernel_size_distribution_chi_square():
    d, n = 7, 20000
    S = sample_shapley_coalitions(n, d, torch.Generator().manual_seed(0))
    sizes = S.sum(1).long()
    assert sizes.min() >= 1 and sizes.max() <= d - 1
    counts = torch.bincount(sizes, minlength=d)[1:d].double()
    s = torch.arange(1, d, dtype=DT)
    expected_p = (d - 1) / (s * (d - s))
    expected_p /= expected_p.sum()
    torch.testing.assert_close(shapley_kernel_size_probs(d), expected_p)
    assert stats.chisquare(counts.numpy(), (expected_p * n).numpy()).pvalue > 1e-3


def test_subsets_uniform_within_size():
    d, n = 5, 6000
    S = coalitions_of_sizes(torch.full((n,), 2), d, torch.Generator().manual_seed(1))
    assert (S.sum(1) == 2).all()
    codes = (S.long() * (2 ** torch.arange(d))).sum(1)
    counts = torch.bincount(codes, minlength=2 ** d)
    counts = counts[counts > 0].double()
    assert counts.numel() == math.comb(d, 2)
    assert stats.chisquare(counts.numpy()).pvalue > 1e-3


def test_uniform_size_sampler_covers_all_sizes():
    d, n = 4, 5000
    S = sample_uniform_size_coalitions(n, d, torch.Generator().manual_seed(2))
    counts = torch.bincount(S.sum(1).long(), minlength=d + 1).double()
    assert stats.chisquare(counts.numpy()).pvalue > 1e-3


@pytest.mark.parametrize("sampler", [sample_shapley_coalitions, sample_uniform_size_coalitions])
def test_paired_sampling_and_seeding(sampler):
    S = sampler(64, 9, torch.Generator().manual_seed(3), paired=True, dtype=torch.bool)
    assert S.shape == (64, 9)
    assert torch.equal(S[1::2], ~S[0::2])
    again = sampler(64, 9, torch.Generator().manual_seed(3), paired=True, dtype=torch.bool)
    other = sampler(64, 9, torch.Generator().manual_seed(4), paired=True, dtype=torch.bool)
    assert torch.equal(S, again) and not torch.equal(S, other)
    with pytest.raises(ValueError, match="even with paired=True"):
        sampler(5, 9, paired=True)


def test_sampler_errors_and_defaults():
    with pytest.raises(ValueError, match="n_players"):
        sample_shapley_coalitions(4, 1)
    a = sample_shapley_coalitions(8, 5)  # no generator: seeded 0, not global state
    torch.manual_seed(123)
    assert torch.equal(a, sample_shapley_coalitions(8, 5))
    assert a.dtype == torch.float32


def test_sampler_same_masks_on_any_device(device):
    cpu = sample_shapley_coalitions(32, 6, torch.Generator().manual_seed(5), paired=True)
    dev = sample_shapley_coalitions(32, 6, torch.Generator().manual_seed(5), paired=True,
                                    device=device)
    assert dev.device.type == device.type
    assert torch.equal(cpu, dev.cpu())


# ----------------------------------------------------------------------------- normalization
def test_normalization_exact_efficiency_float32():
    g = torch.Generator().manual_seed(6)
    phi = torch.randn(16, 50, 3, generator=g)
    grand, null = torch.randn(16, 3, generator=g), torch.randn(16, 3, generator=g)
    out = additive_efficient_normalization(phi, grand, null)
    assert out.dtype == torch.float32 and out.shape == phi.shape
    assert (out.sum(1) - (grand - null)).abs().max() <= 1e-5
    assert efficiency_gap(out, grand, null).abs().max() <= 1e-5


def test_normalization_is_l2_projection():
    # argmin ||psi - phi||^2 s.t. 1^T psi = c, solved from its KKT system.
    g = torch.Generator().manual_seed(7)
    d = 6
    phi = torch.randn(3, d, 2, generator=g, dtype=DT)
    grand, null = torch.randn(3, 2, generator=g, dtype=DT), torch.randn(3, 2, generator=g, dtype=DT)
    out = additive_efficient_normalization(phi, grand, null)
    K = torch.zeros(d + 1, d + 1, dtype=DT)
    K[:d, :d] = 2 * torch.eye(d, dtype=DT)
    K[:d, d] = 1
    K[d, :d] = 1
    for b in range(3):
        for t in range(2):
            rhs = torch.cat([2 * phi[b, :, t], (grand[b, t] - null[b, t]).reshape(1)])
            psi = torch.linalg.solve(K, rhs)[:d]
            torch.testing.assert_close(out[b, :, t], psi)
            # any other feasible point is farther from phi
            z = torch.randn(d, generator=g, dtype=DT)
            other = psi + (z - z.mean())
            assert (other - phi[b, :, t]).norm() >= (psi - phi[b, :, t]).norm()


@settings(max_examples=30, deadline=None)
@given(b=st.integers(1, 4), d=st.integers(1, 40), t=st.integers(1, 3), seed=st.integers(0, 999))
def test_normalization_property(b, d, t, seed):
    g = torch.Generator().manual_seed(seed)
    phi = torch.randn(b, d, t, generator=g, dtype=DT) * 10
    grand, null = torch.randn(b, t, generator=g, dtype=DT), torch.randn(b, t, generator=g, dtype=DT)
    out = additive_efficient_normalization(phi, grand, null)
    torch.testing.assert_close(out.sum(1), grand - null)
    # the correction is the same for every player
    diff = out - phi
    torch.testing.assert_close(diff, diff[:, :1].expand_as(diff))
    # already efficient predictions are left unchanged
    torch.testing.assert_close(additive_efficient_normalization(out, grand, null), out)


def test_normalization_shape_errors():
    with pytest.raises(ValueError, match=r"`grand` must have shape \(B, T\)"):
        additive_efficient_normalization(torch.zeros(2, 3, 1), torch.zeros(2), torch.zeros(2, 1))
    with pytest.raises(ValueError, match=r"`phi` must have shape \(B, d, T\)"):
        additive_efficient_normalization(torch.zeros(2, 3), torch.zeros(2, 1), torch.zeros(2, 1))


# ----------------------------------------------------------------------------- games
def _net(n_in, n_out, seed, dtype=DT):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(n_in, 8), torch.nn.Tanh(),
                               torch.nn.Linear(8, n_out)).to(dtype).eval()


@pytest.mark.parametrize("link", ["identity", "softmax"])
def test_marginal_game_equals_brute_force_loop(link):
    g = torch.Generator().manual_seed(8)
    model = _net(6, 3, seed=0)
    players = Players.from_groups([[0, 5], [1, 2], [3], [4]], 6)
    bg = torch.randn(7, 6, generator=g, dtype=DT)
    wts = torch.rand(7, generator=g, dtype=DT)
    x = torch.randn(5, 6, generator=g, dtype=DT)
    S = torch.randint(0, 2, (5, 4), generator=g).to(DT)
    for weights in (None, wts):
        game = MarginalGame(model, bg, players, weights=weights, link=link)
        out = game(x, S)
        w = torch.full((7,), 1 / 7, dtype=DT) if weights is None else wts / wts.sum()
        expected = torch.zeros(5, 3, dtype=DT)
        with torch.no_grad():
            for b in range(5):
                m = players.to_feature_mask(S[b:b + 1])[0]
                for r in range(7):
                    z = (x[b] * m + bg[r] * (1 - m)).unsqueeze(0)
                    y = model(z)[0]
                    expected[b] += w[r] * (torch.softmax(y, -1) if link == "softmax" else y)
        torch.testing.assert_close(out, expected)
        chunked = MarginalGame(model, bg, players, weights=weights, link=link, batch_size=4)
        torch.testing.assert_close(chunked(x, S), out)
        torch.testing.assert_close(game.null(x), game(x, torch.zeros_like(S)))
        torch.testing.assert_close(game.grand(x), game(x, torch.ones_like(S)))


def test_baseline_game_values_and_errors(device):
    model = _net(4, 2, seed=1).to(device)
    players = Players.from_feature_mask(torch.tensor([0, 1, 1, 2]))
    b = torch.tensor([0.5, -1.0, 2.0, 0.0], dtype=DT, device=device)
    game = BaselineGame(model, players, baseline=b, batch_size=3)
    x = torch.randn(5, 4, dtype=DT, device=device)
    S = torch.tensor([[1, 0, 1]] * 5, dtype=torch.bool, device=device)
    expected = model(torch.where(torch.tensor([True, False, False, True], device=device), x, b))
    torch.testing.assert_close(game(x, S), expected.detach())
    assert not game(x, S).requires_grad
    torch.testing.assert_close(game.grand(x), model(x).detach())
    with pytest.raises(ValueError, match=r"`S` must have shape \(B, d\) = \(5, 3\)"):
        game(x, S[:, :2])
    with pytest.raises(ValueError, match="`x` has 3 features per example"):
        game(x[:, :3], S)
    with pytest.raises(ValueError, match="`baseline` must be a scalar or have one value per feature"):
        BaselineGame(model, players, baseline=torch.zeros(3))
    with pytest.raises(ValueError, match="`link` must be one of"):
        BaselineGame(model, players, link="sigmoid")


def test_surrogate_game_uses_surrogate_players():
    players = Players.from_groups([[0, 1], [2]], 3)
    sur = MaskedSurrogate(players, 2, hidden_width=8, n_hidden_layers=1, seed=0).eval()
    game = SurrogateGame(sur)
    x = torch.randn(4, 3)
    S = torch.tensor([[1, 0], [0, 1], [1, 1], [0, 0]], dtype=torch.float32)
    torch.testing.assert_close(game(x, S), torch.softmax(sur(x, S), -1).detach())
    assert SurrogateGame(sur, link="identity", batch_size=3)(x, S).shape == (4, 2)
    with pytest.raises(ValueError, match="differ from the surrogate's"):
        SurrogateGame(sur, players=Players.singletons(3))


def test_surrogate_hides_held_out_features():
    players = Players.from_groups([[0, 1], [2]], 3)
    sur = MaskedSurrogate(players, 2, fill=torch.tensor([0.1, 0.2, 0.3]), seed=0).eval()
    x = torch.randn(4, 3)
    x2 = x.clone()
    x2[:, :2] = torch.randn(4, 2)
    S = torch.tensor([[0, 1]] * 4, dtype=torch.float32)
    torch.testing.assert_close(sur(x, S), sur(x2, S))  # player 0 held out: its features unseen
    assert not torch.allclose(sur(x, 1 - S), sur(x2, 1 - S))


# ----------------------------------------------------------------------------- training
def _classification_problem():
    g = torch.Generator().manual_seed(9)
    W = torch.randn(6, 3, generator=g) * 2
    model = torch.nn.Linear(6, 3, bias=False)
    with torch.no_grad():
        model.weight.copy_(W.T)
    model.eval()
    xtr = torch.randn(256, 6, generator=g)
    xva = torch.randn(64, 6, generator=g)
    players = Players.from_groups([[0, 1], [2, 3], [4], [5]], 6)
    return model, xtr, xva, players


def _surrogate_val_loss(sur, model, xva, masks):
    n, k, d = masks.shape
    with torch.no_grad():
        out = sur(xva.repeat_interleave(k, 0), masks.reshape(n * k, d))
        tgt = torch.softmax(model(xva), -1).repeat_interleave(k, 0)
        return float(surrogate_loss(out, tgt))


def test_train_surrogate_lowers_val_loss_and_restores_best():
    model, xtr, xva, players = _classification_problem()
    masks = sample_uniform_size_coalitions(64 * 4, 4, torch.Generator().manual_seed(10)).reshape(64, 4, 4)

    sur = MaskedSurrogate(players, 3, hidden_width=16, n_hidden_layers=1, seed=0)
    h = train_surrogate(sur, model, xtr, xva, lr=0.1, max_epochs=6, n_samples=2, val_masks=masks)
    assert h["best_val_loss"] < h["initial_val_loss"]
    assert h["best_val_loss"] == min(h["val_loss"])
    assert not sur.training

    # A learning rate this high makes validation loss rise after the first epoch:
    # the weights of the best epoch, not the last, must come back.
    sur = MaskedSurrogate(players, 3, hidden_width=16, n_hidden_layers=1, seed=0)
    h = train_surrogate(sur, model, xtr, xva, lr=0.3, max_epochs=8, n_samples=2, val_masks=masks,
                        early_stopping_patience=3, lr_patience=1, seed=1)
    assert h["stopped_early"] and h["best_epoch"] < h["epochs_run"]
    assert h["val_loss"][-1] > h["best_val_loss"]
    assert h["lr"][-1] < h["lr"][0]  # ReduceLROnPlateau acted
    assert _surrogate_val_loss(sur, model, xva, masks) == pytest.approx(h["best_val_loss"], rel=1e-6)


def test_train_surrogate_is_seeded_and_regression_works():
    model, xtr, xva, players = _classification_problem()
    runs = []
    for _ in range(2):
        sur = MaskedSurrogate(players, 3, hidden_width=8, n_hidden_layers=1, seed=1)
        train_surrogate(sur, model, xtr, xva, max_epochs=2, seed=5)
        runs.append(sur.state_dict())
    for k in runs[0]:
        assert torch.equal(runs[0][k], runs[1][k])
    sur = MaskedSurrogate(players, 3, hidden_width=8, n_hidden_layers=1, seed=1)
    h = train_surrogate(sur, model, xtr, xva, task="regression", max_epochs=3, lr=1e-2)
    assert h["best_val_loss"] < h["initial_val_loss"]
    with pytest.raises(ValueError, match="`task` must be one of"):
        train_surrogate(sur, model, xtr, xva, task="ranking")
    with pytest.raises(ValueError, match="only 'identity' for regression"):
        train_surrogate(sur, model, xtr, xva, task="regression", model_link="softmax")
    with pytest.raises(ValueError, match="differ from the surrogate's"):
        train_surrogate(sur, model, xtr, xva, Players.singletons(6))
    with pytest.raises(ValueError, match="`x_val` has 5 features per example"):
        train_surrogate(sur, model, xtr, xva[:, :5])


def _linear_problem(d=4):
    g = torch.Generator().manual_seed(11)
    w = torch.tensor([1.0, -2.0, 0.5, 3.0])[:d]
    model = lambda x: (x @ w).unsqueeze(1) + 0.3  # noqa: E731
    xtr = torch.randn(512, d, generator=g)
    xva = torch.randn(128, d, generator=g)
    return model, w, xtr, xva


def test_train_explainer_recovers_exact_shapley_on_linear_model():
    model, w, xtr, xva = _linear_problem()
    game = BaselineGame(model, Players.singletons(4), baseline=0.0)
    explainer = MLPExplainer(4, 4, 1, seed=0)
    h = train_explainer(explainer, game, xtr, xva, n_samples=16, batch_size=32, lr=3e-3,
                        max_epochs=40, seed=0)
    assert h["best_val_loss"] < 1e-2 * h["initial_val_loss"]
    phi = estimate_shapley(explainer, xva, game)
    exact = exact_shapley(game, xva)
    torch.testing.assert_close(exact[..., 0], w * xva, rtol=1e-5, atol=1e-6)
    rel = (phi - exact).norm() / exact.norm()
    assert rel < 0.05, f"relative error {rel:.4f}"
    # efficiency holds exactly, and batching does not change the estimates
    torch.testing.assert_close(phi.sum(1), game.grand(xva) - game.null(xva), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(estimate_shapley(explainer, xva, game, batch_size=7), phi)


def test_train_explainer_seeded_and_checks(device):
    model, w, xtr, xva = _linear_problem()
    w = w.to(device)
    game = BaselineGame(lambda x: x @ w, Players.singletons(4))
    states = []
    for _ in range(2):
        explainer = MLPExplainer(4, 4, 1, hidden_width=16, seed=3).to(device)
        h = train_explainer(explainer, game, xtr[:64], xva[:32], max_epochs=2, seed=7)
        states.append(copy.deepcopy(explainer.state_dict()))
    assert set(h) >= {"train_loss", "val_loss", "lr", "best_epoch", "best_val_loss", "epochs_run"}
    for k in states[0]:
        assert torch.equal(states[0][k], states[1][k])
    with pytest.raises(ValueError, match="even with paired=True"):
        train_explainer(explainer, game, xtr[:8], xva[:8], n_samples=3)
    with pytest.raises(ValueError, match="predicts 4 players but the game has 3"):
        train_explainer(explainer, BaselineGame(lambda x: x.sum(1), Players.singletons(3)),
                        xtr[:8, :3], xva[:8, :3])
    with pytest.raises(ValueError, match="predicts 2 outputs but the game returns 1"):
        train_explainer(MLPExplainer(4, 4, 2).to(device), game, xtr[:8], xva[:8])
    with pytest.raises(ValueError, match="`game` \\(or both `grand` and `null`\\) is required"):
        estimate_shapley(explainer, xva)


def test_surrogate_then_explainer_pipeline(device):
    # The paper's pipeline end to end on a tiny classifier, on each device.
    model, xtr, xva, players = _classification_problem()
    model = model.to(device)
    sur = MaskedSurrogate(players, 3, hidden_width=16, n_hidden_layers=1, seed=0).to(device)
    train_surrogate(sur, model, xtr, xva, max_epochs=2, lr=1e-2)
    game = SurrogateGame(sur)
    explainer = MLPExplainer(6, 4, 3, hidden_width=16, seed=0).to(device)
    h = train_explainer(explainer, game, xtr, xva, max_epochs=2, lr=1e-3)
    assert h["best_val_loss"] < h["initial_val_loss"]
    phi = estimate_shapley(explainer, xva.to(device), game)
    assert phi.shape == (64, 4, 3) and phi.device.type == device.type
    gap = efficiency_gap(phi, game.grand(xva.to(device)), game.null(xva.to(device)))
    assert gap.abs().max() < 1e-5


# ----------------------------------------------------------------------------- io
def test_save_load_round_trip(tmp_path):
    players = Players.from_feature_mask(torch.tensor([[0, 1], [1, 2]]))
    sur = MaskedSurrogate(players, 2, hidden_width=8, fill=torch.tensor([0.1, 0.2, 0.3, 0.4]),
                          seed=0).double()
    exp = MLPExplainer(4, 3, 2, hidden_width=8, n_hidden_layers=3, activation="gelu", seed=0)
    x = torch.randn(5, 2, 2, dtype=DT)
    S = torch.tensor([[1, 0, 1]] * 5, dtype=DT)
    save_module(sur, tmp_path / "sur.pt", metadata={"task": "classification", "epochs": 3})
    save_module(exp, tmp_path / "exp.pt")
    sur2, meta = load_module(tmp_path / "sur.pt", return_metadata=True)
    exp2 = load_module(tmp_path / "exp.pt")
    assert meta == {"task": "classification", "epochs": 3}
    assert sur2.players == players and next(sur2.parameters()).dtype == DT
    assert torch.equal(sur2(x, S), sur.eval()(x, S))
    assert torch.equal(exp2(x.float()), exp.eval()(x.float()))
    assert exp2.config() == exp.config()
    blob = torch.load(tmp_path / "exp.pt", weights_only=True)
    assert set(blob) >= {"config", "state_dict"}


def test_save_load_errors(tmp_path):
    exp = MLPExplainer(2, 2, seed=0)
    with pytest.raises(TypeError, match="JSON-able"):
        save_module(exp, tmp_path / "a.pt", metadata={"x": torch.zeros(1)})
    with pytest.raises(TypeError, match="must be one of"):
        save_module(torch.nn.Linear(2, 2), tmp_path / "b.pt")
    torch.save({"state_dict": {}}, tmp_path / "c.pt")
    with pytest.raises(ValueError, match="is not a captum_genomics.fastshap file"):
        load_module(tmp_path / "c.pt")
    save_module(exp, tmp_path / "d.pt")
    blob = torch.load(tmp_path / "d.pt", weights_only=True)
    blob["dtype"] = "load"
    torch.save(blob, tmp_path / "d.pt")
    with pytest.raises(ValueError, match="invalid dtype 'load'"):
        load_module(tmp_path / "d.pt")


def test_train_explainer_schedules_and_ema_are_deterministic():
    import pytest
    from captum_genomics.fastshap.training import _fit

    def run(**kw):
        torch.manual_seed(0)
        lin = torch.nn.Linear(3, 1)
        x = torch.randn(16, 3)
        y = x.sum(1, keepdim=True)

        def batch_loss(idx):
            return (lin(x[idx]) - y[idx]).pow(2).mean()

        def validate():
            with torch.no_grad():
                return float((lin(x) - y).pow(2).mean())

        h = _fit(lin, 16, batch_loss, validate, batch_size=4, lr=0.05, max_epochs=5,
                 lr_factor=0.5, lr_patience=1, min_lr=1e-6, early_stopping_patience=None,
                 weight_decay=0.0, generator=torch.Generator().manual_seed(0),
                 progress_bar=False, desc="t", **kw)
        return h, lin.weight.detach().clone()

    for kw in ({"schedule": "cosine", "restore_best": False},
               {"schedule": "linear", "ema_decay": 0.9}, {"schedule": "constant"}):
        (h1, w1), (h2, w2) = run(**kw), run(**kw)
        assert torch.equal(w1, w2) and h1["val_loss"] == h2["val_loss"]
        assert h1["epochs_run"] == 5 and h1["val_loss"][-1] < h1["initial_val_loss"]
    h, _ = run(schedule="cosine")
    assert h["lr"][-1] < 1e-3
    with pytest.raises(ValueError, match="schedule"):
        run(schedule="step")
    with pytest.raises(ValueError, match="ema_decay"):
        run(ema_decay=1.5)
