"""Head adapters and batched head ablation (``captum_genomics.heads``).

Values are checked against independent computations: the module's own
output for the per-head decomposition, and a hand-written per-head attention
with the ablated heads replaced, one variant at a time.
"""

from __future__ import annotations

import math
from functools import partial

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from captum_genomics.heads import (
    DEFAULT_BATCH_ROWS,
    HeadAdapter,
    HeadAdapterRegistry,
    HeadAxisAdapter,
    MultiheadAttentionAdapter,
    OutputProjectionAdapter,
    UnsupportedAttentionError,
    ablated_forward,
    default_head_adapters,
    keep_masks,
    per_head_outputs,
    reference_means,
)
from captum_genomics.testing.checks import compare_states as _compare
from captum_genomics.testing.checks import snapshot_state as _snapshot
from head_models import NeighbourModel

DT = torch.float64
pytestmark = pytest.mark.usefixtures("one_thread")


# ----------------------------------------------------------------------------- models
class ManualAttention(nn.Module):
    """Attention written out by hand with a head axis and a separate out-projection."""

    def __init__(self, embed=8, heads=2):
        super().__init__()
        self.heads, self.d = heads, embed // heads
        self.qkv = nn.Linear(embed, 3 * embed)
        self.pattern = nn.Softmax(dim=-1)          # output (B, H, L, L): a head axis
        self.proj = nn.Linear(embed, embed)        # an out-projection called as a module

    def forward(self, x):
        b, length, e = x.shape
        q, k, v = self.qkv(x).view(b, length, 3, self.heads, self.d).permute(2, 0, 3, 1, 4)
        w = self.pattern(q @ k.transpose(-1, -2) / math.sqrt(self.d))
        o = (w @ v).transpose(1, 2).reshape(b, length, e)
        return self.proj(o)


class TwoLayer(nn.Module):
    def __init__(self, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.first = nn.MultiheadAttention(8, 4, batch_first=True)
        self.second = ManualAttention(8, 2)
        self.head = nn.Linear(8, 3)
        self.to(DT).eval()

    def forward(self, x):
        h = x + self.first(x, x, x)[0]
        h = h + self.second(h)
        return self.head(h.mean(1))


def _mha_manual(m: nn.MultiheadAttention, q, k, v, replace):
    """Batch-first MHA (no masks) with heads replaced: ``replace(o (B,H,L,d)) -> o``."""
    e, h = m.embed_dim, m.num_heads
    d = e // h
    wq, wk, wv = m.in_proj_weight.chunk(3)
    bq, bk, bv = m.in_proj_bias.chunk(3)
    b, length = q.shape[:2]
    qh = F.linear(q, wq, bq).view(b, length, h, d).transpose(1, 2)
    kh = F.linear(k, wk, bk).view(b, -1, h, d).transpose(1, 2)
    vh = F.linear(v, wv, bv).view(b, -1, h, d).transpose(1, 2)
    o = torch.softmax(qh @ kh.transpose(-1, -2) / math.sqrt(d), -1) @ vh
    o = replace(o)
    return F.linear(o.transpose(1, 2).reshape(b, length, e), m.out_proj.weight, m.out_proj.bias)


def _neighbour_data(n=7, k=5, genes=6, types=3, seed=1):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(n, k, genes, generator=g, dtype=DT),
            torch.randint(0, types, (n,), generator=g))


# ----------------------------------------------------------------------------- per-head outputs
@settings(max_examples=25, deadline=None)
@given(batch_first=st.booleans(), separate_kv=st.booleans(), bias=st.booleans(),
       bias_kv=st.booleans(), zero_attn=st.booleans(),
       mask=st.sampled_from(["none", "bool2d", "float2d", "float3d", "kpm", "kpm+bool2d",
                             "float kpm", "causal"]),
       heads=st.sampled_from([1, 2, 4]), seed=st.integers(0, 2**16))
