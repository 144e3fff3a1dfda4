"""Drawing machinery shared by the seeded reference generators.

:func:`~captum_genomics.references.kmer_shuffle` and
:func:`~captum_genomics.references.gc_matched_references` (and the checks of
the fixed references) share it: the argument checks (:func:`check_sequences`,
:func:`window`, :func:`as_example_indices`, :func:`as_seed`), the encoding of
one-hot input to base codes (:func:`encode`), the output buffer the kernels
write one-hot into (:func:`new_output`), all of it for one call
(:func:`prepare_draw`), and the thread pool that runs the numba kernels
(:func:`parallel`, :func:`write_task`).
"""

from __future__ import annotations

import operator
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, NamedTuple

import numpy as np
import torch
from torch import Tensor

from captum_genomics._utils.checks import (
    check_one_hot,
    check_positive_int,
    check_shape,
    check_tensor,
)

# numba and the kernels (_kernels) are imported where a kernel runs: the
# argument checks here serve generators that never draw.

__all__ = [
    "check_sequences",
    "encode",
    "window",
    "as_example_indices",
    "as_seed",
    "new_output",
    "Draw",
    "prepare_draw",
    "MIN_POSITIONS_PER_THREAD",
    "n_threads",
    "parallel",
    "write_task",
]

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
# Argument handling
# --------------------------------------------------------------------------


def check_sequences(sequences, name: str = "sequences") -> Tensor:
    """Type, shape ``(N, 4, L)`` and real dtype of ``sequences``."""
    check_tensor(sequences, name)
    check_shape(sequences, name, (None, 4, None))
    if sequences.is_complex():
        raise ValueError(f"`{name}` must be real one-hot values, got dtype {sequences.dtype}.")
    return sequences


def encode(sequences: Tensor, name: str = "sequences") -> np.ndarray:
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
    from captum_genomics.references import _kernels

    x = x.contiguous().numpy()
    n, _, length = x.shape
    codes = np.empty((n, length), np.uint8)
    bad = np.empty(n, np.int64)
    if n and length:
        parallel(_kernels.encode, (x, codes, bad), n, length)
        if (bad > 0).any():
            check_one_hot(sequences, name, dim=1)
            e = int(np.argmax(bad > 0))
            raise ValueError(
                f"`{name}` must be one-hot encoded along axis 1; example {e} has "
                f"{int(bad[e])} column(s) that are not."
            )
    return codes


def window(start, end, length: int) -> tuple[int, int]:
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


def as_example_indices(example_indices, n: int) -> np.ndarray:
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


def as_seed(random_state) -> np.uint64:
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


def new_output(sequences: Tensor, n_references: int):
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


class Draw(NamedTuple):
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


def prepare_draw(sequences, n_references, start, end, example_indices, random_state,
                 tag: int) -> Draw:
    """Validate the common arguments, encode, seed and allocate for one generator call."""
    sequences = check_sequences(sequences)
    n_references = check_positive_int(n_references, "n_references")
    n, _, length = sequences.shape
    s, e = window(start, end, length)
    idx = as_example_indices(example_indices, n)
    seed = as_seed(random_state)
    codes = encode(sequences)
    _, view, one, zero, finish = new_output(sequences, n_references)
    if n == 0 or length == 0:
        return Draw(codes, s, e, None, None, view, one, zero, finish)
    from captum_genomics.references import _kernels

    keys = _kernels.example_keys(seed, np.uint64(tag), idx)
    ref_codes = np.empty((n, n_references, length), np.uint8)
    return Draw(codes, s, e, keys, ref_codes, view, one, zero, finish)


# --------------------------------------------------------------------------
# Threads: the kernels release the GIL, so a plain thread pool runs them in
# parallel without numba's threading layer (whose OpenMP backend cannot fork
# and, on some virtual machines, costs milliseconds per launch).
# --------------------------------------------------------------------------

_POOL: ThreadPoolExecutor | None = None
_POOL_KEY: tuple[int, int] | None = None
_POOL_LOCK = threading.Lock()

#: Positions (items x sequence length) below which a thread is not worth starting.
MIN_POSITIONS_PER_THREAD = 1 << 16


def n_threads() -> int:
    """Threads to use: numba's setting (``NUMBA_NUM_THREADS`` /
    ``numba.set_num_threads``), which defaults to the CPU count."""
    import numba

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


def parallel(fn, args: tuple, n_items: int, item_size: int, align=None) -> None:
    """Run ``fn(*args, lo, hi)`` over a split of ``range(n_items)`` on threads.

    ``item_size`` (positions per item) sets how many threads are worth it;
    ``align(b)`` may move a split point. The calling thread takes the first
    share; exceptions propagate.
    """
    if n_items <= 0:
        return
    per = max(1, MIN_POSITIONS_PER_THREAD // max(item_size, 1))
    threads = min(n_threads(), max(1, n_items // per))
    if threads <= 1:
        fn(*args, 0, n_items)
        return
    bounds = [0]
    for t in range(1, threads):
        b = (t * n_items) // threads
        if align is not None:
            b = align(b)
        bounds.append(min(max(b, bounds[-1]), n_items))
    bounds.append(n_items)
    pool = _pool(threads - 1)
    futures = [
        pool.submit(fn, *args, bounds[t], bounds[t + 1])
        for t in range(1, threads)
        if bounds[t + 1] > bounds[t]
    ]
    try:
        fn(*args, bounds[0], bounds[1])
    finally:
        for f in futures:
            f.result()


def write_task(kernel, args, ref_codes, view, one, zero):
    """``task(lo, hi)``: run ``kernel(*args, lo, hi)``, which fills the uint8
    codes of pairs ``lo..hi`` in ``ref_codes`` ``(n, K, L)``, then write them
    one-hot into ``view`` ``(n, K, 4, L)`` while they are still in cache."""
    from captum_genomics.references import _kernels

    n, k_refs, length = ref_codes.shape
    flat_codes = ref_codes.reshape(n * k_refs, length)
    flat_out = view.reshape(n * k_refs, 4, length)

    def task(lo: int, hi: int) -> None:
        kernel(*args, lo, hi)
        _kernels.write_one_hot(flat_codes, flat_out, one, zero, lo, hi)

    return task
