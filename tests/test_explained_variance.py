"""Explained variance, permutation test, BH and the result tables against brute force."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from captum_genomics.heads.result import HeadAblationResult
from captum_genomics.stats.explained_variance import encode_groups, explained_variance
from captum_genomics.stats.multiple_testing import adjust_p_values
from captum_genomics.stats.permutation import default_n_permutations, permutation_test


# ----------------------------------------------------------------------------- brute force
def brute_ev(pred, obs, codes, n_groups, min_cells=2):
    """Loops over variants, groups and genes with numpy's population variance."""
    pred, obs, codes = np.asarray(pred, float), np.asarray(obs, float), np.asarray(codes)
    v_n, _, g_n = pred.shape
    ev_gene = np.full((v_n, n_groups, g_n), np.nan)
    ev_head = np.full((v_n, n_groups), np.nan)
    for v in range(v_n):
        for g in range(n_groups):
            rows = np.flatnonzero(codes == g)
            if len(rows) < min_cells:
                continue
            res_tot = obs_tot = 0.0
            for j in range(g_n):
                y = obs[rows, j]
                r = pred[v, rows, j] - y
                vy, vr = np.var(y), np.var(r)
                res_tot += vr
                obs_tot += vy
                if np.ptp(y) > 0:
                    ev_gene[v, g, j] = 1 - vr / vy
            if obs_tot > 0:
                ev_head[v, g] = 1 - res_tot / obs_tot
    return ev_gene, ev_head


def brute_permutation(pred, obs, codes, n_groups, n_perm, seed, min_cells=2):
    """Draws the documented permutations and applies them one by one."""
    pred, obs, codes = np.asarray(pred, float), np.asarray(obs, float), np.asarray(codes)
    v_n = pred.shape[0]
    gen = torch.Generator().manual_seed(seed)
    mse = np.full((v_n, n_groups), np.nan)
    p = np.full((v_n, n_groups), np.nan)
    b_all = np.zeros((v_n, n_groups), dtype=np.int64)
    for g in range(n_groups):
        rows = np.flatnonzero(codes == g)
        if len(rows) < min_cells:
            continue
        keys = torch.rand((n_perm, len(rows)), generator=gen, dtype=torch.float64)
        perms = torch.argsort(keys, dim=1, stable=True).numpy()
        y = obs[rows]
        for v in range(v_n):
            pv = pred[v, rows]
            m_obs = np.mean((pv - y) ** 2)
            b = 0
            for pi in perms:
                if np.mean((pv[pi] - y) ** 2) <= m_obs * (1 + 1e-12):
                    b += 1
            mse[v, g] = m_obs
            b_all[v, g] = b
            p[v, g] = (1 + b) / (1 + n_perm)
    return mse, p, b_all


