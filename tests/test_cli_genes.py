"""``captum-genomics genes``: the default PBMC job, a user .h5ad + model, errors.

The written table is checked against ``class_gene_attributions`` +
``attribution_table`` called directly with the same arguments.
"""

import json

import numpy as np
import pandas as pd
import pytest
import torch

pytest.importorskip("scanpy")

from captum_genomics.cli import main  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")

FAST = ["--n-steps", "8", "--n-bootstrap", "50", "--no-plot"]


def _error(argv, capsys):
    with pytest.raises(SystemExit) as info:
        main(argv)
    err = capsys.readouterr().err.strip()
    assert info.value.code == 2 and "\n" not in err and "Traceback" not in err
    return err


def test_default_job_matches_the_direct_call(tmp_path, capsys):
    out = tmp_path / "genes"
    assert main(["genes", "--out", str(out), *FAST]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["files"]) >= {"gene_table.csv", "top_genes.csv",
                                     "gene_attributions.h5ad", "summary.json"}
    table = pd.read_csv(out / "gene_table.csv")

    import scanpy as sc

    from captum_genomics.sc.gene_attributions import class_gene_attributions
    from captum_genomics.zoo.pbmc import load_pbmc_classifier, load_pbmc_metadata

    adata = sc.datasets.pbmc68k_reduced()
    result = class_gene_attributions(
        load_pbmc_classifier(), adata, target="predicted", labels="bulk_labels",
        class_names=list(load_pbmc_metadata()["label_names"]), n_steps=8, use_raw=True,
        random_state=0)
    direct = result.to_frame(group_by="target", n_bootstrap=50, random_state=0)
    merged = table.merge(direct, on=["class", "gene"], suffixes=("", "_direct"))
    assert len(merged) == len(table) == len(direct)
    np.testing.assert_allclose(merged["mean"], merged["mean_direct"], rtol=0, atol=1e-6)

    # a second run into the same folder is refused; --overwrite replaces it
    err = _error(["genes", "--out", str(out), *FAST], capsys)
    assert "--overwrite" in err
    assert main(["genes", "--out", str(out), *FAST, "--overwrite"]) == 0


def test_user_h5ad_needs_a_model_and_options_need_h5ad(tmp_path, capsys):
    err = _error(["genes", "--out", str(tmp_path / "o"), "--h5ad", str(tmp_path / "x.h5ad")],
                 capsys)
    assert "--model" in err
    err = _error(["genes", "--out", str(tmp_path / "o"), "--labels-key", "cell_type"], capsys)
    assert "need --h5ad" in err
    assert not (tmp_path / "o").exists()


def test_user_model_on_user_cells(tmp_path, capsys):
    import anndata

    g = torch.Generator().manual_seed(0)
    x = torch.randn(40, 6, generator=g).numpy()
    adata = anndata.AnnData(x)
    adata.var_names = [f"g{i}" for i in range(6)]
    adata.obs["kind"] = pd.Categorical(np.where(x[:, 0] > 0, "up", "down"))
    path = tmp_path / "cells.h5ad"
    adata.write_h5ad(path)
    model_file = tmp_path / "mymodel.py"
    model_file.write_text(
        "import torch\n"
        "def build():\n"
        "    torch.manual_seed(0)\n"
        "    return torch.nn.Sequential(torch.nn.Linear(6, 2)).eval()\n")
    out = tmp_path / "o"
    assert main(["genes", "--out", str(out), "--h5ad", str(path), "--model",
                 f"{model_file}:build", "--labels-key", "kind", "--class-names", "down", "up",
                 "--target", "label", *FAST]) == 0
    table = pd.read_csv(out / "gene_table.csv")
    assert set(table["class"]) == {"down", "up"} and set(table["gene"]) == set(adata.var_names)
