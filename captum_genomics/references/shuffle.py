"""k-mer-preserving shuffles of one-hot DNA, drawn uniformly.

The shuffles follow Kandel, Matias, Unger & Winkler (1996), "Shuffling
biological sequences", Discrete Applied Mathematics 71, 171-185: a uniformly
random Eulerian path through the (k-1)-mer multigraph, with the last-exit
arborescence drawn by Wilson's algorithm. ``k = 2`` is the dinucleotide
shuffle of Altschul & Erickson (1985), "Significance of nucleotide sequence
alignments", Mol. Biol. Evol. 2, 526-538, but drawn exactly uniformly over all
sequences with the same dinucleotide counts and first base (the greedy
walk used by ``deeplift.dinuc_shuffle`` and ``tangermeme.ersatz`` is not).
"""

from __future__ import annotations

import operator
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, NamedTuple

import numba
import numpy as np
import torch
from torch import Tensor

from captum_genomics._utils.checks import check_one_hot, check_positive_int, check_shape, check_tensor
from captum_genomics.references import _kernels

__all__ = ["kmer_shuffle", "dinucleotide_shuffle"]

#: Examples per kernel call are capped so that the per-example graph arrays
#: hold about this many positions.
_BLOCK_POSITIONS = 1 << 20

# dtypes the kernels read directly
_READ_DIRECT = {
    torch.float32,
    torch.float64,
    torch.uint8,
    torch.int8,
    torch.int16,
    torch.int32,
    torch.int64,
}

# dtype -> (dtype the kernel writes, value of a 1, value of a 0). float16 and
# bfloat16 are written as their int16 bit patterns (1.0 is 0x3C00 and 0x3F80).
_WRITE_AS = {
    torch.float32: (torch.float32, np.float32(1), np.float32(0)),
    torch.float64: (torch.float64, np.float64(1), np.float64(0)),
    torch.uint8: (torch.uint8, np.uint8(1), np.uint8(0)),
    torch.int8: (torch.int8, np.int8(1), np.int8(0)),
    torch.int16: (torch.int16, np.int16(1), np.int16(0)),
    torch.int32: (torch.int32, np.int32(1), np.int32(0)),
    torch.int64: (torch.int64, np.int64(1), np.int64(0)),
    torch.bool: (torch.uint8, np.uint8(1), np.uint8(0)),
    torch.float16: (torch.int16, np.int16(0x3C00), np.int16(0)),
    torch.bfloat16: (torch.int16, np.int16(0x3F80), np.int16(0)),
}


# --------------------------------------------------------------------------
# Argument handling shared with simple.py
# --------------------------------------------------------------------------


def _check_sequences(sequences, name: str = "sequences") -> Tensor:
    """Type, shape ``(N, 4, L)`` and real dtype of ``sequences``."""
    check_tensor(sequences, name)
    check_shape(sequences, name, (None, 4, None))
    if sequences.is_complex():
        raise ValueError(f"`{name}` must be real one-hot values, got dtype {sequences.dtype}.")
    return sequences


def _encode(sequences: Tensor, name: str = "sequences") -> np.ndarray:
    """Validate one-hot ``sequences`` ``(N, 4, L)`` and return uint8 codes ``(N, L)``.

    Codes are 0..3 for A, C, G, T and 4 for an all-zero (N) column. The
    one-hot check runs inside the kernel; on failure ``check_one_hot`` builds
    the message.
    """
    x = sequences.detach()
    if x.device.type != "cpu":
        x = x.cpu()
    if x.dtype == torch.bool:
        x = x.view(torch.uint8)
    elif x.dtype in (torch.float16, torch.bfloat16):
        x = x.float()
    elif x.dtype not in _READ_DIRECT:
        x = x.to(torch.float64)
    x = x.contiguous().numpy()
    n, _, length = x.shape
    codes = np.empty((n, length), np.uint8)
    bad = np.empty(n, np.int64)
    if n and length:
        _parallel(_kernels.encode, (x, codes, bad), n, length)
        if (bad > 0).any():
            check_one_hot(sequences, name, dim=1)
            e = int(np.argmax(bad > 0))
            raise ValueError(
                f"`{name}` must be one-hot encoded along axis 1; example {e} has "
                f"{int(bad[e])} column(s) that are not."
            )
    return codes


