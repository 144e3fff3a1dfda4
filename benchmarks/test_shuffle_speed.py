"""Speed of our dinucleotide shuffle against tangermeme's, side by side.

Both shuffle the same 64 random one-hot sequences of 1 kb, 20 times each, and
return float32 one-hot shuffles ``(64, 20, 4, 1000)``.

Run with pytest-benchmark (not part of the default test run)::

    python -m pytest benchmarks/test_shuffle_speed.py --benchmark-only

or as a script, which times the implementations in alternating blocks of
calls (so that all see the same machine load, while each runs in its steady
state as under pytest-benchmark) and prints shuffles per second (median
call) and the ratios::

    python benchmarks/test_shuffle_speed.py [--rounds 3 --calls 15]
"""

from __future__ import annotations

import argparse
import statistics
import time

import pytest
import torch

from captum_genomics.references import dinucleotide_shuffle

N_SEQUENCES, N_SHUFFLES, LENGTH = 64, 20, 1000
SHUFFLES_PER_CALL = N_SEQUENCES * N_SHUFFLES


def make_sequences(n: int = N_SEQUENCES, length: int = LENGTH, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    idx = torch.randint(0, 4, (n, length), generator=gen)
    return torch.nn.functional.one_hot(idx, 4).permute(0, 2, 1).float().contiguous()


def ours(x: torch.Tensor) -> torch.Tensor:
    return dinucleotide_shuffle(x, N_SHUFFLES, random_state=0)


def theirs(x: torch.Tensor, n_jobs: int = 1) -> torch.Tensor:
    from tangermeme.ersatz import dinucleotide_shuffle as tm_shuffle

    return tm_shuffle(x, n=N_SHUFFLES, random_state=0, n_jobs=n_jobs)


@pytest.fixture(scope="module")
def sequences() -> torch.Tensor:
    return make_sequences()


def _run(benchmark, fn, x):
    fn(x)  # compile / load the numba cache outside the timing
    out = benchmark(fn, x)
    assert out.shape == (N_SEQUENCES, N_SHUFFLES, 4, LENGTH)
    assert out.dtype == torch.float32
    stats = benchmark.stats.stats if benchmark.stats is not None else None
    if stats is not None:
        benchmark.extra_info["shuffles_per_s"] = SHUFFLES_PER_CALL / stats.median


@pytest.mark.benchmark(group="dinucleotide_shuffle_64x20x1kb")
def test_ours(benchmark, sequences):
    _run(benchmark, ours, sequences)


@pytest.mark.benchmark(group="dinucleotide_shuffle_64x20x1kb")
def test_tangermeme(benchmark, sequences):
    pytest.importorskip("tangermeme")
    _run(benchmark, theirs, sequences)


@pytest.mark.benchmark(group="dinucleotide_shuffle_64x20x1kb")
def test_tangermeme_all_threads(benchmark, sequences):
    pytest.importorskip("tangermeme")
    _run(benchmark, lambda x: theirs(x, n_jobs=-1), sequences)


def main(rounds: int = 3, calls: int = 15) -> dict[str, float]:
    x = make_sequences()
    impls = {
        "captum_genomics": ours,
        "tangermeme n_jobs=1": theirs,
        "tangermeme n_jobs=-1": lambda s: theirs(s, n_jobs=-1),
    }
    first = {}
    for name, fn in impls.items():  # first call: numba compile or cache load
        t = time.perf_counter()
        fn(x)
        first[name] = time.perf_counter() - t
    times = {name: [] for name in impls}
    for _ in range(rounds):  # alternate blocks so that all see the same load
        for name, fn in impls.items():
            for _ in range(calls):
                t = time.perf_counter()
                fn(x)
                times[name].append(time.perf_counter() - t)
    rates = {name: SHUFFLES_PER_CALL / statistics.median(ts) for name, ts in times.items()}
    print(
        f"{N_SEQUENCES} sequences x {N_SHUFFLES} shuffles x {LENGTH} bp, float32 one-hot "
        f"output; {rounds} alternating rounds of {calls} calls each, median call:"
    )
    for name in impls:
        print(
            f"  {name:<22} {rates[name]:>11,.0f} shuffles/s   "
            f"(first call {first[name]:.2f} s)"
        )
    base = rates["captum_genomics"]
    for name in list(impls)[1:]:
        print(f"  ratio captum_genomics / {name}: {base / rates[name]:.1f}x")
    return rates


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--calls", type=int, default=15)
    args = parser.parse_args()
    main(args.rounds, args.calls)
