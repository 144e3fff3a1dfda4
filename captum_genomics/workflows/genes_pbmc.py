"""The gene-attribution job: which genes drive each class of a cell classifier, with intervals.

What :func:`run_genes_job` does, in order:

1. loads the cells (an AnnData, a path to an ``.h5ad``, or by default
   scanpy's ``pbmc68k_reduced``: 700 PBMCs, 765 genes, ``.raw`` log-normalized,
   labels ``obs["bulk_labels"]``) and the model (by default the shipped PBMC
   classifier, :func:`captum_genomics.zoo.pbmc.load_pbmc_classifier`);
2. explains every cell with
   :func:`captum_genomics.sc.gene_attributions.class_gene_attributions`
   (Integrated Gradients by default, zero baseline, 50 steps), for its
   predicted class, its label, or every class (one pass);
3. writes, through :class:`captum_genomics._utils.outputs.OutputFolder` (all
   files staged, moved into place when the job succeeds, ``summary.json``
   last; nothing replaced without ``overwrite``):

   - ``gene_table.csv``: per (class, gene) the signed mean, mean of
     absolute values, std (ddof 1), n, sem, t and bootstrap 95% CIs,
     fraction of positive cells, rank (:func:`~captum_genomics.stats.attribution_table`,
     ``full=True``);
   - ``top_genes.csv``: the ``top_k`` highest and lowest genes per class;
   - ``scvi_table.csv`` (``scvi_compatible=True``): scvi-tools' own table per
     class, as ``model.predict(indices=<class cells>, ig_interpretability=True)``
     returns it;
   - ``gene_attributions.h5ad``: the AnnData with the results under ``key``
     (:func:`~captum_genomics.sc.anndata_results.write_gene_attributions`);
   - ``top_genes.png``, ``positive_contributions.png``, ``heatmap.png``;
   - ``summary.json``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

__all__ = ["run_genes_job", "OUTPUT_FILES", "METHODS"]

OUTPUT_FILES = ("gene_table.csv", "top_genes.csv", "scvi_table.csv", "gene_attributions.h5ad",
                "top_genes.png", "positive_contributions.png", "heatmap.png", "summary.json")
"""Every file the job may write."""

METHODS = ("ig", "deeplift", "input_x_gradient")
"""Names of ``method``: Captum's IntegratedGradients, DeepLift (rescale), InputXGradient."""


def _load_model(model):
    import torch

    if model is None:
        from captum_genomics.zoo.pbmc import load_pbmc_classifier, load_pbmc_metadata

        return load_pbmc_classifier(), list(load_pbmc_metadata()["label_names"])
    if isinstance(model, (str, os.PathLike)):
        path = Path(model)
        if not path.is_file():
            raise FileNotFoundError(f"`model` {os.fspath(path)!r} is not a file; give a "
                                    "TorchScript file (torch.jit.save) or an nn.Module.")
        try:
            return torch.jit.load(os.fspath(path), map_location="cpu").eval(), None
        except RuntimeError as err:
            raise ValueError(f"`model` {os.fspath(path)!r} is not a TorchScript file "
                             f"(torch.jit.save): {err}") from None
    if not callable(model):
        raise TypeError(f"`model` must be an nn.Module, a TorchScript path or None, got "
                        f"{type(model).__name__}.")
    return model, None


def _method(method, model):
    from captum.attr import DeepLift, InputXGradient

    if method == "ig":
        return model
    if method == "deeplift":
        return DeepLift(model)
    if method == "input_x_gradient":
        return InputXGradient(model)
    if isinstance(method, str):
        raise ValueError(f"`method` must be one of {METHODS} or a Captum Attribution, got "
                         f"{method!r}.")
    return method


