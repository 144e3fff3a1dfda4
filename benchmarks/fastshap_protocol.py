"""Shared set-up of the FastSHAP study: PBMC 68k (reduced), 200 HVGs, an MLP classifier.

Protocol (the one a reference FastSHAP implementation was measured with):

* ``scanpy.datasets.pbmc68k_reduced()`` (ships with scanpy; 700 cells), the
  200 genes of ``.raw.X`` (log-normalized) with the largest variance over
  cells (ties broken by gene index, so the choice is deterministic);
* a seeded stratified 70/30 split on ``obs["bulk_labels"]`` (10 types) and an
  MLP classifier 200 -> 128 -> 10 trained on the 70 % (< 1 min on one core);
* the baseline game: held-out genes set to 0, the predicted class's softmax
  probability explained, each gene a player;
* 100 held-out (test) cells explained; ground truth from Captum's
  ``ShapleyValueSampling`` with two independent runs of 300 permutations
  (Captum's ``n_samples`` counts permutations; each costs ``d + 1 = 201``
  model evaluations), averaged. The distance between the two halves measures
  the ground truth's own noise (the average's error is about half of it).

The trained classifier and the ground truth are cached under
``~/.cache/captum_genomics/fastshap_protocol/`` (override with the
``CAPTUM_GENOMICS_CACHE`` environment variable); nothing is written into the
repository.
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

N_GENES = 200
N_EXPLAIN = 100
SEED = 0
GT_PERMUTATIONS = 300
"""Permutations per ground-truth half (two halves, different seeds)."""


def cache_dir() -> Path:
    root = os.environ.get("CAPTUM_GENOMICS_CACHE",
                          os.path.join(os.path.expanduser("~"), ".cache", "captum_genomics"))
    path = Path(root) / "fastshap_protocol"
    path.mkdir(parents=True, exist_ok=True)
    return path


class Classifier(nn.Module):
    """MLP 200 -> 128 -> 10 on log-normalized expression; returns logits."""

    def __init__(self, n_in: int = N_GENES, n_out: int = 10, hidden: int = 128) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(n_in, hidden), nn.ReLU(), nn.Dropout(0.3),
                                 nn.Linear(hidden, n_out))

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class Probabilities(nn.Module):
    """``softmax(model(x))``: the forward function handed to Captum's estimators."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor) -> Tensor:
        return torch.softmax(self.model(x), dim=-1)


@dataclass
class Setup:
    x: Tensor                # (700, 200) float32, every cell
    y: Tensor                # (700,) int64 cell-type index
    genes: list[str]
    classes: list[str]
    train_idx: Tensor        # indices of training cells
    test_idx: Tensor         # indices of held-out cells
    explain_idx: Tensor      # the first N_EXPLAIN held-out cells
    model: Classifier        # eval mode, logits
    probs: Probabilities     # eval mode, softmax
    test_accuracy: float
    target: Tensor           # (N_EXPLAIN,) predicted class of each explained cell

    @property
    def x_explain(self) -> Tensor:
        return self.x[self.explain_idx]


def load_data() -> tuple[Tensor, Tensor, list[str], list[str]]:
    """The 200 most variable genes of ``.raw.X`` and the ``bulk_labels`` codes."""
    import scanpy as sc

    adata = sc.datasets.pbmc68k_reduced()
    raw = adata.raw.X
    raw = raw.toarray() if hasattr(raw, "toarray") else np.asarray(raw)
    raw = raw.astype(np.float64)
    var = raw.var(axis=0)
    order = np.lexsort((np.arange(var.size), -var))  # variance descending, then index
    keep = np.sort(order[:N_GENES])
    x = torch.tensor(raw[:, keep], dtype=torch.float32)
    labels = adata.obs["bulk_labels"].astype("category")
    y = torch.tensor(labels.cat.codes.to_numpy(), dtype=torch.long)
    genes = [str(g) for g in adata.raw.var_names[keep]]
    return x, y, genes, [str(c) for c in labels.cat.categories]


def split(y: Tensor, seed: int = SEED) -> tuple[Tensor, Tensor]:
    from sklearn.model_selection import train_test_split

    idx = np.arange(y.shape[0])
    tr, te = train_test_split(idx, test_size=0.3, random_state=seed, stratify=y.numpy())
    return torch.tensor(np.sort(tr)), torch.tensor(np.sort(te))


