"""Gene attributions per class: against Captum called directly, brute-force tables, AnnData.

The shipped PBMC classifier on the first cells of pbmc68k_reduced (``.raw``,
log-normalized), and tiny models for properties.
"""

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch
from captum.attr import DeepLift, InputXGradient, IntegratedGradients
from torch import nn

from captum_genomics.sc.gene_attributions import (
    class_gene_attributions,
    integration_parameters,
)
from captum_genomics.stats.attribution_tables import (
    FULL_COLUMNS,
    SCVI_COLUMNS,
    attribution_table,
    bootstrap_mean_ci,
    per_class_tables,
    scvi_table,
)

sc = pytest.importorskip("scanpy")

N_CELLS = 48


@pytest.fixture(scope="module")
def pbmc():
    from captum_genomics.zoo.pbmc import load_pbmc_classifier, load_pbmc_metadata

    adata = sc.datasets.pbmc68k_reduced()
    model = load_pbmc_classifier()
    names = list(load_pbmc_metadata()["label_names"])
    x = torch.tensor(adata.raw.X.toarray() if hasattr(adata.raw.X, "toarray")
                     else np.asarray(adata.raw.X), dtype=torch.float32)
    labels = adata.obs["bulk_labels"].astype(str).to_numpy()
    codes = np.array([names.index(v) for v in labels])
    return adata, model, names, x[:N_CELLS], codes[:N_CELLS]


def _smooth_model(g=12, c=4):
    torch.manual_seed(3)
    return nn.Sequential(nn.Linear(g, 16), nn.Softplus(), nn.Linear(16, c)).eval()


# ------------------------------------------------------------------ attributions vs Captum

def test_predicted_equals_captum(pbmc):
    _, model, names, x, codes = pbmc
    x0 = x.clone()
    res = class_gene_attributions(model, x, "predicted", codes, class_names=names)
    assert torch.equal(x, x0)
    pred = model(x).argmax(1)
    assert np.array_equal(res.predicted, pred.numpy()) and np.array_equal(res.targets,
                                                                          pred.numpy())
    ref, delta = IntegratedGradients(model).attribute(x, target=pred, n_steps=50,
                                                      return_convergence_delta=True)
    assert res.attributions.shape == (N_CELLS, 765)
    assert np.abs(res.attributions - ref.numpy()).max() <= 1e-6
    assert np.abs(res.convergence_delta - delta.numpy()).max() <= 1e-6
    assert res.params["ig_path"] == "captum" and res.params["n_steps"] == 50


def test_label_target_is_per_class_captum(pbmc):
    _, model, names, x, codes = pbmc
    res = class_gene_attributions(model, x, "label", codes, class_names=names)
    ig = IntegratedGradients(model)
    for c in np.unique(codes):
        rows = np.flatnonzero(codes == c)
        ref = ig.attribute(x[rows], target=int(c), n_steps=50).numpy()
        assert np.abs(res.attributions[rows] - ref).max() <= 1e-6
    # string labels through class_names
    res2 = class_gene_attributions(model, x, "label", np.asarray(names)[codes],
                                   class_names=names)
    assert np.array_equal(res2.attributions, res.attributions)


@pytest.mark.parametrize("input_layer", ["auto", None])
def test_all_equals_c_separate_calls(pbmc, input_layer):
    _, model, names, x, _ = pbmc
    x = x[:24]
    hooks = (len(model.fc1._forward_hooks), len(model.fc1._forward_pre_hooks))
    res = class_gene_attributions(model, x, "all", class_names=names, input_layer=input_layer)
    assert (len(model.fc1._forward_hooks), len(model.fc1._forward_pre_hooks)) == hooks
    assert res.attributions.shape == (24, 10, 765)
    assert res.params["ig_path"] == ("linear-input" if input_layer == "auto" else "batched")
    ig = IntegratedGradients(model)
    for c in range(10):
        ref, delta = ig.attribute(x, target=c, n_steps=50, return_convergence_delta=True)
        assert np.abs(res.attributions[:, c] - ref.numpy()).max() <= 1e-6
        assert np.abs(res.convergence_delta[:, c] - delta.numpy()).max() <= 1e-5