def run_genes_job(
    out_dir: str | os.PathLike = "captum_genomics_genes_out",
    model: Any = None,
    adata: Any = None,
    target: str = "predicted",
    method: Any = "ig",
    baseline: str = "zeros",
    n_steps: int = 50,
    labels_key: str | None = None,
    class_names: Sequence[str] | None = None,
    layer: str | None = None,
    use_raw: bool | None = None,
    n_bootstrap: int = 1000,
    top_k: int = 10,
    batch_size: int = 64,
    random_state: int = 0,
    key: str = "gene_attributions",
    scvi_compatible: bool = False,
    plot: bool = True,
    verbose: bool = True,
    show_progress: bool = False,
    overwrite: bool = False,
) -> dict:
    """Explain every cell, tabulate per class, write tables, plots, an AnnData and a summary.

    Parameters
    ----------
    out_dir : str or PathLike
        Output folder (created). Default ``"captum_genomics_genes_out"``.
    model : nn.Module, str or None
        The classifier ``(N, G) -> (N, C)``, in eval mode, or a TorchScript
        file. Default None: the shipped PBMC classifier (its class names).
    adata : AnnData, str or None
        The cells, or an ``.h5ad`` path. Default None: ``pbmc68k_reduced``,
        read from ``.raw`` (log-normalized, what the shipped classifier
        reads), labels ``"bulk_labels"``.
    target : {"predicted", "label", "all"}
        The class each cell is explained for. Default ``"predicted"``.
    method : {"ig", "deeplift", "input_x_gradient"} or captum Attribution
        Default ``"ig"`` (Captum's IntegratedGradients).
    baseline : {"zeros", "mean", "shuffle"}
        Default ``"zeros"``.
    n_steps : int
        IG steps. Default 50.
    labels_key : str, optional
        ``obs`` column of the labels (needed by ``target="label"``; used to
        group ``target="all"`` and to report accuracy). Default
        ``"bulk_labels"`` for the default data, else none.
    class_names : sequence of str, optional
        Names of the model's outputs (needed to map name labels to outputs).
        Default: the shipped classifier's, else ``"0"``, ``"1"``, ...
    layer, use_raw
        The matrix of ``adata`` the model reads. Default: ``.raw`` for the
        default data, ``.X`` otherwise.
    n_bootstrap : int
        Bootstrap resamples of the table's CIs. Default 1000.
    top_k : int
        Genes per class and direction in ``top_genes.csv`` and the plots.
        Default 10.
    batch_size : int
        Cells per attribution call. Default 64.
    random_state : int
        Seeds the bootstrap and the ``"shuffle"`` baseline. Default 0.
    key : str
        AnnData key of the results. Default ``"gene_attributions"``.
    scvi_compatible : bool
        Also write ``scvi_table.csv``. Default False.
    plot : bool
        Write the PNGs (needs matplotlib). Default True.
    verbose : bool
        Print the report. Default True.
    show_progress : bool
        A progress bar over batches of cells. Default False.
    overwrite : bool
        Replace an earlier run's files in ``out_dir``. Default False.

    Returns
    -------
    dict
        The content of ``summary.json`` plus ``"report"`` (the printed text).

    Raises
    ------
    FileExistsError
        ``out_dir`` holds an earlier run and ``overwrite`` is False (checked
        before any computation).
    ValueError, TypeError
        Bad arguments (see :func:`class_gene_attributions`).
    """
    import pandas as pd

    from captum_genomics._utils.outputs import (
        OutputFolder,
        check_output_folder,
        finish_report,
        stage_summary,
    )
    from captum_genomics.sc.gene_attributions import class_gene_attributions
    from captum_genomics.stats.attribution_tables import attribution_table, top_genes

    check_output_folder(out_dir, OUTPUT_FILES, overwrite)
    t_start = time.perf_counter()
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise ValueError(f"`top_k` must be an integer >= 1, got {top_k!r}.")
    default_data = adata is None
    if default_data:
        from captum_genomics.sc.pbmc import LABEL_KEY, _import_scanpy

        adata = _import_scanpy().datasets.pbmc68k_reduced()
        labels_key = LABEL_KEY if labels_key is None else labels_key
        if use_raw is None and layer is None:
            use_raw = True
        source = "scanpy.datasets.pbmc68k_reduced()"
    elif isinstance(adata, (str, os.PathLike)):
        import anndata

        source = os.fspath(adata)
        adata = anndata.read_h5ad(source)
    else:
        source = "AnnData"
    use_raw = bool(use_raw)
    net, default_names = _load_model(model)
    class_names = default_names if class_names is None else class_names
    attr_method = _method(method, net)

    t0 = time.perf_counter()
    result = class_gene_attributions(
        attr_method, adata, target, labels_key, class_names=class_names, baseline=baseline,
        n_steps=n_steps, batch_size=batch_size, random_state=random_state, layer=layer,
        use_raw=use_raw, show_progress=show_progress)
    seconds = time.perf_counter() - t0
    group_by = "target" if not result.all_classes else (
        "label" if result.labels is not None else "none")
    table = result.to_frame(group_by=group_by, n_bootstrap=n_bootstrap,
                            random_state=random_state)
    tops = []
    for direction in ("positive", "negative"):
        t = top_genes(table, top_k, direction)
        t.insert(1, "direction", direction)
        tops.append(t)
    top_table = pd.concat(tops, ignore_index=True)

    out_adata = adata
    if use_raw:
        out_adata = adata.raw.to_adata()
    write_args = {"key": key, "table": table, "copy": True}
    n_cells = result.attributions.shape[0]
    names = result.class_names
    lines = [
        f"{result.params['method']} on {n_cells} cells x {len(result.genes)} genes "
        f"({source}, matrix {result.params['matrix']}), target {result.target!r}, "
        f"baseline {result.params['baseline']}"
        + (f", {n_steps} steps ({result.params['ig_path']})" if result.params['n_steps'] else "")
        + f": {seconds:.2f} s",
    ]
    summary: dict[str, Any] = {
        "source": source, "n_cells": int(n_cells), "n_genes": len(result.genes),
        "n_classes": len(names), "classes": names, "target": result.target,
        "group_by": group_by, "params": result.params, "attribute_seconds": round(seconds, 3),
        "n_bootstrap": int(n_bootstrap), "random_state": random_state, "key": key,
    }
    if result.labels is not None:
        acc = float((result.predicted == result.labels).mean())
        wrong = int((result.predicted != result.labels).sum())
        summary["accuracy"] = acc
        summary["misclassified_cells"] = wrong
        lines.append(f"accuracy against {labels_key!r}: {acc:.3f} ({wrong} cells misclassified"
                     + ("; explained toward their predicted, wrong, class)"
                        if result.target == "predicted" and wrong else ")"))
    if result.convergence_delta is not None:
        d = np.abs(result.convergence_delta)
        summary["convergence_delta"] = {"max_abs": float(d.max()),
                                        "median_abs": float(np.median(d))}
        lines.append(f"convergence delta |sum(phi) - (f(x) - f(x'))|: max {d.max():.2e}, "
                     f"median {np.median(d):.2e}")
    per_class = {}
    lines.append(f"top {min(top_k, 5)} genes per class (mean attribution, 95% bootstrap CI):")
    for name, sub in table.groupby("class", sort=False):
        head = sub.head(top_k)
        per_class[name] = {
            "n_cells": int(sub["n"].iloc[0]),
            "top_positive": list(head["gene"]),
            "top_positive_mean": [float(v) for v in head["mean"]],
            "top_negative": list(sub.tail(top_k)["gene"][::-1]),
        }
        shown = ", ".join(f"{g} {m:.3f} [{lo:.3f}, {hi:.3f}]" for g, m, lo, hi in zip(
            head["gene"][:5], head["mean"][:5], head["boot_low"][:5], head["boot_high"][:5]))
        lines.append(f"  {name} (n={per_class[name]['n_cells']}): {shown}")
    summary["per_class"] = per_class

    files = ["gene_table.csv", "top_genes.csv", "gene_attributions.h5ad"]
    with OutputFolder(out_dir, OUTPUT_FILES, overwrite) as out:
        table.to_csv(out.staged("gene_table.csv"), index=False)
        top_table.to_csv(out.staged("top_genes.csv"), index=False)
        if scvi_compatible:
            scvi = attribution_table(result.attributions, result._grouping(group_by),
                                     result.genes, names, scvi_compatible=True)
            scvi.to_csv(out.staged("scvi_table.csv"))
            files.append("scvi_table.csv")
        written = result.to_anndata(out_adata, **write_args)
        written.write_h5ad(out.staged("gene_attributions.h5ad"))
        if plot:
            try:
                from captum_genomics.sc.plot import (
                    plot_class_top_genes,
                    plot_gene_class_heatmap,
                    plot_positive_contributions,
                )

                plot_class_top_genes(table, k=min(top_k, 5)).savefig(
                    out.staged("top_genes.png"), dpi=110)
                plot_positive_contributions(table, k=2 * top_k).figure.savefig(
                    out.staged("positive_contributions.png"), dpi=110)
                plot_gene_class_heatmap(table, k=min(top_k, 5)).figure.savefig(
                    out.staged("heatmap.png"), dpi=110)
                files += ["top_genes.png", "positive_contributions.png", "heatmap.png"]
            except ImportError as err:
                lines.append(f"plots skipped: {err}")
        stage_summary(out, summary, files, t_start)
    return finish_report(out, out_dir, summary, lines, verbose)
