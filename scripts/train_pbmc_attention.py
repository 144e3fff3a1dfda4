"""Train the shipped neighbour-attention model (captum_genomics/zoo/pbmc_attention.*).

Deterministic on the CPU (one thread, seed 0). Data: every cell of
``pbmc68k_reduced`` with its 9 kNN-graph neighbours
(:func:`captum_genomics.sc.neighbours.neighbour_inputs`); target: the cell's
log-normalized expression, all 765 genes. The per-type baseline starts at the
train cells' type means and the decoder at zero (so training starts from the
per-type-mean predictor); minibatch AdamW on the MSE over the train split,
model selection by validation MSE, held-out metrics reported once on the test
split. Takes ~5 seconds.

Metrics (test cells; "within type" = over the cells of one cell type, types
with >= 2 test cells; population variances):

- ``ev_pooled``: per type ``1 - sum_g var(pred_g - obs_g) / sum_g var(obs_g)``,
  averaged over types (the per-(head, group) EV of head ablation);
- ``ev_pooled_by_type``: the same, per type;
- ``ev_gene_mean``: per-gene EV ``1 - var(pred_g - obs_g) / var(obs_g)`` averaged
  over the genes with non-zero variance and over types;
- ``mse``: mean squared error over cells and genes.

Baselines: ``type_mean`` (each type's train mean: EV exactly 0 by definition,
lower is impossible for a constant) and ``neighbour_mean`` (the average of the
9 neighbours' expression).

    python scripts/train_pbmc_attention.py [--out captum_genomics/zoo]
"""

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

from captum_genomics.sc.neighbours import neighbour_inputs
from captum_genomics.sc.pbmc import SPLIT_FRACTIONS
from captum_genomics.stats import explained_variance
from captum_genomics.zoo.pbmc_attention import (
    METADATA_FILE,
    WEIGHTS_FILE,
    NeighbourAttentionModel,
)

SEED = 0
EPOCHS = 60
BATCH = 32
LR = 1e-3
WEIGHT_DECAY = 1e-2
ARCH = {"n_genes": 765, "n_types": 10, "d_model": 32, "n_heads": 4, "input_dropout": 0.5}


def held_out_metrics(pred, observed, cell_type, type_names) -> dict:
    """Within-type explained variance and MSE (float64); see the module docstring.

    The per-type EVs are :func:`captum_genomics.stats.explained_variance`
    (types with fewer than 2 cells are skipped, constant genes left out).
    """
    pred = torch.as_tensor(np.asarray(pred, dtype=np.float64))
    obs = torch.as_tensor(np.asarray(observed, dtype=np.float64))
    codes = torch.as_tensor(np.asarray(cell_type), dtype=torch.long)
    ev_gene, ev_type, _ = explained_variance(pred, obs, codes, len(type_names))
    kept = ~torch.isnan(ev_type)
    by_type = {name: round(float(ev_type[t]), 4) for t, name in enumerate(type_names)
               if kept[t]}
    return {"ev_pooled": round(float(ev_type[kept].mean()), 4),
            "ev_gene_mean": round(float(ev_gene[kept].nanmean(dim=1).mean()), 4),
            "mse": round(float(((pred - obs) ** 2).mean()), 4),
            "ev_pooled_by_type": by_type}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=Path("captum_genomics/zoo"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(SEED)
    t0 = time.perf_counter()
    data = neighbour_inputs(split_random_state=SEED)
    nb, ct, y = data.neighbours, data.cell_type, data.observed
    tr, va, te = (torch.from_numpy(data.split[k]) for k in ("train", "validation", "test"))
    model = NeighbourAttentionModel(**ARCH)
    with torch.no_grad():
        for t in range(ARCH["n_types"]):
            model.baseline.weight[t] = y[tr][ct[tr] == t].mean(0)
        model.decoder.weight.zero_()
        model.decoder.bias.zero_()
    opt = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)
    g = torch.Generator().manual_seed(SEED)
    best, best_state, best_epoch, history = float("inf"), None, -1, []
    for epoch in range(EPOCHS):
        model.train()
        perm = tr[torch.randperm(len(tr), generator=g)]
        total = 0.0
        for s in range(0, len(perm), BATCH):
            idx = perm[s:s + BATCH]
            loss = ((model(nb[idx], ct[idx]) - y[idx]) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        model.eval()
        with torch.no_grad():
            val_mse = float(((model(nb[va], ct[va]) - y[va]) ** 2).mean())
        history.append({"epoch": epoch, "train_mse": total / len(tr), "val_mse": val_mse})
        if val_mse < best:
            best, best_epoch = val_mse, epoch
            best_state = {k: v.clone() for k, v in model.state_dict().items()}
    model.load_state_dict(best_state)
    model.eval()
    seconds = time.perf_counter() - t0
    with torch.no_grad():
        pred = model(nb, ct).numpy()
    type_mean = np.stack([y[tr][ct[tr] == t].mean(0).numpy()
                          for t in range(ARCH["n_types"])])[ct.numpy()]
    predictors = {"model": pred, "type_mean": type_mean, "neighbour_mean": nb.mean(1).numpy()}
    metrics = {
        split: {"n": int(len(idx)),
                **{name: held_out_metrics(p[idx], y[idx].numpy(), ct[idx].numpy(),
                                          data.type_names)
                   for name, p in predictors.items()}}
        for split, idx in (("train", tr), ("validation", va), ("test", te))
    }
    meta = {
        "description": "Attention-over-neighbours expression model on pbmc68k_reduced (scanpy): "
                       "a cell's log-normalized expression (765 genes) from its 9 kNN-graph "
                       "neighbours' expression (keys/values) and its cell type (query), "
                       "nn.MultiheadAttention at `attention`",
        "data": "scanpy.datasets.pbmc68k_reduced(), .raw.X, obs['bulk_labels'], "
                "obsp['distances'] (self excluded) (Zheng et al. 2017)",
        "architecture": ARCH,
        "input": "neighbours (N, 9, 765) float32: neighbour_inputs().neighbours, closest first; "
                 "cell_type (N,) int64 in the order of type_names",
        "output": "(N, 765) predicted log1p(counts / n_counts * 1e4)",
        "type_names": data.type_names,
        "genes": data.gene_names,
        "split": {"seed": SEED, "fractions": SPLIT_FRACTIONS,
                  **{k: v.tolist() for k, v in data.split.items()}},
        "metrics": metrics,
        "metrics_definition": "see scripts/train_pbmc_attention.py: within-type EV over types "
                              "with >= 2 cells (population variance); type_mean = train "
                              "per-type mean, neighbour_mean = mean of the 9 neighbours",
        "training": {"seed": SEED, "epochs": EPOCHS, "best_epoch": best_epoch,
                     "batch_size": BATCH,
                     "optimizer": f"AdamW(lr={LR}, weight_decay={WEIGHT_DECAY})",
                     "init": "baseline = train per-type means, decoder = 0",
                     "loss": "MSE", "selection": "best validation MSE",
                     "script": "scripts/train_pbmc_attention.py", "torch": torch.__version__,
                     "python": platform.python_version(), "seconds": round(seconds, 1),
                     "history": [{k: (round(v, 5) if isinstance(v, float) else v)
                                  for k, v in h.items()} for h in history]},
    }
    args.out.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), args.out / WEIGHTS_FILE)
    with open(args.out / METADATA_FILE, "w", encoding="utf-8") as fh:
        json.dump(meta, fh, indent=1)
        fh.write("\n")
    print(json.dumps(metrics["test"], indent=1))
    print(f"best epoch {best_epoch}, {seconds:.1f} s")


if __name__ == "__main__":
    main()