def test_all_with_explicit_and_wrong_input_layer():
    model = _smooth_model()
    x = torch.rand(6, 12)
    res = class_gene_attributions(model, x, "all", input_layer=model[0])
    assert res.params["ig_path"] == "linear-input"

    class Skip(nn.Module):  # the inputs also reach the output directly
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(12, 4)

        def forward(self, x):
            return self.fc(x) + x[:, :4] ** 2

    skip = Skip().eval()
    auto = class_gene_attributions(skip, x, "all")
    assert auto.params["ig_path"] == "batched"  # the check rejected the shortcut
    ig = IntegratedGradients(skip)
    for c in range(4):
        assert np.abs(auto.attributions[:, c] - ig.attribute(x, target=c).numpy()).max() <= 1e-6
    with pytest.raises(ValueError, match="input_layer"):
        class_gene_attributions(skip, x, "all", input_layer=skip.fc)


def test_completeness_at_256_steps(pbmc):
    model = _smooth_model()
    x = torch.rand(10, 12) * 3
    res = class_gene_attributions(model, x, "all", n_steps=256)
    with torch.no_grad():
        gap = (model(x) - model(torch.zeros_like(x))).double().numpy()
    assert np.abs(res.convergence_delta).max() <= 1e-3
    assert np.allclose(res.convergence_delta, res.attributions.astype(np.float64).sum(-1) - gap,
                       atol=1e-5)
    # ReLU classifier (kinks along the path): within 1e-3 of the output difference
    _, pmodel, names, px, _ = pbmc
    r = class_gene_attributions(pmodel, px[:16], "predicted", n_steps=256)
    with torch.no_grad():
        out = (pmodel(px[:16]) - pmodel(torch.zeros_like(px[:16]))).numpy()
    diff = np.abs(out[np.arange(16), r.targets])
    assert (np.abs(r.convergence_delta) <= 1e-3 * diff).all()


def test_batch_size_does_not_matter(pbmc):
    _, model, names, x, _ = pbmc
    a = class_gene_attributions(model, x[:20], "all", batch_size=7)
    b = class_gene_attributions(model, x[:20], "all", batch_size=64)
    c = class_gene_attributions(model, x[:20], "all", batch_size=7)
    assert np.array_equal(a.attributions, c.attributions)
    assert np.abs(a.attributions - b.attributions).max() <= 1e-6
    p1 = class_gene_attributions(model, x[:20], "predicted", batch_size=3)
    p2 = class_gene_attributions(model, x[:20], "predicted", batch_size=20)
    assert np.abs(p1.attributions - p2.attributions).max() <= 1e-6


def test_baselines(pbmc):
    _, model, _, x, _ = pbmc
    x = x[:12]
    ig = IntegratedGradients(model)
    pred = model(x).argmax(1)
    mean = class_gene_attributions(model, x, "predicted", baseline="mean")
    ref = ig.attribute(x, baselines=x.double().mean(0, keepdim=True).float().expand_as(x),
                       target=pred, n_steps=50)
    assert np.abs(mean.attributions - ref.numpy()).max() <= 1e-6
    given = class_gene_attributions(model, x, "predicted", baseline=np.full((1, 765), 0.5))
    ref = ig.attribute(x, baselines=torch.full_like(x, 0.5), target=pred, n_steps=50)
    assert np.abs(given.attributions - ref.numpy()).max() <= 1e-6
    s1 = class_gene_attributions(model, x, "predicted", baseline="shuffle", random_state=1)
    s2 = class_gene_attributions(model, x, "predicted", baseline="shuffle", random_state=1)
    s3 = class_gene_attributions(model, x, "predicted", baseline="shuffle", random_state=2)
    assert np.array_equal(s1.attributions, s2.attributions)
    assert not np.array_equal(s1.attributions, s3.attributions)
    shuffled = torch.tensor(np.random.default_rng(1).permuted(x.numpy(), axis=0))
    assert all(sorted(shuffled[:, j].tolist()) == sorted(x[:, j].tolist()) for j in range(765))
    ref = ig.attribute(x, baselines=shuffled, target=pred, n_steps=50)
    assert np.abs(s1.attributions - ref.numpy()).max() <= 1e-6