def _window(start, end, length: int) -> tuple[int, int]:
    """Normalize ``start``/``end`` (slice semantics, no clipping) to ``0 <= s <= e <= L``."""
    bounds = []
    for value, name, default in ((start, "start", 0), (end, "end", length)):
        if value is None:
            bounds.append(default)
            continue
        if isinstance(value, bool):
            raise ValueError(f"`{name}` must be an integer or None, got {value!r}.")
        try:
            v = operator.index(value)
        except TypeError:
            raise ValueError(
                f"`{name}` must be an integer or None, got {type(value).__name__}."
            ) from None
        if not -length <= v <= length:
            raise ValueError(
                f"`{name}` must be in [-{length}, {length}] for sequences of length "
                f"{length}, got {v}."
            )
        bounds.append(v + length if v < 0 else v)
    s, e = bounds
    if s > e:
        raise ValueError(
            f"`start` ({start}) must not come after `end` ({end}); they select "
            f"positions {s}..{e} of {length}."
        )
    return s, e


def _example_indices(example_indices, n: int) -> np.ndarray:
    """``example_indices`` as a non-negative int64 array of length ``n``."""
    if example_indices is None:
        return np.arange(n, dtype=np.int64)
    if isinstance(example_indices, Tensor):
        idx = example_indices.detach().cpu().numpy()
    else:
        idx = np.asarray(example_indices)
    if idx.dtype.kind not in "iu":
        raise ValueError(
            f"`example_indices` must hold integers, got dtype {idx.dtype}."
        )
    if idx.ndim != 1 or idx.shape[0] != n:
        raise ValueError(
            f"`example_indices` must have shape ({n},), one index per sequence, "
            f"got {tuple(idx.shape)}."
        )
    if n and int(idx.min()) < 0:
        raise ValueError(
            f"`example_indices` must be non-negative, got {int(idx.min())}."
        )
    return idx.astype(np.int64, copy=False)


def _seed(random_state) -> np.uint64:
    """A 64-bit seed: fresh entropy for None, the value of an integer, or drawn
    from a ``numpy.random.Generator``."""
    if random_state is None:
        return np.random.SeedSequence().generate_state(1, np.uint64)[0]
    if isinstance(random_state, np.random.Generator):
        return random_state.integers(0, 2**64, dtype=np.uint64, endpoint=False)
    if isinstance(random_state, bool):
        raise TypeError(
            f"`random_state` must be None, an int or a numpy Generator, got {random_state!r}."
        )
    try:
        v = operator.index(random_state)
    except TypeError:
        raise TypeError(
            "`random_state` must be None, an int or a numpy Generator, got "
            f"{type(random_state).__name__}."
        ) from None
    if not 0 <= v < 2**64:
        raise ValueError(f"`random_state` must be in [0, 2**64), got {v}.")
    return np.uint64(v)


def _new_output(sequences: Tensor, n_references: int):
    """Allocate the CPU output; return (tensor, kernel view, one, zero, finish)."""
    n, _, length = sequences.shape
    shape = (n, n_references, 4, length)
    if sequences.dtype in _WRITE_AS:
        kdtype, one, zero = _WRITE_AS[sequences.dtype]
        out = torch.empty(shape, dtype=sequences.dtype)
        view = out.view(kdtype) if kdtype != sequences.dtype else out
    else:
        out = torch.empty(shape, dtype=torch.uint8)
        view, one, zero = out, np.uint8(1), np.uint8(0)

    def finish() -> Tensor:
        res = out if out.dtype == sequences.dtype else out.to(sequences.dtype)
        return res if sequences.device.type == "cpu" else res.to(sequences.device)

    return out, view.numpy(), one, zero, finish


class _Draw(NamedTuple):
    """Validated arguments and output buffers shared by the seeded generators."""

    codes: np.ndarray      # (N, L) uint8 base codes
    start: int
    end: int
    keys: np.ndarray | None  # per-example seeds; None for an empty batch
    ref_codes: np.ndarray | None  # (N, K, L) uint8 scratch
    view: np.ndarray
    one: object
    zero: object
    finish: Callable[[], Tensor]


def _prepare_draw(sequences, n_references, start, end, example_indices, random_state,
                  tag: int) -> _Draw:
    """Validate the common arguments, encode, seed and allocate for one generator call."""
    sequences = _check_sequences(sequences)
    n_references = check_positive_int(n_references, "n_references")
    n, _, length = sequences.shape
    s, e = _window(start, end, length)
    idx = _example_indices(example_indices, n)
    seed = _seed(random_state)
    codes = _encode(sequences)
    _, view, one, zero, finish = _new_output(sequences, n_references)
    if n == 0 or length == 0:
        return _Draw(codes, s, e, None, None, view, one, zero, finish)
    keys = _kernels.example_keys(seed, np.uint64(tag), idx)
    ref_codes = np.empty((n, n_references, length), np.uint8)
    return _Draw(codes, s, e, keys, ref_codes, view, one, zero, finish)


