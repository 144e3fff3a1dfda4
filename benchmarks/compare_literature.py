"""The literature checks of issue 13 section 7 on the planted-motif task, over trained seeds.

For each first-layer activation (``relu``, ``exponential``) and each seed in
``--seeds``, a :class:`~captum_genomics.zoo.planted.PlantedMotifCNN` is trained
with :func:`~captum_genomics.zoo.planted.train_planted_model` (seed 0 is the
shipped model, loaded, not trained; every seed shares the data of
``data_random_state`` 0, so all models have one held-out test set) and
:func:`captum_genomics.compare` runs ``--methods`` on the first
``--n-examples`` positives of that test set (the same sequences for every
model), against the planted core motifs, without the randomisation check.

The claims measured (stored under ``"claims"`` in the JSON):

a. Koo & Ploenzke (2021), ordering: per model, the ranking of the methods by
   median per-sequence AUROC; whether ISM and DeepLIFT/SHAP beat saliency in
   median AUROC and in median PWM cosine; counts over seeds.
b. Koo & Ploenzke (2021), exponential activations: per method, in how many
   seeds the exponential model's median AUROC (and PWM cosine) is above the
   ReLU model's of the same seed; the models' test AUROC beside it.
c. Majdandzic et al. (2023), gradient correction: per gradient method and
   activation, in how many seeds the ``_corrected`` variant has the higher
   median AUROC and the higher median PWM cosine; a paired Wilcoxon
   signed-rank test over the examples of each seed (scipy).
d. Completeness (median and max |convergence delta|) and runtime (seconds,
   examples per second, first call) per method: medians over all models.

A model whose test AUROC is below ``--min-model-auroc`` (default 0.9: a
training collapse, e.g. every second-layer ReLU dead, a constant output) is
recorded under ``"excluded_models"`` and left out of the comparison and of the
claims; the counts then say over how many seeds they were made (``"of"``).

Trained weights are cached in ``--cache`` as ``{activation}_{seed}.pt`` with
the training record ``{activation}_{seed}.json`` and reused; each model's
comparison rows are cached as ``{activation}_{seed}_n{N}_compare.json`` and
reused when the methods match (``--recompute`` ignores them;
``--cached-only`` assembles the JSON from these files alone, recording the
models without one under ``"missing_runs"``, so that several processes can
share the comparisons and one call collects them). With
``--jobs 2`` missing models are trained in two processes (one thread each);
the comparisons always run one at a time in this process, one thread, so the
timings are not made in parallel.

Usage::

    python benchmarks/compare_literature.py --seeds 0 1 2 3 4 --n-examples 100 \\
        --jobs 2 --out benchmarks/results/compare_literature_cpu2.json

This is a slow study (minutes per model); it is not part of any test run.
"""

from __future__ import annotations

import argparse
import datetime
import json
import multiprocessing as mp
import os
import platform
import sys
import tempfile
import time

import numpy as np
import torch

ACTIVATIONS = ("relu", "exponential")
DEFAULT_METHODS = [
    "deeplift_shap", "ism", "saliency", "saliency_corrected", "grad_x_input",
    "grad_x_input_corrected", "ig_zero", "ig_zero_corrected", "ig_shuffle",
    "ig_shuffle_corrected", "gradient_shap", "gradient_shap_corrected",
    "tangermeme_deep_lift_shap", "captum_deeplift_shap",
]
GRADIENT_METHODS = ("saliency", "grad_x_input", "ig_zero", "ig_shuffle", "gradient_shap")
SUMMARY_KEYS = ("seconds", "examples_per_s", "first_call_seconds", "convergence_delta",
                "convergence_delta_max", "auroc", "auroc_mean", "aupr", "pwm_cosine",
                "off_simplex_angle")
PER_EXAMPLE = ("auroc", "pwm_cosine")


