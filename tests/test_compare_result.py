"""ComparisonResult: summary and agreement values, save(), the HTML report and the figures."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from itertools import combinations

import numpy as np
import pandas as pd
import pytest
import torch

pytest.importorskip("matplotlib")
pytest.importorskip("logomaker")

from captum_genomics.comparison.plots import (  # noqa: E402
    plot_agreement_heatmap,
    plot_auroc_distributions,
    plot_example_logos,
    plot_randomization,
    plot_speed_accuracy,
)
from captum_genomics.comparison.report import figure_png, render_html  # noqa: E402
from captum_genomics.comparison.result import SUMMARY_COLUMNS, ComparisonResult  # noqa: E402

METHODS = ["saliency", "<b>x</b>", "ism"]
N, L = 6, 30


@dataclass(frozen=True)
class _Truth:
    mask: torch.Tensor
    pwm: torch.Tensor


def _build(methods=METHODS, per_example=("convergence_delta", "auroc", "aupr", "pwm_cosine"),
           randomization=True, flagged=("ism",), metadata=None, seed=0):
    rng = np.random.default_rng(seed)
    inputs = torch.zeros(N, 4, L)
    inputs[torch.arange(N)[:, None], torch.as_tensor(rng.integers(0, 4, (N, L))),
           torch.arange(L)[None, :]] = 1.0
    attributions = {m: torch.as_tensor(rng.normal(size=(N, 4, L)), dtype=torch.float32)
                    for m in methods}
    mask = torch.zeros(N, L, dtype=torch.bool)
    mask[:, 10:18] = True
    pwm = torch.zeros(N, 4, L)
    pwm[:, :, 10:18] = torch.as_tensor(rng.dirichlet(np.ones(4), size=(N, 8)).transpose(0, 2, 1)
                                       - 0.25, dtype=torch.float32)
    rows = []
    for m in methods:
        seconds = float(rng.uniform(0.1, 2.0))
        rows += [(m, pd.NA, "seconds", seconds), (m, pd.NA, "examples_per_s", N / seconds)]
        for metric in per_example:
            rows += [(m, e, metric, float(rng.uniform())) for e in range(N)]
    frame = pd.DataFrame(rows, columns=["method", "example", "metric", "value"])
    frame["example"] = frame["example"].astype("Int64")
    agreement = pd.DataFrame(
        [(a, b, e, metric, float(rng.uniform(-1, 1)))
         for a, b in combinations(methods, 2) for metric in ("spearman", "cosine")
         for e in range(N)],
        columns=["method_a", "method_b", "example", "metric", "value"])
    rand = None
    if randomization:
        rand = pd.DataFrame(
            [(m, step, "" if step == 0 else f"layer{step}", e,
              1.0 if step == 0 else float(rng.uniform(-1, 1)))
             for m in methods for step in range(3) for e in range(N)],
            columns=["method", "step", "layer", "example", "spearman"])
    meta = {"model": "toy<cnn>", "n_examples": N, "length": L, "cpu": "test cpu",
            "torch": torch.__version__, "threads": 1,
            "notes": ["method 'gc' failed: <oops> & more"]}
    if metadata is not None:
        meta = metadata
    return ComparisonResult(frame=frame, agreement=agreement, randomization=rand,
                            attributions=attributions, inputs=inputs,
                            ground_truth=_Truth(mask, pwm), methods=list(methods),
                            metadata=meta, flagged=list(flagged))


@pytest.fixture(scope="module")
def result():
    return _build()


# -- tables
def test_summary_matches_pandas(result):
    summary = result.summary()
    assert list(summary.index) == METHODS and summary.index.name == "method"
    assert list(summary.columns) == list(SUMMARY_COLUMNS)
    f = result.frame
    for m in METHODS:
        for col, metric in [("convergence_delta", "convergence_delta"), ("auroc", "auroc"),
                            ("aupr", "aupr"), ("pwm_cosine", "pwm_cosine")]:
            vals = sorted(f[(f.method == m) & (f.metric == metric)].value.tolist())
            assert summary.loc[m, col] == pytest.approx((vals[2] + vals[3]) / 2)  # N = 6
        aurocs = f[(f.method == m) & (f.metric == "auroc")].value.tolist()
        assert summary.loc[m, "auroc_mean"] == pytest.approx(sum(aurocs) / len(aurocs))
        for metric in ("seconds", "examples_per_s"):
            (v,) = f[(f.method == m) & (f.metric == metric)].value.tolist()
            assert summary.loc[m, metric] == v
        r = result.randomization
        last = sorted(r[(r.method == m) & (r.step == 2)].spearman.tolist())
        assert summary.loc[m, "randomization_spearman"] == pytest.approx((last[2] + last[3]) / 2)
    assert np.isnan(summary["off_simplex_angle"]).all()
    assert summary["flagged"].dtype == bool
    assert summary["flagged"].tolist() == [False, False, True]


def test_summary_columns_stable_when_metrics_missing():
    bare = _build(per_example=(), randomization=False, flagged=())
    summary = bare.summary()
    assert list(summary.columns) == list(SUMMARY_COLUMNS)
    assert list(summary.index) == METHODS
    assert summary.drop(columns=["seconds", "examples_per_s", "flagged"]).isna().all().all()
    assert not summary["flagged"].any()
    assert summary["seconds"].notna().all()


def test_agreement_matrix(result):
    a = result.agreement
    for metric in ("spearman", "cosine"):
        mat = result.agreement_matrix(metric)
        assert list(mat.index) == METHODS and list(mat.columns) == METHODS
        np.testing.assert_allclose(mat.to_numpy(), mat.to_numpy().T)
        np.testing.assert_array_equal(np.diag(mat.to_numpy()), 1.0)
        for x, y in combinations(METHODS, 2):
            vals = sorted(a[(a.method_a == x) & (a.method_b == y) & (a.metric == metric)]
                          .value.tolist())
            assert mat.loc[x, y] == pytest.approx((vals[2] + vals[3]) / 2)
            assert mat.loc[y, x] == mat.loc[x, y]
    with pytest.raises(ValueError, match="metric"):
        result.agreement_matrix("kendall")


def test_bad_tables_named():
    good = _build()
    with pytest.raises(ValueError, match=r"frame.*missing \['value'\]"):
        ComparisonResult(frame=good.frame.drop(columns="value"), agreement=good.agreement,
                         randomization=None, attributions=good.attributions,
                         inputs=good.inputs, ground_truth=None, methods=METHODS)
    with pytest.raises(ValueError, match="randomization.*spearman"):
        ComparisonResult(frame=good.frame, agreement=good.agreement,
                         randomization=good.randomization.drop(columns="spearman"),
                         attributions=good.attributions, inputs=good.inputs,
                         ground_truth=None, methods=METHODS)
    with pytest.raises(ValueError, match="agreement.*method_b"):
        ComparisonResult(frame=good.frame, agreement=good.agreement.drop(columns="method_b"),
                         randomization=None, attributions=good.attributions,
                         inputs=good.inputs, ground_truth=None, methods=METHODS)
    with pytest.raises(ValueError, match="not in `methods`"):
        ComparisonResult(frame=good.frame, agreement=good.agreement, randomization=None,
                         attributions=good.attributions, inputs=good.inputs,
                         ground_truth=None, methods=METHODS[:2])


def test_to_frame_is_a_copy(result):
    frame = result.to_frame()
    assert list(frame.columns) == ["method", "example", "metric", "value"]
    assert str(frame["example"].dtype) == "Int64"
    frame.loc[:, "value"] = -1.0
    assert (result.frame["value"] != -1.0).any()


@pytest.fixture(scope="module")
def saved(result, tmp_path_factory):
    folder = tmp_path_factory.mktemp("compare") / "out" / "study"
    written = result.save(folder)
    return folder, written, (folder / "report.html").read_text(encoding="utf-8")


# -- files
def test_save_round_trip_and_overwrite(result, saved):
    folder, written, _ = saved
    names = sorted(p.name for p in written)
    assert names == sorted(["comparison.csv", "summary.csv", "agreement.csv", "randomization.csv",
                            "speed_accuracy.png", "auroc.png", "agreement.png", "logos.png",
                            "randomization.png", "report.html"])
    assert sorted(os.listdir(folder)) == names  # no temporary files left
    back = pd.read_csv(folder / "comparison.csv", dtype={"example": "Int64"},
                       keep_default_na=False, na_values=[""])
    pd.testing.assert_frame_equal(back, result.frame)
    summary = pd.read_csv(folder / "summary.csv", index_col="method", keep_default_na=False,
                          na_values=[""])
    pd.testing.assert_frame_equal(summary, result.summary())
    agreement = pd.read_csv(folder / "agreement.csv")
    pd.testing.assert_frame_equal(agreement, result.agreement)
    before = (folder / "summary.csv").stat().st_mtime_ns
    with pytest.raises(FileExistsError, match="overwrite=True") as err:
        result.save(folder)
    assert "comparison.csv" in str(err.value)
    assert (folder / "summary.csv").stat().st_mtime_ns == before
    again = result.save(folder, overwrite=True, figures=False)
    assert {p.name for p in again} == {"comparison.csv", "summary.csv", "agreement.csv",
                                       "randomization.csv", "report.html"}
    assert sorted(os.listdir(folder)) == names


def test_save_without_randomization(tmp_path):
    bare = _build(randomization=False, flagged=())
    written = bare.save(tmp_path, figures=False)
    assert {p.name for p in written} == {"comparison.csv", "summary.csv", "agreement.csv",
                                         "report.html"}


# -- report
def test_report_self_contained_and_escaped(saved):
    page = saved[2]
    assert not re.search(r"""(src|href)\s*=\s*['"]?\s*(https?:|//)""", page)
    assert "<link" not in page and "<script" not in page
    images = re.findall(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'", page)
    assert len(images) == 5
    assert "<b>x</b>" not in page and "&lt;b&gt;x&lt;/b&gt;" in page
    assert "toy&lt;cnn&gt;" in page
    assert "&lt;oops&gt; &amp; more" in page
    assert "Flagged methods" in page and "ism" in page


def test_report_without_figures_or_flags():
    bare = _build(randomization=False, flagged=(), metadata={})
    page = render_html(bare, figures={})
    assert "No figures." in page and "was not run" in page and "data:image" not in page


# -- figures
def test_speed_plot_one_point_per_method(result):
    fig = plot_speed_accuracy(result)
    (ax,) = fig.axes
    assert sum(len(c.get_offsets()) for c in ax.collections) == len(METHODS)
    assert ax.get_xscale() == "log"
    assert "AUROC" in ax.get_ylabel()
    summary = result.summary()
    points = np.concatenate([c.get_offsets() for c in ax.collections])
    np.testing.assert_allclose(points[:, 0], summary["examples_per_s"])
    np.testing.assert_allclose(points[:, 1], summary["auroc"])


def test_speed_plot_falls_back_to_delta_and_note():
    delta_only = _build(per_example=("convergence_delta",), randomization=False)
    (ax,) = plot_speed_accuracy(delta_only).axes
    assert "delta" in ax.get_ylabel()
    assert sum(len(c.get_offsets()) for c in ax.collections) == len(METHODS)
    (ax,) = plot_speed_accuracy(_build(per_example=(), randomization=False)).axes
    assert not ax.collections and any("No AUROC" in t.get_text() for t in ax.texts)


def test_distribution_plot(result):
    (ax,) = plot_auroc_distributions(result).axes
    assert sum(len(c.get_offsets()) for c in ax.collections) == N * len(METHODS)
    assert [t.get_text() for t in ax.get_xticklabels()] == METHODS


def test_agreement_heatmap(result):
    fig = plot_agreement_heatmap(result, metric="cosine")
    ax = fig.axes[0]
    assert len(fig.axes) == 2  # heatmap + colour bar
    assert len(ax.texts) == len(METHODS) ** 2
    mat = result.agreement_matrix("cosine")
    assert ax.texts[1].get_text() == f"{mat.iloc[0, 1]:.2f}"


def test_example_logos(result):
    fig = plot_example_logos(result, example=2)
    assert len(fig.axes) == len(METHODS) + 1  # + the ground-truth PWM row
    assert fig.axes[0].get_xlim() == (-0.5, L - 0.5)  # short sequence: drawn whole
    fig = plot_example_logos(result, example=0, window=(5, 20))
    assert fig.axes[-1].get_xlim() == (4.5, 19.5)
    with pytest.raises(ValueError, match="example"):
        plot_example_logos(result, example=N)
    with pytest.raises(ValueError, match="window"):
        plot_example_logos(result, window=(10, 5))


def test_randomization_plot(result):
    (ax,) = plot_randomization(result).axes
    assert len(ax.lines) == len(METHODS) + 1  # + the zero line
    labels = [line.get_label() for line in ax.lines[:len(METHODS)]]
    assert labels == ["saliency", "<b>x</b>", "ism (flagged)"]
    bare = _build(randomization=False)
    (ax,) = plot_randomization(bare).axes
    assert any("not run" in t.get_text() for t in ax.texts)


def test_plot_dispatch(result):
    assert len(result.plot("agreement").axes) == 2
    with pytest.raises(ValueError, match="kind"):
        result.plot("violin")


def test_dollar_in_method_name_draws():
    odd = _build(methods=["a$b", "c", "d"], flagged=(), randomization=False)
    for fig in (plot_speed_accuracy(odd), plot_agreement_heatmap(odd)):
        assert figure_png(fig)[:8] == b"\x89PNG\r\n\x1a\n"


def test_attribution_shape_checked():
    good = _build()
    bad = dict(good.attributions, ism=good.attributions["ism"][:, :, :-1])
    with pytest.raises(ValueError, match=r"attributions\['ism'\].*shape"):
        ComparisonResult(frame=good.frame, agreement=good.agreement, randomization=None,
                         attributions=bad, inputs=good.inputs, ground_truth=None,
                         methods=METHODS)