def test_per_head_outputs_sum_to_module_output(batch_first, separate_kv, bias, bias_kv,
                                               zero_attn, mask, heads, seed):
    torch.manual_seed(seed)
    e, b, length, s = 8, 3, 4, 5
    kdim = 5 if separate_kv else None
    m = nn.MultiheadAttention(e, heads, dropout=0.25, bias=bias, add_bias_kv=bias_kv,
                              add_zero_attn=zero_attn,
                              kdim=kdim, vdim=kdim, batch_first=batch_first, dtype=DT).eval()
    with torch.no_grad():
        for p in m.parameters():
            p.normal_()
    q = torch.randn(b, length, e, dtype=DT)
    k = torch.randn(b, s, kdim or e, dtype=DT)
    v = torch.randn(b, s, kdim or e, dtype=DT)
    if mask == "causal":       # self-attention with the causal mask
        s, k, v = length, torch.randn(b, length, kdim or e, dtype=DT), None
        v = torch.randn(b, length, kdim or e, dtype=DT)
    if not batch_first:
        q, k, v = q.transpose(0, 1), k.transpose(0, 1), v.transpose(0, 1)
    kpm = torch.zeros(b, s, dtype=torch.bool)
    kpm[0, 1] = kpm[2, -1] = True
    kwargs = {
        "none": {},
        "bool2d": {"attn_mask": torch.rand(length, s) > 0.7},
        "float2d": {"attn_mask": torch.randn(length, s, dtype=DT)},
        "float3d": {"attn_mask": torch.randn(b * heads, length, s, dtype=DT)},
        "kpm": {"key_padding_mask": kpm},
        "kpm+bool2d": {"key_padding_mask": kpm, "attn_mask": torch.rand(length, s) > 0.8},
        "float kpm": {"key_padding_mask": torch.randn(b, s, dtype=DT)},
        "causal": {"attn_mask": nn.Transformer.generate_square_subsequent_mask(length,
                                                                              dtype=DT),
                   "is_causal": True, "need_weights": False},
    }[mask]
    if mask.startswith("bool") or mask == "kpm+bool2d":
        kwargs["attn_mask"][:, 0] = False          # no fully masked rows (NaN in torch too)
    with torch.no_grad():
        expected = m(q, k, v, **kwargs)[0]
        contrib = per_head_outputs(m, q, k, v, **kwargs)
    axis = 1 if batch_first else 2
    assert contrib.shape[axis] == heads
    total = contrib.sum(axis) + (m.out_proj.bias if bias else 0)
    assert (total - expected).abs().max() <= 1e-12


def test_per_head_outputs_unbatched_and_single_head_block():
    torch.manual_seed(0)
    m = nn.MultiheadAttention(6, 3, dtype=DT).eval()
    q, k = torch.randn(4, 6, dtype=DT), torch.randn(5, 6, dtype=DT)
    with torch.no_grad():
        contrib = per_head_outputs(m, q, k, k)
        out = m(q, k, k)[0]
    assert contrib.shape == (3, 4, 6)
    assert (contrib.sum(0) + m.out_proj.bias - out).abs().max() <= 1e-12
    # head h's contribution = softmax(q_h k_h^T / sqrt(d)) v_h W_out[:, h-block]^T
    wq, wk, wv = m.in_proj_weight.chunk(3)
    bq, bk, bv = m.in_proj_bias.chunk(3)
    h = 1
    qh = F.linear(q, wq, bq)[:, 2:4]
    kh, vh = F.linear(k, wk, bk)[:, 2:4], F.linear(k, wv, bv)[:, 2:4]
    direct = torch.softmax(qh @ kh.T / math.sqrt(2), -1) @ vh @ m.out_proj.weight[:, 2:4].T
    assert (contrib[h] - direct.detach()).abs().max() <= 1e-12


def test_per_head_outputs_rejects_other_modules():
    with pytest.raises(UnsupportedAttentionError, match="MultiheadAttention"):
        per_head_outputs(nn.Linear(3, 3), torch.zeros(1, 3), torch.zeros(1, 3),
                         torch.zeros(1, 3))


