"""Exact DeepLIFT for the parts of modern transformers around attention (issue #10, section 1).

Rotary position embeddings, ALiBi biases, ``gelu(approximate="tanh")``,
LayerNorm and RMSNorm with and without their affine parameters, and the
warning for an op with no rule. Each is checked against an independent
computation, not only for additivity:

* ``gelu(approximate="tanh")``: the multipliers equal the closed-form secant
  ``(g(x) - g(r)) / (x - r)`` of the tanh approximation (and differ from the
  exact GELU's secant, so the keyword reaches both passes);
* norms: the registered rule equals the same norm written out op by op
  (``x - mean``, ``a * a``, ``mean``, ``rsqrt``, ``a * v``), which the engine
  treats exactly with the product and rescale rules;
* rotary embeddings: three implementations of the same rotation (HF-style
  ``rotate_half``, complex multiplication, an explicit rotation matrix) give
  the same attributions;
* ALiBi: a float ``attn_mask`` in ``scaled_dot_product_attention`` gives the
  same attributions as the bias added to hand-written scores.
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
from captum_genomics.deeplift import Decomposition, deeplift_multipliers
from captum_genomics.deeplift.rules import Rescale, default_rules
from captum_genomics.deeplift.rules.base import (
    UnsupportedOperationError,
    UnsupportedOperationWarning,
)

DT = torch.float64
TOL = 1e-10
N, T, D, H = 3, 6, 8, 2


def _multipliers(f, x, r, **kwargs):
    """Multipliers and deltas of ``f``; fails on any 'no rule' warning."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        m, delta = deeplift_multipliers(f, x, r, **kwargs)
    unruled = [str(w.message) for w in caught
               if issubclass(w.category, UnsupportedOperationWarning)]
    assert not unruled, unruled
    return m, delta


def _pair(seed, shape=(N, T, D)):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=DT), torch.randn(*shape, generator=g, dtype=DT)


# ----------------------------------------------------------------------------- GELU (tanh)


def _gelu_tanh_closed_form(t):
    return 0.5 * t * (1 + torch.tanh(math.sqrt(2 / math.pi) * (t + 0.044715 * t ** 3)))


@pytest.mark.parametrize("as_module", [False, True])
def test_gelu_tanh_multipliers_are_its_secant(as_module):
    x, r = _pair(0)
    act = nn.GELU(approximate="tanh") if as_module else (
        lambda t: F.gelu(t, approximate="tanh"))
    m, delta = _multipliers(lambda t: act(t).sum((1, 2)), x, r)
    secant = (_gelu_tanh_closed_form(x) - _gelu_tanh_closed_form(r)) / (x - r)
    assert torch.allclose(m, secant, atol=1e-12, rtol=0)
    exact_secant = (F.gelu(x) - F.gelu(r)) / (x - r)
    assert (m - exact_secant).abs().max() > 1e-6  # the keyword reached the rule
    assert delta.abs().max() < TOL


# ----------------------------------------------------------------------------- norms


def _hand_norm(t, dims, eps, center, weight=None, bias=None):
    a = t - t.mean(dims, keepdim=True) if center else t
    v = torch.rsqrt((a * a).mean(dims, keepdim=True) + eps)
    y = a * v
    if weight is not None:
        y = y * weight
    if bias is not None:
        y = y + bias
    return y


NORMS = {
    "layer_norm": (lambda: nn.LayerNorm(D, eps=1e-5), (-1,), 1e-5, True, True),
    "layer_norm_no_affine": (lambda: nn.LayerNorm(D, elementwise_affine=False), (-1,), 1e-5,
                             True, False),
    "layer_norm_no_bias": (lambda: nn.LayerNorm(D, bias=False), (-1,), 1e-5, True, True),
    "layer_norm_2d": (lambda: nn.LayerNorm((T, D)), (-2, -1), 1e-5, True, True),
    "rms_norm": (lambda: nn.RMSNorm(D, eps=1e-6), (-1,), 1e-6, False, True),
    "rms_norm_no_affine": (lambda: nn.RMSNorm(D, eps=1e-6, elementwise_affine=False), (-1,),
                           1e-6, False, False),
    "rms_norm_2d": (lambda: nn.RMSNorm((T, D), eps=1e-3), (-2, -1), 1e-3, False, True),
}