# ----------------------------------------------------------------------------- io helpers
def _atomic_json(obj, path: str) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, suffix=".tmp", prefix=".compare_literature_")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(obj, handle, indent=1, default=_jsonable)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _jsonable(value):
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(type(value).__name__)


def _clean(value):
    """float NaN -> None (JSON null), numpy scalars -> Python."""
    if value is None:
        return None
    value = float(value)
    return None if not np.isfinite(value) else value


def machine() -> dict:
    import captum

    from captum_genomics.comparison.study import cpu_model

    try:
        import tangermeme
        tangermeme_version = tangermeme.__version__
    except ImportError:  # pragma: no cover
        tangermeme_version = None
    return {"cpu": cpu_model(), "cores": os.cpu_count(), "threads": torch.get_num_threads(),
            "torch": torch.__version__, "captum": captum.__version__,
            "tangermeme": tangermeme_version, "python": platform.python_version(),
            "platform": platform.platform(), "loadavg_start": list(os.getloadavg())}


# ----------------------------------------------------------------------------- models
def _paths(cache: str, activation: str, seed: int) -> tuple[str, str]:
    return (os.path.join(cache, f"{activation}_{seed}.pt"),
            os.path.join(cache, f"{activation}_{seed}.json"))


def _train_one(job: tuple[str, int, str]) -> dict:
    """Train and cache one model (run in a worker process, one thread)."""
    activation, seed, cache = job
    torch.set_num_threads(1)
    from captum_genomics.zoo.planted import train_planted_model

    weights, record = _paths(cache, activation, seed)
    model, metrics = train_planted_model(activation, seed, n_threads=1)
    fd, tmp = tempfile.mkstemp(dir=cache, suffix=".tmp")
    os.close(fd)
    torch.save(model.state_dict(), tmp)
    os.replace(tmp, weights)
    _atomic_json(metrics, record)
    print(f"  trained {activation} seed {seed}: test AUROC {metrics['test_auroc']:.4f}, "
          f"best epoch {metrics['best_epoch']}/{metrics['epochs_run']}, "
          f"{metrics['seconds']:.0f} s", flush=True)
    return {"activation": activation, "seed": seed, "seconds": metrics["seconds"]}


def train_missing(activations, seeds, cache: str, jobs: int) -> list[dict]:
    os.makedirs(cache, exist_ok=True)
    todo = [(a, s, cache) for s in seeds for a in activations
            if s != 0 and not all(os.path.exists(p) for p in _paths(cache, a, s))]
    if not todo:
        return []
    print(f"training {len(todo)} model(s) with {jobs} process(es)", flush=True)
    if jobs <= 1:
        return [_train_one(job) for job in todo]
    with mp.get_context("spawn").Pool(jobs) as pool:
        return pool.map(_train_one, todo, chunksize=1)


def load_model(activation: str, seed: int, cache: str):
    """(model in eval mode, training record) for a seed; 0 is the shipped model."""
    from captum_genomics.zoo.planted import (
        PlantedMotifCNN,
        load_planted_metadata,
        load_planted_model,
    )

    if seed == 0:
        meta = load_planted_metadata(activation)
        record = {"source": "shipped", **meta["training"], **meta["metrics"]}
        record["history"] = record.pop("validation_auroc_per_epoch", None)
        return load_planted_model(activation), record
    weights, record_path = _paths(cache, activation, seed)
    with open(record_path, encoding="utf-8") as handle:
        metrics = json.load(handle)
    model = PlantedMotifCNN(**metrics["architecture"])
    model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    record = {"source": "trained", **metrics["training"],
              **{k: metrics[k] for k in ("validation_auroc", "test_auroc", "best_epoch",
                                         "epochs_run", "seconds", "history")}}
    return model.eval(), record


