"""Hypothesis strategies for genomics test data, in the style of ``hypothesis.extra.numpy``.

* :func:`one_hot_sequences`: one-hot DNA ``(N, 4, L)`` (ACGT channels), with
  optional runs of ``N`` (all-zero columns);
* :func:`expression_matrices`: log-normalized-like expression ``(cells,
  genes)``, with genes that are zero in every cell, dense or scipy CSR.

Sizes and fractions are ints/floats or strategies of them. Everything a
strategy returns is a function of hypothesis' own draws (torch's global
random state is never used), so an example replays exactly and shrinks
sensibly: sizes towards the smallest, ``N`` runs towards fewer and earlier,
small one-hot batches towards all-``A`` sequences. ::

    from hypothesis import given, settings
    from captum_genomics.testing.strategies import one_hot_sequences

    @settings(max_examples=20, deadline=None)
    @given(x=one_hot_sequences(n=3, length=100, n_fraction=0.1))
    def test_my_model_on_n_runs(x):
        ...
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument
from hypothesis.strategies import SearchStrategy

__all__ = ["one_hot_sequences", "expression_matrices"]

ALPHABET = 4

#: Up to this many bases (``n * length``) per batch are drawn one by one with
#: ``st.integers`` (shrinking towards ``A``); larger batches draw one seed and
#: fill the bases with a ``torch.Generator`` (hypothesis' buffer is finite).
MAX_DRAWN_BASES = 1024

_SEED = st.integers(0, 2**32 - 1)


# ------------------------------------------------------------------ argument checks

def _int_strategy(value: Any, name: str, minimum: int) -> SearchStrategy:
    if isinstance(value, SearchStrategy):
        return value
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgument(f"`{name}` must be an int or a hypothesis strategy of ints, "
                              f"got {type(value).__name__} {value!r}.")
    if value < minimum:
        raise InvalidArgument(f"`{name}` must be >= {minimum}, got {value}.")
    return st.just(value)


def _fraction_strategy(value: Any, name: str) -> SearchStrategy:
    if isinstance(value, SearchStrategy):
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidArgument(f"`{name}` must be a float in [0, 1] or a hypothesis strategy "
                              f"of floats, got {type(value).__name__} {value!r}.")
    if not 0.0 <= value <= 1.0:
        raise InvalidArgument(f"`{name}` must be in [0, 1], got {value}.")
    return st.just(float(value))


def _drawn_int(value: Any, name: str, minimum: int, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum or (
            maximum is not None and value > maximum):
        bounds = f">= {minimum}" + (f" and <= {maximum}" if maximum is not None else "")
        raise InvalidArgument(f"`{name}` (or what a strategy given for it drew) must be an "
                              f"int {bounds}, got {value!r}.")
    return value


def _drawn_fraction(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
            0.0 <= value <= 1.0):
        raise InvalidArgument(f"`{name}` (or what a strategy given for it drew) must be a "
                              f"float in [0, 1], got {value!r}.")
    return float(value)


def _check_dtype(dtype: Any) -> None:
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise InvalidArgument(f"`dtype` must be a floating torch dtype, got {dtype!r}.")


def _round(x: float) -> int:
    """Round half up (Python's ``round`` rounds half to even)."""
    return int(math.floor(x + 0.5))


# ------------------------------------------------------------------ one-hot sequences

@st.composite
def _n_runs(draw, length: int, count: int, max_runs: int) -> list[int]:
    """The columns of ``1..max_runs`` separated runs of ``N``, ``count`` columns in all."""
    if count == 0:
        return []
    runs = draw(st.integers(1, max(1, min(count, max_runs, length - count + 1))))
    cuts = sorted(draw(st.lists(st.integers(1, count - 1), min_size=runs - 1,
                                max_size=runs - 1, unique=True))) if runs > 1 else []
    sizes = [b - a for a, b in zip([0, *cuts], [*cuts, count])]
    free = length - count - (runs - 1)  # non-N columns beyond one between each two runs
    marks = sorted(draw(st.lists(st.integers(0, free), min_size=runs, max_size=runs)))
    gaps = [b - a for a, b in zip([0, *marks], marks)]  # before each run
    columns, pos = [], 0
    for r, (gap, size) in enumerate(zip(gaps, sizes)):
        pos += gap + (1 if r else 0)
        columns.extend(range(pos, pos + size))
        pos += size
    return columns


@st.composite
def _one_hot(draw, n, length, n_fraction, max_n_runs, dtype) -> torch.Tensor:
    n = _drawn_int(draw(n), "n", 1)
    length = _drawn_int(draw(length), "length", 1)
    count = _round(_drawn_fraction(draw(n_fraction), "n_fraction") * length)
    if n * length <= MAX_DRAWN_BASES:
        bases = draw(st.lists(st.integers(0, ALPHABET - 1), min_size=n * length,
                              max_size=n * length))
        idx = torch.tensor(bases, dtype=torch.long).reshape(n, length)
    else:
        g = torch.Generator().manual_seed(draw(_SEED))
        idx = torch.randint(0, ALPHABET, (n, length), generator=g)
    x = F.one_hot(idx, ALPHABET).permute(0, 2, 1).to(dtype).contiguous()
    for i in range(n):
        columns = draw(_n_runs(length, count, max_n_runs))
        if columns:
            x[i, :, columns] = 0
    return x


def one_hot_sequences(n: int | SearchStrategy = st.integers(1, 4),
                      length: int | SearchStrategy = st.integers(1, 64),
                      n_fraction: float | SearchStrategy = 0.0,
                      dtype: torch.dtype = torch.float64,
                      max_n_runs: int = 3) -> SearchStrategy:
    """Strategy: a batch of one-hot DNA sequences ``(n, 4, length)``, with runs of ``N``.

    Channels are ``A, C, G, T``; an ``N`` is an all-zero column (the
    encoding of :mod:`captum_genomics.seq.io`). Each sequence gets
    ``round(n_fraction * length)`` ``N`` columns (rounded half up), in
    ``1..max_n_runs`` separated runs placed independently per sequence.

    Parameters
    ----------
    n : int or strategy of int
        Sequences in the batch, ``>= 1``. Default ``st.integers(1, 4)``.
    length : int or strategy of int
        Columns per sequence, ``>= 1``. Default ``st.integers(1, 64)``.
    n_fraction : float or strategy of float
        Fraction of ``N`` columns per sequence, in ``[0, 1]``. Default 0.0.
    dtype : torch.dtype
        A floating dtype. Default ``torch.float64``.
    max_n_runs : int
        Most runs of ``N`` per sequence (``>= 1``). Default 3.

    Returns
    -------
    SearchStrategy of Tensor ``(n, 4, length)``, ``dtype``
        Values 0 and 1; every column sums to 1, ``N`` columns to 0. Up to
        :data:`MAX_DRAWN_BASES` bases are drawn one by one (shrinking towards
        ``A``); larger batches from a drawn seed with a ``torch.Generator``.

    Raises
    ------
    hypothesis.errors.InvalidArgument
        For a size or fraction of the wrong type or out of range (when the
        strategy is built, or when a strategy given as a size draws one).
    """
    _check_dtype(dtype)
    _drawn_int(max_n_runs, "max_n_runs", 1)
    return _one_hot(_int_strategy(n, "n", 1), _int_strategy(length, "length", 1),
                    _fraction_strategy(n_fraction, "n_fraction"), max_n_runs, dtype)


# --------------------------------------------------------------- expression matrices

def _zero_gene_count(value: Any, n_genes: int, draw) -> int:
    if value is True:
        return draw(st.integers(1, max(1, n_genes // 4)))
    if value is False:
        return 0
    return _drawn_int(draw(value) if isinstance(value, SearchStrategy) else value,
                      "zero_genes", 0, n_genes)


@st.composite
def _expression(draw, n_cells, n_genes, zero_fraction, zero_genes, sparse, dtype):
    cells = _drawn_int(draw(n_cells), "n_cells", 1)
    genes = _drawn_int(draw(n_genes), "n_genes", 1)
    fraction = _drawn_fraction(draw(zero_fraction), "zero_fraction")
    k = _zero_gene_count(zero_genes, genes, draw)
    silent = sorted(draw(st.lists(st.integers(0, genes - 1), min_size=k, max_size=k,
                                  unique=True)))
    g = torch.Generator().manual_seed(draw(_SEED))
    mean = torch.exp(torch.randn(genes, generator=g, dtype=torch.float64)) * 2.0
    size = torch.exp(0.3 * torch.randn(cells, 1, generator=g, dtype=torch.float64))
    counts = torch.poisson(mean * size, generator=g) + 1.0
    expressed = [j for j in range(genes) if j not in set(silent)]
    counts[:, silent] = 0.0
    if expressed:
        block = counts[:, expressed]
        drop = torch.randperm(block.numel(), generator=g)[:_round(fraction * block.numel())]
        block.view(-1)[drop] = 0.0
        for j in torch.nonzero(block.sum(0) == 0).flatten().tolist():
            block[int(torch.randint(cells, (1,), generator=g)), j] = 1.0
        counts[:, expressed] = block
    total = counts.sum(1, keepdim=True).clamp_min(1.0)
    x = torch.log1p(counts / total * 1e4).to(dtype)
    if not sparse:
        return x
    import scipy.sparse

    matrix = scipy.sparse.csr_matrix(x.numpy())
    matrix.eliminate_zeros()
    return matrix


def expression_matrices(n_cells: int | SearchStrategy = st.integers(1, 16),
                        n_genes: int | SearchStrategy = st.integers(1, 24),
                        zero_fraction: float | SearchStrategy = st.floats(0.0, 0.9),
                        sparse: bool = False,
                        zero_genes: bool | int | SearchStrategy = True,
                        dtype: torch.dtype = torch.float32) -> SearchStrategy:
    """Strategy: a non-negative log-normalized-like expression matrix ``(n_cells, n_genes)``.

    Counts are ``Poisson(mu_g * s_c) + 1`` (gene means ``mu_g = 2 exp(z)``,
    cell size factors ``s_c = exp(0.3 z)``, ``z`` standard normal, from a
    ``torch.Generator`` seeded by a drawn seed). ``zero_fraction`` of the
    entries of the expressed genes are set to 0 (dropout), then every
    expressed gene keeps at least one non-zero cell; the ``zero_genes``
    silent genes are 0 in every cell. Values are ``log1p(1e4 * counts /
    total_c)`` (scanpy's ``normalize_total(target_sum=1e4)`` then ``log1p``),
    so ``expm1`` of a cell's row sums to ``1e4`` unless the cell is empty.

    Parameters
    ----------
    n_cells, n_genes : int or strategy of int
        ``>= 1``. Defaults ``st.integers(1, 16)``, ``st.integers(1, 24)``.
    zero_fraction : float or strategy of float
        Fraction of the expressed genes' entries set to 0, in ``[0, 1]``
        (before each gene gets its one non-zero cell). Default
        ``st.floats(0.0, 0.9)``.
    sparse : bool
        Return a ``scipy.sparse.csr_matrix`` (explicit zeros removed) instead
        of a tensor. Default False.
    zero_genes : bool, int or strategy of int
        How many genes are 0 in every cell: True (default) draws
        ``1..max(1, n_genes // 4)``, False none, an int exactly that many
        (``<= n_genes``). All other genes are non-zero in some cell.
    dtype : torch.dtype
        A floating dtype. Default ``torch.float32``.

    Returns
    -------
    SearchStrategy of Tensor ``(n_cells, n_genes)`` or scipy.sparse.csr_matrix
        Values ``>= 0`` and finite.

    Raises
    ------
    hypothesis.errors.InvalidArgument
        For a size, fraction or ``zero_genes`` of the wrong type or out of
        range (when built, or when a strategy given for it draws one).
    """
    _check_dtype(dtype)
    if not isinstance(sparse, bool):
        raise InvalidArgument(f"`sparse` must be a bool, got {sparse!r}.")
    if not isinstance(zero_genes, (bool, SearchStrategy)):
        _drawn_int(zero_genes, "zero_genes", 0,
                   n_genes if isinstance(n_genes, int) and not isinstance(n_genes, bool)
                   else None)
    return _expression(_int_strategy(n_cells, "n_cells", 1), _int_strategy(n_genes, "n_genes", 1),
                       _fraction_strategy(zero_fraction, "zero_fraction"), zero_genes, sparse,
                       dtype)
