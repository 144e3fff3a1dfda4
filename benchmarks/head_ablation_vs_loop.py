"""HeadAblationExplainedVariance vs an AMICI-style per-head, per-cell-type loop.

Same model, same cells, same statistics, same permutation count:

- **ours**: ``HeadAblationExplainedVariance(model, "attention").attribute(...)``
  on the shipped neighbour-attention model (4 heads) and all 700 cells of
  ``pbmc68k_reduced`` (10 cell types), keep-one-head, zero ablation, the
  default permutation count ``ceil(4 * 10 / 0.05) = 800``. All variants run
  in batched passes; the permutation test is batched over permutations.
- **loop**: what AMICI (Hong et al. 2025) describes, written here from its
  definition (no AMICI code): for each head, for each cell type, one full
  forward of that type's cells through a manual re-implementation of
  ``nn.MultiheadAttention`` with the other heads' outputs zeroed; per-gene
  explained variance with numpy; and a permutation test that loops over the
  permutations (shuffle the predicted rows, numpy MSE, count ``<=``), the same
  number of permutations, ``p = (1 + b) / (1 + n)``.

Both run on one CPU thread (``--threads``); the EVs of both must agree (max abs
difference <= 1e-6, float32 model; the p-values differ only through the
different random permutations). Writes
``benchmarks/results/head_ablation_vs_loop_cpu<threads>.json``.

Usage::

    python benchmarks/head_ablation_vs_loop.py [--repeats 5] [--out benchmarks/results]

The same comparison under pytest-benchmark: ``benchmarks/test_head_ablation_speed.py``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch

ALPHA = 0.05


def make_setup():
    """The shipped model and all 700 cells: ``(model, neighbours, cell_type, observed, names)``."""
    from captum_genomics.sc.neighbours import neighbour_inputs
    from captum_genomics.zoo.pbmc_attention import load_pbmc_attention_model

    data = neighbour_inputs()
    return (load_pbmc_attention_model(), data.neighbours, data.cell_type, data.observed,
            data.type_names)


def n_permutations(model, n_types: int) -> int:
    return math.ceil(model.attention.num_heads * n_types / ALPHA)


def run_ours(model, neighbours, cell_type, observed, names, n_perm, random_state=0):
    """Our batched method; returns the :class:`HeadAblationResult`."""
    from captum_genomics.methods.head_ablation import HeadAblationExplainedVariance

    groups = np.asarray(names, dtype=object)[cell_type.numpy()]
    return HeadAblationExplainedVariance(model, "attention").attribute(
        (neighbours, cell_type), groups, observed, n_permutations=n_perm, alpha=ALPHA,
        random_state=random_state)


def manual_forward(model, neighbours, cell_type, keep_head: int):
    """The model's forward with ``nn.MultiheadAttention`` written out; only ``keep_head`` kept.

    The other heads' outputs (before the output projection) are set to 0,
    which is zero ablation; the output projection's bias is kept.
    """
    mha = model.attention
    d, h = mha.embed_dim, mha.num_heads
    dh = d // h
    w_q, w_k, w_v = mha.in_proj_weight.split(d)
    b_q, b_k, b_v = mha.in_proj_bias.split(d)
    tokens = model.sender(neighbours)                       # (n, k, d)
    query = model.receiver(cell_type).unsqueeze(1)          # (n, 1, d)
    n, k = tokens.shape[:2]
    q = (query @ w_q.T + b_q).view(n, 1, h, dh).transpose(1, 2)    # (n, h, 1, dh)
    kk = (tokens @ w_k.T + b_k).view(n, k, h, dh).transpose(1, 2)  # (n, h, k, dh)
    v = (tokens @ w_v.T + b_v).view(n, k, h, dh).transpose(1, 2)
    attn = torch.softmax(q @ kk.transpose(-1, -2) / math.sqrt(dh), dim=-1)
    heads = attn @ v                                         # (n, h, 1, dh)
    mask = torch.zeros(h, dtype=heads.dtype)
    mask[keep_head] = 1.0
    heads = heads * mask.view(1, h, 1, 1)
    context = heads.transpose(1, 2).reshape(n, 1, d)
    context = context @ mha.out_proj.weight.T + mha.out_proj.bias
    return model.baseline(cell_type) + model.decoder(context.squeeze(1))


def run_loop(model, neighbours, cell_type, observed, names, n_perm, random_state=0):
    """AMICI-style: per head, per cell type, a forward, numpy EV and a looped permutation test.

    Returns a dict of numpy arrays: ``ev_gene`` (H, T, G), ``ev_head`` (H, T),
    ``mse`` (H, T), ``p_value`` (H, T).
    """
    h_total, n_types, n_genes = model.attention.num_heads, len(names), observed.shape[1]
    ev_gene = np.full((h_total, n_types, n_genes), np.nan)
    ev_head = np.full((h_total, n_types), np.nan)
    mse = np.full((h_total, n_types), np.nan)
    p_value = np.full((h_total, n_types), np.nan)
    rng = np.random.default_rng(random_state)
    for head in range(h_total):
        for t in range(n_types):
            rows = torch.nonzero(cell_type == t).flatten()
            if len(rows) < 2:
                continue
            with torch.no_grad():
                pred = manual_forward(model, neighbours[rows], cell_type[rows], head).numpy()
            pred = pred.astype(np.float64)
            obs = observed[rows].numpy().astype(np.float64)
            var_obs = obs.var(axis=0)
            var_res = (pred - obs).var(axis=0)
            with np.errstate(divide="ignore", invalid="ignore"):
                ev_gene[head, t] = np.where(var_obs > 0, 1.0 - var_res / var_obs, np.nan)
            ev_head[head, t] = 1.0 - var_res.sum() / var_obs.sum()
            stat = np.mean((pred - obs) ** 2)
            b = 0
            for _ in range(n_perm):
                perm = rng.permutation(len(rows))
                if np.mean((pred[perm] - obs) ** 2) <= stat:
                    b += 1
            mse[head, t] = stat
            p_value[head, t] = (1 + b) / (1 + n_perm)
    return {"ev_gene": ev_gene, "ev_head": ev_head, "mse": mse, "p_value": p_value}


def compare(result, loop) -> dict:
    """Max abs differences between our result and the loop's (NaNs must coincide)."""
    out = {}
    for key in ("ev_gene", "ev_head", "mse"):
        ours = getattr(result, key).numpy()
        theirs = loop[key]
        same_nan = bool(np.array_equal(np.isnan(ours), np.isnan(theirs)))
        ok = ~np.isnan(ours) & ~np.isnan(theirs)
        out[key] = {"max_abs_diff": float(np.abs(ours[ok] - theirs[ok]).max()),
                    "nan_positions_equal": same_nan}
    return out


