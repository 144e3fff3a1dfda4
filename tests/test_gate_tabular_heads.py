"""The gate's FastSHAP and head-ablation suites, and drift baselines (issue 9).

Values are checked against computations written here: exact Shapley values by
enumerating every coalition with the Shapley weights, multi-head attention
from ``torch.nn.MultiheadAttention`` itself, and the stored attributions.
"""

from __future__ import annotations

import json
import math
import os

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import captum_genomics.fastshap.inference as fastshap_inference
import captum_genomics.heads.adapters as head_adapters
from captum_genomics import FastSHAP
from captum_genomics.testing.gate import GateContext, run_gate, tabular
from captum_genomics.testing.gate.baseline import (
    ATTRIBUTIONS_FILE,
    METADATA_FILE,
    BaselineError,
    baseline_check,
    state_dict_sha256,
)
from captum_genomics.testing.gate.heads import HeadLoop
from captum_genomics.testing.methods import NeighbourModel, SequenceModel
from captum_genomics.testing.models import random_one_hot

DT = torch.float64


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


# ----------------------------------------------------------------------------- FastSHAP
def _mlp(genes: int, outputs: int = 3, seed: int = 0) -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return nn.Sequential(nn.Linear(genes, 16), nn.ReLU(), nn.Linear(16, outputs)).to(DT).eval()


def _cells(n: int, genes: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, genes, generator=g, dtype=DT) * 3
    return torch.where(torch.rand(n, genes, generator=g, dtype=DT) < 0.4, 0.0, x)


def _by_name(report):
    return {r.name: r for r in report.results}


def test_fastshap_suite_passes_on_a_correct_mlp():
    report = run_gate(GateContext(_mlp(30), "FastSHAP", _cells(40, 30, 1), target=1, dtype=DT,
                                  options={"link": "softmax"}))
    results = _by_name(report)
    assert list(results) == ["efficiency", "exact_shapley_accuracy", "batch_invariance",
                             "determinism", "save_load", "device_agreement",
                             "model_unchanged"]
    assert results["device_agreement"].skipped          # on the CPU: nothing to compare
    assert report.passed, [(r.name, r.figure, r.bound, r.details) for r in report.failed]
    assert results["efficiency"].figure <= 1e-12
    assert results["determinism"].figure == 0.0 and results["save_load"].figure == 0.0
    accuracy = results["exact_shapley_accuracy"]
    assert accuracy.details["n_players"] == 12
    # a learnt explainer is far better than splitting the gap evenly
    assert accuracy.figure < 0.3 < accuracy.details["even_split_error"]
    assert all(r.reason for r in report.results)


def test_efficiency_check_fails_without_the_normalization(monkeypatch):
    monkeypatch.setattr(fastshap_inference, "additive_efficient_normalization",
                        lambda phi, grand, null, active=None: phi)
    results = _by_name(run_gate(GateContext(_mlp(10), "FastSHAP", _cells(16, 10, 2), target=0,
                                            dtype=DT)))
    eff = results["efficiency"]
    assert eff.passed is False and eff.figure > 100 * eff.bound


def _independent_exact(model, x, groups, target):
    """Shapley values by the subset formula, one coalition at a time (numpy weights)."""
    d = len(groups)
    weights = [math.factorial(s) * math.factorial(d - s - 1) / math.factorial(d)
               for s in range(d)]
    masks = np.zeros((2 ** d, x.shape[1]))
    for code in range(2 ** d):
        for j, g in enumerate(groups):
            if code >> j & 1:
                masks[code, g] = 1.0
    out = np.zeros((x.shape[0], d))
    for n in range(x.shape[0]):
        with torch.no_grad():
            v = model(x[n] * torch.from_numpy(masks))[:, target].numpy()
        for i in range(d):
            for code in range(2 ** d):
                if not code >> i & 1:
                    size = code.bit_count()
                    out[n, i] += weights[size] * (v[code | 1 << i] - v[code])
    return out