def test_other_captum_methods(pbmc):
    _, model, names, x, _ = pbmc
    x = x[:10]
    pred = model(x).argmax(1)
    dl = DeepLift(model)
    res = class_gene_attributions(dl, x, "predicted")
    assert np.abs(res.attributions - dl.attribute(x, target=pred).detach().numpy()).max() <= 1e-6
    assert res.convergence_delta is not None and res.params["method"] == "DeepLift"
    allc = class_gene_attributions(dl, x, "all", baseline="mean")
    base = x.double().mean(0, keepdim=True).float().expand_as(x)
    for c in range(10):
        ref = dl.attribute(x, baselines=base, target=c).detach().numpy()
        assert np.abs(allc.attributions[:, c] - ref).max() <= 1e-6
    ixg = class_gene_attributions(InputXGradient(model), x, "all")
    for c in (0, 9):
        assert np.abs(ixg.attributions[:, c]
                      - InputXGradient(model).attribute(x, target=c).detach().numpy()).max() <= 1e-6
    with pytest.raises(ValueError, match="baseline"):
        class_gene_attributions(InputXGradient(model), x, "all", baseline="mean")


def test_fastshap_targets_all():
    from captum_genomics import FastSHAP

    model = _smooth_model(g=6, c=3)
    xtr, xva = torch.rand(32, 6), torch.rand(8, 6)
    fs = FastSHAP.fit(model, xtr, xva, random_state=0,
                      train_kwargs={"max_epochs": 1, "n_samples": 2})
    x = torch.rand(5, 6)
    res = class_gene_attributions(fs, x, "all")
    assert res.attributions.shape == (5, 3, 6)
    for c in range(3):
        assert np.abs(res.attributions[:, c] - fs.attribute(x, target=c).numpy()).max() <= 1e-6
    one = class_gene_attributions(fs, x, "predicted")
    assert np.abs(one.attributions - fs.attribute(
        x, target=model(x).argmax(1)).numpy()).max() <= 1e-6


def test_model_and_inputs_unchanged_and_no_grad_mode(pbmc):
    _, model, _, x, _ = pbmc
    state = {k: v.clone() for k, v in model.state_dict().items()}
    flags = [p.requires_grad for p in model.parameters()]
    with torch.no_grad():
        res = class_gene_attributions(model, x[:5], "all")
    with torch.inference_mode():
        res2 = class_gene_attributions(model, x[:5], "all", input_layer=None)
    assert np.abs(res.attributions - res2.attributions).max() <= 1e-6
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())
    assert [p.requires_grad for p in model.parameters()] == flags and not model.training


# ------------------------------------------------------------------ tables

@pytest.fixture
def attr_problem():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(40, 6)) + 0.2
    labels = rng.integers(0, 3, size=40)
    labels[0] = 3
    return a, labels


def test_full_table_against_brute_force(attr_problem):
    a, labels = attr_problem
    names, genes = ["A", "B", "C", "D"], [f"g{j}" for j in range(6)]
    t = attribution_table(a, labels, genes, names, full=True, n_bootstrap=200, random_state=7)
    assert list(t.columns) == FULL_COLUMNS
    for k, name in enumerate(names):
        rows = a[labels == k]
        sub = t[t["class"] == name]
        order = sorted(range(6), key=lambda j: (-rows[:, j].mean(), j))
        assert list(sub["gene"]) == [genes[j] for j in order]
        assert list(sub["rank"]) == list(range(1, 7))
        for _, r in sub.iterrows():
            v = rows[:, genes.index(r["gene"])]
            n = len(v)
            assert r["n"] == n
            assert math.isclose(r["mean"], sum(v) / n, rel_tol=1e-12, abs_tol=1e-12)
            assert math.isclose(r["mean_abs"], sum(abs(u) for u in v) / n, rel_tol=1e-12)
            assert r["frac_positive"] == sum(u > 0 for u in v) / n
            if n == 1:
                assert np.isnan(r["std"]) and np.isnan(r["boot_low"])
                continue
            s = math.sqrt(sum((u - v.mean()) ** 2 for u in v) / (n - 1))
            assert math.isclose(r["std"], s, rel_tol=1e-10)
            assert math.isclose(r["sem"], s / math.sqrt(n), rel_tol=1e-10)
        if len(rows) > 1:  # the bootstrap against a plain loop with the same generator
            rng = np.random.default_rng([7, k])
            means = np.array([rows[rng.integers(0, len(rows), size=len(rows))].mean(0)
                              for _ in range(200)])
            lo, hi = np.quantile(means, [0.025, 0.975], axis=0)
            got = sub.set_index("gene").loc[genes]
            assert np.allclose(got["boot_low"], lo, rtol=0, atol=1e-12)
            assert np.allclose(got["boot_high"], hi, rtol=0, atol=1e-12)
    # the classic columns are unchanged by full=True
    classic = attribution_table(a, labels, genes, names)
    assert np.allclose(classic[["mean", "std", "ci_low"]].to_numpy(float),
                       t[["mean", "std", "ci_low"]].to_numpy(float), equal_nan=True)


