"""Head importance for classifiers (``HeadAblationClassifierEffect``), the EV misuse error,
and the ``nn.TransformerEncoderLayer`` adapter.

Values are checked against an independent brute force: a manual forward of the
encoder layers that zeroes (or mean-fills) the ablated heads' slices of the
out-projection input, numpy metrics, an explicit enumeration of all sign flips
(exact p-values) or a plain loop over the same seeded sign vectors (Monte Carlo),
and scipy's Benjamini-Hochberg.
"""

from __future__ import annotations

import inspect
import itertools
import math

import numpy as np
import pytest
import scipy.special
import scipy.stats
import torch
from captum.attr import Attribution
from head_models import DT, EncoderClassifier, NeighbourModel
from torch import nn

import captum_genomics
from captum_genomics.heads import (
    HeadAblationClassifierResult,
    MultiheadAttentionAdapter,
    TransformerEncoderLayerAdapter,
    ablated_forward,
    default_head_adapters,
)
from captum_genomics.methods import (
    HeadAblationClassifierEffect,
    HeadAblationExplainedVariance,
)
from captum_genomics.stats.classifier_effects import (
    METRICS,
    classifier_metrics,
    sign_flip_test,
)
from captum_genomics.testing.checks import check_model_unchanged
from captum_genomics.zoo.ctcf_transformer import CTCFTransformer

pytestmark = pytest.mark.usefixtures("one_thread")

LAYERS = ["encoder.layers.0", "encoder.layers.1"]


# ----------------------------------------------------------------------------- brute force
def _manual_layer(layer, x, keep=None, fill=None, record=None):
    """``nn.TransformerEncoderLayer`` (batch first) by hand; heads outside ``keep`` replaced.

    ``keep`` bool (H,): heads left as they are; the others' attention outputs
    (their slice of the out-projection input) become 0, or ``fill`` (H, L, d).
    ``record``: a list that receives the per-head attention outputs (N, H, L, d).
    """
    mha = layer.self_attn
    n, length, e = x.shape
    h = mha.num_heads
    d = e // h

    def attention(z):
        w, b = mha.in_proj_weight, mha.in_proj_bias
        q, k, v = (z @ w[i * e:(i + 1) * e].T + b[i * e:(i + 1) * e] for i in range(3))
        q, k, v = (t.view(n, length, h, d).transpose(1, 2) for t in (q, k, v))
        heads = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d), -1) @ v
        if record is not None:
            record.append(heads)
        if keep is not None:
            other = torch.zeros_like(heads) if fill is None else fill.expand_as(heads)
            heads = torch.where(keep.view(1, h, 1, 1), heads, other)
        cat = heads.transpose(1, 2).reshape(n, length, e)
        return cat @ mha.out_proj.weight.T + mha.out_proj.bias

    def feed_forward(z):
        return layer.linear2(layer.activation(layer.linear1(z)))

    if layer.norm_first:
        x = x + attention(layer.norm1(x))
        return x + feed_forward(layer.norm2(x))
    x = layer.norm1(x + attention(x))
    return layer.norm2(x + feed_forward(x))


def _manual_encoder(layers, h, keeps, fills=None, records=None):
    for i, layer in enumerate(layers):
        h = _manual_layer(layer, h, keeps[i], None if fills is None else fills[i],
                          None if records is None else records[i])
    return h


def _manual_classifier(model, x, keeps, fills=None, records=None):
    h = _manual_encoder(model.encoder.layers, model.embed(x), keeps, fills, records)
    return model.out(h.mean(1))


def _manual_ctcf(model, x, keeps):
    h = model.pool(model.act(model.conv(x))).transpose(1, 2)
    h = h + model.positions[: h.shape[1]].to(h.dtype)
    h = model.norm(_manual_encoder(model.encoder.layers, h, keeps))
    return model.linear(h.mean(1))


def _variant_keeps(n_heads, ablation):
    """Per (layer, head) variant: the keep mask of every layer."""
    out = []
    for li, nh in enumerate(n_heads):
        for hi in range(nh):
            keeps = [None] * len(n_heads)
            mask = torch.zeros(nh, dtype=torch.bool) if ablation == "keep" else torch.ones(
                nh, dtype=torch.bool)
            mask[hi] = ablation == "keep"
            keeps[li] = mask
            out.append(keeps)
    return out


