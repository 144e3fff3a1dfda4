"""Exact Shapley values by enumeration, checked against closed forms and Captum."""

import itertools
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from captum_genomics.fastshap import (
    BaselineGame,
    MarginalGame,
    Players,
    all_coalitions,
    exact_shapley,
    exact_shapley_from_values,
    shapley_coefficients,
)

DT = torch.float64


pytestmark = pytest.mark.usefixtures("one_thread")


def _mlp(n_in, n_out, seed):
    g = torch.Generator().manual_seed(seed)
    w1 = torch.randn(n_in, 8, generator=g, dtype=DT)
    b1 = torch.randn(8, generator=g, dtype=DT)
    w2 = torch.randn(8, n_out, generator=g, dtype=DT)

    def f(x):
        return torch.tanh(x.reshape(x.shape[0], -1) @ w1 + b1) @ w2
    return f


def test_all_coalitions_binary_order():
    S = all_coalitions(3)
    assert S.shape == (8, 3) and S.dtype == torch.bool
    assert S[0].sum() == 0 and S[-1].all()
    assert S[5].tolist() == [True, False, True]  # 5 = 0b101


def test_coefficients_against_permutation_definition():
    # phi = W v must equal the average marginal contribution over all d! orders.
    d = 4
    W = shapley_coefficients(d)
    g = torch.Generator().manual_seed(0)
    v = torch.randn(2 ** d, generator=g, dtype=DT)
    brute = torch.zeros(d, dtype=DT)
    for order in itertools.permutations(range(d)):
        code = 0
        for i in order:
            brute[i] += v[code | (1 << i)] - v[code]
            code |= 1 << i
    brute /= math.factorial(d)
    torch.testing.assert_close(W @ v, brute)
    torch.testing.assert_close(W.sum(1), torch.zeros(d, dtype=DT))


@pytest.mark.parametrize("d", [1, 3, 16])
def test_linear_baseline_game_closed_form(d):
    g = torch.Generator().manual_seed(d)
    w = torch.randn(d, 2, generator=g, dtype=DT)
    b = torch.randn(d, generator=g, dtype=DT)
    x = torch.randn(2 if d < 16 else 1, d, generator=g, dtype=DT)
    game = BaselineGame(lambda z: z @ w + 1.5, Players.singletons(d), baseline=b)
    phi = exact_shapley(game, x, batch_size=8192)
    expected = (x - b).unsqueeze(2) * w.unsqueeze(0)
    assert phi.shape == (x.shape[0], d, 2)
    torch.testing.assert_close(phi, expected)


def test_linear_game_with_groups_sums_group_members():
    g = torch.Generator().manual_seed(3)
    w = torch.randn(7, generator=g, dtype=DT)
    x = torch.randn(3, 7, generator=g, dtype=DT)
    groups = [[0, 4], [1], [2, 3, 6], [5]]
    game = BaselineGame(lambda z: z @ w, Players.from_groups(groups, 7))
    phi = exact_shapley(game, x)[..., 0]
    contrib = x * w
    expected = torch.stack([contrib[:, grp].sum(1) for grp in groups], dim=1)
    torch.testing.assert_close(phi, expected)


def test_product_game_closed_form_and_dummies():
    # f(x) = prod_{i in T} x_i with baseline 0: v(S) = f(x) if T ⊆ S else 0, so
    # phi_i = f(x) / |T| for i in T, and players outside T are dummies (0).
    T = [0, 2, 3]
    d = 5
    g = torch.Generator().manual_seed(4)
    x = torch.randn(4, d, generator=g, dtype=DT)
    game = BaselineGame(lambda z: z[:, T].prod(1), Players.singletons(d))
    phi = exact_shapley(game, x)[..., 0]
    fx = x[:, T].prod(1, keepdim=True)
    expected = torch.zeros_like(x)
    expected[:, T] = fx / len(T)
    torch.testing.assert_close(phi, expected)