def test_accuracy_figure_is_the_error_to_an_independent_enumeration(monkeypatch):
    model, x = _mlp(15, seed=3), _cells(4, 15, 3)
    seen = []
    original = tabular.relative_l2_error

    def spy(estimate, exact):
        seen.append((estimate.clone(), exact.clone()))
        return original(estimate, exact)

    monkeypatch.setattr(tabular, "relative_l2_error", spy)
    results = _by_name(run_gate(GateContext(model, "FastSHAP", x, target=2, dtype=DT)))
    accuracy = results["exact_shapley_accuracy"]
    groups = [list(range(2)), list(range(2, 4)), list(range(4, 6))] + \
        [[i] for i in range(6, 15)]                         # 15 genes in 12 contiguous groups
    assert tabular.contiguous_groups(15) == groups
    exact = _independent_exact(model, x, groups, target=2)
    estimate, used = seen[0]
    np.testing.assert_allclose(used.numpy(), exact, rtol=0, atol=1e-12)
    mine = np.linalg.norm(estimate.numpy() - exact, axis=1).mean() / \
        np.linalg.norm(exact, axis=1).mean()
    assert accuracy.figure == pytest.approx(mine, rel=1e-9)
    assert accuracy.passed


def test_fastshap_suite_checks_a_users_fitted_explainer():
    model, x = _mlp(8), _cells(24, 8, 4)
    fs = FastSHAP.fit(model, x, x, random_state=1, explainer_kwargs={"hidden_width": 16},
                      train_kwargs={"max_epochs": 2})
    report = run_gate(GateContext(model, "FastSHAP", x, target=0, dtype=DT,
                                  options={"explainer": fs, "x_train": x.numpy()}))
    assert report.passed, [(r.name, r.details) for r in report.failed]


def test_fastshap_suite_names_bad_inputs():
    with pytest.raises(ValueError, match=r"expression \(N, G\)"):
        run_gate(GateContext(_mlp(8), "FastSHAP", torch.zeros(2, 4, 2, dtype=DT)))


# ----------------------------------------------------------------------------- heads
def _neighbour_data(n=40, seed=1, dtype=DT):
    g = torch.Generator().manual_seed(seed)
    nb = torch.randn(n, 5, 6, generator=g, dtype=dtype)
    ct = torch.randint(0, 4, (n,), generator=g)
    ct[0] = 4                                  # a group of one cell: skipped (NaN)
    obs = torch.randn(n, 6, generator=g, dtype=dtype)
    obs[ct == 1, 2] = 0.7                      # constant within a group: NaN
    return nb, ct, obs


def _heads_context(model, dtype=DT):
    nb, ct, obs = _neighbour_data(dtype=dtype)
    return GateContext(model, "HeadAblationExplainedVariance", nb, dtype=dtype,
                       options={"attention": "attention", "groups": ct, "observed": obs,
                                "additional_forward_args": (ct,)})


def test_heads_suite_passes_on_a_multihead_attention_model():
    report = run_gate(_heads_context(NeighbourModel()))
    results = _by_name(report)
    assert list(results) == ["brute_force_agreement", "keep_all_heads", "device_agreement",
                             "model_unchanged"]
    assert results["device_agreement"].skipped          # on the CPU: nothing to compare
    assert report.passed, [(r.name, r.figure, r.details) for r in report.failed]
    agreement = results["brute_force_agreement"]
    assert agreement.figure <= 1e-12
    assert set(agreement.details) >= {"keep/zero", "remove/zero", "keep/mean",
                                      "reproduction_relative_error"}


def test_heads_suite_flags_an_adapter_that_mixes_up_heads(monkeypatch):
    original = head_adapters._mha_heads

    def rolled(*args, **kwargs):
        heads, batched = original(*args, **kwargs)
        return heads.roll(1, dims=1), batched        # head h reported as head h + 1

    monkeypatch.setattr(head_adapters, "_mha_heads", rolled)
    results = _by_name(run_gate(_heads_context(NeighbourModel())))
    assert results["brute_force_agreement"].passed is False
    assert results["brute_force_agreement"].figure > 1e-3
    assert results["keep_all_heads"].passed       # nothing ablated: the module's own output


class _ScaledAttention(nn.MultiheadAttention):
    """A subclass with its own forward: the registry still hands it the MHA adapter."""

    def forward(self, *args, **kwargs):
        out, weights = super().forward(*args, **kwargs)
        return 2.0 * out, weights


def test_heads_suite_flags_a_subclass_whose_forward_differs():
    model = NeighbourModel()
    old = model.attention
    new = _ScaledAttention(old.embed_dim, old.num_heads, batch_first=True, dtype=DT)
    new.load_state_dict(old.state_dict())
    model.attention = new.eval()
    result = _by_name(run_gate(_heads_context(model)))["brute_force_agreement"]
    assert result.passed is False
    assert result.details["reproduction_relative_error"] > 0.1
    assert "not plain nn.MultiheadAttention" in result.details["failure"]


