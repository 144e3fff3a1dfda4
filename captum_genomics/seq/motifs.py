"""Position weight matrices: JASPAR reading, log-odds scores, best-match scanning.

A motif's counts are ``(4, W)`` in ``ACGT`` order, matching the one-hot layout
``(N, 4, L)``. Scanning scores every window of both strands; the reverse strand
uses the reverse complement of the log-odds matrix, which in ``ACGT`` order is
the matrix flipped along both axes.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["Motif", "load_jaspar", "load_meme", "load_motifs", "log_odds", "scan",
           "scan_best_match"]


@dataclass(frozen=True)
class Motif:
    """A position frequency matrix with its provenance.

    Parameters
    ----------
    name
        The factor name, e.g. ``"CTCF"``.
    id
        The database identifier, e.g. ``"MA0139.2"``.
    counts
        Array, shape=(4, W), rows in ``ACGT`` order: observed counts (or
        frequencies) per position. Stored as float64.
    citation
        Free text saying where the matrix comes from. Default ``""``.
    """

    name: str
    id: str
    counts: np.ndarray = field(repr=False)
    citation: str = field(default="", repr=False)

    def __post_init__(self):
        counts = np.array(self.counts, dtype=np.float64)
        if counts.ndim != 2 or counts.shape[0] != 4 or counts.shape[1] < 1:
            raise ValueError(
                f"Motif {self.id!r}: `counts` must have shape (4, W) with W >= 1, "
                f"got {counts.shape}."
            )
        if not np.isfinite(counts).all() or (counts < 0).any():
            raise ValueError(f"Motif {self.id!r}: `counts` must be finite and >= 0.")
        counts.setflags(write=False)
        object.__setattr__(self, "counts", counts)

    @property
    def width(self) -> int:
        """The motif width ``W``."""
        return int(self.counts.shape[1])

    def log_odds(
        self, pseudocount: float = 1.0, background: Sequence[float] | None = None
    ) -> np.ndarray:
        """This motif's log-odds matrix; see :func:`log_odds`."""
        return log_odds(self.counts, pseudocount=pseudocount, background=background)


_HEADER = re.compile(r"^>\s*(\S+)\s*(.*)$")
_ROW = re.compile(r"^([ACGTacgt])\s*\[?([^\]]*)\]?\s*$")


def load_jaspar(path: str | os.PathLike, citation: str = "") -> list[Motif]:
    """Read the motifs of a JASPAR-format count-matrix file.

    The format is the one JASPAR serves as ``.jaspar``: a ``>ID NAME`` header
    followed by four rows ``A [ c1 c2 ... ]`` (brackets optional), one per
    base, in any order.

    Parameters
    ----------
    path
        The file; it may hold several motifs.
    citation
        Stored on every returned :class:`Motif`. Default ``""``.

    Returns
    -------
    list of Motif
        The motifs in file order, counts rearranged to ``ACGT`` rows.

    Raises
    ------
    ValueError
        If the file holds no motif, a motif lacks one of the four rows, the
        rows differ in length, or a line is neither header nor count row.
    """
    motifs: list[Motif] = []
    current: tuple[str, str, dict[str, list[float]]] | None = None

    def _finish():
        if current is None:
            return
        mid, name, rows = current
        missing = [b for b in "ACGT" if b not in rows]
        if missing:
            raise ValueError(f"{os.fspath(path)!r}: motif {mid!r} lacks row(s) {missing}.")
        widths = {len(v) for v in rows.values()}
        if len(widths) != 1:
            raise ValueError(
                f"{os.fspath(path)!r}: motif {mid!r} has rows of unequal length {sorted(widths)}."
            )
        counts = np.array([rows[b] for b in "ACGT"], dtype=np.float64)
        motifs.append(Motif(name=name or mid, id=mid, counts=counts, citation=citation))

    with open(path, "rt", encoding="utf-8") as handle:
        for lineno, line in enumerate(handle, start=1):
            line = line.strip()
            if not line:
                continue
            header = _HEADER.match(line)
            if header:
                _finish()
                current = (header.group(1), header.group(2).strip(), {})
                continue
            row = _ROW.match(line)
            if row is None or current is None:
                raise ValueError(
                    f"{os.fspath(path)!r} line {lineno} is not JASPAR format: {line[:60]!r}."
                )
            try:
                values = [float(v) for v in row.group(2).split()]
            except ValueError as err:
                raise ValueError(
                    f"{os.fspath(path)!r} line {lineno}: counts must be numbers ({err})."
                ) from None
            current[2][row.group(1).upper()] = values
    _finish()
    if not motifs:
        raise ValueError(f"{os.fspath(path)!r} holds no JASPAR motif.")
    return motifs


_MEME_MOTIF = re.compile(r"^MOTIF\s+(\S+)(?:\s+(\S+))?")
_MEME_MATRIX = re.compile(r"^letter-probability matrix:(.*)$")


