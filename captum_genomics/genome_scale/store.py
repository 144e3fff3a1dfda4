"""Chunk files and the merged store of a genome-scale run.

A run writes one file per chunk of regions, ``chunks/chunk_000123.npz``
(arrays ``one_hot``, ``contributions``, ``hypothetical``, all float32
``(n, 4, L)``, and ``delta`` ``(n, K)``), atomically. When every chunk is
done, :func:`merge_chunks` reads them one at a time, in region order, and
writes the final files, each under a temporary name and then renamed:

``attributions.h5``
    HDF5 (h5py): datasets ``one_hot``, ``contributions`` (observed base) and
    ``hypothetical`` ``(n, 4, L)`` float32 and ``delta`` ``(n, K)``, chunked
    along ``n`` with gzip level 4; group ``regions`` with one dataset per
    column of the region table (``chrom``, ``name`` as UTF-8 bytes,
    ``start``, ``end`` int64, ``delta_median_abs``, ``delta_max_abs``
    float32, ``padded_bases`` int64).
``ohe.npz``, ``shap.npz``
    tfmodisco-lite's inputs (``arr_0``, float32 ``(n, 4, L)``: the one-hot
    sequences and the hypothetical contributions), as
    :func:`captum_genomics.seq.modisco.save_modisco_inputs` writes them but
    streamed chunk by chunk.
``regions.tsv``
    The region table with per-region convergence-delta summaries.
``contributions.bw``
    The contributions at the observed base as a bigWig
    (:func:`captum_genomics.seq.bigwig.write_bigwig`).

Memory stays flat in the number of regions: the merge holds one chunk and
one fixed-size block of rows at a time (the track for the bigWig goes through
a temporary file read back in blocks). The files are **byte-identical** for any
chunk size and any number of processes: rows are written to HDF5 and to the
zip streams in fixed blocks of :data:`BLOCK_ROWS` rows whatever the chunking,
HDF5 object timestamps are off, zip entries carry a fixed date, and nothing
holds the wall clock.
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np

__all__ = ["CHUNK_DIR", "OUTPUT_NAMES", "BLOCK_ROWS", "chunk_file", "write_chunk",
           "read_chunk", "merge_chunks", "NpyZipWriter"]

CHUNK_DIR = "chunks"
"""Folder of the chunk files inside the output folder."""

OUTPUT_NAMES = ("attributions.h5", "ohe.npz", "shap.npz", "regions.tsv", "contributions.bw")
"""The final files of a run (the manifest is written after them)."""

BLOCK_ROWS = 64
"""Rows per HDF5 chunk and per write into the merged files (independent of the run's chunks)."""

_ZIP_DATE = (1980, 1, 1, 0, 0, 0)
_ARRAYS = ("one_hot", "contributions", "hypothetical", "delta")


def chunk_file(index: int) -> str:
    """The chunk's file name relative to the output folder: ``chunks/chunk_000123.npz``."""
    return f"{CHUNK_DIR}/chunk_{index:06d}.npz"


def _tmp_path(path: Path) -> Path:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{path.suffix}",
                               dir=path.parent)
    os.close(fd)
    return Path(tmp)


def _replace_atomic(tmp: Path, path: Path) -> None:
    with open(tmp, "rb+") as handle:
        os.fsync(handle.fileno())
    os.chmod(tmp, 0o666 & ~_umask())
    os.replace(tmp, path)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


class NpyZipWriter:
    """Write ``.npy`` members into a zip (an ``.npz``) row block by row block.

    The zip is deterministic: fixed member dates, and the bytes reach the
    compressor in blocks of a fixed size whatever the sizes of the
    :meth:`write` calls, so the compressed stream does not depend on them.

    Parameters
    ----------
    handle : binary file opened for writing (seekable)
    compress : bool
        Deflate (as ``np.savez_compressed``) or store (as ``np.savez``).
    """

    _BLOCK = 1 << 20

    def __init__(self, handle, compress: bool) -> None:
        self._zip = zipfile.ZipFile(handle, "w", allowZip64=True)
        self._compress = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
        self._member = None
        self._buffer = bytearray()
        self._left = 0

    def begin(self, name: str, shape: Sequence[int], dtype: np.dtype) -> None:
        """Start the member ``name.npy`` holding a C-order array of ``shape``."""
        if self._member is not None:
            raise RuntimeError(f"member still open: {self._member!r}")
        info = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_DATE)
        info.compress_type = self._compress
        info.external_attr = 0o600 << 16
        self._member = self._zip.open(info, "w", force_zip64=True)
        header = io.BytesIO()
        dtype = np.dtype(dtype)
        np.lib.format.write_array_header_1_0(
            header, {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False,
                     "shape": tuple(int(s) for s in shape)})
        self._member.write(header.getvalue())
        self._left = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        self._dtype = dtype

    def write(self, rows: np.ndarray) -> None:
        """Append rows (C order) to the open member."""
        data = np.ascontiguousarray(rows, dtype=self._dtype).tobytes()
        if len(data) > self._left:
            raise ValueError("more data than the member's shape holds")
        self._left -= len(data)
        self._buffer += data
        while len(self._buffer) >= self._BLOCK:
            self._member.write(bytes(self._buffer[:self._BLOCK]))
            del self._buffer[:self._BLOCK]

    def end(self) -> None:
        """Close the open member (it must have received all its bytes)."""
        if self._left:
            raise ValueError(f"member is {self._left} bytes short of its shape")
        if self._buffer:
            self._member.write(bytes(self._buffer))
            self._buffer = bytearray()
        self._member.close()
        self._member = None

    def close(self) -> None:
        self._zip.close()


