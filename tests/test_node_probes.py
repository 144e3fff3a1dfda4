"""Held-out node importances (``LayerNodeProbe``, ``stats.probes``): oracles, planted signal,
calibration on the null, Captum's layer methods per node, perturbations, bad inputs.

The oracles are plain scikit-learn loops with the documented seeds
(:data:`captum_genomics.stats.probes.SEED_STREAMS`). The planted model is a
GO-structured classifier: a masked linear layer with one group of units per
"term", each reading only its term's genes, trained on other cells than the
ones probed.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

pytest.importorskip("sklearn")

from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.metrics import roc_auc_score  # noqa: E402
from sklearn.model_selection import StratifiedKFold  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from captum_genomics import LayerNodeProbe  # noqa: E402
from captum_genomics.stats import probes as P  # noqa: E402
from captum_genomics.stats.probe_results import probe_nodes  # noqa: E402
from captum_genomics.testing.checks.model_state import (  # noqa: E402
    compare_states,
    snapshot_state,
)

pytestmark = pytest.mark.usefixtures("one_thread")  # many tiny batched solves: 1 thread is faster

N_CELLS, N_GENES, N_TERMS, N_CLASSES, TERM_SIZE = 300, 60, 6, 3, 10
TERM_GENES = [list(range(TERM_SIZE * t, TERM_SIZE * (t + 1))) for t in range(N_TERMS)]


# ----------------------------------------------------------------------------- model and data
class MaskedLinear(nn.Linear):
    """A sparse, GO-structured linear layer: ``weight * mask`` (mask: term units x genes)."""

    def __init__(self, mask: torch.Tensor):
        super().__init__(mask.shape[1], mask.shape[0])
        self.register_buffer("mask", mask)

    def forward(self, x):
        return nn.functional.linear(x, self.weight * self.mask, self.bias)


class GOModel(nn.Module):
    """genes -> term units (masked) -> tanh -> class logits."""

    def __init__(self, widths):
        super().__init__()
        rows = []
        for genes, w in zip(TERM_GENES, widths):
            m = torch.zeros(w, N_GENES)
            m[:, genes] = 1.0
            rows.append(m)
        self.terms = MaskedLinear(torch.cat(rows))
        self.act = nn.Tanh()
        self.head = nn.Linear(sum(widths), N_CLASSES)

    def forward(self, x):
        return self.head(self.act(self.terms(x)))


def _cells(seed: int, n: int, shift: float = 0.8):
    """Expression-like cells; class k has the genes of term k raised by ``shift``."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % N_CLASSES
    x = (torch.randn(n, N_GENES, generator=g, dtype=torch.float64) * 0.5 + 1).clamp_min(0)
    for k in range(N_CLASSES):
        rows = (y == k).nonzero()[:, 0]
        x[rows[:, None], torch.tensor(TERM_GENES[k])[None]] += shift
    return x, y


@pytest.fixture(scope="module")
def planted():
    widths = (3, 2, 4, 3, 5, 3)
    x_train, y_train = _cells(1000, N_CELLS)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = GOModel(widths).double()
        opt = torch.optim.Adam(model.parameters(), lr=0.05)
        for _ in range(150):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x_train), y_train).backward()
            opt.step()
    model.eval()
    for p in model.parameters():
        p.grad = None
    x, y = _cells(0, N_CELLS)  # probed cells: not the training cells
    off = np.cumsum([0, *widths])
    nodes = {f"term{t}": slice(int(off[t]), int(off[t + 1])) for t in range(N_TERMS)}
    explainer = LayerNodeProbe(model, "terms")
    result = explainer.attribute(x, y, nodes, n_permutations=49, n_bootstrap=200, n_random=5,
                                 untrained="reinit", random_state=0)
    return {"model": model, "x": x, "y": y, "nodes": nodes, "explainer": explainer,
            "result": result, "gene_names": [f"g{i}" for i in range(N_GENES)]}


def _small_model():
    torch.manual_seed(3)
    return nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 3)).double().eval()