# ----------------------------------------------------------------------------- ablated_forward
def test_keep_masks_keep_and_remove():
    keep = keep_masks([2, 3], [(0, 0), (0, 1), (1, 0), (1, 1), (1, 2)], "keep")
    assert keep[0].tolist() == [[1, 0], [0, 1], [1, 1], [1, 1], [1, 1]]
    assert keep[1].tolist() == [[1, 1, 1]] * 2 + [[1, 0, 0], [0, 1, 0], [0, 0, 1]]
    remove = keep_masks([2, 3], [(0, 1), (1, 2)], "remove")
    assert remove[0].tolist() == [[1, 0], [1, 1]]
    assert remove[1].tolist() == [[1, 1, 1], [1, 1, 0]]
    with pytest.raises(ValueError, match="out of range"):
        keep_masks([2], [(0, 2)])
    with pytest.raises(ValueError, match="ablation"):
        keep_masks([2], [(0, 0)], "drop")


@pytest.mark.parametrize("mode", ["zero", "mean"])
@pytest.mark.parametrize("ablation", ["keep", "remove"])
def test_neighbour_model_against_manual_loop(mode, ablation):
    model = NeighbourModel()
    nb, ct = _neighbour_data()
    ref_nb, ref_ct = _neighbour_data(n=5, seed=2)
    adapter = MultiheadAttentionAdapter(model.attention, "attention")
    variants = [(0, h) for h in range(4)]
    keep = keep_masks([4], variants, ablation)
    got = ablated_forward(model, [adapter], keep, (nb, ct), mode=mode,
                          reference_inputs=(ref_nb, ref_ct), batch_size=9)
    assert got.shape == (4, 7, 6)

    def heads_of(neigh, types):
        kv = model.encode(neigh)
        q = model.query(types).unsqueeze(1)
        captured = {}
        _mha_manual(model.attention, q, kv, kv, lambda o: captured.setdefault("o", o))
        return captured["o"]                               # (B, H, 1, d)

    with torch.no_grad():
        ref_mean = heads_of(ref_nb, ref_ct).mean(0)
        for v in range(4):
            mask = keep[0][v].view(1, 4, 1, 1)
            fill = torch.zeros(()) if mode == "zero" else ref_mean
            kv = model.encode(nb)
            q = model.query(ct).unsqueeze(1)
            out = _mha_manual(model.attention, q, kv, kv,
                              lambda o, mask=mask, fill=fill: torch.where(mask, o, fill))
            expected = model.decode(out.squeeze(1))
            assert (got[v] - expected).abs().max() <= 1e-12


def test_keep_all_heads_is_the_model_bitwise():
    model = NeighbourModel()
    nb, ct = _neighbour_data()
    adapter = MultiheadAttentionAdapter(model.attention, "attention")
    got = ablated_forward(model, [adapter], [torch.ones(2, 4, dtype=torch.bool)], (nb, ct))
    with torch.no_grad():
        full = model(nb, ct)
        repeated = model(torch.cat([nb, nb]), torch.cat([ct, ct]))   # same batch size
    assert torch.equal(got.flatten(0, 1), repeated)
    assert (got - full).abs().max() <= 1e-14


def test_include_full_is_a_plain_chunked_forward_bitwise():
    model = NeighbourModel()
    nb, ct = _neighbour_data(n=11)
    adapter = MultiheadAttentionAdapter(model.attention, "attention")
    keep = keep_masks([4], [(0, h) for h in range(4)])
    for batch_size in (None, 4, 30):
        variants = ablated_forward(model, [adapter], keep, (nb, ct), batch_size=batch_size)
        got = ablated_forward(model, [adapter], keep, (nb, ct), batch_size=batch_size,
                              include_full=True)
        assert got.shape == (5, 11, 6)
        assert torch.equal(got[:4], variants)
        step = batch_size or 11
        with torch.no_grad():
            full = torch.cat([model(nb[lo:lo + step], ct[lo:lo + step])
                              for lo in range(0, 11, step)])
        assert torch.equal(got[4], full)
    assert not model.attention._forward_hooks and not model.attention._forward_pre_hooks


