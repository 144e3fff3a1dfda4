"""k-mer-preserving shuffles of one-hot DNA, drawn uniformly.

The shuffles follow Kandel, Matias, Unger & Winkler (1996), "Shuffling
biological sequences", Discrete Applied Mathematics 71, 171-185: a uniformly
random Eulerian path through the (k-1)-mer multigraph, with the last-exit
arborescence drawn by Wilson's algorithm. ``k = 2`` is the dinucleotide
shuffle of Altschul & Erickson (1985), "Significance of nucleotide sequence
alignments", Mol. Biol. Evol. 2, 526-538, but drawn exactly uniformly over all
sequences with the same dinucleotide counts and first base (the greedy
walk used by ``deeplift.dinuc_shuffle`` and ``tangermeme.ersatz`` is not).

The argument checks, encoding, seeding, output buffers and threads come from
:mod:`captum_genomics.references._draw`; the numba kernels from
:mod:`captum_genomics.references._kernels`.
"""

from __future__ import annotations

import warnings

import numpy as np
from torch import Tensor

from captum_genomics._utils.checks import check_positive_int
from captum_genomics.references import _draw, _kernels

__all__ = ["kmer_shuffle", "dinucleotide_shuffle"]

#: Examples per kernel call are capped so that the per-example graph arrays
#: hold about this many positions.
_BLOCK_POSITIONS = 1 << 20


