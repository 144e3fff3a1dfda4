"""Regions from a BED file, sequences from an indexed genome FASTA.

The genome side of a genome-scale run: read a BED file into a region table,
centre and resize the regions, and fetch their one-hot sequences from a genome
FASTA with random access (pyfaidx, ``pip install captum-genomics[genome]``).

Coordinates are 0-based and half-open everywhere, as in BED: a region
``(chrom, start, end)`` holds the bases ``start, ..., end - 1``.

- :func:`read_bed`: a BED file (plain or gzip) -> region table (a DataFrame
  with columns ``chrom, start, end, name, line``).
- :func:`resize_regions`: centre each region at its midpoint, fixed width.
- :func:`open_genome`: a :class:`Genome` (builds the ``.fai`` index when missing).
- :func:`fetch_one_hot`: one-hot sequences ``(n, 4, width)``, padded with ``N``
  (all-zero columns) off the chromosome ends, and a report of the padding.
- :func:`region_seed_index`: a stable per-region integer, used as the
  ``example_indices`` that seed each region's references.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import re
import secrets
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from captum_genomics.seq.io import one_hot_encode, open_text

__all__ = [
    "Genome",
    "read_bed",
    "resize_regions",
    "open_genome",
    "fetch_one_hot",
    "region_seed_index",
    "region_seed_indices",
]

REGION_COLUMNS = ("chrom", "start", "end", "name", "line")
"""The columns of a region table, in order."""

_INT = re.compile(r"[+]?[0-9]+")
_SKIP_PREFIXES = ("#", "track", "browser")
_SEED_RANGE = 2**62


# --------------------------------------------------------------------------- BED


def _where(regions: pd.DataFrame) -> str:
    """How messages name a region table: its file when known."""
    path = regions.attrs.get("path") if hasattr(regions, "attrs") else None
    return repr(path) if path else "`regions`"


def _row_label(regions: pd.DataFrame, i: int) -> str:
    """``line 12`` when the table has BED line numbers, else ``row 12``."""
    if "line" in regions.columns:
        return f"line {int(regions['line'].iloc[i])}"
    return f"row {i}"


def read_bed(path: str | os.PathLike) -> pd.DataFrame:
    """Read a BED file (plain or gzip) into a region table.

    Only the first four columns are read (``chrom, start, end`` and the
    optional ``name``); further columns (score, strand, ...) are ignored.
    Fields are tab-separated; a line without a tab is split on runs of
    whitespace. Lines that are blank or start with ``#``, ``track`` or
    ``browser`` are skipped. gzip compression is detected from the file's
    first bytes, not its name.

    Parameters
    ----------
    path
        The BED file.

    Returns
    -------
    pandas.DataFrame
        One row per region, in file order, with a ``RangeIndex`` and columns

        - ``chrom`` (str),
        - ``start``, ``end`` (int64; 0-based, half-open, as in the file),
        - ``name`` (str; the 4th column, or ``chrom:start-end`` when the file
          has no 4th column or it is empty or ``.``),
        - ``line`` (int64; the 1-based line of the region in the file).

        ``DataFrame.attrs["path"]`` holds ``path`` (messages of later steps
        name the file).

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    IsADirectoryError
        If ``path`` is a folder.
    ValueError
        Naming the file and line: a line with fewer than 3 columns, a start or
        end that is not a non-negative integer (a negative start), start >
        end, binary content or a damaged gzip file; and a file with no regions.
    """
    where = repr(os.fspath(path))
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"BED file {where} does not exist.")
    if path.is_dir():
        raise IsADirectoryError(f"BED file {where} is a directory; give a file.")
    chroms: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    names: list[str] = []
    lines: list[int] = []
    try:
        with open_text(path, encoding="utf-8", newline="") as handle:
            for lineno, raw in enumerate(handle, start=1):
                line = raw.rstrip("\r\n")
                if "\x00" in line or "\ufffd" in line:
                    raise ValueError(
                        f"BED file {where} line {lineno} holds binary (non-text) bytes; "
                        "is it a BED file?"
                    )
                stripped = line.strip()
                if not stripped or stripped.startswith(_SKIP_PREFIXES):
                    continue
                fields = line.split("\t") if "\t" in line else stripped.split()
                fields = [f.strip() for f in fields]
                if len(fields) < 3:
                    raise ValueError(
                        f"BED file {where} line {lineno}: expected at least 3 columns "
                        f"(chrom, start, end), got {len(fields)}: {line!r}."
                    )
                chrom, start_text, end_text = fields[:3]
                if not chrom:
                    raise ValueError(
                        f"BED file {where} line {lineno}: the chromosome (column 1) is "
                        f"empty: {line!r}."
                    )
                for column, text in (("start", start_text), ("end", end_text)):
                    if text.startswith("-") and _INT.fullmatch(text[1:]):
                        raise ValueError(
                            f"BED file {where} line {lineno}: {column} (column "
                            f"{2 if column == 'start' else 3}) is negative ({text}); BED "
                            "coordinates are 0-based and non-negative."
                        )
                    if not _INT.fullmatch(text):
                        raise ValueError(
                            f"BED file {where} line {lineno}: {column} (column "
                            f"{2 if column == 'start' else 3}) must be a non-negative "
                            f"integer, got {text!r}."
                        )
                start, end = int(start_text), int(end_text)
                if start > end:
                    raise ValueError(
                        f"BED file {where} line {lineno}: start {start} > end {end}; "
                        "expected start <= end (0-based, half-open)."
                    )
                if end >= 2**62:
                    raise ValueError(
                        f"BED file {where} line {lineno}: end {end} is too large."
                    )
                name = fields[3] if len(fields) > 3 else ""
                if name in ("", "."):
                    name = f"{chrom}:{start}-{end}"
                chroms.append(chrom)
                starts.append(start)
                ends.append(end)
                names.append(name)
                lines.append(lineno)
    except (EOFError, gzip.BadGzipFile, zlib.error) as error:
        raise ValueError(
            f"BED file {where} is a damaged gzip file ({error}); it may have been "
            "truncated."
        ) from None
    if not chroms:
        raise ValueError(
            f"BED file {where} holds no regions (only blank, comment, 'track' or "
            "'browser' lines, or nothing)."
        )
    table = pd.DataFrame(
        {
            "chrom": pd.Series(chroms, dtype=object),
            "start": np.asarray(starts, dtype=np.int64),
            "end": np.asarray(ends, dtype=np.int64),
            "name": pd.Series(names, dtype=object),
            "line": np.asarray(lines, dtype=np.int64),
        }
    )
    table.attrs["path"] = os.fspath(path)
    return table


def _check_regions(regions: Any, needed=("chrom", "start", "end")) -> pd.DataFrame:
    if not isinstance(regions, pd.DataFrame):
        raise TypeError(
            "`regions` must be a pandas DataFrame with columns chrom, start, end "
            f"(e.g. from read_bed), got {type(regions).__name__}."
        )
    missing = [c for c in needed if c not in regions.columns]
    if missing:
        raise ValueError(
            f"`regions` lacks the column(s) {missing}; expected {list(needed)}, got "
            f"{list(regions.columns)}."
        )
    if len(regions) == 0:
        raise ValueError("`regions` is empty; expected at least one region.")
    return regions


def resize_regions(bed: pd.DataFrame, width: int) -> pd.DataFrame:
    """Centre each region at its midpoint and give it a fixed width.

    The midpoint is ``mid = (start + end) // 2``; the new region is
    ``start = mid - width // 2``, ``end = start + width``. A region may then run
    off either end of its chromosome (a negative start, or an end past the
    chromosome's length): it is kept, and :func:`fetch_one_hot` pads it with
    ``N`` and reports it.

    Parameters
    ----------
    bed : pandas.DataFrame
        A region table with columns ``chrom``, ``start``, ``end`` (e.g. from
        :func:`read_bed`); other columns (``name``, ``line``, ...) are kept
        unchanged.
    width : int
        The new width, positive.

    Returns
    -------
    pandas.DataFrame
        A copy of ``bed`` with new ``start``, ``end`` (int64); ``attrs`` kept.

    Raises
    ------
    TypeError
        If ``bed`` is not a DataFrame or ``width`` not an integer.
    ValueError
        If ``width`` < 1, or ``bed`` is empty or lacks a column.
    """
    bed = _check_regions(bed)
    if isinstance(width, bool) or not isinstance(width, (int, np.integer)):
        raise TypeError(f"`width` must be a positive integer, got {width!r}.")
    if width < 1:
        raise ValueError(f"`width` must be a positive integer, got {width}.")
    width = int(width)
    out = bed.copy()
    start = bed["start"].to_numpy(dtype=np.int64)
    end = bed["end"].to_numpy(dtype=np.int64)
    mid = (start + end) // 2
    out["start"] = mid - width // 2
    out["end"] = out["start"] + width
    out.attrs = dict(bed.attrs)
    return out


# --------------------------------------------------------------------------- genome


class Genome:
    """Random access to an indexed genome FASTA (a thin layer over pyfaidx).

    Open one with :func:`open_genome`. A ``Genome`` can be pickled (it reopens
    the file by path), so it can be sent to worker processes.

    Attributes
    ----------
    path : pathlib.Path
        The FASTA file.
    index_path : pathlib.Path
        Its ``.fai`` index.
    chrom_sizes : dict of str to int
        Each sequence's name (the first word of its header) and length, in file
        order.
    """

    def __init__(self, path: Path, index_path: Path, fasta: Any):
        self.path = path
        self.index_path = index_path
        self._fasta = fasta
        self.chrom_sizes: dict[str, int] = {
            name: int(record.rlen) for name, record in fasta.faidx.index.items()
        }

    def __repr__(self) -> str:
        return (
            f"Genome({os.fspath(self.path)!r}, {len(self.chrom_sizes)} sequences, "
            f"{sum(self.chrom_sizes.values())} bp)"
        )

    def __contains__(self, chrom: object) -> bool:
        return chrom in self.chrom_sizes

    def __enter__(self) -> Genome:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __getstate__(self) -> dict:
        return {"path": self.path, "index_path": self.index_path}

    def __setstate__(self, state: dict) -> None:
        reopened = open_genome(state["path"], index_path=state["index_path"])
        self.__dict__.update(reopened.__dict__)

    def close(self) -> None:
        """Close the FASTA file (further fetches fail)."""
        self._fasta.close()

    def fetch(self, chrom: str, start: int, end: int) -> str:
        """The sequence of ``chrom:[start, end)``, upper case, ``N``-padded.

        Parameters
        ----------
        chrom : str
            A sequence name of the genome.
        start, end : int
            0-based, half-open; ``start <= end``. Positions before 0 or past
            the chromosome's end read as ``N``.

        Returns
        -------
        str
            ``end - start`` characters; soft-masked (lower-case) bases are
            returned upper case.

        Raises
        ------
        KeyError
            If ``chrom`` is not in the genome (the message lists a few names).
        ValueError
            If ``start > end``.
        """
        start, end = int(start), int(end)
        if start > end:
            raise ValueError(f"start {start} > end {end}.")
        try:
            size = self.chrom_sizes[chrom]
        except KeyError:
            raise KeyError(
                f"chromosome {chrom!r} is not in genome {os.fspath(self.path)!r}; it has "
                f"{_some_names(self.chrom_sizes)}."
            ) from None
        s, e = max(start, 0), min(end, size)
        seq = str(self._fasta.faidx.fetch(chrom, s + 1, e)) if e > s else ""
        if len(seq) != max(e - s, 0):
            raise ValueError(
                f"genome {os.fspath(self.path)!r}: read {len(seq)} bases of {chrom}:{s}-{e}, "
                f"expected {e - s}; is the index {os.fspath(self.index_path)!r} stale or "
                "built for another file? Delete it to rebuild it."
            )
        left = min(max(-start, 0), end - start)
        right = end - start - left - len(seq)
        return "N" * left + seq.upper() + "N" * right


def _some_names(chrom_sizes: dict, k: int = 5) -> str:
    names = list(chrom_sizes)
    shown = ", ".join(repr(n) for n in names[:k])
    more = f" and {len(names) - k} more" if len(names) > k else ""
    return f"{len(names)} sequence(s): {shown}{more}"


def _gzip_kind(path: Path) -> str | None:
    """``None`` for an uncompressed file, ``"bgzf"`` or ``"gzip"`` otherwise."""
    with open(path, "rb") as handle:
        head = handle.read(18)
    if head[:2] != b"\x1f\x8b":
        return None
    # BGZF: gzip with FEXTRA set and an extra subfield "BC" of length 2.
    if len(head) >= 16 and head[3] & 4 and head[12:14] == b"BC":
        return "bgzf"
    return "gzip"


def _build_index_atomically(path: Path, index_path: Path) -> None:
    """Build ``index_path`` with pyfaidx under a temporary name, then rename it."""
    import pyfaidx

    folder = index_path.parent
    if not folder.is_dir():
        raise FileNotFoundError(
            f"cannot write the FASTA index {os.fspath(index_path)!r}: its folder does not "
            "exist."
        )
    if not os.access(folder, os.W_OK | os.X_OK):
        raise PermissionError(
            f"genome {os.fspath(path)!r} has no index ({os.fspath(index_path)!r} is "
            "missing or older than the FASTA) and its folder is not writable, so the "
            "index cannot be built there. Build it once where you can write "
            f"(`samtools faidx {os.fspath(path)}` as a user who can write that folder), "
            "or pass index_path= a writable location, or copy the genome to a writable "
            "folder."
        )
    tmp = folder / f".{index_path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    try:
        faidx = pyfaidx.Faidx(os.fspath(path), indexname=os.fspath(tmp))
        faidx.close()
        os.replace(tmp, index_path)
    finally:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass


def open_genome(path: str | os.PathLike, *, index_path: str | os.PathLike | None = None
                ) -> Genome:
    """Open a genome FASTA for random access, building its index when missing.

    The index is samtools' ``.fai`` format. When it is missing (or older than
    the FASTA) it is built with pyfaidx under a temporary name in its folder,
    then renamed, so processes opening the same genome at once (torchrun
    ranks) never read a half-written index.

    Parameters
    ----------
    path
        A FASTA file, uncompressed (recommended) or BGZF-compressed
        (``bgzip``; needs ``biopython``; the name must end in ``.gz`` or
        ``.bgz``). Lines within a record must share one length, as for
        ``samtools faidx``.
    index_path
        Where the ``.fai`` index is (or is to be built). Default
        ``path + ".fai"``. Ignored for BGZF files (pyfaidx keeps ``.fai`` and
        ``.gzi`` beside them).

    Returns
    -------
    Genome
        With ``chrom_sizes`` and ``fetch(chrom, start, end)``. Close it with
        ``close()`` or use it in a ``with`` block.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist (the message names it).
    IsADirectoryError
        If ``path`` is a folder.
    PermissionError
        If the index must be built but its folder is not writable (the message
        says what to do).
    ValueError
        If ``path`` is gzip- but not BGZF-compressed (the message says how to
        recompress it with ``bgzip``), or cannot be indexed: text before the
        first header, lines of unequal length within a record, no sequence,
        two records with one name, or binary content.
    ImportError
        If pyfaidx (or, for BGZF, biopython) is not installed.
    """
    where = repr(os.fspath(path))
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"genome FASTA {where} does not exist.")
    if path.is_dir():
        raise IsADirectoryError(f"genome FASTA {where} is a directory; give a FASTA file.")
    try:
        import pyfaidx
    except ImportError:
        raise ImportError(
            "open_genome needs pyfaidx: `pip install pyfaidx` or "
            "`pip install captum-genomics[genome]`."
        ) from None
    kind = _gzip_kind(path)
    if kind == "gzip":
        stem = path.name[:-3] if path.name.endswith(".gz") else path.name
        raise ValueError(
            f"genome FASTA {where} is gzip-compressed but not BGZF (block gzip), so it "
            "cannot be read by random access. Decompress it (`gzip -d` or `bgzip -d "
            f"{path.name}`), or recompress it with bgzip from htslib/samtools: "
            f"`gzip -dc {path.name} | bgzip > {stem}.bgz` (an uncompressed FASTA is "
            "fastest)."
        )
    if kind == "bgzf":
        if not path.name.lower().endswith((".gz", ".bgz")):
            raise ValueError(
                f"genome FASTA {where} is BGZF-compressed but its name does not end in "
                "'.gz' or '.bgz'; rename it (pyfaidx decides by the name), or decompress "
                "it with `bgzip -d`."
            )
        index = Path(os.fspath(path) + ".fai")
        try:
            fasta = pyfaidx.Fasta(os.fspath(path), as_raw=True, sequence_always_upper=True)
        except ImportError:
            raise ImportError(
                f"genome FASTA {where} is BGZF-compressed; reading it needs biopython>=1.73 "
                "(`pip install biopython`), or decompress it with `bgzip -d "
                f"{path.name}`."
            ) from None
        except (pyfaidx.FastaIndexingError, UnicodeDecodeError, OSError, ValueError) as err:
            raise ValueError(f"genome FASTA {where} cannot be indexed: {err}") from None
        return Genome(path, index, fasta)

    index = Path(index_path) if index_path is not None else Path(os.fspath(path) + ".fai")
    stale = index.exists() and index.stat().st_mtime < path.stat().st_mtime
    if not index.exists() or stale:
        try:
            _build_index_atomically(path, index)
        except pyfaidx.FastaIndexingError as err:
            raise ValueError(
                f"genome FASTA {where} cannot be indexed: {err} (samtools faidx needs "
                "a '>' header first and, within a record, lines of one length; rewrap "
                "the sequence, e.g. `seqkit seq -w 60 in.fa > out.fa`)."
            ) from None
        except UnicodeDecodeError:
            raise ValueError(
                f"genome FASTA {where} cannot be indexed: it holds binary (non-text) "
                "bytes. Is it a FASTA file?"
            ) from None
        except ValueError as err:  # two records with one name
            raise ValueError(f"genome FASTA {where} cannot be used: {err}.") from None
    try:
        fasta = pyfaidx.Fasta(
            os.fspath(path),
            indexname=os.fspath(index),
            as_raw=True,
            sequence_always_upper=True,
            rebuild=False,
            build_index=False,
        )
    except ValueError as err:  # duplicate names
        raise ValueError(f"genome FASTA {where} cannot be used: {err}.") from None
    except (pyfaidx.IndexNotFoundError, OSError) as err:
        raise ValueError(
            f"genome FASTA {where}: its index {os.fspath(index)!r} cannot be read ({err}); "
            "delete it to rebuild it."
        ) from None
    return Genome(path, index, fasta)


# --------------------------------------------------------------------------- one-hot


def fetch_one_hot(
    genome: Genome | str | os.PathLike,
    regions: pd.DataFrame,
    *,
    dtype: torch.dtype = torch.float32,
) -> tuple[Tensor, dict]:
    """One-hot sequences of equal-width regions, padded off the chromosome ends.

    Parameters
    ----------
    genome
        A :class:`Genome`, or a FASTA path (opened with :func:`open_genome`
        and closed again).
    regions : pandas.DataFrame
        Columns ``chrom``, ``start``, ``end`` (0-based, half-open), all
        regions of one width (use :func:`resize_regions`); ``name`` and
        ``line`` are used in the report and in messages when present.
    dtype
        The tensor's dtype. Default ``torch.float32``.

    Returns
    -------
    one_hot : Tensor, shape=(n, 4, width)
        ``ACGT`` order; soft-masked (lower-case) bases encoded as upper case;
        ``N``, other IUPAC codes and positions off either chromosome end are
        all-zero columns.
    report : dict
        ``n_regions``, ``width``, ``n_padded`` and ``padded``: one dict per
        region that runs off its chromosome, in table order, with ``index``
        (row position), ``name``, ``chrom``, ``start``, ``end``, ``line``
        (``None`` without a ``line`` column), ``left`` and ``right`` (bases
        padded before position 0 and after the chromosome end) and
        ``bases_padded`` (their sum).

    Raises
    ------
    ValueError
        If a region's chromosome is not in the genome (naming the BED file,
        line and chromosome), the regions' widths differ, a region has
        start > end, or ``regions`` is empty or lacks a column.
    TypeError
        If ``regions`` is not a DataFrame.
    """
    regions = _check_regions(regions)
    if not isinstance(genome, Genome):
        with open_genome(genome) as opened:
            return fetch_one_hot(opened, regions, dtype=dtype)
    chroms = regions["chrom"].astype(str).tolist()
    starts = regions["start"].to_numpy(dtype=np.int64)
    ends = regions["end"].to_numpy(dtype=np.int64)
    widths = ends - starts
    bad = np.flatnonzero(widths != widths[0])
    if bad.size:
        i = int(bad[0])
        raise ValueError(
            f"{_where(regions)}: all regions must have one width to be stacked; region 0 "
            f"is {widths[0]} bp but {_row_label(regions, i)} is {widths[i]} bp. Use "
            "resize_regions(regions, width) first."
        )
    width = int(widths[0])
    if width < 0:
        raise ValueError(f"{_where(regions)} {_row_label(regions, 0)}: start > end.")
    names = regions["name"].astype(str).tolist() if "name" in regions.columns else None
    lines = regions["line"].tolist() if "line" in regions.columns else None
    sizes = genome.chrom_sizes
    sequences: list[str] = []
    padded: list[dict] = []
    for i, (chrom, start, end) in enumerate(zip(chroms, starts.tolist(), ends.tolist())):
        size = sizes.get(chrom)
        if size is None:
            raise ValueError(
                f"{_where(regions)} {_row_label(regions, i)}: chromosome {chrom!r} is not "
                f"in genome {os.fspath(genome.path)!r}, which has "
                f"{_some_names(sizes)}. Check the assembly and the naming "
                "('chr1' versus '1')."
            )
        sequences.append(genome.fetch(chrom, start, end))
        left = min(max(-start, 0), width)
        right = min(max(end - size, 0), width - left)
        if left or right:
            padded.append(
                {
                    "index": i,
                    "name": names[i] if names is not None else f"{chrom}:{start}-{end}",
                    "chrom": chrom,
                    "start": start,
                    "end": end,
                    "line": int(lines[i]) if lines is not None else None,
                    "left": left,
                    "right": right,
                    "bases_padded": left + right,
                }
            )
    if width == 0:
        one_hot = torch.zeros((len(sequences), 4, 0), dtype=dtype)
    else:
        one_hot = one_hot_encode(sequences, dtype=dtype)
    report = {
        "n_regions": len(sequences),
        "width": width,
        "n_padded": len(padded),
        "padded": padded,
    }
    return one_hot, report


# --------------------------------------------------------------------------- seeds


def region_seed_index(random_state: int, chrom: str, start: int, end: int, name: str) -> int:
    """A stable integer for a region, in ``[0, 2**62)``.

    The first 8 bytes of ``hashlib.blake2b`` over the UTF-8 text
    ``"{random_state}\\t{chrom}\\t{start}\\t{end}\\t{name}"`` (integers in
    decimal), shifted right by 2 bits. It depends only on its arguments, not
    on the process, the platform, ``PYTHONHASHSEED`` or the region's position
    in a chunk, so passing it as ``example_indices`` seeds each region's
    references identically under any chunking or number of processes.

    Parameters
    ----------
    random_state : int
        The run's seed.
    chrom : str
    start, end : int
        The region's coordinates (as attributed, e.g. after resizing).
    name : str

    Returns
    -------
    int
        In ``[0, 2**62)``; fits an int64 ``example_indices`` entry.

    Raises
    ------
    TypeError
        If ``random_state``, ``start`` or ``end`` is not an integer.
    """
    for label, value in (("random_state", random_state), ("start", start), ("end", end)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise TypeError(f"`{label}` must be an integer, got {value!r}.")
    text = f"{int(random_state)}\t{chrom}\t{int(start)}\t{int(end)}\t{name}"
    digest = hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 2


def region_seed_indices(random_state: int, regions: pd.DataFrame) -> Tensor:
    """:func:`region_seed_index` of every row of a region table.

    Parameters
    ----------
    random_state : int
    regions : pandas.DataFrame
        Columns ``chrom``, ``start``, ``end``, ``name``.

    Returns
    -------
    Tensor, shape=(n,), dtype int64
        Non-negative; usable as ``example_indices``.
    """
    regions = _check_regions(regions, needed=("chrom", "start", "end", "name"))
    values = [
        region_seed_index(random_state, str(c), int(s), int(e), str(n))
        for c, s, e, n in zip(regions["chrom"], regions["start"], regions["end"],
                              regions["name"])
    ]
    return torch.tensor(values, dtype=torch.int64)
