"""Side-by-side DeepLIFT/SHAP speed, agreement and memory: ours vs tangermeme vs Captum.

Three model families (``_deeplift_setup.MODELS``: BPNet-style 1 kb, Basset-style
600 bp, a transformer on 1 kb), 8 examples x 20 references, 32
example-reference pairs per batch, CPU, float32. For each model, in one run:

- pairs/s of ``ShuffleDeepLiftShap`` (default ``strategy="auto"``, which picks
  ``"batched"``; and ``strategy="examples"``, the layout that was the default for
  large models before), tangermeme's ``deep_lift_shap``, Captum's ``DeepLift`` over
  the same pairs (convolutional models only: it has no rules for attention), and
  an ordinary forward and backward of the concatenated ``[inputs; references]``
  (``plain_fwd_bwd``, for scale), and one of the reference rows alone
  (``floor_fwd_bwd``: one forward and one backward per pair, the work DeepLIFT/SHAP
  needs, with the model's own kernels; ``tangermeme_over_floor`` is the speed-up over
  tangermeme that an implementation doing only that work would reach); medians of
  ``--rounds`` interleaved runs after a warm-up, and the process CPU time of the same runs;
- agreement with tangermeme in float64 on 2 examples (max |ours - tangermeme|
  over max |tangermeme|; the goal is <= 1e-6);
- 8 targets in one call vs 8 tangermeme calls (BPNet-style and Basset-style);
- peak resident memory per pair for N = 8, 32, 64 (BPNet-style; each in a fresh
  subprocess: the rise of VmHWM over the resident set after set-up, "cold" with the
  call as the process's first, "warm" after one call on one example; Linux only).

Each model is measured in a fresh Python process (``--in-process`` to measure all in
this one): tangermeme's time on a model moved by up to 1.5x depending on which
models ran before it in the same process (the allocator's state), ours much less.
The JSON keeps every round's ratio besides the medians.

The allocator matters as much: with glibc's defaults, large tensors freed and allocated
again fault their pages in anew, and tangermeme's call on the BPNet-style model spent
up to 3 s of system time on that (1.8 GB of page faults per call), ours about 0.1 s.
Every round records page faults and system seconds per call; ``--malloc retain`` runs
the fresh processes with glibc keeping freed memory (``RETAIN_MALLOC``, the effect of
preloading jemalloc or tcmalloc), where both run without that cost.

Usage: ``python benchmarks/deeplift_vs_peers.py [--models bpnet,basset,transformer]
[--rounds 3] [--skip-memory] [--skip-targets] [--in-process] [--malloc default|retain]
[--json PATH]``; the default JSON is
``benchmarks/results/deeplift_vs_peers_cpu<threads>[_retain].json``.
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

from _deeplift_setup import (  # noqa: E402
    BATCH,
    MODELS,
    captum_deeplift,
    floor_forward_backward,
    make_case,
    ours,
    plain_forward_backward,
    tangermeme,
)
from _env import environment  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


#: glibc settings for ``--malloc retain``: freed memory stays with the process (no mmap for
#: large blocks, no trimming of the heap's top), so a tensor allocated again costs no page
#: faults. The same effect as jemalloc/tcmalloc preloaded, PyTorch's CPU tuning advice.
RETAIN_MALLOC = {"MALLOC_MMAP_THRESHOLD_": str(1 << 32), "MALLOC_TRIM_THRESHOLD_": str(1 << 34),
                 "MALLOC_TOP_PAD_": str(1 << 29)}


def _faults_and_system_time() -> tuple[int, float]:
    """Minor page faults and system CPU seconds of this process so far (0, 0.0 where the
    ``resource`` module is missing)."""
    try:
        import resource
    except ImportError:  # not on Windows
        return 0, 0.0
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_minflt, usage.ru_stime


def _timed(fn, usage: dict | None = None):
    """Wall and process CPU seconds of ``fn()``; page faults and system seconds are added to
    ``usage["faults"]`` / ``usage["system_s"]`` when given."""
    f0, s0 = _faults_and_system_time()
    t0, c0 = time.perf_counter(), time.process_time()
    fn()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    if usage is not None:
        f1, s1 = _faults_and_system_time()
        usage.setdefault("faults", []).append(f1 - f0)
        usage.setdefault("system_s", []).append(round(s1 - s0, 4))
    return wall, cpu


def _calls(case) -> dict:
    m, p, x, refs = case.model, case.peer_model, case.x, case.refs
    calls = {"ours": lambda: ours(m, x, refs),
             "ours_examples": lambda: ours(m, x, refs, strategy="examples"),
             "tangermeme": lambda: tangermeme(p, x, refs)}
    if case.name != "transformer":
        calls["captum"] = lambda: captum_deeplift(m, x, refs)
    calls["plain_fwd_bwd"] = lambda: plain_forward_backward(m, x, refs)
    calls["floor_fwd_bwd"] = lambda: floor_forward_backward(m, x, refs)
    return calls


def speed(case, rounds: int) -> dict:
    calls = _calls(case)
    pairs = case.refs.shape[0] * case.refs.shape[1]
    for fn in calls.values():
        fn()  # warm-up (oneDNN kernels, numba cache)
    wall = {k: [] for k in calls}
    cpu = {k: [] for k in calls}
    usage = {k: {} for k in calls}
    for _ in range(rounds):  # interleaved, so that machine noise hits all alike
        for name, fn in calls.items():
            w, c = _timed(fn, usage[name])
            wall[name].append(w)
            cpu[name].append(c)
    med = {k: statistics.median(v) for k, v in wall.items()}
    med_cpu = {k: statistics.median(v) for k, v in cpu.items()}
    per_round = [t / o for t, o in zip(wall["tangermeme"], wall["ours"])]
    out = {"pairs": pairs, "rounds": rounds,
           "seconds": {k: [round(t, 4) for t in v] for k, v in wall.items()},
           "median_seconds": med, "pairs_per_s": {k: pairs / v for k, v in med.items()},
           "speedup_vs_tangermeme": med["tangermeme"] / med["ours"],
           "speedup_vs_tangermeme_per_round": [round(v, 3) for v in per_round],
           "cpu_time_speedup_vs_tangermeme": med_cpu["tangermeme"] / med_cpu["ours"],
           "ours_over_plain": med["ours"] / med["plain_fwd_bwd"],
           "tangermeme_over_plain": med["tangermeme"] / med["plain_fwd_bwd"],
           # the floor: one forward and one backward per pair with the model's kernels;
           # tangermeme / floor is the speed-up an implementation doing that work and
           # nothing else would reach (its ceiling at these kernels)
           "ours_over_floor": med["ours"] / med["floor_fwd_bwd"],
           "tangermeme_over_floor": med["tangermeme"] / med["floor_fwd_bwd"],
           "batched_speedup_vs_examples": med["ours_examples"] / med["ours"],
           "page_faults_per_call": {k: statistics.median(v["faults"]) for k, v in usage.items()},
           "system_seconds_per_call": {k: statistics.median(v["system_s"])
                                       for k, v in usage.items()}}
    if "captum" in med:
        out["speedup_vs_captum"] = med["captum"] / med["ours"]
    return out


def eight_targets(case, rounds: int) -> dict:
    m, p, x, refs = case.model, case.peer_model, case.x, case.refs
    ours(m, x, refs, targets=list(range(8)))
    t_ours = statistics.median(_timed(lambda: ours(m, x, refs, targets=list(range(8))))[0]
                               for _ in range(rounds))
    t_tm = statistics.median(
        _timed(lambda: [tangermeme(p, x, refs, target=t) for t in range(8)])[0]
        for _ in range(max(1, rounds // 2)))
    return {"ours_s": t_ours, "tangermeme_s": t_tm, "speedup": t_tm / t_ours}


def agreement(case, n: int = 2) -> dict:
    """max |ours - tangermeme| / max |tangermeme| in float64 on ``n`` examples."""
    model, peer = case.model.double(), case.peer_model.double()
    x, refs = case.x[:n].double(), case.refs[:n].double()
    try:
        a, delta = ours(model, x, refs, return_convergence_delta=True)
        b = tangermeme(peer, x, refs)
    finally:
        case.model.float()
        case.peer_model.float()
    return {"float64_max_abs_diff_over_max_abs": float((a - b).abs().max() / b.abs().max()),
            "ours_max_abs_delta": float(delta.abs().max())}


_CHILD = """
import sys, torch
sys.path.insert(0, {here!r})
from _deeplift_setup import make_case, ours, tangermeme, plain_forward_backward

