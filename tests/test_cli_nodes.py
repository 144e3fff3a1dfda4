"""``captum-genomics nodes``: the default GO-model job, a perturbation, a user model, errors.

The written node table is checked against ``LayerNodeProbe.attribute`` called
directly with the same arguments on the same held-out cells.
"""

import json

import numpy as np
import pandas as pd
import pytest
import torch

pytest.importorskip("scanpy")

from captum_genomics.cli import main  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")

FAST = ["--n-permutations", "9", "--n-bootstrap", "50", "--n-random", "3"]


def _error(argv, capsys):
    with pytest.raises(SystemExit) as info:
        main(argv)
    err = capsys.readouterr().err.strip()
    assert info.value.code == 2 and "\n" not in err and "Traceback" not in err
    return err


@pytest.fixture(scope="module")
def default_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("nodes") / "out"
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main(["nodes", "--out", str(out), *FAST, "--perturb", "CD79A"]) == 0
    finally:
        torch.set_num_threads(n)
    return out


def test_default_job_matches_the_direct_call(default_run):
    out = default_run
    summary = json.loads((out / "summary.json").read_text())
    assert summary["files"] == ["node_table.csv", "parent_vs_children.csv", "perturbation.csv",
                                "node_heatmap.png", "summary.json"]
    for name in summary["files"]:
        assert (out / name).is_file()
    assert summary["cells"] == "held_out" and summary["n_cells"] == 246
    assert summary["dropped_classes"] == {} and len(summary["classes"]) == 10
    assert summary["p_value_floor"] == pytest.approx(0.1)
    table = pd.read_csv(out / "node_table.csv")

    from captum_genomics.methods import LayerNodeProbe
    from captum_genomics.sc.pbmc import load_pbmc68k
    from captum_genomics.zoo.go_pbmc import (
        go_pbmc_nodes,
        load_go_pbmc_metadata,
        load_go_pbmc_model,
    )

    data = load_pbmc68k()
    split = load_go_pbmc_metadata()["split"]
    held = np.sort(np.concatenate([split["validation"], split["test"]]))
    labels = np.asarray(data.label_names)[data.labels[held]]
    direct = LayerNodeProbe(load_go_pbmc_model(), "terms").attribute(
        torch.from_numpy(data.X[held]), labels, go_pbmc_nodes(label="name"), n_folds=3,
        n_permutations=9, n_bootstrap=50, n_random=3, untrained="reinit",
        random_state=0).to_frame()
    assert len(table) == len(direct) == 134 * 10
    assert list(table.columns) == list(direct.columns)
    assert (table["node"] == direct["node"]).all() and (table["class"] == direct["class"]).all()
    assert (table["significant"] == direct["significant"]).all()
    numeric = [c for c in direct.columns if c not in ("node", "class", "significant")]
    np.testing.assert_allclose(table[numeric].to_numpy(float), direct[numeric].to_numpy(float),
                               rtol=1e-9, atol=1e-12, equal_nan=True)


def test_perturbation_of_a_real_gene(default_run):
    out = default_run
    pert = pd.read_csv(out / "perturbation.csv")
    assert len(pert) == 134 * 10
    assert {"delta_auroc", "delta_auroc_ci_low", "delta_auroc_ci_high"} <= set(pert.columns)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["perturbation"]["genes"] == ["CD79A"]
    by_class = {r["class"]: r for r in summary["perturbation"]["model_probability"]}
    # zeroing a B-cell marker lowers the model's B-cell probability on B cells
    assert by_class["CD19+ B"]["delta"] < 0


def test_second_run_is_refused_without_overwrite(default_run, capsys):
    before = {p.name: p.stat().st_mtime_ns for p in default_run.iterdir()}
    err = _error(["nodes", "--out", str(default_run), *FAST], capsys)
    assert "--overwrite" in err
    assert {p.name: p.stat().st_mtime_ns for p in default_run.iterdir()} == before


def test_unknown_perturb_gene_is_a_one_line_error(tmp_path, capsys):
    err = _error(["nodes", "--out", str(tmp_path / "o"), *FAST, "--perturb", "CD79A",
                  "NOT_A_GENE"], capsys)
    assert "--perturb" in err and "NOT_A_GENE" in err
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


def test_user_options_need_h5ad_and_h5ad_needs_model(tmp_path, capsys):
    err = _error(["nodes", "--out", str(tmp_path / "o"), "--h5ad", str(tmp_path / "x.h5ad")],
                 capsys)
    assert "--model" in err and "--layer" in err and "--nodes" in err
    err = _error(["nodes", "--out", str(tmp_path / "o"), "--model", "m.py:build"], capsys)
    assert "need --h5ad" in err
    assert not (tmp_path / "o").exists()


def test_user_model_on_user_cells(tmp_path, capsys):
    import anndata

    g = torch.Generator().manual_seed(0)
    x = torch.randn(60, 6, generator=g).numpy()
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
        "    return torch.nn.Sequential(torch.nn.Linear(6, 4), torch.nn.Tanh(),\n"
        "                               torch.nn.Linear(4, 2)).eval()\n")
    nodes = tmp_path / "nodes.tsv"
    nodes.write_text("node\tunits\na\t0,1\nb\t2\nb\t3\n")
    out = tmp_path / "o"
    argv = ["nodes", "--out", str(out), "--h5ad", str(path), "--model", f"{model_file}:build",
            "--layer", "1", "--nodes", str(nodes), "--labels-key", "kind", *FAST, "--no-plot"]
    err = _error(argv + ["--cells", "held_out"], capsys)
    assert "--cells" in err
    err = _error(argv + ["--perturb", "CD79A"], capsys)
    assert "--perturb" in err and "CD79A" in err
    assert main(argv + ["--perturb", "g0"]) == 0
    table = pd.read_csv(out / "node_table.csv")
    assert set(table["node"]) == {"a", "b"} and set(table["class"]) == {"down", "up"}
    assert set(table.loc[table["node"] == "b", "width"]) == {2}
    summary = json.loads((out / "summary.json").read_text())
    assert summary["cells"] == "all" and summary["n_cells"] == 60
    assert summary["files"] == ["node_table.csv", "perturbation.csv", "summary.json"]
