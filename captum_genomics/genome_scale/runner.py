"""Attribute genome regions in chunks: resumable, sharded across processes, streamed to disk.

:func:`attribute_regions` is the Python API behind
``captum-genomics attribute --bed ... --genome ...``. The regions are cut into
chunks of ``chunk_size`` in their given (BED) order; each chunk is attributed
with :class:`~captum_genomics.methods.ShuffleDeepLiftShap` and written to its
own file atomically, then recorded in the manifest
(:mod:`captum_genomics.genome_scale.manifest`). The references of a region are
seeded by ``(random_state, region_seed_index(random_state, chrom, start, end,
name), k)``, never by its position in a chunk or a process, so any chunking and
any number of processes give the same numbers; the merged files
(:mod:`captum_genomics.genome_scale.store`) are byte-identical.

Resuming: calling again with the same arguments skips the chunks the manifest
lists (after checking each file's sha256) and continues; other arguments, another
model or other regions are refused (:func:`~captum_genomics.genome_scale.manifest.check_resumable`).
Ctrl-C (SIGINT) stops after the current chunk with :class:`RunInterrupted`, whose
message says that the same call resumes; a second Ctrl-C stops at once (the chunk
being written is then simply redone). A kill (SIGKILL, power loss) loses at
most the chunks being computed.

Several processes: when ``torch.distributed`` is initialised, or the
environment says ``WORLD_SIZE > 1`` (``torchrun``), rank ``r`` of ``W`` takes
chunks ``r, r + W, r + 2W, ...`` (gloo on CPU, NCCL when CUDA is available, if
the process group is initialised here; it is then kept for later calls and
destroyed at exit). Each rank records its chunks in its own
part of the manifest (``chunks/manifest_rank_XXX.json``); after a barrier rank
0 merges and writes the final files and ``manifest.json``. The other ranks
return without waiting for the merge.
"""

from __future__ import annotations

import atexit
import os
import signal
import sys
import threading
import time
import warnings
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import torch

from captum_genomics.genome_scale import manifest as mf
from captum_genomics.genome_scale import store

__all__ = ["attribute_regions", "RunInterrupted"]

_PART = "manifest_rank_{:03d}.json"


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped a run after a chunk; the message says how to resume."""


class _StopAfterChunk:
    """SIGINT sets a flag (checked after each chunk); a second SIGINT stops at once."""

    def __init__(self) -> None:
        self.requested = False
        self._old = None

    def __enter__(self) -> _StopAfterChunk:
        if threading.current_thread() is threading.main_thread():
            self._old = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print("captum-genomics: Ctrl-C: stopping after the current chunk (Ctrl-C again to "
              "stop now).", file=sys.stderr, flush=True)

    def __exit__(self, *exc) -> bool:
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)
        return False


def _distributed() -> tuple[int, int, bool]:
    """(rank, world size, whether the process group was initialised here)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size(), False
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1, False
    if not dist.is_available():
        raise RuntimeError(f"WORLD_SIZE={world} but this torch build has no torch.distributed.")
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        backend = "nccl"
    else:
        backend = "gloo"
    # ranks can wait long at the barrier before the merge when their shares differ
    dist.init_process_group(backend, timeout=timedelta(hours=24))
    # kept for later calls in this process (destroying and initialising again on
    # torchrun's store can pick up the old group's addresses); destroyed at exit
    atexit.register(_destroy_group)
    _share_cpu_threads()
    return dist.get_rank(), dist.get_world_size(), True


