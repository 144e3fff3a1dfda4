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

__all__ = ["run_genome_job", "run_demo_genome_job"]


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


DEMO_FILES = ("top_windows.tsv",)
"""What :func:`run_demo_genome_job` writes besides the genome-scale run's files."""


def run_demo_genome_job(
    out_dir: str | os.PathLike = "captum_genomics_scan_out",
    *,
    width: int = 200,
    step: int = 100,
    n_references: int = 20,
    random_state: int = 0,
    batch_size: int = 64,
    chunk_size: int = 64,
    top_k: int = 10,
    show_progress: bool = False,
    overwrite: bool = False,
    verbose: bool = True,
) -> dict:
    """Scan the shipped CTCF CNN along the demo genome and check its peaks against JASPAR.

    The demo genome is 40 kb of human chr17 (hg19) shipped with pyfaidx's
    examples (:func:`captum_genomics.seq.datasets.demo_genome_path`), tiled
    into overlapping windows (:func:`~captum_genomics.seq.datasets.demo_regions`);
    every window is attributed by :func:`run_genome_job`'s machinery (bigWig,
    HDF5, modisco files, manifest; resumable), scored by the model, and
    matched against JASPAR MA0139.2 (CTCF): ``top_windows.tsv`` lists the
    ``top_k`` windows by model logit with their best CTCF match (relative PWM
    score, position, strand), where the attribution peaks and whether that
    peak lies within 10 bp of the match (``peak_near_match``).

    Parameters
    ----------
    out_dir : str or PathLike
        Output folder. Default ``"captum_genomics_scan_out"``.
    width, step : int
        Window width (the CNN's 200 bp) and step. Defaults 200 and 100 (399 windows).
    n_references, random_state, batch_size, chunk_size, show_progress, overwrite
        As in :func:`~captum_genomics.genome_scale.attribute_regions`.
    top_k : int
        Windows listed. Default 10.
    verbose : bool
        Print the report. Default True.

    Returns
    -------
    dict
        The run's summary plus ``"top_windows"`` (records), ``"match_rate_top"``
        and ``"match_rate_all"`` (share of windows whose best CTCF match has a
        relative score >= 0.8), ``"spearman"`` (model logit vs best-match score
        over all windows) and ``"report"``.
    """
    import numpy as np
    import pandas as pd
    import torch
    from scipy.stats import spearmanr

    from captum_genomics._utils.files import write_bytes_atomic
    from captum_genomics.genome_scale import attribute_regions
    from captum_genomics.seq.datasets import demo_genome_path, demo_regions, load_ctcf_motif
    from captum_genomics.seq.genome import open_genome
    from captum_genomics.seq.motif_sites import motif_ground_truth
    from captum_genomics.zoo.ctcf import load_ctcf_model

    out = Path(out_dir)
    top_path = out / "top_windows.tsv"
    if top_path.exists() and not overwrite and not (out / "manifest.json").exists():
        raise FileExistsError(f"`out_dir` {os.fspath(out)!r} holds a top_windows.tsv of "
                              "another run; give overwrite=True (--overwrite) to replace it.")
    model = load_ctcf_model()
    regions = demo_regions(width, step)
    lines = []
    with open_genome(demo_genome_path()) as genome:
        summary = attribute_regions(model, genome, regions, out, width=width, target=0,
                                    n_references=n_references, random_state=random_state,
                                    batch_size=batch_size, chunk_size=chunk_size,
                                    show_progress=show_progress, overwrite=overwrite)
    if not (summary["merged"] or summary["already_complete"]):
        return summary  # another rank merges
    import h5py

    with h5py.File(out / "attributions.h5", "r") as handle:  # the run's own sequences
        one_hot = torch.from_numpy(handle["one_hot"][:])
        contributions = handle["contributions"][:].sum(1)  # (n, width) position scores
    with torch.no_grad():
        logits = model(one_hot)[:, 0].numpy().astype(np.float64)
    _, sites = motif_ground_truth(one_hot, load_ctcf_motif(), best_only=True)
    sites = sites.set_index("example")
    table = pd.read_csv(out / "regions.tsv", sep="\t")
    peak = contributions.argmax(1)
    frame = pd.DataFrame({
        "name": regions["name"].to_numpy(), "start": regions["start"].to_numpy(),
        "logit": logits,
        "ctcf_relative_score": sites["relative_score"].reindex(range(len(regions))).to_numpy(),
        "ctcf_match_start": (regions["start"].to_numpy()
                             + sites["start"].reindex(range(len(regions))).to_numpy()),
        "ctcf_strand": sites["strand"].reindex(range(len(regions))).to_numpy(),
        "attribution_peak": regions["start"].to_numpy() + peak,
        "max_abs_delta": table["delta_max_abs"].to_numpy(),
    })
    frame["peak_near_match"] = ((frame["attribution_peak"] >= frame["ctcf_match_start"] - 10)
                                & (frame["attribution_peak"] < frame["ctcf_match_start"] + 25))
    top = frame.sort_values("logit", ascending=False, kind="stable").head(top_k)
    write_bytes_atomic(top_path, top.to_csv(sep="\t", index=False).encode("utf-8"))
    strong = frame["ctcf_relative_score"] >= 0.8
    rho = float(spearmanr(frame["logit"], frame["ctcf_relative_score"])[0])
    summary.update(top_windows=top.to_dict("records"), match_rate_top=float(strong[top.index]
                   .mean()), match_rate_all=float(strong.mean()), spearman=rho)
    lines.append(f"scanned {len(regions)} windows of {width} bp (step {step}) along the demo "
                 f"genome (40 kb of chr17) with the CTCF CNN; files in {os.fspath(out)}/")
    lines.append(f"top {top_k} windows by logit: {summary['match_rate_top']:.0%} hold a JASPAR "
                 f"CTCF match (relative score >= 0.8), against {summary['match_rate_all']:.0%} "
                 f"of all windows; Spearman(logit, best match score) = {rho:.2f}; attribution "
                 f"peak within 10 bp of the match in {int(top['peak_near_match'].sum())} of "
                 f"{top_k}")
    lines.append(top[["name", "logit", "ctcf_relative_score", "ctcf_match_start",
                      "attribution_peak"]].to_string(index=False,
                                                     float_format=lambda v: f"{v:.3g}"))
    summary["report"] = "\n".join(lines)
    if verbose:
        print(summary["report"])
    return summary