def load_meme(path: str | os.PathLike, citation: str = "") -> list[Motif]:
    """Read the motifs of a MEME-format file (MEME Suite "minimal MEME format").

    Each motif is a ``MOTIF id [name]`` line followed by a
    ``letter-probability matrix: ... w= W ...`` line and ``W`` rows of four
    probabilities in the file's ``ALPHABET`` order (``ACGT``; DNA only).
    The probabilities become the :class:`Motif` counts, scaled by the
    header's ``nsites=`` (20, MEME's default, when absent), so that
    :func:`log_odds`' pseudocount weighs as it does on JASPAR counts.

    Parameters
    ----------
    path
        The file (``.meme``/``.txt``); it may hold several motifs.
    citation
        Stored on every returned :class:`Motif`. Default ``""``.

    Returns
    -------
    list of Motif
        In file order, rows ``ACGT``.

    Raises
    ------
    ValueError
        If the file holds no motif, declares a non-DNA alphabet, or a matrix
        has the wrong number of rows or a row not of four numbers (the
        message gives the file and line).
    """
    where = os.fspath(path)
    motifs: list[Motif] = []
    with open(path, "rt", encoding="utf-8") as handle:
        lines = list(enumerate(handle, start=1))
    i = 0
    current: tuple[str, str] | None = None
    while i < len(lines):
        lineno, raw = lines[i]
        line = raw.strip()
        i += 1
        if line.startswith("ALPHABET"):
            alphabet = line.split("=", 1)[-1].strip().split()[0] if "=" in line else ""
            if alphabet and alphabet.upper() != "ACGT":
                raise ValueError(f"{where!r} line {lineno}: only the DNA alphabet ACGT is "
                                 f"supported, got {alphabet!r}.")
            continue
        head = _MEME_MOTIF.match(line)
        if head:
            current = (head.group(1), head.group(2) or head.group(1))
            continue
        matrix = _MEME_MATRIX.match(line)
        if not matrix:
            continue
        if current is None:
            raise ValueError(f"{where!r} line {lineno}: a letter-probability matrix before any "
                             "MOTIF line.")
        fields = dict(re.findall(r"(\w+)=\s*(\S+)", matrix.group(1)))
        try:
            width = int(fields["w"])
            nsites = float(fields.get("nsites", 20.0))
        except (KeyError, ValueError):
            raise ValueError(f"{where!r} line {lineno}: the matrix header must give w= "
                             f"(the width), got {line!r}.") from None
        rows = []
        while len(rows) < width:
            if i >= len(lines):
                raise ValueError(f"{where!r}: motif {current[0]!r} has {len(rows)} rows, "
                                 f"its header says w= {width}.")
            row_no, row = lines[i]
            i += 1
            if not row.strip():
                continue
            try:
                values = [float(v) for v in row.split()]
            except ValueError:
                raise ValueError(f"{where!r} line {row_no}: motif {current[0]!r} needs {width} "
                                 f"rows of 4 probabilities, got {row.strip()[:60]!r}.") from None
            if len(values) != 4:
                raise ValueError(f"{where!r} line {row_no}: a row of motif {current[0]!r} must "
                                 f"hold 4 probabilities (A C G T), got {len(values)}.")
            rows.append(values)
        counts = np.array(rows, dtype=np.float64).T * nsites
        motifs.append(Motif(name=current[1], id=current[0], counts=counts, citation=citation))
        current = None
    if not motifs:
        raise ValueError(f"{where!r} holds no MEME motif (no 'letter-probability matrix').")
    return motifs


def load_motifs(path: str | os.PathLike, citation: str = "") -> list[Motif]:
    """Read a JASPAR (``>ID NAME`` + count rows) or MEME-format motif file.

    The format is told from the content: a file with a ``MOTIF`` line and a
    ``letter-probability matrix`` is MEME, anything else is read as JASPAR.

    Returns
    -------
    list of Motif

    Raises
    ------
    ValueError
        As :func:`load_jaspar` or :func:`load_meme`.
    """
    with open(path, "rt", encoding="utf-8") as handle:
        text = handle.read()
    if "letter-probability matrix" in text:
        return load_meme(path, citation=citation)
    return load_jaspar(path, citation=citation)


def log_odds(
    counts: np.ndarray,
    pseudocount: float = 1.0,
    background: Sequence[float] | None = None,
) -> np.ndarray:
    """Convert a count matrix to a log2-odds (position weight) matrix.

    ``p[b, j] = (counts[b, j] + pseudocount * background[b]) /
    (sum_b counts[b, j] + pseudocount)`` and the score is
    ``log2(p[b, j] / background[b])``: a total pseudocount per column shared
    among the bases in proportion to the background (the same as Biopython's
    ``counts.normalize(pseudocounts={b: pseudocount * background[b]})``
    followed by ``log_odds(background)``).

    Parameters
    ----------
    counts
        Array, shape=(4, W), ``ACGT`` rows, non-negative.
    pseudocount
        The total pseudocount added to each column, shared among the bases in
        proportion to ``background``. Must be > 0 when a column holds a zero
        count, else that score is ``-inf``. Default ``1.0``.
    background
        Four base probabilities in ``ACGT`` order summing to 1. Default
        uniform ``(0.25, 0.25, 0.25, 0.25)``.

    Returns
    -------
    np.ndarray of float64, shape=(4, W)

    Raises
    ------
    ValueError
        If ``counts`` is not ``(4, W)``, ``pseudocount`` is negative, or
        ``background`` is not four positive probabilities summing to 1.
    """
    counts = np.asarray(counts, dtype=np.float64)
    if counts.ndim != 2 or counts.shape[0] != 4:
        raise ValueError(f"`counts` must have shape (4, W), got {counts.shape}.")
    if pseudocount < 0:
        raise ValueError(f"`pseudocount` must be >= 0, got {pseudocount!r}.")
    bg = np.full(4, 0.25) if background is None else np.asarray(background, dtype=np.float64)
    if bg.shape != (4,) or (bg <= 0).any() or not np.isclose(bg.sum(), 1.0):
        raise ValueError(
            f"`background` must be 4 positive probabilities summing to 1, got {bg.tolist()}."
        )
    bg = bg[:, None]
    probs = (counts + pseudocount * bg) / (counts.sum(axis=0, keepdims=True) + pseudocount)
    with np.errstate(divide="ignore"):
        return np.log2(probs / bg)


