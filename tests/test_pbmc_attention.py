"""Neighbour inputs from pbmc68k_reduced's kNN graph and the shipped attention model."""

import numpy as np
import pytest
import torch

pytest.importorskip("scanpy")

from captum_genomics.neighbours import (  # noqa: E402
    neighbour_index_from_graph,
    neighbour_inputs,
)
from captum_genomics.pbmc import load_pbmc68k  # noqa: E402

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
