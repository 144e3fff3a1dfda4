"""Train the shipped CTCF CNN (``captum_genomics/zoo/ctcf_cnn.pt``).

Task: tell the 500 vendored GM12878 CTCF ChIP-seq peaks (200 bp) from
dinucleotide-shuffled copies of themselves. Shuffles keep each sequence's
dinucleotide composition, so the model has to learn longer sequence features,
chiefly the CTCF motif.

Protocol (all on the CPU, seeded, deterministic algorithms on):

- fixed split of the peak indices by ``numpy.random.default_rng(SEED)``:
  400 train / 50 validation / 50 test;
- every epoch draws fresh shuffled negatives for the training peaks (one per
  peak, seed ``SEED + epoch``), and reverse-complements a random half of the
  batch;
- validation and test negatives are fixed: ``N_EVAL_SHUFFLES`` shuffles per
  peak with their own seeds; the epoch with the best validation AUROC is kept;
- writes ``ctcf_cnn.pt`` (state dict) and ``ctcf_cnn.json`` (architecture,
  split, metrics, settings) into ``captum_genomics/zoo/`` (or ``--out``).

Run: ``python scripts/train_ctcf.py`` (about a minute on two cores).
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

from captum_genomics.seq.datasets import CTCF_PEAKS_CITATION, load_ctcf_peaks
from captum_genomics.references import dinucleotide_shuffle
from captum_genomics.zoo.ctcf import METADATA_FILE, WEIGHTS_FILE, CTCFNet, auroc

SEED = 0
N_TRAIN, N_VAL, N_TEST = 400, 50, 50
N_EVAL_SHUFFLES = 10
ARCHITECTURE = dict(n_filters=32, filter_width=15, hidden_width=5, pool=4, dropout=0.1)
EPOCHS = 100
BATCH_SIZE = 64
LR = 3e-3
WEIGHT_DECAY = 1e-4


def shuffles(x: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    """``n`` dinucleotide shuffles per sequence, flattened to ``(N * n, 4, L)``."""
    refs = dinucleotide_shuffle(x, n_references=n, random_state=seed)
    return refs.reshape(-1, *x.shape[1:]).to(x.dtype)


@torch.no_grad()
def evaluate(model: CTCFNet, pos: torch.Tensor, neg: torch.Tensor) -> float:
    """AUROC of the model's logits: peaks (label 1) vs shuffles (label 0)."""
    model.eval()
    scores = torch.cat([model(pos), model(neg)])[:, 0].numpy()
    labels = np.r_[np.ones(len(pos)), np.zeros(len(neg))]
    return auroc(labels, scores)


def main(argv=None) -> dict:
    """Train, evaluate and write the weights and the JSON record; return the record."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out",
        type=Path,
        default=Path(__file__).resolve().parents[1] / "captum_genomics" / "zoo",
        help="Folder for ctcf_cnn.pt and ctcf_cnn.json (default: the package zoo).",
    )
    parser.add_argument("--epochs", type=int, default=EPOCHS)
    args = parser.parse_args(argv)

    t0 = time.perf_counter()
    torch.manual_seed(SEED)
    torch.use_deterministic_algorithms(True)

    x = load_ctcf_peaks().one_hot
    perm = np.random.default_rng(SEED).permutation(len(x))
    split = {
        "train": np.sort(perm[:N_TRAIN]),
        "validation": np.sort(perm[N_TRAIN : N_TRAIN + N_VAL]),
        "test": np.sort(perm[N_TRAIN + N_VAL : N_TRAIN + N_VAL + N_TEST]),
    }
    x_train, x_val, x_test = (x[torch.from_numpy(split[k])] for k in split)
    neg_val = shuffles(x_val, N_EVAL_SHUFFLES, seed=10_000 + SEED)
    neg_test = shuffles(x_test, N_EVAL_SHUFFLES, seed=20_000 + SEED)

    model = CTCFNet(**ARCHITECTURE)
    optimizer = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    generator = torch.Generator().manual_seed(SEED)

    best = (-1.0, -1, None)
    history = []
    for epoch in range(args.epochs):
        model.train()
        neg = shuffles(x_train, 1, seed=SEED + 1 + epoch)
        inputs = torch.cat([x_train, neg])
        labels = torch.cat([torch.ones(len(x_train)), torch.zeros(len(neg))])[:, None]
        order = torch.randperm(len(inputs), generator=generator)
        flip = torch.rand(len(inputs), generator=generator) < 0.5
        inputs = torch.where(flip[:, None, None], inputs.flip(1, 2), inputs)
        total = 0.0
        for start in range(0, len(order), BATCH_SIZE):
            idx = order[start : start + BATCH_SIZE]
            optimizer.zero_grad()
            loss = loss_fn(model(inputs[idx]), labels[idx])
            loss.backward()
            optimizer.step()
            total += float(loss) * len(idx)
        val = evaluate(model, x_val, neg_val)
        history.append({"epoch": epoch, "train_loss": total / len(order), "val_auroc": val})
        print(f"epoch {epoch:3d}  loss {total / len(order):.4f}  val AUROC {val:.4f}")
        if val > best[0]:
            best = (val, epoch, copy.deepcopy(model.state_dict()))

    model.load_state_dict(best[2])
    model.eval()
    metrics = {
        "validation_auroc": evaluate(model, x_val, neg_val),
        "test_auroc": evaluate(model, x_test, neg_test),
        "train_auroc": evaluate(model, x_train, shuffles(x_train, 1, seed=30_000 + SEED)),
        "negatives": (
            f"{N_EVAL_SHUFFLES} dinucleotide shuffles per held-out peak "
            "(captum_genomics.references.dinucleotide_shuffle), seeds "
            f"{10_000 + SEED} (validation) and {20_000 + SEED} (test)"
        ),
    }
    record = {
        "model": "CTCFNet",
        "task": "GM12878 CTCF ChIP-seq peak (1) vs dinucleotide shuffle of a peak (0); output is a logit",
        "input": "one-hot DNA (N, 4, 200), ACGT, channel-first",
        "data": CTCF_PEAKS_CITATION,
        "architecture": ARCHITECTURE,
        "split": {k: v.tolist() for k, v in split.items()},
        "metrics": metrics,
        "training": {
            "seed": SEED,
            "epochs": args.epochs,
            "best_epoch": best[1],
            "batch_size": BATCH_SIZE,
            "optimizer": f"AdamW(lr={LR}, weight_decay={WEIGHT_DECAY})",
            "loss": "BCEWithLogitsLoss",
            "augmentation": "fresh dinucleotide-shuffle negatives each epoch (seed SEED+1+epoch); "
            "random reverse complement of half the examples",
            "script": "scripts/train_ctcf.py",
            "torch": torch.__version__,
            "python": platform.python_version(),
            "seconds": round(time.perf_counter() - t0, 1),
            "history": history,
        },
    }
    args.out.mkdir(parents=True, exist_ok=True)
    torch.save(best[2], args.out / WEIGHTS_FILE)
    with open(args.out / METADATA_FILE, "w", encoding="utf-8") as handle:
        json.dump(record, handle, indent=1)
        handle.write("\n")
    print(
        f"best epoch {best[1]}: validation AUROC {metrics['validation_auroc']:.4f}, "
        f"test AUROC {metrics['test_auroc']:.4f}; wrote {args.out / WEIGHTS_FILE}"
    )
    return record


if __name__ == "__main__":
    main()