def test_bootstrap_chunks_and_determinism():
    rows = np.random.default_rng(1).normal(size=(30, 4))
    a = bootstrap_mean_ci(rows, 100, random_state=3)
    b = bootstrap_mean_ci(rows, 100, random_state=3, chunk_cells=30 * 7)
    assert np.allclose(a[0], b[0], atol=1e-12) and np.allclose(a[1], b[1], atol=1e-12)
    assert (a[0] < rows.mean(0)).all() and (rows.mean(0) < a[1]).all()


def test_all_classes_table(attr_problem):
    rng = np.random.default_rng(2)
    a3 = rng.normal(size=(40, 3, 5))
    labels = rng.integers(0, 3, size=40)
    t = attribution_table(a3, None, label_names=["x", "y", "z"])
    for c, name in enumerate("xyz"):
        sub = t[t["class"] == name].set_index("gene")
        assert np.allclose(sub.loc[[f"gene{j}" for j in range(5)], "mean"], a3[:, c].mean(0))
        assert (sub["n"] == 40).all()
    t2 = attribution_table(a3, labels, label_names=["x", "y", "z"], full=True, n_bootstrap=20)
    for c, name in enumerate("xyz"):
        sub = t2[t2["class"] == name].set_index("gene")
        rows = a3[labels == c, c]
        assert np.allclose(sub.loc[[f"gene{j}" for j in range(5)], "mean"], rows.mean(0))
        assert np.allclose(sub.loc[[f"gene{j}" for j in range(5)], "std"], rows.std(0, ddof=1))
    names = np.array(["x", "y", "z"])[labels]
    t3 = attribution_table(a3, names, label_names=["x", "y", "z"])
    assert np.allclose(t3["mean"], attribution_table(a3, labels, label_names=list("xyz"))["mean"])
    with pytest.raises(ValueError, match="label_names"):
        attribution_table(a3, None, label_names=["x", "y"])
    with pytest.raises(ValueError, match="labels"):
        attribution_table(a3, np.full(40, 5))


def test_scvi_table_statistics():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(25, 8)).astype(np.float32)
    genes = [f"g{j}" for j in range(8)]
    t = scvi_table(a, genes)
    assert list(t.columns) == SCVI_COLUMNS
    assert t["attribution_mean"].dtype == np.float32
    assert (np.diff(t["attribution_mean"].to_numpy()) <= 0).all()
    for _, r in t.iterrows():
        j = genes.index(r["feature"])
        assert r["feature_idx"] % 8 == j  # scvi-tools' argsort()[::-1] - 1
        assert r["attribution_mean"] == a.mean(axis=0)[j]
        assert r["attribution_std"] == a.std(axis=0)[j]  # ddof 0
        assert r["cells"] == 25 and r["modality"] == "None"
    labels = rng.integers(0, 2, size=25)
    tt = per_class_tables(attribution_table(a, labels, genes, ["p", "q"],
                                            scvi_compatible=True))
    pd.testing.assert_frame_equal(tt["q"], scvi_table(a[labels == 1], genes))


def test_result_tables_group_by(pbmc):
    _, model, names, x, codes = pbmc
    res = class_gene_attributions(model, x[:30], "all", codes[:30], class_names=names)
    t = res.to_frame(n_bootstrap=20)  # labels given: each class over its own cells
    for name, sub in t.groupby("class"):
        c = names.index(name)
        assert sub["n"].iloc[0] == (codes[:30] == c).sum()
        rows = res.attributions[codes[:30] == c, c]
        got = sub.set_index("gene").loc[res.genes[:5], "mean"]
        assert np.allclose(got, rows.astype(np.float64).mean(0)[:5])
    t_all = res.to_frame(group_by="none", full=False)
    assert set(t_all["n"]) == {30} and t_all["class"].nunique() == 10
    with pytest.raises(ValueError, match="group_by"):
        res.to_frame(group_by="target")


