"""The FastSHAP single-cell tutorial (docs/fastshap.md): real outputs, reproducible.

    python docs/scripts/fastshap_tutorial.py [--out docs/img/fastshap]

Fits FastSHAP over the 765 genes of pbmc68k_reduced for the shipped cell-type
classifier, writes tables and plots, and checks FastSHAP against Captum's
ShapleyValueSampling on the same game for a few held-out cells. ~3 minutes on
one CPU thread.
"""

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from captum.attr import ShapleyValueSampling

from captum_genomics import FastSHAP
from captum_genomics.fastshap.augment import feature_dropout
from captum_genomics.sc.pbmc import load_pbmc68k
from captum_genomics.sc.plot import plot_stacked_contributions, plot_top_genes_grid
from captum_genomics.stats import attribution_table, top_genes
from captum_genomics.workflows.fastshap_pbmc import PBMC_MARKERS
from captum_genomics.zoo.pbmc import load_pbmc_classifier, load_pbmc_metadata

parser = argparse.ArgumentParser()
parser.add_argument("--out", type=Path, default=Path("docs/img/fastshap"))
parser.add_argument("--n-check", type=int, default=5)
args = parser.parse_args()
args.out.mkdir(parents=True, exist_ok=True)
torch.set_num_threads(1)

# 1. data and model
data = load_pbmc68k()
model = load_pbmc_classifier()
print("classifier test accuracy:", load_pbmc_metadata()["metrics"]["test"]["accuracy"])
x = torch.from_numpy(data.X)
tr, va, te = (data.split[k] for k in ("train", "validation", "test"))

# 2. train the explainer on the model's own game: held-out genes = 0, softmax probabilities
t0 = time.perf_counter()
fs = FastSHAP.fit(model, x[tr], x[va], link="softmax", random_state=0,
                  explainer_kwargs={"hidden_width": 256},
                  train_kwargs={"objective": "permutation", "max_epochs": 40, "lr": 1e-3,
                                "schedule": "cosine", "early_stopping_patience": None,
                                "augment": feature_dropout(0.15, keep_original=0.3)})
h = fs.history["explainer"]
print(f"fit: {time.perf_counter() - t0:.1f} s, {h['epochs_run']} epochs (best {h['best_epoch']}), "
      f"val loss {h['initial_val_loss']:.3g} -> {h['best_val_loss']:.3g}")

# 3. explain the held-out cells for their true class
y = torch.from_numpy(data.labels[te])
t0 = time.perf_counter()
attr, delta = fs.attribute(x[te], target=y, return_convergence_delta=True)
print(f"explain {len(te)} cells: {time.perf_counter() - t0:.3f} s; "
      f"max |efficiency gap| {delta.abs().max():.1e}")

# 4. tables and plots
table = attribution_table(attr, data.labels[te], data.genes, data.label_names)
top_genes(table, 10).to_csv(args.out / "top_genes.csv", index=False, float_format="%.5g")
print(top_genes(table, 5)[["class", "gene", "mean", "ci_low", "ci_high", "n"]]
      .to_string(index=False, float_format="%.4f"))
print(top_genes(table, 3, "negative")[["class", "gene", "mean"]]
      .to_string(index=False, float_format="%.4f"))
plot_top_genes_grid(table, k=8, markers=PBMC_MARKERS).savefig(args.out / "top_genes.png",
                                                               dpi=100)
plot_stacked_contributions(table, k=3).figure.savefig(args.out / "stacked_contributions.png",
                                                      dpi=100)

# 5. accuracy check: Captum's ShapleyValueSampling on the same game
prob = lambda inp: torch.softmax(model(inp), -1)  # noqa: E731
svs = ShapleyValueSampling(prob)
cells = x[te[:args.n_check]]
tgt = y[:args.n_check]
torch.manual_seed(0)  # ShapleyValueSampling draws permutations from the global RNG
t0 = time.perf_counter()
ref_a = svs.attribute(cells, target=tgt, baselines=0.0, n_samples=200, perturbations_per_eval=256)
t_svs = time.perf_counter() - t0
torch.manual_seed(1)
ref_b = svs.attribute(cells, target=tgt, baselines=0.0, n_samples=200, perturbations_per_eval=256)
fast = attr[:args.n_check]


def corr(a, b):
    return float(np.corrcoef(a.numpy(), b.numpy())[0, 1])


def top_overlap(a, b, k=10):
    return len(set(a.topk(k).indices.tolist()) & set(b.topk(k).indices.tolist())) / k


print(f"ShapleyValueSampling, 200 permutations: {t_svs / args.n_check:.1f} s per cell")
print("cell  class                       r(FastSHAP,SVS)  r(SVS,SVS')  top10(FastSHAP,SVS)  "
      "top10(SVS,SVS')")
for i in range(args.n_check):
    print(f"{i:4d}  {data.label_names[int(tgt[i])]:<28s}{corr(fast[i], ref_a[i]):>10.3f}"
          f"{corr(ref_a[i], ref_b[i]):>13.3f}{top_overlap(fast[i], ref_a[i]):>15.1f}"
          f"{top_overlap(ref_a[i], ref_b[i]):>18.1f}")