# ----------------------------------------------------------------------------- oracles
def _sk_probe(C=1.0):
    return make_pipeline(StandardScaler(),
                         LogisticRegression(C=C, solver="newton-cg", tol=1e-12, max_iter=1000))


def _sk_oof(x, y, folds, n_classes, C=1.0):
    out = np.empty((n_classes, len(y)))
    for k in np.unique(folds):
        tr, te = folds != k, folds == k
        for c in range(n_classes):
            out[c, te] = _sk_probe(C).fit(x[tr], y[tr] == c).decision_function(x[te])
    return out


def _sk_folds(y, seed, n_folds=5):
    folds = np.empty(len(y), dtype=np.int64)
    split = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    for k, (_, te) in enumerate(split.split(np.zeros((len(y), 1)), y)):
        folds[te] = k
    return folds


def test_fit_logistic_equals_sklearn_with_weights():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 80, 4))
    w = (rng.random((3, 80)) < 0.75).astype(float)
    t = rng.random((3, 2, 80)) < 0.4
    t[:, 0] |= x[:, :, 0] > 0.5
    for C in (0.1, 1.0, 50.0):
        theta = P.fit_logistic(torch.tensor(x), torch.tensor(w), torch.tensor(t), C=C).numpy()
        for p in range(3):
            for c in range(2):
                keep = w[p] > 0
                m = LogisticRegression(C=C, solver="newton-cg", tol=1e-12, max_iter=1000).fit(
                    x[p][keep], t[p, c][keep])
                ref = np.r_[m.coef_[0], m.intercept_]
                np.testing.assert_allclose(theta[p, c], ref, rtol=1e-7, atol=1e-8)


def test_oof_logits_folds_and_auroc_equal_a_sklearn_loop():
    rng = np.random.default_rng(1)
    y = np.arange(90) % 3
    x = rng.normal(size=(90, 4))
    x[:, 0] += 0.7 * (y == 1)
    x[:, 3] = 2.0  # a constant unit: scale 1, like StandardScaler
    folds = P.stratified_folds(y, 5, 11)
    np.testing.assert_array_equal(folds, _sk_folds(y, 11))
    logits = P.cross_validated_logits(x, y, folds, 3, 5, C=0.5)[0]
    ref = _sk_oof(x, y, folds, 3, C=0.5)
    np.testing.assert_allclose(logits, ref, rtol=1e-7, atol=1e-8)
    got = P.auroc(logits, y[None] == np.arange(3)[:, None])
    np.testing.assert_allclose(got, [roc_auc_score(y == c, ref[c]) for c in range(3)], atol=1e-12)


def test_bootstrap_auroc_equals_the_resampled_cells_with_ties():
    rng = np.random.default_rng(2)
    y = np.arange(70) % 2
    scores = np.round(rng.normal(size=70) + y, 1)  # many ties
    w = P.bootstrap_weights(y, 2, 40, 5)
    got = P.bootstrap_auroc(scores, y == 1, w)
    draw = np.random.default_rng(np.random.SeedSequence(5, spawn_key=(2,)))
    members = [np.flatnonzero(y == k) for k in range(2)]
    draws = [draw.integers(0, len(m), size=(40, len(m))) for m in members]
    for b in range(40):
        idx = np.concatenate([members[k][draws[k][b]] for k in range(2)])
        assert got[b] == pytest.approx(roc_auc_score(y[idx] == 1, scores[idx]), abs=1e-12)


