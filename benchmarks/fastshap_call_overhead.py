"""FastSHAP's fixed cost per call: ``FastSHAP.attribute`` against the explainer's bare forward.

A 10-feature classifier (MLP 10 -> 64 -> dropout -> 3 logits, eval mode), the
default baseline game with ``link="softmax"``, one player per feature and an
``MLPExplainer`` of the default size (marked trained: the timing does not
depend on the weights). For 1, 30 and 3,000 rows, interleaved round by round:

* ``attribute``: ``fs.attribute(x, target=0)`` (the usual call: one target);
* ``explainer``: ``explainer(x)`` under ``torch.inference_mode``, the
  explainer network's own forward (all outputs; code this change did not
  touch, so the same reference before and after);
* ``explainer_selected``: ``explainer(x, outputs=<(B,) tensor>)``, the
  single-output path ``attribute`` uses (this change made it cheaper);
* ``model``: ``model(x)`` under ``torch.inference_mode`` (``f(x)``, which
  the efficiency normalization needs on every call).

Medians of wall-clock and CPU time (``time.process_time``, all threads) per
call. The JSON keeps one entry per ``--label`` (``before`` / ``after`` the
caching change), with the CPU model, torch version and thread count; running
again with another label adds to the file. ``--profile`` also prints the top
entries of a cProfile of 200 one-row calls.

``--vs-svs K`` adds an interleaved timing of FastSHAP against Captum's
``ShapleyValueSampling`` at ``K`` permutations (the count that matches
FastSHAP's error in ``fastshap_vs_sampling.py --n-genes 10``) on that 10-gene
protocol, at 100 cells per call and at one cell per call.

Usage::

    python benchmarks/fastshap_call_overhead.py --label after \
        --out benchmarks/results/fastshap_call_overhead_cpu2.json --profile --vs-svs 146
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import platform
import pstats
import statistics
import sys
import time

import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from captum_genomics.fastshap.explainer import MLPExplainer
from captum_genomics.methods.fast_shap import FastSHAP
from _env import cpu_model  # noqa: E402  (one copy for every benchmark)

N_FEATURES = 10
SIZES = (1, 30, 3000)



def build(random_state: int = 0) -> tuple[nn.Module, FastSHAP]:
    torch.manual_seed(random_state)
    model = nn.Sequential(nn.Linear(N_FEATURES, 64), nn.ReLU(), nn.Dropout(0.1),
                          nn.Linear(64, 3)).eval()
    explainer = MLPExplainer(N_FEATURES, N_FEATURES, 3, random_state=random_state,
                             zero_init_output=False).eval()
    fs = FastSHAP(model, explainer, link="softmax", trained=True)
    return model, fs


def timed(fn, rounds: int) -> tuple[list[float], list[float]]:
    walls, cpus = [], []
    for _ in range(rounds):
        w0, c0 = time.perf_counter(), time.process_time()
        fn()
        cpus.append(time.process_time() - c0)
        walls.append(time.perf_counter() - w0)
    return walls, cpus


def measure(rounds: int, inner: int) -> dict:
    model, fs = build()
    explainer = fs.explainer
    gen = torch.Generator().manual_seed(1)
    out = {}
    for n in SIZES:
        x = torch.rand(n, N_FEATURES, generator=gen) * (torch.rand(n, N_FEATURES,
                                                                   generator=gen) > 0.3)
        sel = torch.zeros(n, dtype=torch.long)
        reps = inner if n < 1000 else 1

        def attribute(x=x, reps=reps):
            for _ in range(reps):
                fs.attribute(x, target=0)

        def bare_explainer(x=x, reps=reps):
            with torch.inference_mode():
                for _ in range(reps):
                    explainer(x)

        def selected_explainer(x=x, sel=sel, reps=reps):
            with torch.inference_mode():
                for _ in range(reps):
                    explainer(x, outputs=sel)

        def bare_model(x=x, reps=reps):
            with torch.inference_mode():
                for _ in range(reps):
                    model(x)

        calls = {"attribute": attribute, "explainer": bare_explainer,
                 "explainer_selected": selected_explainer, "model": bare_model}
        for fn in calls.values():  # warm-up
            fn()
        samples = {k: ([], []) for k in calls}
        for _ in range(rounds):  # interleaved: one round of each, then the next round
            for k, fn in calls.items():
                w, c = timed(fn, 1)
                samples[k][0].extend(w)
                samples[k][1].extend(c)
        row = {}
        for k, (w, c) in samples.items():
            row[k] = {"wall_ms": 1e3 * statistics.median(w) / reps,
                      "cpu_ms": 1e3 * statistics.median(c) / reps}
        for clock in ("wall_ms", "cpu_ms"):
            row[f"attribute_over_explainer_{clock[:-3]}"] = (
                row["attribute"][clock] / row["explainer"][clock])
            row[f"attribute_over_explainer_plus_model_{clock[:-3]}"] = row["attribute"][clock] / (
                row["explainer"][clock] + row["model"][clock])
        row["calls_per_sample"] = reps
        out[str(n)] = row
        print(f"{n:5d} rows: attribute {row['attribute']['wall_ms']:.3f} ms "
              f"(cpu {row['attribute']['cpu_ms']:.3f}), explainer "
              f"{row['explainer']['wall_ms']:.3f} ms (cpu {row['explainer']['cpu_ms']:.3f}), "
              f"model {row['model']['wall_ms']:.3f} ms, "
              f"ratio {row['attribute_over_explainer_cpu']:.1f}x explainer (cpu)", flush=True)
    return out


def profile(n_calls: int = 200, top: int = 8) -> list[dict]:
    _, fs = build()
    x = torch.rand(1, N_FEATURES)
    fs.attribute(x, target=0)
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(n_calls):
        fs.attribute(x, target=0)
    prof.disable()
    stream = io.StringIO()
    stats = pstats.Stats(prof, stream=stream).sort_stats("tottime")
    stats.print_stats(top)
    print(stream.getvalue())
    rows = []
    for (file, line, name), (cc, nc, tt, ct, _) in sorted(
            stats.stats.items(), key=lambda kv: -kv[1][2])[:top]:
        rows.append({"function": f"{os.path.basename(file)}:{line}({name})", "ncalls": nc,
                     "tottime_us_per_call": 1e6 * tt / n_calls,
                     "cumtime_us_per_call": 1e6 * ct / n_calls})
    total = sum(v[2] for v in stats.stats.values())
    rows.append({"function": "total (all functions)", "tottime_us_per_call": 1e6 * total / n_calls})
    return rows


def vs_svs(permutations: float, rounds: int = 5) -> dict:
    """FastSHAP against ShapleyValueSampling at a matched permutation count, interleaved.

    The 10-gene protocol of ``fastshap_vs_sampling.py --n-genes 10`` (its cached
    classifier; an explainer of the study's size, 512 wide, 2 hidden layers,
    gradient x input; timing does not depend on the weights). ``permutations``
    is the count at which ShapleyValueSampling reaches the FastSHAP error
    there (interpolated, from that study's JSON). Two regimes: the study's 100
    cells per call, and one cell per call (where the fixed cost of a call
    counts most). SVS time at a fractional count is its time at the nearest
    whole count scaled by the ratio.
    """
    import fastshap_protocol as P

    P.N_GENES = N_FEATURES
    setup = P.make_setup()
    x, target = setup.x_explain, setup.target
    explainer = MLPExplainer(N_FEATURES, N_FEATURES, len(setup.classes), hidden_width=512,
                             n_hidden_layers=2, scale_by_input=True).eval()
    fs = FastSHAP(setup.model, explainer, link="softmax", trained=True)
    k = max(1, round(permutations))
    scale = permutations / k
    n_single = 10

    def fs_batch():
        fs.attribute(x, target=target)

    def svs_batch():
        P.svs(setup, x, target, k, seed=7, perturbations_per_eval=N_FEATURES + 1)

    def fs_single():
        for i in range(n_single):
            fs.attribute(x[i:i + 1], target=int(target[i]))

    def svs_single():
        for i in range(n_single):
            P.svs(setup, x[i:i + 1], target[i:i + 1], k, seed=7,
                  perturbations_per_eval=N_FEATURES + 1)

    out = {"svs_permutations": permutations, "svs_permutations_timed": k}
    for regime, (a, b, cells) in {"100_cells_per_call": (fs_batch, svs_batch, x.shape[0]),
                                  "1_cell_per_call": (fs_single, svs_single, n_single)}.items():
        a(), b()
        fw, fc, sw, sc = [], [], [], []
        for _ in range(rounds):
            w, c = timed(a, 3)
            fw += w
            fc += c
            w, c = timed(b, 1)
            sw += w
            sc += c
        row = {"fastshap_us_per_cell_wall": 1e6 * statistics.median(fw) / cells,
               "fastshap_us_per_cell_cpu": 1e6 * statistics.median(fc) / cells,
               "svs_us_per_cell_wall": 1e6 * scale * statistics.median(sw) / cells,
               "svs_us_per_cell_cpu": 1e6 * scale * statistics.median(sc) / cells}
        row["ratio_wall"] = row["svs_us_per_cell_wall"] / row["fastshap_us_per_cell_wall"]
        row["ratio_cpu"] = row["svs_us_per_cell_cpu"] / row["fastshap_us_per_cell_cpu"]
        out[regime] = row
        print(f"vs SVS ({permutations:.0f} permutations), {regime}: FastSHAP "
              f"{row['fastshap_us_per_cell_cpu']:.1f} us/cell cpu, SVS "
              f"{row['svs_us_per_cell_cpu']:.1f}, ratio {row['ratio_cpu']:.1f}x (cpu), "
              f"{row['ratio_wall']:.1f}x (wall)", flush=True)
    return out


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--label", default="after", help="key of this run in the JSON")
    ap.add_argument("--out", default=None, help="JSON to add this run to")
    ap.add_argument("--rounds", type=int, default=31)
    ap.add_argument("--inner", type=int, default=30,
                    help="calls per timing sample for batches under 1,000 rows")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--profile", action="store_true", help="cProfile 200 one-row calls")
    ap.add_argument("--vs-svs", type=float, default=None, metavar="PERMUTATIONS",
                    help="also time ShapleyValueSampling at this many permutations against "
                         "FastSHAP on the 10-gene protocol (needs scanpy's pbmc68k_reduced)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    import captum_genomics

    run = {"machine": {"cpu": cpu_model(), "torch": torch.__version__,
                       "threads": torch.get_num_threads(), "python": platform.python_version(),
                       "load_average_at_start": os.getloadavg()},
           "package": os.path.dirname(captum_genomics.__file__),
           "model": f"MLP {N_FEATURES} -> 64 -> dropout(eval) -> 3, link softmax, target=0",
           "explainer": "MLPExplainer(10, 10, 3), default width 64, 2 hidden layers",
           "rounds": args.rounds,
           "per_call": measure(args.rounds, args.inner)}
    if args.profile:
        run["profile_1_row_top"] = profile()
    if args.vs_svs is not None:
        run["vs_svs_10_genes"] = vs_svs(args.vs_svs)
    if args.out:
        data = {}
        if os.path.exists(args.out):
            with open(args.out) as fh:
                data = json.load(fh)
        data[args.label] = run
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w") as fh:
            json.dump(data, fh, indent=1)
    return run


if __name__ == "__main__":
    main()
