"""ShuffleDeepLiftShap vs tangermeme and Captum, side by side (pytest-benchmark).

Run: ``pytest benchmarks/test_deeplift_speed.py --benchmark-group-by=group``.
The ratios are printed by ``python benchmarks/deeplift_vs_peers.py``.
"""

import pytest

from _deeplift_setup import (
    captum_deeplift,
    make,
    ours,
    plain_forward_backward,
    tangermeme,
)


@pytest.fixture(scope="module")
def data():
    return make(n=8)


@pytest.mark.benchmark(group="deeplift-1kb-20refs-8seqs")
@pytest.mark.parametrize("impl", [ours, tangermeme, captum_deeplift, plain_forward_backward],
                         ids=lambda f: f.__name__)
def test_pairs(benchmark, data, impl):
    model, x, refs = data
    benchmark.pedantic(impl, args=(model, x, refs), rounds=3, warmup_rounds=1)


@pytest.mark.benchmark(group="deeplift-8-targets")
def test_eight_targets_ours(benchmark, data):
    model, x, refs = data
    benchmark.pedantic(ours, args=(model, x, refs), kwargs={"targets": list(range(8))},
                       rounds=2, warmup_rounds=1)


@pytest.mark.benchmark(group="deeplift-8-targets")
def test_eight_targets_tangermeme(benchmark, data):
    model, x, refs = data

    def eight():
        return [tangermeme(model, x, refs, target=t) for t in range(8)]

    benchmark.pedantic(eight, rounds=2, warmup_rounds=1)