def test_heads_suite_needs_its_options():
    ctx = _heads_context(NeighbourModel())
    del ctx.options["observed"]
    with pytest.raises(ValueError, match="observed"):
        run_gate(ctx)


@settings(max_examples=20, deadline=None)
@given(batch_first=st.booleans(), kdim=st.sampled_from([None, 3]), bias=st.booleans(),
       bias_kv=st.booleans(), zero_attn=st.booleans(), masked=st.booleans(),
       bool_masks=st.booleans(), heads=st.sampled_from([1, 2, 3]), seed=st.integers(0, 999))
def test_head_loop_reproduces_multihead_attention(batch_first, kdim, bias, bias_kv, zero_attn,
                                                  masked, bool_masks, heads, seed):
    torch.manual_seed(seed)
    mha = nn.MultiheadAttention(6, heads, bias=bias, add_bias_kv=bias_kv,
                                add_zero_attn=zero_attn, kdim=kdim, vdim=kdim,
                                batch_first=batch_first, dtype=DT).eval()
    q, kv = torch.randn(4, 3, 6, dtype=DT), torch.randn(4, 5, kdim or 6, dtype=DT)
    if not batch_first:
        q, kv = q.transpose(0, 1), kv.transpose(0, 1)
    kwargs = {}
    if masked:
        kpm = torch.zeros(4, 5, dtype=torch.bool)
        kpm[1, :2] = True
        attn = torch.rand(4 * heads, 3, 5, dtype=DT) < 0.3
        attn[..., -1] = False                    # no query attends to nothing
        kwargs = ({"key_padding_mask": kpm, "attn_mask": attn} if bool_masks else
                  {"key_padding_mask": kpm.to(DT) * -1e9, "attn_mask": torch.randn(3, 5, dtype=DT)})
    with torch.no_grad():
        out, w = mha(q, kv, kv, **kwargs)
        loop_out, loop_w = HeadLoop(mha, set(range(heads)))(q, kv, kv, **kwargs)
        kept = HeadLoop(mha, {0})(q, kv, kv, **kwargs)[0]
    assert float((loop_out - out).abs().max()) <= 1e-12
    assert float((loop_w - w).abs().max()) <= 1e-12
    if heads == 1:
        assert float((kept - out).abs().max()) <= 1e-12


# ----------------------------------------------------------------------------- baselines
def _sequence_context(model=None):
    if model is None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            model = SequenceModel().to(DT).eval()
    x = random_one_hot(3, 16, torch.Generator().manual_seed(0))
    return GateContext(model, "ShuffleDeepLiftShap", x, target=1, dtype=DT, random_state=3,
                       n_references=2)


def test_baseline_write_then_compare_passes_with_zero_change(tmp_path):
    directory = tmp_path / "nested" / "baseline"
    written = baseline_check(_sequence_context(), directory, update=True)
    assert written.name == "drift" and written.passed and written.figure == 0.0
    assert sorted(os.listdir(directory)) == [ATTRIBUTIONS_FILE, METADATA_FILE]  # no temp files
    meta = json.loads((directory / METADATA_FILE).read_text())
    assert meta["method"] == "ShuffleDeepLiftShap" and meta["dtype"] == "float64"
    assert meta["input_shape"] == [3, 4, 16] and meta["random_state"] == 3
    assert meta["n_references"] == 2 and meta["target"] == 1
    assert {"captum_genomics", "torch", "captum", "device", "model_sha256"} <= set(meta)
    ctx = _sequence_context()
    stored = np.load(directory / ATTRIBUTIONS_FILE)["attributions"]
    from captum_genomics import ShuffleDeepLiftShap
    again = ShuffleDeepLiftShap(ctx.model).attribute(ctx.inputs, n_references=2, target=1,
                                                     random_state=3)
    assert np.array_equal(stored, again.numpy())
    compared = baseline_check(ctx, directory, update=False)
    assert compared.passed and compared.figure == 0.0
    assert compared.bound == pytest.approx(1e-10 * np.abs(stored).max())
    assert compared.details["largest_change_per_target"] == {"1": 0.0}


