"""Held-out node importances: calibration on the null and a planted GO-structured signal.

Two studies of :class:`captum_genomics.LayerNodeProbe` /
:func:`captum_genomics.stats.probe_results.probe_nodes`, for ``docs/single_cell.md``:

* **Null** (``--replicates`` label shuffles): ``--cells`` cells, 3 balanced
  classes assigned at random, a layer of independent N(0, 1) units cut into
  nodes of widths 1, 2, 4, ..., 64. Per width: the out-of-fold AUROC (mean,
  s.d.) beside NetworkVI's in-sample AUROC (probe fitted and scored on the same
  cells), the share of p < 0.05 and of q < 0.05 (BH within each replicate) and
  how often the 95 % bootstrap CI covers 0.5; over all tests, a KS test of the
  p-values against the uniform.
* **Planted**: 300 cells, 60 genes, 6 GO-like terms of 10 genes, class ``k``
  raised on the genes of term ``k`` (k = 0, 1, 2); a classifier whose hidden
  layer is GO-structured (a masked linear layer, 2-5 units per term) trained
  on 300 *other* cells, and, for contrast, the same model trained on the
  probed cells themselves. Per class: the rank, out-of-fold AUROC and q of the
  planted term, the noise terms' AUROC and share of q < 0.05, and how many of
  the integrated-gradients top-10 genes of the class belong to its term.

Runs on one CPU thread by default (``--threads``); writes
``benchmarks/results/node_probe_calibration.json`` with the CPU model, torch
version and threads.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import platform
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from captum_genomics import LayerNodeProbe
from captum_genomics.stats.probe_results import probe_nodes
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _env import cpu_model  # noqa: E402  (one copy for every benchmark)

WIDTHS = (1, 2, 4, 8, 16, 32, 64)
N_GENES, N_TERMS, TERM_SIZE, N_CLASSES = 60, 6, 10, 3
TERM_GENES = [list(range(TERM_SIZE * t, TERM_SIZE * (t + 1))) for t in range(N_TERMS)]
TERM_WIDTHS = (3, 2, 4, 3, 5, 3)



# ----------------------------------------------------------------------------- null
def null_study(n_cells: int, replicates: int, n_permutations: int, n_bootstrap: int) -> dict:
    from scipy.stats import kstest

    rng = np.random.default_rng(0)
    off = np.cumsum([0, *WIDTHS])
    nodes = {f"w{w}": slice(int(off[i]), int(off[i + 1])) for i, w in enumerate(WIDTHS)}
    oof, ins, p, q, cover = [], [], [], [], []
    t0 = time.perf_counter()
    for rep in range(replicates):
        acts = rng.normal(size=(n_cells, int(off[-1])))
        labels = rng.permutation(np.arange(n_cells) % N_CLASSES)
        res = probe_nodes(acts, labels, nodes, n_permutations=n_permutations,
                          n_bootstrap=n_bootstrap, n_random=0, random_state=rep)
        oof.append(res.auroc_oof)
        ins.append(res.auroc_in_sample)
        p.append(res.p_value)
        q.append(res.q_value)
        cover.append((res.ci_low <= 0.5) & (0.5 <= res.ci_high))
    seconds = time.perf_counter() - t0
    oof, ins, p, q, cover = map(np.stack, (oof, ins, p, q, cover))  # (rep, node, class)
    by_width = []
    for i, w in enumerate(WIDTHS):
        by_width.append({
            "width": w,
            "auroc_oof_mean": round(float(oof[:, i].mean()), 4),
            "auroc_oof_sd": round(float(oof[:, i].std(ddof=1)), 4),
            "auroc_in_sample_mean": round(float(ins[:, i].mean()), 4),
            "auroc_in_sample_sd": round(float(ins[:, i].std(ddof=1)), 4),
            "share_p_below_0.05": round(float((p[:, i] < 0.05).mean()), 4),
            "share_q_below_0.05": round(float((q[:, i] < 0.05).mean()), 4),
            "ci95_covers_0.5": round(float(cover[:, i].mean()), 4),
        })
    return {
        "cells": n_cells, "classes": N_CLASSES, "replicates": replicates,
        "tests_per_replicate": len(WIDTHS) * N_CLASSES, "n_permutations": n_permutations,
        "n_bootstrap": n_bootstrap, "units": "independent N(0, 1)",
        "auroc_oof_mean": round(float(oof.mean()), 4), "auroc_oof_sd": round(float(oof.std()), 4),
        "auroc_in_sample_mean": round(float(ins.mean()), 4),
        "share_p_below_0.05": round(float((p < 0.05).mean()), 4),
        "share_q_below_0.05": round(float((q < 0.05).mean()), 4),
        "ks_uniform_pvalue": float(kstest(p.reshape(-1), "uniform").pvalue),
        "ci95_covers_0.5": round(float(cover.mean()), 4),
        "by_width": by_width, "seconds": round(seconds, 1),
    }


# ----------------------------------------------------------------------------- planted
class MaskedLinear(nn.Linear):
    """``weight * mask``: each term's units read only the term's genes."""

    def __init__(self, mask: torch.Tensor):
        super().__init__(mask.shape[1], mask.shape[0])
        self.register_buffer("mask", mask)

    def forward(self, x):
        return nn.functional.linear(x, self.weight * self.mask, self.bias)


class GOModel(nn.Module):
    def __init__(self):
        super().__init__()
        rows = []
        for genes, w in zip(TERM_GENES, TERM_WIDTHS):
            m = torch.zeros(w, N_GENES)
            m[:, genes] = 1.0
            rows.append(m)
        self.terms = MaskedLinear(torch.cat(rows))
        self.act = nn.Tanh()
        self.head = nn.Linear(sum(TERM_WIDTHS), N_CLASSES)

    def forward(self, x):
        return self.head(self.act(self.terms(x)))


def cells(seed: int, n: int, shift: float = 0.8):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % N_CLASSES
    x = (torch.randn(n, N_GENES, generator=g, dtype=torch.float64) * 0.5 + 1).clamp_min(0)
    for k in range(N_CLASSES):
        rows = (y == k).nonzero()[:, 0]
        x[rows[:, None], torch.tensor(TERM_GENES[k])[None]] += shift
    return x, y


def train(x, y, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    model = GOModel().double()
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(150):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    return model.eval()


def planted_study(n_permutations: int) -> dict:
    from captum.attr import IntegratedGradients

    x, y = cells(0, 300)
    off = np.cumsum([0, *TERM_WIDTHS])
    nodes = {f"term{t}": slice(int(off[t]), int(off[t + 1])) for t in range(N_TERMS)}
    out = {"cells": 300, "genes": N_GENES, "terms": N_TERMS, "term_size": TERM_SIZE,
           "node_widths": list(TERM_WIDTHS), "shift": 0.8, "n_permutations": n_permutations}
    for setting, (xt, yt) in {"model_trained_on_other_cells": cells(1000, 300),
                              "model_trained_on_the_probed_cells": (x, y)}.items():
        model = train(xt, yt)
        t0 = time.perf_counter()
        res = LayerNodeProbe(model, "terms").attribute(
            x, y, nodes, n_permutations=n_permutations, untrained="reinit", random_state=0)
        seconds = time.perf_counter() - t0
        frame = res.to_frame()
        ig = IntegratedGradients(model)
        per_class = []
        for k in range(N_CLASSES):
            rank = res.ranking(k)
            row = rank[rank["node"] == f"term{k}"].iloc[0]
            attr = ig.attribute(x[y == k], baselines=torch.zeros_like(x[y == k]), target=k,
                                n_steps=32).mean(0)
            top10 = torch.argsort(attr, descending=True)[:10].tolist()
            per_class.append({
                "class": k, "planted_node": f"term{k}",
                "rank": int(rank.index[rank["node"] == f"term{k}"][0]) + 1,
                "auroc_oof": round(float(row["auroc_oof"]), 4),
                "ci": [round(float(row["ci_low"]), 4), round(float(row["ci_high"]), 4)],
                "q_value": float(row["q_value"]),
                "auroc_in_sample": round(float(row["auroc_in_sample"]), 4),
                "untrained_auroc": round(float(row["untrained_auroc"]), 4),
                "random_node_q95": round(float(row["random_node_q95"]), 4),
                "ig_top10_in_term": len(set(top10) & set(TERM_GENES[k])),
            })
        noise = frame[frame["node"].isin(["term3", "term4", "term5"])]
        out[setting] = {
            "planted": per_class,
            "noise_terms_auroc_oof_mean": round(float(noise["auroc_oof"].mean()), 4),
            "noise_terms_auroc_in_sample_mean": round(float(noise["auroc_in_sample"].mean()), 4),
            "noise_terms_share_q_below_0.05": round(float((noise["q_value"] < 0.05).mean()), 4),
            "seconds_attribute": round(seconds, 2),
        }
    return out


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=300)
    parser.add_argument("--replicates", type=int, default=20)
    parser.add_argument("--permutations", type=int, default=99)
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    report = {
        "what": "LayerNodeProbe / probe_nodes: held-out AUROC vs NetworkVI's in-sample AUROC "
                "on the null, and a planted GO-structured signal",
        "null": null_study(args.cells, args.replicates, args.permutations, args.bootstrap),
        "planted": planted_study(args.permutations),
        "cpu_model": cpu_model(), "threads": args.threads, "cpu_count": os.cpu_count(),
        "load_average": [round(v, 2) for v in os.getloadavg()],
        "torch": torch.__version__, "python": platform.python_version(),
    }
    print(json.dumps(report, indent=1))
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "node_probe_calibration.json"
    path.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {path}")
    return report


if __name__ == "__main__":
    main()
