"""The vendored GO table and the GO-structured PBMC classifier (captum_genomics/zoo/go_pbmc)."""

import json

import numpy as np
import pytest
import torch

from captum_genomics.sc.go import go_children, go_gene_mask, load_go_terms, read_go_table
from captum_genomics.zoo.go_pbmc import (
    TERM_LAYER,
    GOClassifier,
    MaskedLinear,
    go_pbmc_nodes,
    go_pbmc_parents,
    load_go_pbmc_metadata,
    load_go_pbmc_model,
)

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def terms():
    return load_go_terms()


@pytest.fixture(scope="module")
def meta():
    return load_go_pbmc_metadata()


@pytest.fixture(scope="module")
def model():
    return load_go_pbmc_model()


@pytest.fixture(scope="module")
def data():
    pytest.importorskip("scanpy")
    from captum_genomics.sc.pbmc import load_pbmc68k

    return load_pbmc68k()


def test_table_terms_sizes_and_provenance(terms, meta):
    assert len(terms) == 134 and terms.index.is_unique and list(terms.index) == sorted(terms.index)
    assert all(t.startswith("GO:") and len(t) == 10 for t in terms.index)
    genes = set(meta["genes"])
    assert len(genes) == 765
    for go_id, row in terms.iterrows():
        assert 5 <= row["n_genes"] <= 200 and len(row["genes"]) == row["n_genes"]
        assert set(row["genes"]) <= genes, go_id
        assert 8 <= row["n_direct"] <= row["n_genes"]
    # distinct gene sets, real names, known immune terms
    assert len({frozenset(g) for g in terms["genes"]}) == len(terms)
    assert terms.loc["GO:0006955", "name"] == "immune response"
    assert "CD3E" in terms.loc["GO:0050852", "genes"]  # T cell receptor signaling pathway
    attrs = terms.attrs
    assert "2022-07-01" in attrs["go_source"] and "CC BY 4.0" in attrs["licence"]
    assert "r-bioc-go.db 3.16.0-1" in attrs["GO.sqlite"]
    assert "r-bioc-org.hs.eg.db 3.16.0-1" in attrs["org.Hs.eg.sqlite"]


def test_table_parents_reference_kept_terms(terms):
    kept = set(terms.index)
    n_edges = 0
    for go_id, parents in terms["parents"].items():
        assert go_id not in parents and set(parents) <= kept
        n_edges += len(parents)
    children = go_children(terms)
    assert sum(len(c) for c in children.values()) == n_edges
    assert "GO:0002250" in children["GO:0006955"]  # adaptive immune response is_a immune response
    # a parent's genes include its children's (annotations propagated to ancestors)
    for p, cs in children.items():
        for c in cs:
            assert set(terms.loc[c, "genes"]) <= set(terms.loc[p, "genes"])


def test_read_go_table_errors(tmp_path, terms):
    with pytest.raises(FileNotFoundError, match="source"):
        read_go_table(tmp_path / "absent.tsv")
    bad = "# t\ngo_id\tname\tn_genes\tn_direct\tparents\tgenes\nGO:1\ta\t2\t1\tGO:9\tA,B\n"
    with pytest.raises(ValueError, match="GO:9"):
        read_go_table(bad)
    with pytest.raises(ValueError, match="n_genes"):
        read_go_table(bad.replace("\t2\t", "\t3\t").replace("GO:9", ""))
    with pytest.raises(ValueError, match="lacks"):
        go_gene_mask(terms, ["CD3E"])
    with pytest.raises(ValueError, match="repeat"):
        go_gene_mask(terms, ["CD3E", "CD3E"])


def test_model_loads_eval_and_mask_from_table(model, meta, terms):
    assert not model.training
    layer = getattr(model, TERM_LAYER)
    assert layer is model.terms and isinstance(layer.linear, MaskedLinear)
    assert meta["terms"] == list(terms.index)
    mask = go_gene_mask(terms, meta["genes"])
    k = meta["architecture"]["units_per_term"]
    assert torch.equal(layer.linear.mask.bool(),
                       torch.from_numpy(mask).repeat_interleave(k, dim=0))
    w = layer.linear.weight.detach()
    assert bool((w[layer.linear.mask == 0] == 0).all())
    assert "mask" not in model.state_dict()  # rebuilt from the vendored table


def test_mask_respected_by_gradients(model, meta, terms):
    genes = meta["genes"]
    x = torch.rand(3, len(genes), generator=torch.Generator().manual_seed(0)) * 3
    x.requires_grad_(True)
    nodes = go_pbmc_nodes()
    for go_id in ("GO:0006955", "GO:0050852", "GO:0006120"):
        member = torch.tensor([g in set(terms.loc[go_id, "genes"]) for g in genes])
        for unit in nodes[go_id]:
            (grad,) = torch.autograd.grad(model.terms(x)[:, unit].sum(), x)
            assert bool((grad[:, ~member] == 0).all())
            assert bool((grad[:, member] != 0).any())
    # genes in no kept term have exactly zero gradient of every logit
    outside = torch.from_numpy(~go_gene_mask(terms, genes).any(0))
    assert int(outside.sum()) == 765 - meta["term_layer"]["genes_in_a_term"] == 142
    (grad,) = torch.autograd.grad(model(x).sum(), x)
    assert bool((grad[:, outside] == 0).all())