def _np_metrics(logits, y, t):
    """(3, N): target logit, true-class probability, correctness, with numpy."""
    rows = np.arange(len(y))
    if logits.shape[1] == 1:
        z = logits[:, 0]
        tl = np.where(t == 1, z, -z)
        prob = scipy.special.expit(np.where(y == 1, z, -z))
        acc = (z > 0) == (y == 1)
    else:
        tl = logits[rows, t]
        prob = scipy.special.softmax(logits, axis=1)[rows, y]
        acc = logits.argmax(1) == y
    return np.stack([tl, prob, acc.astype(float)])


def _exact_p(d, alternative="two-sided"):
    """Sign-flip p-value by enumerating all 2**n sign vectors."""
    s_obs, tol = d.sum(), 1e-12 * np.abs(d).sum()
    hits = 0
    for signs in itertools.product((1.0, -1.0), repeat=len(d)):
        s = float(np.dot(signs, d))
        if alternative == "two-sided":
            hits += abs(s) >= abs(s_obs) - tol
        elif alternative == "greater":
            hits += s >= s_obs - tol
        else:
            hits += s <= s_obs + tol
    return hits / 2 ** len(d)


def _brute_force(forward, n_heads, x, y, codes, n_groups, ablation, t=None, p_fn=None):
    """effect, p (3, V, K), full (3, K), ablated (3, V, K) from manual ablation, numpy stats."""
    y_np = y.numpy()
    t_np = y_np if t is None else t.numpy()
    with torch.no_grad():
        full = forward(x, [None] * len(n_heads)).numpy()
        variants = [forward(x, keeps).numpy() for keeps in _variant_keeps(n_heads, ablation)]
    m_full = _np_metrics(full, y_np, t_np)
    v, k = len(variants), n_groups
    effect, p, ablated = (np.full((3, v, k), np.nan) for _ in range(3))
    full_value = np.full((3, k), np.nan)
    for vi, out in enumerate(variants):
        m_abl = _np_metrics(out, y_np, t_np)
        for g in range(k):
            idx = np.flatnonzero(codes.numpy() == g)
            full_value[:, g] = m_full[:, idx].mean(1)
            ablated[:, vi, g] = m_abl[:, idx].mean(1)
            for m in range(3):
                d = m_full[m, idx] - m_abl[m, idx]
                effect[m, vi, g] = d.mean()
                if p_fn is None:
                    p[m, vi, g] = _exact_p(d)
    return effect, p, full_value, ablated, m_full, variants


def _bh(p):
    return np.stack([scipy.stats.false_discovery_control(p[m].reshape(-1), method="bh")
                     .reshape(p[m].shape) for m in range(p.shape[0])])


def _data(n=12, length=5, features=5, n_classes=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, length, features, generator=g, dtype=DT)
    y = torch.randint(0, max(n_classes, 2), (n,), generator=g)
    groups = np.where(np.arange(n) % 2 == 0, "a", "b")           # codes: a -> 0, b -> 1
    return x, y, groups, torch.from_numpy((np.arange(n) % 2).astype(np.int64))


def _one_hot_dna(n, length, seed=0):
    g = torch.Generator().manual_seed(seed)
    idx = torch.randint(0, 4, (n, length), generator=g)
    return nn.functional.one_hot(idx, 4).transpose(1, 2).to(DT)


