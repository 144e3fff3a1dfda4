"""Real single-cell data for the FastSHAP workflow: scanpy's ``pbmc68k_reduced``.

``scanpy.datasets.pbmc68k_reduced()`` ships inside scanpy (no download): 700
peripheral blood mononuclear cells from Zheng et al. (2017, Nat. Commun. 8,
14049), 765 genes, each cell labelled by the FACS-sorted bulk population its
profile correlates best with (``obs["bulk_labels"]``, 10 types). Its
``.raw.X`` holds log-normalized expression, ``log1p(counts / n_counts * 1e4)``
rounded to 3 decimals; :func:`recover_counts` inverts that.

scanpy is an optional dependency (``pip install "captum-genomics[sc]"``),
imported inside the functions.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from captum_genomics._utils.deprecation import MISSING, renamed_keyword

__all__ = [
    "PBMCData",
    "load_pbmc68k",
    "recover_counts",
    "stratified_split",
    "LABEL_KEY",
    "SPLIT_FRACTIONS",
]

LABEL_KEY = "bulk_labels"
"""The ``obs`` column of the cell types in ``pbmc68k_reduced``."""

SPLIT_FRACTIONS = {"validation": 0.15, "test": 0.2}
"""Fractions of each cell type held out for validation and test; the rest trains."""


def _import_scanpy():
    try:
        import scanpy
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            "The single-cell workflow needs scanpy and anndata: "
            'pip install "captum-genomics[sc]".'
        ) from err
    return scanpy


class PBMCData(NamedTuple):
    """``pbmc68k_reduced`` as arrays.

    Attributes
    ----------
    X : ndarray, shape=(N, G), float32
        Log-normalized expression (``adata.raw.X``, densified), N=700, G=765.
    genes : list of str, length G
    labels : ndarray, shape=(N,), int64
        Index into ``label_names``.
    label_names : list of str
        The cell types, sorted alphabetically.
    n_counts : ndarray, shape=(N,), float64
        Total counts per cell before normalization (``obs["n_counts"]``).
    cells : list of str, length N
        Cell barcodes.
    split : dict of str to ndarray
        ``"train"``, ``"validation"``, ``"test"``: sorted cell indices, from
        :func:`stratified_split`.
    """

    X: np.ndarray
    genes: list
    labels: np.ndarray
    label_names: list
    n_counts: np.ndarray
    cells: list
    split: dict


def recover_counts(log_normalized, n_counts, scale: float = 1e4) -> np.ndarray:
    """Integer counts from log-normalized expression: ``rint(expm1(x) * n_counts / scale)``.

    Inverts scanpy's ``normalize_total(target_sum=scale)`` + ``log1p``. The
    stored values of ``pbmc68k_reduced`` are rounded to 3 decimals, so the
    unrounded result is within ~0.1 of an integer; rounding recovers the counts.

    Parameters
    ----------
    log_normalized : ndarray or scipy sparse matrix, shape=(N, G)
    n_counts : array-like, shape=(N,)
        Total counts per cell used for the normalization.
    scale
        The normalization target sum. Default 1e4.

    Returns
    -------
    ndarray, shape=(N, G), float64
        Non-negative integral values.
    """
    import scipy.sparse

    x = log_normalized.toarray() if scipy.sparse.issparse(log_normalized) else np.asarray(
        log_normalized)
    n_counts = np.asarray(n_counts, dtype=np.float64).reshape(-1)
    if x.ndim != 2 or n_counts.shape[0] != x.shape[0]:
        raise ValueError(
            f"`log_normalized` must be (N, G) and `n_counts` (N,); got {x.shape} and "
            f"{n_counts.shape}."
        )
    counts = np.rint(np.expm1(x.astype(np.float64)) * n_counts[:, None] / scale)
    return np.maximum(counts, 0.0)


def stratified_split(labels, fractions: dict | None = None, random_state: int = 0, *,
                     seed: Any = MISSING) -> dict:
    """A fixed, seeded split that keeps every class's proportions.

    Within each class, cells are permuted with
    ``numpy.random.default_rng(random_state)``
    (one generator, classes in sorted order) and the first
    ``round(n_c * fraction)`` go to each held-out part (at least one cell when
    the class has three or more); the rest train.

    Parameters
    ----------
    labels : array-like, shape=(N,)
    fractions
        Held-out part name to fraction. Default :data:`SPLIT_FRACTIONS`
        (15% validation, 20% test).
    random_state
        Seed of the permutations. Default 0.
    seed
        Deprecated spelling of ``random_state`` (``DeprecationWarning``),
        removed in the next release.

    Returns
    -------
    dict of str to ndarray
        ``"train"`` and one entry per held-out part: sorted int64 indices,
        disjoint, covering ``0..N-1``.
    """
    random_state = renamed_keyword("seed", seed, "random_state", random_state, 0,
                                   "stratified_split")
    fractions = dict(SPLIT_FRACTIONS if fractions is None else fractions)
    if sum(fractions.values()) >= 1.0 or any(f < 0 for f in fractions.values()):
        raise ValueError(f"`fractions` must be >= 0 and sum below 1, got {fractions}.")
    labels = np.asarray(labels)
    rng = np.random.default_rng(random_state)
    parts: dict[str, list] = {"train": [], **{k: [] for k in fractions}}
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        start = 0
        for name, frac in fractions.items():
            k = int(round(len(idx) * frac))
            if k == 0 and frac > 0 and len(idx) >= 3:
                k = 1
            parts[name].append(idx[start:start + k])
            start += k
        parts["train"].append(idx[start:])
    return {k: np.sort(np.concatenate(v)).astype(np.int64) for k, v in parts.items()}


def load_pbmc68k(random_state: int = 0, fractions: dict | None = None, *,
                 seed: Any = MISSING) -> PBMCData:
    """Load ``scanpy.datasets.pbmc68k_reduced()`` as arrays with a fixed split.

    Parameters
    ----------
    random_state
        Seed of :func:`stratified_split`. Default 0 (the split the shipped
        classifier was trained on).
    fractions
        Held-out fractions, see :func:`stratified_split`. Default 15%
        validation, 20% test.
    seed
        Deprecated spelling of ``random_state``, removed in the next release.

    Returns
    -------
    PBMCData

    Raises
    ------
    ImportError
        Without scanpy; install ``captum-genomics[sc]``.
    """
    random_state = renamed_keyword("seed", seed, "random_state", random_state, 0,
                                   "load_pbmc68k")
    sc = _import_scanpy()
    adata = sc.datasets.pbmc68k_reduced()
    raw = adata.raw
    x = raw.X.toarray() if hasattr(raw.X, "toarray") else np.asarray(raw.X)
    cats = adata.obs[LABEL_KEY].astype(str).to_numpy()
    label_names = sorted(set(cats))
    lookup = {name: i for i, name in enumerate(label_names)}
    labels = np.array([lookup[c] for c in cats], dtype=np.int64)
    return PBMCData(
        X=x.astype(np.float32),
        genes=[str(g) for g in raw.var_names],
        labels=labels,
        label_names=label_names,
        n_counts=adata.obs["n_counts"].to_numpy(dtype=np.float64),
        cells=[str(c) for c in adata.obs_names],
        split=stratified_split(labels, fractions, random_state),
    )
