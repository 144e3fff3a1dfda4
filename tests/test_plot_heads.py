"""Smoke tests of the head-ablation plots: the artists hold the result's values."""

from __future__ import annotations

import numpy as np
import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")

from captum_genomics.sc.plot_heads import plot_ev_bars, plot_gene_head_heatmap  # noqa: E402
from test_explained_variance import make_result  # noqa: E402


def test_ev_bars_heights_and_stars():
    res = make_result()
    fig = plot_ev_bars(res)
    ax = fig.axes[0]
    bars = ax.patches
    assert len(bars) == 3 * 2  # heads x non-skipped groups
    heights = np.array([b.get_height() for b in bars]).reshape(3, 2)
    np.testing.assert_allclose(heights, res.ev_head[:, :2].numpy())
    # p_adj <= 0.05 for head 0/A, head 1/B, head 2/A
    stars = [t for t in ax.texts if t.get_text() == "*"]
    assert len(stars) == int(res.head_table()["significant"].sum()) == 3
    xs = sorted(round(t.get_position()[0], 6) for t in stars)
    centers = np.array([b.get_x() + b.get_width() / 2 for b in bars]).reshape(3, 2)
    expected = sorted(round(c, 6) for c in (centers[0, 0], centers[1, 1], centers[2, 0]))
    assert xs == expected
    assert [t.get_text() for t in ax.get_xticklabels()] == ["A", "B"]
    with pytest.raises(ValueError, match="`significance`"):
        plot_ev_bars(res, significance="q")


def test_ev_bars_on_given_axes():
    from matplotlib.figure import Figure

    fig = Figure()
    ax = fig.add_subplot()
    assert plot_ev_bars(make_result(full=False), ax=ax) is fig


def test_heatmap_values():
    res = make_result()
    fig = plot_gene_head_heatmap(res, "B", k=3)
    ax = fig.axes[0]
    arr = ax.images[0].get_array()
    genes = res.top_genes("B", 3)
    rows = [res.gene_names.index(g) for g in genes]
    np.testing.assert_array_equal(np.asarray(arr), res.ev_gene[:, 1, rows].numpy().T)
    assert [t.get_text() for t in ax.get_yticklabels()] == genes
    assert [t.get_text() for t in ax.get_xticklabels()] == ["head 0", "head 1", "head 2"]
    lo, hi = ax.images[0].get_clim()
    assert lo == -hi and hi == pytest.approx(np.abs(arr).max())
    with pytest.raises(ValueError, match="skipped"):
        plot_gene_head_heatmap(res, "C")