def _share_cpu_threads() -> None:
    """Split the CPU's threads among the ranks on this machine.

    Under ``torchrun`` every rank would otherwise start one shuffle thread per
    core (numba's default): with ``W`` ranks on a machine that is ``W`` times
    oversubscribed, which measured 4x slower than one process on 2 cores.
    torchrun already sets ``OMP_NUM_THREADS`` (torch's threads); a user's own
    ``NUMBA_NUM_THREADS`` is left alone.
    """
    local = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    if local <= 1 or "NUMBA_NUM_THREADS" in os.environ:
        return
    share = max(1, (os.cpu_count() or 1) // local)
    if "numba" not in sys.modules:  # numba sizes its thread pool once, at import
        os.environ["NUMBA_NUM_THREADS"] = str(share)
        return
    import numba

    numba.set_num_threads(max(1, min(numba.config.NUMBA_NUM_THREADS, share)))


def _destroy_group() -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()


def _barrier(world: int) -> None:
    if world > 1:
        import torch.distributed as dist

        dist.barrier()


def _check_int(value: Any, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"`{name}` must be an integer >= {minimum}, got {value!r} "
                        f"({type(value).__name__}).")
    if value < minimum:
        raise ValueError(f"`{name}` must be an integer >= {minimum}, got {value!r}.")
    return int(value)


def _region_table(regions, width: int):
    """The regions as read_bed gives them (a path is read), resized to ``width``."""
    import pandas as pd

    from captum_genomics.seq.genome import read_bed, resize_regions

    if isinstance(regions, (str, os.PathLike)):
        bed = read_bed(regions)
    elif isinstance(regions, pd.DataFrame):
        missing = [c for c in ("chrom", "start", "end") if c not in regions.columns]
        if missing:
            raise ValueError(f"`regions` must have the columns chrom, start, end (as read_bed "
                             f"returns); missing {missing}, got {list(regions.columns)}.")
        bed = regions.reset_index(drop=True).copy()
        if "name" not in bed.columns:
            bed["name"] = [f"{c}:{int(s)}-{int(e)}"
                           for c, s, e in zip(bed["chrom"], bed["start"], bed["end"])]
        if len(bed) == 0:
            raise ValueError("`regions` is empty: there is nothing to attribute.")
    else:
        raise TypeError(f"`regions` must be a BED path or a DataFrame from read_bed, got "
                        f"{type(regions).__name__}.")
    table = resize_regions(bed, width).reset_index(drop=True)
    table["chrom"] = table["chrom"].astype(str)
    table["name"] = table["name"].astype(str)
    return table


def _where(table, i: int) -> str:
    if "line" in table.columns:
        return f"line {int(table['line'].iloc[i])}"
    return f"region {i} ({table['name'].iloc[i]!r})"


def _padded_bases(table, chrom_sizes: dict[str, int]) -> np.ndarray:
    size = np.array([chrom_sizes[c] for c in table["chrom"]], dtype=np.int64)
    start = table["start"].to_numpy(np.int64)
    end = table["end"].to_numpy(np.int64)
    return np.maximum(0, -start) + np.maximum(0, end - size)


def _attribute_chunk(explainer, genome, table, a: int, b: int, *, target, n_references,
                     random_state, batch_size, chrom_sizes) -> tuple[dict, list]:
    from captum_genomics.seq.genome import fetch_one_hot, region_seed_index

    sub = table.iloc[a:b]
    x, _ = fetch_one_hot(genome, sub)
    x = torch.as_tensor(x, dtype=torch.float32)
    seeds = torch.tensor([region_seed_index(random_state, c, int(s), int(e), nm)
                          for c, s, e, nm in zip(sub["chrom"], sub["start"], sub["end"],
                                                 sub["name"])], dtype=torch.long)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        hyp, delta = explainer.attribute(
            x, n_references=n_references, target=target, random_state=random_state,
            example_indices=seeds, hypothetical=True, return_convergence_delta=True,
            batch_size=batch_size)
    hyp = hyp.detach().to("cpu", torch.float32)
    arrays = {
        "one_hot": x.numpy(),
        "hypothetical": hyp.numpy(),
        # the contributions of the observed bases, exactly as hypothetical=False computes them
        "contributions": (hyp * x).numpy(),
        "delta": delta.detach().to("cpu", torch.float32).numpy(),
        "padded_bases": _padded_bases(sub, chrom_sizes),
    }
    return arrays, list(caught)


def _read_part(path: Path, fingerprint: str) -> list[dict]:
    import json

    with open(path, encoding="utf-8") as handle:
        data = json.load(handle)
    if data.get("fingerprint") != fingerprint:
        raise ValueError(f"{os.fspath(path)!r} belongs to another run (its settings differ); "
                         "delete the chunks/ folder or start over with overwrite=True.")
    return list(data.get("chunks", []))


def _fingerprint(manifest: dict) -> str:
    import hashlib
    import json

    keys = ("arguments", "model", "regions", "genome")
    text = json.dumps({k: manifest[k] for k in keys}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def _known_chunks(out: Path, existing: dict | None, fingerprint: str) -> dict[int, dict]:
    """Chunks recorded in manifest.json and in the ranks' parts, by index."""
    known: dict[int, dict] = {}
    for entry in (existing or {}).get("chunks", []):
        known[int(entry["index"])] = entry
    chunk_dir = out / store.CHUNK_DIR
    if chunk_dir.is_dir():
        for path in sorted(chunk_dir.glob("manifest_rank_*.json")):
            for entry in _read_part(path, fingerprint):
                known[int(entry["index"])] = entry
    return known


def _verified(out: Path, entry: dict) -> bool:
    path = out / entry["file"]
    return path.is_file() and mf.file_sha256(path) == entry["sha256"]


def _remove_run(out: Path) -> None:
    """Remove an earlier run's files (manifest, chunks, outputs); nothing else."""
    for name in (*store.OUTPUT_NAMES, mf.MANIFEST_NAME):
        try:
            (out / name).unlink()
        except FileNotFoundError:
            pass
    chunk_dir = out / store.CHUNK_DIR
    if chunk_dir.is_dir():
        for path in chunk_dir.iterdir():
            if path.name.startswith(("chunk_", "manifest_rank_", ".chunk_", ".manifest_rank_")):
                path.unlink()
        try:
            chunk_dir.rmdir()
        except OSError:
            pass


def _remove_stale_temporaries(out: Path) -> None:
    """Temporary files a killed run left: hidden, ``.tmp`` in the name, one of ours inside."""
    ours = (*store.OUTPUT_NAMES, mf.MANIFEST_NAME, "contributions_track.npy", "chunk_",
            "manifest_rank_")
    for folder in (out, out / store.CHUNK_DIR):
        if not folder.is_dir():
            continue
        for path in folder.iterdir():
            name = path.name
            if name.startswith(".") and ".tmp" in name and any(o in name for o in ours) \
                    and path.is_file():
                try:
                    path.unlink()
                except FileNotFoundError:
                    pass


DELTA_THRESHOLD = 1e-3
"""``|delta|`` above which an example-reference pair counts as not additive."""

_STAT_KEYS = ("n_pairs", "n_nonadditive_pairs", "delta_threshold", "max_abs_delta")


def _delta_stats(h5_path: Path) -> dict:
    """Pairs, pairs with ``|delta| > DELTA_THRESHOLD`` and the max ``|delta|``, read in blocks."""
    import h5py

    bad, worst = 0, 0.0
    with h5py.File(h5_path, "r") as h5:
        delta = h5["delta"]
        for a in range(0, delta.shape[0], 4096):
            block = np.abs(delta[a:a + 4096])
            bad += int((block > DELTA_THRESHOLD).sum())
            worst = max(worst, float(block.max()) if block.size else 0.0)
        n_pairs = int(delta.shape[0] * delta.shape[1])
    return {"n_pairs": n_pairs, "n_nonadditive_pairs": bad,
            "delta_threshold": DELTA_THRESHOLD, "max_abs_delta": worst}


def _reemit(counts: Counter, examples: dict) -> None:
    for category, count in counts.items():
        message = examples[category]
        warnings.warn(f"{message} (raised in {count} chunk(s); first shown)", category,
                      stacklevel=3)


def attribute_regions(
    model: torch.nn.Module,
    genome: Any,
    regions: Any,
    out_dir: str | os.PathLike,
    *,
    width: int = 1000,
    target: int | None = 0,
    n_references: int = 20,
    random_state: int = 0,
    batch_size: int = 64,
    chunk_size: int = 256,
    show_progress: bool = False,
    overwrite: bool = False,
    resume: bool = True,
    keep_chunks: bool = False,
) -> dict:
    """Attribute every region with ShuffleDeepLiftShap, in chunks, into ``out_dir``.

    Parameters
    ----------
    model : torch.nn.Module
        In eval mode; maps one-hot ``(B, 4, width)`` float32 to ``(B, T)`` (or ``(B,)``).
    genome : Genome or str or PathLike
        From :func:`captum_genomics.seq.genome.open_genome`, or the FASTA's path.
    regions : pandas.DataFrame or str or PathLike
        A BED path or a table as :func:`~captum_genomics.seq.genome.read_bed`
        returns (``chrom``, ``start``, ``end``, optional ``name``, ``line``).
        Each region is centred and resized to ``width``
        (:func:`~captum_genomics.seq.genome.resize_regions`); bases off a
        chromosome end are N (all-zero columns).
    out_dir : str or PathLike
        Output folder; created when missing. It holds ``manifest.json``,
        ``chunks/`` while the run goes on, and at the end
        ``attributions.h5``, ``ohe.npz``, ``shap.npz``, ``regions.tsv``,
        ``contributions.bw`` (see :mod:`captum_genomics.genome_scale.store`).
    width : int
        Region length ``L`` in bases. Default 1000.
    target : int or None
        Output column to explain (None for a model returning ``(B,)``). Default 0.
    n_references : int
        Dinucleotide shuffles per region. Default 20.
    random_state : int
        Seed of the shuffles; with the region's coordinates and name it
        seeds each region's references. Default 0.
    batch_size : int
        Example-reference pairs per forward/backward. Default 64.
    chunk_size : int
        Regions per chunk file (the unit of resumption and of work per
        process). The results do not depend on it. Default 256.
    show_progress : bool
        A tqdm bar (regions/s, ETA) on rank 0. Default False.
    overwrite : bool
        Remove an earlier run's files in ``out_dir`` (its manifest, chunks
        and outputs; nothing else) and start over. Default False.
    resume : bool
        Continue a run found in ``out_dir`` made with the same settings.
        With False, such a folder is refused. Default True.
    keep_chunks : bool
        Keep ``chunks/`` after the merge. Default False (the merged files
        hold everything; the manifest keeps the chunk list and hashes).

    Returns
    -------
    dict
        ``n_regions``, ``n_chunks``, ``chunks_computed``, ``chunks_reused``
        (this rank), ``regions_computed``, ``seconds``, ``regions_per_second``,
        ``rank``, ``world_size``, ``merged`` (True on the rank that wrote the
        final files), ``files`` (name -> sha256, after the merge),
        ``n_padded`` (regions running off a chromosome end), ``already_complete``,
        ``out_dir``; after the merge (or for a complete run) also ``n_pairs``,
        ``n_nonadditive_pairs`` (``|delta| > delta_threshold``), ``delta_threshold``
        (1e-3) and ``max_abs_delta``.

    Raises
    ------
    ValueError
        Bad arguments; a chromosome missing from the genome (naming the BED
        line); ``out_dir`` holding a run with other settings (naming each
        difference); a damaged manifest.
    FileExistsError
        ``out_dir`` holds output files of another run but no manifest, or a
        run while ``resume=False``; give ``overwrite=True``.
    RunInterrupted
        Ctrl-C: the run stopped after a chunk; calling again resumes it.
    """
    t0 = time.perf_counter()
    width = _check_int(width, "width", 1)
    n_references = _check_int(n_references, "n_references", 1)
    batch_size = _check_int(batch_size, "batch_size", 1)
    chunk_size = _check_int(chunk_size, "chunk_size", 1)
    random_state = _check_int(random_state, "random_state", 0)
    if target is not None:
        target = _check_int(target, "target", -(2**31))
    from captum_genomics.seq.genome import open_genome

    inputs: dict[str, str] = {}
    if isinstance(genome, (str, os.PathLike)):
        inputs["genome"] = os.fspath(genome)
        with open_genome(genome) as opened:
            return attribute_regions(
                model, opened, regions, out_dir, width=width, target=target,
                n_references=n_references, random_state=random_state, batch_size=batch_size,
                chunk_size=chunk_size, show_progress=show_progress, overwrite=overwrite,
                resume=resume, keep_chunks=keep_chunks)
    if hasattr(genome, "path"):
        inputs["genome"] = os.fspath(genome.path)
    if isinstance(regions, (str, os.PathLike)):
        inputs["bed"] = os.fspath(regions)
    table = _region_table(regions, width)
    chrom_sizes = {str(c): int(n) for c, n in genome.chrom_sizes.items()}
    missing = ~table["chrom"].isin(list(chrom_sizes))
    if missing.any():
        i = int(np.flatnonzero(missing.to_numpy())[0])
        shown = ", ".join(sorted(chrom_sizes)[:5]) + (" ..." if len(chrom_sizes) > 5 else "")
        raise ValueError(
            f"regions {_where(table, i)}: chromosome {table['chrom'].iloc[i]!r} is not in the "
            f"genome (which has {shown}); {int(missing.sum())} region(s) affected. Check the "
            "chromosome naming (e.g. 'chr1' vs '1') or the genome build.")
    n = len(table)
    n_chunks = -(-n // chunk_size)
    arguments = {"method": "ShuffleDeepLiftShap", "references": "dinucleotide shuffles",
                 "width": width, "target": target, "n_references": n_references,
                 "random_state": random_state, "batch_size": batch_size,
                 "chunk_size": chunk_size}
    cls = type(model)
    new = mf.new_manifest(arguments, model_sha256=mf.model_hash(model),
                          model_class=f"{cls.__module__}.{cls.__qualname__}",
                          regions_sha256=mf.regions_hash(table), n_regions=n,
                          chrom_sizes_sha256=mf.chrom_sizes_hash(chrom_sizes),
                          n_chunks=n_chunks, inputs=inputs)
    fingerprint = _fingerprint(new)

    rank, world, initialised_here = _distributed()
    if world > 1 and torch.cuda.is_available() and "LOCAL_RANK" in os.environ:
        model = model.to(torch.device("cuda", int(os.environ["LOCAL_RANK"])))
    return _run(model, genome, table, Path(out_dir), new, fingerprint, rank, world,
                chrom_sizes=chrom_sizes, target=target, n_references=n_references,
                random_state=random_state, batch_size=batch_size,
                chunk_size=chunk_size, show_progress=show_progress,
                overwrite=overwrite, resume=resume, keep_chunks=keep_chunks, t0=t0)


def _prepare_folder(out: Path, new: dict, rank: int, overwrite: bool,
                    resume: bool) -> dict | None:
    """Check (every rank) and clean (rank 0) the output folder; the earlier manifest."""
    from captum_genomics._utils.outputs import check_output_folder

    manifest_path = out / mf.MANIFEST_NAME
    shown = repr(os.fspath(out))
    existing = mf.read_manifest(manifest_path) if manifest_path.is_file() else None
    if overwrite:
        if rank == 0 and out.is_dir():
            _remove_run(out)
        return None
    if existing is None:
        names = [*store.OUTPUT_NAMES, mf.MANIFEST_NAME]
        check_output_folder(out, names, False, option="out_dir",
                            overwrite_option="overwrite=True (--overwrite)")
        return None
    if not resume:
        raise FileExistsError(
            f"out_dir {shown} holds a run ({mf.MANIFEST_NAME}); give resume=True to continue "
            "it or overwrite=True (--overwrite) to start over.")
    mf.check_resumable(existing, new, where=f"out_dir {shown}")
    return existing


def _run(model, genome, table, out: Path, new: dict, fingerprint: str, rank: int, world: int,
         *, chrom_sizes, target, n_references, random_state, batch_size, chunk_size,
         show_progress, overwrite, resume, keep_chunks, t0) -> dict:
    from captum_genomics.methods import ShuffleDeepLiftShap

    n = len(table)
    n_chunks = new["n_chunks"]
    summary: dict[str, Any] = {"out_dir": os.fspath(out), "n_regions": n, "n_chunks": n_chunks,
                               "rank": rank, "world_size": world, "merged": False,
                               "already_complete": False, "files": {},
                               "n_padded": int((_padded_bases(table, chrom_sizes) > 0).sum())}
    existing = _prepare_folder(out, new, rank, overwrite, resume)
    if existing is not None and existing.get("complete") and all(
            (out / name).is_file() for name in store.OUTPUT_NAMES):
        summary.update(already_complete=True, chunks_computed=0, chunks_reused=n_chunks,
                       regions_computed=0, files=dict(existing.get("outputs", {})),
                       seconds=time.perf_counter() - t0, regions_per_second=0.0,
                       **{k: existing.get(k) for k in _STAT_KEYS})
        return summary
    chunk_dir = out / store.CHUNK_DIR
    if rank == 0:
        chunk_dir.mkdir(parents=True, exist_ok=True)
        _remove_stale_temporaries(out)
        # the chunks of earlier runs (any number of processes) go into manifest.json and
        # the ranks' parts are removed: this run's ranks write fresh ones
        known = _known_chunks(out, existing, fingerprint)
        start_manifest = dict(new, chunks=[e for e in known.values()
                                           if e["index"] < n_chunks])
        mf.write_manifest(out / mf.MANIFEST_NAME, start_manifest)
        for path in chunk_dir.glob("manifest_rank_*.json"):
            path.unlink()
    _barrier(world)
    known = {int(e["index"]): e
             for e in mf.read_manifest(out / mf.MANIFEST_NAME).get("chunks", [])}
    mine = [i for i in range(n_chunks) if i % world == rank]
    done = {i: known[i] for i in mine if i in known and _verified(out, known[i])}
    pending = [i for i in mine if i not in done]
    record = dict(new, chunks=list(done.values()))
    part_path = chunk_dir / _PART.format(rank)

    def save_record() -> None:
        if world == 1:
            mf.write_manifest(out / mf.MANIFEST_NAME, record)
        else:
            import json

            from captum_genomics._utils.files import write_bytes_atomic

            data = {"fingerprint": fingerprint, "rank": rank,
                    "chunks": sorted(record["chunks"], key=lambda c: c["index"])}
            write_bytes_atomic(part_path, (json.dumps(data, indent=1) + "\n").encode())

    save_record()
    explainer = ShuffleDeepLiftShap(model)
    bounds = [(i * chunk_size, min(n, (i + 1) * chunk_size)) for i in range(n_chunks)]
    total_mine = sum(b - a for i, (a, b) in enumerate(bounds) if i in set(mine))
    done_regions = sum(bounds[i][1] - bounds[i][0] for i in done)
    bar = None
    if show_progress and rank == 0:
        from tqdm.auto import tqdm

        bar = tqdm(total=total_mine, initial=done_regions, unit=" regions",
                   desc="attributing" if world == 1 else f"attributing (rank 0 of {world})",
                   dynamic_ncols=True)
    counts: Counter = Counter()
    examples: dict = {}
    computed = 0
    t_compute = time.perf_counter()
    with _StopAfterChunk() as stop:
        try:
            for index in pending:
                a, b = bounds[index]
                arrays, caught = _attribute_chunk(
                    explainer, genome, table, a, b, target=target,
                    n_references=n_references, random_state=random_state,
                    batch_size=batch_size, chrom_sizes=chrom_sizes)
                for w in caught:
                    counts[w.category] += 1
                    examples.setdefault(w.category, str(w.message))
                name = store.chunk_file(index)
                sha = store.write_chunk(out / name, arrays)
                record["chunks"].append({"index": index, "first": a, "last": b - 1,
                                         "file": name, "sha256": sha})
                save_record()
                computed += b - a
                if bar is not None:
                    bar.update(b - a)
                if stop.requested and index != pending[-1]:
                    left = sum(bounds[i][1] - bounds[i][0] for i in pending
                               if i > index)
                    raise RunInterrupted(
                        f"interrupted: {len(record['chunks'])} of {len(mine)} chunks done "
                        f"({left} regions left{'' if world == 1 else f' on rank {rank}'}); "
                        f"they are kept in {os.fspath(out)}/. Run the same command again "
                        "(same arguments and out_dir) to resume from the first missing chunk.")
        finally:
            if bar is not None:
                bar.close()
    _reemit(counts, examples)
    seconds_compute = time.perf_counter() - t_compute
    summary.update(chunks_computed=len(pending), chunks_reused=len(done),
                   regions_computed=computed,
                   regions_per_second=computed / seconds_compute if computed else 0.0)
    _barrier(world)
    if rank == 0:
        entries = ({int(e["index"]): e for e in record["chunks"]} if world == 1
                   else _known_chunks(out, None, fingerprint))
        absent = [i for i in range(n_chunks) if i not in entries]
        if absent:
            raise RuntimeError(f"chunks {absent[:10]} of {n_chunks} are missing after every "
                               "rank finished; rerun the same command to compute them.")
        chunks = [entries[i] for i in range(n_chunks)]
        final = dict(new, chunks=chunks)
        mf.write_manifest(out / mf.MANIFEST_NAME, final)
        files = store.merge_chunks(out, table, [(c["file"], c["sha256"]) for c in chunks],
                                   chrom_sizes, new["arguments"]["width"], n_references,
                                   show_progress=show_progress)
        stats = _delta_stats(out / "attributions.h5")
        final.update(complete=True, outputs=files, chunks_kept=bool(keep_chunks), **stats)
        mf.write_manifest(out / mf.MANIFEST_NAME, final)
        for path in chunk_dir.glob("manifest_rank_*.json"):
            path.unlink()
        if not keep_chunks:
            for c in chunks:
                (out / c["file"]).unlink(missing_ok=True)
            try:
                chunk_dir.rmdir()
            except OSError:
                pass
        summary.update(merged=True, files=files, **stats)
    summary["seconds"] = time.perf_counter() - t0
    return summary
