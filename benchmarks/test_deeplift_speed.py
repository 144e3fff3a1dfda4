"""ShuffleDeepLiftShap vs tangermeme and Captum, side by side (pytest-benchmark).

Run: ``pytest benchmarks/test_deeplift_speed.py --benchmark-group-by=group``.
The ratios, agreement and memory are printed (and written to JSON) by
``python benchmarks/deeplift_vs_peers.py``.
"""

import pytest

from _deeplift_setup import (MODELS, captum_deeplift, floor_forward_backward, make_case, ours,
                             plain_forward_backward, tangermeme)


@pytest.fixture(scope="module", params=MODELS)
def case(request):
    return make_case(request.param, n=8)


def _peers(case):
    calls = {"ours": (case.model, ours), "tangermeme": (case.peer_model, tangermeme),
             "plain_forward_backward": (case.model, plain_forward_backward),
             "floor_forward_backward": (case.model, floor_forward_backward)}
    if case.name != "transformer":  # Captum has no rules for attention
        calls["captum_deeplift"] = (case.model, captum_deeplift)
    return calls


@pytest.mark.parametrize("impl", ["ours", "tangermeme", "captum_deeplift",
                                  "plain_forward_backward", "floor_forward_backward"])
def test_pairs(benchmark, case, impl):
    calls = _peers(case)
    if impl not in calls:
        pytest.skip(f"{impl} does not apply to {case.name}")
    model, fn = calls[impl]
    benchmark.group = f"deeplift-{case.name}-20refs-8seqs"
    benchmark.pedantic(fn, args=(model, case.x, case.refs), rounds=3, warmup_rounds=1)


@pytest.mark.parametrize("impl", ["ours", "tangermeme"])
def test_eight_targets(benchmark, case, impl):
    if case.name == "transformer":
        pytest.skip("the transformer has one output")
    benchmark.group = f"deeplift-{case.name}-8-targets"
    if impl == "ours":
        benchmark.pedantic(ours, args=(case.model, case.x, case.refs),
                           kwargs={"targets": list(range(8))}, rounds=2, warmup_rounds=1)
    else:
        benchmark.pedantic(lambda: [tangermeme(case.peer_model, case.x, case.refs, target=t)
                                    for t in range(8)], rounds=2, warmup_rounds=1)