# ----------------------------------------------------------------------------- one run
def run_one(activation: str, seed: int, inputs, gt, test_data, methods, args) -> dict:
    import captum_genomics
    from captum_genomics.zoo.planted import evaluate_auroc

    cache_path = os.path.join(args.cache, f"{activation}_{seed}_n{len(inputs)}_compare.json")
    if not args.recompute and os.path.exists(cache_path):
        with open(cache_path, encoding="utf-8") as handle:
            cached = json.load(handle)
        if cached.get("methods") == list(methods):
            print(f"  {activation} seed {seed}: reusing {cache_path}", flush=True)
            return cached
    model, record = load_model(activation, seed, args.cache)
    test_auroc = evaluate_auroc(model, test_data)
    if args.cached_only and test_auroc >= args.min_model_auroc:
        print(f"  {activation} seed {seed}: no cached comparison, skipped (--cached-only)",
              flush=True)
        return {"activation": activation, "seed": seed, "methods": list(methods),
                "model": {"test_auroc_measured": test_auroc, **record},
                "missing": "not compared in time (--cached-only)", "rows": [],
                "per_example": {}}
    if test_auroc < args.min_model_auroc:  # a collapsed model: no attribution to judge
        print(f"  {activation} seed {seed}: model test AUROC {test_auroc:.4f} < "
              f"{args.min_model_auroc}: excluded, not compared", flush=True)
        return {"activation": activation, "seed": seed, "methods": list(methods),
                "model": {"test_auroc_measured": test_auroc, **record},
                "excluded": f"model test AUROC {test_auroc:.4f} < {args.min_model_auroc}",
                "rows": [], "per_example": {}}
    tic = time.perf_counter()
    result = captum_genomics.compare(list(methods), model, inputs, ground_truth=gt,
                                     randomization=False, n_references=args.n_references,
                                     ig_steps=args.ig_steps, batch_size=args.batch_size,
                                     random_state=0)
    wall = time.perf_counter() - tic
    summary = result.summary()
    rows = []
    for method in summary.index:
        row = {"activation": activation, "seed": seed, "method": str(method)}
        row.update({k: _clean(summary.loc[method, k]) for k in SUMMARY_KEYS
                    if k in summary.columns})
        rows.append(row)
    frame = result.frame
    per_example = {}
    for metric in PER_EXAMPLE:
        sub = frame[frame["metric"] == metric].dropna(subset=["example"])
        per_example[metric] = {
            str(m): [None if not np.isfinite(v) else round(float(v), 5)
                     for v in g.sort_values("example")["value"].to_numpy(np.float64)]
            for m, g in sub.groupby("method")}
    out = {"activation": activation, "seed": seed, "methods": list(methods),
           "model": {"test_auroc_measured": test_auroc, **record},
           "compare_wall_s": wall, "loadavg": list(os.getloadavg()),
           "rows": rows, "per_example": per_example}
    _atomic_json(out, cache_path)
    best = max(rows, key=lambda r: r["auroc"] or -1)
    print(f"  {activation} seed {seed}: model test AUROC {test_auroc:.4f}, compare "
          f"{wall:.0f} s, best median AUROC {best['method']} {best['auroc']:.3f}", flush=True)
    return out


# ----------------------------------------------------------------------------- claims
def _row(runs, activation, seed, method):
    for run in runs:
        if run["activation"] == activation and run["seed"] == seed:
            for row in run["rows"]:
                if row["method"] == method:
                    return row
    return None


def _gt(a, b):
    return None if a is None or b is None else bool(a > b)


def _count(values):
    values = [v for v in values if v is not None]
    return {"wins": int(sum(values)), "of": len(values)}


