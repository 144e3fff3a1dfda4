"""Validation of head-ablation explained variance (issue 4, section 5).

* Agreement with a brute-force loop: for each head, a copy of the model whose
  ``nn.MultiheadAttention`` is replaced by a per-head attention written out
  head by head (the other heads zeroed or set to their reference mean), run
  on each group's cells separately, EV computed with numpy: <= 1e-10 in
  float64.
* A planted-head model (only head ``h`` carries the signal the observed
  expression follows): its EV is far above the others' and significant after
  Benjamini-Hochberg; the others' are not.
* Keeping all heads reproduces the full model's EV.
* On a null model (observed independent of the inputs) the p-values are
  uniform (KS test).
* The ``nn.MultiheadAttention`` adapter's per-head outputs sum to the module's
  output.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
import torch.nn as nn
from hypothesis import given
from hypothesis import strategies as st
from scipy.stats import kstest

from captum_genomics.heads import (
    MultiheadAttentionAdapter,
    ablated_forward,
    per_head_outputs,
)
from captum_genomics.methods import HeadAblationExplainedVariance
from captum_genomics.stats.explained_variance import explained_variance
from captum_genomics.testing.methods import NeighbourModel
from captum_genomics.testing.models import bounded

DT = torch.float64
Tensor = torch.Tensor
pytestmark = pytest.mark.builtin


# ----------------------------------------------------------------------------- models
class LoopAttention(nn.Module):
    """Batch-first multi-head attention computed head by head in a Python loop.

    Written from the definition, independently of the package: head ``h`` is
    ``softmax(q_h k_h^T / sqrt(d)) v_h`` and contributes
    ``o_h W_out[:, h d:(h+1) d]^T``. Heads not in ``keep`` contribute
    ``fill[h]`` (their output replaced by zeros or a reference mean) instead.
    """

    def __init__(self, mha: nn.MultiheadAttention, keep: set[int], fill: Tensor | None = None):
        super().__init__()
        self.mha, self.keep, self.fill = mha, keep, fill

    def head_outputs(self, query, key, value):
        m = self.mha
        e, n_heads = m.embed_dim, m.num_heads
        d = e // n_heads
        outs = []
        for h in range(n_heads):
            rows = slice(h * d, (h + 1) * d)
            q = query @ m.in_proj_weight[rows].T + m.in_proj_bias[rows]
            k = key @ m.in_proj_weight[e:][rows].T + m.in_proj_bias[e:][rows]
            v = value @ m.in_proj_weight[2 * e:][rows].T + m.in_proj_bias[2 * e:][rows]
            w = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d), dim=-1)
            outs.append(w @ v)                                    # (B, L, d)
        return outs

    def forward(self, query, key, value, **_):
        m = self.mha
        d = m.embed_dim // m.num_heads
        out = m.out_proj.bias.expand(*query.shape[:2], -1).clone()
        for h, o in enumerate(self.head_outputs(query, key, value)):
            if h not in self.keep:
                o = torch.zeros_like(o) if self.fill is None else self.fill[h].expand_as(o)
            out = out + o @ m.out_proj.weight[:, h * d:(h + 1) * d].T
        return out, None


def _data(n=60, k=5, features=6, genes=6, types=4, seed=1, constant_gene=True):
    g = torch.Generator().manual_seed(seed)
    nb = torch.randn(n, k, features, generator=g, dtype=DT)
    ct = torch.randint(0, types, (n,), generator=g)
    ct[0] = types                 # one cell of its own type: skipped (< 2 cells)
    obs = torch.randn(n, genes, generator=g, dtype=DT)
    if constant_gene:
        obs[ct == 1, 2] = 0.7     # constant within type 1: EV is NaN, not 0
    return nb, ct, obs


def _brute_force(model, nb, ct, obs, n_types, ablation, mode, ref=None):
    """Per head, per group: a model copy with LoopAttention, EV and MSE with numpy."""
    n_heads = model.attention.num_heads
    fill = None
    if mode == "mean":
        loop = LoopAttention(model.attention, set(range(n_heads)))
        with torch.no_grad():
            kv = torch.tanh(model.encode(ref[0]))
            q = model.query(ref[1]).unsqueeze(1)
            fill = [o.mean(0) for o in loop.head_outputs(q, kv, kv)]     # (L, d) each
    genes = obs.shape[1]
    ev_gene = np.full((n_heads, n_types, genes), np.nan)
    ev_head = np.full((n_heads, n_types), np.nan)
    mse = np.full((n_heads, n_types), np.nan)
    for h in range(n_heads):
        keep = {h} if ablation == "keep" else set(range(n_heads)) - {h}
        variant = copy.deepcopy(model)
        variant.attention = LoopAttention(variant.attention, keep, fill)
        for g in range(n_types):
            idx = (ct == g).nonzero().flatten()
            if len(idx) < 2:
                continue
            with torch.no_grad():
                pred = variant(nb[idx], ct[idx]).numpy()
            y = obs[idx].numpy()
            res = np.var(pred - y, axis=0)
            var = np.var(y, axis=0)
            var[np.ptp(y, axis=0) == 0] = 0.0     # exactly 0 for a constant gene
            with np.errstate(divide="ignore", invalid="ignore"):
                ev_gene[h, g] = np.where(var > 0, 1.0 - res / var, np.nan)
            ev_head[h, g] = 1.0 - res.sum() / var.sum()
            mse[h, g] = np.mean((pred - y) ** 2)
    return ev_gene, ev_head, mse


# ----------------------------------------------------------------------------- brute force
@pytest.mark.parametrize("mode", ["zero", "mean"])
@pytest.mark.parametrize("ablation", ["keep", "remove"])
def test_agrees_with_brute_force_loop(ablation, mode, measured):
    model = NeighbourModel()
    nb, ct, obs = _data()
    ref = _data(n=25, seed=7)[:2]
    n_types = int(ct.max()) + 1
    result = HeadAblationExplainedVariance(model, "attention").attribute(
        (nb, ct), ct, obs, ablation=ablation, mode=mode, reference_inputs=ref,
        n_permutations=20, batch_size=50)
    ev_gene, ev_head, mse = _brute_force(model, nb, ct, obs, n_types, ablation, mode, ref)
    assert result.skipped_groups == [str(n_types - 1)]
    got = result.ev_gene.numpy()
    assert np.array_equal(np.isnan(got), np.isnan(ev_gene))     # NaN: constant gene, skipped
    assert np.isnan(got[:, 1, 2]).all()
    err = max(np.nanmax(np.abs(got - ev_gene)),
              np.nanmax(np.abs(result.ev_head.numpy() - ev_head)),
              np.nanmax(np.abs(result.mse.numpy() - mse)))
    measured(f"head ablation vs brute-force loop ({ablation}, {mode})", "NeighbourModel", err)
    assert err <= 1e-10


# ----------------------------------------------------------------------------- planted head
class PlantedModel(nn.Module):
    """Heads that read disjoint feature blocks; one head reads the genes, the rest noise.

    Each neighbour has ``genes`` gene features and ``noise`` features per other
    head. Head ``h`` (``planted``) attends over the neighbours' gene features
    and the decoder maps its output to the genes; every other head attends over
    its own noise features, which the decoder also maps to the genes. The
    observed expression follows head ``h`` only.
    """

    def __init__(self, n_heads=4, planted=2, genes=5, noise=3, n_types=3, seed=0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        d = max(genes, noise)
        e = n_heads * d
        self.n_features = genes + noise * (n_heads - 1)
        self.query = nn.Embedding(n_types, e)
        self.attention = nn.MultiheadAttention(e, n_heads, batch_first=True)
        self.decode = nn.Linear(e, genes)
        with torch.no_grad():
            embed = torch.zeros(e, self.n_features)
            col = genes
            for h in range(n_heads):
                if h == planted:
                    embed[h * d:h * d + genes, :genes] = torch.eye(genes)
                else:
                    embed[h * d:h * d + noise, col:col + noise] = torch.eye(noise)
                    col += noise
            self.register_buffer("embed", embed)
            self.query.weight.copy_(torch.randn(n_types, e, generator=g))
            block = torch.block_diag(*[torch.randn(d, d, generator=g) for _ in range(n_heads)])
            self.attention.in_proj_weight.copy_(torch.cat([torch.eye(e), block, torch.eye(e)]))
            self.attention.in_proj_bias.zero_()
            self.attention.out_proj.weight.copy_(torch.eye(e))
            self.attention.out_proj.bias.zero_()
            w = torch.randn(genes, e, generator=g) * 0.5
            w[:, planted * d:planted * d + genes] = 3.0 * torch.eye(genes)
            self.decode.weight.copy_(w)
            self.decode.bias.zero_()
        self.to(DT).eval()

    def forward(self, neighbours, cell_type):
        kv = neighbours @ self.embed.T
        q = self.query(cell_type).unsqueeze(1)
        return self.decode(self.attention(q, kv, kv, need_weights=False)[0].squeeze(1))


def _planted_data(model, n, k, signal, seed, n_types=3):
    g = torch.Generator().manual_seed(seed)
    nb = torch.randn(n, k, model.n_features, generator=g, dtype=DT)
    ct = torch.arange(n) % n_types
    noise = torch.randn(n, model.decode.out_features, generator=g, dtype=DT)
    if signal:
        only_planted = copy.deepcopy(model)
        only_planted.attention = LoopAttention(only_planted.attention, {2})
        with torch.no_grad():
            clean = only_planted(nb, ct)
        obs = clean + 0.3 * noise
    else:
        obs = noise
    return nb, ct, obs


def test_planted_head_is_found(measured):
    model = PlantedModel()
    nb, ct, obs = _planted_data(model, n=150, k=6, signal=True, seed=3)
    result = HeadAblationExplainedVariance(model, "attention").attribute(
        (nb, ct), ct, obs, random_state=0)
    ev, p_adj = result.ev_head.numpy(), result.p_adj.numpy()
    others = [0, 1, 3]
    measured("planted head: best other EV - planted EV", "PlantedModel",
             ev[others].max() - ev[2].min())
    assert result.n_permutations == math.ceil(4 * 3 / 0.05)
    assert (ev[2] > 0.8).all(), ev
    assert (ev[others] < 0.1).all(), ev
    assert (ev[2].min() - ev[others].max()) > 0.7
    assert (p_adj[2] <= 0.05).all(), p_adj
    assert (p_adj[others] > 0.05).all(), p_adj
    table = result.head_table()
    assert set(table.loc[table["significant"], "head"]) == {2}


# ----------------------------------------------------------------------------- keep all heads
def test_keeping_all_heads_reproduces_the_full_model(measured):
    model = NeighbourModel()
    nb, ct, obs = _data()
    n_types = int(ct.max()) + 1
    adapter = MultiheadAttentionAdapter(model.attention, "attention")
    keep_all = [torch.ones(2, 3, dtype=torch.bool)]
    preds = ablated_forward(model, [adapter], keep_all, (nb, ct), batch_size=17)
    ev_gene, ev_head, _ = explained_variance(preds, obs, ct, n_types)
    full = HeadAblationExplainedVariance(model, "attention").attribute(
        (nb, ct), ct, obs, n_permutations=5)
    err = max(float((ev_gene - full.full_ev_gene).abs().nan_to_num(0).max()),
              float((ev_head - full.full_ev_head).abs().nan_to_num(0).max()))
    measured("keep all heads vs full model EV", "NeighbourModel", err)
    assert err <= 1e-12
    # one-head layer: "keep head 0" is the full model, through the public API
    single = NeighbourModel(heads=1)
    r = HeadAblationExplainedVariance(single, "attention").attribute(
        (nb, ct), ct, obs, n_permutations=5)
    assert float((r.ev_gene[0] - r.full_ev_gene).abs().nan_to_num(0).max()) <= 1e-12


# ----------------------------------------------------------------------------- null model
def test_null_model_p_values_are_uniform(measured):
    """Observed independent of the inputs; heads independent of each other.

    Cells are i.i.d. and the heads read disjoint feature blocks, so given the
    observed values each (head, group) p-value is uniform on the grid
    ``{1, ..., n + 1} / (n + 1)`` and the heads' p-values are independent.
    """
    model = PlantedModel(n_heads=4, n_types=30)
    nb, ct, obs = _planted_data(model, n=30 * 12, k=4, signal=False, seed=11, n_types=30)
    result = HeadAblationExplainedVariance(model, "attention").attribute(
        (nb, ct), ct, obs, n_permutations=199, random_state=5)
    p = result.p_value.numpy().ravel()
    assert p.size == 120 and np.isfinite(p).all()
    stat = kstest(p, "uniform")
    measured("null model: KS statistic of p-values", "PlantedModel", stat.statistic)
    assert stat.pvalue > 0.01, stat
    assert (result.p_adj.numpy() > 0.05).mean() >= 0.95


# ----------------------------------------------------------------------------- per-head sum
@bounded(25)
@given(batch_first=st.booleans(), kdim=st.sampled_from([None, 3]), bias=st.booleans(),
       bias_kv=st.booleans(), zero_attn=st.booleans(), masked=st.booleans(),
       heads=st.sampled_from([1, 2, 3, 6]), seed=st.integers(0, 10_000))
def test_mha_per_head_outputs_sum_to_module_output(batch_first, kdim, bias, bias_kv, zero_attn,
                                                   masked, heads, seed):
    torch.manual_seed(seed)
    mha = nn.MultiheadAttention(6, heads, bias=bias, add_bias_kv=bias_kv,
                                add_zero_attn=zero_attn, kdim=kdim, vdim=kdim,
                                batch_first=batch_first, dtype=DT).eval()
    q = torch.randn(4, 3, 6, dtype=DT)
    kv = torch.randn(4, 5, kdim or 6, dtype=DT)
    if not batch_first:
        q, kv = q.transpose(0, 1), kv.transpose(0, 1)
    kwargs = {}
    if masked:
        kpm = torch.zeros(4, 5, dtype=DT)
        kpm[1, :2] = -math.inf
        kwargs = {"key_padding_mask": kpm, "attn_mask": torch.randn(3, 5, dtype=DT)}
    with torch.no_grad():
        out = mha(q, kv, kv, **kwargs)[0]
        contrib = per_head_outputs(mha, q, kv, kv, **kwargs)
    total = contrib.sum(1 if batch_first else 2)
    if bias:
        total = total + mha.out_proj.bias
    assert float((total - out).detach().abs().max()) <= 1e-12
