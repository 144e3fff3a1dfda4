"""The single-base edits of saturation mutagenesis, grouped into bounded batches.

An *edit* replaces the base at one position of one sequence by another base.
The *observed base* of a column is the channel holding its 1; an all-zero
column (an ``N``) has no observed base (encoded here as ``A``, one past the
last channel). The edit that re-applies the observed base (an *identity
edit*) changes nothing and is never run: its change is 0 by definition. At an
``N`` column all ``A`` bases are edits.

Edits are grouped by position: a :class:`EditBatch` holds ``G`` positions
(of one or several sequences) and ``E`` substituted bases per position, so
every tensor of a batch can be viewed as ``(G, E, ...)`` and the values that
depend only on the position (the reference activations of the fast path)
are gathered once per position, not once per edit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import torch
from torch import Tensor

__all__ = ["EditBatch", "observed_bases", "edit_batches", "sequence_chunks"]


@dataclass(frozen=True)
class EditBatch:
    """``G`` positions, each edited to ``E`` bases: ``G * E`` edited sequences.

    Attributes
    ----------
    seq : Tensor ``(G,)`` int64
        Index of each position's sequence in the call's inputs.
    pos : Tensor ``(G,)`` int64
        The edited position, ``0 <= pos < L``.
    old : Tensor ``(G,)`` int64
        The observed base, or ``A`` for an ``N`` (all-zero) column.
    new : Tensor ``(G, E)`` int64
        The substituted bases, never equal to ``old``.

    Rows (edited sequences) are ordered position-major: row ``g * E + e`` is
    position ``g`` edited to ``new[g, e]``. All tensors are on the CPU.
    """

    seq: Tensor
    pos: Tensor
    old: Tensor
    new: Tensor

    @property
    def n_groups(self) -> int:
        """``G``, the positions of the batch."""
        return int(self.pos.shape[0])

    @property
    def per_group(self) -> int:
        """``E``, the edits per position."""
        return int(self.new.shape[1])

    @property
    def n_rows(self) -> int:
        """``G * E``, the edited sequences of the batch."""
        return self.n_groups * self.per_group

    def row_seq(self) -> Tensor:
        """Tensor ``(G * E,)`` int64: the sequence index of each row."""
        return self.seq.repeat_interleave(self.per_group)

    def edited(self, x: Tensor) -> Tensor:
        """The edited sequences ``(G * E, A, L)``, built from ``x`` ``(N, A, L)``.

        Copies ``x[seq]`` once per row and rewrites the edited column; ``x``
        is not modified. The result has ``x``'s dtype and device.
        """
        rows = self.row_seq().to(x.device)
        out = x.index_select(0, rows)
        b = torch.arange(self.n_rows, device=x.device)
        pos = self.pos.repeat_interleave(self.per_group).to(x.device)
        out[b, :, pos] = 0
        out[b, self.new.reshape(-1).to(x.device), pos] = 1
        return out


def observed_bases(x: Tensor) -> Tensor:
    """The observed base of every column, ``A`` for an all-zero (``N``) column.

    Parameters
    ----------
    x : Tensor ``(N, A, L)``
        One-hot sequences (0/1 values, at most one 1 per column; checked by
        the caller).

    Returns
    -------
    Tensor ``(N, L)`` int64 on the CPU
    """
    x = x.detach().cpu()
    a = x.shape[1]
    base = x.argmax(1)
    return torch.where(x.sum(1) > 0, base, torch.full_like(base, a))


def sequence_chunks(n: int, edits_per_sequence: int, batch_size: int) -> list[tuple[int, int]]:
    """Consecutive ranges of sequences whose edits fill about one batch each.

    A range holds at least one sequence and, when sequences are short, as
    many as fit in ``batch_size`` edits, so that a batch can span several
    short sequences while the reference activations of the fast path are
    held for a bounded number of sequences.

    Returns
    -------
    list of ``(lo, hi)``
        Covering ``0..n-1`` in order.
    """
    per = max(1, batch_size // max(1, edits_per_sequence))
    return [(lo, min(lo + per, n)) for lo in range(0, n, per)]


def edit_batches(observed: Tensor, lo: int, hi: int, start: int, end: int, n_bases: int,
                 batch_size: int) -> Iterator[EditBatch]:
    """The edits of sequences ``lo..hi-1`` within ``[start, end)``, in bounded batches.

    Parameters
    ----------
    observed : Tensor ``(N, L)`` int64
        From :func:`observed_bases`.
    lo, hi : int
        The sequences to edit.
    start, end : int
        The edited positions ``start <= pos < end``.
    n_bases : int
        ``A``, the alphabet size.
    batch_size : int
        At most this many edited sequences per batch. A batch holds whole
        positions (``A - 1`` edits, ``A`` at an ``N``) when
        ``batch_size >= A``; otherwise a position's edits are split.

    Yields
    ------
    EditBatch
        First the batches of positions with an observed base (``E = A - 1``),
        then those of ``N`` positions (``E = A``).
    """
    obs = observed[lo:hi, start:end]
    all_bases = torch.arange(n_bases)
    for is_n in (False, True):
        mask = (obs == n_bases) if is_n else (obs < n_bases)
        seq, pos = mask.nonzero(as_tuple=True)
        if seq.numel() == 0:
            continue
        seq, pos = seq + lo, pos + start
        old = observed[seq, pos]
        if is_n:
            new = all_bases.expand(seq.numel(), n_bases)
        else:  # the A - 1 bases other than the observed one, in order
            others = all_bases.expand(seq.numel(), n_bases)
            keep = others != old[:, None]
            new = others[keep].view(seq.numel(), n_bases - 1)
        e = new.shape[1]
        if batch_size >= e:
            g = batch_size // e
            for i in range(0, seq.numel(), g):
                yield EditBatch(seq[i:i + g], pos[i:i + g], old[i:i + g],
                                new[i:i + g].contiguous())
        else:  # fewer rows than one position's edits: split the position
            for i in range(seq.numel()):
                for j in range(0, e, batch_size):
                    yield EditBatch(seq[i:i + 1], pos[i:i + 1], old[i:i + 1],
                                    new[i:i + 1, j:j + batch_size].contiguous())
