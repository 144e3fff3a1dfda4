"""Per-class gene tables against a brute-force loop."""

import math

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats

from captum_genomics.stats import attribution_table, per_class_tables, top_genes


@pytest.fixture
def problem():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(40, 7))
    labels = rng.integers(0, 3, size=40)
    labels[0] = 3  # class 3 has a single cell
    return a, labels


def test_matches_brute_force(problem):
    a, labels = problem
    names = ["A", "B", "C", "D"]
    genes = [f"g{j}" for j in range(7)]
    t = attribution_table(torch.tensor(a), labels, genes, names)
    assert list(t.columns) == ["class", "gene", "mean", "std", "n", "sem", "ci_low", "ci_high",
                               "rank"]
    assert len(t) == 4 * 7
    for c, name in enumerate(names):
        rows = [i for i in range(len(labels)) if labels[i] == c]
        sub = t[t["class"] == name]
        assert list(sub["rank"]) == list(range(1, 8))
        assert (np.diff(sub["mean"].to_numpy()) <= 0).all()
        for _, r in sub.iterrows():
            j = genes.index(r["gene"])
            vals = [a[i, j] for i in rows]
            n = len(vals)
            m = sum(vals) / n
            assert r["n"] == n and math.isclose(r["mean"], m, rel_tol=1e-12, abs_tol=1e-12)
            if n == 1:
                assert np.isnan(r["std"]) and np.isnan(r["ci_low"])
                continue
            s = math.sqrt(sum((v - m) ** 2 for v in vals) / (n - 1))
            lo, hi = stats.t.interval(0.95, n - 1, loc=m, scale=s / math.sqrt(n))
            assert math.isclose(r["std"], s, rel_tol=1e-10)
            assert math.isclose(r["ci_low"], lo, rel_tol=1e-10)
            assert math.isclose(r["ci_high"], hi, rel_tol=1e-10)


def test_string_labels_and_default_genes(problem):
    a, labels = problem
    names = np.array(["x", "y", "z", "w"])[labels]
    t = attribution_table(a, names)
    assert sorted(t["class"].unique()) == ["w", "x", "y", "z"]
    assert set(t["gene"]) == {f"gene{j}" for j in range(7)}


def test_top_genes_and_split(problem):
    a, labels = problem
    t = attribution_table(a, labels, label_names=["A", "B", "C", "D"])
    pos, neg = top_genes(t, 3), top_genes(t, 2, "negative")
    tables = per_class_tables(t)
    assert list(tables) == ["A", "B", "C", "D"]
    for name, sub in tables.items():
        means = sub["mean"].to_numpy()
        assert np.allclose(pos[pos["class"] == name]["mean"], means[:3])
        assert np.allclose(neg[neg["class"] == name]["mean"], means[::-1][:2])
    with pytest.raises(ValueError, match="direction"):
        top_genes(t, 3, "up")


def test_errors():
    with pytest.raises(ValueError, match="one entry per row"):
        attribution_table(np.zeros((3, 2)), [0, 1])
    with pytest.raises(ValueError, match="NaN"):
        attribution_table(np.array([[np.nan, 0.0]]), [0])
    with pytest.raises(ValueError, match="genes"):
        attribution_table(np.zeros((2, 2)), [0, 1], genes=["a"])
    with pytest.raises(ValueError, match="label_names"):
        attribution_table(np.zeros((2, 2)), [0, 5], label_names=["a", "b"])
    assert isinstance(attribution_table(np.zeros((2, 2)), [0, 0]), pd.DataFrame)
