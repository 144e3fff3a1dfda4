"""Side-by-side DeepLIFT/SHAP speed and memory: ours vs tangermeme vs Captum, one run.

BPNet-style model (``captum_genomics.zoo.bpnet.BPNetLike``), 1 kb inputs, 20
references per example, 32 example-reference pairs per batch, CPU. Prints
pairs/s and ratios, the 8-target comparison, and peak resident memory per
pair for N = 8, 32, 64 (each in a fresh subprocess: the rise of the resident
set's high-water mark, VmHWM, over the resident set after set-up; Linux only).

Usage: ``python benchmarks/deeplift_vs_peers.py [--rounds 5] [--json out.json]``
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402

from _deeplift_setup import (  # noqa: E402
    BATCH,
    captum_deeplift,
    make,
    ours,
    plain_forward_backward,
    tangermeme,
)

IMPLS = {"ours": ours, "tangermeme": tangermeme, "captum": captum_deeplift,
         "plain_fwd_bwd": plain_forward_backward}


def _time(fn, rounds):
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def speed(rounds: int, n: int = 8) -> dict:
    model, x, refs = make(n)
    pairs = n * refs.shape[1]
    for fn in IMPLS.values():
        fn(model, x, refs)  # warm-up
    times = {name: [] for name in IMPLS}
    for _ in range(rounds):  # interleave so that machine noise hits all alike
        for name, fn in IMPLS.items():
            times[name].append(_time(lambda: fn(model, x, refs), 1))
    med = {name: statistics.median(t) for name, t in times.items()}
    out = {"pairs": pairs, "seconds": med,
           "pairs_per_s": {k: pairs / v for k, v in med.items()},
           "speedup_vs_tangermeme": med["tangermeme"] / med["ours"],
           "speedup_vs_captum": med["captum"] / med["ours"],
           "tangermeme_over_plain": med["tangermeme"] / med["plain_fwd_bwd"],
           "captum_over_plain": med["captum"] / med["plain_fwd_bwd"],
           "ours_over_plain": med["ours"] / med["plain_fwd_bwd"]}
    t_ours = statistics.median(
        _time(lambda: ours(model, x, refs, targets=list(range(8))), 1) for _ in range(rounds))
    t_tm = statistics.median(
        _time(lambda: [tangermeme(model, x, refs, target=t) for t in range(8)], 1)
        for _ in range(max(1, rounds // 2)))
    out["eight_targets"] = {"ours_s": t_ours, "tangermeme_s": t_tm, "speedup": t_tm / t_ours}
    return out


_CHILD = """
import sys, torch
sys.path.insert(0, {here!r})
from _deeplift_setup import make, IMPL

def status(key):
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith(key))

model, x, refs = make({n})
with open("/proc/self/clear_refs", "w") as fh:  # reset the peak (VmHWM) to the current RSS
    fh.write("5")
base = status("VmRSS:")
IMPL(model, x, refs)
print((status("VmHWM:") - base) / 1024)
"""


def peak_memory_mb(impl: str, n: int) -> float:
    here = os.path.dirname(os.path.abspath(__file__))
    code = _CHILD.replace("IMPL", {"ours": "ours", "tangermeme": "tangermeme",
                                   "captum": "captum_deeplift",
                                   "plain_fwd_bwd": "plain_forward_backward"}[impl])
    code = code.format(here=here, n=n)
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(res.stdout.strip().splitlines()[-1])


def memory(ns=(8, 32, 64)) -> dict:
    table = {}
    for impl in ("ours", "tangermeme", "plain_fwd_bwd"):
        table[impl] = {n: peak_memory_mb(impl, n) for n in ns}
    per_pair = {impl: max(v.values()) / BATCH for impl, v in table.items()}
    return {"peak_mb_over_baseline": table, "mb_per_pair_at_32": per_pair}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    result = {"speed": speed(args.rounds)}
    s = result["speed"]
    print(f"\n{s['pairs']} pairs, 1 kb, BPNet-like, batch {BATCH}")
    for k, v in s["pairs_per_s"].items():
        print(f"  {k:>14}: {v:8.1f} pairs/s  ({s['seconds'][k]:.3f} s)")
    print(f"  ours vs tangermeme: {s['speedup_vs_tangermeme']:.2f}x faster")
    print(f"  ours vs Captum DeepLift: {s['speedup_vs_captum']:.2f}x faster")
    print(f"  time / plain fwd+bwd: ours {s['ours_over_plain']:.2f}, tangermeme "
          f"{s['tangermeme_over_plain']:.2f}, Captum {s['captum_over_plain']:.2f}")
    e = s["eight_targets"]
    print(f"  8 targets: ours one call {e['ours_s']:.2f} s vs 8 tangermeme calls "
          f"{e['tangermeme_s']:.2f} s -> {e['speedup']:.2f}x")
    if not args.skip_memory:
        result["memory"] = memory()
        print("\npeak memory over baseline (MB) by N, batch 32 pairs:")
        for impl, row in result["memory"]["peak_mb_over_baseline"].items():
            cells = ", ".join(f"N={n}: {v:.0f}" for n, v in row.items())
            print(f"  {impl:>14}: {cells}; "
                  f"{result['memory']['mb_per_pair_at_32'][impl]:.1f} MB/pair")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=2, default=str)


if __name__ == "__main__":
    main()
