"""``captum-genomics heads``: default PBMC job, a user .h5ad + model, errors.

The printed table and the CSVs are checked against a HeadAblationExplainedVariance
result computed directly with the same arguments.
"""

import json
import re

import numpy as np
import pandas as pd
import pytest
import torch

pytest.importorskip("scanpy")

from captum_genomics.cli import main  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")

N_PERM = 60


@pytest.fixture(scope="module")
def direct():
    """The result of the method called directly, as the default job should call it."""
    from captum_genomics.methods.head_ablation import HeadAblationExplainedVariance
    from captum_genomics.sc.neighbours import neighbour_inputs
    from captum_genomics.zoo.pbmc_attention import load_pbmc_attention_model

    data = neighbour_inputs()
    groups = np.asarray(data.type_names, dtype=object)[data.cell_type.numpy()]
    return HeadAblationExplainedVariance(load_pbmc_attention_model(), "attention").attribute(
        (data.neighbours, data.cell_type), groups, data.observed, n_permutations=N_PERM,
        random_state=0, gene_names=data.gene_names)


def _parse_table(report: str, head_labels):
    """group -> {head label: (ev, p_adj, star)} from the printed table."""
    entry = re.compile(r"([+-]\d\.\d{4}) \(([^)]+)\)(\*?)")
    parsed = {}
    for line in report.splitlines():
        found = entry.findall(line)
        if len(found) != len(head_labels):
            continue
        group = line[:entry.search(line).start()].strip()  # the name precedes the entries
        parsed[group] = {lab: (float(ev), float(p), star == "*")
                         for lab, (ev, p, star) in zip(head_labels, found)}
    return parsed


def test_default_job_prints_table_and_writes_files(tmp_path, capsys, direct):
    out = tmp_path / "out"
    assert main(["heads", "--out", str(out), "--n-permutations", str(N_PERM)]) == 0
    report = capsys.readouterr().out
    for f in ("ev_table.csv", "head_table.csv", "summary.json", "ev_bars.png",
              "gene_head_heatmap.png"):
        assert (out / f).is_file(), f
    labels = direct.head_labels()
    parsed = _parse_table(report, labels)
    assert sorted(parsed) == sorted(g for g in direct.group_names
                                    if g not in direct.skipped_groups)
    ev, p_adj = direct.ev_head.numpy(), direct.p_adj.numpy()
    for gi, group in enumerate(direct.group_names):
        for vi, lab in enumerate(labels):
            got_ev, got_p, star = parsed[group][lab]
            assert got_ev == pytest.approx(ev[vi, gi], abs=5e-5)
            assert got_p == pytest.approx(float(f"{p_adj[vi, gi]:.2g}"), rel=1e-9)
            assert star == bool(p_adj[vi, gi] <= direct.alpha)

    head_table = pd.read_csv(out / "head_table.csv")
    expected = direct.head_table()
    assert list(head_table.columns) == list(expected.columns)
    np.testing.assert_allclose(head_table["ev_head"], expected["ev_head"], rtol=1e-12)
    np.testing.assert_allclose(head_table["p_adj"], expected["p_adj"], rtol=1e-12)
    assert list(head_table["group"]) == list(expected["group"])

    tidy = pd.read_csv(out / "ev_table.csv")
    assert len(tidy) == 4 * 10 * 765
    np.testing.assert_allclose(tidy["ev_gene"].to_numpy(),
                               direct.ev_gene.numpy().reshape(-1), rtol=1e-12, equal_nan=True)

    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_cells"] == 700 and summary["n_permutations"] == N_PERM
    assert summary["ablation"] == "keep" and summary["mode"] == "zero"
    assert summary["n_significant"] == int(expected["significant"].sum())
    assert len(summary["top_genes"]["CD19+ B"]) == 10


