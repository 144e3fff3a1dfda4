"""Side-by-side in-silico saturation mutagenesis: ours (fast, naive) vs tangermeme, one run.

Two 1 kb models, CPU, float32, target 0, ``batch_size`` 64 edited sequences for
every implementation:

* Basset-style (Kelley et al. 2016 layout): 3 x (conv 300/200/200 filters of
  widths 19/11/7, batch norm, ReLU, max-pool 3/4/4), flatten, 2 dense layers
  of 1000 with ReLU and dropout, 164 sigmoid outputs; 10 sequences;
* BPNet-style (:class:`captum_genomics.zoo.bpnet.BPNetLike`, defaults: a
  width-21 convolution, 8 dilated residual convolutions of 64 filters, global
  mean, 8 outputs); 10 sequences.

Timed: our ``InSilicoMutagenesis(fast=True)`` and tangermeme's
``saturation_mutagenesis(fast=True)`` on all sequences, a fresh call each time
as a user makes it (tangermeme's timed naive first batch, ``torch.export``
capture and check are inside its time, and also reported apart; our trace,
plan and check likewise), interleaved over ``--rounds`` rounds; the naive
paths (ours ``fast=False`` and tangermeme ``fast=False``) on ``--naive-seqs``
sequences (every sequence costs the same: 3 L edits), scaled to the same
number of sequences. Wall time (``perf_counter``) and CPU time
(``process_time``) are reported as medians; ratios are computed from both.

Usage: ``python benchmarks/ism_vs_peers.py [--rounds 3] [--threads T] [--json out.json]``
(default JSON: ``benchmarks/results/ism_vs_peers_cpu<T>.json``).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import statistics
import time
import warnings

import torch
from torch import nn

from captum_genomics import InSilicoMutagenesis
from captum_genomics.zoo.bpnet import BPNetLike
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _env import cpu_model  # noqa: E402  (one copy for every benchmark)

LENGTH, BATCH, TARGET = 1000, 64, 0


def basset_like(length: int = LENGTH, random_state: int = 0) -> nn.Module:
    """The Basset layout (Kelley, Snoek & Rinn 2016) for ``length`` bp, random weights, eval."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(random_state)
        flat = 200 * (length // 3 // 4 // 4)
        model = nn.Sequential(
            nn.Conv1d(4, 300, 19, padding=9), nn.BatchNorm1d(300), nn.ReLU(), nn.MaxPool1d(3),
            nn.Conv1d(300, 200, 11, padding=5), nn.BatchNorm1d(200), nn.ReLU(), nn.MaxPool1d(4),
            nn.Conv1d(200, 200, 7, padding=3), nn.BatchNorm1d(200), nn.ReLU(), nn.MaxPool1d(4),
            nn.Flatten(), nn.Linear(flat, 1000), nn.ReLU(), nn.Dropout(0.3),
            nn.Linear(1000, 1000), nn.ReLU(), nn.Dropout(0.3), nn.Linear(1000, 164), nn.Sigmoid())
    return model.eval()


def bpnet_like(random_state: int = 0) -> nn.Module:
    """:class:`~captum_genomics.zoo.bpnet.BPNetLike` with its defaults, random weights, eval."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(random_state)
        return BPNetLike().eval()


MODELS = {"basset": basset_like, "bpnet": bpnet_like}


def make_sequences(n: int, length: int = LENGTH, random_state: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(random_state)
    idx = torch.randint(0, 4, (n, length), generator=gen)
    return torch.nn.functional.one_hot(idx, 4).permute(0, 2, 1).float().contiguous()


def describe(model: nn.Module) -> dict:
    return {"parameters": sum(p.numel() for p in model.parameters()),
            "layers": [type(m).__name__ for m in model.modules()
                       if not list(m.children())]}


# ----------------------------------------------------------------------------- implementations
def ours(model, x, fast=True, info=None, **kwargs):
    explainer = InSilicoMutagenesis(model, fast=fast)
    out = explainer.attribute(x, target=TARGET, batch_size=BATCH, **kwargs)
    if info is not None:
        info["setup_s"] = explainer.fast_path.setup_seconds
        info["fast_path_used"] = explainer.fast_path.used
        info["note"] = explainer.fast_path.note
    return out


def tangermeme(model, x, fast=True, info=None):
    import tangermeme.saturation_mutagenesis as sm

    original = sm._fast_path

    def timed(*args, **kwargs):  # tangermeme's decision: first batch, capture, check
        tic = time.perf_counter()
        result = original(*args, **kwargs)
        if info is not None:
            info["setup_s"] = time.perf_counter() - tic
            info["fast_path_used"] = result[0] is not None
        return result

    sm._fast_path = timed
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            out = sm.saturation_mutagenesis(model, x, target=TARGET, batch_size=BATCH,
                                            device="cpu", fast=fast)
        if info is not None and caught:
            info["warnings"] = [str(w.message)[:300] for w in caught]
    finally:
        sm._fast_path = original
    return out


def _timed(fn):
    info = {}
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn(info)
    return {"wall_s": time.perf_counter() - t0, "cpu_s": time.process_time() - c0, **info}, out


def _median(runs, key):
    return statistics.median(r[key] for r in runs)


def bench_model(name: str, n_seqs: int, naive_seqs: int, rounds: int,
                naive_rounds: int) -> dict:
    model = MODELS[name]()
    x = make_sequences(n_seqs)
    fast_impls = {"ours_fast": lambda info: ours(model, x, True, info),
                  "tangermeme_fast": lambda info: tangermeme(model, x, True, info)}
    runs = {k: [] for k in fast_impls}
    outputs = {}
    for r in range(rounds):  # interleaved: the machine's load hits both alike
        order = list(fast_impls) if r % 2 == 0 else list(fast_impls)[::-1]
        for key in order:
            stats, out = _timed(fast_impls[key])
            runs[key].append(stats)
            outputs[key] = out
            print(f"  {name} round {r}: {key:16s} wall {stats['wall_s']:7.2f} s, "
                  f"cpu {stats['cpu_s']:7.2f} s", flush=True)
    # the same convention as tangermeme's output, for a check of the values
    ours_centered = ours(model, x, True, centered=True)
    diff = float((ours_centered - outputs["tangermeme_fast"].to(ours_centered)).abs().max())
    xn = x[:naive_seqs]
    naive_impls = {"ours_naive": lambda info: ours(model, xn, False, info),
                   "tangermeme_naive": lambda info: tangermeme(model, xn, False, info)}
    for r in range(naive_rounds):
        for key, fn in naive_impls.items():
            stats, _ = _timed(fn)
            stats = {**stats, "wall_s": stats["wall_s"] * n_seqs / naive_seqs,
                     "cpu_s": stats["cpu_s"] * n_seqs / naive_seqs}
            runs.setdefault(key, []).append(stats)
            print(f"  {name} naive round {r}: {key:16s} wall {stats['wall_s']:7.2f} s, cpu "
                  f"{stats['cpu_s']:7.2f} s (scaled to {n_seqs} sequences)", flush=True)
    med = {k: {"wall_s": _median(v, "wall_s"), "cpu_s": _median(v, "cpu_s")}
           for k, v in runs.items()}
    ratio = {}
    for other in ("tangermeme_fast", "ours_naive", "tangermeme_naive"):
        if other in med:
            ratio[f"ours_fast_vs_{other}"] = {
                t: med[other][t] / med["ours_fast"][t] for t in ("wall_s", "cpu_s")}
    if "tangermeme_naive" in med:
        ratio["tangermeme_fast_vs_tangermeme_naive"] = {
            t: med["tangermeme_naive"][t] / med["tangermeme_fast"][t]
            for t in ("wall_s", "cpu_s")}
    return {
        "model": describe(model), "sequences": n_seqs, "length": LENGTH, "batch_size": BATCH,
        "edits": n_seqs * LENGTH * 3, "naive_sequences_timed": naive_seqs,
        "median": med, "ratios": ratio, "runs": runs,
        "setup_s": {"ours": _median(runs["ours_fast"], "setup_s"),
                    "tangermeme": _median(runs["tangermeme_fast"], "setup_s")},
        "max_abs_diff_ours_centered_vs_tangermeme": diff,
    }



def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--naive-rounds", type=int, default=1)
    parser.add_argument("--sequences", type=int, default=10)
    parser.add_argument("--naive-seqs", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    import tangermeme

    meta = {"cpu": cpu_model(), "cores": os.cpu_count(), "threads": threads,
            "torch": torch.__version__, "tangermeme": tangermeme.__version__,
            "date": datetime.date.today().isoformat(),
            "load_average_at_start": os.getloadavg()}
    print(meta, flush=True)
    result = {"meta": meta}
    for name in args.models:
        result[name] = bench_model(name, args.sequences, args.naive_seqs, args.rounds,
                                   args.naive_rounds)
    meta["load_average_at_end"] = os.getloadavg()
    for name in args.models:
        r = result[name]
        print(f"\n{name}: {r['sequences']} x 1 kb, {r['edits']} edits, batch {BATCH}, "
              f"{threads} threads")
        for key, m in r["median"].items():
            print(f"  {key:>17}: wall {m['wall_s']:8.2f} s   cpu {m['cpu_s']:8.2f} s")
        for key, v in r["ratios"].items():
            print(f"  {key:>40}: {v['wall_s']:6.2f}x wall, {v['cpu_s']:6.2f}x cpu")
        print(f"  set-up (in the times above): ours {r['setup_s']['ours']:.2f} s, tangermeme "
              f"{r['setup_s']['tangermeme']:.2f} s; max |ours - tangermeme| "
              f"{r['max_abs_diff_ours_centered_vs_tangermeme']:.2e}")
    path = args.json or os.path.join(os.path.dirname(os.path.abspath(__file__)), "results",
                                     f"ism_vs_peers_cpu{threads}.json")
    with open(path, "w") as fh:
        json.dump(result, fh, indent=2, default=str)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
