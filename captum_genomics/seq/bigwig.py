"""Per-base tracks of equal-width regions written as a bigWig file.

A genome browser (IGV, the UCSC browser, JBrowse) shows a bigWig as a track.
:func:`write_bigwig` lays per-region values (for example contributions at the
observed base, shape ``(n, width)``) onto the genome with chrombpnet's rule for
overlapping regions, and writes them with pybigtools (or pyBigWig when
pybigtools is not installed; ``pip install captum-genomics[genome]``).

Coordinates are 0-based and half-open, as in BED.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd

__all__ = ["write_bigwig", "read_bigwig_intervals", "BACKENDS"]

BACKENDS = ("pybigtools", "pyBigWig")
"""The bigWig libraries supported, in the order tried."""

_BLOCK_ROWS = 1024


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _backend(backend: str | None) -> str:
    """The name of an installed bigWig library (``backend`` or the first found)."""
    if backend is not None and backend not in BACKENDS:
        raise ValueError(f"`backend` must be one of {BACKENDS} or None, got {backend!r}.")
    for name in (backend,) if backend else BACKENDS:
        try:
            __import__(name)
        except ImportError:
            continue
        return name
    wanted = backend or " or ".join(BACKENDS)
    raise ImportError(
        f"writing and reading bigWig files needs {wanted}: `pip install pybigtools` or "
        "`pip install captum-genomics[genome]`."
    )


class _Rows:
    """Row access to an ``(n, width)`` array-like, reading blocks of rows.

    Works for NumPy arrays, tensors and lazy arrays that support slicing along
    the first axis (h5py datasets, zarr arrays, memory maps). A block of rows
    is read when the rows are asked for in table order (each block read once);
    a row asked for out of order is read alone, so a table that is not sorted
    by position never reads a block per row.
    """

    def __init__(self, values: Any):
        if hasattr(values, "detach"):  # torch.Tensor
            values = values.detach().cpu().numpy()
        self.values = values
        self.lo = self.hi = 0
        self.block = np.empty((0, 0), dtype=np.float32)

    def __getitem__(self, i: int) -> np.ndarray:
        if not self.lo <= i < self.hi:
            sequential = i == self.hi or self.hi == 0
            self.lo = i
            self.hi = min(i + (_BLOCK_ROWS if sequential else 1), self.values.shape[0])
            self.block = np.asarray(self.values[self.lo:self.hi], dtype=np.float32)
        return self.block[i - self.lo]


def _segments(chrom_sizes: dict, regions: pd.DataFrame, width: int
              ) -> Iterator[tuple[int, str, int, int, int]]:
    """``(row, chrom, a, b, offset)``: bases ``[a, b)`` of ``chrom`` take
    ``values[row, offset : offset + b - a]``, in writing order."""
    rank = {c: k for k, c in enumerate(chrom_sizes)}
    chroms = regions["chrom"].astype(str).tolist()
    starts = regions["start"].to_numpy(dtype=np.int64).tolist()
    order = sorted(range(len(chroms)), key=lambda i: (rank[chroms[i]], starts[i]))
    # Equal widths: a repeated region loses every base to its first copy (ties go left).
    kept = [i for k, i in enumerate(order)
            if k == 0 or (chroms[i], starts[i]) != (chroms[order[k - 1]], starts[order[k - 1]])]
    begin = None
    for k, i in enumerate(kept):
        chrom, s = chroms[i], starts[i]
        e = s + width
        if begin is None:
            begin = s
        stop = e
        if k + 1 < len(kept):
            j = kept[k + 1]
            s2 = starts[j]
            if chroms[j] == chrom and s2 < e:
                # Base p (centre p + 0.5) stays with this region when it is at least
                # as near this centre (s + e) / 2 as the next one's (s2 + e2) / 2:
                # 4p + 2 <= s + e + s2 + e2.
                stop = (s + e + s2 + s2 + width - 2) // 4 + 1
        a, b = max(begin, 0), min(stop, chrom_sizes[chrom])
        if b > a:
            yield i, chrom, a, b, a - s
        nxt = kept[k + 1] if k + 1 < len(kept) else None
        begin = stop if nxt is not None and chroms[nxt] == chrom and starts[nxt] < e else None


def write_bigwig(
    path: str | os.PathLike,
    chrom_sizes: dict,
    regions: pd.DataFrame,
    values: Any,
    *,
    overwrite: bool = False,
    backend: str | None = None,
) -> Path:
    """Write per-base values of equal-width regions as a bigWig track.

    Overlapping regions follow chrombpnet's rule: regions are sorted by
    chromosome (in ``chrom_sizes`` order) and start, and each base is taken
    from the region whose centre is nearest. Region ``[s, e)`` has centre
    ``(s + e) / 2`` and base ``p`` sits at ``p + 0.5``; where two consecutive
    regions overlap, the boundary is the midpoint between their centres, and a
    base exactly at the midpoint goes to the left (earlier) region, as does
    every base of a region listed twice. Bases off the chromosome (before 0 or
    past ``chrom_sizes[chrom]``) are dropped; bases covered by no region have
    no value in the file.

    The file is written under a temporary name in the same folder and then
    renamed, so an interrupted write leaves nothing at ``path``. Output bytes
    depend only on the inputs (no timestamps).

    Parameters
    ----------
    path
        The bigWig file to write (conventionally ``.bw`` or ``.bigWig``).
    chrom_sizes : dict of str to int
        Every chromosome's length (e.g. :attr:`Genome.chrom_sizes`), in the
        order the file lists them (pybigtools leaves chromosomes without any
        value out of the file; pyBigWig lists them all).
    regions : pandas.DataFrame
        Columns ``chrom``, ``start``, ``end`` (0-based, half-open), every
        region ``width`` bases long; ``line`` is used in messages when present.
    values : array-like, shape=(n, width)
        ``values[i]`` holds the per-base values of ``regions.iloc[i]``; stored
        as float32. A NumPy array, a tensor, or a lazy array that can be
        sliced along the first axis (an h5py dataset), read in blocks of rows.
    overwrite : bool
        Replace an existing file at ``path``. Default ``False``.
    backend : {"pybigtools", "pyBigWig"} or None
        The writing library. Default ``None``: pybigtools when installed,
        else pyBigWig.

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    FileExistsError
        If ``path`` exists and ``overwrite`` is ``False``.
    FileNotFoundError
        If the folder of ``path`` does not exist.
    ValueError
        If ``values`` is not 2-D with one row per region, a region's width is
        not ``values.shape[1]``, a region's chromosome is not in
        ``chrom_sizes``, a written value is not finite (each naming the
        region), or ``regions`` is empty.
    ImportError
        If neither pybigtools nor pyBigWig is installed.
    """
    where = repr(os.fspath(path))
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"bigWig path {where} is a directory; give a file.")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"the folder of bigWig path {where} does not exist.")
    if path.exists() and not overwrite:
        raise FileExistsError(
            f"bigWig file {where} exists; pass overwrite=True to replace it."
        )
    if not isinstance(chrom_sizes, dict) or not chrom_sizes:
        raise ValueError(
            "`chrom_sizes` must be a non-empty dict of chromosome name to length, got "
            f"{type(chrom_sizes).__name__}."
        )
    sizes: dict[str, int] = {}
    for chrom, size in chrom_sizes.items():
        if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
            raise ValueError(
                f"`chrom_sizes[{chrom!r}]` must be a positive integer, got {size!r}."
            )
        sizes[str(chrom)] = int(size)
    if not isinstance(regions, pd.DataFrame):
        raise TypeError(
            f"`regions` must be a pandas DataFrame, got {type(regions).__name__}."
        )
    missing = [c for c in ("chrom", "start", "end") if c not in regions.columns]
    if missing:
        raise ValueError(f"`regions` lacks the column(s) {missing}.")
    if len(regions) == 0:
        raise ValueError("`regions` is empty; expected at least one region.")
    shape = tuple(getattr(values, "shape", np.shape(values)))
    if len(shape) != 2 or shape[0] != len(regions):
        raise ValueError(
            f"`values` must have shape (n_regions, width) = ({len(regions)}, width), "
            f"got {shape}."
        )
    width = int(shape[1])
    label = regions["line"].tolist() if "line" in regions.columns else None

    def name(i: int) -> str:
        return f"line {label[i]}" if label is not None else f"row {i}"

    widths = (regions["end"].to_numpy(dtype=np.int64)
              - regions["start"].to_numpy(dtype=np.int64))
    bad = np.flatnonzero(widths != width)
    if bad.size:
        i = int(bad[0])
        raise ValueError(
            f"`regions` {name(i)} is {widths[i]} bp long but `values` has {width} "
            "columns; every region must be values.shape[1] bases long."
        )
    chroms = regions["chrom"].astype(str)
    unknown = np.flatnonzero(~chroms.isin(list(sizes)).to_numpy())
    if unknown.size:
        i = int(unknown[0])
        raise ValueError(
            f"`regions` {name(i)}: chromosome {chroms.iloc[i]!r} is not in `chrom_sizes` "
            f"(which has {list(sizes)[:5]}{' ...' if len(sizes) > 5 else ''})."
        )
    if not isinstance(regions.index, pd.RangeIndex):
        regions = regions.reset_index(drop=True)
    rows = _Rows(values)
    lib = _backend(backend)
    segments = _segments(sizes, regions, width)

    def pieces() -> Iterator[tuple[str, int, np.ndarray]]:
        for i, chrom, a, b, offset in segments:
            piece = rows[i][offset:offset + b - a]
            if not np.all(np.isfinite(piece)):
                raise ValueError(
                    f"`values` of `regions` {name(i)} ({chrom}:{a}-{b}) hold a non-finite "
                    "value (NaN or inf); a bigWig needs finite values."
                )
            yield chrom, a, piece

    # pybigtools picks the format from the name: keep a ".bw" suffix on the temporary
    tmp = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp.bw"
    try:
        if lib == "pybigtools":
            _write_pybigtools(tmp, sizes, pieces())
        else:
            _write_pybigwig(tmp, sizes, pieces())
        os.chmod(tmp, 0o666 & ~_umask())
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
    return path


def _write_pybigtools(tmp: Path, sizes: dict, pieces: Iterator) -> None:
    import pybigtools

    error: list[BaseException] = []

    def entries() -> Iterator[tuple[str, int, int, float]]:
        try:
            for chrom, a, piece in pieces:
                for p, value in enumerate(piece.tolist(), start=a):
                    yield chrom, p, p + 1, value
        except BaseException as err:  # re-raised below, whatever the library makes of it
            error.append(err)
            raise

    writer = pybigtools.open(os.fspath(tmp), "w")
    try:
        writer.write(sizes, entries())
    except BaseException:
        if error:
            raise error[0] from None
        raise
    if error:
        raise error[0]


def _write_pybigwig(tmp: Path, sizes: dict, pieces: Iterator) -> None:
    import pyBigWig

    writer = pyBigWig.open(os.fspath(tmp), "w")
    if writer is None:
        raise OSError(f"pyBigWig could not open {os.fspath(tmp)!r} for writing.")
    try:
        writer.addHeader(list(sizes.items()))
        for chrom, a, piece in pieces:
            data = piece.astype(np.float64)
            writer.addEntries(chrom, int(a), values=data if pyBigWig.numpy else data.tolist(),
                              span=1, step=1)
    finally:
        writer.close()


def read_bigwig_intervals(
    path: str | os.PathLike, chrom: str, start: int, end: int, *, backend: str | None = None
) -> np.ndarray:
    """Per-base values of ``chrom:[start, end)`` from a bigWig file.

    Parameters
    ----------
    path
        A bigWig file.
    chrom : str
    start, end : int
        0-based, half-open, within the chromosome.
    backend : {"pybigtools", "pyBigWig"} or None
        The reading library. Default ``None``: pybigtools when installed,
        else pyBigWig.

    Returns
    -------
    numpy.ndarray, shape=(end - start,), dtype float32
        NaN where the file has no value.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If ``chrom`` is not in the file (a chromosome without values may be
        absent) or the interval is outside it.
    """
    where = repr(os.fspath(path))
    if not Path(path).is_file():
        raise FileNotFoundError(f"bigWig file {where} does not exist.")
    start, end = int(start), int(end)
    lib = _backend(backend)
    out = np.full(max(end - start, 0), np.nan, dtype=np.float32)
    if lib == "pybigtools":
        import pybigtools

        reader = pybigtools.open(os.fspath(path))
        try:
            size = reader.chroms().get(chrom)
            _check_interval(where, chrom, start, end, size)
            for a, b, value in reader.records(chrom, start, end):
                out[max(a, start) - start:min(b, end) - start] = value
        finally:
            reader.close()
    else:
        import pyBigWig

        reader = pyBigWig.open(os.fspath(path))
        if reader is None:
            raise ValueError(f"pyBigWig could not open {where} as a bigWig file.")
        try:
            _check_interval(where, chrom, start, end, reader.chroms().get(chrom))
            for a, b, value in reader.intervals(chrom, start, end) or ():
                out[max(a, start) - start:min(b, end) - start] = value
        finally:
            reader.close()
    return out


def _check_interval(where: str, chrom: str, start: int, end: int, size: int | None) -> None:
    if size is None:
        raise ValueError(f"bigWig file {where} has no chromosome {chrom!r}.")
    if not 0 <= start <= end <= size:
        raise ValueError(
            f"interval {chrom}:{start}-{end} is outside {chrom} (length {size}) in {where}."
        )