def write_chunk(path: str | os.PathLike, arrays: dict[str, np.ndarray]) -> str:
    """Write a chunk file atomically; return the sha256 of its bytes.

    Parameters
    ----------
    path : str or PathLike
        ``OUT/chunks/chunk_XXXXXX.npz``; its folder must exist.
    arrays : dict
        ``one_hot``, ``contributions``, ``hypothetical`` (float32
        ``(n, 4, L)``), ``delta`` (float32 ``(n, K)``), ``padded_bases``
        (int64 ``(n,)``).
    """
    path = Path(path)
    buffer = io.BytesIO()
    writer = NpyZipWriter(buffer, compress=False)
    for name in sorted(arrays):
        value = np.ascontiguousarray(arrays[name])
        writer.begin(name, value.shape, value.dtype)
        writer.write(value)
        writer.end()
    writer.close()
    from captum_genomics._utils.files import write_bytes_atomic

    data = buffer.getvalue()
    write_bytes_atomic(path, data)
    return hashlib.sha256(data).hexdigest()


def read_chunk(path: str | os.PathLike, sha256: str | None = None) -> dict[str, np.ndarray]:
    """Read a chunk file, checking its sha256 when given.

    Raises
    ------
    ValueError
        If the file's sha256 is not ``sha256`` (the file was changed or damaged).
    """
    data = Path(path).read_bytes()
    if sha256 is not None and hashlib.sha256(data).hexdigest() != sha256:
        raise ValueError(f"chunk file {os.fspath(path)!r} does not match the sha256 the "
                         "manifest records for it; it was changed or damaged. Delete it and "
                         "rerun the same command to recompute it.")
    with np.load(io.BytesIO(data)) as npz:
        return {name: npz[name] for name in npz.files}


def _blocks(chunks: Iterable[dict[str, np.ndarray]], rows: int
            ) -> Iterator[dict[str, np.ndarray]]:
    """Regroup a stream of chunks into blocks of exactly ``rows`` rows (the last shorter)."""
    pending: list[dict[str, np.ndarray]] = []
    count = 0
    for chunk in chunks:
        n = len(chunk["one_hot"])
        start = 0
        while start < n:
            take = min(rows - count, n - start)
            pending.append({k: v[start:start + take] for k, v in chunk.items()})
            count += take
            start += take
            if count == rows:
                yield {k: np.concatenate([p[k] for p in pending]) for k in pending[0]}
                pending, count = [], 0
    if pending:
        yield {k: np.concatenate([p[k] for p in pending]) for k in pending[0]}


class _RowFile:
    """Rows of a flat float32 ``(n, width)`` file, read with plain reads when sliced.

    Not a memory map: the pages of a map count towards the resident set as they
    are read, so the peak RSS would grow with the number of regions.
    """

    def __init__(self, path: Path, offset: int, shape: tuple[int, int]) -> None:
        self.shape = shape
        self._offset = offset
        self._handle = open(path, "rb")

    def __getitem__(self, rows: slice) -> np.ndarray:
        start, stop, step = rows.indices(self.shape[0])
        if step != 1:
            raise IndexError("only contiguous row slices")
        count = max(0, stop - start)
        self._handle.seek(self._offset + start * self.shape[1] * 4)
        data = np.fromfile(self._handle, dtype="<f4", count=count * self.shape[1])
        return data.reshape(count, self.shape[1])

    def close(self) -> None:
        self._handle.close()


def _format_float(value: float) -> str:
    return f"{value:.6g}"


