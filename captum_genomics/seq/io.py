"""Sequence input and output: FASTA reading, one-hot encoding and decoding.

One-hot DNA is channel-first ``(N, 4, L)`` in ``ACGT`` order. Lowercase
(soft-masked) bases encode like their uppercase base; any other character
(``N``, IUPAC ambiguity codes, gaps) encodes as an all-zero column.
"""

from __future__ import annotations

import gzip
import os
import zlib
from typing import Sequence

import numpy as np
import torch
from torch import Tensor

__all__ = ["ALPHABET", "read_fasta", "one_hot_encode", "one_hot_decode", "random_one_hot"]

ALPHABET = "ACGT"
"""The channel order of every one-hot array in the package."""

# Byte -> channel lookup: 0..3 for A, C, G, T (either case), 4 for everything else.
_CHANNEL = np.full(256, 4, dtype=np.int64)
for _i, _base in enumerate(ALPHABET):
    _CHANNEL[ord(_base)] = _i
    _CHANNEL[ord(_base.lower())] = _i
# Channel -> one-hot row; row 4 is the all-zero column of an unknown base.
_ROWS = np.concatenate([np.eye(4, dtype=np.uint8), np.zeros((1, 4), dtype=np.uint8)])


def open_text(path: str | os.PathLike, encoding: str = "ascii", newline: str | None = None):
    """Open ``path`` for reading text, un-gzipping it when its first bytes say gzip.

    Undecodable bytes become U+FFFD (``errors="replace"``), so callers can
    report binary content with a clear message.
    """
    with open(path, "rb") as handle:
        magic = handle.read(2)
    opener = gzip.open if magic == b"\x1f\x8b" else open
    return opener(path, "rt", encoding=encoding, errors="replace", newline=newline)


def read_fasta(path: str | os.PathLike) -> tuple[list[str], list[str]]:
    """Read a (optionally gzipped) FASTA file.

    Parameters
    ----------
    path
        A FASTA file; gzip compression is detected from the file's first
        bytes, not its name. Sequences may span several lines.

    Returns
    -------
    names : list of str
        The header of each record without the leading ``>`` (the whole line,
        stripped of surrounding whitespace).
    sequences : list of str
        Each record's sequence with line breaks and whitespace removed; case is
        kept (lowercase marks soft-masked bases).

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    IsADirectoryError
        If ``path`` is a folder.
    ValueError
        If sequence text appears before the first header, the file holds no
        records, a record has no sequence, the file holds binary bytes, or a
        gzipped file is damaged (truncated); the message names the path.
    """
    where = repr(os.fspath(path))
    names: list[str] = []
    chunks: list[list[str]] = []
    starts: list[int] = []
    try:
        with open_text(path) as handle:
            for lineno, line in enumerate(handle, start=1):
                if "\x00" in line or "\ufffd" in line:
                    raise ValueError(
                        f"{where} is not a FASTA text file: line {lineno} holds binary "
                        "(non-ASCII) bytes."
                    )
                line = line.strip()
                if not line or line.startswith(";"):
                    continue
                if line.startswith(">"):
                    names.append(line[1:].strip())
                    chunks.append([])
                    starts.append(lineno)
                elif not chunks:
                    raise ValueError(
                        f"{where} is not FASTA: line {lineno} holds sequence "
                        "text before the first '>' header."
                    )
                else:
                    chunks[-1].append("".join(line.split()))
    except (EOFError, gzip.BadGzipFile, zlib.error) as error:
        raise ValueError(
            f"{where} is a damaged gzip file ({error}); it may have been truncated by an "
            "interrupted download or copy."
        ) from None
    if not names:
        raise ValueError(f"{where} holds no FASTA records (no '>' header).")
    empty = [i for i, c in enumerate(chunks) if not c]
    if empty:
        i = empty[0]
        raise ValueError(
            f"{where}: record {names[i]!r} (line {starts[i]}) has no sequence"
            + (f", and {len(empty) - 1} more record(s) are empty" if len(empty) > 1 else "")
            + "."
        )
    return names, ["".join(c) for c in chunks]


