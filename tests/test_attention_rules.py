"""Exact DeepLIFT through PyTorch's attention (issue #10, section 1).

``F.scaled_dot_product_attention`` and ``F.multi_head_attention_forward`` are
decomposed (:mod:`captum_genomics.deeplift.decompositions`) into ops that have
exact rules. Checked against independent computations:

* the decompositions' forward equals torch's own functions (float64, ~1e-15);
* ``ShuffleDeepLiftShap`` is additive (max |delta| <= 1e-10, float64) on
  ``nn.MultiheadAttention``, direct SDPA and ``nn.TransformerEncoderLayer``
  models over hypothesis-drawn configurations;
* its attributions equal those of the same weights written out by hand
  (explicit q/k/v linears, softmax, matmul), which the engine already treats
  exactly op by op;
* no "no rule" warning, the model and ``torch.backends.mha`` fast-path
  setting are left as they were.
"""

from __future__ import annotations

import math
import warnings

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from captum_genomics import ShuffleDeepLiftShap
from captum_genomics.deeplift import DeepLiftPasses, deeplift_multipliers, detached_forward
from captum_genomics.deeplift.decompositions import (
    DEFAULT_DECOMPOSITIONS,
    Decomposition,
    multi_head_attention_forward,
    scaled_dot_product_attention,
)
from captum_genomics.deeplift.rules import default_rules
from captum_genomics.deeplift.rules.base import UnsupportedOperationWarning
from captum_genomics.testing.checks import check_additivity, check_model_unchanged

DT = torch.float64
L_SEQ = 10
SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow])
#: max |delta| per configuration family, filled by the tests (printed with -s)
MEASURED: dict[str, float] = {}


def _note(family: str, value: float) -> None:
    MEASURED[family] = max(MEASURED.get(family, 0.0), value)