def test_batch_size_does_not_change_results():
    model = NeighbourModel()
    nb, ct = _neighbour_data(n=11)
    adapter = MultiheadAttentionAdapter(model.attention, "attention")
    keep = keep_masks([4], [(0, h) for h in range(4)])
    a = ablated_forward(model, [adapter], keep, (nb, ct))
    b = ablated_forward(model, [adapter], keep, (nb, ct), batch_size=5)
    assert (a - b).abs().max() <= 1e-13


def test_additional_forward_args_are_repeated_like_inputs():
    model = NeighbourModel()
    nb, ct = _neighbour_data()
    adapter = MultiheadAttentionAdapter(model.attention, "attention")
    keep = keep_masks([4], [(0, 1), (0, 3)])
    a = ablated_forward(model, [adapter], keep, nb, additional_forward_args=(ct,), batch_size=4)
    b = ablated_forward(model, [adapter], keep, (nb, ct))
    assert torch.equal(a, b)


def test_two_layers_three_adapter_kinds():
    """MHA + head-axis pattern + out-projection adapters, against a manual forward."""
    model = TwoLayer()
    x = torch.randn(5, 3, 8, dtype=DT)
    first = MultiheadAttentionAdapter(model.first, "first")
    proj = OutputProjectionAdapter(model.second.proj, "second.proj", n_heads=2)
    variants = [(0, 0), (0, 3), (1, 0), (1, 1)]
    keep = keep_masks([4, 2], variants, "keep")
    got = ablated_forward(model, [first, proj], keep, x)

    def manual(mask0, mask1):
        h = x + _mha_manual(model.first, x, x, x,
                            lambda o: torch.where(mask0.view(1, 4, 1, 1), o, 0.0))
        s = model.second
        b, length, e = h.shape
        q, k, v = s.qkv(h).view(b, length, 3, 2, 4).permute(2, 0, 3, 1, 4)
        o = torch.softmax(q @ k.transpose(-1, -2) / 2.0, -1) @ v        # (B, 2, L, 4)
        o = torch.where(mask1.view(1, 2, 1, 1), o, 0.0)
        h = h + s.proj(o.transpose(1, 2).reshape(b, length, e))
        return model.head(h.mean(1))

    with torch.no_grad():
        for v in range(len(variants)):
            assert (got[v] - manual(keep[0][v], keep[1][v])).abs().max() <= 1e-12

    # pattern adapter: zeroing a head's attention pattern zeroes its output too
    pattern = HeadAxisAdapter(model.second.pattern, "second.pattern", n_heads=2)
    keep2 = keep_masks([4, 2], variants[2:], "keep")
    got2 = ablated_forward(model, [first, pattern], keep2, x)
    assert (got2 - got[2:]).abs().max() <= 1e-12


def test_head_axis_adapter_mean_mode_with_other_axes():
    class Heads(nn.Module):          # output (L, B, H, d): batch axis 1, head axis 2
        num_heads = 3

        def forward(self, x):        # x (B, L, H*d)
            return x.view(*x.shape[:2], 3, 2).transpose(0, 1)

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.heads = Heads()

        def forward(self, x):
            return self.heads(x).transpose(0, 1).flatten(1)

    model = Model()
    x, ref = torch.randn(4, 2, 6, dtype=DT), torch.randn(6, 2, 6, dtype=DT)
    adapter = HeadAxisAdapter(model.heads, "heads", head_dim=2, batch_dim=1)
    assert adapter.n_heads == 3
    keep = keep_masks([3], [(0, 1)], "remove")
    got = ablated_forward(model, [adapter], keep, x, mode="mean", reference_inputs=ref)[0]
    expected = x.view(4, 2, 3, 2).clone()
    expected[:, :, 1] = ref.view(6, 2, 3, 2)[:, :, 1].mean(0)
    assert (got - expected.flatten(1)).abs().max() <= 1e-15
    means = reference_means(model, [adapter], ref)
    assert means[0].shape == (3, 2, 2)                  # (H, L, d)


