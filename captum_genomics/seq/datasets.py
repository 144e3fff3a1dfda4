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