def test_a_changed_weight_fails_with_the_model_hash_reason(tmp_path):
    baseline_check(_sequence_context(), tmp_path, update=True)
    ctx = _sequence_context()
    with torch.no_grad():
        ctx.model.conv.weight[0, 0, 0] += 1e-3
    result = baseline_check(ctx, tmp_path, update=False)
    assert result.passed is False
    assert any("drift of your own making" in m for m in result.details["mismatches"])
    assert "weights differ" in result.reason
    assert 0 < result.details["largest_change"] < math.inf
    # --update-baseline rewrites it; the new weights then pass
    rewritten = baseline_check(ctx, tmp_path, update=True)
    assert rewritten.passed and rewritten.details["replaced"]["model_sha256"] != \
        state_dict_sha256(ctx.model)
    assert baseline_check(ctx, tmp_path, update=False).passed


def test_a_changed_attribution_is_drift(tmp_path, monkeypatch):
    baseline_check(_sequence_context(), tmp_path, update=True)
    from captum_genomics.testing.gate import baseline

    original = baseline._attributions

    def shifted(context):
        attr, axis, extra = original(context)
        attr = attr.copy()
        attr[1, 2, 3] += 1e-6
        return attr, axis, extra

    monkeypatch.setattr(baseline, "_attributions", shifted)
    result = baseline_check(_sequence_context(), tmp_path, update=False)
    assert result.passed is False and "mismatches" not in result.details
    assert result.figure == pytest.approx(1e-6, rel=1e-6)
    assert result.details["largest_change_at"] == [1, 2, 3]


def test_peers_are_skipped_without_reading_the_directory(tmp_path):
    ctx = _sequence_context()
    ctx.method = "captum:DeepLiftShap"
    result = baseline_check(ctx, tmp_path / "none", update=False)
    assert result.skipped and "peer" in result.reason


def test_a_missing_or_broken_baseline_raises(tmp_path):
    with pytest.raises(BaselineError, match="holds no baseline; run once with "
                                            "--update-baseline"):
        baseline_check(_sequence_context(), tmp_path / "none", update=False)
    assert issubclass(BaselineError, ValueError)
    baseline_check(_sequence_context(), tmp_path, update=True)
    (tmp_path / ATTRIBUTIONS_FILE).write_bytes(b"not an npz")
    with pytest.raises(BaselineError, match="sha256"):
        baseline_check(_sequence_context(), tmp_path, update=False)


def test_fastshap_baselines_need_a_fitted_explainer(tmp_path):
    model, x = _mlp(6), _cells(10, 6, 5)
    ctx = GateContext(model, "FastSHAP", x, target=0, dtype=DT)
    skipped = baseline_check(ctx, tmp_path / "a", update=True)
    assert skipped.skipped and "fitted explainer" in skipped.reason
    assert baseline_check(ctx, tmp_path / "a", update=False).skipped    # skipped, not an error
    assert not (tmp_path / "a").exists()
    fs = FastSHAP.fit(model, x, x, random_state=0, explainer_kwargs={"hidden_width": 8},
                      train_kwargs={"max_epochs": 1})
    path = tmp_path / "fs.pt"
    fs.save(path)
    ctx.options["explainer"] = str(path)
    assert baseline_check(ctx, tmp_path / "b", update=True).passed
    result = baseline_check(ctx, tmp_path / "b", update=False)
    assert result.passed and result.figure == 0.0
    assert set(result.details["largest_change_per_output"]) == {"0", "1", "2"}


def test_state_dict_hash_ignores_dtype_but_not_values():
    model = _mlp(5).float()
    h = state_dict_sha256(model)
    assert h == state_dict_sha256(model.double())
    with torch.no_grad():
        model[0].bias[0] += 1.0
    assert state_dict_sha256(model) != h


def test_fastshap_device_agreement_compares_with_a_cpu_load():
    """The CUDA check's comparison, run CPU against CPU: the same explainer gives 0."""
    from captum_genomics import FastSHAP
    from captum_genomics.testing.gate.tabular import fastshap_device_agreement

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.ReLU(),
                                torch.nn.Linear(8, 2)).double().eval()
    x = torch.rand(20, 6, dtype=torch.float64)
    fs = FastSHAP.fit(model, x, x[:8], random_state=0, explainer_kwargs={"hidden_width": 16},
                      train_kwargs={"max_epochs": 2})
    figure, details = fastshap_device_agreement(fs, model, x, 1)
    assert figure == 0.0 and details["max_abs_difference"] == 0.0