def claim_a(runs, seeds, methods) -> dict:
    per_model, tallies = [], {}
    for activation in ACTIVATIONS:
        for seed in seeds:
            rows = {m: _row(runs, activation, seed, m) for m in methods}
            rows = {m: r for m, r in rows.items() if r is not None}
            if not rows:
                continue
            ranking = sorted(rows, key=lambda m: -(rows[m]["auroc"] or -np.inf))
            entry = {"activation": activation, "seed": seed,
                     "ranking_by_median_auroc": ranking,
                     "median_auroc": {m: rows[m]["auroc"] for m in ranking},
                     "median_pwm_cosine": {m: rows[m]["pwm_cosine"] for m in ranking}}
            for better in ("ism", "deeplift_shap"):
                if better in rows and "saliency" in rows:
                    for metric in ("auroc", "pwm_cosine"):
                        key = f"{better}>saliency_{metric}"
                        entry[key] = _gt(rows[better][metric], rows["saliency"][metric])
                        tallies.setdefault(activation, {}).setdefault(key, []).append(entry[key])
            per_model.append(entry)
    counts = {a: {k: _count(v) for k, v in t.items()} for a, t in tallies.items()}
    # the mean rank of every method over the seeds, per activation
    mean_rank = {}
    for activation in ACTIVATIONS:
        ranks = {}
        for entry in per_model:
            if entry["activation"] == activation:
                for i, m in enumerate(entry["ranking_by_median_auroc"]):
                    ranks.setdefault(m, []).append(i + 1)
        mean_rank[activation] = dict(sorted(((m, float(np.mean(r))) for m, r in ranks.items()),
                                            key=lambda kv: kv[1]))
    return {"per_model": per_model, "counts": counts, "mean_rank": mean_rank}


def claim_b(runs, seeds, methods) -> dict:
    out = {}
    for method in methods:
        entry = {}
        for metric in ("auroc", "pwm_cosine"):
            wins, diffs = [], []
            for seed in seeds:
                r = _row(runs, "relu", seed, method)
                e = _row(runs, "exponential", seed, method)
                if r is None or e is None or r[metric] is None or e[metric] is None:
                    continue
                wins.append(e[metric] > r[metric])
                diffs.append(e[metric] - r[metric])
            entry[metric] = {**_count(wins),
                             "median_difference_exp_minus_relu":
                                 float(np.median(diffs)) if diffs else None,
                             "differences": diffs}
        out[method] = entry
    model_auroc = {}
    for activation in ACTIVATIONS:
        model_auroc[activation] = {
            str(run["seed"]): {"test_auroc": run["model"]["test_auroc_measured"],
                               "best_epoch": run["model"].get("best_epoch"),
                               "epochs_run": run["model"].get("epochs_run"),
                               "max_epochs": run["model"].get("max_epochs")}
            for run in runs if run["activation"] == activation}
    # does the attribution AUROC follow the model's test AUROC across all models?
    from scipy.stats import spearmanr

    follow = {}
    for method in methods:
        xs, ys = [], []
        for run in runs:
            row = _row([run], run["activation"], run["seed"], method)
            if row and row["auroc"] is not None:
                xs.append(run["model"]["test_auroc_measured"])
                ys.append(row["auroc"])
        if len(xs) >= 4:
            rho, p = spearmanr(xs, ys)
            follow[method] = {"spearman": _clean(rho), "p": _clean(p), "n_models": len(xs)}
    return {"per_method": out, "models": model_auroc,
            "attribution_auroc_vs_model_test_auroc": follow}


