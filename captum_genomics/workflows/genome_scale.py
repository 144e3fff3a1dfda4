"""The genome-scale job: ``captum-genomics attribute --bed REGIONS.bed --genome GENOME.fa``.

Reads the BED and the genome (:mod:`captum_genomics.seq.genome`), runs
:func:`captum_genomics.genome_scale.attribute_regions` (chunked, resumable,
sharded under ``torchrun``) and prints one line per stage on rank 0. Callable
from Python as :func:`run_genome_job`.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

__all__ = ["run_genome_job"]


def _progress_so_far(out: Path) -> int | None:
    """Chunks an earlier run in ``out`` recorded (None when there is no run)."""
    from captum_genomics.genome_scale.manifest import MANIFEST_NAME

    path = out / MANIFEST_NAME
    if not path.is_file():
        return None
    try:
        with open(path, encoding="utf-8") as handle:
            done = {c["index"] for c in json.load(handle).get("chunks", [])}
        for part in (out / "chunks").glob("manifest_rank_*.json"):
            with open(part, encoding="utf-8") as handle:
                done |= {c["index"] for c in json.load(handle).get("chunks", [])}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    return len(done)


def _is_rank0() -> bool:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank() == 0
    return int(os.environ.get("RANK", "0")) == 0


def run_genome_job(
    out_dir: str | os.PathLike,
    model: Any,
    bed: str | os.PathLike,
    genome: str | os.PathLike,
    width: int = 1000,
    *,
    target: int | None = 0,
    n_references: int = 20,
    random_state: int = 0,
    batch_size: int = 64,
    chunk_size: int = 256,
    n_examples: int | None = None,
    show_progress: bool = False,
    overwrite: bool = False,
    resume: bool = True,
    keep_chunks: bool = False,
    verbose: bool = True,
) -> dict:
    """Attribute the regions of a BED file on a genome into ``out_dir``.

    Parameters
    ----------
    out_dir : str or PathLike
        Output folder (see :func:`~captum_genomics.genome_scale.attribute_regions`).
    model : torch.nn.Module
        In eval mode, one-hot ``(B, 4, width)`` in.
    bed : str or PathLike
        BED file (3+ columns, may be gzipped); regions are attributed in its order.
    genome : str or PathLike
        Indexed (or indexable) FASTA; plain or BGZF.
    width : int
        Regions are centred and resized to this length. Default 1000.
    target, n_references, random_state, batch_size, chunk_size, show_progress, overwrite,
    resume, keep_chunks
        As in :func:`~captum_genomics.genome_scale.attribute_regions`.
    n_examples : int, optional
        Use only the first ``n_examples`` regions of the BED. Default all.
    verbose : bool
        Print the report (one line per stage) on rank 0. Default True.

    Returns
    -------
    dict
        The run's summary, with ``"report"`` (the lines joined).

    Raises
    ------
    ValueError, FileExistsError
        Bad BED, genome or arguments, or an ``out_dir`` holding another run.
    RunInterrupted
        Ctrl-C; the message (also printed on stderr) says how to resume.
    """
    from captum_genomics.genome_scale import RunInterrupted, attribute_regions
    from captum_genomics.seq.genome import open_genome, read_bed

    show = verbose and _is_rank0()
    lines: list[str] = []

    def say(text: str) -> None:
        lines.append(text)
        if show:
            print(text, flush=True)

    regions = read_bed(bed)
    n_bed = len(regions)
    if n_examples is not None:
        regions = regions.head(int(n_examples))
    say(f"regions: {len(regions)} of {n_bed} from {os.fspath(bed)}, centred and resized to "
        f"{width} bp")
    with open_genome(genome) as opened:
        sizes = opened.chrom_sizes
        say(f"genome: {os.fspath(genome)}: {len(sizes)} sequence(s), "
            f"{sum(sizes.values()):,} bp")
        out = Path(out_dir)
        before = None if overwrite else _progress_so_far(out)
        n_chunks = -(-len(regions) // int(chunk_size)) if isinstance(chunk_size, int) else 0
        if before:
            say(f"resuming the run in {os.fspath(out)}/ if its settings match: {before} of "
                f"{n_chunks} chunk(s) already done")
        try:
            summary = attribute_regions(
                model, opened, regions, out, width=width, target=target,
                n_references=n_references, random_state=random_state, batch_size=batch_size,
                chunk_size=chunk_size, show_progress=show_progress, overwrite=overwrite,
                resume=resume, keep_chunks=keep_chunks)
        except RunInterrupted as err:
            print(f"captum-genomics attribute: {err}", file=sys.stderr, flush=True)
            raise
    if summary["n_padded"]:
        say(f"padding: {summary['n_padded']} region(s) run off a chromosome end; those bases "
            "are N (see padded_bases in regions.tsv)")
    if summary["already_complete"]:
        say(f"nothing to do: {os.fspath(out)}/ already holds this complete run")
    else:
        world = summary["world_size"]
        say(f"attribution: {summary['regions_computed']} region(s) in "
            f"{summary['chunks_computed']} chunk(s) of {chunk_size} on rank "
            f"{summary['rank']} of {world} ({summary['regions_per_second']:.1f} regions/s); "
            f"{summary['chunks_reused']} chunk(s) reused")
    if summary["merged"] or summary["already_complete"]:
        if summary.get("max_abs_delta") is not None:
            say(f"convergence: {summary['n_nonadditive_pairs']} of {summary['n_pairs']} "
                f"region-reference pairs have |delta| > {summary['delta_threshold']:g} "
                f"(max {summary['max_abs_delta']:.3g})")
        say(f"wrote {', '.join(summary['files'])} and manifest.json to {os.fspath(out)}/ "
            f"in {summary['seconds']:.1f} s")
    summary["report"] = "\n".join(lines)
    return summary