def test_user_h5ad_model(tmp_path, capsys):
    import anndata
    import scipy.sparse

    from captum_genomics.sc.pbmc import load_pbmc68k

    data = load_pbmc68k()
    keep = np.arange(0, 700, 5)
    x = data.X[keep]
    dist = np.sqrt(((x[:, None, :50] - x[None, :, :50]) ** 2).sum(-1))
    knn = np.argsort(dist, axis=1, kind="stable")[:, 1:5]
    rows = np.repeat(np.arange(len(keep)), 4)
    adata = anndata.AnnData(X=x)
    adata.var_names = data.genes
    celltype = np.array(data.label_names, dtype=object)[data.labels[keep]]
    celltype[7] = "Z singleton"  # a group of one cell: reported and skipped
    adata.obs["celltype"] = celltype.astype(str)
    adata.obsp["distances"] = scipy.sparse.csr_matrix(
        (dist[rows, knn.ravel()] + 1e-3, (rows, knn.ravel())), shape=(len(keep), len(keep)))
    adata.write_h5ad(tmp_path / "cells.h5ad")
    n_types = len(set(adata.obs["celltype"]))
    (tmp_path / "usermodel.py").write_text(
        "import torch\n"
        "from captum_genomics.zoo.pbmc_attention import NeighbourAttentionModel\n"
        "def build():\n"
        "    torch.manual_seed(0)\n"
        f"    return NeighbourAttentionModel(n_types={n_types}, d_model=8, n_heads=2)\n")
    out = tmp_path / "out"
    assert main(["heads", "--h5ad", str(tmp_path / "cells.h5ad"), "--model",
                 str(tmp_path / "usermodel.py") + ":build", "--label-key", "celltype",
                 "--attention", "attention", "--mode", "mean", "--ablation", "remove",
                 "--n-permutations", "20", "--out", str(out), "--no-plot"]) == 0
    report = capsys.readouterr().out
    assert "cells of cells.h5ad" in report and "remove-one-head" in report
    assert "skipped (fewer than 2 cells): Z singleton" in report
    table = pd.read_csv(out / "head_table.csv")
    assert sorted(set(table["head"])) == [0, 1] and "Z singleton" not in set(table["group"])
    assert not (out / "ev_bars.png").exists()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["mode"] == "mean" and summary["n_cells"] == len(keep)
    assert summary["skipped_groups"] == ["Z singleton"]


def test_held_out_cells_and_bad_cells(tmp_path):
    from captum_genomics.sc.pbmc import load_pbmc68k
    from captum_genomics.workflows.head_ablation_pbmc import run_head_ablation_job

    summary = run_head_ablation_job(tmp_path, cells="test", n_permutations=10, plot=False,
                                    verbose=False)
    test = load_pbmc68k().split["test"]
    assert summary["n_cells"] == len(test) == 142
    assert summary["result"].n_permutations == 10
    with pytest.raises(ValueError, match="`cells` must be one of"):
        run_head_ablation_job(tmp_path, cells="heldout")


def test_errors(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["heads", "--label-key", "x"])
    assert "need --h5ad" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["heads", "--alpha", "1.5"])
    assert "(0, 1)" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["heads", "--h5ad", str(tmp_path / "missing.h5ad"), "--model", "m:f",
              "--label-key", "x"])
    assert "no such file" in capsys.readouterr().err


def test_not_attention_layer(tmp_path, capsys):
    import anndata
    import scipy.sparse

    rng = np.random.default_rng(0)
    x = rng.random((12, 5)).astype(np.float32)
    adata = anndata.AnnData(X=x)
    adata.obs["t"] = ["a", "b"] * 6
    adata.obsp["distances"] = scipy.sparse.csr_matrix(np.ones((12, 12)) - np.eye(12))
    adata.write_h5ad(tmp_path / "tiny.h5ad")
    (tmp_path / "m.py").write_text(
        "from captum_genomics.zoo.pbmc_attention import NeighbourAttentionModel\n"
        "def build():\n"
        "    return NeighbourAttentionModel(n_genes=5, n_types=2, d_model=4, n_heads=2)\n")
    with pytest.raises(SystemExit):
        main(["heads", "--h5ad", str(tmp_path / "tiny.h5ad"), "--model",
              str(tmp_path / "m.py") + ":build", "--label-key", "t", "--attention", "decoder",
              "--out", str(tmp_path / "o"), "--no-plot"])
    err = capsys.readouterr().err
    assert "--attention" in err and "decoder" in err
    with pytest.raises(SystemExit):  # a model that does not take (neighbours, cell_type)
        (tmp_path / "bad.py").write_text(
            "import torch\ndef build():\n    return torch.nn.Linear(5, 5)\n")
        main(["heads", "--h5ad", str(tmp_path / "tiny.h5ad"), "--model",
              str(tmp_path / "bad.py") + ":build", "--label-key", "t", "--no-plot",
              "--out", str(tmp_path / "o")])
    assert "--model" in capsys.readouterr().err
    assert torch.get_num_threads() == 1