def test_statistics_equal_plain_loops_with_the_same_seeds():
    from scipy.stats import false_discovery_control

    rng = np.random.default_rng(3)
    n, seed, n_perm, n_boot, n_rand = 60, 7, 19, 50, 3
    y = np.arange(n) % 3
    acts = rng.normal(size=(n, 6))
    acts[:, 0] += y == 1
    nodes = {"a": [0, 1], "b": slice(2, 6)}
    res = probe_nodes(acts, y, nodes, n_permutations=n_perm, n_bootstrap=n_boot,
                      n_random=n_rand, random_state=seed)
    fold_seed = int(np.random.SeedSequence(seed, spawn_key=(0,)).generate_state(1)[0])
    folds = _sk_folds(y, fold_seed)
    np.testing.assert_array_equal(res.probes.folds, folds)
    perm = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(1,)))
    perms = [y[perm.permutation(n)] for _ in range(n_perm)]
    boot = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(2,)))
    members = [np.flatnonzero(y == k) for k in range(3)]
    draws = [boot.integers(0, len(m), size=(n_boot, len(m))) for m in members]
    samples = [np.concatenate([members[k][draws[k][b]] for k in range(3)]) for b in range(n_boot)]
    for j, units in enumerate([[0, 1], [2, 3, 4, 5]]):
        x = acts[:, units]
        oof = _sk_oof(x, y, folds, 3)
        for c in range(3):
            obs = roc_auc_score(y == c, oof[c])
            assert res.auroc_oof[j, c] == pytest.approx(obs, abs=1e-12)
            boots = [roc_auc_score(y[i] == c, oof[c][i]) for i in samples]
            lo, hi = np.quantile(boots, [0.025, 0.975])
            assert (res.ci_low[j, c], res.ci_high[j, c]) == pytest.approx((lo, hi), abs=1e-12)
            ins = _sk_probe().fit(x, y == c).decision_function(x)
            assert res.auroc_in_sample[j, c] == pytest.approx(roc_auc_score(y == c, ins),
                                                              abs=1e-9)
        hits = np.zeros(3)
        for yb in perms:
            ob = _sk_oof(x, yb, _sk_folds(yb, fold_seed), 3)
            hits += [roc_auc_score(yb == c, ob[c]) >= res.auroc_oof[j, c] - 1e-12
                     for c in range(3)]
        np.testing.assert_array_equal(res.p_value[j], (1 + hits) / (1 + n_perm))
        # width-matched random nodes: subsets drawn per width from their own stream
        draw = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(3, len(units))))
        rnd = np.array([P.auroc(_sk_oof(acts[:, np.sort(draw.choice(6, len(units), False))], y,
                                        folds, 3), y[None] == np.arange(3)[:, None])
                        for _ in range(n_rand)])
        np.testing.assert_allclose(res.random_node_mean[j], rnd.mean(0), atol=1e-9)
        np.testing.assert_allclose(res.random_node_q95[j], np.quantile(rnd, 0.95, axis=0),
                                   atol=1e-9)
    np.testing.assert_allclose(res.q_value.reshape(-1),
                               false_discovery_control(res.p_value.reshape(-1), method="bh"))


def test_node_forms_agree():
    u = 10
    forms = {"slice": slice(2, 6), "list": [2, 3, 4, 5], "array": np.array([5, 4, 3, 2]),
             "tensor": torch.tensor([2, 3, 4, 5]),
             "mask": torch.arange(u).ge(2) & torch.arange(u).lt(6)}
    names, index = P.node_index(forms, u)
    assert names == list(forms)
    for idx in index:
        np.testing.assert_array_equal(idx, [2, 3, 4, 5])


# ----------------------------------------------------------------------------- planted signal
def test_planted_term_ranks_first_with_high_held_out_auroc_and_small_q(planted):
    res = planted["result"]
    frame = res.to_frame()
    assert list(frame.columns[:4]) == ["node", "width", "class", "n_cells"]
    for k in range(N_CLASSES):
        ranking = res.ranking(k)
        top = ranking.iloc[0]
        assert top["node"] == f"term{k}"
        assert top["auroc_oof"] > 0.9 and top["q_value"] < 0.05 and top["significant"]
        assert top["ci_low"] > 0.9
    # the noise terms are not significant for any class
    noise = frame[frame["node"].isin(["term3", "term4", "term5"])]
    assert (noise["q_value"] >= 0.05).all()


def test_planted_class_integrated_gradients_pick_the_term_genes(planted):
    from captum.attr import IntegratedGradients

    model, x, y = planted["model"], planted["x"], planted["y"]
    ig = IntegratedGradients(model)
    for k in range(N_CLASSES):
        cells = x[y == k]
        attr = ig.attribute(cells, baselines=torch.zeros_like(cells), target=k, n_steps=32)
        top10 = torch.argsort(attr.mean(0), descending=True)[:10].tolist()
        assert len(set(top10) & set(TERM_GENES[k])) >= 8