def test_reference_means_mha():
    model = NeighbourModel()
    ref_nb, ref_ct = _neighbour_data(n=9, seed=3)
    adapter = MultiheadAttentionAdapter(model.attention, "attention")
    mean = reference_means(model, [adapter], (ref_nb, ref_ct), batch_size=4)[0]
    with torch.no_grad():
        kv = model.encode(ref_nb)
        q = model.query(ref_ct).unsqueeze(1)
        captured = {}
        _mha_manual(model.attention, q, kv, kv, lambda o: captured.setdefault("o", o))
    assert mean.shape == (4, 1, 2)
    assert (mean - captured["o"].mean(0)).abs().max() <= 1e-14


def test_mha_batch_first_false_and_attention_weights_untouched():
    class SeqFirst(nn.Module):
        def __init__(self):
            super().__init__()
            self.attn = nn.MultiheadAttention(4, 2, dtype=DT)

        def forward(self, x):                     # x (B, L, E)
            out, w = self.attn(x.transpose(0, 1), x.transpose(0, 1), x.transpose(0, 1))
            return torch.cat([out.transpose(0, 1).flatten(1), w.flatten(1)], 1)

    torch.manual_seed(0)
    model = SeqFirst().eval()
    x = torch.randn(3, 5, 4, dtype=DT)
    adapter = MultiheadAttentionAdapter(model.attn, "attn")
    got = ablated_forward(model, [adapter], keep_masks([2], [(0, 0)]), x)[0]
    with torch.no_grad():
        full = model(x)
        heads = per_head_outputs(model.attn, *(x.transpose(0, 1),) * 3)   # (L, B, H, E)
    out = (heads[:, :, 0] + model.attn.out_proj.bias).transpose(0, 1).flatten(1)
    assert (got[:, :20] - out).abs().max() <= 1e-12
    assert torch.equal(got[:, 20:], full[:, 20:])        # the weights part as returned


def test_model_left_unchanged_and_hooks_removed():
    model = NeighbourModel()
    nb, ct = _neighbour_data()
    adapter = MultiheadAttentionAdapter(model.attention, "attention")
    keep = keep_masks([4], [(0, h) for h in range(4)])
    before = _snapshot(model, [nb, ct])
    first = ablated_forward(model, [adapter], keep, (nb, ct), mode="mean",
                            reference_inputs=(nb, ct))
    second = ablated_forward(model, [adapter], keep, (nb, ct), mode="mean",
                             reference_inputs=(nb, ct))
    assert torch.equal(first, second)
    with pytest.raises(RuntimeError):                      # error inside a pass
        ablated_forward(model, [adapter], keep, (nb, ct.clamp(max=0).float()))
    problems, _ = _compare(before, _snapshot(model, [nb, ct]))
    assert problems == []
    assert not model.attention._forward_hooks and not model.attention._forward_hooks_with_kwargs
    assert torch.equal(model(nb, ct), model(nb, ct))


# ----------------------------------------------------------------------------- registry
def test_registry_is_immutable_and_walks_the_mro():
    class MyMHA(nn.MultiheadAttention):
        pass

    reg = default_head_adapters()
    assert nn.MultiheadAttention in reg and nn.TransformerEncoderLayer in reg and len(reg) == 2
    adapter = reg.adapter_for(MyMHA(4, 2), "x")
    assert isinstance(adapter, MultiheadAttentionAdapter) and adapter.n_heads == 2

    reg2 = reg.with_adapter(nn.Softmax, partial(HeadAxisAdapter, n_heads=2))
    assert nn.Softmax not in reg and nn.Softmax in reg2
    a = reg2.adapter_for(nn.Softmax(-1), "pattern")
    assert isinstance(a, HeadAxisAdapter) and a.n_heads == 2
    with pytest.raises(TypeError, match="module_type"):
        reg.with_adapter(int, HeadAxisAdapter)
    with pytest.raises(TypeError, match="callable"):
        reg.with_adapter(nn.Softmax, 3)
    bad = HeadAdapterRegistry({nn.ReLU: lambda module, name: "nope"})
    with pytest.raises(TypeError, match="HeadAdapter"):
        bad.adapter_for(nn.ReLU(), "relu")