def merge_chunks(out_dir: str | os.PathLike, regions, chunk_paths: Sequence[tuple[str, str]],
                 chrom_sizes: dict[str, int], width: int, n_references: int,
                 show_progress: bool = False) -> dict[str, str]:
    """Write the final files from the chunk files, streaming, each atomically.

    Parameters
    ----------
    out_dir : str or PathLike
    regions : pandas.DataFrame
        The (resized) regions, ``chrom``, ``start``, ``end``, ``name``, in run order.
    chunk_paths : sequence of (path, sha256)
        The chunk files in region order; each is checked against its sha256.
    chrom_sizes : dict
        Chromosome lengths of the genome (for the bigWig header).
    width, n_references : int
        ``L`` and ``K``.
    show_progress : bool
        A tqdm bar over the chunks. Default False.

    Returns
    -------
    dict
        File name -> sha256 of the written file.
    """
    import h5py

    out_dir = Path(out_dir)
    n = len(regions)
    shape = (n, 4, width)
    tmp = {name: _tmp_path(out_dir / name) for name in OUTPUT_NAMES}
    track_tmp = _tmp_path(out_dir / "contributions_track.npy")
    written: dict[str, str] = {}
    try:
        median = np.empty(n, np.float32)
        worst = np.empty(n, np.float32)
        padded = np.empty(n, np.int64)
        with h5py.File(tmp["attributions.h5"], "w", libver="earliest", track_order=False) as h5, \
                open(tmp["ohe.npz"], "wb") as ohe_file, open(tmp["shap.npz"], "wb") as shap_file, \
                open(track_tmp, "wb") as track_file:
            h5.attrs["format"] = "captum-genomics genome-scale attributions"
            datasets = {}
            for name, dshape in (("one_hot", shape), ("contributions", shape),
                                 ("hypothetical", shape), ("delta", (n, n_references))):
                datasets[name] = h5.create_dataset(
                    name, shape=dshape, dtype="float32",
                    chunks=(min(BLOCK_ROWS, n),) + dshape[1:], compression="gzip",
                    compression_opts=4, shuffle=True, track_times=False)
            ohe = NpyZipWriter(ohe_file, compress=True)
            shap = NpyZipWriter(shap_file, compress=True)
            ohe.begin("arr_0", shape, np.float32)
            np.lib.format.write_array_header_1_0(
                track_file, {"descr": "<f4", "fortran_order": False, "shape": (n, width)})
            track_offset = track_file.tell()
            chunks = (read_chunk(out_dir / path, sha) for path, sha in chunk_paths)
            if show_progress:
                from tqdm.auto import tqdm

                chunks = tqdm(chunks, total=len(chunk_paths), desc="merging", unit="chunk")
            row = 0
            shap.begin("arr_0", shape, np.float32)
            for block in _blocks(chunks, BLOCK_ROWS):
                m = len(block["one_hot"])
                sl = slice(row, row + m)
                for name in datasets:
                    datasets[name][sl] = block[name]
                ohe.write(block["one_hot"])
                shap.write(block["hypothetical"])
                track_file.write(np.ascontiguousarray(
                    block["contributions"].sum(axis=1), dtype="<f4").tobytes())
                delta = np.abs(block["delta"])
                median[sl] = np.median(delta, axis=1)
                worst[sl] = delta.max(axis=1)
                padded[sl] = block["padded_bases"]
                row += m
            if row != n:
                raise ValueError(f"the chunk files hold {row} regions, the run has {n}.")
            ohe.end()
            ohe.close()
            shap.end()
            shap.close()
            group = h5.create_group("regions", track_order=False)
            columns = {
                "chrom": np.array([str(c).encode() for c in regions["chrom"]]),
                "start": regions["start"].to_numpy(np.int64),
                "end": regions["end"].to_numpy(np.int64),
                "name": np.array([str(c).encode() for c in regions["name"]]),
                "delta_median_abs": median, "delta_max_abs": worst, "padded_bases": padded,
            }
            for name, values in columns.items():
                group.create_dataset(name, data=values, track_times=False)
        _write_regions_tsv(tmp["regions.tsv"], regions, median, worst, padded)
        track = _RowFile(track_tmp, track_offset, (n, width))
        from captum_genomics.seq.bigwig import write_bigwig

        table = regions[["chrom", "start", "end"]].reset_index(drop=True)
        write_bigwig(tmp["contributions.bw"], chrom_sizes, table, track, overwrite=True)
        track.close()
        for name in OUTPUT_NAMES:
            _replace_atomic(tmp[name], out_dir / name)
            from captum_genomics.genome_scale.manifest import file_sha256

            written[name] = file_sha256(out_dir / name)
    finally:
        for path in [*tmp.values(), track_tmp]:
            try:
                path.unlink()
            except FileNotFoundError:
                pass
    return written


def _write_regions_tsv(path: Path, regions, median, worst, padded) -> None:
    with open(path, "w", encoding="utf-8", newline="\n") as handle:
        handle.write("index\tchrom\tstart\tend\tname\tpadded_bases\tdelta_median_abs\t"
                     "delta_max_abs\n")
        for i, (chrom, start, end, name) in enumerate(zip(
                regions["chrom"], regions["start"], regions["end"], regions["name"])):
            handle.write(f"{i}\t{chrom}\t{int(start)}\t{int(end)}\t{name}\t{int(padded[i])}\t"
                         f"{_format_float(float(median[i]))}\t"
                         f"{_format_float(float(worst[i]))}\n")