def make_data(n=30, g=6, v=3, k=3, seed=0, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    obs = torch.randn(n, g, generator=gen, dtype=torch.float64) * 2 + 5
    pred = 0.5 * obs + torch.randn(v, n, g, generator=gen, dtype=torch.float64)
    codes = torch.randint(0, k, (n,), generator=gen)
    codes[:k] = torch.arange(k)
    return pred.to(dtype), obs.to(dtype), codes


# ----------------------------------------------------------------------------- EV
def test_ev_matches_brute_force():
    pred, obs, codes = make_data(n=40, g=7, v=4, k=4)
    ev_gene, ev_head, n_cells = explained_variance(pred, obs, codes, 4)
    bg, bh = brute_ev(pred, obs, codes, 4)
    assert ev_gene.dtype == torch.float64 and ev_gene.shape == (4, 4, 7)
    np.testing.assert_allclose(ev_gene.numpy(), bg, rtol=0, atol=1e-12)
    np.testing.assert_allclose(ev_head.numpy(), bh, rtol=0, atol=1e-12)
    assert n_cells.tolist() == np.bincount(codes.numpy(), minlength=4).tolist()


def test_ev_float32_input_and_2d_predictions():
    pred, obs, codes = make_data(dtype=torch.float32)
    ev_gene, ev_head, _ = explained_variance(pred, obs, codes, 3)
    bg, bh = brute_ev(pred.double(), obs.double(), codes, 3)
    assert ev_gene.dtype == torch.float64
    np.testing.assert_allclose(ev_gene.numpy(), bg, atol=1e-12)
    ev1, eh1, _ = explained_variance(pred[1], obs, codes, 3)
    assert ev1.shape == (3, 6) and eh1.shape == (3,)
    assert torch.equal(ev1, ev_gene[1]) and torch.equal(eh1, ev_head[1])


def test_ev_stable_with_large_offset():
    # var(obs) = 1e-6 around a mean of 1e6: E[x^2] - E[x]^2 would lose every digit.
    pred, obs, codes = make_data(n=20, g=3, v=2, k=2)
    off = 1e6
    obs2, pred2 = obs * 1e-3 + off, pred * 1e-3 + off
    ev_gene, _, _ = explained_variance(pred2, obs2, codes, 2)
    bg, _ = brute_ev(pred2, obs2, codes, 2)
    np.testing.assert_allclose(ev_gene.numpy(), bg, atol=1e-6)


def test_zero_variance_gene_is_nan_and_perfect_prediction_is_one():
    pred, obs, codes = make_data(n=20, g=4, v=2, k=2)
    obs[codes == 0, 1] = 0.1  # constant in group 0 only (a value whose mean rounds)
    obs[:, 2] = 3.0  # constant everywhere
    pred[0] = obs
    ev_gene, ev_head, _ = explained_variance(pred, obs, codes, 2)
    assert torch.isnan(ev_gene[:, 0, 1]).all() and torch.isfinite(ev_gene[:, 1, 1]).all()
    assert torch.isnan(ev_gene[:, :, 2]).all()
    ok = torch.isfinite(ev_gene[0])
    assert torch.equal(ev_gene[0][ok], torch.ones(int(ok.sum()), dtype=torch.float64))
    assert torch.equal(ev_head[0], torch.ones(2, dtype=torch.float64))
    bg, bh = brute_ev(pred, obs, codes, 2)
    np.testing.assert_allclose(ev_gene.numpy(), bg, atol=1e-12)
    np.testing.assert_allclose(ev_head.numpy(), bh, atol=1e-12)


def test_skipped_groups_are_nan():
    pred, obs, codes = make_data(n=20, g=3, v=2, k=3)
    codes = codes.clone()
    codes[codes == 2] = 0
    codes[5] = 2  # one cell in group 2; group 3 has none
    ev_gene, ev_head, n_cells = explained_variance(pred, obs, codes, 4)
    assert n_cells[2] == 1 and n_cells[3] == 0
    assert torch.isnan(ev_gene[:, 2:]).all() and torch.isnan(ev_head[:, 2:]).all()
    assert torch.isfinite(ev_head[:, :2]).all()
    mse, p = permutation_test(pred, obs, codes, 4, 9)
    assert torch.isnan(mse[:, 2:]).all() and torch.isnan(p[:, 2:]).all()
    assert torch.isfinite(p[:, :2]).all()
    # min_cells raises the bar
    ev_gene5, _, _ = explained_variance(pred, obs, codes, 4, min_cells=int(n_cells[1]) + 1)
    assert torch.isnan(ev_gene5[:, 1]).all()


@settings(max_examples=20, deadline=None)
@given(n=st.integers(2, 12), g=st.integers(1, 4), v=st.integers(1, 3), k=st.integers(1, 4),
       seed=st.integers(0, 2**16))
def test_ev_property_brute_force(n, g, v, k, seed):
    gen = torch.Generator().manual_seed(seed)
    # few distinct values, so constant genes and one-cell groups happen
    obs = torch.randint(0, 3, (n, g), generator=gen).double()
    pred = torch.randn(v, n, g, generator=gen, dtype=torch.float64)
    codes = torch.randint(0, k, (n,), generator=gen)
    ev_gene, ev_head, _ = explained_variance(pred, obs, codes, k)
    bg, bh = brute_ev(pred, obs, codes, k)
    np.testing.assert_allclose(ev_gene.numpy(), bg, atol=1e-12)
    np.testing.assert_allclose(ev_head.numpy(), bh, atol=1e-12)


def test_ev_bad_input():
    pred, obs, codes = make_data()
    with pytest.raises(ValueError, match="`predictions`"):
        explained_variance(pred[:, :-1], obs, codes, 3)
    with pytest.raises(ValueError, match="`codes`"):
        explained_variance(pred, obs, codes, 2)
    with pytest.raises(ValueError, match="`codes`"):
        explained_variance(pred, obs, codes[:-1], 3)
    bad = obs.clone()
    bad[2, 1] = math.nan
    with pytest.raises(ValueError, match="`observed`.*NaN"):
        explained_variance(pred, bad, codes, 3)
    with pytest.raises(ValueError, match="`min_cells`"):
        explained_variance(pred, obs, codes, 3, min_cells=0)
    with pytest.raises(TypeError, match="`codes`"):
        explained_variance(pred, obs, codes.double(), 3)


# ----------------------------------------------------------------------------- permutations
def test_permutation_matches_brute_force():
    pred, obs, codes = make_data(n=24, g=5, v=3, k=3)
    # a weak signal in variant 0, so p-values are neither all tiny nor all large
    gen = torch.Generator().manual_seed(9)  # not the global seed: obs came from seed 0
    pred[0] = 0.05 * obs + torch.randn(24, 5, generator=gen, dtype=torch.float64)
    pred[2] = torch.randn(24, 5, generator=gen, dtype=torch.float64)
    n_perm = 199
    mse, p = permutation_test(pred, obs, codes, 3, n_perm, random_state=7)
    bm, bp, b = brute_permutation(pred, obs, codes, 3, n_perm, seed=7)
    np.testing.assert_allclose(mse.numpy(), bm, rtol=1e-13)
    assert np.array_equal(p.numpy(), bp)  # identical counts b
    assert (b > 0).any() and (b < n_perm).any()
    # the count does not depend on the batch size, nor on float32 input
    _, p_b = permutation_test(pred, obs, codes, 3, n_perm, random_state=7, batch_size=13)
    assert torch.equal(p, p_b)
    _, p_32 = permutation_test(pred.float(), obs.float(), codes, 3, n_perm, random_state=7)
    _, bp_32, _ = brute_permutation(pred.float().double(), obs.float().double(), codes, 3,
                                    n_perm, seed=7)
    assert np.array_equal(p_32.numpy(), bp_32)


def test_permutation_ties_count():
    # All prediction rows identical within each group: every permutation ties.
    pred, obs, codes = make_data(n=12, g=3, v=2, k=2)
    for g in range(2):
        pred[:, codes == g] = pred[:, codes == g][:, :1]
    _, p = permutation_test(pred, obs, codes, 2, 50)
    assert torch.equal(p, torch.ones_like(p))
    # Two cells: the only permutations are identity (a tie) and the swap.
    pred2 = torch.tensor([[[1.0], [0.0]]], dtype=torch.float64)
    obs2 = torch.tensor([[1.0], [0.0]], dtype=torch.float64)
    _, p2 = permutation_test(pred2, obs2, torch.zeros(2, dtype=torch.long), 1, 1000, 3)
    gen = torch.Generator().manual_seed(3)
    n_identity = int((torch.rand((1000, 2), generator=gen, dtype=torch.float64)
                      .argsort(1)[:, 0] == 0).sum())
    assert p2.item() == (1 + n_identity) / 1001


def test_permutation_deterministic_and_never_zero():
    pred, obs, codes = make_data(n=30, g=4, v=2, k=2)
    pred[0] = obs  # perfect: no permutation does as well
    pred[1] = torch.randn(30, 4, generator=torch.Generator().manual_seed(9),
                          dtype=torch.float64)  # null
    a = permutation_test(pred, obs, codes, 2, 99, random_state=1)
    b = permutation_test(pred, obs, codes, 2, 99, random_state=1)
    c = permutation_test(pred, obs, codes, 2, 99, random_state=2)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[1][1], c[1][1])
    assert torch.equal(a[1][0], torch.full((2,), 1 / 100, dtype=torch.float64))
    assert (a[1] > 0).all() and (a[1] <= 1).all()


