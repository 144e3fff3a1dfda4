"""Train a small SCANVI on pbmc68k_reduced's counts and cross-check our gene tables against it.

scvi-tools 1.4.2 (``pip install "captum-genomics[scvi]"`` with your torch).
The counts are recovered from the log-normalized ``.raw.X`` of scanpy's
``pbmc68k_reduced`` (:func:`captum_genomics.sc.pbmc.recover_counts`:
``rint(expm1(raw.X) * n_counts / 1e4)``), 700 cells x 765 genes, labels
``bulk_labels`` (10 types). The model is trained on the CPU, seeded, and
saved with ``model.save`` under ``--out`` (default a folder in the system's
temporary directory; the weights are not part of the package).

The cross-check (``--check``, default on) does what scvi-tools' tutorial
does, once per class: ``model.predict(indices=<cells labelled c>,
ig_interpretability=True)`` (Captum IntegratedGradients on
``module.classify``, raw counts in, zero baseline, 50 steps, each cell
explained for its predicted class), and compares every class's table with
``attribution_table(..., scvi_compatible=True)`` of
:func:`captum_genomics.sc.gene_attributions.class_gene_attributions` run
once over all cells (same targets). It prints the largest differences and
writes them to ``--json``.

    python scripts/train_scanvi_pbmc.py [--max-epochs 20] [--out DIR] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

import numpy as np
import torch
from torch import nn


class SCANVIClassifier(nn.Module):
    """``module.classify`` of a single-batch SCANVI as a model ``(N, G) counts -> (N, C) logits``.

    The batch index is 0 for every cell (the model must have been set up
    without ``batch_key``); the classifier reads the posterior mean of the
    latent, as ``model.predict`` does.
    """

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch = torch.zeros(x.shape[0], 1, dtype=x.dtype, device=x.device)
        return self.module.classify(x, batch)


def pbmc_counts_anndata():
    """pbmc68k_reduced's recovered counts as an AnnData (float32 ``.X``, ``obs["bulk_labels"]``)."""
    import anndata
    import scanpy as sc

    from captum_genomics.sc.pbmc import LABEL_KEY, recover_counts

    a = sc.datasets.pbmc68k_reduced()
    counts = recover_counts(a.raw.X, a.obs["n_counts"].to_numpy())
    adata = anndata.AnnData(X=counts.astype(np.float32),
                            obs=a.obs[[LABEL_KEY]].astype(str).copy())
    adata.var_names = [str(g) for g in a.raw.var_names]
    return adata


def train_scanvi(adata, max_epochs: int = 20, random_state: int = 0, n_hidden: int = 64,
                 n_latent: int = 10):
    """A SCANVI on ``adata`` (labels ``bulk_labels``, all cells labelled), CPU, seeded."""
    import scvi

    scvi.settings.seed = random_state
    scvi.model.SCANVI.setup_anndata(adata, labels_key="bulk_labels",
                                    unlabeled_category="Unknown")
    model = scvi.model.SCANVI(adata, n_hidden=n_hidden, n_latent=n_latent, n_layers=1)
    model.train(max_epochs=max_epochs, accelerator="cpu", devices=1,
                enable_progress_bar=False, check_val_every_n_epoch=None)
    model.module.eval()
    return model


