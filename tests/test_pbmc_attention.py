"""Neighbour inputs from pbmc68k_reduced's kNN graph and the shipped attention model."""

import numpy as np
import pytest
import torch

pytest.importorskip("scanpy")

from captum_genomics.sc.neighbours import (  # noqa: E402
    neighbour_index_from_graph,
    neighbour_inputs,
)
from captum_genomics.sc.pbmc import load_pbmc68k  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def adata():
    import scanpy as sc

    return sc.datasets.pbmc68k_reduced()


@pytest.fixture(scope="module")
def data():
    return neighbour_inputs()


# --------------------------------------------------------------------------- neighbours


def test_neighbour_rows_are_graph_neighbours(data, adata):
    n, k, g = data.neighbours.shape
    assert (n, k, g) == (700, 9, 765)
    assert data.neighbours.dtype == torch.float32 and data.observed.dtype == torch.float32
    assert data.cell_type.dtype == torch.int64 and data.neighbour_index.dtype == torch.int64
    dist = adata.obsp["distances"].toarray()
    raw = adata.raw.X.toarray().astype(np.float32)
    assert np.array_equal(data.observed.numpy(), raw)
    idx = data.neighbour_index.numpy()
    for i in range(n):  # brute force: the stored edges of row i, by distance
        cols = np.flatnonzero(dist[i])
        cols = cols[cols != i]
        expected = cols[np.argsort(dist[i, cols], kind="stable")]
        assert np.array_equal(idx[i], expected), i
        assert np.array_equal(data.neighbours[i].numpy(), raw[expected])
    # the cell itself is never a neighbour
    assert not (idx == np.arange(n)[:, None]).any()


def test_cell_types_and_split_match_loader(data, adata):
    pbmc = load_pbmc68k()
    assert data.type_names == pbmc.label_names and data.gene_names == pbmc.genes
    assert np.array_equal(data.cell_type.numpy(), pbmc.labels)
    names = np.array(data.type_names)[data.cell_type.numpy()]
    assert np.array_equal(names, adata.obs["bulk_labels"].astype(str).to_numpy())
    assert all(np.array_equal(data.split[s], pbmc.split[s]) for s in pbmc.split)
    again = neighbour_inputs(pbmc, k=4)
    assert torch.equal(again.neighbour_index, data.neighbour_index[:, :4])
    assert torch.equal(again.neighbours, data.neighbours[:, :4])


def test_anndata_input(adata):
    import scipy.sparse

    sub = adata[:60].copy()
    pcs = sub.obsm["X_pca"][:, :10].astype(np.float64)
    dist = np.sqrt(((pcs[:, None] - pcs[None]) ** 2).sum(-1))
    knn = np.argsort(dist, axis=1, kind="stable")[:, 1:4]  # 3 nearest, self excluded
    rows = np.repeat(np.arange(60), 3)
    sub.obsp["distances"] = scipy.sparse.csr_matrix(
        (dist[rows, knn.ravel()], (rows, knn.ravel())), shape=(60, 60))
    with pytest.raises(ValueError, match="`k`=4 but cell 0 has only 3"):
        neighbour_inputs(sub, k=4)
    d = neighbour_inputs(sub)
    assert d.neighbours.shape == (60, 3, 765)
    assert np.array_equal(d.neighbour_index.numpy(), knn)
    np.testing.assert_array_equal(d.neighbours.numpy(), sub.raw.X.toarray()[knn])
    assert sorted(np.concatenate(list(d.split.values())).tolist()) == list(range(60))
    d = neighbour_inputs(sub, k=1, use_raw=False)  # .X: the scaled matrix
    np.testing.assert_allclose(d.observed.numpy(), np.asarray(sub.X, dtype=np.float32))
    with pytest.raises(ValueError, match="label_key"):
        neighbour_inputs(sub, label_key="nope")
    with pytest.raises(ValueError, match="graph_key"):
        neighbour_inputs(sub, graph_key="nope")
    with pytest.raises(TypeError, match="adata_or_data"):
        neighbour_inputs(np.zeros((3, 3)))


def test_graph_helper_orders_and_excludes_self():
    import scipy.sparse

    dense = np.array([[5.0, 2.0, 1.0, 0.0],   # self entry 5.0 ignored
                      [3.0, 0.0, 3.0, 1.0],   # tie 3.0: lower index first
                      [1.0, 1.0, 0.0, 2.0],
                      [4.0, 0.0, 2.0, 0.0]])
    idx = neighbour_index_from_graph(scipy.sparse.csr_matrix(dense))
    assert idx.tolist() == [[2, 1], [3, 0], [0, 1], [2, 0]]
    assert neighbour_index_from_graph(dense, k=1).tolist() == [[2], [3], [0], [2]]
    with pytest.raises(ValueError, match="no neighbour"):
        neighbour_index_from_graph(np.eye(3))
    with pytest.raises(ValueError, match="square"):
        neighbour_index_from_graph(np.ones((2, 3)))
    with pytest.raises(ValueError, match="`k` must be"):
        neighbour_index_from_graph(dense, k=0)