def test_permutation_p_uniform_under_null():
    gen = torch.Generator().manual_seed(11)
    n_var, n, g = 300, 15, 4
    obs = torch.randn(n, g, generator=gen, dtype=torch.float64)
    pred = torch.randn(n_var, n, g, generator=gen, dtype=torch.float64)
    codes = torch.zeros(n, dtype=torch.long)
    _, p = permutation_test(pred, obs, codes, 1, 199, random_state=5)
    # discrete p on a grid of 1/200: compare with the continuous uniform
    assert stats.kstest(p[:, 0].numpy(), "uniform").pvalue > 0.01


def test_permutation_bad_input():
    pred, obs, codes = make_data()
    with pytest.raises(ValueError, match="`n_permutations`"):
        permutation_test(pred, obs, codes, 3, 0)
    with pytest.raises(ValueError, match="`batch_size`"):
        permutation_test(pred, obs, codes, 3, 5, batch_size=0)
    with pytest.raises(TypeError, match="`random_state`"):
        permutation_test(pred, obs, codes, 3, 5, random_state="x")


# ----------------------------------------------------------------------------- counts, BH
def test_default_n_permutations():
    assert default_n_permutations(4, 10, 0.05) == 800
    assert default_n_permutations(3, 7, 0.05) == 420
    assert default_n_permutations(1, 1, 0.3) == 4
    assert default_n_permutations(3, 1, 0.3) == 10
    n = default_n_permutations(5, 9, 0.01)
    assert 1 / (1 + n) < 0.01 / 45


