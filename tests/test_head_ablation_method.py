"""``HeadAblationExplainedVariance``: orchestration, argument handling, errors.

The brute-force agreement, planted head and null-model checks live in
``captum_genomics/testing/test_head_ablation.py``; here the values are checked against a
numpy computation on the outputs of :func:`ablated_forward` and of the model.
"""

from __future__ import annotations

from functools import partial

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn as nn
from captum.attr import Attribution

from captum_genomics.heads import (
    HeadAxisAdapter,
    MultiheadAttentionAdapter,
    OutputProjectionAdapter,
    UnsupportedAttentionError,
    ablated_forward,
    default_head_adapters,
    keep_masks,
)
from captum_genomics.methods import HeadAblationExplainedVariance
from captum_genomics.testing.checks import compare_states as _compare
from captum_genomics.testing.checks import snapshot_state as _snapshot
from head_models import NeighbourModel

DT = torch.float64
pytestmark = pytest.mark.usefixtures("one_thread")


class Blocks(nn.Module):
    """Two attention blocks: an MHA and hand-written attention with an out-projection."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(1)
        self.mha = nn.MultiheadAttention(8, 2, batch_first=True)
        self.qkv = nn.Linear(8, 24)
        self.proj = nn.Linear(8, 8)
        self.out = nn.Linear(8, 5)
        self.to(DT).eval()

    def forward(self, x):
        h = x + self.mha(x, x, x)[0]
        b, length, _ = h.shape
        q, k, v = self.qkv(h).view(b, length, 3, 4, 2).permute(2, 0, 3, 1, 4)
        o = torch.softmax(q @ k.transpose(-1, -2), -1) @ v
        h = h + self.proj(o.transpose(1, 2).reshape(b, length, 8))
        return self.out(h.mean(1))


def _data(n=30, k=4, genes=6, types=3, seed=1):
    g = torch.Generator().manual_seed(seed)
    nb = torch.randn(n, k, genes, generator=g, dtype=DT)
    ct = torch.arange(n) % types
    obs = torch.randn(n, genes, generator=g, dtype=DT)
    return nb, ct, obs


def _np_ev(pred, obs, codes, n_groups):
    """EV per (group, gene) and per group with numpy, group by group."""
    ev_gene = np.full((n_groups, obs.shape[1]), np.nan)
    ev_head = np.full(n_groups, np.nan)
    for g in range(n_groups):
        idx = codes == g
        if idx.sum() < 2:
            continue
        res = np.var(pred[idx] - obs[idx], axis=0)
        var = np.var(obs[idx], axis=0)
        with np.errstate(divide="ignore", invalid="ignore"):
            ev_gene[g] = np.where(var > 0, 1 - res / var, np.nan)
        ev_head[g] = 1 - res.sum() / var.sum()
    return ev_gene, ev_head


# ----------------------------------------------------------------------------- values
@pytest.mark.parametrize("ablation", ["keep", "remove"])
def test_values_match_numpy_on_ablated_outputs(ablation):
    model = NeighbourModel()
    nb, ct, obs = _data()
    explainer = HeadAblationExplainedVariance(model, "attention")
    result = explainer.attribute((nb, ct), ct, obs, ablation=ablation, n_permutations=20)
    assert isinstance(explainer, Attribution)
    assert result.heads == [("attention", h) for h in range(4)]
    assert result.group_names == ["0", "1", "2"] and result.ablation == ablation
    adapter = MultiheadAttentionAdapter(model.attention, "attention")
    preds = ablated_forward(model, [adapter], keep_masks([4], [(0, h) for h in range(4)],
                                                         ablation), (nb, ct))
    codes = ct.numpy()
    for v in range(4):
        ev_gene, ev_head = _np_ev(preds[v].numpy(), obs.numpy(), codes, 3)
        np.testing.assert_allclose(result.ev_gene[v].numpy(), ev_gene, rtol=0, atol=1e-12)
        np.testing.assert_allclose(result.ev_head[v].numpy(), ev_head, rtol=0, atol=1e-12)
        mse = [np.mean((preds[v].numpy()[codes == g] - obs.numpy()[codes == g]) ** 2)
               for g in range(3)]
        np.testing.assert_allclose(result.mse[v].numpy(), mse, rtol=1e-12)
    with torch.no_grad():
        full = model(nb, ct).numpy()
    ev_gene, ev_head = _np_ev(full, obs.numpy(), codes, 3)
    np.testing.assert_allclose(result.full_ev_gene.numpy(), ev_gene, rtol=0, atol=1e-12)
    np.testing.assert_allclose(result.full_ev_head.numpy(), ev_head, rtol=0, atol=1e-12)
    assert result.n_cells.tolist() == [10, 10, 10]
    assert ((result.p_value >= 1 / 21) & (result.p_value <= 1)).all()


def test_mean_mode_uses_reference_inputs():
    model = NeighbourModel()
    nb, ct, obs = _data()
    ref = _data(n=12, seed=5)
    result = HeadAblationExplainedVariance(model, "attention").attribute(
        (nb, ct), ct, obs, mode="mean", reference_inputs=ref[:2], n_permutations=10)
    adapter = MultiheadAttentionAdapter(model.attention, "attention")
    preds = ablated_forward(model, [adapter], keep_masks([4], [(0, h) for h in range(4)]),
                            (nb, ct), mode="mean", reference_inputs=ref[:2])
    ev_gene, _ = _np_ev(preds[2].numpy(), obs.numpy(), ct.numpy(), 3)
    np.testing.assert_allclose(result.ev_gene[2].numpy(), ev_gene, atol=1e-12)
    assert result.mode == "mean"


def test_single_head_layer_keep_reproduces_full_model():
    model = NeighbourModel(heads=1)
    nb, ct, obs = _data()
    result = HeadAblationExplainedVariance(model, "attention").attribute(
        (nb, ct), ct, obs, n_permutations=5)
    assert (result.ev_head[0] - result.full_ev_head).abs().max() <= 1e-12
    assert (result.ev_gene[0] - result.full_ev_gene).abs().max() <= 1e-12


def test_same_seed_bit_identical_and_model_unchanged():
    model = NeighbourModel()
    nb, ct, obs = _data()
    explainer = HeadAblationExplainedVariance(model, model.attention)
    before = _snapshot(model, [nb, ct, obs])
    a = explainer.attribute((nb, ct), ct, obs, n_permutations=50, random_state=3)
    b = explainer.attribute((nb, ct), ct, obs, n_permutations=50, random_state=3)
    with pytest.raises(ValueError):
        explainer.attribute((nb, ct), ct[:5], obs)
    with pytest.raises(RuntimeError):                    # fails while hooks are attached
        explainer.attribute((nb, ct), ct, obs, mode="mean", reference_inputs=(nb[..., :3], ct))
    problems, _ = _compare(before, _snapshot(model, [nb, ct, obs]))
    assert problems == []
    for name in ("ev_gene", "ev_head", "mse", "p_value", "p_adj", "full_ev_gene"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name
    c = explainer.attribute((nb, ct), ct, obs, n_permutations=50, random_state=4)
    assert torch.equal(a.ev_gene, c.ev_gene) and not torch.equal(a.p_value, c.p_value)


def test_batch_size_and_input_forms_agree():
    model = NeighbourModel()
    nb, ct, obs = _data()
    explainer = HeadAblationExplainedVariance(model, ["attention"])
    a = explainer.attribute((nb, ct), ct, obs, n_permutations=30)
    b = explainer.attribute(nb, ct, obs.numpy(), additional_forward_args=(ct,), batch_size=7,
                            n_permutations=30)
    assert (a.ev_gene - b.ev_gene).abs().max() <= 1e-12
    assert torch.equal(a.p_value, b.p_value) or (a.p_value - b.p_value).abs().max() <= 0.05


def test_groups_names_categorical_and_skipped():
    model = NeighbourModel()
    nb, ct, obs = _data(n=31)            # type 0 gets 11 cells
    codes = ct.clone()
    codes[-1] = 3                         # a group with one cell: skipped
    names = ["T", "B", "NK", "mono"]
    explainer = HeadAblationExplainedVariance(model, "attention")
    r = explainer.attribute((nb, ct), codes.numpy(), obs, group_names=names,
                            gene_names=list("abcdef"), n_permutations=10)
    assert r.group_names == names and r.skipped_groups == ["mono"]
    assert r.gene_names == list("abcdef")
    assert torch.isnan(r.ev_head[:, 3]).all() and torch.isnan(r.p_value[:, 3]).all()
    assert not torch.isnan(r.p_adj[:, :3]).any()
    labels = pd.Categorical([names[c] for c in codes.tolist()], categories=names)
    r2 = explainer.attribute((nb, ct), labels, obs, n_permutations=10)
    assert r2.group_names == names
    assert torch.equal(r.ev_gene.nan_to_num(7.0), r2.ev_gene.nan_to_num(7.0))
    table = r.head_table()
    assert set(table["group"]) == {"T", "B", "NK"}


def test_default_permutations_count_tested_heads_and_groups():
    model = NeighbourModel()
    nb, ct, obs = _data()
    r = HeadAblationExplainedVariance(model, "attention").attribute(
        (nb, ct), ct, obs, heads=[("attention", 3), ("attention", 1)], alpha=0.2)
    assert r.heads == [("attention", 1), ("attention", 3)]
    assert r.n_permutations == 30        # ceil(2 heads * 3 groups / 0.2)


def test_layer_forms_and_adapters():
    model = Blocks()
    x = torch.randn(12, 3, 8, dtype=DT)
    obs = torch.randn(12, 5, dtype=DT)
    groups = ["a", "b"] * 6
    proj = partial(OutputProjectionAdapter, n_heads=4)
    explainer = HeadAblationExplainedVariance(model, {"mha": None, "proj": proj})
    assert explainer.layer_names == ["mha", "proj"] and explainer.n_heads == [2, 4]
    r = explainer.attribute(x, groups, obs, n_permutations=5)
    assert r.heads == [("mha", 0), ("mha", 1)] + [("proj", h) for h in range(4)]
    registry = default_head_adapters().with_adapter(nn.Linear, proj)
    r2 = HeadAblationExplainedVariance(model, [model.mha, "proj"], adapters=registry).attribute(
        x, groups, obs, n_permutations=5)
    assert torch.equal(r.ev_gene, r2.ev_gene)
    ready = OutputProjectionAdapter(model.proj, "proj", n_heads=4)
    r3 = HeadAblationExplainedVariance(model, ["mha", ready]).attribute(
        x, groups, obs, n_permutations=5)
    assert torch.equal(r.ev_gene, r3.ev_gene)


def test_plain_callable_with_module_layers():
    model = NeighbourModel()
    nb, ct, obs = _data()
    explainer = HeadAblationExplainedVariance(lambda a, b: model(a, b), model.attention)
    assert explainer.layer_names == ["attention"]  # the path in the model the lambda calls
    r = explainer.attribute((nb, ct), ct, obs, n_permutations=5)
    ref = HeadAblationExplainedVariance(model, "attention").attribute((nb, ct), ct, obs,
                                                                       n_permutations=5)
    assert torch.equal(r.ev_gene, ref.ev_gene)


def test_log_usage_wrapper():
    assert hasattr(HeadAblationExplainedVariance.attribute, "__wrapped__")


# ----------------------------------------------------------------------------- bad input
def test_layer_not_attention_or_without_adapter():
    model = NeighbourModel()
    with pytest.raises(UnsupportedAttentionError, match=r"'decode' is a Linear.*with_adapter"):
        HeadAblationExplainedVariance(model, "decode")
    with pytest.raises(UnsupportedAttentionError, match="'encode'"):
        HeadAblationExplainedVariance(model, ["attention", model.encode])
    with pytest.raises(ValueError, match=r"'attn' is not a submodule.*\['attention'\]"):
        HeadAblationExplainedVariance(model, "attn")
    with pytest.raises(ValueError, match="not part of the model"):
        HeadAblationExplainedVariance(model, nn.MultiheadAttention(8, 2))
    with pytest.raises(ValueError, match="more than once"):
        HeadAblationExplainedVariance(model, ["attention", model.attention])
    with pytest.raises(TypeError, match="HeadAdapterRegistry"):
        HeadAblationExplainedVariance(model, "attention", adapters={})
    with pytest.raises(ValueError, match="n_heads"):
        HeadAblationExplainedVariance(model, {"decode": HeadAxisAdapter})


def test_head_index_out_of_range():
    model = NeighbourModel()
    nb, ct, obs = _data()
    explainer = HeadAblationExplainedVariance(model, "attention")
    with pytest.raises(ValueError, match=r"head index 4 .*'attention'.*4 heads.*0\.\.3"):
        explainer.attribute((nb, ct), ct, obs, heads=[("attention", 4)])
    with pytest.raises(ValueError, match="head index -1"):
        explainer.attribute((nb, ct), ct, obs, heads=[("attention", -1)])
    with pytest.raises(ValueError, match="'decode' is not one of the layers"):
        explainer.attribute((nb, ct), ct, obs, heads=[("decode", 0)])
    with pytest.raises(ValueError, match="more than once"):
        explainer.attribute((nb, ct), ct, obs, heads=[("attention", 0), ("attention", 0)])


def test_groups_wrong_length():
    model = NeighbourModel()
    nb, ct, obs = _data()
    explainer = HeadAblationExplainedVariance(model, "attention")
    with pytest.raises(ValueError, match=r"`groups`.*30.*29"):
        explainer.attribute((nb, ct), ct[:-1], obs)
    with pytest.raises(ValueError, match="group_names"):
        explainer.attribute((nb, ct), ct, obs, group_names=["a", "b"])


@pytest.mark.parametrize("where", ["neighbours", "observed"])
def test_nan_inputs(where):
    model = NeighbourModel()
    nb, ct, obs = _data()
    nb, obs = nb.clone(), obs.clone()
    (nb if where == "neighbours" else obs).view(-1)[17] = float("nan")
    explainer = HeadAblationExplainedVariance(model, "attention")
    label = r"inputs\[0\]" if where == "neighbours" else "observed"
    with pytest.raises(ValueError, match=f"`{label}` contains 1 non-finite value.*NaN"):
        explainer.attribute((nb, ct), ct, obs)


@pytest.mark.parametrize("alpha", [0, 1, -0.5, 1.5, float("nan"), True, "0.05"])
def test_alpha_outside_unit_interval(alpha):
    model = NeighbourModel()
    nb, ct, obs = _data()
    with pytest.raises(ValueError, match=r"`alpha` must be a number in the open interval"):
        HeadAblationExplainedVariance(model, "attention").attribute((nb, ct), ct, obs,
                                                                    alpha=alpha)


def test_other_argument_errors():
    model = NeighbourModel()
    nb, ct, obs = _data()
    explainer = HeadAblationExplainedVariance(model, "attention")
    with pytest.raises(ValueError, match="ablation"):
        explainer.attribute((nb, ct), ct, obs, ablation="drop")
    with pytest.raises(ValueError, match="mode"):
        explainer.attribute((nb, ct), ct, obs, mode="median")
    with pytest.raises(ValueError, match="reference_inputs"):
        explainer.attribute((nb, ct), ct, obs, mode="mean")
    with pytest.raises(ValueError, match=r"`observed` must have the predictions' shape"):
        explainer.attribute((nb, ct), ct, obs[:, :3])
    with pytest.raises(ValueError, match="gene_names"):
        explainer.attribute((nb, ct), ct, obs, gene_names=["a"])
    with pytest.raises(ValueError, match="n_permutations"):
        explainer.attribute((nb, ct), ct, obs, n_permutations=0)
    model.attention.dropout = 0.2
    model.train()
    try:
        with pytest.raises(ValueError, match="training mode"):
            explainer.attribute((nb, ct), ct, obs)
    finally:
        model.attention.dropout = 0.0
        model.eval()