def test_harsanyi_dividends_closed_form():
    # v(S) = sum_T c_T [T ⊆ S]  =>  phi_i = sum_{T ∋ i} c_T / |T|.
    d = 5
    g = torch.Generator().manual_seed(5)
    c = torch.randn(2 ** d, generator=g, dtype=DT)
    S = all_coalitions(d, torch.long)
    codes = torch.arange(2 ** d)
    subset = (codes.unsqueeze(1) & codes.unsqueeze(0)) == codes.unsqueeze(0)  # [S, T]: T ⊆ S
    v = subset.to(DT) @ c
    size = S.sum(1)
    expected = torch.zeros(d, dtype=DT)
    for t in range(1, 2 ** d):
        expected += c[t] * S[t].to(DT) / size[t]
    torch.testing.assert_close(exact_shapley_from_values(v, d), expected)
    torch.testing.assert_close(exact_shapley_from_values(v.reshape(-1, 1), d), expected.reshape(-1, 1))


@settings(max_examples=25, deadline=None)
@given(d=st.integers(1, 7), seed=st.integers(0, 2 ** 16))
def test_efficiency_of_random_games(d, seed):
    g = torch.Generator().manual_seed(seed)
    v = torch.randn(3, 2 ** d, 2, generator=g, dtype=DT)
    phi = exact_shapley_from_values(v, d)
    torch.testing.assert_close(phi.sum(1), v[:, -1] - v[:, 0])


def test_mlp_efficiency_dummy_and_symmetry():
    # x1 and x2 enter only through x1 + x2 and are equal in x and baseline:
    # symmetric; x4 is never read: a dummy.
    f0 = _mlp(3, 2, seed=6)

    def f(z):
        return f0(torch.stack([z[:, 0] + z[:, 1], z[:, 2], z[:, 3] * z[:, 2]], dim=1))
    x = torch.tensor([[0.7, 0.7, -1.2, 0.4, 3.0], [-0.3, -0.3, 0.5, 2.0, -1.0]], dtype=DT)
    game = BaselineGame(f, Players.singletons(5), baseline=torch.tensor([0.1, 0.1, 0.0, 0.2, 0.5]))
    phi = exact_shapley(game, x, batch_size=7)
    torch.testing.assert_close(phi.sum(1), game.grand(x) - game.null(x))
    torch.testing.assert_close(phi[:, 0], phi[:, 1])
    torch.testing.assert_close(phi[:, 4], torch.zeros(2, 2, dtype=DT))


@pytest.mark.parametrize("link", ["identity", "softmax"])
def test_matches_captum_shapley_values_on_mlp(link):
    from captum.attr import ShapleyValues

    f = _mlp(8, 3, seed=7)
    feature_mask = torch.tensor([[0, 0, 1, 2, 3, 3, 4, 5]])  # d = 6 groups over 8 features
    g = torch.Generator().manual_seed(8)
    x = torch.randn(2, 8, generator=g, dtype=DT)
    baseline = torch.randn(1, 8, generator=g, dtype=DT)
    players = Players.from_feature_mask(feature_mask, input_shape=(8,))
    game = BaselineGame(f, players, baseline=baseline, link=link)
    phi = exact_shapley(game, x)
    forward = (lambda z: torch.softmax(f(z), -1)) if link == "softmax" else f
    sv = ShapleyValues(forward)
    for t in range(3):
        ref = sv.attribute(x, baselines=baseline, target=t, feature_mask=feature_mask,
                           perturbations_per_eval=64)
        # Captum gives every feature of a group the group's value; it accumulates
        # in float32 whatever the input dtype.
        first = [feature_mask[0].tolist().index(j) for j in range(6)]
        torch.testing.assert_close(phi[:, :, t], ref[:, first].to(DT), rtol=1e-5, atol=1e-6)


def test_marginal_game_linear_closed_form():
    g = torch.Generator().manual_seed(9)
    w = torch.randn(4, generator=g, dtype=DT)
    bg = torch.randn(10, 4, generator=g, dtype=DT)
    x = torch.randn(3, 4, generator=g, dtype=DT)
    game = MarginalGame(lambda z: z @ w, bg)
    phi = exact_shapley(game, x)[..., 0]
    torch.testing.assert_close(phi, (x - bg.mean(0)) * w)


def test_exact_errors():
    with pytest.raises(ValueError, match="d <= 16"):
        all_coalitions(17)
    with pytest.raises(ValueError, match="2\\^d = 8"):
        exact_shapley_from_values(torch.zeros(2, 7, 1), 3)
    with pytest.raises(ValueError, match="n_players"):
        exact_shapley(lambda x, S: x, torch.zeros(1, 3))
    game = BaselineGame(lambda z: z.sum(1), Players.singletons(17))
    with pytest.raises(ValueError, match="d <= 16"):
        exact_shapley(game, torch.zeros(1, 17))