# --------------------------------------------------------------------------
# Threads: the kernels release the GIL, so a plain thread pool runs them in
# parallel without numba's threading layer (whose OpenMP backend cannot fork
# and, on some virtual machines, costs milliseconds per launch).
# --------------------------------------------------------------------------

_POOL: ThreadPoolExecutor | None = None
_POOL_KEY: tuple[int, int] | None = None
_POOL_LOCK = threading.Lock()

#: Positions (items x sequence length) below which a thread is not worth starting.
_MIN_POSITIONS_PER_THREAD = 1 << 16


def _n_threads() -> int:
    """Threads to use: numba's setting (``NUMBA_NUM_THREADS`` /
    ``numba.set_num_threads``), which defaults to the CPU count."""
    return max(1, int(numba.get_num_threads()))


def _pool(workers: int) -> ThreadPoolExecutor:
    """The shared pool, recreated after a fork or a change of size."""
    global _POOL, _POOL_KEY
    key = (os.getpid(), workers)
    with _POOL_LOCK:
        if _POOL is None or _POOL_KEY != key:
            _POOL = ThreadPoolExecutor(workers, thread_name_prefix="captum_genomics")
            _POOL_KEY = key
        return _POOL


def _parallel(fn, args: tuple, n_items: int, item_size: int, align=None) -> None:
    """Run ``fn(*args, lo, hi)`` over a split of ``range(n_items)`` on threads.

    ``item_size`` (positions per item) sets how many threads are worth it;
    ``align(b)`` may move a split point. The calling thread takes the first
    share; exceptions propagate.
    """
    if n_items <= 0:
        return
    per = max(1, _MIN_POSITIONS_PER_THREAD // max(item_size, 1))
    n_threads = min(_n_threads(), max(1, n_items // per))
    if n_threads <= 1:
        fn(*args, 0, n_items)
        return
    bounds = [0]
    for t in range(1, n_threads):
        b = (t * n_items) // n_threads
        if align is not None:
            b = align(b)
        bounds.append(min(max(b, bounds[-1]), n_items))
    bounds.append(n_items)
    pool = _pool(n_threads - 1)
    futures = [
        pool.submit(fn, *args, bounds[t], bounds[t + 1])
        for t in range(1, n_threads)
        if bounds[t + 1] > bounds[t]
    ]
    try:
        fn(*args, bounds[0], bounds[1])
    finally:
        for f in futures:
            f.result()


def _write_task(kernel, args, ref_codes, view, one, zero):
    """``task(lo, hi)``: run ``kernel(*args, lo, hi)``, which fills the uint8
    codes of pairs ``lo..hi`` in ``ref_codes`` ``(n, K, L)``, then write them
    one-hot into ``view`` ``(n, K, 4, L)`` while they are still in cache."""
    n, k_refs, length = ref_codes.shape
    flat_codes = ref_codes.reshape(n * k_refs, length)
    flat_out = view.reshape(n * k_refs, 4, length)

    def task(lo: int, hi: int) -> None:
        kernel(*args, lo, hi)
        _kernels.write_one_hot(flat_codes, flat_out, one, zero, lo, hi)

    return task


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
            _parallel(_kernels.build_graphs, args, nb, width)
        else:
            _kernels.build_graphs(*args, 0, nb)
        return graphs

    def _task(self, b0: int, b1: int, graphs):
        args = (self.codes[b0:b1], self.k, *graphs, self.keys[b0:b1], self.ref_codes[b0:b1])
        return _write_task(
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
        _parallel(self._task(b0, b1, graphs), (), (b1 - b0) * n_refs, length,
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
    d = _prepare_draw(sequences, n_references, start, end, example_indices, random_state,
                      _kernels.TAG_SHUFFLE)
    if d.keys is None:
        return d.finish()
    n, n_references, length = d.ref_codes.shape
    job = _ShuffleJob(d.codes, d.start, d.end, k, d.keys, d.ref_codes, d.view, d.one, d.zero)
    if n >= 2 * _n_threads():
        # enough examples: each thread builds, shuffles and writes its own
        _parallel(job.examples, (), n, n_references * length)
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