# ----------------------------------------------------------------------------- values
@pytest.mark.parametrize("ablation", ["remove", "keep"])
def test_multiclass_matches_brute_force(ablation):
    model = EncoderClassifier(n_classes=3)
    x, y, groups, codes = _data(n=12)                       # two groups of 6: 2**6 flips
    r = HeadAblationClassifierEffect(model, LAYERS).attribute(
        x, y, groups, ablation=ablation, n_permutations=64)
    assert bool(r.exact.all())
    effect, p, full_value, ablated, _, _ = _brute_force(
        lambda xx, keeps: _manual_classifier(model, xx, keeps), [4, 4], x, y, codes, 2, ablation)
    np.testing.assert_allclose(r.effect.numpy(), effect, rtol=0, atol=1e-12)
    np.testing.assert_allclose(r.full_value.numpy(), full_value, rtol=0, atol=1e-12)
    np.testing.assert_allclose(r.ablated_value.numpy(), ablated, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(r.p_value.numpy(), p)
    np.testing.assert_allclose(r.q_value.numpy(), _bh(p), rtol=1e-12)
    assert np.abs(effect[0]).max() > 0.05                   # the heads matter
    assert r.heads[:5] == [("encoder.layers.0.self_attn", h) for h in range(4)] + [
        ("encoder.layers.1.self_attn", 0)]


def test_binary_logit_matches_brute_force_and_target_is_a_class():
    model = EncoderClassifier(n_classes=1, norm_first=True, activation="gelu", seed=2)
    x, y, groups, codes = _data(n=10, n_classes=1, seed=3)
    explainer = HeadAblationClassifierEffect(model, LAYERS)

    def forward(xx, keeps):
        return _manual_classifier(model, xx, keeps)

    for target in (None, 1, 0):
        t = None if target is None else torch.full((10,), target)
        r = explainer.attribute(x, y, groups, target=target, n_permutations=32)
        effect, p, *_ = _brute_force(forward, [4, 4], x, y, codes, 2, "remove", t=t)
        np.testing.assert_allclose(r.effect.numpy(), effect, rtol=0, atol=1e-12)
        np.testing.assert_array_equal(r.p_value.numpy(), p)
        assert r.extra["binary"] and r.extra["n_classes"] == 2
    with torch.no_grad():
        z = model(x)[:, 0]
    np.testing.assert_allclose(r.full_value[0].numpy(),        # target 0: the logit -z
                               [float(-z[codes == g].mean()) for g in range(2)], atol=1e-12)
    # a per-example target and an (N,) output work as well
    flat = HeadAblationClassifierEffect(lambda v: model(v)[:, 0], model.encoder.layers[0])
    r2 = flat.attribute(x, y, groups, target=list(y.tolist()), n_permutations=32)
    r3 = explainer.attribute(x, y, groups, heads=[("encoder.layers.0", h) for h in range(4)],
                             n_permutations=32)
    assert torch.equal(r2.p_value, r3.p_value)
    np.testing.assert_allclose(r2.effect.numpy(), r3.effect.numpy(), atol=1e-12)


def test_mean_mode_matches_brute_force():
    model = EncoderClassifier(n_classes=3, seed=4)
    x, y, groups, codes = _data(n=8, seed=5)
    refs = torch.randn(6, 5, 5, generator=torch.Generator().manual_seed(9), dtype=DT)
    r = HeadAblationClassifierEffect(model, LAYERS).attribute(
        x, y, groups, mode="mean", reference_inputs=refs, n_permutations=16)
    records = [[], []]
    with torch.no_grad():
        _manual_classifier(model, refs, [None, None], records=records)
    fills = [rec[0].mean(0) for rec in records]                 # (H, L, d) per layer

    def forward(xx, keeps):
        return _manual_classifier(model, xx, keeps, fills)

    effect, p, *_ = _brute_force(forward, [4, 4], x, y, codes, 2, "remove")
    np.testing.assert_allclose(r.effect.numpy(), effect, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(r.p_value.numpy(), p)


def test_monte_carlo_p_values_match_a_loop_with_the_same_seed():
    model = EncoderClassifier(n_classes=3, seed=6)
    x, y, groups, codes = _data(n=18, seed=7)                   # groups of 9: 512 > 40 flips
    n_perm, seed = 40, 11
    for alternative in ("two-sided", "greater", "less"):
        r = HeadAblationClassifierEffect(model, LAYERS).attribute(
            x, y, groups, n_permutations=n_perm, random_state=seed, alternative=alternative)
        assert not bool(r.exact.any())
        _, _, _, _, m_full, variants = _brute_force(
            lambda xx, keeps: _manual_classifier(model, xx, keeps), [4, 4], x, y, codes, 2,
            "remove", p_fn="skip")
        gen = torch.Generator().manual_seed(seed)
        for g in range(2):
            idx = np.flatnonzero(codes.numpy() == g)
            keys = torch.rand((n_perm, len(idx)), generator=gen, dtype=torch.float64).numpy()
            for vi, out in enumerate(variants):
                m_abl = _np_metrics(out, y.numpy(), y.numpy())
                for m in range(3):
                    d = m_full[m, idx] - m_abl[m, idx]
                    s_obs, tol = d.sum(), 1e-12 * np.abs(d).sum()
                    b = 0
                    for row in keys:
                        s = float(np.dot(np.where(row < 0.5, -1.0, 1.0), d))
                        b += {"two-sided": abs(s) >= abs(s_obs) - tol,
                              "greater": s >= s_obs - tol,
                              "less": s <= s_obs + tol}[alternative]
                    assert r.p_value[m, vi, g].item() == (1 + b) / (1 + n_perm)


def test_sign_flip_test_small_cases():
    codes = torch.zeros(3, dtype=torch.int64)
    d = torch.tensor([1.0, 2.0, 3.0], dtype=DT)
    two = sign_flip_test(d, codes, 1, n_permutations=8)
    assert two.p_value.item() == 2 / 8 and bool(two.exact[0]) and two.mean.item() == 2.0
    assert sign_flip_test(d, codes, 1, 8, alternative="greater").p_value.item() == 1 / 8
    assert sign_flip_test(d, codes, 1, 8, alternative="less").p_value.item() == 1.0
    assert sign_flip_test(torch.zeros(3, dtype=DT), codes, 1, 8).p_value.item() == 1.0
    assert sign_flip_test(torch.zeros(3, dtype=DT), codes, 1, 5).p_value.item() == 1.0  # MC
    # accuracy differences {-1, 0, 1}: the exact sign test on the discordant examples
    acc = torch.tensor([1.0, 1.0, 1.0, 1.0, 0.0, 0.0, -1.0, 0.0], dtype=DT)
    p = sign_flip_test(acc, torch.zeros(8, dtype=torch.int64), 1, 256).p_value.item()
    assert p == pytest.approx(scipy.stats.binomtest(4, 5, 0.5).pvalue, abs=1e-12)
    with pytest.raises(ValueError, match="alternative"):
        sign_flip_test(d, codes, 1, 8, alternative="both")


def test_classifier_metrics_by_hand():
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.0, 3.0, 3.0]], dtype=DT)
    m = classifier_metrics(logits, torch.tensor([0, 2]), torch.tensor([1, 1]))
    assert m.shape == (3, 2) and METRICS[2] == "accuracy"
    np.testing.assert_allclose(m[0].numpy(), [0.0, 3.0])
    np.testing.assert_allclose(m[1].numpy(), scipy.special.softmax(logits.numpy(), 1)[[0, 1],
                                                                                     [0, 2]])
    np.testing.assert_array_equal(m[2].numpy(), [1.0, 0.0])   # argmax tie -> first, class 1
    z = torch.tensor([[1.5], [0.0]], dtype=DT)
    b = classifier_metrics(z, torch.tensor([0, 0]))
    np.testing.assert_allclose(b.numpy(), [[-1.5, -0.0], [scipy.special.expit(-1.5), 0.5],
                                           [0.0, 1.0]])