def test_registry_error_names_layer_type_and_fix():
    with pytest.raises(UnsupportedAttentionError) as info:
        default_head_adapters().adapter_for(nn.Linear(3, 3), "decode")
    msg = str(info.value)
    assert "'decode'" in msg and "Linear" in msg and "with_adapter" in msg
    assert isinstance(info.value, TypeError)


def test_custom_adapter_subclass():
    class Gate(nn.Module):           # output (B, H) gates, one per head
        def forward(self, x):
            return torch.sigmoid(x)

    class GateAdapter(HeadAdapter):
        def __init__(self, module, name, **options):
            super().__init__(module, name, **options)
            self.n_heads = 3

        def attach(self, transform):
            return [self.module.register_forward_hook(lambda m, a, out: transform(out))]

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.gate = Gate()

        def forward(self, x):
            return self.gate(x) * 2

    model = Model()
    reg = default_head_adapters().with_adapter(Gate, GateAdapter)
    adapter = reg.adapter_for(model.gate, "gate")
    x = torch.randn(4, 3, dtype=DT)
    got = ablated_forward(model, [adapter], keep_masks([3], [(0, 2)]), x)[0]
    expected = torch.sigmoid(x) * 2
    expected[:, :2] = 0
    assert torch.equal(got, expected)


# ----------------------------------------------------------------------------- errors
def test_adapter_construction_errors():
    with pytest.raises(UnsupportedAttentionError, match="'lin'.*Linear"):
        MultiheadAttentionAdapter(nn.Linear(2, 2), "lin")
    with pytest.raises(ValueError, match="n_heads"):
        HeadAxisAdapter(nn.Softmax(-1), "pattern")
    with pytest.raises(ValueError, match="n_heads"):
        OutputProjectionAdapter(nn.Linear(8, 8), "proj")
    with pytest.raises(ValueError, match="divisible"):
        OutputProjectionAdapter(nn.Linear(8, 8), "proj", n_heads=3)
    with pytest.raises(TypeError, match="unknown option"):
        MultiheadAttentionAdapter(nn.MultiheadAttention(4, 2), "a", head_dim=1)


def test_ablated_forward_errors():
    model = NeighbourModel()
    nb, ct = _neighbour_data()
    adapter = MultiheadAttentionAdapter(model.attention, "attention")
    keep = keep_masks([4], [(0, 0)])
    with pytest.raises(ValueError, match=r"keep\[0\].*\(V, 4\).*\(1, 3\)"):
        ablated_forward(model, [adapter], [torch.ones(1, 3, dtype=torch.bool)], (nb, ct))
    with pytest.raises(TypeError, match="bool"):
        ablated_forward(model, [adapter], [torch.ones(1, 4)], (nb, ct))
    with pytest.raises(ValueError, match="one mask per adapter"):
        ablated_forward(model, [adapter], keep * 2, (nb, ct))
    bad = nb.clone()
    bad[2, 1, 0] = float("nan")
    with pytest.raises(ValueError, match=r"inputs\[0\].*NaN"):
        ablated_forward(model, [adapter], keep, (bad, ct))
    with pytest.raises(ValueError, match="reference_inputs"):
        ablated_forward(model, [adapter], keep, (nb, ct), mode="mean")
    with pytest.raises(ValueError, match="mode"):
        ablated_forward(model, [adapter], keep, (nb, ct), mode="median")
    with pytest.raises(ValueError, match="batch_size"):
        ablated_forward(model, [adapter], keep, (nb, ct), batch_size=0)
    with pytest.raises(ValueError, match="additional_forward_args"):
        ablated_forward(model, [adapter], keep, nb, additional_forward_args=(ct[:3],))
    model.attention.dropout = 0.1
    model.train()
    try:
        with pytest.raises(ValueError, match="training mode"):
            ablated_forward(model, [adapter], keep, (nb, ct))
    finally:
        model.attention.dropout = 0.0
        model.eval()
    # a layer the model never calls
    other = MultiheadAttentionAdapter(nn.MultiheadAttention(8, 4, dtype=DT), "elsewhere")
    with pytest.raises(ValueError, match="'elsewhere' was not called"):
        ablated_forward(model, [other], keep, (nb, ct))
    assert not model.attention._forward_hooks_with_kwargs