def _one_hot(n: int, length: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    idx = torch.randint(4, (n, length), generator=g)
    return F.one_hot(idx, 4).transpose(1, 2).to(DT)


def _references(n: int, k: int, length: int, seed: int) -> torch.Tensor:
    return _one_hot(n * k, length, seed).reshape(n, k, 4, length)


def _attribute_checked(model, x, refs, family):
    """Additivity through check_additivity, and no UnsupportedOperationWarning."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ShuffleDeepLiftShap(model).attribute(x, references=refs)
    assert not [w for w in caught if issubclass(w.category, UnsupportedOperationWarning)], \
        [str(w.message) for w in caught]
    report = check_additivity(ShuffleDeepLiftShap(model), x, refs)
    _note(family, report.max_error)
    assert report.passed, report
    return report


# ----------------------------------------------------------------------------- masks


def _kpm(kind, n, s, seed):
    """A key padding mask (True/-inf = ignored) that never hides key 0."""
    if kind is None:
        return None
    g = torch.Generator().manual_seed(seed)
    hide = torch.rand(n, s, generator=g) < 0.4
    hide[:, 0] = False
    if kind == "bool":
        return hide
    return torch.zeros(n, s, dtype=DT).masked_fill(hide, float("-inf")) + \
        0.3 * torch.randn(n, s, generator=g, dtype=DT)


def _attn_mask(kind, n_heads_batch, lq, s, seed):
    """2D/3D bool or float attention masks (True/-inf = not allowed); key 0 always allowed."""
    if kind is None:
        return None
    g = torch.Generator().manual_seed(seed + 1)
    shape = (lq, s) if kind.startswith("2d") else (n_heads_batch, lq, s)
    hide = torch.rand(*shape, generator=g) < 0.3
    hide[..., 0] = False
    if kind.endswith("bool"):
        return hide
    return torch.zeros(shape, dtype=DT).masked_fill(hide, float("-inf")) + \
        0.5 * torch.randn(*shape, generator=g, dtype=DT)


# ---------------------------------------------------------- forward equals torch's


mha_configs = st.fixed_dictionaries({
    "heads": st.integers(1, 4),
    "head_dim": st.integers(1, 3),
    "kv": st.sampled_from(["self", "shared_kv", "separate"]),
    "separate_weights": st.booleans(),
    "bias": st.booleans(),
    "bias_kv": st.booleans(),
    "zero_attn": st.booleans(),
    "kpm": st.sampled_from([None, "bool", "float"]),
    "mask": st.sampled_from([None, "2d_bool", "2d_float", "3d_bool", "3d_float", "causal"]),
    "need_weights": st.booleans(),
    "average": st.booleans(),
    "batched": st.booleans(),
    "seed": st.integers(0, 10_000),
})


def _mha_args(c):
    g = torch.Generator().manual_seed(c["seed"])
    e, h = c["heads"] * c["head_dim"], c["heads"]
    n, lq, s = (3 if c["batched"] else 1), 5, 6
    if c["kv"] == "self":
        s = lq
    kdim = vdim = e
    if c["separate_weights"]:
        kdim, vdim = e + 1, e + 2
    mha = nn.MultiheadAttention(e, h, bias=c["bias"], add_bias_kv=c["bias_kv"],
                                add_zero_attn=c["zero_attn"], kdim=kdim, vdim=vdim).to(DT)
    with torch.no_grad():
        for p in mha.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=DT))
    q = torch.randn(lq, n, e, generator=g, dtype=DT)
    if c["kv"] == "self" and not c["separate_weights"]:
        k = v = q
    elif c["kv"] == "shared_kv" and not c["separate_weights"]:
        k = v = torch.randn(s, n, e, generator=g, dtype=DT)
    else:
        k = torch.randn(s, n, kdim, generator=g, dtype=DT)
        v = torch.randn(s, n, vdim, generator=g, dtype=DT)
    kpm = _kpm(c["kpm"], n, s, c["seed"])
    causal = c["mask"] == "causal"
    if causal:
        mask = nn.Transformer.generate_square_subsequent_mask(lq, dtype=DT)[:, :s] if s == lq \
            else torch.zeros(lq, s, dtype=DT)
    else:
        mask = _attn_mask(c["mask"], n * h, lq, s, c["seed"])
    if not c["batched"]:
        q, k, v = q[:, 0], k[:, 0], v[:, 0]
        kpm = None if kpm is None else kpm[0]
    kwargs = dict(
        training=False, key_padding_mask=kpm, need_weights=c["need_weights"], attn_mask=mask,
        use_separate_proj_weight=not mha._qkv_same_embed_dim,
        q_proj_weight=mha.q_proj_weight, k_proj_weight=mha.k_proj_weight,
        v_proj_weight=mha.v_proj_weight, average_attn_weights=c["average"], is_causal=causal)
    args = (q, k, v, e, h, mha.in_proj_weight, mha.in_proj_bias, mha.bias_k, mha.bias_v,
            c["zero_attn"], 0.0, mha.out_proj.weight, mha.out_proj.bias)
    return args, kwargs


@settings(max_examples=120, **SETTINGS)
@given(mha_configs)
def test_mha_decomposition_equals_torch(c):
    args, kwargs = _mha_args(c)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # torch: mixed bool/float masks are deprecated
        expected = F.multi_head_attention_forward(*args, **kwargs)
        got = multi_head_attention_forward(*args, **kwargs)
    assert (got[1] is None) == (expected[1] is None)
    for a, b in zip(got, expected):
        if b is not None:
            assert a.shape == b.shape
            err = float((a - b).abs().max())
            _note("forward: multi_head_attention_forward", err)
            assert err <= 1e-14 * (1 + float(b.abs().max())), err


sdpa_configs = st.fixed_dictionaries({
    "heads": st.integers(1, 4),
    "gqa": st.booleans(),
    "mask": st.sampled_from([None, "bool", "float", "bool_bcast", "causal"]),
    "scale": st.sampled_from([None, 0.3, 2.0]),
    "lq": st.integers(1, 6),
    "s": st.integers(1, 6),
    "seed": st.integers(0, 10_000),
})


def _sdpa_mask(kind, n, h, lq, s, seed):
    g = torch.Generator().manual_seed(seed)
    if kind in (None, "causal"):
        return None
    shape = (n, h, lq, s) if kind != "bool_bcast" else (lq, s)
    allowed = torch.rand(*shape, generator=g) > 0.3
    allowed[..., 0] = True
    if kind.startswith("bool"):
        return allowed
    return torch.zeros(shape, dtype=DT).masked_fill(~allowed, float("-inf")) + \
        torch.randn(*shape, generator=g, dtype=DT)


@settings(max_examples=120, **SETTINGS)
@given(sdpa_configs)
def test_sdpa_decomposition_equals_torch(c):
    g = torch.Generator().manual_seed(c["seed"])
    n, h, d = 2, c["heads"], 3
    hk = 1 if c["gqa"] else h
    q = torch.randn(n, h, c["lq"], d, generator=g, dtype=DT)
    k = torch.randn(n, hk, c["s"], d, generator=g, dtype=DT)
    v = torch.randn(n, hk, c["s"], d + 1, generator=g, dtype=DT)
    mask = _sdpa_mask(c["mask"], n, h, c["lq"], c["s"], c["seed"])
    kw = dict(attn_mask=mask, is_causal=c["mask"] == "causal", scale=c["scale"],
              enable_gqa=c["gqa"])
    expected = F.scaled_dot_product_attention(q, k, v, **kw)
    got = scaled_dot_product_attention(q, k, v, **kw)
    err = float((got - expected).abs().max())
    _note("forward: scaled_dot_product_attention", err)
    assert err <= 1e-14 * (1 + float(expected.abs().max())), err


def test_dropout_raises_clear_error():
    q = torch.randn(1, 1, 3, 2, dtype=DT)
    with pytest.raises(ValueError, match="dropout_p=0.1.*eval"):
        scaled_dot_product_attention(q, q, q, dropout_p=0.1)
    mha = nn.MultiheadAttention(4, 2, dropout=0.5).to(DT)  # training mode
    x = torch.randn(3, 2, 4, dtype=DT)
    with pytest.raises(ValueError, match="eval"):
        multi_head_attention_forward(x, x, x, 4, 2, mha.in_proj_weight, mha.in_proj_bias, None,
                                     None, False, 0.5, mha.out_proj.weight, mha.out_proj.bias,
                                     training=True)


# ------------------------------------------------------------------ models under test


class _Stem(nn.Module):
    def __init__(self, e):
        super().__init__()
        self.conv = nn.Conv1d(4, e, 3, padding=1)

    def forward(self, x):
        return F.gelu(self.conv(x)).transpose(1, 2)  # (N, L, E)


class MHAModel(nn.Module):
    """Conv stem + nn.MultiheadAttention (+ the attention weights in the output)."""

    def __init__(self, c):
        super().__init__()
        e, h = c["heads"] * c["head_dim"], c["heads"]
        self.c, self.e, self.h = c, e, h
        self.stem = _Stem(e)
        self.separate = c["separate_weights"]
        kdim, vdim = (e + 1, e + 2) if self.separate else (e, e)
        self.to_k = nn.Linear(e, kdim)
        self.to_v = nn.Linear(e, vdim)
        self.mha = nn.MultiheadAttention(e, h, bias=c["bias"], add_bias_kv=c["bias_kv"],
                                         add_zero_attn=c["zero_attn"], kdim=kdim, vdim=vdim,
                                         batch_first=c["batch_first"], dropout=0.1)
        self.head = nn.Linear(e, 1)
        kpm = _kpm(c["kpm"], 1, L_SEQ, c["seed"])
        self.register_buffer("kpm", None if kpm is None else kpm[0])
        mask = _attn_mask(c["mask"], h, L_SEQ, L_SEQ, c["seed"])
        self.register_buffer("mask", mask)

    def forward(self, x):
        hs = self.stem(x)
        n = hs.shape[0]
        if self.separate:
            k, v = self.to_k(hs), torch.tanh(self.to_v(hs))
        else:
            k = v = hs
        q = hs
        if not self.c["batch_first"]:
            q, k, v = q.transpose(0, 1), k.transpose(0, 1), v.transpose(0, 1)
            if not self.separate:
                k = v = q
        kpm = None if self.kpm is None else self.kpm.expand(n, L_SEQ)
        mask = self.mask
        if mask is not None and mask.dim() == 3:
            mask = mask.repeat(n, 1, 1)
        out, w = self.mha(q, k, v, key_padding_mask=kpm, attn_mask=mask,
                          need_weights=self.c["need_weights"],
                          average_attn_weights=self.c["average"])
        if not self.c["batch_first"]:
            out = out.transpose(0, 1)
        y = self.head(out.mean(1))[:, 0]
        if w is not None:
            y = y + w.reshape(n, -1)[:, :7].sum(1)
        return y


mha_model_configs = st.fixed_dictionaries({
    "heads": st.integers(1, 4),
    "head_dim": st.integers(1, 3),
    "batch_first": st.booleans(),
    "separate_weights": st.booleans(),
    "bias": st.booleans(),
    "bias_kv": st.booleans(),
    "zero_attn": st.booleans(),
    "kpm": st.sampled_from([None, "bool", "float"]),
    "mask": st.sampled_from([None, "2d_bool", "2d_float", "3d_float"]),
    "need_weights": st.booleans(),
    "average": st.booleans(),
    "seed": st.integers(0, 10_000),
})


def _build(cls, *args, seed=0):
    """A float64 model in eval mode, weights scaled up so attention is far from uniform."""
    torch.manual_seed(seed)
    model = cls(*args).to(DT).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(2.5)
    return model


@settings(max_examples=25, **SETTINGS)
@given(mha_model_configs)
def test_mha_model_additive(c):
    # torch deprecates mixing a bool key padding mask with a float attn_mask: keep them alike
    if c["kpm"] is not None and c["mask"] is not None:
        c = dict(c, kpm="bool" if c["mask"].endswith("bool") else "float")
    model = _build(MHAModel, c, seed=c["seed"])
    _attribute_checked(model, _one_hot(2, L_SEQ, c["seed"]), _references(2, 2, L_SEQ, 7),
                       "nn.MultiheadAttention")


class SDPAModel(nn.Module):
    """Conv stem + explicit q/k/v linears + F.scaled_dot_product_attention."""

    def __init__(self, c):
        super().__init__()
        self.c, h, d = c, c["heads"], 2
        self.h, self.d = h, d
        self.hk = 1 if c["gqa"] else h
        self.stem = _Stem(8)
        self.q = nn.Linear(8, h * d)
        self.k = nn.Linear(8, self.hk * d)
        self.v = nn.Linear(8, self.hk * d)
        self.out = nn.Linear(h * d, 1)
        self.register_buffer("mask", _sdpa_mask(c["mask"], 1, h, L_SEQ, L_SEQ, c["seed"]))

    def forward(self, x):
        hs = self.stem(x)
        n = hs.shape[0]
        q = self.q(hs).view(n, L_SEQ, self.h, self.d).transpose(1, 2)
        k = self.k(hs).view(n, L_SEQ, self.hk, self.d).transpose(1, 2)
        v = self.v(hs).view(n, L_SEQ, self.hk, self.d).transpose(1, 2)
        o = F.scaled_dot_product_attention(q, k, v, attn_mask=self.mask,
                                           is_causal=self.c["mask"] == "causal",
                                           scale=self.c["scale"], enable_gqa=self.c["gqa"])
        return self.out(o.transpose(1, 2).reshape(n, L_SEQ, -1).mean(1))[:, 0]


sdpa_model_configs = st.fixed_dictionaries({
    "heads": st.integers(1, 4),
    "gqa": st.booleans(),
    "mask": st.sampled_from([None, "bool", "float", "bool_bcast", "causal"]),
    "scale": st.sampled_from([None, 0.3, 2.0]),
    "seed": st.integers(0, 10_000),
})


@settings(max_examples=15, **SETTINGS)
@given(sdpa_model_configs)
def test_sdpa_model_additive(c):
    model = _build(SDPAModel, c, seed=c["seed"])
    _attribute_checked(model, _one_hot(2, L_SEQ, c["seed"]), _references(2, 2, L_SEQ, 3),
                       "F.scaled_dot_product_attention")


class EncoderModel(nn.Module):
    """Conv stem + nn.TransformerEncoderLayer(d_model=16, nhead=4) + pooling."""

    def __init__(self, activation, norm_first, mask):
        super().__init__()
        self.stem = _Stem(16)
        self.layer = nn.TransformerEncoderLayer(16, 4, 32, dropout=0.1, activation=activation,
                                                norm_first=norm_first, batch_first=True)
        self.head = nn.Linear(16, 2)
        self.masked = mask
        self.register_buffer("kpm", torch.arange(L_SEQ) >= L_SEQ - 3)

    def forward(self, x):
        hs = self.stem(x)
        causal = nn.Transformer.generate_square_subsequent_mask(L_SEQ, dtype=hs.dtype)
        if self.masked == "causal+padding":
            kpm = torch.zeros(hs.shape[0], L_SEQ, dtype=hs.dtype).masked_fill(
                self.kpm, float("-inf"))
            hs = self.layer(hs, src_mask=causal, is_causal=True, src_key_padding_mask=kpm)
        elif self.masked == "causal":  # reaches SDPA as is_causal=True, without a mask
            hs = self.layer(hs, src_mask=causal, is_causal=True)
        else:
            hs = self.layer(hs)
        return self.head(hs.mean(1))


@pytest.mark.parametrize("activation", ["gelu", "relu"])
@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("mask", [None, "causal", "causal+padding"])
def test_transformer_encoder_layer_additive(activation, norm_first, mask):
    model = _build(EncoderModel, activation, norm_first, mask, seed=1)
    x, refs = _one_hot(3, L_SEQ, 5), _references(3, 3, L_SEQ, 6)
    for target in (0, 1):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            report = check_additivity(ShuffleDeepLiftShap(model), x, refs, target=target)
            ShuffleDeepLiftShap(model).attribute(x, references=refs, target=target)
        assert not [w for w in caught if issubclass(w.category, UnsupportedOperationWarning)]
        _note("nn.TransformerEncoderLayer", report.max_error)
        assert report.passed, report


class EncoderStackModel(nn.Module):
    """nn.TransformerEncoder (2 layers) with a key padding mask; pools unpadded positions.

    PyTorch's fused inference path (on by default, taken by plain forwards without
    grad) returns zeros at padded positions where the unfused path computes values,
    so only a model that ignores padded positions has the same output on both.
    """

    def __init__(self):
        super().__init__()
        self.stem = _Stem(16)
        self.enc = nn.TransformerEncoder(
            nn.TransformerEncoderLayer(16, 4, 32, batch_first=True, activation="gelu"), 2,
            enable_nested_tensor=True)
        self.head = nn.Linear(16, 1)

    def forward(self, x):
        hs = self.stem(x)
        kpm = torch.zeros(hs.shape[0], L_SEQ, dtype=torch.bool, device=hs.device)
        kpm[:, -3:] = True
        hs = self.enc(hs, src_key_padding_mask=kpm)
        return self.head(hs[:, :-3].mean(1))[:, 0]


def test_transformer_encoder_stack_additive():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch: nested tensors are a prototype
        model = _build(EncoderStackModel, seed=6)
        report = check_additivity(ShuffleDeepLiftShap(model), _one_hot(2, L_SEQ, 3),
                                  _references(2, 2, L_SEQ, 4))
    _note("nn.TransformerEncoder + key padding", report.max_error)
    assert report.passed, report


# ------------------------------------------------------- agreement with hand-written


class HandMHAModel(nn.Module):
    """The MHAModel's math written out: q/k/v linears, softmax, matmul, out projection."""

    def __init__(self, ref: MHAModel):
        super().__init__()
        self.ref = ref

    def forward(self, x):
        r, mha = self.ref, self.ref.mha
        hs = r.stem(x)
        n, e, h = hs.shape[0], r.e, r.h
        d = e // h
        wq, wk, wv = mha.in_proj_weight.chunk(3)
        bq, bk, bv = mha.in_proj_bias.chunk(3)

        def heads(t):
            return t.view(n, L_SEQ, h, d).transpose(1, 2)

        q, k, v = heads(F.linear(hs, wq, bq)), heads(F.linear(hs, wk, bk)), \
            heads(F.linear(hs, wv, bv))
        scores = q @ k.transpose(-2, -1) / math.sqrt(d)
        if r.kpm is not None:  # masked_fill with -inf, as users write it
            scores = scores.masked_fill(r.kpm.view(1, 1, 1, L_SEQ), float("-inf"))
        w = torch.softmax(scores, dim=-1)
        o = (w @ v).transpose(1, 2).reshape(n, L_SEQ, e)
        o = mha.out_proj(o)
        return r.head(o.mean(1))[:, 0] + w.mean(1).reshape(n, -1)[:, :7].sum(1)