def train_classifier(x: Tensor, y: Tensor, seed: int = SEED, epochs: int = 150) -> Classifier:
    """Adam with weight decay, full-batch-ish minibatches of 64; seeded."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Classifier(x.shape[1], int(y.max()) + 1)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-3)
        g = torch.Generator().manual_seed(seed)
        model.train()
        for _ in range(epochs):
            perm = torch.randperm(x.shape[0], generator=g)
            for s in range(0, x.shape[0], 64):
                i = perm[s:s + 64]
                loss = nn.functional.cross_entropy(model(x[i]), y[i])
                opt.zero_grad()
                loss.backward()
                opt.step()
    return model.eval()


def _key(*parts) -> str:
    return hashlib.sha1(repr(parts).encode()).hexdigest()[:12]


def make_setup(seed: int = SEED, verbose: bool = False) -> Setup:
    """Data, split and the (cached) classifier."""
    x, y, genes, classes = load_data()
    tr, te = split(y, seed)
    path = cache_dir() / f"classifier_{_key(seed, N_GENES, genes[:5], x.sum().item())}.pt"
    if path.exists():
        model = Classifier(x.shape[1], len(classes))
        model.load_state_dict(torch.load(path, weights_only=True))
        model.eval()
    else:
        t0 = time.perf_counter()
        model = train_classifier(x[tr], y[tr], seed)
        torch.save(model.state_dict(), path)
        if verbose:
            print(f"classifier trained in {time.perf_counter() - t0:.1f} s")
    with torch.no_grad():
        acc = float((model(x[te]).argmax(1) == y[te]).float().mean())
    probs = Probabilities(model).eval()
    explain = te[:N_EXPLAIN]
    with torch.no_grad():
        target = model(x[explain]).argmax(1)
    return Setup(x, y, genes, classes, tr, te, explain, model, probs, acc, target)


def svs(setup: Setup, x: Tensor, target: Tensor, n_permutations: int, seed: int,
        perturbations_per_eval: int = N_GENES + 1) -> Tensor:
    """Captum ``ShapleyValueSampling`` with each gene a player, zero baselines: ``(N, 200)``."""
    from captum.attr import ShapleyValueSampling

    mask = torch.arange(x.shape[1]).unsqueeze(0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        with torch.no_grad():
            return ShapleyValueSampling(setup.probs).attribute(
                x, baselines=0.0, target=target, feature_mask=mask, n_samples=n_permutations,
                perturbations_per_eval=perturbations_per_eval)


def kernel_shap(setup: Setup, x: Tensor, target: Tensor, n_samples: int, seed: int,
                perturbations_per_eval: int = 256) -> Tensor:
    """Captum ``KernelShap``, each gene a player, zero baselines, one cell at a time."""
    from captum.attr import KernelShap

    ks = KernelShap(setup.probs)
    mask = torch.arange(x.shape[1]).unsqueeze(0)
    out = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for i in range(x.shape[0]):
            out.append(ks.attribute(x[i:i + 1], baselines=0.0, target=int(target[i]),
                                    feature_mask=mask, n_samples=n_samples,
                                    perturbations_per_eval=perturbations_per_eval))
    return torch.cat(out, 0)


def ground_truth(setup: Setup, verbose: bool = False) -> tuple[Tensor, float]:
    """Average of two ``ShapleyValueSampling`` runs of ``GT_PERMUTATIONS`` each, cached.

    Returns the ``(N_EXPLAIN, 200)`` values and the mean L2 between the two halves.
    """
    x, t = setup.x_explain, setup.target
    weights = setup.model.net[0].weight.detach()[0, :5]
    key = _key(GT_PERMUTATIONS, [round(float(w), 6) for w in weights], setup.explain_idx.tolist())
    path = cache_dir() / f"ground_truth_{key}.pt"
    if path.exists():
        blob = torch.load(path, weights_only=True)
        return blob["phi"], float(blob["half_l2"])
    t0 = time.perf_counter()
    a = svs(setup, x, t, GT_PERMUTATIONS, seed=1001)
    b = svs(setup, x, t, GT_PERMUTATIONS, seed=2002)
    half = float((a - b).norm(dim=1).mean())
    phi = (a + b) / 2
    torch.save({"phi": phi, "half_l2": half}, path)
    if verbose:
        print(f"ground truth: {time.perf_counter() - t0:.0f} s, half-vs-half L2 {half:.4f}")
    return phi, half


def metrics(est: Tensor, ref: Tensor, k: int = 10) -> dict[str, float]:
    """Mean L2 distance, mean Pearson r and mean top-``k`` overlap (by |value|) per cell."""
    est, ref = est.double(), ref.double()
    l2 = (est - ref).norm(dim=1)
    ec, rc = est - est.mean(1, keepdim=True), ref - ref.mean(1, keepdim=True)
    r = (ec * rc).sum(1) / (ec.norm(dim=1) * rc.norm(dim=1)).clamp_min(1e-30)
    te = est.abs().topk(k, dim=1).indices
    tr = ref.abs().topk(k, dim=1).indices
    overlap = [len(set(a.tolist()) & set(b.tolist())) / k for a, b in zip(te, tr)]
    return {"mean_l2": float(l2.mean()), "pearson": float(r.mean()),
            f"top{k}_overlap": float(np.mean(overlap))}