def cross_check(model, adata, n_steps: int = 50) -> dict:
    """Per class: our scvi_compatible table against ``model.predict(indices=..., ig_...=True)``."""
    from captum_genomics.sc.gene_attributions import class_gene_attributions
    from captum_genomics.stats.attribution_tables import attribution_table

    n_outputs = int(model.module.n_labels)
    classes = [str(c) for c in model._label_mapping[:n_outputs]]  # as predict(soft=True)
    labels = adata.obs["bulk_labels"].astype(str).to_numpy()
    t0 = time.perf_counter()
    ours = class_gene_attributions(SCANVIClassifier(model.module), adata.X, "predicted",
                                   labels, class_names=classes, n_steps=n_steps,
                                   baseline="zeros", batch_size=128)
    ours_seconds = time.perf_counter() - t0
    table = attribution_table(ours.attributions, ours.labels, list(adata.var_names), classes,
                              scvi_compatible=True)
    preds = model.predict()
    out = {"classes": {}, "n_cells": int(adata.n_obs), "n_genes": int(adata.n_vars),
           "prediction_agreement": float(np.mean(np.asarray(preds)
                                                 == np.asarray(classes)[ours.predicted])),
           "accuracy": float(np.mean(np.asarray(preds) == labels)),
           "ours_seconds": round(ours_seconds, 3)}
    worst = {"attribution_mean": 0.0, "attribution_std": 0.0}
    t1 = time.perf_counter()
    for cls in sorted(set(labels)):
        idx = np.flatnonzero(labels == cls)
        _, theirs = model.predict(indices=idx.tolist(), ig_interpretability=True)
        mine = table[table["class"] == cls].drop(columns="class")
        a = mine.set_index("feature").sort_index()
        b = theirs.set_index("feature").sort_index()
        diffs = {c: float(np.abs(a[c].to_numpy(np.float64) - b[c].to_numpy(np.float64)).max())
                 for c in worst}
        same_order = bool((mine["feature"].to_numpy() == theirs["feature"].to_numpy()).all())
        same_columns = list(mine.columns) == list(theirs.columns)
        same_cells = bool((a["cells"] == b["cells"]).all()) and int(a["cells"].iloc[0]) == len(idx)
        for c in worst:
            worst[c] = max(worst[c], diffs[c])
        out["classes"][cls] = {"n_cells": int(len(idx)), "max_abs_diff": diffs,
                               "same_order": same_order, "same_columns": same_columns,
                               "same_cells": same_cells}
    out["scvi_seconds"] = round(time.perf_counter() - t1, 3)
    out["max_abs_diff"] = worst
    return out


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default=os.path.join(tempfile.gettempdir(),
                                                 "captum_genomics_scanvi_pbmc"))
    p.add_argument("--max-epochs", type=int, default=20)
    p.add_argument("--random-state", type=int, default=0)
    p.add_argument("--load", action="store_true",
                   help="load the model saved in --out instead of training")
    p.add_argument("--no-check", action="store_true")
    p.add_argument("--json", default=None, help="write the cross-check numbers here")
    args = p.parse_args(argv)
    adata = pbmc_counts_anndata()
    t0 = time.perf_counter()
    if args.load:
        import scvi

        model = scvi.model.SCANVI.load(args.out, adata=adata)
        model.module.eval()
    else:
        model = train_scanvi(adata, args.max_epochs, args.random_state)
        model.save(args.out, overwrite=True, save_anndata=False)
    train_seconds = time.perf_counter() - t0
    print(f"{'loaded' if args.load else 'trained'} SCANVI ({args.max_epochs} epochs, "
          f"{train_seconds:.1f} s) -> {args.out}")
    result = {"max_epochs": args.max_epochs, "train_seconds": round(train_seconds, 1),
              "random_state": args.random_state}
    if not args.no_check:
        import scvi

        result.update(cross_check(model, adata))
        result["scvi_tools"] = scvi.__version__
        result["torch"] = torch.__version__
        print(f"prediction agreement {result['prediction_agreement']:.3f}, accuracy "
              f"{result['accuracy']:.3f}")
        for cls, r in result["classes"].items():
            print(f"  {cls:30s} n={r['n_cells']:4d} max|diff| mean "
                  f"{r['max_abs_diff']['attribution_mean']:.1e} std "
                  f"{r['max_abs_diff']['attribution_std']:.1e} same order {r['same_order']}")
        print(f"max |diff|: {result['max_abs_diff']}; ours {result['ours_seconds']} s (one "
              f"call), scvi-tools {result['scvi_seconds']} s ({len(result['classes'])} calls)")
        if args.json:
            with open(args.json, "w", encoding="utf-8") as fh:
                json.dump(result, fh, indent=1)
                fh.write("\n")
    return result


if __name__ == "__main__":
    main()