def test_untrained_copy_and_global_rng(planted):
    res = planted["result"]
    assert np.isfinite(res.untrained_auroc).all()
    state = torch.random.get_rng_state()
    before = snapshot_state(planted["model"], [planted["x"]])
    planted["explainer"].attribute(planted["x"], planted["y"], {"a": slice(0, 3)},
                                   n_permutations=0, n_bootstrap=10, n_random=0,
                                   untrained="reinit")
    assert torch.equal(state, torch.random.get_rng_state())
    assert compare_states(before, snapshot_state(planted["model"], [planted["x"]]))[0] == []


# ----------------------------------------------------------------------------- calibration
def test_null_calibration_held_out_vs_in_sample():
    from scipy.stats import kstest

    rng = np.random.default_rng(4)
    n, widths = 150, [1, 2, 4, 8, 16, 32]
    acts = rng.normal(size=(n, sum(widths)))
    off = np.cumsum([0, *widths])
    nodes = {f"w{w}": slice(int(off[i]), int(off[i + 1])) for i, w in enumerate(widths)}
    oof, ins, p, q = [], [], [], []
    for rep in range(4):
        labels = rng.permutation(np.arange(n) % 3)
        res = probe_nodes(acts, labels, nodes, n_permutations=49, n_bootstrap=1, n_random=0,
                          random_state=rep)
        oof.append(res.auroc_oof)
        ins.append(res.auroc_in_sample)
        p.append(res.p_value.reshape(-1))
        q.append(res.q_value.reshape(-1))
    oof, ins = np.stack(oof), np.stack(ins)  # (rep, node, class)
    p, q = np.concatenate(p), np.concatenate(q)
    assert abs(oof.mean() - 0.5) < 0.02
    assert (q < 0.05).mean() <= 0.05
    assert kstest(p, "uniform").pvalue > 0.01
    by_width = ins.mean((0, 2))
    assert by_width[-1] > by_width[0] + 0.05  # in-sample grows with node width
    assert (ins.mean((0, 2)) > oof.mean((0, 2))).all()
    assert abs(oof.mean((0, 2))[-1] - 0.5) < 0.04


# ----------------------------------------------------------------------------- Captum layer methods
def test_conductance_per_node_equals_captum_per_unit_summed():
    from captum.attr import LayerConductance

    model = _small_model()
    x = torch.randn(6, 5, dtype=torch.float64)
    nodes = {"a": slice(0, 3), "b": [3, 4, 7], "c": slice(5, 7)}
    res = LayerNodeProbe(model, model[1]).conductance(x, nodes, targets=[0, 2], n_steps=20,
                                                      batch_size=4)
    for t, target in enumerate([0, 2]):
        unit = LayerConductance(model, model[1]).attribute(x, target=target, n_steps=20)
        for j, idx in enumerate([[0, 1, 2], [3, 4, 7], [5, 6]]):
            torch.testing.assert_close(res.attributions[t, :, j], unit[:, idx].sum(1),
                                       rtol=1e-10, atol=1e-12)
    # the nodes partition the layer: they sum to the completeness total
    full = LayerNodeProbe(model, model[1]).conductance(
        x, {"all": slice(0, 8)}, targets=1, n_steps=50).attributions[0, :, 0]
    torch.testing.assert_close(full, model(x)[:, 1] - model(torch.zeros_like(x))[:, 1],
                               rtol=1e-3, atol=1e-3)
    frame = res.to_frame()
    assert set(frame.columns) >= {"node", "target", "cells", "mean", "mean_abs"}