def one_hot_encode(
    sequences: Sequence[str], dtype: torch.dtype = torch.float32
) -> Tensor:
    """One-hot encode equal-length DNA sequences, channel-first.

    Parameters
    ----------
    sequences
        ``N`` strings of equal length ``L``. ``A``, ``C``, ``G``, ``T`` in
        either case map to channels 0-3; any other character (``N``, IUPAC
        codes, ``-``) maps to an all-zero column.
    dtype
        The dtype of the returned tensor. Default ``torch.float32``.

    Returns
    -------
    Tensor, shape=(N, 4, L)
        The one-hot sequences in ``ACGT`` order.

    Raises
    ------
    TypeError
        If ``sequences`` is a single string (wrap it in a list), not iterable,
        or holds a non-string; or ``dtype`` is not a real ``torch.dtype``.
    ValueError
        If ``sequences`` is empty or the lengths differ; the message names the
        first sequence whose length differs from the first one's.

    Notes
    -----
    Encoding is one vectorized table look-up over the concatenated bytes, so
    it costs about as much as copying the text.
    """
    if isinstance(sequences, (str, bytes)):
        raise TypeError(
            "`sequences` must be a list of strings, got a single string; "
            "pass [sequence] to encode one sequence."
        )
    if not isinstance(dtype, torch.dtype) or dtype.is_complex:
        raise TypeError(f"`dtype` must be a real torch.dtype such as torch.float32, got "
                        f"{dtype!r}.")
    try:
        sequences = list(sequences)
    except TypeError:
        raise TypeError(
            f"`sequences` must be a list of strings, got {type(sequences).__name__}."
        ) from None
    if not sequences:
        raise ValueError("`sequences` is empty; expected at least one sequence.")
    for i, s in enumerate(sequences):
        if not isinstance(s, str):
            raise TypeError(
                f"`sequences[{i}]` must be a str, got {type(s).__name__}."
            )
    length = len(sequences[0])
    for i, s in enumerate(sequences):
        if len(s) != length:
            raise ValueError(
                f"All sequences must have the same length to be one-hot encoded "
                f"together: sequence 0 has length {length} but sequence {i} has "
                f"length {len(s)}. Trim or pad them to one length first."
            )
    text = "".join(sequences).encode("ascii", errors="replace")
    codes = _CHANNEL[np.frombuffer(text, dtype=np.uint8)]
    onehot = _ROWS[codes].reshape(len(sequences), length, 4).transpose(0, 2, 1)
    return torch.from_numpy(np.ascontiguousarray(onehot)).to(dtype)


def one_hot_decode(one_hot: Tensor | np.ndarray, unknown: str = "N") -> list[str]:
    """Decode channel-first one-hot sequences back to strings.

    Parameters
    ----------
    one_hot
        Tensor or array, shape=(N, 4, L), in ``ACGT`` order. Every column must
        be one-hot or all zero.
    unknown
        The single character written for an all-zero column. Default ``"N"``.

    Returns
    -------
    list of str
        ``N`` uppercase strings of length ``L``.

    Raises
    ------
    ValueError
        If ``one_hot`` is not 3-dimensional with 4 channels, or a column is
        neither one-hot nor all zero (the message gives its position).
    """
    if isinstance(one_hot, Tensor):
        one_hot = one_hot.detach().cpu().numpy()
    one_hot = np.asarray(one_hot)
    if one_hot.ndim != 3 or one_hot.shape[1] != 4:
        raise ValueError(
            f"`one_hot` must have shape (N, 4, L), got {tuple(one_hot.shape)}."
        )
    if len(unknown) != 1:
        raise ValueError(f"`unknown` must be one character, got {unknown!r}.")
    col_sum = one_hot.sum(axis=1)
    valid = (((one_hot == 0) | (one_hot == 1)).all(axis=1)) & (col_sum <= 1)
    if not valid.all():
        n, pos = (int(v) for v in np.argwhere(~valid)[0])
        raise ValueError(
            f"`one_hot` is not one-hot: the column of sequence {n} at position "
            f"{pos} is {one_hot[n, :, pos].tolist()}."
        )
    letters = np.frombuffer((ALPHABET + unknown).encode("ascii"), dtype=np.uint8)
    codes = np.where(col_sum == 0, 4, one_hot.argmax(axis=1))
    chars = letters[codes]
    return [row.tobytes().decode("ascii") for row in chars]


def random_one_hot(n: int, length: int, generator: torch.Generator,
                   dtype: torch.dtype = torch.float64) -> Tensor:
    """``n`` uniform random one-hot sequences, no N columns.

    Parameters
    ----------
    n, length : int
        Sequences and positions.
    generator : torch.Generator
        Draws the bases (CPU); the same generator state gives the same batch.
    dtype : torch.dtype
        Default float64.

    Returns
    -------
    Tensor ``(n, 4, length)``
        Channel-first, ACGT order.
    """
    idx = torch.randint(0, len(ALPHABET), (n, length), generator=generator)
    return torch.nn.functional.one_hot(idx, len(ALPHABET)).permute(0, 2, 1).to(dtype)
