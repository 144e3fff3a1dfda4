"""The shipped CTCF transformer: loader, held-out AUROC, exact DeepLIFT, the CTCF job, the gate.

The test-split AUROC is recomputed here without the package's ``auroc`` or the
training script: scores from plain forward passes, negatives drawn again with
the recorded seeds, and the AUROC counted over every positive-negative pair.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch

from captum_genomics import ShuffleDeepLiftShap, cli
from captum_genomics.deeplift.rules.base import UnsupportedOperationWarning
from captum_genomics.references import dinucleotide_shuffle
from captum_genomics.seq.datasets import load_ctcf_peaks
from captum_genomics.workflows import deeplift_ctcf
from captum_genomics.workflows.deeplift_ctcf import run_ctcf_job
from captum_genomics.zoo import (
    CTCFTransformer,
    load_ctcf_metadata,
    load_ctcf_transformer,
    load_ctcf_transformer_metadata,
)
from captum_genomics.zoo.ctcf import _zoo_path
from captum_genomics.zoo.ctcf_transformer import WEIGHTS_FILE

SPEC = "captum_genomics.zoo.ctcf_transformer:load_ctcf_transformer"


@pytest.fixture(scope="module")
def model():
    return load_ctcf_transformer()


@pytest.fixture(scope="module")
def meta():
    return load_ctcf_transformer_metadata()


@pytest.fixture(scope="module")
def test_peaks(meta):
    return load_ctcf_peaks().one_hot[torch.as_tensor(meta["split"]["test"])]


def test_loader_eval_mode_and_architecture(model, meta):
    assert isinstance(model, CTCFTransformer)
    assert not any(m.training for m in model.modules())
    arch = meta["architecture"]
    assert model.conv.out_channels == arch["d_model"]
    assert model.conv.kernel_size == (arch["filter_width"],)
    assert model.pool.kernel_size == arch["pool"]
    assert len(model.encoder.layers) == arch["n_layers"]
    layer = model.encoder.layers[0]
    assert layer.self_attn.num_heads == arch["n_heads"] and layer.norm_first
    assert layer.linear1.out_features == arch["dim_feedforward"]
    assert layer.dropout.p == arch["dropout"] and model.positions.shape[0] == arch["max_tokens"]
    state = torch.load(_zoo_path(WEIGHTS_FILE), map_location="cpu", weights_only=True)
    assert state.keys() == model.state_dict().keys()
    assert all(v.dtype == torch.float32 for v in state.values())
    assert meta["n_parameters"] == sum(p.numel() for p in model.parameters())
    assert _zoo_path(WEIGHTS_FILE).stat().st_size < 1_000_000
    assert meta["split"] == load_ctcf_metadata()["split"]  # the CNN's split
    assert model(torch.zeros(2, 4, 200)).shape == (2, 1)


def _pairwise_auroc(pos: np.ndarray, neg: np.ndarray) -> float:
    """P(score of a positive > score of a negative) + 1/2 P(tie), over all pairs."""
    diff = pos[:, None] - neg[None, :]
    return float(((diff > 0).sum() + 0.5 * (diff == 0).sum()) / diff.size)


def test_test_auroc_recomputed_from_the_shipped_weights(model, meta, test_peaks):
    neg = dinucleotide_shuffle(test_peaks, n_references=10, random_state=20_000)
    neg = neg.reshape(-1, 4, test_peaks.shape[-1]).to(torch.float32)
    assert neg.shape == (500, 4, 200)
    with torch.no_grad():
        pos_scores = torch.cat([model(test_peaks[i : i + 16]) for i in range(0, 50, 16)])
        neg_scores = torch.cat([model(neg[i : i + 100]) for i in range(0, 500, 100)])
    value = _pairwise_auroc(pos_scores[:, 0].double().numpy(), neg_scores[:, 0].double().numpy())
    assert value == pytest.approx(meta["metrics"]["test_auroc"], abs=1e-6)
    assert value >= 0.9


def test_deeplift_is_exact_in_float64(model, test_peaks):
    model64 = load_ctcf_transformer().double()
    x = test_peaks[:3].double()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _, delta = ShuffleDeepLiftShap(model64).attribute(
            x, n_references=4, random_state=0, return_convergence_delta=True)
    unsupported = [str(w.message) for w in caught
                   if issubclass(w.category, UnsupportedOperationWarning)]
    assert not unsupported, unsupported
    assert delta.shape == (3, 4)
    assert float(delta.abs().max()) <= 1e-10


def test_ctcf_job_on_the_transformer_via_cli(tmp_path, capsys):
    out = tmp_path / "out"
    code = cli.main(["--zoo-model", "transformer", "--out", str(out), "--n-examples", "2",
                     "--n-references", "2", "--no-plot"])
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["model"] == "transformer" and summary["model_class"] == "CTCFTransformer"
    assert summary["n_sequences"] == 2 and summary["motif"]["id"] == "MA0139.2"
    for name in ("ohe.npz", "shap.npz", "contributions.npz", "windows.tsv",
                 "controls_ohe.npz", "controls_contributions.npz"):
        assert (out / name).is_file(), name
    assert "model: transformer (CTCFTransformer)" in capsys.readouterr().out


def test_zoo_model_option_reaches_the_job(monkeypatch, capsys):
    calls = []
    monkeypatch.setattr(deeplift_ctcf, "run_ctcf_job", lambda *a, **k: calls.append(k))
    assert cli.main([]) == 0 and calls[0]["model"] == "cnn"
    assert cli.main(["deeplift", "--zoo-model", "transformer"]) == 0
    assert calls[1]["model"] == "transformer"
    with pytest.raises(SystemExit) as exc:
        cli.main(["--zoo-model", "rnn"])
    assert exc.value.code == 2 and "--zoo-model" in capsys.readouterr().err


def test_run_ctcf_job_names_the_cnn_by_default(tmp_path):
    summary = run_ctcf_job(tmp_path, n_examples=1, n_references=2, plot=False, verbose=False)
    assert summary["model"] == "cnn" and summary["model_class"] == "CTCFNet"


@pytest.mark.parametrize("bad, error", [("rnn", ValueError), ("Transformer", ValueError),
                                        (3, TypeError)])
def test_bad_model_argument(bad, error, tmp_path):
    with pytest.raises(error, match="`model` must be one of 'cnn', 'transformer'"):
        run_ctcf_job(tmp_path, model=bad, n_examples=1, verbose=False)
    assert not any(tmp_path.iterdir())


def test_gate_sequence_suite_passes_on_the_shipped_transformer():
    from captum_genomics.workflows.validate import run_validate

    report = run_validate(SPEC, input_length=200, n_examples=4, n_references=4, verbose=False)
    failed = [(r.name, r.figure, r.bound, r.details) for r in report.failed]
    assert report.passed, failed
    ran = {r.name for r in report.results if not r.skipped}
    assert {"additivity", "completeness", "batch_invariance", "determinism"} <= ran
