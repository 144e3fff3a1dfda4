"""Gene attributions per class (docs/single_cell.md): real outputs, reproducible.

    python docs/scripts/gene_attributions_tutorial.py [--out docs/img/single_cell]

Integrated Gradients of the shipped PBMC classifier on all 700 cells of
pbmc68k_reduced, for each cell's predicted class, its label and every class;
the per-class tables with bootstrap intervals; completeness; the plots.
About a minute on one CPU thread.
"""

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
import scanpy as sc
import torch

from captum_genomics.sc.gene_attributions import class_gene_attributions
from captum_genomics.sc.plot import (
    plot_class_top_genes,
    plot_gene_class_heatmap,
    plot_positive_contributions,
)
from captum_genomics.zoo.pbmc import load_pbmc_classifier, load_pbmc_metadata

parser = argparse.ArgumentParser()
parser.add_argument("--out", type=Path, default=Path("docs/img/single_cell"))
args = parser.parse_args()
torch.set_num_threads(1)
pd.set_option("display.width", 120)

adata = sc.datasets.pbmc68k_reduced()
model = load_pbmc_classifier()
names = load_pbmc_metadata()["label_names"]

t0 = time.perf_counter()
pred = class_gene_attributions(model, adata, "predicted", "bulk_labels", class_names=names,
                               use_raw=True)
t_pred = time.perf_counter() - t0
lab = class_gene_attributions(model, adata, "label", "bulk_labels", class_names=names,
                              use_raw=True)
t0 = time.perf_counter()
allc = class_gene_attributions(model, adata, "all", "bulk_labels", class_names=names,
                               use_raw=True)
t_all = time.perf_counter() - t0
print(f"predicted: {t_pred:.2f} s; all classes: {t_all:.2f} s ({allc.params['ig_path']}), "
      f"attributions {allc.attributions.shape}")
wrong = pred.predicted != pred.labels
print(f"accuracy {1 - wrong.mean():.3f}: {wrong.sum()} cells misclassified")
for r, what in ((pred, "predicted"), (allc, "all")):
    d = np.abs(r.convergence_delta)
    print(f"convergence delta ({what}, 50 steps): max {d.max():.2e}, median {np.median(d):.2e}")

table = pred.to_frame()
cols = ["class", "gene", "mean", "boot_low", "boot_high", "mean_abs", "frac_positive", "n"]
print("\nTop 3 genes per predicted class:")
print(table.groupby("class", sort=False).head(3)[cols].to_string(index=False,
                                                                 float_format="%.3f"))

# predicted vs label grouping: what misclassified cells do to a class's table
print("\nCells per class: predicted vs labelled, and misclassified among the labelled")
counts = pd.DataFrame({
    "predicted": np.bincount(pred.predicted, minlength=10),
    "labelled": np.bincount(pred.labels, minlength=10),
    "misclassified": np.bincount(pred.labels[wrong], minlength=10)}, index=names)
print(counts.to_string())
t_lab = lab.to_frame()
for cls in ("CD4+/CD45RO+ Memory", "CD8+/CD45RA+ Naive Cytotoxic"):
    a = table[table["class"] == cls].head(5)
    b = t_lab[t_lab["class"] == cls].head(5)
    print(f"\n{cls}: top 5 by predicted class (n={a['n'].iloc[0]}) vs by label "
          f"(n={b['n'].iloc[0]})")
    print("  predicted:", ", ".join(f"{g} {m:.3f}" for g, m in zip(a["gene"], a["mean"])))
    print("  label:    ", ", ".join(f"{g} {m:.3f}" for g, m in zip(b["gene"], b["mean"])))

# every class for every cell: how a gene counts for and against each class
t_all_cells = allc.to_frame(group_by="none", full=False)
for gene in ("CST3", "GNLY", "CD79A"):
    row = t_all_cells[t_all_cells["gene"] == gene].set_index("class")["mean"]
    print(f"{gene} mean attribution per class over all 700 cells: "
          + ", ".join(f"{c} {v:+.3f}" for c, v in row.items()))

r256 = class_gene_attributions(model, adata, "predicted", "bulk_labels", class_names=names,
                               use_raw=True, n_steps=256)
with torch.no_grad():
    x = torch.tensor(adata.raw.X.toarray() if hasattr(adata.raw.X, "toarray")
                     else np.asarray(adata.raw.X))
    gap = (model(x) - model(torch.zeros_like(x))).numpy()[np.arange(700), r256.targets]
d = np.abs(r256.convergence_delta)
print(f"\n256 steps: max |delta| {d.max():.2e}, max |delta| / |f(x) - f(0)| "
      f"{(d / np.abs(gap)).max():.2e}")

args.out.mkdir(parents=True, exist_ok=True)
plot_class_top_genes(table, k=5, ncols=5).savefig(args.out / "top_genes.png", dpi=80)
plot_positive_contributions(table, k=20).figure.savefig(args.out / "positive_contributions.png",
                                                        dpi=80)
plot_gene_class_heatmap(table, k=3).figure.savefig(args.out / "heatmap.png", dpi=80)
print(f"plots in {args.out}/")
