"""InSilicoMutagenesis vs tangermeme's saturation_mutagenesis, side by side (pytest-benchmark).

Run (not part of the default test run)::

    python -m pytest benchmarks/test_ism_speed.py --benchmark-group-by=group

Models and sizes as in ``benchmarks/ism_vs_peers.py`` (Basset-style and
BPNet-style, 1 kb, float32, target 0, batch 64), which also prints the ratios
and writes the JSON. Every call is a fresh one, as a user makes it: tangermeme's
``fast=True`` time holds its timed naive first batch, its ``torch.export``
capture and its check; ours holds the trace, plan and check.
"""

import pytest

from ism_vs_peers import basset_like, bpnet_like, make_sequences, ours, tangermeme

pytest.importorskip("tangermeme")


@pytest.fixture(scope="module")
def basset():
    return basset_like()


@pytest.fixture(scope="module")
def bpnet():
    return bpnet_like()


def _run(benchmark, fn, model, x, rounds):
    benchmark.pedantic(fn, args=(model, x), rounds=rounds, iterations=1, warmup_rounds=0)
    benchmark.extra_info.update({"sequences": int(x.shape[0]), "length": int(x.shape[2]),
                                 "edits": int(x.shape[0] * x.shape[2] * 3)})


@pytest.mark.benchmark(group="ism-basset-1kb-10seqs")
@pytest.mark.parametrize("impl", [ours, tangermeme], ids=["ours_fast", "tangermeme_fast"])
def test_basset_fast(benchmark, basset, impl):
    _run(benchmark, impl, basset, make_sequences(10), rounds=2)


@pytest.mark.benchmark(group="ism-bpnet-1kb-4seqs")
@pytest.mark.parametrize("impl", [ours, tangermeme], ids=["ours_fast", "tangermeme_fast"])
def test_bpnet_fast(benchmark, bpnet, impl):
    _run(benchmark, impl, bpnet, make_sequences(4), rounds=2)


@pytest.mark.benchmark(group="ism-basset-1kb-1seq-vs-naive")
@pytest.mark.parametrize("impl", [
    ours,
    lambda model, x: ours(model, x, fast=False),
    lambda model, x: tangermeme(model, x, fast=False),
], ids=["ours_fast", "ours_naive", "tangermeme_naive"])
def test_basset_against_naive(benchmark, basset, impl):
    _run(benchmark, impl, basset, make_sequences(1), rounds=1)
