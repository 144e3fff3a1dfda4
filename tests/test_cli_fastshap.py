"""Smoke runs of ``captum-genomics fastshap``: default PBMC job and a user .h5ad + model."""

import json

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("scanpy")

from captum_genomics.cli import main  # noqa: E402

QUICK = ["--max-epochs", "1", "--n-samples", "4", "--top-k", "3"]


pytestmark = pytest.mark.usefixtures("one_thread")


def test_default_job(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["fastshap", "--out", str(out), "--n-cells", "12", *QUICK]) == 0
    report = capsys.readouterr().out
    assert "efficiency gap" in report and "known marker" in report
    for f in ("gene_table.csv", "top_genes.csv", "attributions.npz", "fastshap.pt",
              "summary.json", "top_genes.png", "stacked_contributions.png"):
        assert (out / f).is_file(), f
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_cells"] == 12 and summary["n_genes"] == 765
    assert summary["objective"] == "permutation" and summary["gene_dropout"] == 0.15
    assert summary["max_abs_efficiency_gap"] < 1e-5
    with np.load(out / "attributions.npz") as z:
        assert z["attributions"].shape == (12, 765) and z["delta"].shape == (12,)
        n_classes = len(set(z["target"].tolist()))
    table = pd.read_csv(out / "gene_table.csv")
    assert len(table) == 765 * n_classes
    top = pd.read_csv(out / "top_genes.csv")
    assert set(top["direction"]) == {"positive", "negative"} and "marker" in top


def test_user_h5ad(tmp_path, capsys):
    import anndata

    from captum_genomics.sc.pbmc import load_pbmc68k

    data = load_pbmc68k()
    keep = np.arange(0, 700, 5)
    adata = anndata.AnnData(X=data.X[keep])
    adata.var_names = data.genes
    adata.obs["celltype"] = np.array(data.label_names)[data.labels[keep]]
    adata.write_h5ad(tmp_path / "cells.h5ad")
    (tmp_path / "usermodel.py").write_text(
        "import torch\n"
        "def build():\n"
        f"    return torch.nn.Sequential(torch.nn.Linear(765, 8), torch.nn.ReLU(),"
        f" torch.nn.Linear(8, {len(set(adata.obs['celltype']))}))\n")
    out = tmp_path / "out"
    assert main(["fastshap", "--h5ad", str(tmp_path / "cells.h5ad"), "--model",
                 str(tmp_path / "usermodel.py") + ":build", "--label-key", "celltype",
                 "--out", str(out), "--no-plot", *QUICK]) == 0
    assert "cells of cells.h5ad" in capsys.readouterr().out
    assert (out / "gene_table.csv").is_file() and not (out / "top_genes.png").exists()


def test_errors(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["fastshap", "--label-key", "x"])
    assert "need --h5ad" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["fastshap", "--h5ad", str(tmp_path / "missing.h5ad"), "--model", "m:f",
              "--label-key", "x"])
    assert "no such file" in capsys.readouterr().err