def _time_interleaved(fns, repeats) -> list:
    """Time ``fns[i]`` ``repeats[i]`` times, interleaving the calls so that every
    function sees the same machine load (on a shared machine load drifts)."""
    times = [[] for _ in fns]
    for r in range(max(repeats)):
        for i, fn in enumerate(fns):
            if r < repeats[i]:
                t0 = time.perf_counter()
                fn()
                times[i].append(time.perf_counter() - t0)
    return times


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed runs of ours (default 5)")
    parser.add_argument("--loop-repeats", type=int, default=3,
                        help="timed runs of the loop, interleaved with ours (default 3)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    model, nb, ct, obs, names = make_setup()
    n_perm = n_permutations(model, len(names))
    result = run_ours(model, nb, ct, obs, names, n_perm)  # warm-up + the values compared
    loop = run_loop(model, nb, ct, obs, names, n_perm)
    agreement = compare(result, loop)
    t_ours, t_loop = _time_interleaved(
        [lambda: run_ours(model, nb, ct, obs, names, n_perm),
         lambda: run_loop(model, nb, ct, obs, names, n_perm)],
        [args.repeats, args.loop_repeats])
    med_ours, med_loop = statistics.median(t_ours), statistics.median(t_loop)
    p_ours, p_loop = result.p_value.numpy(), loop["p_value"]
    report = {
        "what": "HeadAblationExplainedVariance.attribute vs an AMICI-style per-head, "
                "per-cell-type loop (manual MHA forward, numpy EV, looped permutation test)",
        "model": "captum_genomics.zoo.pbmc_attention (4 heads, d_model 32, 765 genes)",
        "cells": int(nb.shape[0]), "cell_types": len(names), "heads": model.attention.num_heads,
        "n_permutations": n_perm, "ablation": "keep", "mode": "zero",
        "seconds_ours": [round(t, 4) for t in t_ours],
        "seconds_loop": [round(t, 4) for t in t_loop],
        "median_seconds_ours": round(med_ours, 4), "median_seconds_loop": round(med_loop, 4),
        "speedup": round(med_loop / med_ours, 1),
        "agreement": agreement,
        "p_value_max_abs_diff_different_permutations": float(np.nanmax(np.abs(p_ours - p_loop))),
        "threads": args.threads, "load_average": [round(x, 2) for x in os.getloadavg()],
        "torch": torch.__version__,
        "python": platform.python_version(), "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
    }
    print(json.dumps(report, indent=1))
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"head_ablation_vs_loop_cpu{args.threads}.json"
    path.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {path}")
    return report


if __name__ == "__main__":
    main()
