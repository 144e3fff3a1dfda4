"""Every class's gene attributions: one ``target="all"`` call vs C per-class calls.

Same model, same cells, same numbers: the shipped PBMC classifier (765 genes
-> 64 -> 10 classes), all 700 cells of ``pbmc68k_reduced`` (``.raw``,
log-normalized), Integrated Gradients with a zero baseline, 50 Gauss-Legendre
steps, attributions ``(700, 10, 765)``:

- **all**: ``class_gene_attributions(model, x, "all")``, one pass over the
  cells (default ``input_layer="auto"``: gradients taken at the input
  ``nn.Linear``, mapped by its weight; see the module docstring of
  :mod:`captum_genomics.sc.gene_attributions`);
- **all_batched**: the same with ``input_layer=None`` (one forward pass per
  path point, the C backward passes vectorized with ``is_grads_batched``);
- **per_class**: C = 10 calls of Captum's ``IntegratedGradients.attribute(x,
  target=c, n_steps=50)``, each over all cells in one call, what one does
  without ``target="all"``;
- **per_class_ours**: C calls of ``class_gene_attributions(model, x, target=c)``
  (Captum's IG, 64 cells per call).

Each is run ``--repeats`` times (default 3); wall-clock (``perf_counter``) and
CPU time (``process_time``, robust to other processes on a shared machine)
are recorded and the medians compared. All results must agree with
``per_class`` to 1e-6. Writes
``benchmarks/results/gene_attributions_all_vs_per_class_cpu<threads>.json``.

Usage::

    python benchmarks/gene_attributions_all_vs_per_class.py [--repeats 3] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _env import cpu_model  # noqa: E402  (one copy for every benchmark)



def setup():
    import scanpy as sc

    from captum_genomics.zoo.pbmc import load_pbmc_classifier, load_pbmc_metadata

    adata = sc.datasets.pbmc68k_reduced()
    raw = adata.raw.X
    x = torch.tensor(raw.toarray() if hasattr(raw, "toarray") else np.asarray(raw),
                     dtype=torch.float32)
    return load_pbmc_classifier(), x, list(load_pbmc_metadata()["label_names"])


def timed(fn, repeats: int):
    walls, cpus, out = [], [], None
    for _ in range(repeats):
        w0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        cpus.append(round(time.process_time() - c0, 4))
        walls.append(round(time.perf_counter() - w0, 4))
    return out, walls, cpus


def main(argv=None) -> dict:
    from captum.attr import IntegratedGradients

    from captum_genomics.sc.gene_attributions import class_gene_attributions

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--n-steps", type=int, default=50)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    model, x, names = setup()
    n_classes = len(names)
    ig = IntegratedGradients(model)

    def per_class():
        return np.stack([ig.attribute(x, target=c, n_steps=args.n_steps).detach().numpy()
                         for c in range(n_classes)], axis=1)

    def per_class_ours():
        return np.stack([class_gene_attributions(model, x, c, n_steps=args.n_steps,
                                                 return_convergence_delta=False).attributions
                         for c in range(n_classes)], axis=1)

    def all_auto():
        return class_gene_attributions(model, x, "all", n_steps=args.n_steps,
                                       return_convergence_delta=False)

    def all_batched():
        return class_gene_attributions(model, x, "all", n_steps=args.n_steps,
                                       input_layer=None, return_convergence_delta=False)

    ref, wall_pc, cpu_pc = timed(per_class, args.repeats)
    res, wall_all, cpu_all = timed(all_auto, args.repeats)
    resb, wall_b, cpu_b = timed(all_batched, args.repeats)
    mine, wall_po, cpu_po = timed(per_class_ours, args.repeats)
    med = statistics.median
    report = {
        "what": "gene attributions of every class for every cell: class_gene_attributions("
                "target='all') in one call vs C calls of captum IntegratedGradients, one per "
                "class",
        "model": "captum_genomics.zoo.pbmc (MLP 765 -> 64 -> 10, ReLU)",
        "cells": int(x.shape[0]), "genes": int(x.shape[1]), "classes": n_classes,
        "n_steps": args.n_steps, "baseline": "zeros", "integration_method": "gausslegendre",
        "ig_path_all": res.params["ig_path"], "ig_path_all_batched": resb.params["ig_path"],
        "seconds": {"per_class_captum": wall_pc, "all": wall_all, "all_batched": wall_b,
                    "per_class_ours": wall_po},
        "cpu_seconds": {"per_class_captum": cpu_pc, "all": cpu_all, "all_batched": cpu_b,
                        "per_class_ours": cpu_po},
        "median_seconds": {"per_class_captum": med(wall_pc), "all": med(wall_all),
                           "all_batched": med(wall_b), "per_class_ours": med(wall_po)},
        "speedup_wall": round(med(wall_pc) / med(wall_all), 1),
        "speedup_cpu": round(med(cpu_pc) / med(cpu_all), 1),
        "speedup_wall_batched": round(med(wall_pc) / med(wall_b), 1),
        "speedup_cpu_batched": round(med(cpu_pc) / med(cpu_b), 1),
        "speedup_wall_vs_per_class_ours": round(med(wall_po) / med(wall_all), 1),
        "target_speedup": n_classes / 2,
        "max_abs_diff": {"all": float(np.abs(res.attributions - ref).max()),
                         "all_batched": float(np.abs(resb.attributions - ref).max()),
                         "per_class_ours": float(np.abs(mine - ref).max())},
        "repeats": args.repeats, "threads": args.threads,
        "load_average": [round(v, 2) for v in os.getloadavg()],
        "cpu_model": cpu_model(), "cpu_count": os.cpu_count(),
        "torch": torch.__version__, "python": platform.python_version(),
        "machine": platform.machine(),
    }
    print(json.dumps(report, indent=1))
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"gene_attributions_all_vs_per_class_cpu{args.threads}.json"
    path.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    return report


if __name__ == "__main__":
    main()