def test_ablation_joint_and_per_unit():
    from captum.attr import LayerFeatureAblation

    model = _small_model()
    x = torch.randn(5, 5, dtype=torch.float64)
    nodes = {"a": slice(0, 3), "b": [2, 4, 7], "c": slice(5, 7)}  # a and b overlap
    probe = LayerNodeProbe(model, "1")
    joint = probe.ablation(x, nodes, targets=[1], labels=["u", "v", "u", "v", "u"])
    h = model[1](model[0](x))
    for j, idx in enumerate([[0, 1, 2], [2, 4, 7], [5, 6]]):
        h2 = h.clone()
        h2[:, idx] = 0
        torch.testing.assert_close(joint.attributions[0, :, j], model[2](h)[:, 1] -
                                   model[2](h2)[:, 1], rtol=1e-10, atol=1e-12)
    unit = probe.ablation(x, nodes, targets=[1], joint=False)
    ref = LayerFeatureAblation(model, model[1]).attribute(x, target=1)
    for j, idx in enumerate([[0, 1, 2], [2, 4, 7], [5, 6]]):
        torch.testing.assert_close(unit.attributions[0, :, j], ref[:, idx].sum(1))
    assert unit.method == "unit_ablation"
    assert set(joint.to_frame()["cells"]) == {"all", "u", "v"}


# ----------------------------------------------------------------------------- perturbations
def test_perturbing_the_planted_genes_lowers_its_auroc_and_class_probability(planted):
    ex, res = planted["explainer"], planted["result"]
    names = planted["gene_names"]
    for value in ("zero", "mean"):
        eff = ex.perturbation(planted["x"], [names[g] for g in TERM_GENES[0]], res, value=value,
                              gene_names=names)
        j = eff.node_names.index("term0")
        np.testing.assert_allclose(eff.auroc, res.auroc_oof, atol=1e-12)
        assert eff.delta_auroc[j, 0] < -0.1 and eff.delta_auroc_ci_high[j, 0] < 0
        assert eff.delta_probability[j, 0] < 0 and eff.delta_probability_ci_high[j, 0] < 0
        assert eff.delta_output_probability[0] < -0.1 and eff.delta_output_ci_high[0] < 0
        # other terms' nodes read none of these genes: their AUROC does not move
        assert np.abs(eff.delta_auroc[[3, 4, 5]]).max() == 0
    frame = eff.to_frame()
    assert len(frame) == N_TERMS * N_CLASSES
    assert list(eff.output_frame()["class"]) == res.class_names


def test_parent_versus_children(planted):
    ex, res = planted["explainer"], planted["result"]
    cmp = ex.parent_vs_children(res, {"term0": ["term3", "term4"], "term5": ["term0", "term1"]})
    frame = cmp.to_frame()
    np.testing.assert_allclose(cmp.difference, cmp.auroc_parent - cmp.auroc_children)
    np.testing.assert_allclose(cmp.auroc_parent[0], res.auroc_oof[0])
    assert cmp.difference[0, 0] > 0.2 and cmp.ci_low[0, 0] > 0  # term0 adds over noise
    assert cmp.difference[1, 0] < -0.2 and cmp.ci_high[1, 0] < 0  # noise parent adds nothing
    fit = res.probes
    units = np.r_[fit.index[0], fit.index[1]]
    direct = P.auroc(P.cross_validated_logits(fit.activations[:, np.sort(units)], fit.codes,
                                              fit.folds, 3, 5)[0],
                     fit.codes[None] == np.arange(3)[:, None])
    np.testing.assert_allclose(cmp.auroc_children[1], direct)
    assert frame["excludes_zero"].iloc[0]


