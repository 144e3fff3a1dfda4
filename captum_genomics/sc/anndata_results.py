"""Gene attributions per class into an AnnData, the scverse way.

:func:`write_gene_attributions` stores a
:class:`~captum_genomics.sc.gene_attributions.GeneAttributions` (and its
per-class gene table) in an AnnData under one ``key`` (default
``"gene_attributions"``), like ``scanpy.tl.rank_genes_groups`` stores its
results under ``key_added``:

==========================================  =====================================================
where                                       what
==========================================  =====================================================
``.varm[key]``                              ``(G, C)`` float64: mean attribution of each gene in
                                            each class (columns in the order of
                                            ``.uns[key]["classes"]``; NaN for a class without
                                            cells)
``.varm[f"{key}_{stat}"]``                  ``(G, C)``: the table's other statistics, ``stat`` in
                                            ``std``, ``sem``, ``ci_low``, ``ci_high``,
                                            ``rank`` and, for a full table, ``mean_abs``,
                                            ``boot_low``, ``boot_high``, ``frac_positive``
``.layers[key]``                            ``(N, G)`` float32: each cell's attributions for the
                                            class it was explained for (one target per cell)
``.obsm[key]``                              ``(N, C, G)`` float32: each cell's attributions for
                                            every class (``target="all"``); a 3-D array, which
                                            AnnData and ``.h5ad`` hold as is;
                                            ``.reshape(N, -1)`` gives the 2-D ``(N, C*G)`` view,
                                            class-major
``.obs[f"{key}_target"]``                   categorical: the class each cell was explained for
                                            (one target per cell)
``.obs[f"{key}_predicted"]``                categorical: the model's predicted class
``.obs[f"{key}_delta"]`` /                  convergence deltas ``(N,)`` / ``(N, C)``, when
``.obsm[f"{key}_delta"]``                   computed
``.uns[key]``                               ``classes``, ``n_cells`` per class, ``target``,
                                            ``group_by``, ``params`` (method, baseline,
                                            n_steps, ...), ``written`` (every key above that
                                            was written)
==========================================  =====================================================

Nothing that exists is replaced unless ``overwrite=True``; with it, the keys
an earlier write under the same ``key`` listed in ``.uns[key]["written"]``
are removed first, so the AnnData never mixes two runs.
:func:`read_gene_attribution_table` rebuilds the tidy table from ``.varm``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from captum_genomics.sc.inputs import is_anndata

__all__ = ["write_gene_attributions", "read_gene_attribution_table", "STAT_COLUMNS"]

STAT_COLUMNS = ("mean", "mean_abs", "std", "sem", "ci_low", "ci_high", "boot_low",
                "boot_high", "frac_positive", "rank")
"""Table columns written to ``.varm`` (``mean`` as ``key``, the others as ``key_<stat>``)."""


def _uns_safe(value: Any) -> Any:
    """A value ``.h5ad`` can store: None becomes the string ``"None"``."""
    if value is None:
        return "None"
    if isinstance(value, dict):
        return {str(k): _uns_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return np.array([str(v) for v in value], dtype=object) if value else np.array([],
                                                                                     dtype=object)
    return value


def write_gene_attributions(adata, result, key: str = "gene_attributions", table=None,
                            group_by: str | None = None, overwrite: bool = False,
                            copy: bool = False, per_cell: bool = True):
    """Store gene attributions per class in ``adata`` (see the module docstring for the keys).

    Parameters
    ----------
    adata : anndata.AnnData
        Its ``var_names`` must be the genes of ``result`` in the same order,
        and (with ``per_cell``) its cells those of ``result``.
    result : GeneAttributions
        From :func:`~captum_genomics.sc.gene_attributions.class_gene_attributions`.
    key : str
        Prefix of every key written. Default ``"gene_attributions"``.
    table : pandas.DataFrame, optional
        The per-(class, gene) table to store; default ``result.to_frame(group_by)``
        (the full table: bootstrap CI, seed 0). Not a ``scvi_compatible`` table.
    group_by : str, optional
        Passed to :meth:`GeneAttributions.to_frame` when ``table`` is None.
    overwrite : bool
        Replace keys that exist. Default False: an existing key raises.
    copy : bool
        Write into a copy and return it. Default False: write into ``adata``
        and return None.
    per_cell : bool
        Also store the per-cell attributions (``.layers`` or ``.obsm``) and
        the per-cell columns of ``.obs``. Default True.

    Returns
    -------
    anndata.AnnData or None
        The copy with ``copy=True``.

    Raises
    ------
    TypeError
        ``adata`` is not an AnnData.
    ValueError
        ``key`` empty or holding ``"/"``; genes or cells that do not match
        ``adata``; an existing key without ``overwrite=True`` (the message
        lists them); a table without the ``class``/``gene``/``mean`` columns.
    """
    import pandas as pd

    if not is_anndata(adata):
        raise TypeError(f"`adata` must be an anndata.AnnData, got {type(adata).__name__}.")
    if not isinstance(key, str) or not key or "/" in key:
        raise ValueError(f"`key` must be a non-empty string without '/', got {key!r}.")
    genes = list(result.genes)
    var = [str(v) for v in adata.var_names]
    if var != genes:
        raise ValueError(
            f"`adata` has {len(var)} genes (var_names) that are not the {len(genes)} genes of "
            "the attributions in the same order; write into an AnnData over those genes "
            "(e.g. `adata.raw.to_adata()` for attributions computed with use_raw=True).")
    n = result.attributions.shape[0]
    if per_cell:
        if adata.n_obs != n:
            raise ValueError(f"`adata` has {adata.n_obs} cells but the attributions {n}; pass "
                             "the AnnData the attributions were computed on, or per_cell=False.")
        if result.cells is not None and list(result.cells) != [str(c) for c in adata.obs_names]:
            raise ValueError("`adata`.obs_names are not the cells the attributions were "
                             "computed on (same order); pass that AnnData, or per_cell=False.")
    if table is None:
        table = result.to_frame(group_by=group_by)
    missing = {"class", "gene", "mean"} - set(table.columns)
    if missing:
        raise ValueError(f"`table` lacks the columns {sorted(missing)}; pass a table of "
                         "`attribution_table` (not a scvi_compatible one).")
    classes = list(result.class_names)
    stats = [c for c in STAT_COLUMNS if c in table.columns]
    written: dict[str, list[str]] = {"varm": [key if s == "mean" else f"{key}_{s}"
                                              for s in stats],
                                     "layers": [], "obsm": [], "obs": [], "uns": [key]}
    if per_cell:
        if result.all_classes:
            written["obsm"].append(key)
            if result.convergence_delta is not None:
                written["obsm"].append(f"{key}_delta")
        else:
            written["layers"].append(key)
            written["obs"].append(f"{key}_target")
            if result.convergence_delta is not None:
                written["obs"].append(f"{key}_delta")
        written["obs"].append(f"{key}_predicted")

    if copy:
        adata = adata.copy()

    def store(kind):
        return adata.obs if kind == "obs" else getattr(adata, kind)

    existing = [f".{kind}[{k!r}]" for kind, keys in written.items() for k in keys
                if k in (store(kind).columns if kind == "obs" else store(kind))]
    if existing and not overwrite:
        raise ValueError(f"`key`={key!r}: `adata` already holds {', '.join(existing)}; pass "
                         "overwrite=True to replace them, or choose another key.")
    if overwrite and key in adata.uns and isinstance(adata.uns[key], dict):
        earlier = adata.uns[key].get("written", {})
        for kind in ("varm", "layers", "obsm", "obs"):
            for k in list(earlier.get(kind, [])):
                k = str(k)
                if kind == "obs":
                    if k in adata.obs.columns:
                        del adata.obs[k]
                elif k in store(kind):
                    del store(kind)[k]

    col = {c: i for i, c in enumerate(classes)}
    unknown = sorted(set(table["class"].astype(str)) - set(col))
    if unknown:
        raise ValueError(f"`table` has classes {unknown[:5]} that are not the result's "
                         f"class_names {classes}.")
    gi = {g: j for j, g in enumerate(genes)}
    rows = table["gene"].astype(str).map(gi).to_numpy()
    cols = table["class"].astype(str).map(col).to_numpy()
    for s in stats:
        mat = np.full((len(genes), len(classes)), np.nan)
        mat[rows, cols] = table[s].to_numpy(dtype=np.float64)
        adata.varm[key if s == "mean" else f"{key}_{s}"] = mat
    n_cells = np.zeros(len(classes), dtype=np.int64)
    if "n" in table.columns:
        counts = table.groupby("class", sort=False)["n"].first()
        for c, v in counts.items():
            n_cells[col[str(c)]] = int(v)

    if per_cell:
        cat = pd.Categorical.from_codes
        if result.all_classes:
            adata.obsm[key] = np.ascontiguousarray(result.attributions, dtype=np.float32)
            if result.convergence_delta is not None:
                adata.obsm[f"{key}_delta"] = np.asarray(result.convergence_delta,
                                                        dtype=np.float64)
        else:
            adata.layers[key] = np.ascontiguousarray(result.attributions, dtype=np.float32)
            adata.obs[f"{key}_target"] = cat(result.targets, categories=classes)
            if result.convergence_delta is not None:
                adata.obs[f"{key}_delta"] = np.asarray(result.convergence_delta,
                                                       dtype=np.float64)
        adata.obs[f"{key}_predicted"] = cat(result.predicted, categories=classes)

    adata.uns[key] = {
        "classes": np.array(classes, dtype=object),
        "n_cells": n_cells,
        "target": result.target,
        "group_by": _uns_safe(group_by),
        "table_columns": np.array(list(table.columns), dtype=object),
        "params": _uns_safe(dict(result.params)),
        "written": {k: np.array(v, dtype=object) for k, v in written.items()},
    }
    return adata if copy else None


def read_gene_attribution_table(adata, key: str = "gene_attributions"):
    """The tidy per-(class, gene) table back from ``.varm`` (classes with cells only).

    Returns
    -------
    pandas.DataFrame
        Columns ``class``, ``gene``, the statistics found in ``.varm`` and
        ``n``; one row per (class with cells, gene), classes in
        ``.uns[key]["classes"]`` order, genes by ``rank`` (or mean) within a
        class.

    Raises
    ------
    KeyError
        ``key`` was not written by :func:`write_gene_attributions`.
    """
    import pandas as pd

    if key not in adata.uns or key not in adata.varm:
        raise KeyError(f"`key`={key!r}: no gene attributions in `adata` (.uns and .varm); "
                       "write them with write_gene_attributions first.")
    info = adata.uns[key]
    classes = [str(c) for c in info["classes"]]
    n_cells = np.asarray(info["n_cells"])
    genes = np.asarray([str(g) for g in adata.var_names], dtype=object)
    frames = []
    for c, name in enumerate(classes):
        if n_cells[c] == 0:
            continue
        cols = {"class": name, "gene": genes}
        for s in STAT_COLUMNS:
            k = key if s == "mean" else f"{key}_{s}"
            if k in adata.varm:
                cols[s] = np.asarray(adata.varm[k])[:, c]
        cols["n"] = int(n_cells[c])
        f = pd.DataFrame(cols)
        f = f.sort_values("rank" if "rank" in f.columns else "mean",
                          ascending="rank" in f.columns, kind="stable")
        frames.append(f)
    out = pd.concat(frames, ignore_index=True)
    if "rank" in out.columns:
        out["rank"] = out["rank"].astype(np.int64)
    return out
