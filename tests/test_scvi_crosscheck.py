"""Our scvi_compatible tables equal scvi-tools' ``predict(ig_interpretability=True)``.

A tiny SCANVI (scvi-tools 1.4.x, the optional ``scvi`` extra) is trained for a
few epochs on pbmc68k_reduced's recovered counts (200 genes, CPU, seeded);
then, as scvi-tools' tutorial does, ``model.predict(indices=<cells of class
c>, ig_interpretability=True)`` is called once per class and compared with
one call of ``class_gene_attributions`` (same cells, predicted-class
targets, zero baseline, 50 steps, raw counts) + ``attribution_table(...,
scvi_compatible=True)``.
"""

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

scvi = pytest.importorskip("scvi")
pytest.importorskip("scanpy")

from captum_genomics.sc.gene_attributions import class_gene_attributions  # noqa: E402
from captum_genomics.stats.attribution_tables import (  # noqa: E402
    SCVI_COLUMNS,
    attribution_table,
    per_class_tables,
)

_SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "train_scanvi_pbmc.py"


def _script():
    spec = importlib.util.spec_from_file_location("train_scanvi_pbmc", _SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def scanvi():
    script = _script()
    adata = script.pbmc_counts_anndata()
    top = np.argsort(-adata.X.var(0), kind="stable")[:200]
    adata = adata[:, np.sort(top)].copy()
    threads = torch.get_num_threads()
    try:
        model = script.train_scanvi(adata, max_epochs=3, random_state=0, n_hidden=16,
                                    n_latent=5)
    finally:
        torch.set_num_threads(threads)
    return script, model, adata


def test_tables_equal_scvi_tools(scanvi):
    script, model, adata = scanvi
    classes = [str(c) for c in model._label_mapping[:model.module.n_labels]]
    labels = adata.obs["bulk_labels"].astype(str).to_numpy()
    model_before = {k: v.clone() for k, v in model.module.state_dict().items()}
    res = class_gene_attributions(script.SCANVIClassifier(model.module), adata.X, "predicted",
                                  labels, class_names=classes, n_steps=50, baseline="zeros",
                                  batch_size=128)
    for k, v in model.module.state_dict().items():
        assert torch.equal(v, model_before[k])
    assert not model.module.training
    # same predicted classes as scvi-tools
    assert list(np.asarray(classes)[res.predicted]) == list(model.predict())
    ours = per_class_tables(attribution_table(res.attributions, res.labels,
                                              list(adata.var_names), classes,
                                              scvi_compatible=True))
    worst = 0.0
    for cls in sorted(set(labels))[:4]:  # four classes keep the test short
        idx = np.flatnonzero(labels == cls)
        _, theirs = model.predict(indices=idx.tolist(), ig_interpretability=True)
        mine = ours[cls]
        assert list(mine.columns) == list(theirs.columns) == SCVI_COLUMNS
        assert (mine.dtypes == theirs.dtypes).all()
        assert (mine["cells"] == len(idx)).all() and (theirs["cells"] == len(idx)).all()
        a = mine.set_index("feature").sort_index()
        b = theirs.set_index("feature").sort_index()
        assert list(a.index) == list(b.index)
        for col in ("attribution_mean", "attribution_std"):
            diff = np.abs(a[col].to_numpy(np.float64) - b[col].to_numpy(np.float64))
            worst = max(worst, float(diff.max()))
            assert diff.max() <= 1e-5, (cls, col, diff.max())
        assert (a["feature_idx"] == b["feature_idx"]).all()
        # same order, except among means closer than the tolerance
        m_ours = mine["attribution_mean"].to_numpy(np.float64)
        m_theirs = b.loc[mine["feature"], "attribution_mean"].to_numpy(np.float64)
        swapped = mine["feature"].to_numpy() != theirs["feature"].to_numpy()
        assert np.all(np.abs(m_ours[swapped] - theirs["attribution_mean"].to_numpy(
            np.float64)[swapped]) <= 1e-5)
        assert np.allclose(m_ours, m_theirs, atol=1e-5)
        if not swapped.any():
            pd.testing.assert_frame_equal(mine, theirs, check_exact=False, atol=1e-5, rtol=0)
    assert worst <= 1e-5