# ------------------------------------------------------------------ AnnData

def test_anndata_keys_and_overwrite(pbmc, tmp_path):
    import anndata

    from captum_genomics.sc.anndata_results import read_gene_attribution_table

    adata, model, names, _, _ = pbmc
    ad = adata.raw.to_adata()[:N_CELLS].copy()
    res = class_gene_attributions(model, ad, "predicted", "bulk_labels", class_names=names)
    assert res.cells == list(ad.obs_names) and res.params["matrix"] == "X"
    table = res.to_frame(n_bootstrap=20)
    before = set(ad.varm.keys()) | set(ad.layers.keys()) | set(ad.obs.columns)
    copy = res.to_anndata(ad, table=table, copy=True)
    assert set(ad.varm.keys()) | set(ad.layers.keys()) | set(ad.obs.columns) == before
    assert copy.varm["gene_attributions"].shape == (765, 10)
    assert np.array_equal(copy.layers["gene_attributions"], res.attributions)
    assert list(copy.obs["gene_attributions_target"]) == list(np.asarray(names)[res.targets])
    assert list(copy.uns["gene_attributions"]["classes"]) == names
    res.to_anndata(ad, table=table)
    with pytest.raises(ValueError, match=r"`key`='gene_attributions'.*overwrite=True"):
        res.to_anndata(ad, table=table)
    allres = class_gene_attributions(model, ad, "all", "bulk_labels", class_names=names)
    allres.to_anndata(ad, overwrite=True, table=allres.to_frame(n_bootstrap=20))
    assert "gene_attributions" not in ad.layers  # the earlier run's per-cell keys are gone
    assert "gene_attributions_target" not in ad.obs.columns
    assert ad.obsm["gene_attributions"].shape == (N_CELLS, 10, 765)
    assert ad.obsm["gene_attributions_delta"].shape == (N_CELLS, 10)
    path = tmp_path / "r.h5ad"
    ad.write_h5ad(path)
    back = anndata.read_h5ad(path)
    t2 = read_gene_attribution_table(back)
    t1 = allres.to_frame(n_bootstrap=20)
    merged = t1.merge(t2, on=["class", "gene"], suffixes=("", "_r"))
    assert len(merged) == len(t1)
    for col in ("mean", "boot_low", "frac_positive", "rank"):
        assert np.allclose(merged[col], merged[col + "_r"], equal_nan=True)
    with pytest.raises(ValueError, match="adata"):
        res.to_anndata(adata[:, :100].copy())
    with pytest.raises(TypeError, match="adata"):
        res.to_anndata(np.zeros((3, 3)))


# ------------------------------------------------------------------ bad input

def test_bad_inputs(pbmc):
    _, model, names, x, codes = pbmc
    x = x[:8]
    cases = [
        (dict(labels=codes[:5], target="label"), ValueError, "labels"),
        (dict(labels=np.array([0.0, np.nan] * 4), target="label"), ValueError, "labels"),
        (dict(labels=["B cell"] * 8, target="label", class_names=names), ValueError, "labels"),
        (dict(labels=np.array(["x"] * 8), target="label"), ValueError, "class_names"),
        (dict(labels=np.full(8, 12), target="label"), ValueError, "labels"),
        (dict(target="true"), ValueError, "target"),
        (dict(target="label"), ValueError, "labels"),
        (dict(target=10), ValueError, "target"),
        (dict(class_names=names[:3]), ValueError, "class_names"),
        (dict(baseline="median"), ValueError, "baseline"),
        (dict(baseline=np.zeros((3, 765))), ValueError, "baseline"),
        (dict(n_steps=0), ValueError, "n_steps"),
        (dict(batch_size=0), ValueError, "batch_size"),
        (dict(random_state=1.5, baseline="shuffle"), TypeError, "random_state"),
    ]
    state = {k: v.clone() for k, v in model.state_dict().items()}
    x0 = x.clone()
    cases.append((dict(target="all", attribute_kwargs={"method": "riemann_left"}), ValueError,
                  "attribute_kwargs"))
    for kwargs, exc, word in cases:
        with pytest.raises(exc, match=word):
            class_gene_attributions(model, x, **kwargs)
    assert torch.equal(x, x0) and not model.training
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())
    bad = x.clone()
    bad[2, 5] = float("nan")
    with pytest.raises(ValueError, match="inputs"):
        class_gene_attributions(model, bad)
    with pytest.raises(ValueError, match="inputs"):
        class_gene_attributions(model, x[0])
    with pytest.raises(TypeError, match="method"):
        class_gene_attributions(42, x)
    model.train()
    try:
        with pytest.raises(ValueError, match="eval"):
            class_gene_attributions(model, x)
    finally:
        model.eval()
    with pytest.raises(ValueError, match="classes"):  # a class with no cells
        attribution_table(np.zeros((4, 3)), [0, 0, 1, 1], label_names=["a", "b", "c"],
                          classes=["c"])
    with pytest.raises(ValueError, match="labels"):
        attribution_table(np.zeros((4, 3)), np.array([0, np.nan, 1, 1]))
    with pytest.raises(ValueError, match="n_bootstrap"):
        attribution_table(np.zeros((4, 3)), [0, 0, 1, 1], full=True, n_bootstrap=0)