def claim_c(runs, seeds, methods) -> dict:
    from scipy.stats import wilcoxon

    out = {}
    for base in GRADIENT_METHODS:
        corrected = f"{base}_corrected"
        if base not in methods or corrected not in methods:
            continue
        for activation in ACTIVATIONS:
            entry = {}
            for metric in ("auroc", "pwm_cosine"):
                wins, diffs, tests = [], [], []
                for seed in seeds:
                    r0 = _row(runs, activation, seed, base)
                    r1 = _row(runs, activation, seed, corrected)
                    if r0 is None or r1 is None or r0[metric] is None or r1[metric] is None:
                        continue
                    wins.append(r1[metric] > r0[metric])
                    diffs.append(r1[metric] - r0[metric])
                    run = next(x for x in runs if x["activation"] == activation
                               and x["seed"] == seed)
                    a = np.array(run["per_example"][metric].get(base, []), dtype=float)
                    b = np.array(run["per_example"][metric].get(corrected, []), dtype=float)
                    ok = np.isfinite(a) & np.isfinite(b)
                    d = b[ok] - a[ok]
                    if ok.sum() >= 6 and np.any(d != 0):
                        stat = wilcoxon(b[ok], a[ok])
                        tests.append({"seed": seed, "n": int(ok.sum()),
                                      "median_paired_difference": float(np.median(d)),
                                      "fraction_corrected_higher": float(np.mean(d > 0)),
                                      "fraction_tied": float(np.mean(d == 0)),
                                      "p": float(stat.pvalue)})
                    else:
                        tests.append({"seed": seed, "n": int(ok.sum()),
                                      "median_paired_difference": 0.0,
                                      "fraction_tied": float(np.mean(d == 0)) if ok.any()
                                      else None, "p": None, "note": "all paired values equal"})
                ties = sum(1 for d in diffs if d == 0)
                entry[metric] = {**_count(wins), "ties": ties,
                                 "median_difference_corrected_minus_raw":
                                     float(np.median(diffs)) if diffs else None,
                                 "differences": diffs, "wilcoxon_per_seed": tests,
                                 # Majdandzic's direction in >= 4 of 5 seeds (>= 80 %)
                                 "at_least_4_of_5": bool(sum(wins) >= 0.8 * len(wins))
                                 if len(wins) >= 5 else None}
            angles = [(_row(runs, activation, s, corrected) or {}).get("off_simplex_angle")
                      for s in seeds]
            angles = [a for a in angles if a is not None]
            entry["median_off_simplex_angle_deg"] = float(np.median(angles)) if angles else None
            out[f"{base}|{activation}"] = entry
    return out


def claim_d(runs, methods, reference: str = "deeplift_shap") -> dict:
    """Completeness and runtime per method: medians over the models, per activation and all.

    ``seconds_ratio`` is the method's seconds over ``reference``'s seconds in the
    same run (same model, same minute), the number least moved by the machine's
    load; its median over the models is reported.
    """

    def table(selected):
        out = {}
        for method in methods:
            rows = [(r, run) for run in selected for r in run["rows"] if r["method"] == method]
            if not rows:
                continue

            def med(key, rows=rows):
                vals = [r[key] for r, _ in rows if r.get(key) is not None]
                return float(np.median(vals)) if vals else None

            def mx(key, rows=rows):
                vals = [r[key] for r, _ in rows if r.get(key) is not None]
                return float(np.max(vals)) if vals else None

            ratios = []
            for r, run in rows:
                ref = _row([run], run["activation"], run["seed"], reference)
                if ref and ref.get("seconds") and r.get("seconds") is not None:
                    ratios.append(r["seconds"] / ref["seconds"])
            out[method] = {"n_models": len(rows),
                           "median_abs_delta": med("convergence_delta"),
                           "max_abs_delta_median_over_models": med("convergence_delta_max"),
                           "max_abs_delta_over_models": mx("convergence_delta_max"),
                           "seconds": med("seconds"), "examples_per_s": med("examples_per_s"),
                           "first_call_seconds": med("first_call_seconds"),
                           f"seconds_ratio_to_{reference}":
                               float(np.median(ratios)) if ratios else None,
                           "median_auroc": med("auroc"), "median_pwm_cosine": med("pwm_cosine")}
        return out

    return {"all": table(runs),
            **{a: table([run for run in runs if run["activation"] == a]) for a in ACTIVATIONS}}


