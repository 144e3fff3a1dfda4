"""FastSHAP against exact Shapley values on real single-cell data (d = 12 gene sets).

PBMC 68k (reduced, ships with scanpy): the 200 most variable genes of
``.raw.X``, grouped by variance rank into 12 gene sets of consecutive ranks
(deterministic), each set one player, so the exact Shapley values of every
cell are an enumeration of 2^12 = 4096 coalitions. A small seeded MLP
classifies ``bulk_labels``; the game holds out a gene set by setting its genes
to 0 and explains the predicted class's probability.

Checks: FastSHAP (briefly trained) is close to the exact values (mean L2,
Pearson r and top-3 overlap are printed; run with ``-s`` to see them);
efficiency holds to float32 rounding; and Captum's ``ShapleyValueSampling``
and ``KernelShap`` on the same grouped game converge to the same exact values
(a sanity check of the oracle and of the game's definition).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from captum_genomics.fastshap.exact import exact_shapley
from captum_genomics.fastshap.games import BaselineGame
from captum_genomics.fastshap.players import Players
from captum_genomics.methods.fast_shap import FastSHAP

pytestmark = pytest.mark.builtin  # real cells and a built-in classifier

N_GENES, N_SETS, N_CELLS = 200, 12, 40


@pytest.fixture(scope="module")
def pbmc():
    sc = pytest.importorskip("scanpy", reason="scanpy is needed for the PBMC 68k data set")
    try:
        adata = sc.datasets.pbmc68k_reduced()
    except Exception as err:  # noqa: BLE001 - data missing from this scanpy install
        pytest.skip(f"scanpy.datasets.pbmc68k_reduced() failed: {err}")
    raw = adata.raw.X
    raw = (raw.toarray() if hasattr(raw, "toarray") else np.asarray(raw)).astype(np.float64)
    var = raw.var(axis=0)
    order = np.lexsort((np.arange(var.size), -var))[:N_GENES]  # variance rank, ties by index
    x = torch.tensor(raw[:, order], dtype=torch.float32)
    groups = [list(map(int, g)) for g in np.array_split(np.arange(N_GENES), N_SETS)]
    y = torch.tensor(adata.obs["bulk_labels"].astype("category").cat.codes.to_numpy()).long()

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(N_GENES, 64), nn.ReLU(), nn.Linear(64, int(y.max()) + 1))
        opt = torch.optim.Adam(model.parameters(), lr=3e-3, weight_decay=1e-3)
        g = torch.Generator().manual_seed(0)
        for _ in range(30):
            perm = torch.randperm(x.shape[0], generator=g)
            for s in range(0, x.shape[0], 64):
                i = perm[s:s + 64]
                loss = nn.functional.cross_entropy(model(x[i]), y[i])
                opt.zero_grad()
                loss.backward()
                opt.step()
    model.eval()
    players = Players.from_groups(groups, N_GENES)
    game = BaselineGame(model, players, link="softmax")
    cells = x[torch.arange(0, x.shape[0], x.shape[0] // N_CELLS)[:N_CELLS]]
    with torch.no_grad():
        target = model(cells).argmax(1)
    exact = exact_shapley(game, cells)  # (N, 12, T)
    exact_t = exact[torch.arange(N_CELLS), :, target]  # (N, 12)
    return {"x": x, "model": model, "players": players, "groups": groups, "game": game,
            "cells": cells, "target": target, "exact": exact, "exact_t": exact_t}


def _metrics(est: torch.Tensor, ref: torch.Tensor, k: int = 3) -> dict:
    est, ref = est.double(), ref.double()
    ec, rc = est - est.mean(1, keepdim=True), ref - ref.mean(1, keepdim=True)
    r = (ec * rc).sum(1) / (ec.norm(dim=1) * rc.norm(dim=1)).clamp_min(1e-30)
    te, tr = est.abs().topk(k, 1).indices, ref.abs().topk(k, 1).indices
    overlap = np.mean([len(set(a.tolist()) & set(b.tolist())) / k for a, b in zip(te, tr)])
    return {"mean_l2": float((est - ref).norm(dim=1).mean()), "pearson": float(r.mean()),
            f"top{k}_overlap": float(overlap), "ref_norm": float(ref.norm(dim=1).mean())}


def _feature_mask(groups) -> torch.Tensor:
    mask = torch.empty(N_GENES, dtype=torch.long)
    for j, g in enumerate(groups):
        mask[g] = j
    return mask.unsqueeze(0)


def _first_features(groups) -> list[int]:
    return [g[0] for g in groups]


def test_exact_oracle_is_efficient(pbmc):
    game, cells = pbmc["game"], pbmc["cells"]
    gap = pbmc["exact"].sum(1) - (game.grand(cells) - game.null(cells)).double()
    assert gap.abs().max() < 1e-5


def test_fastshap_close_to_exact_and_efficient(pbmc):
    torch.set_num_threads(1)
    x, players = pbmc["x"], pbmc["players"]
    fs = FastSHAP.fit(pbmc["model"], x, pbmc["cells"], players=players, link="softmax",
                      random_state=0, explainer_kwargs={"hidden_width": 128},
                      train_kwargs={"n_samples": 32, "batch_size": 32, "lr": 2e-3,
                                    "max_epochs": 80, "early_stopping_patience": 80})
    phi, delta = fs.attribute(pbmc["cells"], target=pbmc["target"], return_player_values=True,
                              return_convergence_delta=True)
    m = _metrics(phi, pbmc["exact_t"])
    print(f"\nFastSHAP vs exact (d=12, {N_CELLS} cells): {m}")
    assert delta.abs().max() <= 1e-5
    # efficiency per player set, against the exact values' own sum
    assert torch.allclose(phi.double().sum(1), pbmc["exact_t"].double().sum(1), atol=1e-5)
    assert m["pearson"] >= 0.95
    assert m["mean_l2"] <= 0.25 * m["ref_norm"]  # measured 0.16 (0.087 / 0.538)
    assert m["top3_overlap"] >= 0.6


def test_captum_estimators_converge_to_exact(pbmc):
    from captum.attr import KernelShap, ShapleyValueSampling

    torch.set_num_threads(1)
    model, groups, cells, target = pbmc["model"], pbmc["groups"], pbmc["cells"], pbmc["target"]
    probs = nn.Sequential(model, nn.Softmax(dim=-1)).eval()
    mask, first = _feature_mask(groups), _first_features(groups)
    exact = pbmc["exact_t"]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        with torch.no_grad():
            svs = ShapleyValueSampling(probs).attribute(
                cells, baselines=0.0, target=target, feature_mask=mask, n_samples=300,
                perturbations_per_eval=N_SETS + 1)[:, first]
            ks = torch.cat([KernelShap(probs).attribute(
                cells[i:i + 1], baselines=0.0, target=int(target[i]), feature_mask=mask,
                n_samples=3000, perturbations_per_eval=1000)[:, first] for i in range(8)])
    m_svs, m_ks = _metrics(svs, exact), _metrics(ks, exact[:8])
    print(f"\nCaptum vs exact: ShapleyValueSampling(300) {m_svs}\nKernelShap(3000) {m_ks}")
    assert m_svs["mean_l2"] <= 0.05 * m_svs["ref_norm"] and m_svs["pearson"] >= 0.99
    assert m_ks["mean_l2"] <= 0.15 * m_ks["ref_norm"] and m_ks["pearson"] >= 0.95