# ----------------------------------------------------------------------------- contract
def test_deterministic_whatever_batch_size():
    model = EncoderClassifier(n_classes=3, seed=8)
    x, y, groups, _ = _data(n=30, seed=8)
    explainer = HeadAblationClassifierEffect(model, LAYERS)
    ref = explainer.attribute(x, y, groups, random_state=3).to_frame()
    assert not ref["exact"].any()
    for kwargs in ({"batch_size": 1}, {"batch_size": 7}, {"permutation_batch_size": 3},
                   {"batch_size": 1000, "permutation_batch_size": 1}):
        frame = explainer.attribute(x, y, groups, random_state=3, **kwargs).to_frame()
        for col in ("p_value", "q_value", "n", "significant", "layer", "head", "group"):
            assert frame[col].equals(ref[col]), (kwargs, col)
        np.testing.assert_allclose(frame["effect"], ref["effect"], rtol=0, atol=1e-13)
    other = explainer.attribute(x, y, groups, random_state=4).to_frame()
    assert not other["p_value"].equals(ref["p_value"])


def test_result_table_and_result_object():
    model = EncoderClassifier(n_classes=3, seed=1)
    x, y, _, _ = _data(n=11, seed=1)
    groups = ["g1"] * 5 + ["g2"] * 5 + ["lonely"]
    r = HeadAblationClassifierEffect(model, "encoder.layers.1").attribute(
        x, y, groups, n_permutations=50, alpha=0.1)
    assert isinstance(r, HeadAblationClassifierResult)
    assert r.skipped_groups == ["lonely"] and r.n.tolist() == [5, 5, 1]
    assert bool(torch.isnan(r.effect[:, :, 2]).all()) and r.exact.tolist() == [True, True, False]
    frame = r.to_frame()
    assert list(frame.columns) == ["layer", "head", "group", "metric", "n", "full_value",
                                   "ablated_value", "effect", "p_value", "q_value",
                                   "significant", "exact"]
    assert len(frame) == 3 * 4 * 2 and set(frame["layer"]) == {"encoder.layers.1.self_attn"}
    np.testing.assert_allclose(frame["full_value"] - frame["ablated_value"], frame["effect"],
                               atol=1e-12)
    assert (frame["significant"] == (frame["q_value"] <= 0.1)).all()
    acc = r.pivot("accuracy")
    assert acc.shape == (4, 2) and acc.index[0] == "encoder.layers.1.self_attn:0"
    assert len(r.to_frame("target_logit")) == 8
    with pytest.raises(ValueError, match="metric"):
        r.to_frame("auc")