def test_held_out_metrics_match_json(model, meta, data):
    from sklearn.metrics import roc_auc_score

    assert meta["genes"] == data.genes and meta["label_names"] == data.label_names
    for split in ("validation", "test"):
        idx = np.asarray(meta["split"][split])
        assert np.array_equal(idx, data.split[split])
        x, y = torch.from_numpy(data.X[idx]), data.labels[idx]
        with torch.no_grad():
            logits = model(x)
        pred = logits.argmax(1).numpy()
        got = meta["metrics"][split]
        assert round(float((pred == y).mean()), 4) == got["accuracy"]
        recalls = [(pred[y == c] == c).mean() for c in np.unique(y)]
        assert round(float(np.mean(recalls)), 4) == got["balanced_accuracy"]
        prob = torch.softmax(logits.double(), 1).numpy()
        auroc = roc_auc_score(y, prob, multi_class="ovr", average="macro")
        assert round(float(auroc), 4) == got["macro_auroc"]
    assert meta["metrics"]["test"]["accuracy"] > 0.7


def test_nodes_partition_term_layer(model, meta):
    nodes = go_pbmc_nodes()
    n_units = model.terms.linear.out_features
    assert n_units == meta["term_layer"]["n_units"] == 268
    units = sorted(u for us in nodes.values() for u in us)
    assert units == list(range(n_units))
    assert list(nodes) == meta["terms"] and all(len(u) == 2 for u in nodes.values())
    named = go_pbmc_nodes(label="name")
    assert named["GO:0006955 immune response"] == nodes["GO:0006955"]
    with pytest.raises(ValueError, match="label"):
        go_pbmc_nodes(label="bad")
    parents = go_pbmc_parents()
    assert set(parents) <= set(nodes) and all(set(c) <= set(nodes) for c in parents.values())
    assert set(go_pbmc_parents(label="name")) <= set(named)


def test_integrated_gradients_runs(model, meta):
    from captum.attr import IntegratedGradients

    x = torch.rand(2, len(meta["genes"]), generator=torch.Generator().manual_seed(1)) * 2
    attr, delta = IntegratedGradients(model).attribute(
        x, baselines=torch.zeros_like(x), target=3, n_steps=64,
        return_convergence_delta=True)
    assert attr.shape == x.shape and bool(torch.isfinite(attr).all())
    assert float(delta.abs().max()) < 1e-2
    outside = torch.from_numpy(~np.asarray(model.terms.linear.mask.bool().any(0)))
    assert bool((attr[:, outside] == 0).all())


def test_classifier_bad_inputs():
    mask = np.zeros((3, 5), dtype=bool)
    mask[0, :2] = mask[1, 1:4] = mask[2, 4] = True
    net = GOClassifier(mask, n_classes=4, units_per_term=3, hidden_width=8)
    assert net(torch.rand(2, 5)).shape == (2, 4)
    w = net.terms.linear.weight.detach()
    assert bool((w[net.terms.linear.mask == 0] == 0).all())
    with pytest.raises(ValueError, match="`x`"):
        net(torch.rand(2, 6))
    with pytest.raises(TypeError, match="`x`"):
        net(np.zeros((2, 5), dtype=np.float32))
    with pytest.raises(ValueError, match="units_per_term"):
        GOClassifier(mask, units_per_term=0)
    with pytest.raises(ValueError, match="mask"):
        MaskedLinear(np.full((2, 2), 0.5))
    with pytest.raises(ValueError, match="term"):
        net.terms.term_units(3)
    assert net.terms.term_units(1) == [3, 4, 5]


def test_metadata_is_plain_json(meta):
    assert json.loads(json.dumps(meta)) == meta
    assert meta["training"]["threads"] == 2 and meta["training"]["deterministic_algorithms"]


def test_deeplift_rules_exact(model, meta):
    """The package's DeepLIFT engine (strict rules) runs; contributions sum to the output delta."""
    from captum_genomics.deeplift import deeplift_multipliers

    net = load_go_pbmc_model().double()
    x = torch.rand(3, len(meta["genes"]), generator=torch.Generator().manual_seed(2),
                   dtype=torch.float64) * 3
    ref = torch.zeros_like(x)
    mult, _ = deeplift_multipliers(net, x, ref, target=5, strict=True)
    with torch.no_grad():
        delta = net(x)[:, 5] - net(ref)[:, 5]
    torch.testing.assert_close((mult * (x - ref)).sum(1), delta, rtol=0, atol=1e-10)
