"""The head-ablation job: which attention heads explain which cell type's expression.

What :func:`run_head_ablation_job` does, in order:

1. loads ``pbmc68k_reduced`` as neighbour inputs
   (:func:`captum_genomics.sc.neighbours.neighbour_inputs`: each cell's 9 kNN
   neighbours' expression, its cell type, its own expression; 700 cells, 765
   genes, 10 types) and the shipped attention-over-neighbours model
   (:func:`captum_genomics.zoo.pbmc_attention.load_pbmc_attention_model`,
   4 heads at ``model.attention``);
2. runs :class:`~captum_genomics.methods.head_ablation.HeadAblationExplainedVariance`
   on the chosen cells (default: all 700; ``cells="test"`` for the held-out
   split only): by default keep-one-head with zero ablation, EV within each cell
   type per head and gene, a permutation test per (head, cell type) with the
   default count ``ceil(H x T / alpha)`` and Benjamini-Hochberg correction;
3. writes ``ev_table.csv`` (tidy, one row per head, cell type and gene),
   ``head_table.csv`` (one row per head and cell type, with ``p_adj`` and
   ``significant``), ``summary.json``, ``ev_bars.png`` (EV per head and cell
   type as bars, significant ones starred) and ``gene_head_heatmap.png``
   (gene x head EV of the top genes of each cell type); the output folder is
   checked before step 2 and the files are staged and moved into place together
   when the job succeeds, ``summary.json`` last
   (:class:`~captum_genomics._utils.outputs.OutputFolder`);
4. prints the head x cell-type table: EV with only that head kept, its
   adjusted p-value, ``*`` when ``p_adj <= alpha``, and the full model's EV.

:func:`run_head_ablation_on_data` runs steps 2-4 on any model and inputs (the
``captum-genomics heads --h5ad ...`` path).
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from captum_genomics._utils.deprecation import MISSING, renamed_keyword
from captum_genomics._utils.outputs import OutputFolder

__all__ = ["run_head_ablation_on_data", "run_head_ablation_job", "format_head_table",
           "CELL_SETS", "OUTPUT_FILES"]

OUTPUT_FILES = ("ev_table.csv", "head_table.csv", "summary.json", "ev_bars.png",
                "gene_head_heatmap.png")
"""Every file :func:`run_head_ablation_on_data` may write (``summary.json`` is written last)."""

CELL_SETS = ("all", "train", "validation", "test")
"""Which cells of the fixed split :func:`run_head_ablation_job` analyses."""


def format_head_table(result) -> str:
    """The head x group EV table as text: one row per group, one column per head.

    Each entry is ``EV (p_adj)`` with 4 and 2 significant digits, followed by
    ``*`` when ``p_adj <= result.alpha``; the last columns are the group's
    cell count and the full (unablated) model's EV. Skipped groups are listed
    below the table.

    Parameters
    ----------
    result : HeadAblationResult

    Returns
    -------
    str
    """
    import pandas as pd

    table = result.head_table()
    labels = result.head_labels()
    label_of = {h: lab for h, lab in zip(result.heads, labels)}
    rows = {}
    for rec in table.itertuples(index=False):
        star = "*" if rec.significant else " "
        rows.setdefault(rec.group, {})[label_of[(rec.layer, int(rec.head))]] = (
            f"{rec.ev_head:+.4f} ({rec.p_adj:.2g}){star}")
    frame = pd.DataFrame.from_dict(rows, orient="index")[labels]
    n_cells = result.n_cells.numpy()
    frame.insert(len(labels), "n", [int(n_cells[result.group_names.index(g)]) for g in frame.index])
    if result.full_ev_head is not None:
        full = result.full_ev_head.numpy()
        frame["full"] = [f"{full[result.group_names.index(g)]:+.4f}" for g in frame.index]
    frame.index.name = "group"
    text = frame.to_string()
    if result.skipped_groups:
        text += f"\nskipped (fewer than 2 cells): {', '.join(result.skipped_groups)}"
    return text


def run_head_ablation_on_data(
    model: torch.nn.Module,
    inputs: Any,
    groups: Any,
    observed: Any,
    out_dir: str | os.PathLike,
    layers: Any = "attention",
    gene_names: Sequence[str] | None = None,
    additional_forward_args: Any = None,
    heads: Sequence[tuple[str, int]] | None = None,
    ablation: str = "keep",
    mode: str = "zero",
    reference_inputs: Any = None,
    n_permutations: int | None = None,
    alpha: float = 0.05,
    random_state: int = 0,
    batch_size: int | None = None,
    top_k: int = 10,
    plot: bool = True,
    verbose: bool = True,
    show_progress: bool = False,
    label: str = "cells",
    overwrite: bool = False,
    *,
    progress: Any = MISSING,
) -> dict:
    """Head-ablation explained variance of any model; write tables and plots.

    Parameters
    ----------
    model
        In eval mode; ``model(*inputs, *additional_forward_args)`` returns the
        predictions ``(N, G)``.
    inputs
        Tensor or tuple of tensors, first axis N (cells), e.g.
        ``(neighbours (N, k, G), cell_type (N,))``.
    groups
        Length-N group labels (cell types).
    observed : Tensor or ndarray, shape=(N, G)
        The expression the model predicts.
    out_dir
        Output folder (created), checked before the computation; the files
        appear only when the job succeeds (:data:`OUTPUT_FILES`).
    layers
        The attention module(s): a dotted name from ``model.named_modules()``,
        a module, or a list. Default ``"attention"``.
    gene_names
        Length G. Default ``gene0, gene1, ...``.
    additional_forward_args, heads, ablation, mode, reference_inputs, n_permutations, alpha,
    random_state, batch_size, show_progress
        Passed to :meth:`HeadAblationExplainedVariance.attribute`. Defaults: all
        heads, ``"keep"`` (keep one head), ``"zero"`` ablation, permutations
        ``ceil(n_heads * n_groups / alpha)``, ``alpha=0.05``, seed 0.
    top_k
        Genes per group in the heatmap and in ``summary.json``. Default 10.
    plot
        Write the PNGs. Default True.
    verbose
        Print the report. Default True.
    label
        What the cells are, for the report.
    overwrite
        Allow an ``out_dir`` that holds an earlier run's results: its files
        are replaced, and those its ``summary.json`` lists that this run does
        not write are removed. Other files are never touched. Default False.
    progress : bool, keyword-only
        Deprecated spelling of ``show_progress`` (a ``DeprecationWarning``);
        removed in the next release.

    Returns
    -------
    dict
        The content of ``summary.json`` plus ``"report"`` (the printed text)
        and ``"result"`` (the :class:`HeadAblationResult`).

    Raises
    ------
    ValueError, TypeError
        As :meth:`HeadAblationExplainedVariance.attribute` (bad layers, head
        indices, group lengths, NaN, alpha) and ``ValueError`` for a
        ``top_k`` below 1; ``TypeError`` if both ``progress`` and
        ``show_progress`` are given with different values.
    FileExistsError, NotADirectoryError, PermissionError
        If ``out_dir`` holds an earlier run's results (without ``overwrite``),
        is a file, or is not writable; raised before the computation.
    """
    from captum_genomics._utils.checks import check_positive_int
    from captum_genomics.methods.head_ablation import HeadAblationExplainedVariance

    show_progress = renamed_keyword("progress", progress, "show_progress", show_progress, False,
                                    "run_head_ablation_on_data")
    check_positive_int(top_k, "top_k")
    t_start = time.perf_counter()
    out_dir = Path(out_dir)
    with OutputFolder(out_dir, OUTPUT_FILES, overwrite=overwrite) as out:
        explainer = HeadAblationExplainedVariance(model, layers)
        t0 = time.perf_counter()
        result = explainer.attribute(
            inputs, groups, observed, additional_forward_args=additional_forward_args,
            heads=heads, ablation=ablation, mode=mode, reference_inputs=reference_inputs,
            n_permutations=n_permutations, alpha=alpha, random_state=random_state,
            batch_size=batch_size, gene_names=gene_names, show_progress=show_progress)
        seconds = time.perf_counter() - t0
        result.to_frame().to_csv(out.staged("ev_table.csv"), index=False)
        head_table = result.head_table()
        head_table.to_csv(out.staged("head_table.csv"), index=False)
        files = ["ev_table.csv", "head_table.csv", "summary.json"]
        kept = [g for g in result.group_names if g not in result.skipped_groups]
        n_sig = int(head_table["significant"].sum())
        lines = [
            f"head ablation ({result.ablation}-one-head, {result.mode} ablation) on "
            f"{int(result.n_cells.sum())} {label}, {len(result.gene_names)} genes, "
            f"{len(result.heads)} heads x {len(kept)} groups; {result.n_permutations} "
            f"permutations per test, Benjamini-Hochberg over {len(head_table)} tests, "
            f"{seconds:.2f} s",
            f"EV with only that head {'kept' if result.ablation == 'keep' else 'removed'} "
            f"(adjusted p-value), * = p_adj <= {result.alpha:g}; full = the unablated model:",
            format_head_table(result),
            f"{n_sig} of {len(head_table)} (head, group) pairs significant",
        ]
        if plot:
            try:
                from captum_genomics.sc.plot_heads import (
                    plot_ev_bars,
                    plot_gene_head_heatmap_grid,
                )

                plot_ev_bars(result).savefig(out.staged("ev_bars.png"), dpi=110,
                                             bbox_inches="tight")
                plot_gene_head_heatmap_grid(result, kept, top_k).savefig(
                    out.staged("gene_head_heatmap.png"), dpi=80)
                files += ["ev_bars.png", "gene_head_heatmap.png"]
            except ImportError as err:
                lines.append(f"plots skipped: {err}")
        top = {g: result.top_genes(g, top_k) for g in kept}
        summary = {
            "label": label, "n_cells": int(result.n_cells.sum()),
            "n_genes": len(result.gene_names), "heads": [list(h) for h in result.heads],
            "groups": {g: int(n)
                       for g, n in zip(result.group_names, result.n_cells.tolist())},
            "skipped_groups": list(result.skipped_groups), "ablation": result.ablation,
            "mode": result.mode, "n_permutations": result.n_permutations, "alpha": result.alpha,
            "random_state": random_state, "n_significant": n_sig,
            "full_ev_head": (None if result.full_ev_head is None else
                             {g: _finite(v) for g, v in zip(result.group_names,
                                                             result.full_ev_head.tolist())}),
            "head_table": [{k: (_finite(v) if isinstance(v, float) else
                                (bool(v) if isinstance(v, (bool, np.bool_)) else
                                 (int(v) if isinstance(v, (np.integer,)) else v)))
                            for k, v in rec.items()}
                           for rec in head_table.to_dict(orient="records")],
            "top_genes": top, "attribute_seconds": round(seconds, 3), "files": files,
        }
        summary["seconds"] = round(time.perf_counter() - t_start, 2)
        with open(out.staged("summary.json"), "w", encoding="utf-8") as fh:
            json.dump(summary, fh, indent=1)
            fh.write("\n")
    lines.append(f"wrote {', '.join(files)} to {out_dir}/ in {summary['seconds']:.1f} s")
    if out.removed:
        lines.append(f"removed the earlier run's {', '.join(out.removed)}")
    summary["report"] = "\n".join(lines)
    summary["result"] = result
    if verbose:
        print(summary["report"])
    return summary


def _finite(v):
    v = float(v)
    return v if math.isfinite(v) else None


def run_head_ablation_job(out_dir: str | os.PathLike = "captum_genomics_heads_out",
                          cells: str = "all", ablation: str = "keep", mode: str = "zero",
                          n_permutations: int | None = None, alpha: float = 0.05,
                          random_state: int = 0, batch_size: int | None = None,
                          top_k: int = 10, plot: bool = True, verbose: bool = True,
                          show_progress: bool = False, overwrite: bool = False, *,
                          progress: Any = MISSING) -> dict:
    """The default job: the shipped neighbour-attention model on ``pbmc68k_reduced``.

    Parameters
    ----------
    out_dir
        Output folder. Default ``./captum_genomics_heads_out``.
    cells : {"all", "train", "validation", "test"}
        Which cells of the model's fixed split to analyse. Default ``"all"``
        (700 cells; the smallest type has 8). ``"test"`` restricts to the
        142 held-out cells (some types then have 2-3 cells, too few for small
        p-values).
    ablation, mode, n_permutations, alpha, random_state, batch_size, top_k, plot, verbose,
    show_progress, overwrite
        See :func:`run_head_ablation_on_data`. With ``mode="mean"`` the
        reference set is the train split's cells.
    progress : bool, keyword-only
        Deprecated; see :func:`run_head_ablation_on_data`.

    Returns
    -------
    dict
        See :func:`run_head_ablation_on_data`. About 1-2 s on one CPU thread.

    Raises
    ------
    ValueError
        For an unknown ``cells`` (and as :func:`run_head_ablation_on_data`).
    FileExistsError, NotADirectoryError, PermissionError
        As :func:`run_head_ablation_on_data`, before the computation.
    TypeError
        If both ``progress`` and ``show_progress`` are given with different values.
    """
    from captum_genomics.sc.neighbours import neighbour_inputs
    from captum_genomics.zoo.pbmc_attention import load_pbmc_attention_model

    show_progress = renamed_keyword("progress", progress, "show_progress", show_progress, False,
                                    "run_head_ablation_job")
    if cells not in CELL_SETS:
        raise ValueError(f"`cells` must be one of {CELL_SETS}, got {cells!r}.")
    data = neighbour_inputs()
    idx = (torch.arange(len(data.cells)) if cells == "all"
           else torch.from_numpy(data.split[cells]))
    names = np.asarray(data.type_names, dtype=object)
    reference = None
    if mode == "mean":
        tr = torch.from_numpy(data.split["train"])
        reference = (data.neighbours[tr], data.cell_type[tr])
    which = "all cells" if cells == "all" else f"{cells}-split cells"
    return run_head_ablation_on_data(
        load_pbmc_attention_model(), (data.neighbours[idx], data.cell_type[idx]),
        names[data.cell_type[idx].numpy()], data.observed[idx], out_dir, layers="attention",
        gene_names=data.gene_names, ablation=ablation, mode=mode, reference_inputs=reference,
        n_permutations=n_permutations, alpha=alpha, random_state=random_state,
        batch_size=batch_size, top_k=top_k, plot=plot, verbose=verbose, show_progress=show_progress,
        label=f"PBMCs (pbmc68k_reduced, {which}; shipped neighbour-attention model)",
        overwrite=overwrite,
    )
