"""Train the shipped CTCF transformer (``captum_genomics/zoo/ctcf_transformer.pt``).

Same task, data, split and negatives as the shipped CNN
(``scripts/train_ctcf.py``): tell the 500 vendored GM12878 CTCF ChIP-seq peaks
(200 bp) from dinucleotide-shuffled copies of themselves.

Protocol (all on the CPU, seeded, deterministic algorithms on, 2 threads):

- the CNN's fixed split, read from ``ctcf_cnn.json``
  (:func:`captum_genomics.zoo.ctcf.ctcf_split`): 400 train / 50 validation /
  50 test peaks;
- every epoch draws fresh shuffled negatives for the training peaks (one per
  peak, seed ``SEED + 1 + epoch``) and reverse-complements a random half of
  the examples;
- validation and test negatives are the CNN's: ``N_EVAL_SHUFFLES`` shuffles
  per peak with seeds 10000 (validation) and 20000 (test), built by the CNN
  script's own ``shuffles``; the epoch with the best validation AUROC is kept;
- writes ``ctcf_transformer.pt`` (float32 state dict) and
  ``ctcf_transformer.json`` (architecture, split, metrics, settings) into
  ``captum_genomics/zoo/`` (or ``--out``), each atomically.

Run: ``python scripts/train_ctcf_transformer.py`` (about 80 s on two idle cores).
"""

from __future__ import annotations

import argparse
import copy
import io
import json
import os
import platform
import time
from pathlib import Path

import torch

try:  # run as ``python scripts/train_ctcf_transformer.py``: scripts/ is on sys.path
    from train_ctcf import N_EVAL_SHUFFLES, evaluate, shuffles
except ImportError:  # imported as ``scripts.train_ctcf_transformer`` from the repository root
    from scripts.train_ctcf import N_EVAL_SHUFFLES, evaluate, shuffles

from captum_genomics._utils.files import write_bytes_atomic
from captum_genomics.seq.datasets import CTCF_PEAKS_CITATION, load_ctcf_peaks
from captum_genomics.zoo.ctcf import ctcf_split
from captum_genomics.zoo.ctcf_transformer import (
    METADATA_FILE,
    WEIGHTS_FILE,
    CTCFTransformer,
)

SEED = 0
THREADS = 2
ARCHITECTURE = {"d_model": 32, "n_heads": 4, "n_layers": 2, "dim_feedforward": 64,
                "filter_width": 15, "pool": 4, "dropout": 0.1, "max_tokens": 1024}
EPOCHS = 100
BATCH_SIZE = 64
LR = 1e-3
WEIGHT_DECAY = 1e-4
EVAL_SEEDS = {"validation": 10_000, "test": 20_000, "train": 30_000}  # the CNN's (its SEED is 0)


def main(argv=None) -> dict:
    """Train, evaluate and write the weights and the JSON record; return the record."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out",
        type=Path,
        default=Path(__file__).resolve().parents[1] / "captum_genomics" / "zoo",
        help="Folder for ctcf_transformer.pt and .json (default: the package zoo).",
    )
    parser.add_argument("--epochs", type=int, default=EPOCHS)
    args = parser.parse_args(argv)

    t0 = time.perf_counter()
    torch.set_num_threads(THREADS)
    torch.manual_seed(SEED)
    torch.use_deterministic_algorithms(True)

    x = load_ctcf_peaks().one_hot
    split = ctcf_split()
    x_train, x_val, x_test = (x[torch.from_numpy(split[k])]
                              for k in ("train", "validation", "test"))
    neg_val = shuffles(x_val, N_EVAL_SHUFFLES, seed=EVAL_SEEDS["validation"])
    neg_test = shuffles(x_test, N_EVAL_SHUFFLES, seed=EVAL_SEEDS["test"])

    model = CTCFTransformer(**ARCHITECTURE)
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
            total += float(loss.detach()) * len(idx)
        val = evaluate(model, x_val, neg_val)
        history.append({"epoch": epoch, "train_loss": total / len(order), "val_auroc": val})
        print(f"epoch {epoch:3d}  loss {total / len(order):.4f}  val AUROC {val:.4f}", flush=True)
        if val > best[0]:
            best = (val, epoch, copy.deepcopy(model.state_dict()))

    model.load_state_dict(best[2])
    model.eval()
    metrics = {
        "validation_auroc": evaluate(model, x_val, neg_val),
        "test_auroc": evaluate(model, x_test, neg_test),
        "train_auroc": evaluate(model, x_train,
                                shuffles(x_train, 1, seed=EVAL_SEEDS["train"])),
        "negatives": (
            f"{N_EVAL_SHUFFLES} dinucleotide shuffles per held-out peak "
            "(captum_genomics.references.dinucleotide_shuffle), seeds "
            f"{EVAL_SEEDS['validation']} (validation) and {EVAL_SEEDS['test']} (test); "
            f"train: 1 shuffle per peak, seed {EVAL_SEEDS['train']}; as for the CNN "
            "(ctcf_cnn.json)"
        ),
    }
    state = {k: v.detach().to(torch.float32).contiguous() for k, v in best[2].items()}
    record = {
        "model": "CTCFTransformer",
        "task": "GM12878 CTCF ChIP-seq peak (1) vs dinucleotide shuffle of a peak (0); "
                "output is a logit",
        "input": "one-hot DNA (N, 4, 200), ACGT, channel-first",
        "data": CTCF_PEAKS_CITATION,
        "architecture": ARCHITECTURE,
        "n_parameters": sum(v.numel() for v in state.values()),
        "split_source": "the CNN's split (ctcf_cnn.json, captum_genomics.zoo.ctcf_split)",
        "split": {k: v.tolist() for k, v in split.items()},
        "metrics": metrics,
        "training": {
            "seed": SEED,
            "threads": THREADS,
            "deterministic_algorithms": True,
            "epochs": args.epochs,
            "best_epoch": best[1],
            "batch_size": BATCH_SIZE,
            "optimizer": f"AdamW(lr={LR}, weight_decay={WEIGHT_DECAY})",
            "loss": "BCEWithLogitsLoss",
            "augmentation": "fresh dinucleotide-shuffle negatives each epoch (seed SEED+1+epoch); "
            "random reverse complement of half the examples",
            "script": "scripts/train_ctcf_transformer.py",
            "torch": torch.__version__,
            "python": platform.python_version(),
            "seconds": round(time.perf_counter() - t0, 1),
            "history": history,
        },
    }
    args.out.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    torch.save(state, buffer)
    write_bytes_atomic(args.out / WEIGHTS_FILE, buffer.getvalue())
    write_bytes_atomic(args.out / METADATA_FILE,
                       (json.dumps(record, indent=1) + "\n").encode("utf-8"))
    umask = os.umask(0)
    os.umask(umask)
    for name in (WEIGHTS_FILE, METADATA_FILE):  # the temporary files were private (0600)
        os.chmod(args.out / name, 0o666 & ~umask)
    print(
        f"best epoch {best[1]}: validation AUROC {metrics['validation_auroc']:.4f}, "
        f"test AUROC {metrics['test_auroc']:.4f}, train AUROC {metrics['train_auroc']:.4f}; "
        f"{record['training']['seconds']} s; wrote {args.out / WEIGHTS_FILE}"
    )
    return record


if __name__ == "__main__":
    main()
