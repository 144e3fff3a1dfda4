"""HeadAblationExplainedVariance vs an AMICI-style per-head, per-cell-type loop, side by side.

The shipped neighbour-attention model (4 heads) on all 700 cells of
``pbmc68k_reduced`` (10 cell types), keep-one-head, zero ablation, the default
permutation count (``ceil(4 * 10 / 0.05) = 800``) for both; one CPU thread.
The loop and the setup are in :mod:`head_ablation_vs_loop` (the script that
also writes the JSON record and checks that both give the same EV).

Run: ``pytest benchmarks/test_head_ablation_speed.py --benchmark-group-by=group``.
"""

import numpy as np
import pytest
import torch

pytest.importorskip("scanpy", reason="scanpy is needed for the PBMC 68k data set")

import head_ablation_vs_loop as B  # noqa: E402

GROUP = "head-ablation-pbmc-4heads-10types-700cells"


@pytest.fixture(scope="module")
def setup():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    model, nb, ct, obs, names = B.make_setup()
    yield model, nb, ct, obs, names, B.n_permutations(model, len(names))
    torch.set_num_threads(n)


@pytest.mark.benchmark(group=GROUP)
def test_batched(benchmark, setup):
    result = benchmark.pedantic(B.run_ours, args=setup, rounds=10, warmup_rounds=1)
    assert result.n_permutations == setup[-1]


@pytest.mark.benchmark(group=GROUP)
def test_amici_style_loop(benchmark, setup):
    loop = benchmark.pedantic(B.run_loop, args=setup, rounds=3, warmup_rounds=0)
    ours = B.run_ours(*setup)
    agreement = B.compare(ours, loop)
    for key, rec in agreement.items():
        assert rec["nan_positions_equal"], key
        assert rec["max_abs_diff"] <= 1e-6, (key, rec)
    assert np.isfinite(loop["p_value"]).all()