def test_is_a_logged_captum_attribution_and_exported():
    assert captum_genomics.HeadAblationClassifierEffect is HeadAblationClassifierEffect
    assert issubclass(HeadAblationClassifierEffect, Attribution)
    assert hasattr(HeadAblationClassifierEffect.attribute, "__wrapped__")
    params = list(inspect.signature(HeadAblationClassifierEffect.attribute).parameters)
    assert params[:2] == ["self", "inputs"] and "additional_forward_args" in params
    explainer = HeadAblationClassifierEffect(EncoderClassifier(), LAYERS)
    assert explainer.has_convergence_delta() is False


def test_model_inputs_and_fastpath_setting_unchanged_also_after_an_error():
    model = EncoderClassifier(n_classes=3, seed=3)
    x, y, groups, _ = _data(n=10, seed=3)
    explainer = HeadAblationClassifierEffect(model, LAYERS)
    mha = torch.backends.mha
    before = mha.get_fastpath_enabled()
    try:
        for setting in (True, False):
            mha.set_fastpath_enabled(setting)
            ok = check_model_unchanged(explainer, x, repeats=2, labels=y, groups=groups,
                                       n_permutations=20, mode="mean", reference_inputs=x)
            assert ok.passed, ok
            bad = check_model_unchanged(explainer, x, repeats=2, expect_error=ValueError,
                                        labels=torch.full((10,), 3), groups=groups)
            assert bad.passed, bad
            assert mha.get_fastpath_enabled() is setting
    finally:
        mha.set_fastpath_enabled(before)


