"""Train the shipped GO-structured PBMC classifier (captum_genomics/zoo/go_pbmc.*).

Deterministic on the CPU (two threads, ``torch.use_deterministic_algorithms``,
seed 0): minibatch AdamW on the train split of ``load_pbmc68k()``
(log-normalized ``.raw.X``, all 765 genes), the term layer masked by the
vendored GO table (``captum_genomics/data/go_bp_pbmc68k.tsv``), model selection
by validation accuracy (ties: the earlier epoch), held-out metrics reported once
on the test split: accuracy, balanced accuracy (mean per-class recall) and
macro one-vs-rest AUROC of the softmax (scikit-learn ``roc_auc_score``).
Writes the weights and the JSON atomically. Takes ~10 seconds.

    python scripts/train_go_pbmc.py [--out captum_genomics/zoo]
"""

import argparse
import hashlib
import io
import json
import platform
import time
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from captum_genomics._utils.files import write_bytes_atomic
from captum_genomics.sc.go import GO_TABLE_FILE, go_gene_mask, load_go_terms
from captum_genomics.sc.pbmc import SPLIT_FRACTIONS, load_pbmc68k
from captum_genomics.zoo.go_pbmc import METADATA_FILE, TERM_LAYER, WEIGHTS_FILE, GOClassifier

SEED = 0
THREADS = 2
EPOCHS = 80
BATCH = 32
LR = 1e-3
WEIGHT_DECAY = 1e-3
ARCH = {"n_classes": 10, "units_per_term": 2, "hidden_width": 64, "dropout": 0.3}


def metrics_of(model, x, y, n_classes) -> dict:
    """Accuracy, balanced accuracy, macro one-vs-rest AUROC (softmax), rounded to 4 decimals."""
    from sklearn.metrics import roc_auc_score

    with torch.no_grad():
        logits = model(x)
    pred = logits.argmax(1)
    recalls = [float((pred[y == c] == c).float().mean()) for c in range(n_classes)
               if (y == c).any()]
    prob = torch.softmax(logits.double(), dim=1).numpy()
    present = sorted(set(y.tolist()))
    auroc = roc_auc_score(y.numpy(), prob[:, present] / prob[:, present].sum(1, keepdims=True),
                          multi_class="ovr", average="macro", labels=present)
    return {"accuracy": round(float((pred == y).float().mean()), 4),
            "balanced_accuracy": round(float(np.mean(recalls)), 4),
            "macro_auroc": round(float(auroc), 4), "n": int(len(y))}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=Path("captum_genomics/zoo"))
    args = parser.parse_args()
    torch.set_num_threads(THREADS)
    torch.use_deterministic_algorithms(True)
    torch.manual_seed(SEED)
    t0 = time.perf_counter()
    data = load_pbmc68k(random_state=SEED)
    table_bytes = (resources.files("captum_genomics") / "data" / GO_TABLE_FILE).read_bytes()
    terms = load_go_terms()
    mask = go_gene_mask(terms, data.genes)
    x = torch.from_numpy(data.X)
    y = torch.from_numpy(data.labels)
    tr, va, te = (torch.from_numpy(data.split[k]) for k in ("train", "validation", "test"))
    model = GOClassifier(mask, **ARCH)
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
        with torch.no_grad():
            val_acc = float((model(x[va]).argmax(1) == y[va]).float().mean())
        history.append({"epoch": epoch, "train_loss": round(total / len(tr), 6),
                        "val_accuracy": round(val_acc, 4)})
        if val_acc > best:
            best, best_epoch = val_acc, epoch
            best_state = {k: v.clone() for k, v in model.state_dict().items()}
    model.load_state_dict(best_state)
    model.eval()
    off_mask = model.terms.linear.weight.detach()[model.terms.linear.mask == 0]
    if bool((off_mask != 0).any()):
        raise RuntimeError("term-layer weights left the GO mask")
    seconds = time.perf_counter() - t0
    n_classes = len(data.label_names)
    metrics = {split: metrics_of(model, x[idx], y[idx], n_classes)
               for split, idx in (("train", tr), ("validation", va), ("test", te))}
    with torch.no_grad():
        pred = model(x[te]).argmax(1)
    confusion = np.zeros((n_classes, n_classes), dtype=int)
    for t, p in zip(y[te].tolist(), pred.tolist()):
        confusion[t, p] += 1
    metrics["test_confusion"] = {"rows": "true class", "columns": "predicted class",
                                 "matrix": confusion.tolist()}
    covered = int(mask.any(0).sum())
    meta = {
        "description": "GO-structured cell-type classifier on pbmc68k_reduced (scanpy): "
                       "765 genes -> 134 GO biological-process term nodes (2 tanh units each, "
                       "masked by term membership) -> 64 ReLU units -> 10 cell-type logits, "
                       "in the order of label_names",
        "data": "scanpy.datasets.pbmc68k_reduced(), obs['bulk_labels'] (Zheng et al. 2017)",
        "input": "log1p(counts / n_counts * 1e4), adata.raw.X, genes in adata.raw.var_names "
                 "order",
        "architecture": ARCH,
        "term_layer": {"module": TERM_LAYER, "output": "tanh(masked linear), (N, T*k); "
                       "units t*k..t*k+k-1 belong to terms[t]",
                       "n_terms": int(mask.shape[0]), "n_units": int(mask.shape[0])
                       * ARCH["units_per_term"], "genes_in_a_term": covered,
                       "connections": int(mask.sum()) * ARCH["units_per_term"]},
        "go_table": {"file": f"captum_genomics/data/{GO_TABLE_FILE}",
                     "sha256": hashlib.sha256(table_bytes).hexdigest(),
                     "go_source": terms.attrs.get("go_source"),
                     "annotation_source": terms.attrs.get("annotation_source"),
                     "licence": terms.attrs.get("licence")},
        "terms": list(terms.index),
        "term_names": list(terms["name"]),
        "label_names": data.label_names,
        "genes": data.genes,
        "split": {"seed": SEED, "fractions": SPLIT_FRACTIONS,
                  **{k: v.tolist() for k, v in data.split.items()}},
        "metrics": metrics,
        "training": {"seed": SEED, "threads": THREADS, "deterministic_algorithms": True,
                     "epochs": EPOCHS, "best_epoch": best_epoch, "batch_size": BATCH,
                     "optimizer": f"AdamW(lr={LR}, weight_decay={WEIGHT_DECAY})",
                     "loss": "CrossEntropyLoss",
                     "selection": "best validation accuracy (earliest on ties)",
                     "script": "scripts/train_go_pbmc.py", "torch": torch.__version__,
                     "python": platform.python_version(), "history": history},
    }
    args.out.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    torch.save(best_state, buf)
    write_bytes_atomic(args.out / WEIGHTS_FILE, buf.getvalue())
    write_bytes_atomic(args.out / METADATA_FILE,
                       (json.dumps(meta, indent=1) + "\n").encode("utf-8"))
    print(json.dumps({k: v for k, v in metrics.items() if k != "test_confusion"}, indent=1))
    print(f"best epoch {best_epoch}, {seconds:.1f} s, "
          f"weights sha256 {hashlib.sha256(buf.getvalue()).hexdigest()}")


if __name__ == "__main__":
    main()
