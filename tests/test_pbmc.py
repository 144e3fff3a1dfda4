"""The pbmc68k_reduced loader: shapes, counts recovery, the fixed stratified split."""

import numpy as np
import pytest

pytest.importorskip("scanpy")

from captum_genomics.sc.pbmc import load_pbmc68k, recover_counts, stratified_split  # noqa: E402


@pytest.fixture(scope="module")
def data():
    return load_pbmc68k()


def test_shapes(data):
    assert data.X.shape == (700, 765) and data.X.dtype == np.float32
    assert len(data.genes) == 765 and len(data.cells) == 700
    assert data.labels.shape == (700,) and len(data.label_names) == 10
    assert data.labels.min() == 0 and data.labels.max() == 9
    assert "CD79A" in data.genes and "CD19+ B" in data.label_names
    assert (data.X >= 0).all()


def test_recover_counts_integral_non_negative(data):
    counts = recover_counts(data.X, data.n_counts)
    assert counts.shape == data.X.shape
    assert (counts >= 0).all() and np.array_equal(counts, np.rint(counts))
    # it inverts the normalization up to the stored 3-decimal rounding
    unrounded = np.expm1(data.X.astype(np.float64)) * data.n_counts[:, None] / 1e4
    assert np.abs(unrounded - counts).max() < 0.2
    assert ((counts > 0) == (data.X > 0)).all()
    # renormalizing gives back the stored values
    again = np.log1p(counts / data.n_counts[:, None] * 1e4)
    assert np.abs(again - data.X).max() < 1e-2


def test_recover_counts_sparse_and_errors():
    import scipy.sparse

    x = np.log1p(np.array([[1.0, 0.0, 3.0]]) / 4 * 1e4)
    assert np.array_equal(recover_counts(scipy.sparse.csr_matrix(x), [4.0]), [[1, 0, 3]])
    with pytest.raises(ValueError, match="n_counts"):
        recover_counts(x, [1.0, 2.0])


def test_split_stratified_fixed_and_disjoint(data):
    s = data.split
    idx = np.concatenate([s["train"], s["validation"], s["test"]])
    assert np.array_equal(np.sort(idx), np.arange(700))
    for name, frac in (("validation", 0.15), ("test", 0.2)):
        for c in range(10):
            n_c = int((data.labels == c).sum())
            got = int((data.labels[s[name]] == c).sum())
            assert got == max(int(round(n_c * frac)), 1)
    again = load_pbmc68k().split
    assert all(np.array_equal(s[k], again[k]) for k in s)
    other = stratified_split(data.labels, seed=1)
    assert not np.array_equal(s["test"], other["test"])


def test_split_rejects_bad_fractions():
    with pytest.raises(ValueError, match="fractions"):
        stratified_split([0, 1], {"test": 0.6, "validation": 0.5})


def test_shipped_classifier(data):
    import torch

    from captum_genomics.zoo.pbmc import load_pbmc_classifier, load_pbmc_metadata

    model = load_pbmc_classifier()
    meta = load_pbmc_metadata()
    assert not model.training
    assert meta["genes"] == data.genes and meta["label_names"] == data.label_names
    assert meta["split"]["test"] == data.split["test"].tolist()
    te = data.split["test"]
    with torch.no_grad():
        pred = model(torch.from_numpy(data.X[te])).argmax(1).numpy()
    acc = float((pred == data.labels[te]).mean())
    assert abs(acc - meta["metrics"]["test"]["accuracy"]) < 1e-3
    assert acc > 0.75
