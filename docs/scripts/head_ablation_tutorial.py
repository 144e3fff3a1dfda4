"""Outputs of docs/head_ablation.md: the real model's head table, plots, your-own-model adapters.

    python docs/scripts/head_ablation_tutorial.py [--img docs/img/head_ablation]

One CPU thread, ~5 s. Prints every block shown in the tutorial.
"""

import argparse
import time
from functools import partial
from pathlib import Path

import numpy as np
import torch
from torch import nn

from captum_genomics.heads import (
    HeadAxisAdapter,
    OutputProjectionAdapter,
    UnsupportedAttentionError,
    default_head_adapters,
)
from captum_genomics.methods.head_ablation import HeadAblationExplainedVariance
from captum_genomics.sc.neighbours import neighbour_inputs
from captum_genomics.sc.plot_heads import plot_ev_bars, plot_gene_head_heatmap_grid
from captum_genomics.workflows.head_ablation_pbmc import format_head_table
from captum_genomics.zoo.pbmc_attention import (
    load_pbmc_attention_metadata,
    load_pbmc_attention_model,
)


class MyAttention(nn.Module):
    """Toy self-attention that returns per-head outputs (B, H, L, d) (a head axis)."""

    def __init__(self, dim=16, n_heads=4):
        super().__init__()
        self.n_heads, self.d = n_heads, dim // n_heads
        self.qkv = nn.Linear(dim, 3 * dim)

    def forward(self, x):  # (B, L, dim) -> (B, H, L, d)
        b, length, _ = x.shape
        q, k, v = self.qkv(x).view(b, length, 3, self.n_heads, self.d).permute(2, 0, 3, 1, 4)
        return torch.softmax(q @ k.transpose(-1, -2) / self.d ** 0.5, -1) @ v


class MyModel(nn.Module):
    def __init__(self, n_genes=20, dim=16, n_heads=4):
        super().__init__()
        self.embed = nn.Linear(n_genes, dim)
        self.attn = MyAttention(dim, n_heads)
        self.proj = nn.Linear(dim, dim)       # the out-projection, called as a module
        self.readout = nn.Linear(dim, n_genes)

    def forward(self, tokens):                # (B, L, n_genes) -> (B, n_genes)
        heads = self.attn(self.embed(tokens))             # (B, H, L, d)
        b, h, length, d = heads.shape
        mixed = self.proj(heads.transpose(1, 2).reshape(b, length, h * d))
        return self.readout(torch.relu(mixed).mean(1))


def _maxdiff(a, b):
    return float(np.nanmax(np.abs(a.numpy() - b.numpy())))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--img", type=Path, default=Path("docs/img/head_ablation"))
    args = parser.parse_args()
    torch.set_num_threads(1)

    print("## 1. data and model")
    data = neighbour_inputs()
    model = load_pbmc_attention_model()
    meta = load_pbmc_attention_metadata()
    print(tuple(data.neighbours.shape), tuple(data.cell_type.shape), tuple(data.observed.shape))
    print(model)
    test = meta["metrics"]["test"]
    print({k: {m: test[k][m] for m in ("ev_pooled", "ev_gene_mean", "mse")}
           for k in ("model", "type_mean", "neighbour_mean")})

    print("## 2. attribute")
    groups = np.asarray(data.type_names, dtype=object)[data.cell_type.numpy()]
    hev = HeadAblationExplainedVariance(model, "attention")
    t0 = time.perf_counter()
    result = hev.attribute((data.neighbours, data.cell_type), groups, data.observed,
                           gene_names=data.gene_names)
    print(f"{time.perf_counter() - t0:.2f} s, {result.n_permutations} permutations")
    print(format_head_table(result))
    frame = result.to_frame()
    print(frame.shape)
    nk = frame[(frame["group"] == "CD56+ NK") & (frame["head"] == 2)]
    print(nk.sort_values("ev_gene", ascending=False).head(5)
          .drop(columns=["layer"]).to_string(index=False))
    print({g: result.top_genes(g, 5) for g in ("CD19+ B", "CD56+ NK")})

    print("## 3. mean ablation = zero ablation here")
    tr = torch.from_numpy(data.split["train"])
    mean = hev.attribute((data.neighbours, data.cell_type), groups, data.observed,
                         mode="mean", reference_inputs=(data.neighbours[tr], data.cell_type[tr]),
                         n_permutations=100)
    zero = hev.attribute((data.neighbours, data.cell_type), groups, data.observed,
                         n_permutations=100)
    print("max |EV mean - EV zero|:", _maxdiff(mean.ev_gene, zero.ev_gene),
          " max |MSE mean - MSE zero|:", _maxdiff(mean.mse, zero.mse))

    print("## 4. plots")
    args.img.mkdir(parents=True, exist_ok=True)
    plot_ev_bars(result).savefig(args.img / "ev_bars.png", dpi=80, bbox_inches="tight")
    kept = [g for g in result.group_names if g not in result.skipped_groups]
    plot_gene_head_heatmap_grid(result, kept, 10).savefig(args.img / "gene_head_heatmap.png",
                                                          dpi=65)
    for f in sorted(args.img.iterdir()):
        print(f.name, f.stat().st_size // 1024, "KB")

    print("## 5. your own model")
    torch.manual_seed(0)
    mine = MyModel().eval()
    x = torch.randn(60, 5, 20)
    y = torch.randn(60, 20)
    labels = np.repeat(["a", "b", "c"], 20)
    try:
        HeadAblationExplainedVariance(mine, "attn")
    except UnsupportedAttentionError as err:
        print("UnsupportedAttentionError:", str(err)[:160], "...")
    by_axis = HeadAblationExplainedVariance(
        mine, {"attn": partial(HeadAxisAdapter, n_heads=4)}).attribute(
        x, labels, y, n_permutations=50)
    by_proj = HeadAblationExplainedVariance(
        mine, {"proj": partial(OutputProjectionAdapter, n_heads=4)}).attribute(
        x, labels, y, n_permutations=50)
    registry = default_head_adapters().with_adapter(MyAttention, HeadAxisAdapter)
    by_type = HeadAblationExplainedVariance(mine, "attn", adapters=registry).attribute(
        x, labels, y, n_permutations=50)
    print("head axis vs out-projection: max |EV diff| =",
          _maxdiff(by_axis.ev_gene, by_proj.ev_gene))
    print("registered type vs per-layer factory: max |EV diff| =",
          _maxdiff(by_axis.ev_gene, by_type.ev_gene))
    print(by_type.head_table().head(3).to_string(index=False))


if __name__ == "__main__":
    main()
