"""Train the shipped PBMC cell-type classifier (captum_genomics/zoo/pbmc_classifier.*).

Deterministic on the CPU (one thread, seed 0): minibatch AdamW
on the train split of ``load_pbmc68k()``, model selection by validation
accuracy, test accuracy reported once. Takes a few seconds.

    python scripts/train_pbmc.py [--out captum_genomics/zoo]
"""

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

from captum_genomics.sc.pbmc import SPLIT_FRACTIONS, load_pbmc68k
from captum_genomics.zoo.pbmc import METADATA_FILE, WEIGHTS_FILE, PBMCClassifier

SEED = 0
EPOCHS = 60
BATCH = 32
LR = 1e-3
WEIGHT_DECAY = 1e-3
ARCH = {"n_genes": 765, "n_classes": 10, "hidden_width": 64, "dropout": 0.3}


def accuracy(model, x, y):
    with torch.no_grad():
        return float((model(x).argmax(1) == y).float().mean())


def balanced_accuracy(model, x, y, n_classes):
    with torch.no_grad():
        pred = model(x).argmax(1)
    recalls = [float((pred[y == c] == c).float().mean()) for c in range(n_classes) if (y == c).any()]
    return float(np.mean(recalls))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=Path("captum_genomics/zoo"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(SEED)
    t0 = time.perf_counter()
    data = load_pbmc68k(random_state=SEED)
    x = torch.from_numpy(data.X)
    y = torch.from_numpy(data.labels)
    tr, va, te = (torch.from_numpy(data.split[k]) for k in ("train", "validation", "test"))
    model = PBMCClassifier(**ARCH)
    opt = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)
    loss_fn = torch.nn.CrossEntropyLoss()
    g = torch.Generator().manual_seed(SEED)
    best, best_state, best_epoch, history = -1.0, None, -1, []
    for epoch in range(EPOCHS):
        model.train()
        perm = tr[torch.randperm(len(tr), generator=g)]
        total = 0.0
        for s in range(0, len(perm), BATCH):
            idx = perm[s:s + BATCH]
            loss = loss_fn(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        model.eval()
        val_acc = accuracy(model, x[va], y[va])
        history.append({"epoch": epoch, "train_loss": total / len(tr), "val_accuracy": val_acc})
        if val_acc > best:
            best, best_epoch = val_acc, epoch
            best_state = {k: v.clone() for k, v in model.state_dict().items()}
    model.load_state_dict(best_state)
    model.eval()
    seconds = time.perf_counter() - t0
    n_classes = len(data.label_names)
    metrics = {
        split: {"accuracy": round(accuracy(model, x[idx], y[idx]), 4),
                "balanced_accuracy": round(balanced_accuracy(model, x[idx], y[idx], n_classes), 4),
                "n": int(len(idx))}
        for split, idx in (("train", tr), ("validation", va), ("test", te))
    }
    with torch.no_grad():
        pred = model(x[te]).argmax(1)
    confusion = np.zeros((n_classes, n_classes), dtype=int)
    for t, p in zip(y[te].tolist(), pred.tolist()):
        confusion[t, p] += 1
    metrics["test_confusion"] = {"rows": "true class", "columns": "predicted class",
                                 "matrix": confusion.tolist()}
    meta = {
        "description": "MLP cell-type classifier on pbmc68k_reduced (scanpy), all 765 genes, "
                       "log-normalized (adata.raw.X); logits in the order of label_names",
        "data": "scanpy.datasets.pbmc68k_reduced(), obs['bulk_labels'] (Zheng et al. 2017)",
        "architecture": ARCH,
        "input": "log1p(counts / n_counts * 1e4), adata.raw.X, genes in adata.raw.var_names order",
        "label_names": data.label_names,
        "genes": data.genes,
        "split": {"seed": SEED, "fractions": SPLIT_FRACTIONS,
                  **{k: v.tolist() for k, v in data.split.items()}},
        "metrics": metrics,
        "training": {"seed": SEED, "epochs": EPOCHS, "best_epoch": best_epoch,
                     "batch_size": BATCH,
                     "optimizer": f"AdamW(lr={LR}, weight_decay={WEIGHT_DECAY})",
                     "loss": "CrossEntropyLoss", "selection": "best validation accuracy",
                     "script": "scripts/train_pbmc.py", "torch": torch.__version__,
                     "python": platform.python_version(), "seconds": round(seconds, 1),
                     "history": history},
    }
    args.out.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), args.out / WEIGHTS_FILE)
    with open(args.out / METADATA_FILE, "w", encoding="utf-8") as fh:
        json.dump(meta, fh, indent=1)
        fh.write("\n")
    print(json.dumps({k: v for k, v in metrics.items() if k != "test_confusion"}, indent=1))
    print(f"best epoch {best_epoch}, {seconds:.1f} s")


if __name__ == "__main__":
    main()