class _ShuffleJob:
    """The arrays of one :func:`kmer_shuffle` call and the two ways to split it.

    ``codes`` ``(N, L)`` are the input's base codes, ``ref_codes``
    ``(N, K, L)`` receive the shuffles' codes and ``view`` ``(N, K, 4, L)``
    their one-hot encoding. Examples are processed in blocks whose graph
    arrays hold about ``_BLOCK_POSITIONS`` positions.
    """

    def __init__(self, codes, start, end, k, keys, ref_codes, view, one, zero):
        self.codes, self.start, self.end, self.k, self.keys = codes, start, end, k, keys
        self.ref_codes, self.view, self.one, self.zero = ref_codes, view, one, zero
        self.width = max(end - start, 1)
        self.block = max(1, _BLOCK_POSITIONS // self.width)

    def _graphs(self, b0: int, b1: int, parallel: bool):
        nb, width = b1 - b0, self.width
        vwidth = width + width // 2 + 2
        graphs = (
            np.empty((nb, width // 2 + 1, 7), np.int64),  # runs
            np.empty(nb, np.int64),  # n_runs
            np.empty((nb, vwidth), np.int32),  # voffs
            np.empty((nb, vwidth), np.uint8),  # vbase
            np.empty((nb, width), np.int32),  # etgt
        )
        args = (self.codes[b0:b1], self.start, self.end, self.k, *graphs)
        if parallel:
            _draw.parallel(_kernels.build_graphs, args, nb, width)
        else:
            _kernels.build_graphs(*args, 0, nb)
        return graphs

    def _task(self, b0: int, b1: int, graphs):
        args = (self.codes[b0:b1], self.k, *graphs, self.keys[b0:b1], self.ref_codes[b0:b1])
        return _draw.write_task(
            _kernels.shuffle_pairs, args, self.ref_codes[b0:b1], self.view[b0:b1],
            self.one, self.zero,
        )

    def examples(self, lo: int, hi: int) -> None:
        """Build, shuffle and write examples ``lo..hi`` on the calling thread."""
        for b0 in range(lo, hi, self.block):
            b1 = min(hi, b0 + self.block)
            graphs = self._graphs(b0, b1, parallel=False)
            self._task(b0, b1, graphs)(0, (b1 - b0) * self.ref_codes.shape[1])

    def pairs(self, b0: int, b1: int) -> None:
        """Examples ``b0..b1`` with the (example, reference) pairs split over threads."""
        n_refs, length = self.ref_codes.shape[1], self.ref_codes.shape[2]
        graphs = self._graphs(b0, b1, parallel=True)
        _draw.parallel(self._task(b0, b1, graphs), (), (b1 - b0) * n_refs, length,
                       align=_pair_align(n_refs))


def _pair_align(n_refs: int):
    """Split points for (example, reference) pairs: a multiple of the kernel's
    lane count within an example, so that the lock-step walk stays full."""

    def align(b: int) -> int:
        e, r = divmod(b, n_refs)
        return e * n_refs + (r // _kernels._LANES) * _kernels._LANES

    return align


# --------------------------------------------------------------------------
# Public functions
# --------------------------------------------------------------------------


def kmer_shuffle(
    sequences: Tensor,
    n_references: int = 20,
    k: int = 2,
    *,
    start: int | None = None,
    end: int | None = None,
    random_state=None,
    example_indices=None,
) -> Tensor:
    """Shuffle one-hot DNA keeping every k-mer count, uniformly at random.

    Each reference is drawn uniformly over all sequences that have exactly the
    k-mer counts and the first (k-1)-mer of the (window of the) example.
    ``k = 1`` is a uniform permutation of the bases; ``k = 2`` the
    dinucleotide shuffle of Altschul & Erickson (1985). For ``k >= 2`` the
    method of Kandel, Matias, Unger & Winkler (1996), "Shuffling biological
    sequences", is followed: the sequence is an Eulerian path in the
    multigraph of its (k-1)-mers; a uniformly random arborescence of last-exit
    edges is drawn with Wilson's (1996) algorithm, the other out-edges of each
    vertex are put in uniformly random order, and the resulting Eulerian path
    is read off. Unlike the greedy walk of ``tangermeme.ersatz`` /
    ``deeplift.dinuc_shuffle``, every valid shuffle is reachable and equally
    likely. The shuffle also keeps the last (k-1)-mer, which the counts and
    first (k-1)-mer determine.

    ``N`` bases (all-zero columns) stay at their positions; each maximal
    N-free run of the window is shuffled on its own, so the k-mer counts of
    every N-free run are preserved exactly (k-mers spanning an ``N`` are
    neither counted nor created). Runs with fewer than two k-mers are left
    unchanged.

    Seeding: reference ``r`` of the example with index ``i`` (its entry in
    ``example_indices``) comes from its own random stream, a counter-based
    hash (splitmix64) of ``(random_state, i, r)``. It is therefore the same
    whatever batch the example sits in, the batch size, ``n_references``
    (as long as it exceeds ``r``) and the number of threads.

    Parameters
    ----------
    sequences
        One-hot DNA, shape ``(N, 4, L)``, channel-first in ACGT order; an
        all-zero column is an ``N``. Any real dtype and device. Not modified.
    n_references
        ``K``, the number of shuffles per example, ``>= 1``. Default 20.
    k
        Length of the preserved k-mers, ``>= 1``. Default 2.
    start, end
        Shuffle only ``sequences[..., start:end]`` (slice semantics: None for
        the ends, negative values count from the end, but no clipping);
        positions outside are copied unchanged. Default: the whole sequence.
    random_state
        None (default) for fresh entropy on every call (not reproducible), an
        integer in ``[0, 2**64)`` for bit-identical output on every call, or a
        ``numpy.random.Generator`` from which one seed is drawn.
    example_indices
        Integer tensor or array, shape ``(N,)``: the index of each example in
        the user's full data set, used for seeding. Default ``arange(N)``.

    Returns
    -------
    Tensor
        The references, shape ``(N, K, 4, L)``, with the dtype and device of
        ``sequences``.

    Raises
    ------
    TypeError
        If ``sequences`` is not a tensor or ``random_state`` is of the wrong
        type.
    ValueError
        If ``sequences`` is not ``(N, 4, L)``, holds NaN/Inf or is not
        one-hot (a value other than 0/1, a column summing to more than 1);
        if ``n_references`` or ``k`` is not an integer ``>= 1``; if ``start``
        or ``end`` lies outside ``[-L, L]`` or ``start`` comes after ``end``;
        if ``example_indices`` is not a non-negative integer array of length
        ``N``.

    Warns
    -----
    UserWarning
        If the window holds at most ``k`` positions: its only shuffle is the
        sequence itself, so the references are copies of the inputs.

    Examples
    --------
    >>> import torch
    >>> x = torch.nn.functional.one_hot(torch.randint(0, 4, (8, 200)), 4)
    >>> x = x.permute(0, 2, 1).float()                      # (8, 4, 200)
    >>> refs = kmer_shuffle(x, n_references=20, k=2, random_state=0)
    >>> refs.shape
    torch.Size([8, 20, 4, 200])
    """
    k = check_positive_int(k, "k")
    d = _draw.prepare_draw(sequences, n_references, start, end, example_indices, random_state,
                           _kernels.TAG_SHUFFLE)
    if d.keys is None:
        return d.finish()
    if d.end - d.start <= k:
        # at most one k-mer: the uniform draw is over one sequence, the input itself, so
        # references equal the inputs and attributions against them are zero
        warnings.warn(
            f"The shuffle window [{d.start}, {d.end}) of the {sequences.shape[-1]}-bp "
            f"`sequences` holds {d.end - d.start} position(s), at most k={k}: its only "
            "k-mer shuffle is the sequence itself, so every reference is a copy of its "
            "example. Use longer sequences, a wider `start`/`end` window or a smaller `k`.",
            UserWarning,
            stacklevel=2,
        )
    n, n_references, length = d.ref_codes.shape
    job = _ShuffleJob(d.codes, d.start, d.end, k, d.keys, d.ref_codes, d.view, d.one, d.zero)
    if n >= 2 * _draw.n_threads():
        # enough examples: each thread builds, shuffles and writes its own
        _draw.parallel(job.examples, (), n, n_references * length)
    else:
        # few examples (e.g. one with many references): split the pairs
        for b0 in range(0, n, job.block):
            job.pairs(b0, min(n, b0 + job.block))
    return d.finish()


def dinucleotide_shuffle(sequences: Tensor, n_references: int = 20, **kwargs) -> Tensor:
    """Uniform dinucleotide shuffles: :func:`kmer_shuffle` with ``k=2``.

    Each reference keeps the example's dinucleotide counts and first base
    (Altschul & Erickson 1985) and is drawn uniformly among all such
    sequences (Kandel et al. 1996).

    Parameters
    ----------
    sequences
        One-hot DNA, shape ``(N, 4, L)``, ACGT order, all-zero columns are ``N``.
    n_references
        ``K``, shuffles per example. Default 20.
    **kwargs
        ``start``, ``end``, ``random_state``, ``example_indices``, as in
        :func:`kmer_shuffle`.

    Returns
    -------
    Tensor
        Shape ``(N, K, 4, L)``, dtype and device of ``sequences``.

    Raises
    ------
    TypeError, ValueError
        As :func:`kmer_shuffle`; also ``TypeError`` if ``k`` is passed.
    """
    if "k" in kwargs:
        raise TypeError("dinucleotide_shuffle() fixes k=2; use kmer_shuffle(..., k=...) instead.")
    return kmer_shuffle(sequences, n_references, 2, **kwargs)