@pytest.mark.parametrize("alpha", [0.0, 1.0, -0.1, 1.5, math.nan, "0.05", True])
def test_alpha_errors(alpha):
    with pytest.raises(ValueError, match=r"`alpha`.*\(0, 1\).*got"):
        default_n_permutations(2, 2, alpha)


def brute_bh(p):
    p = np.asarray(p, float)
    m = len(p)
    order = np.argsort(p)
    adj = np.empty(m)
    running = 1.0
    for r in range(m - 1, -1, -1):
        running = min(running, p[order[r]] * m / (r + 1))
        adj[order[r]] = running
    return adj


def test_bh_by_position_with_ties_and_nan():
    p = torch.tensor([[0.01, 0.04, math.nan], [0.04, 0.03, 0.01], [0.5, math.nan, 0.04]],
                     dtype=torch.float64)
    adj = adjust_p_values(p)
    finite = ~torch.isnan(p)
    assert torch.equal(torch.isnan(adj), ~finite)
    expected = brute_bh(p[finite].numpy())
    np.testing.assert_allclose(adj[finite].numpy(), expected, rtol=1e-15)
    # each adjusted value sits at its own test's position; equal p, equal adjusted p
    assert adj[0, 0] == adj[1, 2] and adj[0, 1] == adj[1, 0] == adj[2, 2]
    assert (adj[finite] >= p[finite]).all()
    # a permutation of the tests permutes the adjusted values the same way
    perm = torch.randperm(9)
    flat_adj = adjust_p_values(p.reshape(-1)[perm])
    np.testing.assert_array_equal(flat_adj.numpy(), adj.reshape(-1)[perm].numpy())


def test_bh_bad_input():
    with pytest.raises(ValueError, match="`p_values`"):
        adjust_p_values(torch.tensor([0.5, 1.5]))
    with pytest.raises(ValueError, match="`p_values`"):
        adjust_p_values(torch.tensor([0.5, math.inf]))
    assert torch.isnan(adjust_p_values(torch.full((2, 2), math.nan))).all()


# ----------------------------------------------------------------------------- groups
def test_encode_groups_kinds():
    codes, names = encode_groups(["b", "a", "c", "a"], 4)
    assert names == ["a", "b", "c"] and codes.tolist() == [1, 0, 2, 0]
    assert codes.dtype == torch.int64
    codes, names = encode_groups(np.array([10, 2, 2, 1]), 4)
    assert names == ["1", "2", "10"] and codes.tolist() == [2, 1, 1, 0]
    codes, names = encode_groups(torch.tensor([3, 1, 3]), 3)
    assert names == ["1", "3"] and codes.tolist() == [1, 0, 1]
    cat = pd.Categorical(["T", "B", "T"], categories=["T", "NK", "B"])
    codes, names = encode_groups(cat, 3)
    assert names == ["T", "B"] and codes.tolist() == [0, 1, 0]
    codes, names = encode_groups(pd.Series(cat), 3)
    assert names == ["T", "B"] and codes.tolist() == [0, 1, 0]
    codes, names = encode_groups(pd.Series(["x", "y", "x"], dtype="string"), 3)
    assert names == ["x", "y"] and codes.tolist() == [0, 1, 0]


@pytest.mark.parametrize("groups", [["a", None, "b"], [1.0, math.nan, 2.0],
                                    pd.Categorical(["a", None, "b"]),
                                    pd.Series(["a", pd.NA, "b"], dtype="string")])
def test_encode_groups_missing(groups):
    with pytest.raises(ValueError, match="`groups`.*missing.*position 1"):
        encode_groups(groups, 3)


