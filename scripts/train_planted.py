"""Train a planted-motif CNN (``captum_genomics/zoo/planted_<activation>.pt``).

Task (Koo & Ploenzke 2021, Nat Mach Intell 3:258-266, synthetic task): 200 bp
uniform random DNA; positives carry 3-5 sampled instances of the core motifs
SP1, GABPA, CEBPB, MAX, YY1, negatives 3-5 of the distractors ARID3A, FOSL1,
MAFK, MEF2A, NFYB, SRF, STAT1 (JASPAR 2024, ``captum_genomics/data``).

Protocol (CPU, one thread by default, seeded; see
:func:`captum_genomics.zoo.planted.train_planted_model`): 20,000 train /
2,000 validation / 2,000 test sequences, each split from its own seed spawned
from ``--data-random-state``; Adam (lr 2e-3) + BCEWithLogits, batches of 100; the
epoch with the best validation AUROC is kept (patience 3, at most 15 epochs).
Writes ``planted_<activation>.pt`` (state dict) and ``.json`` (architecture,
data arguments of every split, settings, metrics) atomically into ``--out``.

Run: ``python scripts/train_planted.py --activation relu`` (1-2 minutes).
"""

from __future__ import annotations

import argparse
import io
import json
import platform
from pathlib import Path

import torch

from captum_genomics._utils.files import write_bytes_atomic
from captum_genomics.seq.planted import CORE_IDS, DISTRACTOR_IDS, PLANTED_CITATION
from captum_genomics.zoo.planted import ACTIVATIONS, train_planted_model


def main(argv=None) -> dict:
    """Train, evaluate and write the weights and the JSON record; return the record."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--activation", choices=ACTIVATIONS, default="relu")
    parser.add_argument("--random-state", type=int, default=0)
    parser.add_argument("--data-random-state", type=int, default=0)
    parser.add_argument(
        "--out",
        type=Path,
        default=Path(__file__).resolve().parents[1] / "captum_genomics" / "zoo",
        help="Folder for planted_<activation>.pt/.json (default: the package zoo).",
    )
    parser.add_argument("--n-train", type=int, default=20000)
    parser.add_argument("--n-valid", type=int, default=2000)
    parser.add_argument("--n-test", type=int, default=2000)
    parser.add_argument("--max-epochs", type=int, default=15)
    parser.add_argument("--patience", type=int, default=3)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--n-threads", type=int, default=1)
    args = parser.parse_args(argv)

    model, metrics = train_planted_model(
        args.activation, args.random_state, data_random_state=args.data_random_state,
        n_train=args.n_train, n_valid=args.n_valid, n_test=args.n_test,
        max_epochs=args.max_epochs, patience=args.patience, lr=args.lr,
        n_threads=args.n_threads,
    )
    record = {
        "model": "PlantedMotifCNN",
        "task": "planted core motifs (1) vs planted distractor motifs (0); output is a logit",
        "input": "one-hot DNA (N, 4, 200), ACGT, channel-first",
        "paper": "Koo PK, Ploenzke M. Improving representations of genomic sequence motifs in "
                 "convolutional networks with exponential activations. Nat Mach Intell "
                 "3:258-266 (2021).",
        "motifs": {"core": list(CORE_IDS), "distractors": list(DISTRACTOR_IDS),
                   "source": PLANTED_CITATION},
        "architecture": metrics["architecture"],
        "data": metrics["data"],
        "training": {**metrics["training"], "best_epoch": metrics["best_epoch"],
                     "epochs_run": metrics["epochs_run"],
                     "seconds": round(metrics["seconds"], 1)},
        "metrics": {"validation_auroc": metrics["validation_auroc"],
                    "test_auroc": metrics["test_auroc"],
                    "validation_auroc_per_epoch": metrics["history"]},
        "versions": {"torch": torch.__version__, "python": platform.python_version()},
    }
    args.out.mkdir(parents=True, exist_ok=True)
    stem = f"planted_{args.activation}"
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    write_bytes_atomic(args.out / f"{stem}.pt", buffer.getvalue())
    text = json.dumps(record, indent=1) + "\n"
    write_bytes_atomic(args.out / f"{stem}.json", text.encode("utf-8"))
    print(f"{stem}: test AUROC {metrics['test_auroc']:.4f} "
          f"(validation {metrics['validation_auroc']:.4f}, best epoch {metrics['best_epoch']}"
          f"/{metrics['epochs_run']}, {metrics['seconds']:.0f} s)")
    return record


if __name__ == "__main__":
    main()