# ----------------------------------------------------------------------------- bad inputs
def _bad_cases(planted):
    x, y, nodes = planted["x"], planted["y"], planted["nodes"]
    ex, res, names = planted["explainer"], planted["result"], planted["gene_names"]
    fast = {"n_permutations": 0, "n_bootstrap": 5, "n_random": 0}
    y_small = y.clone()
    y_small[:3] = 3  # a class of three cells, fewer than five folds
    x_nan = x.clone()
    x_nan[4, 7] = float("nan")
    acts_nan = np.zeros((30, 4))
    acts_nan[2, 1] = np.nan
    return {
        "labels length": (lambda: ex.attribute(x, y[:-1], nodes, **fast), ValueError, "`labels`"),
        "class < folds": (lambda: ex.attribute(x, y_small, nodes, **fast), ValueError,
                          "`n_folds`"),
        "slice out of range": (lambda: ex.attribute(x, y, {"t": slice(10, 40)}, **fast),
                               ValueError, "`nodes['t']`"),
        "index out of range": (lambda: ex.attribute(x, y, {"t": [1, 99]}, **fast), ValueError,
                               "`nodes['t']`"),
        "mask length": (lambda: ex.attribute(x, y, {"t": torch.ones(5, dtype=torch.bool)},
                                             **fast), ValueError, "`nodes['t']`"),
        "nodes not a mapping": (lambda: ex.attribute(x, y, [slice(0, 2)], **fast), TypeError,
                                "`nodes`"),
        "NaN inputs": (lambda: ex.attribute(x_nan, y, nodes, **fast), ValueError, "`inputs`"),
        "NaN activations": (lambda: probe_nodes(acts_nan, np.arange(30) % 2, {"a": [0]}),
                            ValueError, "`activations`"),
        "unknown gene": (lambda: ex.perturbation(x, "CD3E", res, gene_names=names), ValueError,
                         "`genes`"),
        "gene out of range": (lambda: ex.perturbation(x, [3, 600], res), ValueError, "`genes`"),
        "gene name without names": (lambda: ex.perturbation(x, "g1", res), ValueError,
                                    "`gene_names`"),
        "unfitted probe (perturbation)": (lambda: ex.perturbation(x, [1], None), ValueError,
                                          "`probes`"),
        "unfitted probe (parents)": (lambda: ex.parent_vs_children(None, {"term0": ["term1"]}),
                                     ValueError, "`probes`"),
        "not a fit": (lambda: ex.perturbation(x, [1], {"auroc": 1}), TypeError, "`probes`"),
        "other cells": (lambda: ex.perturbation(x[:200], [1], res), ValueError, "`inputs`"),
        "unknown value": (lambda: ex.perturbation(x, [1], res, value="median"), ValueError,
                          "`value`"),
        "unknown parent": (lambda: ex.parent_vs_children(res, {"GO:1": ["term1"]}), ValueError,
                           "`parents`"),
        "no children": (lambda: ex.parent_vs_children(res, {"term0": []}), ValueError,
                        "`parents['term0']`"),
        "confidence": (lambda: ex.attribute(x, y, nodes, confidence=1.5, **fast), ValueError,
                       "`confidence`"),
        "target out of range": (lambda: ex.conductance(x, nodes, targets=5), ValueError,
                                "`targets`"),
        "reinit of a callable": (lambda: LayerNodeProbe(lambda v: planted["model"](v),
                                                        planted["model"].terms).attribute(
            x, y, nodes, untrained="reinit", **fast), ValueError, "`untrained"),
        "unknown layer": (lambda: LayerNodeProbe(planted["model"], "encoder"), ValueError,
                          "`layer`"),
    }


def test_bad_inputs_raise_clear_errors_and_leave_the_model_unchanged(planted):
    model = planted["model"]
    before = snapshot_state(model, [planted["x"]])
    for case, (call, error, needle) in _bad_cases(planted).items():
        with pytest.raises(error) as info:
            call()
        assert needle in str(info.value), (case, str(info.value))
    problems, _ = compare_states(before, snapshot_state(model, [planted["x"]]))
    assert problems == []


def test_a_layer_that_runs_twice_is_refused_and_its_hook_removed():
    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(4, 4).double()

        def forward(self, x):
            return self.lin(self.lin(x))

    model = Twice().eval()
    x = torch.randn(20, 4, dtype=torch.float64)
    before = snapshot_state(model, [x])
    with pytest.raises(ValueError, match="`layer` ran 2 times"):
        LayerNodeProbe(model, "lin").attribute(x, torch.arange(20) % 2, {"a": [0, 1]},
                                               n_permutations=0, n_bootstrap=5, n_random=0)
    assert compare_states(before, snapshot_state(model, [x]))[0] == []