def test_encode_groups_errors():
    with pytest.raises(ValueError, match="`groups`.*expected length 4, got 3"):
        encode_groups(["a", "b", "c"], 4)
    with pytest.raises(ValueError, match="`cell_type`.*expected length 2, got 3"):
        encode_groups(torch.tensor([0, 1, 1]), 2, name="cell_type")
    with pytest.raises(ValueError, match="one-dimensional"):
        encode_groups(np.zeros((2, 2)), 2)
    with pytest.raises(TypeError, match="`groups`"):
        encode_groups("abc", 3)
    with pytest.raises(TypeError, match="one kind"):
        encode_groups(["a", 1, "b"], 3)


# ----------------------------------------------------------------------------- result
def make_result(full=True):
    heads = [("attn", 0), ("attn", 1), ("attn", 2)]
    groups = ["A", "B", "C"]
    genes = ["g0", "g1", "g2", "g3"]
    gen = torch.Generator().manual_seed(0)
    ev_gene = torch.rand(3, 3, 4, generator=gen, dtype=torch.float64)
    ev_gene[:, 2] = math.nan  # C skipped
    ev_gene[:, 0, 3] = math.nan  # constant gene in A
    ev_head = ev_gene.nanmean(-1)
    p = torch.tensor([[0.001, 0.2, math.nan], [0.5, 0.01, math.nan], [0.001, 0.9, math.nan]],
                     dtype=torch.float64)
    full_ev_gene = torch.tensor([[0.1, 0.9, 0.5, math.nan], [0.3, 0.3, 0.8, 0.2],
                                 [math.nan] * 4], dtype=torch.float64) if full else None
    return HeadAblationResult(
        heads=heads, group_names=groups, gene_names=genes, ev_gene=ev_gene, ev_head=ev_head,
        mse=torch.rand(3, 3, generator=gen, dtype=torch.float64), p_value=p,
        p_adj=adjust_p_values(p), n_cells=torch.tensor([10, 7, 1]), skipped_groups=["C"],
        full_ev_gene=full_ev_gene, full_ev_head=None if not full else torch.zeros(3),
        ablation="keep", mode="zero", n_permutations=999, alpha=0.05)


def test_result_frames():
    res = make_result()
    df = res.to_frame()
    assert list(df.columns) == ["layer", "head", "group", "gene", "n_cells", "ev_gene",
                                "ev_head", "mse", "p_value", "p_adj"]
    assert len(df) == 3 * 2 * 4 and "C" not in set(df["group"])
    for row in df.itertuples():
        v, g, j = row.head, res.group_names.index(row.group), res.gene_names.index(row.gene)
        assert row.layer == "attn" and row.n_cells == int(res.n_cells[g])
        np.testing.assert_equal(row.ev_gene, res.ev_gene[v, g, j].item())
        assert row.ev_head == res.ev_head[v, g].item() and row.mse == res.mse[v, g].item()
        assert row.p_value == res.p_value[v, g].item() and row.p_adj == res.p_adj[v, g].item()
    ht = res.head_table()
    assert list(ht.columns) == ["layer", "head", "group", "n_cells", "ev_head", "mse",
                                "p_value", "p_adj", "significant"]
    assert len(ht) == 6
    for row in ht.itertuples():
        v, g = row.head, res.group_names.index(row.group)
        assert row.p_adj == res.p_adj[v, g].item()
        assert row.significant == (res.p_adj[v, g].item() <= 0.05)
    assert ht["significant"].sum() == 3


def test_result_top_genes_and_errors():
    res = make_result()
    assert res.top_genes("A", 2) == ["g1", "g2"]
    assert res.top_genes("A", 10) == ["g1", "g2", "g0"]  # NaN gene left out
    assert res.top_genes("B") == ["g2", "g0", "g1", "g3"]  # tie keeps gene order
    no_full = make_result(full=False)
    best = no_full.ev_gene[:, 1].max(0).values
    assert no_full.top_genes("B", 4) == [no_full.gene_names[i]
                                         for i in torch.argsort(-best, stable=True).tolist()]
    with pytest.raises(ValueError, match="skipped"):
        res.top_genes("C")
    with pytest.raises(ValueError, match="not a group"):
        res.top_genes("Z")
    with pytest.raises(ValueError, match="shape"):
        HeadAblationResult(**{**res.__dict__, "ev_head": torch.zeros(2, 3)})
