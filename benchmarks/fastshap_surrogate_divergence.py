"""How far the surrogate game is from the model's own game (the FastSHAP protocol).

FastSHAP's paper explains a *surrogate* game: a masked network trained to
imitate the model when genes are held out, i.e. an estimate of the model's
output given only the kept genes. The default here is the model's own baseline
game (held-out genes set to 0), the game of Captum's Shapley methods. This
script measures, on the protocol of :mod:`fastshap_protocol` (200 genes, 100
held-out cells, predicted class):

1. the two games' values on the same Shapley-kernel coalitions (64 per cell):
   mean |difference| of the explained class probability and mean total
   variation distance between the two predicted distributions; also at the
   empty coalition;
2. their Shapley values: 2 x 64 antithetic permutations of each game
   (:func:`permutation_shapley_estimates`), against the ground truth of the
   model's game (2 x 300 permutations of ShapleyValueSampling): mean L2,
   Pearson r, top-10 overlap. The model's own game at the same number of
   permutations shows how much of the difference is estimation noise.

Usage::

    python benchmarks/fastshap_surrogate_divergence.py [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402

import fastshap_protocol as P  # noqa: E402
from captum_genomics.fastshap import (  # noqa: E402
    BaselineGame,
    MaskedSurrogate,
    Players,
    SurrogateGame,
    permutation_shapley_estimates,
    sample_shapley_coalitions,
    train_surrogate,
)


def shapley_by_permutations(game, x, target, n_pairs, seed):
    g = torch.Generator().manual_seed(seed)
    acc = 0.0
    for _ in range(n_pairs):
        acc = acc + permutation_shapley_estimates(game, x, g)  # antithetic pair
    phi = acc / n_pairs
    return phi[torch.arange(x.shape[0]), :, target]


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="benchmarks/results")
    ap.add_argument("--pairs", type=int, default=64, help="antithetic permutation pairs")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    setup = P.make_setup()
    gt, half = P.ground_truth(setup)
    x, target = setup.x_explain, setup.target
    n, d = x.shape
    tr = setup.train_idx
    n_val = max(len(tr) // 7, 1)
    players = Players.singletons(d)

    t0 = time.perf_counter()
    sur = MaskedSurrogate(players, 10, random_state=0)
    hist = train_surrogate(sur, setup.model, setup.x[tr[:-n_val]], setup.x[tr[-n_val:]],
                           random_state=0, max_epochs=200)
    fit_s = time.perf_counter() - t0
    s_game = SurrogateGame(sur, link="softmax")
    m_game = BaselineGame(setup.model, players, link="softmax")

    # 1. values on the same coalitions
    k = 64
    S = sample_shapley_coalitions(n * k, d, torch.Generator().manual_seed(1)).reshape(n * k, d)
    rows = x.repeat_interleave(k, 0)
    vm, vs = m_game(rows, S), s_game(rows, S)
    tgt_rows = target.repeat_interleave(k)
    idx = torch.arange(n * k)
    values = {
        "mean_abs_diff_explained_class": float((vm[idx, tgt_rows] - vs[idx, tgt_rows]).abs().mean()),
        "mean_total_variation": float(0.5 * (vm - vs).abs().sum(1).mean()),
        "empty_coalition_model": m_game.null(x[:1])[0].tolist(),
        "empty_coalition_surrogate": s_game.null(x[:1])[0].tolist(),
        "grand_coalition_mean_abs_diff": float(
            (m_game.grand(x) - s_game.grand(x)).abs().gather(1, target[:, None]).mean()),
    }

    # 2. Shapley values of each game vs the model game's ground truth
    t1 = time.perf_counter()
    phi_s = shapley_by_permutations(s_game, x, target, args.pairs, seed=2)
    phi_m = shapley_by_permutations(m_game, x, target, args.pairs, seed=2)
    perm_s = time.perf_counter() - t1
    result = {
        "protocol": {"n_explained": n, "n_genes": d, "coalitions_per_cell": k,
                     "permutation_pairs": args.pairs,
                     "ground_truth_half_vs_half_l2": half},
        "surrogate_training": {"seconds": fit_s, "epochs_run": hist["epochs_run"],
                               "best_val_loss": hist["best_val_loss"]},
        "coalition_values": values,
        "shapley_surrogate_game_vs_model_truth": P.metrics(phi_s, gt),
        "shapley_model_game_same_permutations_vs_truth": P.metrics(phi_m, gt),
        "shapley_surrogate_vs_model_game_norms": {
            "mean_l2_norm_model_truth": float(gt.norm(dim=1).mean()),
            "mean_l2_norm_surrogate": float(phi_s.norm(dim=1).mean())},
        "permutation_seconds": perm_s,
    }
    print(json.dumps(result, indent=1))
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "fastshap_surrogate_divergence.json"), "w") as fh:
        json.dump(result, fh, indent=1)
    return result


if __name__ == "__main__":
    main()