# ------------------------------------------------------------------ plots and the job

def test_plots(pbmc):
    pytest.importorskip("matplotlib")
    from matplotlib.figure import Figure

    from captum_genomics.sc.plot import (
        plot_class_top_genes,
        plot_gene_class_heatmap,
        plot_positive_contributions,
        plot_top_genes_signed,
    )

    _, model, names, x, codes = pbmc
    res = class_gene_attributions(model, x[:30], "predicted", codes[:30], class_names=names)
    t = res.to_frame(n_bootstrap=20)
    assert isinstance(plot_class_top_genes(t, k=3), Figure)
    cls = t["class"].iloc[0]
    ax = plot_top_genes_signed(t, cls, k=4)
    assert len(ax.patches) == 8
    assert isinstance(plot_positive_contributions(t, k=6).figure, Figure)
    assert isinstance(plot_gene_class_heatmap(t, k=2, value="frac_positive").figure, Figure)
    for kind in ("top", "stacked", "heatmap"):
        assert isinstance(res.plot(kind, table=t), Figure)
    with pytest.raises(ValueError, match="ci"):
        plot_top_genes_signed(attribution_table(res.attributions, res.targets), "0", ci="boot")
    with pytest.raises(ValueError, match="classes"):
        plot_class_top_genes(t, classes=["nope"])


def test_genes_job(pbmc, tmp_path):
    pytest.importorskip("matplotlib")
    from captum_genomics.workflows.genes_pbmc import run_genes_job

    adata, _, _, _, _ = pbmc
    small = adata[:40].copy()
    out = tmp_path / "job"
    s = run_genes_job(out, adata=small, labels_key="bulk_labels", use_raw=True,
                      class_names=json.loads(json.dumps(
                          __import__("captum_genomics.zoo.pbmc", fromlist=["x"])
                          .load_pbmc_metadata()["label_names"])),
                      n_bootstrap=20, top_k=3, scvi_compatible=True, verbose=False)
    for f in ("gene_table.csv", "top_genes.csv", "scvi_table.csv", "gene_attributions.h5ad",
              "top_genes.png", "positive_contributions.png", "heatmap.png", "summary.json"):
        assert (out / f).is_file(), f
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_cells"] == 40 and summary["files"][-1] == "summary.json"
    assert s["misclassified_cells"] == summary["misclassified_cells"]
    with pytest.raises(FileExistsError, match="overwrite"):
        run_genes_job(out, adata=small, labels_key="bulk_labels", use_raw=True, verbose=False)


@pytest.mark.parametrize("method", ["gausslegendre", "riemann_trapezoid", "riemann_left",
                                    "riemann_right", "riemann_middle"])
def test_integration_parameters_are_captums(method):
    from captum.attr._utils.approximation_methods import approximation_parameters

    steps_f, alphas_f = approximation_parameters(method)
    steps, alphas = integration_parameters(method, 17)
    assert steps == steps_f(17) and alphas == alphas_f(17)
    with pytest.raises(ValueError, match="integration_method"):
        integration_parameters("simpson", 17)
