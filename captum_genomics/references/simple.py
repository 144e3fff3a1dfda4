"""Fixed and GC-matched references for one-hot DNA.

``zero_references`` and ``uniform_references`` are the classic fixed
baselines (all zeros; 0.25 for every base). ``gc_matched_references`` draws
random sequences with each example's own GC content, a background that keeps
base composition without keeping any motif (the "GC-matched" references of
e.g. Shrikumar et al. 2017, "Learning important features through propagating
activation differences", which used dinucleotide shuffles as the stronger
alternative).
"""

from __future__ import annotations

from torch import Tensor

from captum_genomics._utils.checks import check_one_hot, check_positive_int
from captum_genomics.references import _draw

__all__ = ["zero_references", "uniform_references", "gc_matched_references"]


def zero_references(sequences: Tensor, n_references: int = 1) -> Tensor:
    """All-zero references, one per requested slot.

    Parameters
    ----------
    sequences
        One-hot DNA, shape ``(N, 4, L)``; only its shape, dtype and device
        are used (it is still checked to be finite and one-hot, so that every
        generator accepts the same inputs).
    n_references
        ``K``, references per example, ``>= 1``. Default 1.

    Returns
    -------
    Tensor
        Zeros of shape ``(N, K, 4, L)``, dtype and device of ``sequences``.

    Raises
    ------
    TypeError
        If ``sequences`` is not a tensor.
    ValueError
        If ``sequences`` is not ``(N, 4, L)``, not finite or not one-hot, or
        ``n_references < 1``.
    """
    sequences = _draw.check_sequences(sequences)
    n_references = check_positive_int(n_references, "n_references")
    check_one_hot(sequences, "sequences", dim=1)
    n, _, length = sequences.shape
    return sequences.new_zeros((n, n_references, 4, length))


def uniform_references(sequences: Tensor, n_references: int = 1) -> Tensor:
    """References of 0.25 for every base, zero at ``N`` positions.

    ``N`` columns (all zero in ``sequences``) stay all zero, so that a
    position the input does not encode gets no difference-from-reference and
    hence no attribution; every other column is ``(0.25, 0.25, 0.25, 0.25)``,
    the expected one-hot column under a uniform base distribution.

    Parameters
    ----------
    sequences
        One-hot DNA, shape ``(N, 4, L)``, ACGT order, floating dtype.
    n_references
        ``K``, references per example (all identical), ``>= 1``. Default 1.

    Returns
    -------
    Tensor
        Shape ``(N, K, 4, L)``, dtype and device of ``sequences``.

    Raises
    ------
    TypeError
        If ``sequences`` is not a tensor.
    ValueError
        If ``sequences`` is not ``(N, 4, L)``, not finite or not one-hot, has
        a non-floating dtype (0.25 is not representable), or
        ``n_references < 1``.
    """
    sequences = _draw.check_sequences(sequences)
    n_references = check_positive_int(n_references, "n_references")
    if not sequences.is_floating_point():
        raise ValueError(
            "`sequences` must have a floating dtype for uniform references (0.25 "
            f"per base), got {sequences.dtype}; convert with `sequences.float()`."
        )
    check_one_hot(sequences, "sequences", dim=1)
    n, _, length = sequences.shape
    present = (sequences.detach() != 0).any(dim=1, keepdim=True)  # (N, 1, L)
    ref = present.to(sequences.dtype) * 0.25
    return ref.unsqueeze(1).expand(n, n_references, 4, length).contiguous()


def gc_matched_references(
    sequences: Tensor,
    n_references: int = 20,
    *,
    random_state=None,
    example_indices=None,
    start: int | None = None,
    end: int | None = None,
) -> Tensor:
    """Random iid sequences with each example's own GC content.

    For example ``e`` with GC fraction ``gc = (#C + #G) / (#A + #C + #G + #T)``
    over the window (``N`` positions not counted; 0.5 if the window holds no
    base), every window position draws A, C, G, T independently with
    probabilities ``(1 - gc) / 2, gc / 2, gc / 2, (1 - gc) / 2``. ``N``
    positions stay ``N`` and positions outside the window are copied.

    Seeding is that of :func:`~captum_genomics.references.kmer_shuffle`:
    reference ``r`` of the example with index ``i`` comes from a stream
    hashed from ``(random_state, i, r)`` (splitmix64), independent of the
    batch, ``n_references`` and the number of threads.

    Parameters
    ----------
    sequences
        One-hot DNA, shape ``(N, 4, L)``, ACGT order; all-zero columns are
        ``N``. Any real dtype and device. Not modified.
    n_references
        ``K``, references per example, ``>= 1``. Default 20.
    random_state
        None (default: fresh entropy, not reproducible), an integer in
        ``[0, 2**64)`` (bit-identical output on every call), or a
        ``numpy.random.Generator`` from which one seed is drawn.
    example_indices
        Integers, shape ``(N,)``: each example's index in the full data set,
        for seeding. Default ``arange(N)``.
    start, end
        Randomize only ``[..., start:end]`` (slice semantics without
        clipping); the GC fraction is measured there too. Default: all.

    Returns
    -------
    Tensor
        Shape ``(N, K, 4, L)``, dtype and device of ``sequences``.

    Raises
    ------
    TypeError
        If ``sequences`` is not a tensor or ``random_state`` has the wrong
        type.
    ValueError
        If ``sequences`` is not ``(N, 4, L)``, not finite or not one-hot;
        ``n_references < 1``; ``start``/``end`` outside ``[-L, L]`` or
        ``start`` after ``end``; ``example_indices`` not ``N`` non-negative
        integers.
    """
    from captum_genomics.references import _kernels  # numba: only for this generator

    d = _draw.prepare_draw(sequences, n_references, start, end, example_indices, random_state,
                           _kernels.TAG_GC)
    if d.keys is None:
        return d.finish()
    n, n_references, length = d.ref_codes.shape
    gc = _kernels.gc_fractions(d.codes, d.start, d.end)
    _draw.parallel(
        _draw.write_task(_kernels.gc_pairs, (d.codes, d.start, d.end, gc, d.keys, d.ref_codes),
                         d.ref_codes, d.view, d.one, d.zero),
        (), n * n_references, length,
    )
    return d.finish()