def test_unbatched_call_inside_a_model_is_a_clear_error():
    class Unbatched(nn.Module):
        def __init__(self):
            super().__init__()
            self.attn = nn.MultiheadAttention(4, 2, dtype=DT)

        def forward(self, x):
            return torch.stack([self.attn(r, r, r)[0].sum(0) for r in x])

    model = Unbatched().eval()
    adapter = MultiheadAttentionAdapter(model.attn, "attn")
    with pytest.raises(ValueError, match="unbatched"):
        ablated_forward(model, [adapter], keep_masks([2], [(0, 0)]),
                        torch.randn(2, 3, 4, dtype=DT))
    assert not model.attn._forward_hooks_with_kwargs


def test_default_batch_size_bounds_the_gathered_bytes():
    from captum_genomics.heads import DEFAULT_CHUNK_BYTES, default_batch_size

    assert DEFAULT_BATCH_ROWS == 4096 and DEFAULT_CHUNK_BYTES == 8 * 2**20
    big = torch.zeros(10, 9, 765)                   # 27540 bytes per row
    assert default_batch_size([big, torch.zeros(10, dtype=torch.long)]) == (
        DEFAULT_CHUNK_BYTES // (27540 + 8))
    assert default_batch_size([torch.zeros(10, 3)]) == DEFAULT_BATCH_ROWS
    assert default_batch_size([torch.zeros(2, 10**7)]) == 1
    assert default_batch_size([torch.zeros(10, 3)], ("x", torch.zeros(10, 2**19))) == 3


def test_check_finite_overflow_falls_back_to_the_full_check():
    from captum_genomics._utils.checks import check_finite

    big = torch.full((4,), 3e38, dtype=torch.float32)      # the sum overflows; all finite
    check_finite(big, "x")
    bad = big.clone()
    bad[2] = float("inf")
    with pytest.raises(ValueError, match=r"`x` contains 1 non-finite value\(s\) \(Inf\)"):
        check_finite(bad, "x")
    check_finite(torch.zeros(0), "x")
    check_finite(torch.arange(3), "x")                  # integers: nothing to check


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA not available")
def test_cuda_matches_cpu():
    from captum_genomics.methods import HeadAblationExplainedVariance

    model = NeighbourModel()
    nb, ct = _neighbour_data(n=20)
    obs = torch.randn(20, 6, dtype=DT)
    cpu = HeadAblationExplainedVariance(model, "attention").attribute(
        (nb, ct), ct, obs, mode="mean", reference_inputs=(nb, ct), n_permutations=30)
    gpu_model = NeighbourModel().cuda()
    gpu = HeadAblationExplainedVariance(gpu_model, "attention").attribute(
        (nb.cuda(), ct.cuda()), ct, obs.cuda(), mode="mean", reference_inputs=(nb.cuda(),
                                                                             ct.cuda()),
        n_permutations=30)
    assert (cpu.ev_gene - gpu.ev_gene.cpu()).abs().max() <= 1e-10
    # same permutations; a count may differ only for a tie within rounding
    assert (cpu.p_value - gpu.p_value.cpu()).abs().max() <= 1 / 31 + 1e-12