def test_argument_errors():
    model = EncoderClassifier(n_classes=3)
    x, y, groups, _ = _data(n=8)
    e = HeadAblationClassifierEffect(model, LAYERS)
    with pytest.raises(ValueError, match=r"labels.*one-hot.*argmax"):
        e.attribute(x, nn.functional.one_hot(y, 3), groups)
    with pytest.raises(TypeError, match="labels.*integer"):
        e.attribute(x, y.double(), groups)
    with pytest.raises(ValueError, match=r"labels.*\[0, 3\)"):
        e.attribute(x, torch.full((8,), 3), groups)
    with pytest.raises(ValueError, match=r"labels.*shape \(N,\) = \(8,\)"):
        e.attribute(x, y[:5], groups)
    with pytest.raises(ValueError, match="groups"):
        e.attribute(x, y, groups[:5])
    with pytest.raises(ValueError, match="target.*out of range"):
        e.attribute(x, y, groups, target=3)
    with pytest.raises(ValueError, match="alternative"):
        e.attribute(x, y, groups, alternative="bigger")
    with pytest.raises(ValueError, match="ablation"):
        e.attribute(x, y, groups, ablation="drop")
    with pytest.raises(ValueError, match="reference_inputs"):
        e.attribute(x, y, groups, mode="mean")
    binary = HeadAblationClassifierEffect(EncoderClassifier(n_classes=1), LAYERS)
    with pytest.raises(ValueError, match="binary-logit.*class, 0"):
        binary.attribute(x, y % 2, groups, target=2)
    with pytest.raises(ValueError, match=r"labels.*binary logit"):
        binary.attribute(x, torch.full((8,), 2), groups.tolist())

    class Seq(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = EncoderClassifier(n_classes=3)

        def forward(self, v):
            return self.inner(v).unsqueeze(-1).expand(-1, -1, 2)

    with pytest.raises(ValueError, match=r"logits \(N, C\)"):
        HeadAblationClassifierEffect(Seq(), "inner.encoder.layers.0").attribute(x, y, groups)


# ----------------------------------------------------------------------------- EV misuse
def _ev(model, layer="encoder.layers.0"):
    return HeadAblationExplainedVariance(model, layer)


def test_ev_refuses_labels_against_logits():
    model = EncoderClassifier(n_classes=3, seed=5)
    x, y, groups, _ = _data(n=12, seed=5)
    one_hot = nn.functional.one_hot(y, 3).to(DT)
    with pytest.raises(ValueError, match=r"only 0 and 1.*logits.*HeadAblationClassifierEffect"):
        _ev(model).attribute(x, groups, one_hot, n_permutations=5)
    with pytest.raises(ValueError, match="class indices.*HeadAblationClassifierEffect"):
        _ev(model).attribute(x, groups, y, n_permutations=5)
    binary = EncoderClassifier(n_classes=1, seed=5)
    for labels in ((y % 2).to(DT), (y % 2).unsqueeze(1).float()):
        with pytest.raises(ValueError, match="only 0 and 1"):
            _ev(binary).attribute(x, groups, labels, n_permutations=5)
    with torch.no_grad():
        logits = model(x)
    with pytest.raises(ValueError, match="model's own output.*HeadAblationClassifierEffect"):
        _ev(model).attribute(x, groups, logits, n_permutations=5)
    # on purpose: check_observed=False
    r = _ev(model).attribute(x, groups, logits, n_permutations=5, check_observed=False)
    assert float(r.full_ev_head.min()) == 1.0
    with pytest.raises(TypeError, match="check_observed"):
        _ev(model).attribute(x, groups, logits, check_observed="no")


def test_ev_accepts_models_that_estimate_observed():
    # probabilities against one-hot labels: a Brier skill score, allowed
    probs = nn.Sequential(EncoderClassifier(n_classes=3, seed=5), nn.Softmax(-1)).eval()
    x, y, groups, _ = _data(n=12, seed=5)
    r = _ev(probs, "0.encoder.layers.0").attribute(x, groups, nn.functional.one_hot(y, 3).to(DT),
                                                   n_permutations=5)
    assert r.heads[0] == ("0.encoder.layers.0.self_attn", 0)
    # a regression model: noisy observations, integer counts, and pure noise (a null model)
    model = NeighbourModel()
    g = torch.Generator().manual_seed(0)
    nb = torch.randn(30, 4, 6, generator=g, dtype=DT)
    ct = torch.arange(30) % 3
    with torch.no_grad():
        pred = model(nb, ct)
    explainer = HeadAblationExplainedVariance(model, "attention")
    for obs in (pred + 0.1 * torch.randn(pred.shape, generator=g, dtype=DT),
                torch.poisson(pred.abs() + 1.0, generator=g),
                torch.randn(pred.shape, generator=g, dtype=DT)):
        explainer.attribute((nb, ct), ct, obs, n_permutations=5)


# ----------------------------------------------------------------------------- adapters
def test_transformer_encoder_layer_adapter_labels_by_module_path():
    model = EncoderClassifier()
    layer = model.encoder.layers[0]
    adapter = default_head_adapters().adapter_for(layer, "encoder.layers.0")
    assert isinstance(adapter, TransformerEncoderLayerAdapter) and adapter.n_heads == 4
    assert adapter.name == "encoder.layers.0.self_attn" and adapter.module is layer.self_attn
    e = HeadAblationClassifierEffect(model, [layer, "encoder.layers.1.self_attn"])
    assert e.layer_names == ["encoder.layers.0.self_attn", "encoder.layers.1.self_attn"]
    assert isinstance(e.layer_adapters[1], MultiheadAttentionAdapter)
    x, y, groups, _ = _data(n=8)
    a = e.attribute(x, y, groups, heads=[("encoder.layers.0", 2)], n_permutations=16)
    b = e.attribute(x, y, groups, heads=[("encoder.layers.0.self_attn", 2)], n_permutations=16)
    assert a.heads == [("encoder.layers.0.self_attn", 2)] and torch.equal(a.effect, b.effect)
    with pytest.raises(ValueError, match="more than once"):
        HeadAblationClassifierEffect(model, ["encoder.layers.0", "encoder.layers.0.self_attn"])
    with pytest.raises(ValueError, match="not one of the layers"):
        e.attribute(x, y, groups, heads=[("encoder", 0)])
    # a plain callable: the path in the module it calls, never the class name
    lam = HeadAblationClassifierEffect(lambda v: model(v), model.encoder.layers[1])
    assert lam.layer_names == ["encoder.layers.1.self_attn"]
    bound = HeadAblationClassifierEffect(model.forward, "encoder.layers.1")
    assert bound.layer_names == ["encoder.layers.1.self_attn"]
    with pytest.raises(ValueError, match="module path"):
        HeadAblationClassifierEffect(torch.sigmoid, model.encoder.layers[1])


def test_ablation_under_no_grad_in_eval_bypasses_no_fused_path():
    model = EncoderClassifier(n_classes=3, seed=2)
    x, *_ = _data(n=6, seed=2)
    adapters = [TransformerEncoderLayerAdapter(model.encoder.layers[i], f"encoder.layers.{i}")
                for i in range(2)]
    keep = [torch.tensor([[True, False, True, True]]), torch.ones(1, 4, dtype=torch.bool)]
    mha = torch.backends.mha
    before = mha.get_fastpath_enabled()
    try:
        mha.set_fastpath_enabled(True)
        with torch.no_grad():
            out = ablated_forward(model, adapters, keep, x, include_full=True)
            manual = _manual_classifier(model, x, [keep[0][0], None])
            fused = model(x)                             # PyTorch's fused inference path
        assert mha.get_fastpath_enabled() is True
        assert (out[0] - out[1]).abs().max() > 1e-3      # the ablation changes the output
        assert (out[0] - manual).abs().max() < 1e-12
        assert (out[1] - fused).abs().max() < 1e-12
        mha.set_fastpath_enabled(False)
        with torch.no_grad():
            plain = model(x)
        mha.set_fastpath_enabled(True)
        assert torch.equal(out[1], plain)                # the unablated model, non-fused path

        # the adapter alone, outside ablated_forward, also forces the non-fused path
        seen = []

        def zero_all(heads):
            seen.append(heads.shape)
            return torch.zeros_like(heads)

        handles = adapters[0].attach(zero_all)
        try:
            with torch.no_grad():
                alone = model(x)
        finally:
            for h in handles:
                h.remove()
        assert seen == [(6, 4, 5, 2)] and mha.get_fastpath_enabled() is True
        with torch.no_grad():
            expected = _manual_classifier(model, x, [torch.zeros(4, dtype=torch.bool), None])
        assert (alone - expected).abs().max() < 1e-12

        def fail(heads):
            raise RuntimeError("boom")

        handles = adapters[0].attach(fail)
        try:
            with torch.no_grad(), pytest.raises(RuntimeError, match="boom"):
                model(x)
        finally:
            for h in handles:
                h.remove()
        assert mha.get_fastpath_enabled() is True        # restored also after an error
        assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())
    finally:
        mha.set_fastpath_enabled(before)


