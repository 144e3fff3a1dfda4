"""DeepLIFT/SHAP with shuffled references on real CTCF peaks: the script behind
``docs/deep_lift_shap.md``.

Every number and figure of the tutorial comes from running this file::

    python docs/scripts/deep_lift_shap_tutorial.py

It writes the figures to ``docs/img/deep_lift_shap/`` and prints the numbers,
section by section. It runs on one CPU thread in well under two minutes.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from captum_genomics import (
    ConvergenceDeltaWarning,
    ShuffleDeepLiftShap,
    UnsupportedOperationError,
    UnsupportedOperationWarning,
    default_rules,
)
from captum_genomics.seq.datasets import load_ctcf_motif, load_ctcf_peaks
from captum_genomics.seq.motifs import scan, scan_best_match
from captum_genomics.seq.plot import save_attribution_figure
from captum_genomics.references import DinucleotideShuffle, dinucleotide_shuffle
from captum_genomics.deeplift.rules import Rescale
from captum_genomics.workflows.deeplift_ctcf import top_windows
from captum_genomics.zoo import ctcf_split, load_ctcf_model

torch.set_num_threads(1)  # small model: one thread is fastest, and kind to shared machines
IMG = Path(__file__).resolve().parents[1] / "img" / "deep_lift_shap"
IMG.mkdir(parents=True, exist_ok=True)


def section(title: str) -> None:
    print(f"\n=== {title} ===")


def per_position(attr: torch.Tensor) -> np.ndarray:
    """Contributions summed over ACGT: one value per position, ``(N, L)``."""
    return attr.detach().double().sum(1).numpy()


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a, b)[0, 1])


def new_figure(width: float, height: float, rows: int = 1):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    return fig, fig.subplots(rows, 1, sharex=True, squeeze=False)[:, 0]


# ---------------------------------------------------------------------------
# 0. Data, model, and the held-out peak with the strongest CTCF motif match
# ---------------------------------------------------------------------------
section("0. data and model")
peaks = load_ctcf_peaks()                      # 500 GM12878 CTCF peaks, one_hot (500, 4, 200)
motif = load_ctcf_motif()                      # JASPAR MA0139.2, width 15
model = load_ctcf_model()                      # trained CNN in eval mode, output (N, 1) logits
test = ctcf_split()["test"]                    # 50 peaks held out from training
positions, strands, scores = scan_best_match(peaks.one_hot[test], motif)
best = int(scores.argmax())
i = int(test[best])                            # index into the 500 peaks
pos, strand, width = int(positions[best]), int(strands[best]), motif.width
x = peaks.one_hot[i:i + 1]                     # (1, 4, 200)
with torch.no_grad():
    logit = model(x)[0, 0].item()
print(f"peak {i} ({peaks.names[i]}): MA0139.2 match at {pos}..{pos + width - 1}, "
      f"strand {strand:+d}, log-odds {scores[best].item():.2f}; model logit {logit:.3f}")

# ---------------------------------------------------------------------------
# 1. Contributions, hypothetical contributions and convergence deltas
# ---------------------------------------------------------------------------
section("1. attributions of a motif-bearing sequence")
explainer = ShuffleDeepLiftShap(model)
attr, delta = explainer.attribute(x, target=0, n_references=20, random_state=0,
                                  return_convergence_delta=True)
hyp = explainer.attribute(x, target=0, n_references=20, random_state=0, hypothetical=True)
print("attributions", tuple(attr.shape), "hypothetical", tuple(hyp.shape),
      "delta", tuple(delta.shape))
print("delta[0, :5]:", " ".join(f"{v:.1e}" for v in delta[0, :5].tolist()))
print(f"max |delta| over the 20 pairs: {delta.abs().max().item():.2e}")
print("contributions are the hypothetical ones at the observed bases:",
      torch.equal(attr, hyp * x))

# additivity, checked against plain forward passes of the same references
refs = dinucleotide_shuffle(x, 20, random_state=0)          # (1, 20, 4, 200)
with torch.no_grad():
    f_refs = model(refs[0])[:, 0]
print(f"sum of contributions {attr.sum().item():.4f}; "
      f"f(x) - mean_k f(r_k) = {logit:.4f} - {f_refs.mean().item():.4f} = "
      f"{logit - f_refs.mean().item():.4f}")
start, _ = top_windows(attr, width)
print(f"highest-contribution 15-bp window starts at {int(start[0])}")
site_scores = scan(x, motif)[0]                # (2 strands, 186 windows) of log-odds
sites = [(int(s), 1 - 2 * st) for st, s in (site_scores > 15).nonzero().tolist()]
for s, st in sites:
    c = attr[0, :, s:s + width].sum().item()
    print(f"MA0139.2 site {s}..{s + width - 1} (strand {st:+d}, log-odds "
          f"{site_scores[(1 - st) // 2, s].item():.2f}): contribution {c:.4f} "
          f"({100 * c / attr.sum().item():.0f}% of the total)")

# the motif's most informative positions vs the largest contributions in the site
info = (2 + (motif.counts / motif.counts.sum(0) * np.log2(
    np.clip(motif.counts / motif.counts.sum(0), 1e-12, None))).sum(0))   # bits per column
if strand < 0:
    info = info[::-1]
site_contrib = per_position(attr)[0, pos:pos + width]
seq = peaks.sequences[i].upper()
print("top-4 motif columns by information:",
      ", ".join(f"{seq[pos + j]}{pos + j} ({info[j]:.2f} bits)" for j in np.argsort(-info)[:4]))
print("top-4 site positions by contribution:",
      ", ".join(f"{seq[pos + j]}{pos + j} ({site_contrib[j]:.2f})"
                for j in np.argsort(-site_contrib)[:4]))
observed_top = (hyp[0, :, pos:pos + width].argmax(0) == x[0, :, pos:pos + width].argmax(0))
print(f"observed base has the largest hypothetical contribution at "
      f"{int(observed_top.sum())} of {width} site positions")

lo, hi = pos - 10, pos + width + 10
save_attribution_figure(IMG / "contributions.png", attr[0, :, lo:hi], lo,
                        f"contributions, peak {i} (K=20 dinucleotide shuffles)",
                        motif=motif, motif_start=pos, motif_strand=strand)
save_attribution_figure(IMG / "hypothetical.png", hyp[0, :, lo:hi], lo,
                        f"hypothetical contributions, peak {i}",
                        motif=motif, motif_start=pos, motif_strand=strand)

fig, (ax,) = new_figure(9, 2.2)
ax.bar(np.arange(200), per_position(attr)[0], width=1.0, color="0.3")
for n, (s, _) in enumerate(sites):
    ax.axvspan(s - 0.5, s + width - 0.5, color="tab:orange", alpha=0.3,
               label="MA0139.2 matches (log-odds > 15)" if n == 0 else None)
ax.set_xlim(-0.5, 199.5)
ax.set_xlabel("position in peak (bp)")
ax.set_ylabel("contribution")
ax.set_title(f"peak {i}, {peaks.names[i]}: contributions summed over ACGT", fontsize=9)
ax.legend(fontsize=8, frameon=False)
fig.savefig(IMG / "overview.png", dpi=150)

# ---------------------------------------------------------------------------
# 2. How many shuffles?
# ---------------------------------------------------------------------------
section("2. number of references")
xs = peaks.one_hot[test[:10]]                  # the first 10 held-out peaks
ks = [1, 5, 10, 20, 50, 100, 200]
reference_run = per_position(explainer.attribute(
    xs, target=0, n_references=200, random_state=1, batch_size=256))
runs = {k: per_position(explainer.attribute(xs, target=0, n_references=k, random_state=0,
                                            batch_size=256)) for k in ks}
seconds = {k: float("inf") for k in ks}        # runtime: 2 peaks, best of 10 rounds over all K
for _ in range(10):                            # (the CPU is shared; single runs are noisy)
    for k in ks:
        t0 = time.perf_counter()
        explainer.attribute(xs[:2], target=0, n_references=k, random_state=0, batch_size=256)
        seconds[k] = min(seconds[k], (time.perf_counter() - t0) / 2)
scale = np.abs(reference_run).mean()
print(f"10 peaks; reference: K=200 with random_state=1; mean |attribution| {scale:.4f}")
print("   K  mean r  min r  mean|diff|  rel.diff  ms/peak")
table = {}
for k in ks:
    r = [pearson(a, b) for a, b in zip(runs[k], reference_run)]
    diff = np.abs(runs[k] - reference_run).mean()
    table[k] = (np.mean(r), np.min(r), diff)
    print(f"{k:4d}  {np.mean(r):6.3f} {np.min(r):6.3f}  {diff:10.4f}  {diff / scale:8.2f}"
          f"  {1000 * seconds[k]:7.1f}")

fig, axes = new_figure(6, 4, rows=2)
kk = np.array(ks)
axes[0].plot(kk, [table[k][0] for k in ks], "o-", label="mean over peaks")
axes[0].plot(kk, [table[k][1] for k in ks], "s--", label="worst peak")
axes[0].set_ylabel("Pearson r vs K=200")
axes[0].legend(fontsize=8, frameon=False)
axes[1].plot(kk, [table[k][2] for k in ks], "o-")
axes[1].set_ylabel("mean |difference|")
axes[1].set_xscale("log")
axes[1].set_xlabel("K (dinucleotide shuffles per sequence)")
axes[0].set_title("10 held-out CTCF peaks vs an independent K=200 run", fontsize=9)
fig.savefig(IMG / "n_references.png", dpi=150)

# ---------------------------------------------------------------------------
# 3. Shuffling only a window
# ---------------------------------------------------------------------------
section("3. window-limited references")
w_lo, w_hi = pos - 5, pos + width + 5          # the motif site plus 5 bp each side
window = DinucleotideShuffle(start=w_lo, end=w_hi)
attr_w, delta_w = explainer.attribute(x, target=0, n_references=20, random_state=0,
                                      references=window, return_convergence_delta=True)
refs_w = window(x, 20, random_state=0)
with torch.no_grad():
    f_refs_w = model(refs_w[0])[:, 0]
outside = torch.ones(200, dtype=torch.bool)
outside[w_lo:w_hi] = False
whole, win = per_position(attr)[0], per_position(attr_w)[0]
print(f"window {w_lo}..{w_hi - 1} ({w_hi - w_lo} bp); "
      f"distinct references: {len(torch.unique(refs_w[0], dim=0))} of 20 (window), "
      f"{len(torch.unique(refs[0], dim=0))} of 20 (whole sequence)")
print("                      whole sequence   window only")
print(f"mean f(r)             {f_refs.mean().item():14.4f} {f_refs_w.mean().item():13.4f}")
print(f"sum, all positions    {whole.sum():14.4f} {win.sum():13.4f}")
print(f"sum, inside window    {whole[w_lo:w_hi].sum():14.4f} {win[w_lo:w_hi].sum():13.4f}")
print(f"sum, outside window   {whole[outside.numpy()].sum():14.4f} "
      f"{win[outside.numpy()].sum():13.4f}")
print(f"max |attr| outside    {np.abs(whole[outside.numpy()]).max():14.4f} "
      f"{np.abs(win[outside.numpy()]).max():13.4f}")
print(f"max |delta|           {delta.abs().max().item():14.2e} {delta_w.abs().max().item():13.2e}")
print(f"Pearson r inside the window, whole vs window references: "
      f"{pearson(whole[w_lo:w_hi], win[w_lo:w_hi]):.3f}")

fig, axes = new_figure(9, 3.6, rows=2)
for ax, values, name in ((axes[0], whole, "whole sequence shuffled"),
                         (axes[1], win, f"only {w_lo}..{w_hi - 1} shuffled")):
    ax.bar(np.arange(200), values, width=1.0, color="0.3")
    ax.axvspan(w_lo - 0.5, w_hi - 0.5, color="tab:blue", alpha=0.15)
    ax.set_ylabel("contribution")
    ax.set_title(f"peak {i}, references: {name}", fontsize=9)
axes[1].set_xlim(-0.5, 199.5)
axes[1].set_xlabel("position in peak (bp)")
fig.savefig(IMG / "window_references.png", dpi=150)

# ---------------------------------------------------------------------------
# 4. Convergence deltas: precision, and a missing rule
# ---------------------------------------------------------------------------
section("4. convergence deltas")
x_test = peaks.one_hot[test]                   # all 50 held-out peaks
_, d32 = explainer.attribute(x_test, target=0, n_references=20, random_state=0,
                             batch_size=256, return_convergence_delta=True)
model64 = load_ctcf_model().double()
_, d64 = ShuffleDeepLiftShap(model64).attribute(
    x_test.double(), target=0, n_references=20, random_state=0, batch_size=256,
    return_convergence_delta=True)
print(f"50 peaks x 20 references: max |delta| float32 {d32.abs().max().item():.2e}, "
      f"float64 {d64.abs().max().item():.2e}")

no_relu = ShuffleDeepLiftShap(model, rules=default_rules().without("relu"))
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    _, d_bad = no_relu.attribute(x_test, target=0, n_references=20, random_state=0,
                                 batch_size=256, return_convergence_delta=True)
assert [w.category for w in caught] == [UnsupportedOperationWarning, ConvergenceDeltaWarning]
for w in caught:
    print(f"{w.category.__name__}: {w.message}")
refs_test = dinucleotide_shuffle(x_test, 20, random_state=0)       # the same references
with torch.no_grad():
    out_diff = model(x_test)[:, :1] - model(refs_test.flatten(0, 1))[:, 0].view(50, 20)
print(f"without the relu rule: max |delta| {d_bad.abs().max().item():.3f}, "
      f"median |delta| {d_bad.abs().median().item():.3f}; "
      f"median |f(x) - f(r)| {out_diff.abs().median().item():.3f}")


# ---------------------------------------------------------------------------
# 5. A custom rule
# ---------------------------------------------------------------------------
section("5. a custom rule")


class ProbitGELU(nn.Module):
    """GELU written from its definition, x * Phi(x) (Hendrycks & Gimpel 2016)."""

    def forward(self, x):
        return x * torch.special.ndtr(x)


custom = load_ctcf_model()
custom.relu2 = ProbitGELU()                    # the trained weights, another activation
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    _, d_default = ShuffleDeepLiftShap(custom).attribute(
        x, target=0, n_references=20, random_state=0, return_convergence_delta=True)
assert [w.category for w in caught] == [UnsupportedOperationWarning, ConvergenceDeltaWarning]
for w in caught:
    print(f"{w.category.__name__}: {w.message}")
print(f"default rules: max |delta| {d_default.abs().max().item():.3f}")

rules = default_rules().with_rules({"special_ndtr": Rescale()})
attr_c, d_custom = ShuffleDeepLiftShap(custom, rules=rules).attribute(
    x, target=0, n_references=20, random_state=0, return_convergence_delta=True)
print(f"with a rescale rule for special_ndtr: max |delta| {d_custom.abs().max().item():.2e}")

try:
    ShuffleDeepLiftShap(custom, strict=True).attribute(x, target=0, n_references=20,
                                                       random_state=0)
except UnsupportedOperationError as err:
    print(f"strict=True: {type(err).__name__}: {err}")

builtin = load_ctcf_model()
builtin.relu2 = nn.GELU()                      # the same function as one op, with a rule
attr_g, d_g = ShuffleDeepLiftShap(builtin).attribute(
    x, target=0, n_references=20, random_state=0, return_convergence_delta=True)
with torch.no_grad():
    same = (custom(x) - builtin(x)).abs().max().item()
print(f"nn.GELU model: outputs differ by {same:.1e}; max |delta| {d_g.abs().max().item():.2e}; "
      f"Pearson r of contributions vs x * ndtr(x): "
      f"{pearson(per_position(attr_c)[0], per_position(attr_g)[0]):.4f}, "
      f"max |difference| {(attr_c - attr_g).abs().max().item():.1e}")


# ---------------------------------------------------------------------------
# 6. Several targets in one call
# ---------------------------------------------------------------------------
section("6. several targets")


class BothStrands(nn.Module):
    """Output 0: the logit of the sequence; output 1: of its reverse complement."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return torch.cat([self.model(x), self.model(x.flip(1, 2))], dim=1)