# --------------------------------------------------------------------------- shipped model


@pytest.fixture(scope="module")
def model():
    from captum_genomics.zoo.pbmc_attention import load_pbmc_attention_model

    return load_pbmc_attention_model()


@pytest.fixture(scope="module")
def meta():
    from captum_genomics.zoo.pbmc_attention import load_pbmc_attention_metadata

    return load_pbmc_attention_metadata()


def test_shipped_model_loads_eval_deterministic(model, meta, data):
    from captum_genomics.zoo.pbmc_attention import NeighbourAttentionModel

    assert isinstance(model, NeighbourAttentionModel) and not model.training
    assert all(not m.training for m in model.modules())
    assert isinstance(model.attention, torch.nn.MultiheadAttention)
    assert model.attention.batch_first and model.attention.num_heads == 4
    assert meta["type_names"] == data.type_names and meta["genes"] == data.gene_names
    assert meta["split"]["test"] == data.split["test"].tolist()
    nb, ct = data.neighbours[:50].clone(), data.cell_type[:50].clone()
    with torch.no_grad():
        a, b = model(nb, ct), model(nb, ct)
    assert a.shape == (50, 765) and a.dtype == torch.float32
    assert torch.equal(a, b)  # no dropout in eval
    assert torch.equal(nb, data.neighbours[:50]) and torch.equal(ct, data.cell_type[:50])
    # the query depends on the cell type: changing it changes the prediction
    with torch.no_grad():
        other = model(nb, (ct + 1) % 10)
    assert not torch.allclose(a, other)
    # neighbours are a set for attention: permuting them leaves the output unchanged
    with torch.no_grad():
        perm = model(nb[:, torch.randperm(9)], ct)
    torch.testing.assert_close(perm, a, rtol=1e-5, atol=1e-5)


def test_held_out_metrics_reproduced(model, meta, data):
    te = torch.from_numpy(data.split["test"])
    with torch.no_grad():
        pred = model(data.neighbours[te], data.cell_type[te]).double().numpy()
    obs = data.observed[te].double().numpy()
    types = data.cell_type[te].numpy()
    pooled, gene_means, by_type = [], [], {}
    for t, name in enumerate(data.type_names):  # independent loop over types and genes
        rows = np.flatnonzero(types == t)
        if len(rows) < 2:
            continue
        num = den = 0.0
        evs = []
        for g in range(obs.shape[1]):
            o, r = obs[rows, g], pred[rows, g] - obs[rows, g]
            vo = np.mean((o - o.mean()) ** 2)
            vr = np.mean((r - r.mean()) ** 2)
            num, den = num + vr, den + vo
            if vo > 0:
                evs.append(1 - vr / vo)
        by_type[name] = 1 - num / den
        pooled.append(1 - num / den)
        gene_means.append(np.mean(evs))
    recorded = meta["metrics"]["test"]["model"]
    assert recorded["ev_pooled"] == pytest.approx(np.mean(pooled), abs=1e-4)
    assert recorded["ev_gene_mean"] == pytest.approx(np.mean(gene_means), abs=1e-4)
    for name, ev in by_type.items():
        assert recorded["ev_pooled_by_type"][name] == pytest.approx(ev, abs=1e-4)
    assert recorded["mse"] == pytest.approx(np.mean((pred - obs) ** 2), abs=1e-4)
    # the model beats the per-type mean (EV 0) on held-out cells
    assert recorded["ev_pooled"] > 0.02
    assert recorded["mse"] < meta["metrics"]["test"]["type_mean"]["mse"]


def test_model_errors(model, data):
    nb, ct = data.neighbours[:3], data.cell_type[:3]
    with pytest.raises(ValueError, match="neighbours"):
        model(nb[..., :10], ct)
    with pytest.raises(ValueError, match="cell_type"):
        model(nb, ct[:2])
    with pytest.raises(ValueError, match=r"cell_type.*\[0, 10\)"):
        model(nb, torch.tensor([0, 1, 10]))
    with pytest.raises(TypeError, match="cell_type"):
        model(nb, ct.float())
    from captum_genomics.zoo.pbmc_attention import NeighbourAttentionModel

    with pytest.raises(ValueError, match="n_heads"):
        NeighbourAttentionModel(d_model=10, n_heads=4)
