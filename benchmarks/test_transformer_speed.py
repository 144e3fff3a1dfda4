"""DeepLIFT/SHAP on transformers: ours vs tangermeme vs Captum, side by side (pytest-benchmark).

The shipped CTCF transformer and a one-layer ``nn.MultiheadAttention`` model,
8 held-out CTCF peaks x 20 dinucleotide shuffles, float32; the methods and
models are those of :mod:`transformer_vs_peers` (the script that also measures
convergence deltas, warnings and agreement, and writes the JSON record).

Run: ``pytest benchmarks/test_transformer_speed.py --benchmark-group-by=group``.
``TRANSFORMER_WEIGHTS=random`` benchmarks the ``torch.manual_seed(0)``
initialisation instead of the shipped weights (missing shipped weights fail
the benchmark; there is no silent fallback).
"""

import os

import pytest
import transformer_vs_peers as B

N_EXAMPLES, N_REFERENCES = 8, 20
METHODS = ["ours", "ours_pairs", "tangermeme", "tangermeme_ig_op", "tangermeme_rewritten",
           "captum", "plain_fwd_bwd"]


@pytest.fixture(scope="module")
def inputs():
    return B.make_inputs(N_EXAMPLES, N_REFERENCES)


@pytest.fixture(scope="module")
def transformer():
    try:
        return B.load_transformer(os.environ.get("TRANSFORMER_WEIGHTS", "shipped"))
    except SystemExit as err:
        pytest.fail(str(err))


def _run(benchmark, name, model, inputs, method):
    x, refs = inputs
    m, fn = B.method_table(name, model)[method]
    benchmark.pedantic(fn, args=(m, x, refs), rounds=3, warmup_rounds=1)


@pytest.mark.benchmark(group="transformer-ctcf-200bp-20refs-8seqs")
@pytest.mark.parametrize("method", METHODS)
def test_ctcf_transformer(benchmark, transformer, inputs, method):
    _run(benchmark, "ctcf_transformer", transformer, inputs, method)


@pytest.mark.benchmark(group="mha-200bp-20refs-8seqs")
@pytest.mark.parametrize("method", [m for m in METHODS if m != "tangermeme_ig_op"])
def test_mha(benchmark, inputs, method):
    # tangermeme_ig_op raises on nn.MultiheadAttention (it returns a tuple)
    _run(benchmark, "mha", B.load_mha(), inputs, method)