@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("kpm", [None, "bool"])
def test_agrees_with_hand_written_attention(batch_first, kpm):
    c = dict(heads=2, head_dim=3, batch_first=batch_first, separate_weights=False, bias=True,
             bias_kv=False, zero_attn=False, kpm=kpm, mask=None, need_weights=True,
             average=True, seed=11)
    model = _build(MHAModel, c, seed=3)
    hand = HandMHAModel(model).eval()
    x, refs = _one_hot(3, L_SEQ, 1), _references(3, 4, L_SEQ, 2)
    with torch.no_grad():
        assert float((model(x) - hand(x)).abs().max()) < 1e-13
    a_lib, d_lib = ShuffleDeepLiftShap(model).attribute(x, references=refs,
                                                        return_convergence_delta=True)
    a_hand, d_hand = ShuffleDeepLiftShap(hand).attribute(x, references=refs,
                                                         return_convergence_delta=True)
    err = float((a_lib - a_hand).abs().max())
    _note("agreement with hand-written attention", err)
    assert err <= 1e-10, err
    assert float(d_hand.abs().max()) <= 1e-10 and float(d_lib.abs().max()) <= 1e-10


# ------------------------------------------------------------ state, registry, warnings


@pytest.mark.parametrize("fastpath", [True, False])
def test_model_and_fastpath_setting_unchanged(fastpath):
    previous = torch.backends.mha.get_fastpath_enabled()
    try:
        torch.backends.mha.set_fastpath_enabled(fastpath)
        model = _build(EncoderModel, "gelu", False, None, seed=2)
        x, refs = _one_hot(2, L_SEQ, 1), _references(2, 2, L_SEQ, 2)
        report = check_model_unchanged(ShuffleDeepLiftShap(model), x, refs, target=0)
        assert report.passed, report
        assert torch.backends.mha.get_fastpath_enabled() is fastpath
        # also after an error raised inside the passes
        bad = SDPAModel(dict(heads=1, gqa=False, mask=None, scale=None, seed=0)).to(DT)
        bad.forward = _with_dropout(bad)
        with pytest.raises(ValueError, match="dropout_p"):
            ShuffleDeepLiftShap(bad).attribute(x, references=refs)
        assert torch.backends.mha.get_fastpath_enabled() is fastpath
        report = check_model_unchanged(ShuffleDeepLiftShap(bad), x, refs,
                                       expect_error=ValueError)
        assert report.passed, report
        assert torch.backends.mha.get_fastpath_enabled() is fastpath
    finally:
        torch.backends.mha.set_fastpath_enabled(previous)