# ----------------------------------------------------------------------------- CTCF transformer
def test_ctcf_transformer_peaks_vs_shuffles_matches_brute_force():
    model = CTCFTransformer().double().eval()                   # random init; float64
    x = _one_hot_dna(12, 64, seed=4)
    labels = torch.arange(12) % 2                               # 1 = peak, 0 = shuffle
    groups = np.where(labels.numpy() == 1, "peak", "shuffle")   # codes: peak 0, shuffle 1
    codes = torch.from_numpy((1 - labels.numpy()).astype(np.int64))
    explainer = HeadAblationClassifierEffect(model, LAYERS)
    r = explainer.attribute(x, labels, groups, n_permutations=64)
    frame = r.to_frame()
    assert r.group_names == ["peak", "shuffle"] and len(frame) == 3 * 8 * 2
    assert frame["layer"].iloc[0] == "encoder.layers.0.self_attn"
    effect, p, full_value, *_ = _brute_force(
        lambda xx, keeps: _manual_ctcf(model, xx, keeps), [4, 4], x, labels, codes, 2, "remove")
    np.testing.assert_allclose(r.effect.numpy(), effect, rtol=0, atol=1e-12)
    np.testing.assert_allclose(r.full_value.numpy(), full_value, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(r.p_value.numpy(), p)
