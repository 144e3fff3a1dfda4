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
