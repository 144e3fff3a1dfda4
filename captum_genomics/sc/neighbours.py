"""Neighbour inputs for attention-over-neighbours expression models, from a kNN graph.

Each cell becomes one example: the expression of its ``k`` nearest neighbours
in a cell-cell graph (the *senders*), its own cell type (the *receiver*'s
type) and its own observed expression (the target). This is the input layout
of AMICI (Hong et al. 2025, "AMICI: attention mechanism interpretation of
cell-cell interactions"), where the neighbours are spatial; here, by default,
they are the expression-space neighbours of scanpy's ``pbmc68k_reduced``
(``obsp["distances"]``: a UMAP kNN graph with ``n_neighbors=10`` over the
PCA of all 700 cells, so 9 neighbours per cell besides the cell itself).

**The cell itself is never one of its neighbours.** scanpy stores the kNN graph
without the diagonal, and :func:`neighbour_inputs` drops a stored diagonal
entry as well: with the cell among its own inputs, predicting its expression
would be a copy. Note that the graph was built from the cells' expression
(all 700 cells, every split), so neighbours are chosen *because* they
resemble the cell: a model of these inputs learns expression-space smoothing
within and across cell types, not physical cell-cell interactions.

scanpy/anndata are optional dependencies (``pip install "captum-genomics[sc]"``).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor

from captum_genomics._utils.deprecation import MISSING, renamed_keyword
from captum_genomics.sc.pbmc import LABEL_KEY, PBMCData, _import_scanpy, stratified_split

__all__ = ["NeighbourData", "neighbour_inputs", "neighbour_index_from_graph"]


class NeighbourData(NamedTuple):
    """Per-cell neighbour inputs.

    Attributes
    ----------
    neighbours : Tensor, shape=(N, k, G), float32
        ``neighbours[i, j] = observed[neighbour_index[i, j]]``: the expression
        of cell i's j-th nearest neighbour (closest first).
    cell_type : Tensor, shape=(N,), int64
        Index into ``type_names`` of each (receiving) cell.
    observed : Tensor, shape=(N, G), float32
        Each cell's own expression, the target of the model.
    type_names : list of str
        The cell types, sorted.
    gene_names : list of str, length G
    neighbour_index : Tensor, shape=(N, k), int64
        Row indices of the neighbours; never the cell itself.
    cells : list of str, length N
        Cell names (``obs_names``).
    split : dict of str to ndarray
        ``"train"``, ``"validation"``, ``"test"``: sorted int64 cell indices
        (:func:`captum_genomics.sc.pbmc.stratified_split` of the cell types, seed
        0, the split of the shipped PBMC models).
    """

    neighbours: Tensor
    cell_type: Tensor
    observed: Tensor
    type_names: list
    gene_names: list
    neighbour_index: Tensor
    cells: list
    split: dict


def neighbour_index_from_graph(graph: Any, k: int | None = None,
                               name: str = "graph") -> np.ndarray:
    """The ``k`` closest neighbours of every row of a sparse distance graph, self excluded.

    Parameters
    ----------
    graph : scipy sparse matrix or ndarray, shape=(N, N)
        Stored entries are edges, their values distances (smaller is closer),
        as in scanpy's ``obsp["distances"]``. Dense input: non-zero entries are
        edges. Diagonal entries (a cell to itself) are ignored.
    k
        Neighbours per cell. Default: the smallest neighbour count of any row
        (9 for ``pbmc68k_reduced``).
    name
        The argument name used in error messages.

    Returns
    -------
    ndarray, shape=(N, k), int64
        Row ``i``: the neighbours of cell ``i`` by increasing distance (ties by
        index).

    Raises
    ------
    ValueError
        If the graph is not square, a row has no neighbour, or ``k`` exceeds the
        neighbours some row has (the message names the first such row).
    """
    import scipy.sparse

    g = scipy.sparse.csr_matrix(graph)
    if g.ndim != 2 or g.shape[0] != g.shape[1]:
        raise ValueError(f"`{name}` must be a square (N, N) cell-cell graph, got shape {g.shape}.")
    n = g.shape[0]
    g = g.tocoo()
    rows, cols, vals = g.row, g.col, g.data.astype(np.float64)
    off = rows != cols
    rows, cols, vals = rows[off], cols[off], vals[off]
    order = np.lexsort((cols, vals, rows))  # by row, then distance, then column
    rows, cols = rows[order], cols[order]
    counts = np.bincount(rows, minlength=n)
    if n == 0 or counts.min() == 0:
        first = int(np.argmin(counts)) if n else 0
        raise ValueError(f"`{name}`: cell {first} has no neighbour besides itself; every cell "
                         "needs at least one.")
    if k is None:
        k = int(counts.min())
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"`k` must be a positive integer, got {k!r}.")
    if k > counts.min():
        first = int(np.argmax(counts < k))
        raise ValueError(
            f"`k`={k} but cell {first} has only {int(counts[first])} neighbour(s) in `{name}` "
            f"(self excluded); use k <= {int(counts.min())} or a denser graph.")
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    take = starts[:, None] + np.arange(k)[None, :]
    return cols[take].astype(np.int64)


def neighbour_inputs(adata_or_data: Any = None, k: int | None = None, *,
                     label_key: str = LABEL_KEY, use_raw: bool | None = None,
                     layer: str | None = None, graph_key: str = "distances",
                     split_random_state: int = 0, split_seed: Any = MISSING) -> NeighbourData:
    """Neighbour expression, cell type and observed expression of every cell.

    Parameters
    ----------
    adata_or_data : AnnData, PBMCData or None
        ``None`` (default): scanpy's ``pbmc68k_reduced`` (700 cells, 765 genes,
        ``.raw.X`` log-normalized, ``obs["bulk_labels"]``, 10 types). A
        :class:`~captum_genomics.sc.pbmc.PBMCData` from
        :func:`~captum_genomics.sc.pbmc.load_pbmc68k`: its expression, labels and
        split, with the graph of ``pbmc68k_reduced``. An AnnData: your cells,
        with a kNN graph in ``obsp[graph_key]`` (``scanpy.pp.neighbors``).
    k
        Neighbours per cell, closest first. Default: all of the graph's (the
        smallest count over cells; 9 for ``pbmc68k_reduced``).
    label_key
        AnnData only: the ``obs`` column of the cell types. Default
        ``"bulk_labels"``.
    use_raw
        AnnData only: read ``adata.raw.X``. Default: ``True`` when the AnnData has a
        ``.raw`` and no ``layer`` is given.
    layer
        AnnData only: read ``adata.layers[layer]`` instead of ``.X``.
    graph_key
        AnnData only: the ``obsp`` key of the graph; stored values are distances
        (smaller is closer). Default ``"distances"``.
    split_random_state
        Seed of the stratified train/validation/test split. Default 0.
    split_seed
        Deprecated spelling of ``split_random_state``, removed in the next release.

    Returns
    -------
    NeighbourData
        ``neighbours`` (N, k, G) float32, ``cell_type`` (N,) int64,
        ``observed`` (N, G) float32, ``type_names``, ``gene_names``,
        ``neighbour_index`` (N, k) int64 (never the cell itself), ``cells``,
        ``split``. ``neighbours`` is dense: N * k * G * 4 bytes (19 MB for
        ``pbmc68k_reduced``).

    Raises
    ------
    ImportError
        Without scanpy (default data set).
    TypeError
        If ``adata_or_data`` is not an AnnData, PBMCData or None.
    ValueError
        If ``label_key``/``graph_key``/``layer`` is missing, the graph's size
        does not match the cells, ``k`` is larger than the graph allows, or the
        expression holds NaN/Inf.
    """
    split_random_state = renamed_keyword("split_seed", split_seed, "split_random_state",
                                         split_random_state, 0, "neighbour_inputs")
    if adata_or_data is None or isinstance(adata_or_data, PBMCData):
        sc = _import_scanpy()
        adata = sc.datasets.pbmc68k_reduced()
        graph = adata.obsp["distances"]
        if adata_or_data is None:
            from captum_genomics.sc.pbmc import load_pbmc68k

            data = load_pbmc68k(random_state=split_random_state)
        else:
            data = adata_or_data
            if list(data.cells) != [str(c) for c in adata.obs_names]:
                raise ValueError(
                    "`adata_or_data` is a PBMCData whose cells are not those of "
                    "pbmc68k_reduced (in order); pass an AnnData with its own graph instead.")
        x = np.array(data.X, dtype=np.float32)  # a copy: never share the caller's array
        labels = np.asarray(data.labels, dtype=np.int64)
        type_names = list(data.label_names)
        genes, cells, split = list(data.genes), list(data.cells), data.split
        graph_name = "pbmc68k_reduced.obsp['distances']"
    elif hasattr(adata_or_data, "obsp") and hasattr(adata_or_data, "obs"):
        from captum_genomics.sc.inputs import anndata_matrix

        adata = adata_or_data
        if use_raw is None:
            use_raw = layer is None and adata.raw is not None
        matrix = anndata_matrix(adata, layer, use_raw, "adata_or_data")
        x = matrix.toarray() if hasattr(matrix, "toarray") else np.asarray(matrix)
        x = np.array(x, dtype=np.float32)
        if label_key not in adata.obs:
            raise ValueError(f"`label_key`={label_key!r} is not an obs column of `adata_or_data`;"
                             f" columns: {list(adata.obs.columns)}.")
        if graph_key not in adata.obsp:
            raise ValueError(
                f"`graph_key`={graph_key!r} is not in `adata_or_data.obsp` (keys: "
                f"{list(adata.obsp.keys())}); build a kNN graph with scanpy.pp.neighbors.")
        graph = adata.obsp[graph_key]
        names = adata.obs[label_key].astype(str).to_numpy()
        type_names = sorted(set(names))
        lookup = {t: i for i, t in enumerate(type_names)}
        labels = np.array([lookup[t] for t in names], dtype=np.int64)
        genes = [str(g) for g in (adata.raw.var_names if use_raw else adata.var_names)]
        cells = [str(c) for c in adata.obs_names]
        split = stratified_split(labels, random_state=split_random_state)
        graph_name = f"adata_or_data.obsp[{graph_key!r}]"
    else:
        raise TypeError("`adata_or_data` must be an AnnData with a kNN graph in .obsp, a "
                        "PBMCData (load_pbmc68k()) or None (pbmc68k_reduced), got "
                        f"{type(adata_or_data).__name__}.")
    if graph.shape != (x.shape[0], x.shape[0]):
        raise ValueError(f"`{graph_name}` has shape {tuple(graph.shape)} but there are "
                         f"{x.shape[0]} cells; expected ({x.shape[0]}, {x.shape[0]}).")
    if not np.isfinite(x).all():
        bad = np.argwhere(~np.isfinite(x))[0]
        raise ValueError(f"the expression of `adata_or_data` holds NaN/Inf, first at cell "
                         f"{int(bad[0])}, gene {int(bad[1])}; expected finite values.")
    index = neighbour_index_from_graph(graph, k, name=graph_name)
    observed = torch.from_numpy(np.ascontiguousarray(x))
    idx = torch.from_numpy(index)
    return NeighbourData(
        neighbours=observed[idx],
        cell_type=torch.from_numpy(labels),
        observed=observed,
        type_names=type_names,
        gene_names=genes,
        neighbour_index=idx,
        cells=cells,
        split=split,
    )