@pytest.mark.parametrize("kind", sorted(NORMS))
def test_norm_rule_equals_norm_written_out(kind):
    build, dims, eps, center, affine = NORMS[kind]
    torch.manual_seed(1)
    norm = build().to(DT)
    if affine:
        with torch.no_grad():
            norm.weight.normal_()
            if getattr(norm, "bias", None) is not None:
                norm.bias.normal_()
    head = torch.randn(D, dtype=DT)
    x, r = _pair(2)

    def by_module(t):
        return torch.tanh(norm(t) * head).sum((1, 2))

    def by_hand(t):
        y = _hand_norm(t, dims, eps, center, getattr(norm, "weight", None),
                       getattr(norm, "bias", None))
        return torch.tanh(y * head).sum((1, 2))

    assert torch.allclose(by_module(x), by_hand(x), atol=1e-12)
    m_rule, d_rule = _multipliers(by_module, x, r)
    m_hand, d_hand = _multipliers(by_hand, x, r)
    assert d_rule.abs().max() < TOL and d_hand.abs().max() < TOL
    assert torch.allclose(m_rule, m_hand, atol=1e-10, rtol=0)


def test_functional_rms_norm_without_weight_uses_dtype_eps():
    x, r = _pair(3)

    def f(t):
        return F.rms_norm(t, (D,)).pow(3).sum((1, 2))

    def by_hand(t):
        return _hand_norm(t, (-1,), torch.finfo(DT).eps, False).pow(3).sum((1, 2))

    m, delta = _multipliers(f, x, r)
    m_hand, _ = _multipliers(by_hand, x, r)
    assert delta.abs().max() < TOL
    assert torch.allclose(m, m_hand, atol=1e-10, rtol=0)


# ----------------------------------------------------------------------------- rotary


def _angles(length, dim, base=10000.0):
    inv = 1.0 / base ** (torch.arange(0, dim, 2, dtype=DT) / dim)
    return torch.arange(length, dtype=DT)[:, None] * inv  # (L, dim / 2)


def rope_rotate_half(u, angles):
    """HF-style: halves rotated together; pairs (i, i + dim/2)."""
    cos, sin = torch.cat([angles.cos()] * 2, -1), torch.cat([angles.sin()] * 2, -1)
    half = u.shape[-1] // 2
    rotated = torch.cat((-u[..., half:], u[..., :half]), -1)
    return u * cos + rotated * sin


def rope_complex(u, angles):
    """Meta-style on the same pairs (i, i + dim/2), by complex multiplication."""
    half = u.shape[-1] // 2
    pairs = torch.stack((u[..., :half], u[..., half:]), -1).contiguous()
    z = torch.view_as_complex(pairs) * torch.polar(torch.ones_like(angles), angles)
    out = torch.view_as_real(z)
    return torch.cat((out[..., 0], out[..., 1]), -1)


def rope_matrix(u, angles):
    """An explicit (L, dim, dim) rotation matrix per position."""
    length, half = angles.shape
    rot = torch.zeros(length, 2 * half, 2 * half, dtype=u.dtype)
    idx = torch.arange(half)
    rot[:, idx, idx] = angles.cos()
    rot[:, idx + half, idx + half] = angles.cos()
    rot[:, idx, idx + half] = -angles.sin()
    rot[:, idx + half, idx] = angles.sin()
    return torch.einsum("lij,...lj->...li", rot, u)


class RotaryAttention(nn.Module):
    """Multi-head self-attention with rotary q/k (batch first, (N, T, D) in and out)."""

    def __init__(self, rope, heads=H, dim=D, sdpa=True):
        super().__init__()
        self.rope, self.heads, self.sdpa = rope, heads, sdpa
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)

    def forward(self, t):
        n, length, dim = t.shape
        hd = dim // self.heads
        q, k, v = (u.reshape(n, length, self.heads, hd).transpose(1, 2)
                   for u in self.qkv(t).chunk(3, -1))
        angles = _angles(length, hd).to(t.dtype)
        q, k = self.rope(q, angles), self.rope(k, angles)
        if self.sdpa:
            o = F.scaled_dot_product_attention(q, k, v)
        else:
            o = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(hd), -1) @ v
        return torch.tanh(self.out(o.transpose(1, 2).reshape(n, length, dim))).sum((1, 2))


