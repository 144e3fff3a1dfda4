"""Loaders for the small real data sets shipped in ``captum_genomics/data``.

Provenance and licences are in ``captum_genomics/data/NOTICE.md``.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import NamedTuple

import torch
from torch import Tensor

from captum_genomics.seq.io import one_hot_encode, read_fasta
from captum_genomics.seq.motifs import Motif, load_jaspar

__all__ = [
    "CTCF_PEAKS_CITATION",
    "CTCF_MOTIF_CITATION",
    "CTCFPeaks",
    "data_path",
    "load_ctcf_peaks",
    "load_ctcf_motif",
    "demo_genome_path",
    "demo_regions",
    "DEMO_GENOME_CITATION",
]

CTCF_PEAKS_FILE = "Gm12878.CTCF.top500.w200.fa.gz"
CTCF_MOTIF_FILE = "MA0139.2.jaspar"

CTCF_PEAKS_CITATION = (
    "Top 500 GM12878 CTCF ChIP-seq peaks, 200 bp around the summit, from the "
    "example data of GimmeMotifs 0.18.4 (data/examples/Gm12878.CTCF.top500.w200.fa; "
    "MIT licence, Copyright (c) Simon van Heeringen). van Heeringen SJ, Veenstra GJC. "
    "GimmeMotifs: a de novo motif prediction pipeline for ChIP-sequencing "
    "experiments. Bioinformatics 27(2):270-271 (2011)."
)
CTCF_MOTIF_CITATION = (
    "JASPAR MA0139.2 (CTCF), JASPAR 2024 release, CC BY 4.0. Rauluseviciute I et "
    "al. JASPAR 2024: 20th anniversary of the open-access database of "
    "transcription factor binding profiles. Nucleic Acids Res 52(D1):D174-D182 "
    "(2024). Matrix data from Barski A et al. High-resolution profiling of "
    "histone methylations in the human genome. Cell 129(4):823-837 (2007), "
    "PubMed 17512414."
)


class CTCFPeaks(NamedTuple):
    """The vendored GM12878 CTCF peaks.

    Attributes
    ----------
    names : list of str
        ``chrom:start-end`` of each peak, as in the source file (500 entries).
    sequences : list of str
        The 200-bp sequences; lowercase marks soft-masked repeats.
    one_hot : Tensor, shape=(500, 4, 200)
        ``ACGT`` one-hot encoding (lowercase encoded as its base).
    """

    names: list[str]
    sequences: list[str]
    one_hot: Tensor


def data_path(name: str) -> Path:
    """Path of a file shipped in ``captum_genomics/data``.

    Parameters
    ----------
    name
        The file name, e.g. ``"MA0139.2.jaspar"``.

    Returns
    -------
    pathlib.Path

    Raises
    ------
    FileNotFoundError
        If no such file is shipped (the message lists the shipped files).
    """
    root = resources.files("captum_genomics") / "data"
    path = Path(str(root / name))
    if not path.is_file():
        shipped = sorted(p.name for p in Path(str(root)).iterdir() if p.is_file())
        raise FileNotFoundError(
            f"No data file {name!r} in captum_genomics/data; shipped files: {shipped}."
        )
    return path


def load_ctcf_peaks(dtype: torch.dtype = torch.float32) -> CTCFPeaks:
    """Load the 500 GM12878 CTCF ChIP-seq peaks (200 bp each).

    The sequences are the top 500 CTCF peaks in the GM12878 lymphoblastoid
    cell line, 200 bp centred on the summit, as shipped with GimmeMotifs
    0.18.4; see :data:`CTCF_PEAKS_CITATION` and ``data/NOTICE.md``.

    Parameters
    ----------
    dtype
        dtype of the one-hot tensor. Default ``torch.float32``.

    Returns
    -------
    CTCFPeaks
        ``(names, sequences, one_hot)`` with ``one_hot`` shaped ``(500, 4, 200)``.
    """
    names, sequences = read_fasta(data_path(CTCF_PEAKS_FILE))
    return CTCFPeaks(names, sequences, one_hot_encode(sequences, dtype=dtype))


def load_ctcf_motif() -> Motif:
    """Load the JASPAR CTCF matrix MA0139.2 (width 15).

    Returns
    -------
    Motif
        Counts shaped ``(4, 15)`` in ``ACGT`` order, with
        :data:`CTCF_MOTIF_CITATION` as its citation.
    """
    (motif,) = load_jaspar(data_path(CTCF_MOTIF_FILE), citation=CTCF_MOTIF_CITATION)
    return motif


DEMO_GENOME_FILE = "chr17.hg19.part.fa"
DEMO_GENOME_SHA256 = "3627f99f5cd6fa6a9e1a4e0494e64a9443871e0167fc6767b23cde73ca4030c1"
DEMO_GENOME_CITATION = (
    "A 40,000-bp piece of human chromosome 17 (hg19), sequence 'chr17', from the "
    "example data of pyfaidx (Debian package python-pyfaidx-examples 0.7.1-2, "
    "chr17.hg19.part.fa; BSD-3-Clause, Copyright 2013-2015 The Johns Hopkins "
    "University, Matthew Shirley). Shirley MD, Ma Z, Pedersen BS, Wheelan SJ. "
    "Efficient \"pythonic\" access to FASTA files using pyfaidx. PeerJ PrePrints "
    "3:e970v1 (2015)."
)


def demo_genome_path() -> Path:
    """Path of the demo genome: 40 kb of human chr17 (hg19) as an indexable FASTA.

    The vendored FASTA (``data/chr17.hg19.part.fa``, one sequence named
    ``chr17``, 40,000 bp, with soft-masked lower-case repeats; see
    :data:`DEMO_GENOME_CITATION` and ``data/NOTICE.md``) is copied once into a
    cache folder under ``tempfile.gettempdir()`` (checked by its sha256), so
    that :func:`captum_genomics.seq.genome.open_genome` can write the ``.fai``
    index beside it even when the package is installed read-only. Coordinates
    in the piece start at 0; they are not hg19 chr17 coordinates.

    Returns
    -------
    pathlib.Path
        The cached FASTA, ready for ``open_genome``.

    Raises
    ------
    ValueError
        If the shipped file does not match its recorded sha256 (a damaged
        installation).
    """
    import hashlib
    import os
    import tempfile

    from captum_genomics._utils.files import write_bytes_atomic

    data = data_path(DEMO_GENOME_FILE).read_bytes()
    if hashlib.sha256(data).hexdigest() != DEMO_GENOME_SHA256:
        raise ValueError(
            f"the shipped demo genome {DEMO_GENOME_FILE!r} does not match its sha256; "
            "reinstall captum-genomics."
        )
    user = str(os.getuid()) if hasattr(os, "getuid") else "user"
    folder = (Path(tempfile.gettempdir()) / f"captum_genomics-{user}" / "demo_genome"
              / DEMO_GENOME_SHA256[:16])
    target = folder / DEMO_GENOME_FILE
    try:
        if not (target.is_file() and target.read_bytes() == data):
            folder.mkdir(parents=True, exist_ok=True)
            write_bytes_atomic(target, data)
    except OSError:  # the shared cache folder is not ours: use a fresh private one
        target = Path(tempfile.mkdtemp(prefix="captum_genomics-demo-")) / DEMO_GENOME_FILE
        write_bytes_atomic(target, data)
    return target


def demo_regions(width: int = 1000, step: int = 500):
    """Tile the demo genome into overlapping windows, as a region table.

    Windows ``[s, s + width)`` for ``s = 0, step, 2 * step, ...`` while
    ``s + width <= 40000`` (the length of ``chr17`` in the demo genome): 79
    windows with the defaults.

    Parameters
    ----------
    width : int
        Window width in bases. Default 1000.
    step : int
        Distance between window starts; windows overlap when ``step < width``.
        Default 500.

    Returns
    -------
    pandas.DataFrame
        Columns as from :func:`captum_genomics.seq.genome.read_bed`: ``chrom``
        (``"chr17"``), ``start``, ``end`` (int64), ``name``
        (``"chr17:start-end"``) and ``line`` (the 1-based window number, as if
        the windows were lines of a BED file).

    Raises
    ------
    TypeError
        If ``width`` or ``step`` is not an integer.
    ValueError
        If ``width`` or ``step`` is below 1, or ``width`` exceeds 40000.
    """
    import numpy as np
    import pandas as pd

    for label, value in (("width", width), ("step", step)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise TypeError(f"`{label}` must be a positive integer, got {value!r}.")
        if value < 1:
            raise ValueError(f"`{label}` must be a positive integer, got {value}.")
    names, sequences = read_fasta(data_path(DEMO_GENOME_FILE))
    chrom, length = names[0].split()[0], len(sequences[0])
    if width > length:
        raise ValueError(
            f"`width` {width} exceeds the demo genome's length ({length} bp on {chrom})."
        )
    starts = np.arange(0, length - int(width) + 1, int(step), dtype=np.int64)
    ends = starts + int(width)
    return pd.DataFrame(
        {
            "chrom": pd.Series([chrom] * len(starts), dtype=object),
            "start": starts,
            "end": ends,
            "name": pd.Series([f"{chrom}:{s}-{e}" for s, e in zip(starts, ends)],
                              dtype=object),
            "line": np.arange(1, len(starts) + 1, dtype=np.int64),
        }
    )