def _as_pwm(motif: Motif | np.ndarray, pseudocount, background) -> np.ndarray:
    if isinstance(motif, Motif):
        return motif.log_odds(pseudocount=pseudocount, background=background)
    pwm = np.asarray(motif, dtype=np.float64)
    if pwm.ndim != 2 or pwm.shape[0] != 4:
        raise ValueError(
            f"`motif` must be a Motif or a (4, W) log-odds matrix, got shape {pwm.shape}."
        )
    return pwm


def scan(
    one_hot: Tensor,
    motif: Motif | np.ndarray,
    pseudocount: float = 1.0,
    background: Sequence[float] | None = None,
) -> Tensor:
    """Log-odds score of every window on both strands.

    Parameters
    ----------
    one_hot
        Tensor, shape=(N, 4, L), ``ACGT`` one-hot (all-zero ``N`` columns
        score 0 at every motif position).
    motif
        A :class:`Motif` (converted with :func:`log_odds`) or a ready
        ``(4, W)`` log-odds matrix.
    pseudocount, background
        Passed to :func:`log_odds` when ``motif`` is a :class:`Motif`.

    Returns
    -------
    Tensor of float64, shape=(N, 2, L - W + 1)
        ``[:, 0, i]`` scores the forward-strand site starting at ``i``;
        ``[:, 1, i]`` scores the reverse-strand site covering the same bases
        ``i .. i + W - 1``.

    Raises
    ------
    ValueError
        If ``one_hot`` is not ``(N, 4, L)`` or ``L`` is shorter than the motif.
    """
    if not isinstance(one_hot, Tensor):
        raise TypeError(f"`one_hot` must be a torch.Tensor, got {type(one_hot).__name__}.")
    if one_hot.ndim != 3 or one_hot.shape[1] != 4:
        raise ValueError(f"`one_hot` must have shape (N, 4, L), got {tuple(one_hot.shape)}.")
    pwm = _as_pwm(motif, pseudocount, background)
    width = pwm.shape[1]
    if one_hot.shape[2] < width:
        raise ValueError(
            f"Sequences of length {one_hot.shape[2]} are shorter than the motif ({width})."
        )
    # Reverse complement of an ACGT matrix: flip bases (A<->T, C<->G) and positions.
    weight = torch.from_numpy(np.stack([pwm, pwm[::-1, ::-1].copy()]))
    # Replace -inf (zero counts without pseudocount) by a large finite penalty so
    # that 0 * -inf from absent bases does not produce NaN.
    weight = torch.nan_to_num(weight, neginf=-1e9)
    return F.conv1d(one_hot.detach().to("cpu", torch.float64), weight)


def scan_best_match(
    one_hot: Tensor,
    motif: Motif | np.ndarray,
    pseudocount: float = 1.0,
    background: Sequence[float] | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """The highest-scoring motif site of each sequence, over both strands.

    Parameters
    ----------
    one_hot
        Tensor, shape=(N, 4, L).
    motif
        A :class:`Motif` or a ``(4, W)`` log-odds matrix.
    pseudocount, background
        Passed to :func:`log_odds`; defaults ``1.0`` and uniform.

    Returns
    -------
    positions : Tensor of int64, shape=(N,)
        The leftmost (forward-strand) coordinate of the best site, so the site
        covers ``positions[n] .. positions[n] + W - 1`` on either strand.
    strands : Tensor of int64, shape=(N,)
        ``+1`` for a forward-strand match, ``-1`` for the reverse strand.
    scores : Tensor of float64, shape=(N,)
        The log2-odds score of the best site.

    Notes
    -----
    Ties go to the forward strand, then to the leftmost position.
    """
    scores_all = scan(one_hot, motif, pseudocount=pseudocount, background=background)
    n, _, n_pos = scores_all.shape
    flat = scores_all.reshape(n, 2 * n_pos)
    best = flat.argmax(dim=1)  # first maximum: forward strand before reverse
    scores = flat.gather(1, best[:, None])[:, 0]
    strands = torch.where(best < n_pos, 1, -1).to(torch.int64)
    positions = (best % n_pos).to(torch.int64)
    return positions, strands, scores