def test_rotary_implementations_agree_in_the_forward():
    u = torch.randn(2, H, T, D // H, dtype=DT)
    a = _angles(T, D // H)
    assert torch.allclose(rope_rotate_half(u, a), rope_complex(u, a), atol=1e-13)
    assert torch.allclose(rope_rotate_half(u, a), rope_matrix(u, a), atol=1e-13)


@pytest.mark.parametrize("sdpa", [True, False])
def test_rotary_embeddings_exact_and_implementation_free(sdpa):
    x, r = _pair(4)
    results = {}
    for name, rope in (("rotate_half", rope_rotate_half), ("complex", rope_complex),
                       ("matrix", rope_matrix)):
        torch.manual_seed(5)
        model = RotaryAttention(rope, sdpa=sdpa).to(DT)
        m, delta = _multipliers(model, x, r)
        assert delta.abs().max() < TOL, (name, delta)
        results[name] = m
    assert torch.allclose(results["rotate_half"], results["complex"], atol=1e-10, rtol=0)
    assert torch.allclose(results["rotate_half"], results["matrix"], atol=1e-10, rtol=0)


# ----------------------------------------------------------------------------- ALiBi


def alibi_bias(heads, length, dtype):
    """Press et al. (2022): slope ``2^(-8 h / heads)`` times ``-|i - j|``, shape (heads, L, L)."""
    slopes = 2.0 ** (-8.0 * torch.arange(1, heads + 1, dtype=dtype) / heads)
    pos = torch.arange(length, dtype=dtype)
    return -slopes[:, None, None] * (pos[None, :] - pos[:, None]).abs()


class AlibiAttention(nn.Module):
    def __init__(self, sdpa=True, causal=False):
        super().__init__()
        self.sdpa, self.causal = sdpa, causal
        self.qkv = nn.Linear(D, 3 * D)

    def forward(self, t):
        n, length, _ = t.shape
        q, k, v = (u.reshape(n, length, H, D // H).transpose(1, 2)
                   for u in self.qkv(t).chunk(3, -1))
        bias = alibi_bias(H, length, t.dtype)
        if self.causal:
            future = torch.ones(length, length, dtype=torch.bool).triu(1)
            bias = bias.masked_fill(future, float("-inf"))
        if self.sdpa:
            o = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        else:
            scores = q @ k.transpose(-1, -2) / math.sqrt(D // H) + bias
            o = torch.softmax(scores, -1) @ v
        return o.pow(2).sum((1, 2, 3))


@pytest.mark.parametrize("causal", [False, True])
def test_alibi_bias_exact_and_equal_to_hand_written(causal):
    x, r = _pair(6)
    out = {}
    for sdpa in (True, False):
        torch.manual_seed(7)
        model = AlibiAttention(sdpa=sdpa, causal=causal).to(DT)
        m, delta = _multipliers(model, x, r)
        assert delta.abs().max() < TOL
        assert torch.isfinite(m).all()
        out[sdpa] = m
    assert torch.allclose(out[True], out[False], atol=1e-10, rtol=0)


# ----------------------------------------------------------------------------- a modern block


class ModernBlock(nn.Module):
    """Pre-norm block: norm, attention (rotary / ALiBi / none), norm, GELU MLP; on one-hot DNA."""

    def __init__(self, positions, norm, approximate):
        super().__init__()
        self.positions = positions
        self.stem = nn.Conv1d(4, D, 3, padding=1)
        self.norm1 = nn.RMSNorm(D) if norm == "rms" else nn.LayerNorm(
            D, elementwise_affine=(norm == "layer"))
        self.norm2 = nn.RMSNorm(D, elementwise_affine=False) if norm == "rms" else nn.LayerNorm(D)
        self.qkv = nn.Linear(D, 3 * D)
        self.proj = nn.Linear(D, D)
        self.mlp = nn.Sequential(nn.Linear(D, 2 * D), nn.GELU(approximate=approximate),
                                 nn.Linear(2 * D, D))
        self.head = nn.Linear(D, 2)

    def forward(self, x):
        h = self.stem(x).transpose(1, 2)
        n, length, _ = h.shape
        q, k, v = (u.reshape(n, length, H, D // H).transpose(1, 2)
                   for u in self.qkv(self.norm1(h)).chunk(3, -1))
        bias = None
        if self.positions == "rotary":
            angles = _angles(length, D // H).to(h.dtype)
            q, k = rope_rotate_half(q, angles), rope_rotate_half(k, angles)
        elif self.positions == "alibi":
            bias = alibi_bias(H, length, h.dtype)
        o = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        h = h + self.proj(o.transpose(1, 2).reshape(n, length, D))
        h = h + self.mlp(self.norm2(h))
        return self.head(h.mean(1))


def _one_hot(n, length, seed):
    g = torch.Generator().manual_seed(seed)
    return F.one_hot(torch.randint(4, (n, length), generator=g), 4).transpose(1, 2).to(DT)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(positions=st.sampled_from(["rotary", "alibi", "none"]),
       norm=st.sampled_from(["layer", "layer_no_affine", "rms"]),
       approximate=st.sampled_from(["none", "tanh"]),
       target=st.integers(0, 1), seed=st.integers(0, 2 ** 16))
def test_modern_block_is_additive(positions, norm, approximate, target, seed):
    torch.manual_seed(seed)
    model = ModernBlock(positions, norm, approximate).to(DT).eval()
    x = _one_hot(3, 12, seed)
    refs = _one_hot(3 * 4, 12, seed + 1).reshape(3, 4, 4, 12)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _, delta = ShuffleDeepLiftShap(model).attribute(
            x, target=target, references=refs, return_convergence_delta=True)
    assert not [w for w in caught if issubclass(w.category, UnsupportedOperationWarning)]
    assert delta.abs().max() < TOL


# ----------------------------------------------------------------------------- no rule


def _logsumexp_model(t):
    return torch.logsumexp(t, 1)


def test_unknown_composite_op_warning_names_op_and_how_to_register():
    x, r = torch.randn(3, 5, dtype=DT), torch.randn(3, 5, dtype=DT)
    with pytest.warns(UnsupportedOperationWarning) as record:
        _, delta = deeplift_multipliers(_logsumexp_model, x, r)
    messages = [str(w.message) for w in record
                if issubclass(w.category, UnsupportedOperationWarning)]
    assert len(messages) == 1  # one warning per op, not one per call site or pass
    message = messages[0]
    assert "`logsumexp`" in message
    assert "Decomposition(fn)" in message and "Rescale()" in message
    assert "strict=True" in message
    assert delta.abs().max() > 1e-3  # really not additive: the warning is not noise

    with pytest.raises(UnsupportedOperationError, match="Decomposition"):
        deeplift_multipliers(_logsumexp_model, x, r, strict=True)

    # following the hint makes it exact
    def decomposed(t, dim, keepdim=False):
        return t.exp().sum(dim, keepdim=keepdim).log()

    rules = default_rules().with_rules({"logsumexp": Decomposition(decomposed)})
    m, delta = _multipliers(_logsumexp_model, x, r, rules=rules)
    assert delta.abs().max() < TOL
    m_hand, _ = _multipliers(lambda t: decomposed(t, 1), x, r)
    assert torch.allclose(m, m_hand, atol=1e-12, rtol=0)


def test_unknown_elementwise_op_hint_works():
    x, r = torch.randn(3, 5, dtype=DT), torch.randn(3, 5, dtype=DT)
    rules = default_rules().with_rules({"special_ndtr": Rescale()})
    m, delta = _multipliers(lambda t: torch.special.ndtr(t).sum(1), x, r, rules=rules)
    secant = (torch.special.ndtr(x) - torch.special.ndtr(r)) / (x - r)
    assert torch.allclose(m, secant, atol=1e-12)
    assert delta.abs().max() < TOL


# ----------------------------------------------------------------------------- layouts


class _Encoder(nn.Module):
    """Conv stem + one nn.TransformerEncoderLayer, sequence-first or batch-first."""

    def __init__(self, batch_first, norm_first=False):
        super().__init__()
        self.batch_first = batch_first
        self.conv = nn.Conv1d(4, 16, 5, padding=2)
        self.layer = nn.TransformerEncoderLayer(16, 2, 32, dropout=0.1, activation="gelu",
                                                batch_first=batch_first, norm_first=norm_first)
        self.out = nn.Linear(16, 2)

    def forward(self, x):
        h = self.conv(x)
        h = h.transpose(1, 2) if self.batch_first else h.permute(2, 0, 1)
        h = self.layer(h)
        return self.out(h.mean(1 if self.batch_first else 0))


@pytest.mark.parametrize("norm_first", [False, True])
def test_sequence_first_layers_equal_batch_first(norm_first):
    """(T, N, E) activations: the same weights give the same attributions as (N, T, E)."""
    torch.manual_seed(0)
    first = _Encoder(False, norm_first).to(DT).eval()
    batch = _Encoder(True, norm_first).to(DT).eval()
    batch.load_state_dict(first.state_dict())
    x = _one_hot(3, 20, 1)
    kwargs = dict(target=1, n_references=4, random_state=0, return_convergence_delta=True)
    a_first, d_first = ShuffleDeepLiftShap(first).attribute(x, **kwargs)
    a_batch, d_batch = ShuffleDeepLiftShap(batch).attribute(x, **kwargs)
    assert d_first.abs().max() < TOL and d_batch.abs().max() < TOL
    assert torch.allclose(a_first, a_batch, atol=1e-12, rtol=0)
    with pytest.raises(ValueError, match="strategy='examples'.*first axis"):
        ShuffleDeepLiftShap(first).attribute(x, strategy="examples", **kwargs)


class _Tied(nn.Module):
    """One module registered under two names (weight tying)."""

    def __init__(self):
        super().__init__()
        self.a = nn.Linear(5, 5)
        self.shared = self.a
        self.out = nn.Linear(5, 1)

    def forward(self, x):
        return self.out(torch.tanh(self.shared(torch.relu(self.a(x))))).squeeze(1)


def test_shared_modules_are_supported():
    torch.manual_seed(2)
    model = _Tied().to(DT)
    x, r = _pair(3, (4, 5))
    m, delta = _multipliers(model, x, r)
    assert delta.abs().max() < TOL
    twin = nn.Sequential()  # the same function without the second name
    twin.a, twin.out = model.a, model.out
    m_twin, _ = _multipliers(
        lambda t: twin.out(torch.tanh(twin.a(torch.relu(twin.a(t))))).squeeze(1), x, r)
    assert torch.allclose(m, m_twin, atol=1e-14, rtol=0)