def _with_dropout(model):
    def forward(x):
        hs = model.stem(x)
        q = hs.unsqueeze(1)
        return F.scaled_dot_product_attention(q, q, q, dropout_p=0.2).sum((1, 2, 3))
    return forward


def test_fast_path_is_not_taken_in_either_pass():
    """Both passes see F.multi_head_attention_forward (never the fused kernels)."""
    seen = []

    def spy(*args, **kwargs):
        seen.append(torch.is_grad_enabled())
        return multi_head_attention_forward(*args, **kwargs)

    model = _build(EncoderModel, "relu", False, None, seed=4)
    rules = default_rules().with_rules({"multi_head_attention_forward": Decomposition(spy)})
    x, refs = _one_hot(2, L_SEQ, 1), _references(2, 2, L_SEQ, 2)
    previous = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(True)
    try:
        _, delta = ShuffleDeepLiftShap(model, rules=rules).attribute(
            x, references=refs, target=1, return_convergence_delta=True)
    finally:
        torch.backends.mha.set_fastpath_enabled(previous)
    assert False in seen and True in seen  # the reference (no grad) and the input pass
    assert float(delta.abs().max()) <= 1e-10


def test_user_decomposition_and_opt_out():
    calls = []

    def my_sdpa(*args, **kwargs):
        calls.append(1)
        return scaled_dot_product_attention(*args, **kwargs)

    c = dict(heads=2, gqa=False, mask="bool", scale=None, seed=5)
    model = _build(SDPAModel, c, seed=5)
    x, r = _one_hot(2, L_SEQ, 1), _one_hot(2, L_SEQ, 2)
    rules = default_rules().with_rules({"scaled_dot_product_attention": Decomposition(my_sdpa)})
    _, delta = deeplift_multipliers(model, x, r, rules=rules)
    assert calls and float(delta.abs().max()) <= 1e-10
    # without decompositions the op is one op without a rule again: warned, not additive
    passes = DeepLiftPasses(detached_forward(model), default_rules(), decompositions={})
    (m,), (yx,), (yr,) = passes.run((x,), (r.unsqueeze(1),), [(lambda y: y, lambda y: y)])
    assert "scaled_dot_product_attention" in passes.unsupported
    off = float(((m[0][:, 0] * (x - r)).sum((1, 2)) - (yx[:, 0] - yr[:, 0])).abs().max())
    _note("without decompositions (SDPA model, expected large)", off)
    assert off > 1e-3  # the additivity tests above would catch a missing decomposition
    assert set(DEFAULT_DECOMPOSITIONS) == {"scaled_dot_product_attention",
                                           "multi_head_attention_forward"}
    with pytest.raises(TypeError, match="`fn` must be callable"):
        Decomposition(3)


def test_report_measured(capsys):
    """Print the figures measured by the tests above (run with -s to see them)."""
    with capsys.disabled():
        for family, value in sorted(MEASURED.items()):
            print(f"\n  max |error| {family}: {value:.3g}")
