"""Null players, masked normalization, permutation labels and the gradient x input explainer."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from captum_genomics import FastSHAP
from captum_genomics.fastshap import (
    BaselineGame,
    MarginalGame,
    MLPExplainer,
    Players,
    additive_efficient_normalization,
    estimate_shapley,
    exact_shapley,
    train_explainer,
)
from captum_genomics.fastshap.permutation import permutation_shapley_estimates

pytestmark = pytest.mark.usefixtures("one_thread")
DT = torch.float64


def _net(n_in, n_out, seed):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(n_in, 8), torch.nn.Tanh(),
                               torch.nn.Linear(8, n_out)).to(DT).eval()


def _sparse_x(b, d, seed, p_zero=0.4):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, d, generator=g, dtype=DT)
    return torch.where(torch.rand(b, d, generator=g, dtype=DT) < p_zero, torch.zeros_like(x), x)


def test_null_players_have_exact_zero_shapley_values():
    net = _net(6, 3, 0)
    x = _sparse_x(8, 6, 1)
    x[0] = 0.0  # every player null
    game = BaselineGame(net, feature_shape=(6,))
    nulls = game.null_players(x)
    assert torch.equal(nulls, x == 0)
    exact = exact_shapley(game, x)
    assert exact[nulls].abs().max() < 1e-15
    assert exact[~nulls].abs().max() > 1e-3


def test_null_players_of_groups_and_nonzero_baseline():
    net = _net(6, 2, 1)
    players = Players.from_groups([[0, 1], [2, 3], [4, 5]], 6)
    base = torch.tensor([0.5, 0.0, 1.0, 1.0, -2.0, 0.0], dtype=DT)
    x = torch.randn(5, 6, dtype=DT, generator=torch.Generator().manual_seed(2))
    x[1, :2] = base[:2]          # group 0 at baseline
    x[2, 2] = base[2]            # only half of group 1 at baseline: not null
    game = BaselineGame(net, players, baseline=base)
    nulls = game.null_players(x)
    expected = torch.zeros(5, 3, dtype=torch.bool)
    expected[1, 0] = True
    assert torch.equal(nulls, expected)
    exact = exact_shapley(game, x)
    assert exact[1, 0].abs().max() < 1e-15


def test_marginal_game_reports_no_null_players():
    net = _net(4, 1, 3)
    game = MarginalGame(net, torch.randn(6, 4, dtype=DT))
    assert game.null_players(torch.zeros(2, 4, dtype=DT)) is None


@settings(max_examples=25, deadline=None)
@given(b=st.integers(1, 4), d=st.integers(1, 7), t=st.integers(1, 3), seed=st.integers(0, 99))
def test_masked_normalization_is_projection_within_active_players(b, d, t, seed):
    g = torch.Generator().manual_seed(seed)
    phi = torch.randn(b, d, t, generator=g, dtype=DT)
    grand, null = torch.randn(b, t, generator=g, dtype=DT), torch.randn(b, t, generator=g, dtype=DT)
    active = torch.rand(b, d, generator=g) < 0.6
    out = additive_efficient_normalization(phi, grand, null, active)
    assert torch.equal(out[~active], torch.zeros_like(out[~active]))
    for i in range(b):
        a = active[i]
        if a.any():
            # closed form: the active block is shifted by the gap over their count
            gap = grand[i] - null[i] - phi[i, a].sum(0)
            torch.testing.assert_close(out[i, a], phi[i, a] + gap / int(a.sum()))
            torch.testing.assert_close(out[i].sum(0), grand[i] - null[i])
    # all active is the plain normalization
    torch.testing.assert_close(additive_efficient_normalization(phi, grand, null,
                                                                torch.ones(b, d, dtype=torch.bool)),
                               additive_efficient_normalization(phi, grand, null))


def test_masked_normalization_shape_error():
    phi = torch.zeros(2, 3, 1)
    with pytest.raises(ValueError, match=r"`active` must have shape \(B, d\) = \(2, 3\)"):
        additive_efficient_normalization(phi, torch.zeros(2, 1), torch.zeros(2, 1),
                                         torch.ones(2, 4, dtype=torch.bool))


def test_permutation_estimates_are_efficient_unbiased_and_seeded():
    net = _net(5, 2, 4)
    x = _sparse_x(3, 5, 5)
    game = BaselineGame(net, feature_shape=(5,))
    active = ~game.null_players(x)
    exact = exact_shapley(game, x)
    draws = torch.stack([permutation_shapley_estimates(
        game, x, torch.Generator().manual_seed(s), active=active) for s in range(3000)])
    # every draw is exactly efficient and zero on null players
    torch.testing.assert_close(draws.sum(2), (game.grand(x) - game.null(x)).expand(3000, -1, -1))
    assert torch.equal(draws[:, ~active], torch.zeros_like(draws[:, ~active]))
    # unbiased: the mean converges to the exact value (within 5 standard errors)
    se = draws.std(0) / 3000 ** 0.5
    assert ((draws.mean(0) - exact).abs() <= 5 * se + 1e-12).all()
    # seeded
    g1, g2 = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    assert torch.equal(permutation_shapley_estimates(game, x, g1),
                       permutation_shapley_estimates(game, x, g2))


def test_antithetic_pair_is_exact_for_two_players():
    # with two (active) players an ordering and its reverse are all orderings
    net = _net(4, 3, 6)
    x = torch.randn(6, 4, dtype=DT, generator=torch.Generator().manual_seed(8))
    x[:, 2:] = 0.0
    game = BaselineGame(net, feature_shape=(4,))
    est = permutation_shapley_estimates(game, x, torch.Generator().manual_seed(0),
                                        active=~game.null_players(x))
    torch.testing.assert_close(est, exact_shapley(game, x), rtol=0, atol=1e-14)


def test_scale_by_input_explainer():
    ex = MLPExplainer(5, 5, 2, seed=0, zero_init_output=False, scale_by_input=True,
                      baseline=torch.arange(5.0))
    x = torch.randn(3, 5)
    x[0, 1] = 1.0  # at the baseline
    out = ex(x)
    assert torch.equal(out[0, 1], torch.zeros(2))
    plain = MLPExplainer(5, 5, 2, seed=0, zero_init_output=False)
    torch.testing.assert_close(out, plain(x) * (x - torch.arange(5.0)).unsqueeze(-1))
    assert ex.config()["scale_by_input"] is True
    with pytest.raises(ValueError, match="one player per feature"):
        MLPExplainer(6, 3, 1, scale_by_input=True)
    with pytest.raises(ValueError, match="`baseline` must be a scalar or have n_features=5"):
        MLPExplainer(5, 5, 1, scale_by_input=True, baseline=torch.zeros(3))


@pytest.mark.parametrize("objective", ["fastshap", "permutation"])
def test_both_objectives_recover_exact_shapley_with_null_players(objective):
    torch.manual_seed(0)
    d = 5
    net = _net(d, 2, 9)
    xtr, xva = _sparse_x(512, d, 10), _sparse_x(128, d, 11)
    game = BaselineGame(net, feature_shape=(d,))
    explainer = MLPExplainer(d, d, 2, seed=0, scale_by_input=True).to(DT)
    h = train_explainer(explainer, game, xtr, xva, n_samples=16, lr=3e-3, max_epochs=30,
                        objective=objective, seed=0)
    assert h["best_val_loss"] < 0.2 * h["initial_val_loss"]
    phi = estimate_shapley(explainer, xva, game)
    exact = exact_shapley(game, xva)
    assert torch.equal(phi[xva == 0], torch.zeros_like(phi[xva == 0]))
    rel = float((phi - exact).norm() / exact.norm())
    assert rel < 0.1, rel


def test_train_explainer_rejects_unknown_objective():
    net = _net(3, 1, 0)
    game = BaselineGame(net, feature_shape=(3,))
    ex = MLPExplainer(3, 3, 1, seed=0).to(DT)
    x = torch.randn(8, 3, dtype=DT)
    with pytest.raises(ValueError, match="`objective` must be one of"):
        train_explainer(ex, game, x, x, objective="kernel")


def test_fastshap_zero_genes_get_exact_zero_and_flag_survives_save(tmp_path):
    net = _net(6, 3, 12)
    xtr, xva = _sparse_x(256, 6, 13), _sparse_x(64, 6, 14)
    fs = FastSHAP.fit(net, xtr, xva, link="softmax", explainer_kwargs={"hidden_width": 32},
                      train_kwargs={"max_epochs": 3, "objective": "permutation"})
    assert fs.mask_null_players and fs.explainer.scale_by_input
    attr, delta = fs.attribute(xva, target=1, return_convergence_delta=True)
    assert torch.equal(attr[xva == 0], torch.zeros_like(attr[xva == 0]))
    assert delta.abs().max() < 1e-12
    fs.save(tmp_path / "fs.pt")
    again = FastSHAP.load(tmp_path / "fs.pt", net)
    assert again.mask_null_players
    torch.testing.assert_close(again.attribute(xva, target=1), attr, rtol=0, atol=0)
    # turned off: zero genes get the spread-out gap instead
    off = FastSHAP(net, fs.explainer, link="softmax", trained=True, mask_null_players=False)
    assert off.attribute(xva, target=1)[xva == 0].abs().max() > 0


def test_explainer_selected_outputs_equal_full_output():
    ex = MLPExplainer(6, 6, 4, seed=0, zero_init_output=False, scale_by_input=True).to(DT)
    x = torch.randn(9, 6, dtype=DT)
    full = ex(x)
    per = torch.tensor([0, 3, 3, 1, 2, 0, 1, 3, 2])
    torch.testing.assert_close(ex(x, outputs=per)[..., 0], full[torch.arange(9), :, per])
    torch.testing.assert_close(ex(x, outputs=torch.full((9,), 2))[..., 0], full[..., 2])
    with pytest.raises(ValueError, match=r"`outputs` must have shape \(B,\) = \(9,\)"):
        ex(x, outputs=torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match=r"`outputs` must hold values in 0..3"):
        ex(x, outputs=torch.full((9,), 4))


# ----------------------------------------------------------------------------- augmentation
def test_feature_dropout_draws():
    from scipy import stats

    from captum_genomics.fastshap.augment import feature_dropout

    x = torch.rand(400, 50, dtype=DT) + 1.0
    before = x.clone()
    aug = feature_dropout(0.2)
    y = aug(x, torch.Generator().manual_seed(0))
    assert torch.equal(x, before) and y.dtype == x.dtype and y.shape == x.shape
    dropped = int((y == 0).sum())
    assert stats.binomtest(dropped, x.numel(), 0.2).pvalue > 1e-3
    assert torch.equal(y[y != 0], x[y != 0])
    assert torch.equal(y, aug(x, torch.Generator().manual_seed(0)))
    assert torch.equal(feature_dropout(0.0)(x, torch.Generator()), x)
    kept = feature_dropout(0.5, keep_original=0.5)(x, torch.Generator().manual_seed(1))
    untouched = (kept == x).all(1)
    assert stats.binomtest(int(untouched.sum()), 400, 0.5).pvalue > 1e-3
    base = torch.arange(50, dtype=DT)
    z = feature_dropout(0.3, baseline=base)(x, torch.Generator().manual_seed(2))
    reset = z != x
    assert torch.equal(z[reset], base.expand_as(z)[reset])
    for bad in (-0.1, 1.0):
        with pytest.raises(ValueError, match="`p` must be in"):
            feature_dropout(bad)
    with pytest.raises(ValueError, match="`keep_original` must be in"):
        feature_dropout(0.1, keep_original=1.0)


def test_training_with_augmentation_recovers_exact_values_and_is_seeded():
    from captum_genomics.fastshap.augment import feature_dropout

    d = 5
    net = _net(d, 2, 21)
    xtr, xva = _sparse_x(256, d, 22), _sparse_x(64, d, 23)
    game = BaselineGame(net, feature_shape=(d,))

    def fit():
        ex = MLPExplainer(d, d, 2, seed=0, scale_by_input=True).to(DT)
        train_explainer(ex, game, xtr, xva, lr=3e-3, max_epochs=25, objective="permutation",
                        augment=feature_dropout(0.2, keep_original=0.3), seed=0)
        return estimate_shapley(ex, xva, game)

    phi = fit()
    exact = exact_shapley(game, xva)
    assert float((phi - exact).norm() / exact.norm()) < 0.1
    assert torch.equal(phi, fit())
