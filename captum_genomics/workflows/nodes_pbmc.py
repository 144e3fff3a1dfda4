"""The node-importance job: which GO-term nodes of a cell classifier separate each class, held out.

What :func:`run_nodes_job` does, in order:

1. loads the cells (an AnnData, a path to an ``.h5ad``, or by default
   scanpy's ``pbmc68k_reduced``: ``.raw`` log-normalized, labels
   ``obs["bulk_labels"]``) and the model (by default the shipped GO-structured
   classifier, :func:`captum_genomics.zoo.go_pbmc.load_go_pbmc_model`, with
   its node layer ``terms`` and its 134 GO-term nodes);
2. keeps the cells the model did not train on (``cells="held_out"``: the
   validation and test cells of the split recorded in ``go_pbmc.json``; the
   default for the shipped model) or every cell (``cells="all"``: the only
   choice for your own model, whose training cells the job cannot know);
   classes with fewer than ``n_folds`` of these cells are dropped, with a line
   in the report and the summary;
3. runs :meth:`captum_genomics.methods.LayerNodeProbe.attribute`: per (node,
   class) the out-of-fold AUROC of a logistic-regression probe with its
   bootstrap CI, permutation p-value and BH q-value, width-matched random
   nodes and the same probe on an untrained copy of the model; then
   :meth:`~captum_genomics.methods.LayerNodeProbe.parent_vs_children` (with
   ``parents``; by default the GO hierarchy of the shipped model) and
   :meth:`~captum_genomics.methods.LayerNodeProbe.perturbation` (with
   ``perturb``);
4. writes, through :class:`captum_genomics._utils.outputs.OutputFolder` (all
   files staged, moved into place when the job succeeds, ``summary.json``
   last; nothing replaced without ``overwrite``):

   - ``node_table.csv``: :meth:`NodeProbeResult.to_frame`, one row per
     (node, class);
   - ``parent_vs_children.csv``: one row per (parent, class);
   - ``perturbation.csv``: per (node, class), AUROC and class probability of
     the probes before and after the genes are set to 0 (or their mean);
   - ``node_heatmap.png``: held-out AUROC, node x class (the ``max_heatmap_nodes``
     nodes with the best AUROC over the classes), significant cells marked;
   - ``summary.json``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["run_nodes_job", "OUTPUT_FILES", "CELLS"]

OUTPUT_FILES = ("node_table.csv", "parent_vs_children.csv", "perturbation.csv",
                "node_heatmap.png", "summary.json")
"""Every file the job may write."""

CELLS = ("held_out", "all")
"""Values of ``cells``."""


def _matrix(adata, layer_matrix: str | None, use_raw: bool):
    """``(X dense float32, gene names)`` of the chosen matrix of ``adata``."""
    if use_raw:
        if adata.raw is None:
            raise ValueError("`use_raw=True` but the AnnData has no .raw.")
        x, genes = adata.raw.X, adata.raw.var_names
    elif layer_matrix is not None:
        if layer_matrix not in adata.layers:
            raise ValueError(f"the AnnData has no layer {layer_matrix!r}; layers: "
                             f"{list(adata.layers)}.")
        x, genes = adata.layers[layer_matrix], adata.var_names
    else:
        x, genes = adata.X, adata.var_names
    x = x.toarray() if hasattr(x, "toarray") else np.asarray(x)
    return np.ascontiguousarray(x, dtype=np.float32), [str(g) for g in genes]


def _genes_list(perturb: Any) -> list[str] | None:
    if perturb is None:
        return None
    genes = [perturb] if isinstance(perturb, str) else [str(g) for g in perturb]
    if not genes:
        raise ValueError("`perturb` must name at least one gene.")
    return genes


def _heatmap(frame, class_names: list[str], k: int, alpha: float):
    """Node x class heatmap of the held-out AUROC; ``*`` where ``q <= alpha``."""
    from captum_genomics._utils.figures import figure_class

    auroc = frame.pivot(index="node", columns="class", values="auroc_oof")[class_names]
    signif = frame.pivot(index="node", columns="class", values="significant")[class_names]
    order = auroc.max(axis=1).sort_values(ascending=False, kind="stable").index[:k]
    auroc, signif = auroc.loc[order], signif.loc[order]
    n_rows, n_cols = auroc.shape
    fig = figure_class()(figsize=(4.0 + 0.55 * n_cols, 1.6 + 0.26 * n_rows))
    ax = fig.add_subplot(1, 1, 1)
    im = ax.imshow(auroc.to_numpy(dtype=float), aspect="auto", cmap="viridis", vmin=0.5,
                   vmax=1.0)
    for i in range(n_rows):
        for j in range(n_cols):
            if bool(signif.iat[i, j]):
                dark = float(auroc.iat[i, j]) < 0.8
                ax.text(j, i, "*", ha="center", va="center", fontsize=9,
                        color="white" if dark else "black")
    ax.set_xticks(range(n_cols))
    ax.set_xticklabels(class_names, rotation=45, ha="right", fontsize=7)
    ax.set_yticks(range(n_rows))
    ax.set_yticklabels([n if len(n) <= 48 else n[:45] + "..." for n in auroc.index],
                       fontsize=6)
    ax.set_title(f"held-out AUROC of the {n_rows} best nodes (* q <= {alpha:g})", fontsize=8)
    fig.colorbar(im, ax=ax, fraction=0.03, pad=0.02, label="out-of-fold AUROC")
    fig.tight_layout()
    return fig


def run_nodes_job(
    out_dir: str | os.PathLike = "captum_genomics_nodes_out",
    model: Any = None,
    adata: Any = None,
    layer: str | None = None,
    nodes: Mapping[str, Any] | None = None,
    parents: Mapping[str, Sequence[str]] | None = None,
    labels_key: str | None = None,
    cells: str | None = None,
    n_folds: int = 3,
    n_permutations: int = 99,
    n_bootstrap: int = 1000,
    n_random: int = 20,
    untrained: Any = "reinit",
    perturb: Any = None,
    perturb_value: str = "zero",
    random_state: int = 0,
    use_raw: bool | None = None,
    layer_matrix: str | None = None,
    alpha: float = 0.05,
    max_heatmap_nodes: int = 30,
    threads: int | None = 1,
    plot: bool = True,
    show_progress: bool = False,
    overwrite: bool = False,
    verbose: bool = True,
) -> dict:
    """Probe every node of a layer for every class on held-out cells; write tables and a summary.

    Parameters
    ----------
    out_dir : str or PathLike
        Output folder (created). Default ``"captum_genomics_nodes_out"``.
    model : nn.Module or None
        The classifier, in eval mode. Default None: the shipped GO model
        (:func:`~captum_genomics.zoo.go_pbmc.load_go_pbmc_model`).
    adata : AnnData, str or None
        The cells, or an ``.h5ad`` path. Default None: ``pbmc68k_reduced``
        (``.raw``, labels ``"bulk_labels"``); needs ``model`` to be None.
    layer : str, optional
        Dotted name of the node layer in ``model``. Default: ``"terms"`` for
        the shipped model; required for your own.
    nodes : Mapping[str, unit indices], optional
        Node name -> its units in ``layer``'s output. Default: the shipped
        model's GO terms (``go_pbmc_nodes(label="name")``); required for your
        own model.
    parents : Mapping[str, Sequence[str]] or False, optional
        Parent node -> child nodes, for ``parent_vs_children.csv``. Default
        None: the GO hierarchy for the shipped model, none otherwise; False:
        none.
    labels_key : str, optional
        ``obs`` column of the classes. Default ``"bulk_labels"`` for the
        default data; required otherwise.
    cells : {"held_out", "all"}, optional
        Default: ``"held_out"`` for the shipped model (its validation and test
        cells), ``"all"`` otherwise (``"held_out"`` needs the shipped split).
    n_folds : int
        Stratified folds of the probes. Default 3: the smallest class of the
        default held-out cells has 3 cells. Classes with fewer cells are
        dropped.
    n_permutations, n_bootstrap, n_random
        See :meth:`LayerNodeProbe.attribute`. Defaults 99, 1000, 20.
    untrained : "reinit", None or nn.Module
        The untrained-copy control. Default ``"reinit"``.
    perturb : str or sequence of str, optional
        Gene name(s), set together to ``perturb_value`` in every cell, for
        ``perturbation.csv``.
    perturb_value : {"zero", "mean"}
        Default ``"zero"``.
    random_state : int
        Seed of folds, permutations, resamples, random nodes, re-initialization.
    use_raw, layer_matrix
        The matrix of ``adata`` the model reads: ``.raw.X``, a ``.layers``
        entry, or (default for your own data) ``.X``. Default data: ``.raw``.
    alpha : float
        BH level of the ``significant`` column. Default 0.05.
    max_heatmap_nodes : int
        Rows of the heatmap. Default 30.
    threads : int or None
        torch's intra-op threads while the job runs (restored afterwards).
        Default 1: the probes are thousands of tiny fits, which threads slow
        down (on 2 shared cores the default job's probes took 10x longer with
        2 threads than with 1). None: leave torch's setting.
    plot : bool
        Write ``node_heatmap.png`` (needs matplotlib). Default True.
    show_progress : bool
        A progress bar over the nodes. Default False.
    overwrite : bool
        Replace an earlier run's files in ``out_dir``. Default False.
    verbose : bool
        Print the report. Default True.

    Returns
    -------
    dict
        The content of ``summary.json`` plus ``"report"`` (the printed text).

    Raises
    ------
    FileExistsError
        ``out_dir`` holds an earlier run and ``overwrite`` is False (checked
        before any computation).
    ValueError
        An unknown ``cells`` or ``perturb_value``, a gene of ``perturb`` not
        in the data, a missing ``layer``/``nodes``/``labels_key`` for your own
        model or data, fewer than two classes left, and the errors of
        :meth:`LayerNodeProbe.attribute`.
    """
    import torch

    from captum_genomics._utils.outputs import check_output_folder

    check_output_folder(out_dir, OUTPUT_FILES, overwrite)
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int)
                                or threads < 1):
        raise ValueError(f"`threads` must be None or an integer >= 1, got {threads!r}.")
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        return _run(out_dir, model, adata, layer, nodes, parents, labels_key, cells, n_folds,
                    n_permutations, n_bootstrap, n_random, untrained, perturb, perturb_value,
                    random_state, use_raw, layer_matrix, alpha, max_heatmap_nodes, plot,
                    show_progress, overwrite, verbose)
    finally:
        torch.set_num_threads(before)


def _run(out_dir, model, adata, layer, nodes, parents, labels_key, cells, n_folds,
         n_permutations, n_bootstrap, n_random, untrained, perturb, perturb_value,
         random_state, use_raw, layer_matrix, alpha, max_heatmap_nodes, plot, show_progress,
         overwrite, verbose) -> dict:
    import torch

    from captum_genomics._utils.outputs import OutputFolder, finish_report, stage_summary
    from captum_genomics.methods import LayerNodeProbe

    t_start = time.perf_counter()
    shipped = model is None
    if cells is None:
        cells = "held_out" if shipped else "all"
    if cells not in CELLS:
        raise ValueError(f"`cells` must be one of {CELLS}, got {cells!r}.")
    if cells == "held_out" and not shipped:
        raise ValueError("`cells='held_out'` needs the shipped model's split; for your own "
                         "model give cells it did not train on with `cells='all'`.")
    if perturb_value not in ("zero", "mean"):
        raise ValueError(f"`perturb_value` must be 'zero' or 'mean', got {perturb_value!r}.")
    genes_perturbed = _genes_list(perturb)
    if adata is None and not shipped:
        raise ValueError("your own `model` needs your own cells: pass `adata`.")

    if adata is None:
        from captum_genomics.sc.pbmc import LABEL_KEY, _import_scanpy

        adata = _import_scanpy().datasets.pbmc68k_reduced()
        labels_key = LABEL_KEY if labels_key is None else labels_key
        if use_raw is None and layer_matrix is None:
            use_raw = True
        source = "scanpy.datasets.pbmc68k_reduced()"
    elif isinstance(adata, (str, os.PathLike)):
        import anndata

        source = os.fspath(adata)
        adata = anndata.read_h5ad(source)
    else:
        source = "AnnData"
    if labels_key is None:
        raise ValueError("`labels_key` (the obs column of the classes) is required for your "
                         "own cells.")
    if labels_key not in adata.obs:
        raise ValueError(f"`labels_key` {labels_key!r} is not an obs column; columns: "
                         f"{list(adata.obs.columns)[:10]}.")
    x, gene_names = _matrix(adata, layer_matrix, bool(use_raw))
    if genes_perturbed is not None:
        known = set(gene_names)
        for g in genes_perturbed:
            if g not in known:
                raise ValueError(f"`perturb`: {g!r} is not a gene of the data "
                                 f"({len(gene_names)} genes).")
    labels = adata.obs[labels_key].astype(str).to_numpy()

    if shipped:
        from captum_genomics.zoo.go_pbmc import (
            TERM_LAYER,
            go_pbmc_nodes,
            go_pbmc_parents,
            load_go_pbmc_metadata,
            load_go_pbmc_model,
        )

        net = load_go_pbmc_model()
        meta = load_go_pbmc_metadata()
        layer = TERM_LAYER if layer is None else layer
        nodes = go_pbmc_nodes(label="name") if nodes is None else nodes
        if parents is None:
            parents = go_pbmc_parents(label="name")
        if gene_names != list(meta["genes"]):
            raise ValueError("the cells' genes are not the shipped model's 765 genes in its "
                             "order (pbmc68k_reduced .raw.var_names).")
    else:
        net, meta = model, None
        if layer is None or nodes is None:
            raise ValueError("your own `model` needs `layer` (the node layer's name) and "
                             "`nodes` (node -> unit indices).")
    parents = parents or None

    if cells == "held_out":
        split = meta["split"]
        keep = np.sort(np.concatenate([np.asarray(split[k], dtype=np.int64)
                                       for k in split if k not in ("train", "seed",
                                                                   "fractions")]))
        if len(adata) != len(split["train"]) + len(keep):
            raise ValueError(f"`cells='held_out'` needs the {len(split['train']) + len(keep)} "
                             f"cells of pbmc68k_reduced in order, got {len(adata)}.")
        held_parts = [k for k in split if k not in ("train", "seed", "fractions")]
        cells_text = f"held out ({' + '.join(held_parts)} of the model's split)"
    else:
        keep = np.arange(len(adata))
        cells_text = "all"
    classes, counts = np.unique(labels[keep], return_counts=True)
    dropped = {str(c): int(n) for c, n in zip(classes, counts) if n < n_folds}
    if dropped:
        keep = keep[~np.isin(labels[keep], list(dropped))]
    kept_classes = sorted(set(labels[keep]))
    if len(kept_classes) < 2:
        raise ValueError(f"fewer than two classes have at least n_folds={n_folds} cells; "
                         f"lower `n_folds`.")
    x_t = torch.from_numpy(x[keep])
    y = labels[keep]

    probe = LayerNodeProbe(net, layer)
    t0 = time.perf_counter()
    result = probe.attribute(
        x_t, y, nodes, n_folds=n_folds, n_permutations=n_permutations,
        n_bootstrap=n_bootstrap, alpha=alpha, n_random=n_random, untrained=untrained,
        random_state=random_state, show_progress=show_progress)
    probe_seconds = time.perf_counter() - t0
    table = result.to_frame()
    comparison = probe.parent_vs_children(result, parents).to_frame() if parents else None
    perturbation = output = None
    if genes_perturbed is not None:
        pres = probe.perturbation(x_t, genes_perturbed, result, value=perturb_value,
                                  gene_names=gene_names)
        perturbation = pres.to_frame()
        output = pres.output_frame()

    n_tests = len(table)
    n_sig = int(table["significant"].sum())
    p_floor = 1.0 / (1 + n_permutations) if n_permutations else None
    lines = [
        f"LayerNodeProbe on layer {layer!r}: {len(result.node_names)} nodes x "
        f"{len(kept_classes)} classes, {len(keep)} cells ({cells_text}; {source}), "
        f"{n_folds}-fold probes, {n_permutations} permutations (p >= "
        f"{p_floor if p_floor is None else round(p_floor, 4)}), {n_bootstrap} bootstrap "
        f"resamples, {n_random} random nodes per width: {probe_seconds:.1f} s",
        f"significant (BH q <= {alpha:g}): {n_sig} of {n_tests} (node, class) tests",
    ]
    if dropped:
        lines.append("dropped (fewer cells than n_folds): " + ", ".join(
            f"{c} ({n} cells)" for c, n in dropped.items()))
    per_class: dict[str, Any] = {}
    lines.append("top 3 nodes per class: out-of-fold AUROC [95% CI], q; untrained copy; "
                 "random nodes mean:")
    for c in result.class_names:
        rank = result.ranking(c)
        n_c = int(rank["n_cells"].iloc[0])
        top = rank.head(3)
        per_class[c] = {
            "n_cells": n_c,
            "n_significant": int(rank["significant"].sum()),
            "top_nodes": [{k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()
                           if k in ("node", "auroc_oof", "ci_low", "ci_high", "p_value",
                                    "q_value", "significant", "untrained_auroc",
                                    "random_node_mean", "random_node_q95", "auroc_in_sample")}
                          for row in top.to_dict("records")],
        }
        lines.append(f"  {c} (n={n_c}, {per_class[c]['n_significant']} significant):")
        for row in top.itertuples():
            lines.append(f"    {row.node}: {row.auroc_oof:.3f} [{row.ci_low:.3f}, "
                         f"{row.ci_high:.3f}], q={row.q_value:.3g}; untrained "
                         f"{row.untrained_auroc:.3f}; random {row.random_node_mean:.3f}")
    summary: dict[str, Any] = {
        "source": source,
        "model": "captum_genomics.zoo.go_pbmc" if shipped else type(net).__name__,
        "layer": layer, "n_nodes": len(result.node_names), "classes": result.class_names,
        "cells": cells, "n_cells": int(len(keep)), "labels_key": labels_key,
        "dropped_classes": dropped,
        "params": {"n_folds": n_folds, "n_permutations": n_permutations,
                   "n_bootstrap": n_bootstrap, "n_random": n_random,
                   "untrained": None if untrained is None else
                   (untrained if isinstance(untrained, str) else "given"),
                   "alpha": alpha, "random_state": random_state,
                   "matrix": "adata.raw.X" if use_raw else (
                       f"adata.layers[{layer_matrix!r}]" if layer_matrix else "adata.X")},
        "p_value_floor": p_floor,
        "n_tests": n_tests, "n_significant": n_sig,
        "n_significant_untrained_above_trained": int(
            (table["significant"] & (table["untrained_auroc"] >= table["auroc_oof"])).sum()),
        "n_significant_above_random_q95": int(
            (table["significant"] & (table["auroc_oof"] > table["random_node_q95"])).sum()),
        "median_auroc": {"trained": float(table["auroc_oof"].median()),
                         "untrained": float(table["untrained_auroc"].median()),
                         "random_nodes": float(table["random_node_mean"].median())},
        "per_class": per_class,
        "probe_seconds": round(probe_seconds, 2),
        "torch_threads": torch.get_num_threads(),
    }
    lines.append(f"of the {n_sig} significant tests, {summary['n_significant_above_random_q95']} "
                 f"beat the 95th percentile of their width-matched random nodes and "
                 f"{summary['n_significant_untrained_above_trained']} score no higher than on "
                 f"the untrained copy")
    lines.append(f"median AUROC over all tests: trained {summary['median_auroc']['trained']:.3f}"
                 f", untrained copy {summary['median_auroc']['untrained']:.3f}, random nodes "
                 f"{summary['median_auroc']['random_nodes']:.3f}")
    if comparison is not None:
        n_pos = int((comparison["ci_low"] > 0).sum())
        n_neg = int((comparison["ci_high"] < 0).sum())
        summary["parent_vs_children"] = {"n_parents": int(comparison["parent"].nunique()),
                                         "n_tests": len(comparison),
                                         "parent_better": n_pos, "children_better": n_neg}
        lines.append(f"parent vs children: {summary['parent_vs_children']['n_parents']} parents;"
                     f" the parent's AUROC beats its children's (CI > 0) in {n_pos} and trails"
                     f" them (CI < 0) in {n_neg} of {len(comparison)} (parent, class) pairs")
    if perturbation is not None:
        pert: dict[str, Any] = {"genes": genes_perturbed, "value": perturb_value}
        if output is not None:
            pert["model_probability"] = output.to_dict("records")
            big = output.iloc[int(np.argmax(np.abs(output["delta"].to_numpy())))]
            lines.append(
                f"perturbation {'+'.join(genes_perturbed)} -> {perturb_value}: largest change "
                f"of the model's own probability: {big['class']} {big['probability']:.3f} -> "
                f"{big['probability_perturbed']:.3f} (delta {big['delta']:+.3f} "
                f"[{big['ci_low']:+.3f}, {big['ci_high']:+.3f}])")
        worst = perturbation.iloc[int(np.argmin(perturbation["delta_auroc"].to_numpy()))]
        pert["largest_auroc_drop"] = {k: (v.item() if hasattr(v, "item") else v)
                                      for k, v in worst.items()}
        lines.append(f"  largest node AUROC drop: {worst['node']} for {worst['class']}: "
                     f"{worst['auroc']:.3f} -> {worst['auroc_perturbed']:.3f} "
                     f"[{worst['delta_auroc_ci_low']:+.3f}, {worst['delta_auroc_ci_high']:+.3f}]")
        summary["perturbation"] = pert

    files = ["node_table.csv"]
    with OutputFolder(out_dir, OUTPUT_FILES, overwrite) as out:
        table.to_csv(out.staged("node_table.csv"), index=False)
        if comparison is not None:
            comparison.to_csv(out.staged("parent_vs_children.csv"), index=False)
            files.append("parent_vs_children.csv")
        if perturbation is not None:
            perturbation.to_csv(out.staged("perturbation.csv"), index=False)
            files.append("perturbation.csv")
        if plot:
            try:
                _heatmap(table, result.class_names, max_heatmap_nodes, alpha).savefig(
                    out.staged("node_heatmap.png"), dpi=110, bbox_inches="tight")
                files.append("node_heatmap.png")
            except ImportError as err:
                lines.append(f"plot skipped: {err}")
        stage_summary(out, summary, files, t_start)
    return finish_report(out, out_dir, summary, lines, verbose)