two = BothStrands(model).eval()
xs4 = peaks.one_hot[test[:4]]
results = ShuffleDeepLiftShap(two).attribute(xs4, targets=[0, 1], n_references=20,
                                             random_state=0)
fwd, rev = results
fwd_alone = ShuffleDeepLiftShap(two).attribute(xs4, target=0, n_references=20, random_state=0)
rev_alone = ShuffleDeepLiftShap(two).attribute(xs4, target=1, n_references=20, random_state=0)
per_example = ShuffleDeepLiftShap(two).attribute(
    xs4, target=torch.tensor([0, 1, 0, 1]), n_references=20, random_state=0)
print(f"targets=[0, 1]: a list of {len(results)} results of shape {tuple(fwd.shape)}")
print(f"max |targets=[0, 1] - separate calls|: "
      f"{max((fwd - fwd_alone).abs().max().item(), (rev - rev_alone).abs().max().item()):.1e}")
picked = torch.stack([fwd[0], rev[1], fwd[2], rev[3]])
print(f"target=tensor([0, 1, 0, 1]) vs rows of the two: max |difference| "
      f"{(per_example - picked).abs().max().item():.1e}")
r_strands = [pearson(a, b) for a, b in zip(per_position(fwd), per_position(rev))]
print("Pearson r, target 0 vs target 1, per peak:", " ".join(f"{r:.3f}" for r in r_strands))