def status(key):
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith(key))

case = make_case({name!r}, {n})
model = case.peer_model if {impl!r} == "tangermeme" else case.model
if {warm!r}:  # one call on one example first: imports, kernels and caches are not per pair
    {impl}(model, case.x[:1], case.refs[:1])
with open("/proc/self/clear_refs", "w") as fh:  # reset the peak (VmHWM) to the current RSS
    fh.write("5")
base = status("VmRSS:")
{impl}(model, case.x, case.refs)
print((status("VmHWM:") - base) / 1024)
"""


def peak_memory_mb(name: str, impl: str, n: int, warm: bool) -> float:
    code = _CHILD.format(here=HERE, name=name, n=n, impl=impl, warm=warm)
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(res.stdout.strip().splitlines()[-1])


def memory(name: str = "bpnet", ns=(8, 32, 64)) -> dict:
    """Peak resident-memory rise in fresh processes: ``cold`` (the call is the process's
    first: module imports, numba kernels, oneDNN caches included, as measured before) and
    ``warm`` (after one call on one example), per implementation and N; per pair: the
    largest rise over N divided by the 32 pairs of a batch."""
    out = {"model": name}
    for mode in ("cold", "warm"):
        table = {impl: {n: peak_memory_mb(name, impl, n, mode == "warm") for n in ns}
                 for impl in ("ours", "tangermeme", "plain_forward_backward")}
        out[mode] = {"peak_mb_over_baseline": table,
                     "mb_per_pair_at_32": {impl: max(v.values()) / BATCH
                                           for impl, v in table.items()}}
    return out


def measure_model(name: str, rounds: int, targets: bool) -> dict:
    """Speed, agreement and (optionally) 8 targets of one model, in this process."""
    case = make_case(name)
    rec = {"description": case.description, "speed": speed(case, rounds),
           "agreement": agreement(case)}
    if targets and name != "transformer":
        rec["eight_targets"] = eight_targets(case, rounds)
    return rec


def measure_model_fresh(name: str, rounds: int, targets: bool,
                        malloc_env: dict | None = None) -> dict:
    """:func:`measure_model` in a fresh Python process: the allocator's and oneDNN's state
    left by the models measured before do not reach this one. ``malloc_env``: extra
    environment variables for that process (:data:`RETAIN_MALLOC`)."""
    code = (f"import json, sys; sys.path.insert(0, {HERE!r}); "
            f"from deeplift_vs_peers import measure_model; "
            f"print('JSON' + json.dumps(measure_model({name!r}, {rounds}, {targets}), "
            f"default=str))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env={**os.environ, **(malloc_env or {})})
    line = next(x for x in reversed(res.stdout.splitlines()) if x.startswith("JSON"))
    return json.loads(line[4:])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--skip-targets", action="store_true")
    parser.add_argument("--in-process", action="store_true",
                        help="measure every model in this process (default: one fresh "
                             "process per model)")
    parser.add_argument("--malloc", choices=("default", "retain"), default="default",
                        help="'retain': measure with glibc keeping freed memory (no page "
                             "faults for re-allocated tensors; RETAIN_MALLOC), as jemalloc or "
                             "tcmalloc would; needs the fresh processes")
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    if args.malloc == "retain" and args.in_process:
        parser.error("--malloc retain sets the allocator of the fresh processes; drop "
                     "--in-process (or set the MALLOC_* variables yourself)")
    malloc_env = RETAIN_MALLOC if args.malloc == "retain" else {}
    env = environment()
    print(f"{env['cpu_model']}; torch {env['torch']}, {env['torch_threads']} threads; "
          f"allocator: {args.malloc}")
    result = {"what": __doc__.splitlines()[0], **env, "batch_pairs": BATCH,
              "fresh_process_per_model": not args.in_process, "malloc": args.malloc,
              "malloc_env": {**{k: v for k, v in os.environ.items() if k.startswith("MALLOC_")},
                             **malloc_env},
              "models": {}}
    for name in args.models.split(","):
        if args.in_process:
            rec = measure_model(name, args.rounds, not args.skip_targets)
        else:
            rec = measure_model_fresh(name, args.rounds, not args.skip_targets, malloc_env)
        result["models"][name] = rec
        s = rec["speed"]
        print(f"\n{name}: {rec['description']}; {s['pairs']} pairs, batch {BATCH}")
        for k, v in s["pairs_per_s"].items():
            print(f"  {k:>14}: {v:8.1f} pairs/s  ({s['median_seconds'][k]:.3f} s)")
        rounds = s["speedup_vs_tangermeme_per_round"]
        print(f"  ours vs tangermeme: {s['speedup_vs_tangermeme']:.2f}x (rounds "
              f"{min(rounds):.2f}-{max(rounds):.2f}x; CPU time "
              f"{s['cpu_time_speedup_vs_tangermeme']:.2f}x); batched vs examples "
              f"{s['batched_speedup_vs_examples']:.2f}x; ours / plain fwd+bwd "
              f"{s['ours_over_plain']:.2f}")
        print(f"  floor (one fwd + one bwd per pair): ours / floor {s['ours_over_floor']:.2f}, "
              f"tangermeme / floor {s['tangermeme_over_floor']:.2f} (the ceiling of the "
              "speed-up at these kernels)")
        faults, system = s["page_faults_per_call"], s["system_seconds_per_call"]
        print("  page faults / system s per call: " + ", ".join(
            f"{k} {faults[k]:.0f} / {system[k]:.2f}" for k in faults))
        a = rec["agreement"]
        print(f"  float64 agreement with tangermeme: {a['float64_max_abs_diff_over_max_abs']:.1e}"
              f" (ours max |delta| {a['ours_max_abs_delta']:.1e})")
        if "eight_targets" in rec:
            e = rec["eight_targets"]
            print(f"  8 targets: ours one call {e['ours_s']:.2f} s vs 8 tangermeme calls "
                  f"{e['tangermeme_s']:.2f} s -> {e['speedup']:.2f}x")
    if not args.skip_memory:
        result["memory"] = memory()
        for mode in ("cold", "warm"):
            rec = result["memory"][mode]
            print(f"\npeak memory over baseline (MB) by N, BPNet-style, batch 32 pairs, {mode}:")
            for impl, row in rec["peak_mb_over_baseline"].items():
                cells = ", ".join(f"N={n}: {v:.0f}" for n, v in row.items())
                print(f"  {impl:>22}: {cells}; {rec['mb_per_pair_at_32'][impl]:.1f} MB/pair")
    suffix = "_retain" if args.malloc == "retain" else ""
    path = args.json or os.path.join(
        HERE, "results", f"deeplift_vs_peers_cpu{env['torch_threads']}{suffix}.json")
    tmp = path + ".tmp"
    with open(tmp, "w") as fh:
        json.dump(result, fh, indent=1, default=str)
    os.replace(tmp, path)
    print(f"\nwrote {path}")
    return result


if __name__ == "__main__":
    main()