# ----------------------------------------------------------------------------- main
def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--n-examples", type=int, default=100)
    parser.add_argument("--cache", default="/tmp/captum_genomics_planted_models")
    parser.add_argument("--methods", nargs="+", default=DEFAULT_METHODS)
    parser.add_argument("--out", default=None,
                        help="JSON path; default benchmarks/results/compare_literature_cpu<cores>.json")
    parser.add_argument("--jobs", type=int, choices=(1, 2), default=1)
    parser.add_argument("--n-references", type=int, default=20)
    parser.add_argument("--ig-steps", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--min-model-auroc", type=float, default=0.9,
                        help="models whose test AUROC is below this (a training collapse) are "
                             "recorded but left out of the comparison and the claims")
    parser.add_argument("--cached-only", action="store_true",
                        help="compile the JSON from cached comparisons only; a model without "
                             "one is recorded under \"missing_runs\" and left out")
    parser.add_argument("--recompute", action="store_true",
                        help="ignore cached comparison rows (trained weights are still reused)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    if args.out is None:
        args.out = os.path.join(os.path.dirname(__file__), "results",
                                f"compare_literature_cpu{os.cpu_count()}.json")
    started = time.perf_counter()
    meta = machine()
    print(f"{meta['cpu']}, {meta['cores']} cores, torch {meta['torch']}, "
          f"captum {meta['captum']}, tangermeme {meta['tangermeme']}, 1 thread", flush=True)

    t0 = time.perf_counter()
    trained = train_missing(ACTIVATIONS, args.seeds, args.cache, args.jobs)
    training_wall = time.perf_counter() - t0

    from captum_genomics.zoo.planted import planted_data_for

    test = {a: planted_data_for(a, "test") for a in ACTIVATIONS}
    if not bool((test["relu"].one_hot == test["exponential"].one_hot).all()):
        raise RuntimeError("the two activations' test sets differ")
    positives = (test["relu"].labels == 1).nonzero().flatten()[:args.n_examples]
    sub = test["relu"].subset(positives)
    inputs, gt = sub.one_hot, sub.ground_truth

    runs = []
    document = {"benchmark": "compare_literature", "issue": "13 section 7",
                "date": datetime.datetime.now(datetime.timezone.utc).isoformat(),
                "command": "python " + " ".join([os.path.relpath(__file__)] + sys.argv[1:]),
                "machine": meta, "arguments": vars(args),
                "n_examples": len(inputs), "training": {"wall_s": training_wall,
                                                             "models": trained}}
    for seed in args.seeds:
        for activation in ACTIVATIONS:
            runs.append(run_one(activation, seed, inputs, gt, test[activation],
                                args.methods, args))
            document["runs"] = runs
            _atomic_json(document, args.out)  # progress: rows so far
    valid = [run for run in runs
             if run["model"]["test_auroc_measured"] >= args.min_model_auroc and run["rows"]]
    document["excluded_models"] = [
        {"activation": run["activation"], "seed": run["seed"],
         "test_auroc": run["model"]["test_auroc_measured"],
         "validation_history": run["model"].get("history")}
        for run in runs if run not in valid and "missing" not in run]
    document["missing_runs"] = [{"activation": run["activation"], "seed": run["seed"]}
                                for run in runs if "missing" in run]
    document["models"] = [
        {"activation": run["activation"], "seed": run["seed"],
         "test_auroc": run["model"]["test_auroc_measured"],
         "validation_auroc": run["model"].get("validation_auroc"),
         "best_epoch": run["model"].get("best_epoch"),
         "epochs_run": run["model"].get("epochs_run"),
         "train_seconds": run["model"].get("seconds"), "source": run["model"].get("source")}
        for run in runs]
    document["claims"] = {
        "a_ordering": claim_a(valid, args.seeds, args.methods),
        "b_exponential_vs_relu": claim_b(valid, args.seeds, args.methods),
        "c_corrected_vs_raw": claim_c(valid, args.seeds, args.methods),
        "d_completeness_runtime": claim_d(valid, args.methods),
    }
    document["machine"]["loadavg_end"] = list(os.getloadavg())
    document["wall_s"] = time.perf_counter() - started
    _atomic_json(document, args.out)
    print(f"wrote {args.out} ({document['wall_s']:.0f} s)", flush=True)
    return document


if __name__ == "__main__":
    main()