def test_paper_objective_without_augmentation(tmp_path):
    out = tmp_path / "out"
    assert main(["fastshap", "--out", str(out), "--n-cells", "5", "--objective", "fastshap",
                 "--gene-dropout", "0", "--no-plot", *QUICK]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["objective"] == "fastshap" and summary["gene_dropout"] == 0.0
    assert summary["max_abs_efficiency_gap"] < 1e-5


def test_gene_dropout_out_of_range(capsys):
    with pytest.raises(SystemExit):
        main(["fastshap", "--gene-dropout", "1.5", *QUICK])
    assert "--gene-dropout must be in [0, 1), got 1.5" in capsys.readouterr().err


# --- the user's own split (--split-key), obs_names, marker lines and legend ---------------

_TINY_MODEL = (
    "import torch\n"
    "def build():\n"
    "    torch.manual_seed(0)\n"
    "    return torch.nn.Sequential(torch.nn.Linear(12, 3))\n")


def _tiny_user_data(tmp_path, split_values):
    import anndata

    rng = np.random.default_rng(0)
    n = len(split_values)
    adata = anndata.AnnData(X=rng.gamma(1.0, 1.0, size=(n, 12)).astype(np.float32))
    adata.var_names = [f"g{i}" for i in range(12)]
    adata.obs_names = [f"BC{i:03d}-1" for i in range(n)]
    adata.obs["kind"] = np.array(["alpha", "beta", "gamma"])[np.arange(n) % 3]
    adata.obs["split"] = split_values
    adata.write_h5ad(tmp_path / "tiny.h5ad")
    (tmp_path / "tinymodel.py").write_text(_TINY_MODEL)
    return adata


def _tiny_argv(tmp_path, *extra):
    return ["fastshap", "--h5ad", str(tmp_path / "tiny.h5ad"), "--model",
            str(tmp_path / "tinymodel.py") + ":build", "--label-key", "kind",
            "--out", str(tmp_path / "out"), "--no-plot", "--no-progress", *QUICK, *extra]


def test_split_key_fits_on_train_and_reports_test_only(tmp_path, capsys):
    import torch

    values = np.array(["Train"] * 33 + ["val"] * 9 + ["TEST"] * 15)
    adata = _tiny_user_data(tmp_path, values)
    assert main(_tiny_argv(tmp_path, "--split-key", "split")) == 0
    report = capsys.readouterr().out
    out = tmp_path / "out"
    summary = json.loads((out / "summary.json").read_text())
    test = np.flatnonzero(values == "TEST")
    assert summary["n_cells"] == len(test) == 15
    assert summary["split"] == {"source": "obs", "n_train": 33, "n_validation": 9,
                                "n_test": 15, "validation_carved_from_train": False}
    ns: dict = {}
    exec(_TINY_MODEL, ns)
    with torch.no_grad():
        pred = ns["build"]()(torch.as_tensor(adata.X[test])).argmax(1).numpy()
    y = np.array([["alpha", "beta", "gamma"].index(c) for c in adata.obs["kind"]])[test]
    assert summary["test_accuracy"] == pytest.approx(float((pred == y).mean()))
    with np.load(out / "attributions.npz") as z:
        assert z["attributions"].shape == (15, 12)
        assert list(z["obs_names"]) == list(adata.obs_names[test])
        assert list(z["cells"]) == list(test)  # positions, kept for compatibility
    # user classes have no marker panel: no "[markers in top k: 0/0 in panel]", no legend
    assert "in panel]" not in report and "known marker" not in report
    assert "WARNING" not in report and "15 explained test cells" in report
    assert all(not v["markers"] for v in summary["per_class"].values())


def test_without_split_key_the_report_says_the_split_is_the_jobs(tmp_path, capsys):
    _tiny_user_data(tmp_path, np.array(["train"] * 30))
    assert main(_tiny_argv(tmp_path)) == 0
    report = capsys.readouterr().out
    assert "split made by this job" in report and "may include cells" in report
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["split"]["source"] == "job" and "may include cells" in summary["split"]["note"]


def test_split_key_errors(tmp_path, capsys):
    _tiny_user_data(tmp_path, np.array(["train", "test", "holdout", "?"] * 6))
    with pytest.raises(SystemExit) as exc:
        main(_tiny_argv(tmp_path, "--split-key", "split"))
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--split-key" in err
    assert "'?'" in err and "'holdout'" in err and "(12 cells)" in err
    assert not (tmp_path / "out").exists()
    with pytest.raises(SystemExit) as exc:
        main(_tiny_argv(tmp_path, "--split-key", "nope"))
    assert exc.value.code == 2 and "--split-key 'nope' is not an obs column" in \
        capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["fastshap", "--split-key", "split"])
    assert "need --h5ad" in capsys.readouterr().err


def test_split_from_obs_carves_validation_from_train():
    from captum_genomics.workflows.fastshap_pbmc import split_from_obs

    labels = np.arange(40) % 2
    values = np.array(["training"] * 30 + ["Testing"] * 10)
    split = split_from_obs(values, labels, random_state=0)
    assert split["carved_validation"]
    assert len(split["validation"]) > 0 and not set(split["validation"]) & set(split["train"])
    assert set(split["train"]) | set(split["validation"]) == set(range(30))
    assert list(split["test"]) == list(range(30, 40))
    again = split_from_obs(values, labels, random_state=0)
    assert all(np.array_equal(split[k], again[k]) for k in ("train", "validation", "test"))
    with pytest.raises(ValueError, match="no cell as test"):
        split_from_obs(np.array(["train", "val"] * 5), np.zeros(10))


def test_grid_legend_mentions_markers_only_when_shown():
    from captum_genomics.sc.plot import plot_top_genes_grid
    from captum_genomics.stats import attribution_table

    rng = np.random.default_rng(0)
    table = attribution_table(rng.normal(size=(20, 6)), np.arange(20) % 2,
                              [f"g{i}" for i in range(6)], ["a", "b"])
    for markers in (None, {}, {"a": ["not-a-gene"]}):
        fig = plot_top_genes_grid(table, k=3, markers=markers)
        assert "marker" not in fig.get_supxlabel().lower()
    top_a = table[table["class"] == "a"].sort_values("rank")["gene"].iloc[0]
    fig = plot_top_genes_grid(table, k=3, markers={"a": [top_a]})
    assert "markers in orange" in fig.get_supxlabel()
