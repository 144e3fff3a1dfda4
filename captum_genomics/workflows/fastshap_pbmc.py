"""The single-cell job: FastSHAP over genes for a cell-type classifier on real PBMCs.

What :func:`run_fastshap_job` does, in order:

1. loads ``pbmc68k_reduced`` (:func:`captum_genomics.sc.pbmc.load_pbmc68k`: 700
   cells, 765 genes, log-normalized, fixed stratified split) and the shipped
   classifier (:func:`captum_genomics.zoo.pbmc.load_pbmc_classifier`);
2. fits :class:`~captum_genomics.FastSHAP` on the train split (validation
   split for early stopping), one player per gene. **Game**: the model's own
   baseline game, held-out genes set to 0 (log-normalized 0 = not detected),
   ``v(x, S) = softmax(f(x_S, 0))``. **Link**: softmax, so the values of a
   cell sum to ``p(class | cell) - p(class | all genes zero)``, in
   probability units; this is exactly the game of
   ``captum.attr.ShapleyValueSampling(lambda x: model(x).softmax(-1))`` with
   ``baselines=0``, so the two are directly comparable (see
   ``docs/fastshap.md``);
3. explains every test-split cell for its true class (``target="true"``,
   default) or the model's predicted class, with the efficiency gap
   (convergence delta);
4. writes ``gene_table.csv`` (every gene in every class: mean, std, n, 95% t
   CI, rank; :func:`captum_genomics.stats.attribution_table`),
   ``top_genes.csv`` (top positive and negative genes per class, known markers
   flagged), ``attributions.npz``, ``fastshap.pt`` (:meth:`FastSHAP.save`),
   ``summary.json``, ``top_genes.png`` and ``stacked_contributions.png``
   (the output folder is checked before step 2; the files are staged and moved
   into place together when the job succeeds, ``summary.json`` last:
   :class:`~captum_genomics._utils.outputs.OutputFolder`);
5. prints a summary: per class the top genes and which are known markers
   (:data:`PBMC_MARKERS`), the efficiency gap and the fit time.

:func:`run_fastshap_on_data` runs steps 2-5 on any model and matrix (the
``captum-genomics fastshap --h5ad ...`` path).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from captum_genomics._utils.deprecation import MISSING, renamed_keyword
from captum_genomics._utils.outputs import OutputFolder

__all__ = ["PBMC_MARKERS", "MARKER_SOURCE", "OUTPUT_FILES", "SPLIT_NAMES", "split_from_obs",
           "run_fastshap_on_data", "run_fastshap_job"]

OUTPUT_FILES = ("gene_table.csv", "top_genes.csv", "attributions.npz", "fastshap.pt",
                "summary.json", "top_genes.png", "stacked_contributions.png")
"""Every file :func:`run_fastshap_on_data` may write (``summary.json`` is written last)."""

_T = ["CD3D", "CD3E", "IL7R"]
_CD8 = ["CD8A", "CD8B", "CD3D", "CD3E"]
PBMC_MARKERS: dict[str, list[str]] = {
    "CD19+ B": ["CD79A", "CD79B", "MS4A1", "CD74", "CD19"],
    "CD56+ NK": ["NKG7", "GNLY", "GZMB", "PRF1", "NCAM1"],
    "CD14+ Monocyte": ["LYZ", "S100A8", "S100A9", "CST3", "FCN1", "CD14"],
    "Dendritic": ["FCER1A", "CST3", "HLA-DRA", "HLA-DRB1", "HLA-DRB5", "CD1C"],
    "CD4+/CD25 T Reg": _T + ["FOXP3", "IL2RA"],
    "CD4+/CD45RO+ Memory": _T,
    "CD4+/CD45RA+/CD25- Naive T": _T + ["CCR7"],
    "CD8+ Cytotoxic T": _CD8,
    "CD8+/CD45RA+ Naive Cytotoxic": _CD8 + ["CCR7"],
    "CD34+": ["CD34"],
}
"""Canonical PBMC marker genes per ``bulk_labels`` type (some are not in the 765-gene panel)."""

MARKER_SOURCE = (
    "Canonical PBMC markers as listed in the Seurat PBMC 3k guided clustering tutorial "
    "(Satija lab: IL7R/CCR7 naive CD4 T, CD14/LYZ monocytes, MS4A1 B, CD8A CD8 T, GNLY/NKG7 "
    "NK, FCER1A/CST3 DC) and scanpy's PBMC 3k tutorial marker list (CD79A, MS4A1, CD8A, CD8B, "
    "LYZ, CD14, S100A8, GNLY, NKG7, FCER1A, CST3), completed with the lineage genes of the "
    "FACS sorts of Zheng et al. 2017 (CD19, CD56=NCAM1, CD14, CD34, CD25=IL2RA, CD3) and "
    "standard ones (CD79B, CD74 and HLA class II for antigen-presenting cells, GZMB/PRF1 for "
    "NK, S100A9/FCN1 for monocytes, FOXP3 for Tregs)."
)


def _markers_for(name: str, markers: dict | None) -> list[str]:
    return list((markers or {}).get(name, []))


SPLIT_NAMES: dict[str, str] = {
    "train": "train", "training": "train",
    "validation": "validation", "val": "validation", "valid": "validation",
    "test": "test", "testing": "test",
}
"""Accepted values of a split column (case-insensitive, surrounding spaces ignored)."""

CARVED_VALIDATION_FRACTION = 0.15
"""Part of the train cells set aside for early stopping when a split has no validation cells."""


def split_from_obs(values, labels, random_state: int = 0, key: str = "split") -> dict:
    """Train/validation/test cell indices from a per-cell column of split names.

    Parameters
    ----------
    values : array-like, shape=(N,)
        Each cell's split, e.g. ``adata.obs["split"]``: ``train``/``training``,
        ``validation``/``val``/``valid``, ``test``/``testing``
        (case-insensitive; :data:`SPLIT_NAMES`).
    labels : array-like, shape=(N,)
        The cells' classes, to carve a stratified validation part out of the
        train cells when no cell is marked validation.
    random_state
        Seed of that carve (:func:`captum_genomics.sc.pbmc.stratified_split`).
    key
        The column's name, for messages.

    Returns
    -------
    dict
        ``"train"``, ``"validation"``, ``"test"``: sorted int64 cell indices;
        ``"carved_validation"``: True when the validation cells were taken
        from the train cells (:data:`CARVED_VALIDATION_FRACTION` of each
        class, seeded).

    Raises
    ------
    ValueError
        If any value is not a split name (the message lists them), or there
        are no train or no test cells, or too few train cells to carve a
        validation part.
    """
    from captum_genomics.sc.pbmc import stratified_split

    raw = np.asarray(values).astype(str)
    norm = np.char.lower(np.char.strip(raw))
    bad = sorted({str(r) for r, v in zip(raw, norm) if v not in SPLIT_NAMES})
    if bad:
        n_bad = int(sum(v not in SPLIT_NAMES for v in norm))
        shown = bad[:10] + (["..."] if len(bad) > 10 else [])
        raise ValueError(
            f"split column {key!r} has unexpected values {shown} ({n_bad} cells); "
            f"expected train, validation or test (also training, val, valid, testing; "
            f"any case).")
    mapped = np.array([SPLIT_NAMES[v] for v in norm])
    split = {k: np.flatnonzero(mapped == k).astype(np.int64)
             for k in ("train", "validation", "test")}
    for k in ("train", "test"):
        if len(split[k]) == 0:
            raise ValueError(f"split column {key!r} marks no cell as {k}.")
    split["carved_validation"] = False
    if len(split["validation"]) == 0:
        tr = split["train"]
        part = stratified_split(np.asarray(labels)[tr],
                                {"validation": CARVED_VALIDATION_FRACTION}, random_state)
        if len(part["validation"]) == 0 or len(part["train"]) == 0:
            raise ValueError(
                f"split column {key!r} has no validation cells and its {len(tr)} train "
                f"cells are too few to set some aside for validation.")
        split["train"] = tr[part["train"]]
        split["validation"] = tr[part["validation"]]
        split["carved_validation"] = True
    return split


def run_fastshap_on_data(
    model: torch.nn.Module,
    x: np.ndarray,
    labels: np.ndarray,
    genes: Sequence[str],
    label_names: Sequence[str],
    split: dict,
    out_dir: str | os.PathLike,
    random_state: int = 0,
    max_epochs: int = 40,
    n_samples: int = 32,
    link: str = "softmax",
    objective: str = "permutation",
    gene_dropout: float = 0.15,
    target: str = "true",
    n_cells: int | None = None,
    top_k: int = 10,
    markers: dict | None = None,
    plot: bool = True,
    verbose: bool = True,
    label: str = "cells",
    overwrite: bool = False,
    *,
    cell_names: Sequence[str] | None = None,
    split_source: str = "given",
    show_progress: bool = False,
    seed: Any = MISSING,
) -> dict:
    """Fit FastSHAP over genes, explain held-out cells, write tables and plots.

    Parameters
    ----------
    model
        In eval mode; ``(N, G)`` expression to ``(N, C)`` logits.
    x : ndarray, shape=(N, G)
        The expression the model reads (float32).
    labels : ndarray, shape=(N,)
        Integer classes, indices into ``label_names``.
    genes, label_names
        Length ``G`` and ``C``.
    split
        ``"train"``, ``"validation"``, ``"test"`` cell indices; or, the
        Python counterpart of ``--split-key``, each cell's split name
        (``adata.obs["split"]``, see :func:`split_from_obs`). The explainer
        is fitted on the train cells (validation cells for early stopping)
        and only the test cells are explained and reported.
    out_dir
        Output folder (created), checked before the fit; the files appear
        only when the job succeeds (:data:`OUTPUT_FILES`).
    random_state
        Seeds the explainer's initialization and training. Default 0.
    max_epochs
        Explainer training epochs (cosine learning-rate decay; the best
        validation epoch is kept). Default 40.
    n_samples
        Coalitions per cell per step for ``objective="fastshap"`` (and the
        fixed validation coalitions). Default 32.
    objective : {"permutation", "fastshap"}
        Training labels: fresh permutation-sampling estimates (default; on
        pbmc68k_reduced it reached per-cell Pearson r 0.97 with sampled
        Shapley values in 40 epochs, against 0.91 for the paper's loss in 60)
        or the paper's loss. See
        :func:`~captum_genomics.fastshap.training.train_explainer`.
    gene_dropout
        Augmentation: each step, each training cell's genes are reset to 0
        with this probability (30% of cells are kept as they are); 0 turns
        it off. Default 0.15.
    link : {"softmax", "identity"}
        Explain probabilities (default) or logits.
    target : {"true", "predicted"}
        Explain each test cell for its true class (default) or its predicted
        class; cells are grouped by that class in the tables.
    n_cells
        Explain only the first ``n_cells`` test cells. Default all.
    top_k
        Genes per class in ``top_genes.csv``, the plots and the report. Default 10.
    markers
        Class name to known marker genes. Default none.
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
    cell_names
        Length ``N``: the cells' ``obs_names`` (barcodes), written as
        ``obs_names`` in ``attributions.npz`` and listed in the summary.
        Default: the positions as strings.
    split_source : {"given", "obs", "job"}
        Where ``split`` comes from, for the report and ``summary.json``:
        the caller's (default; ``"obs"`` when ``split`` is per-cell names)
        or ``"job"``: made by the job, not the one the model was trained
        with, so the accuracy may include cells the model trained on (the
        report says so).
    show_progress
        Progress bars while the explainer trains. Default False.
    seed
        Deprecated spelling of ``random_state``, kept for one release
        (``DeprecationWarning``).

    Returns
    -------
    dict
        The content of ``summary.json`` (where ``random_state`` is recorded
        as ``"seed"``; ``"split"`` says where the split came from and its
        sizes) plus ``"report"`` (the printed text). ``attributions.npz``
        holds ``attributions`` (test cells x genes), ``obs_names`` (the
        explained cells' barcodes), ``cells`` (their integer positions, kept
        for compatibility), ``target``, ``labels``, ``predicted``, ``delta``
        and ``genes``.

    Raises
    ------
    ValueError
        If ``target`` is not ``"true"`` or ``"predicted"``, or FastSHAP
        rejects the model or data.
    TypeError
        If ``seed`` and ``random_state`` are both given, with different values.
    FileExistsError, NotADirectoryError, PermissionError
        If ``out_dir`` holds an earlier run's results (without ``overwrite``),
        is a file, or is not writable; raised before the fit.
    """
    random_state = renamed_keyword("seed", seed, "random_state", random_state, 0,
                                   "run_fastshap_on_data")
    from captum_genomics import FastSHAP
    from captum_genomics.fastshap.augment import feature_dropout
    from captum_genomics.stats import attribution_table, top_genes

    if target not in ("true", "predicted"):
        raise ValueError(f"`target` must be 'true' or 'predicted', got {target!r}.")
    t_start = time.perf_counter()
    if not isinstance(split, dict):
        split = split_from_obs(split, labels, random_state=0)
        split_source = "obs" if split_source == "given" else split_source
    out_dir = Path(out_dir)
    with OutputFolder(out_dir, OUTPUT_FILES, overwrite=overwrite) as out:
        model.eval()
        genes, label_names = [str(g) for g in genes], [str(c) for c in label_names]
        xt = torch.as_tensor(np.asarray(x, dtype=np.float32))
        carved = bool(split.get("carved_validation", False))
        tr, va, te = (np.asarray(split[k], dtype=np.int64)
                      for k in ("train", "validation", "test"))
        n_test_total = len(te)
        names_all = (np.array([str(c) for c in cell_names]) if cell_names is not None
                     else np.arange(len(xt)).astype(str))
        if len(names_all) != len(xt):
            raise ValueError(f"`cell_names` has {len(names_all)} names for {len(xt)} cells.")
        if n_cells is not None:
            te = te[:n_cells]

        train_kwargs = {"max_epochs": max_epochs, "lr": 1e-3, "n_samples": n_samples,
                        "batch_size": 32, "objective": objective, "schedule": "cosine",
                        "early_stopping_patience": None}
        if gene_dropout:
            train_kwargs["augment"] = feature_dropout(gene_dropout, keep_original=0.3)
        t0 = time.perf_counter()
        fs = FastSHAP.fit(model, xt[tr], xt[va], link=link, random_state=random_state,
                          explainer_kwargs={"hidden_width": 256},
                          train_kwargs=train_kwargs, show_progress=show_progress)
        fit_seconds = time.perf_counter() - t0
        hist = fs.history["explainer"]

        x_te = xt[te]
        with torch.no_grad():
            pred = model(x_te).argmax(1).numpy()
        y_te = np.asarray(labels)[te]
        explained = y_te if target == "true" else pred
        t1 = time.perf_counter()
        attr, delta = fs.attribute(x_te, target=torch.as_tensor(explained),
                                   return_convergence_delta=True)
        explain_seconds = time.perf_counter() - t1
        attr_np = attr.double().numpy()

        table = attribution_table(attr_np, explained, genes, label_names)
        table.to_csv(out.staged("gene_table.csv"), index=False)
        tops = []
        for direction in ("positive", "negative"):
            t = top_genes(table, top_k, direction)
            t.insert(1, "direction", direction)
            tops.append(t)
        top_table = __import__("pandas").concat(tops, ignore_index=True)
        top_table["marker"] = [g in _markers_for(c, markers)
                               for c, g in zip(top_table["class"], top_table["gene"])]
        top_table.to_csv(out.staged("top_genes.csv"), index=False)
        np.savez_compressed(out.staged("attributions.npz"),
                            attributions=attr_np.astype(np.float32), cells=te,
                            obs_names=names_all[te],
                            target=explained, labels=y_te, predicted=pred,
                            delta=delta.double().numpy(), genes=np.array(genes))
        fs.save(out.staged("fastshap.pt"))

        gene_set = set(genes)
        per_class = {}
        accuracy = float((pred == y_te).mean())
        split_info = {
            "source": split_source, "n_train": int(len(tr)), "n_validation": int(len(va)),
            "n_test": int(n_test_total), "validation_carved_from_train": carved,
        }
        split_lines = []
        if split_source == "job":
            split_info["note"] = (
                "split made by this job (stratified, seed 0), not the one the model was "
                "trained with: the accuracy may include cells the model trained on; pass "
                "--split-key (split=) to use your own")
            split_lines.append(f"WARNING: {split_info['note']}")
        if carved:
            split_info["carved_note"] = (
                f"no validation cells in the split: {len(va)} of the train cells "
                f"({CARVED_VALIDATION_FRACTION:.0%} per class, seeded) were set aside "
                f"for early stopping")
            split_lines.append(split_info["carved_note"])
        lines = [
            f"FastSHAP on {len(te)} held-out {label} x {len(genes)} genes (players), "
            f"{'probabilities' if link == 'softmax' else 'logits'} of each cell's "
            f"{target} class; game: held-out genes set to 0",
            f"explainer fit: {fit_seconds:.1f} s on {len(tr)} train / {len(va)} validation "
            f"cells ({hist['epochs_run']} epochs, best {hist['best_epoch']}, val loss "
            f"{hist['initial_val_loss']:.3g} -> {hist['best_val_loss']:.3g}); "
            f"explaining: {explain_seconds:.2f} s",
            *split_lines,
            f"accuracy of the model on the {len(te)} explained test cells: {accuracy:.3f}"
            + (" (job-made split: may include cells the model trained on)"
               if split_source == "job" else ""),
            f"efficiency gap |sum(phi) - (v(x) - v(0))|: max {float(delta.abs().max()):.1e}",
            f"top {top_k} genes per class" + (" (* = known marker):" if markers else ":"),
        ]
        for name, sub in table.groupby("class", sort=False):
            top = sub.head(top_k)
            mk = _markers_for(name, markers)
            hits = [g for g in top["gene"] if g in mk]
            per_class[name] = {
                "n_cells": int(top["n"].iloc[0]),
                "top_genes": list(top["gene"]),
                "top_means": [float(v) for v in top["mean"]],
                "markers": mk,
                "markers_in_panel": [g for g in mk if g in gene_set],
                "marker_hits": hits,
            }
            shown = ", ".join(g + ("*" if g in mk else "") for g in top["gene"])
            in_panel = per_class[name]["markers_in_panel"]
            suffix = (f"  [markers in top {top_k}: {len(hits)}/{len(in_panel)} in panel]"
                      if in_panel else "")
            lines.append(f"  {name} (n={per_class[name]['n_cells']}): {shown}{suffix}")
        files = ["gene_table.csv", "top_genes.csv", "attributions.npz", "fastshap.pt",
                 "summary.json"]
        if plot:
            try:
                from captum_genomics.sc.plot import (
                    plot_stacked_contributions,
                    plot_top_genes_grid,
                )

                fig = plot_top_genes_grid(table, k=min(top_k, 8), markers=markers)
                fig.savefig(out.staged("top_genes.png"), dpi=110)
                ax = plot_stacked_contributions(table, k=3)
                ax.figure.savefig(out.staged("stacked_contributions.png"), dpi=110)
                files += ["top_genes.png", "stacked_contributions.png"]
            except ImportError as err:
                lines.append(f"plots skipped: {err}")
        summary = {
            "n_cells": int(len(te)), "n_genes": len(genes), "link": link, "target": target,
            "game": "baseline: held-out genes set to 0", "seed": random_state,
            "max_epochs": max_epochs, "n_samples": n_samples, "objective": objective,
            "gene_dropout": gene_dropout,
            "fit_seconds": round(fit_seconds, 2), "explain_seconds": round(explain_seconds, 3),
            "epochs_run": hist["epochs_run"], "best_epoch": hist["best_epoch"],
            "best_val_loss": hist["best_val_loss"],
            "test_accuracy": accuracy, "split": split_info,
            "max_abs_efficiency_gap": float(delta.abs().max()),
            "per_class": per_class, "marker_source": MARKER_SOURCE if markers else None,
            "files": files,
        }
        summary["seconds"] = round(time.perf_counter() - t_start, 2)
        with open(out.staged("summary.json"), "w", encoding="utf-8") as fh:
            json.dump(summary, fh, indent=1)
            fh.write("\n")
    lines.append(f"wrote {', '.join(summary['files'])} to {out_dir}/ in "
                 f"{summary['seconds']:.1f} s")
    if out.removed:
        lines.append(f"removed the earlier run's {', '.join(out.removed)}")
    summary["report"] = "\n".join(lines)
    if verbose:
        print(summary["report"])
    return summary


def run_fastshap_job(out_dir: str | os.PathLike = "captum_genomics_fastshap_out",
                     random_state: int = 0, max_epochs: int = 40, n_samples: int = 32,
                     link: str = "softmax", objective: str = "permutation",
                     gene_dropout: float = 0.15, target: str = "true",
                     n_cells: int | None = None, top_k: int = 10, plot: bool = True,
                     verbose: bool = True, overwrite: bool = False, *,
                     show_progress: bool = False, seed: Any = MISSING) -> dict:
    """The default single-cell job on ``pbmc68k_reduced`` with the shipped classifier.

    Parameters are those of :func:`run_fastshap_on_data`; the data, model,
    split (the classifier's own, seed 0) and markers (:data:`PBMC_MARKERS`)
    are fixed. ``random_state`` seeds FastSHAP only (``seed``: its deprecated
    spelling, kept for one release). With the defaults it takes about two
    minutes on one CPU thread.

    Returns
    -------
    dict
        See :func:`run_fastshap_on_data`.

    Raises
    ------
    ValueError, TypeError, FileExistsError, NotADirectoryError, PermissionError
        As :func:`run_fastshap_on_data`.
    """
    random_state = renamed_keyword("seed", seed, "random_state", random_state, 0,
                                   "run_fastshap_job")
    from captum_genomics.sc.pbmc import load_pbmc68k
    from captum_genomics.zoo.pbmc import load_pbmc_classifier

    data = load_pbmc68k()
    return run_fastshap_on_data(
        load_pbmc_classifier(), data.X, data.labels, data.genes, data.label_names, data.split,
        out_dir, random_state=random_state, max_epochs=max_epochs, n_samples=n_samples, link=link,
        objective=objective, gene_dropout=gene_dropout,
        target=target, n_cells=n_cells, top_k=top_k, markers=PBMC_MARKERS, plot=plot,
        verbose=verbose, label="PBMCs (pbmc68k_reduced test split)", overwrite=overwrite,
        cell_names=data.cells, show_progress=show_progress,
    )

