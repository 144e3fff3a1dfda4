"""Ground truth for your own sequences: motif matches found by scanning, or motifs planted.

Two ways to get a :class:`~captum_genomics.seq.planted.GroundTruth` for a
comparison study on sequences that were not generated with one:

- :func:`motif_ground_truth` scans them with PWMs and takes every site whose
  relative log-odds score reaches a threshold (the "80% of the score range"
  rule of the TFBS/JASPAR tools), or only the best site per sequence;
- :func:`plant_motifs` writes one sampled instance of each motif into every
  sequence at random non-overlapping positions and strands (as the planted
  task of Koo & Ploenzke 2021 does on random background).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from captum_genomics._utils.checks import check_one_hot, check_random_state, check_tensor
from captum_genomics.seq.io import ALPHABET
from captum_genomics.seq.motifs import Motif, scan
from captum_genomics.seq.planted import (
    SITE_COLUMNS,
    GroundTruth,
    _probabilities,
    non_overlapping_starts,
    sample_instance,
)

__all__ = ["motif_ground_truth", "plant_motifs"]


def _check_inputs(one_hot, motifs, name="one_hot") -> tuple[Tensor, list[Motif]]:
    one_hot = check_tensor(one_hot, name)
    if one_hot.ndim != 3 or one_hot.shape[1] != 4:
        raise ValueError(f"`{name}` must have shape (N, 4, L), got {tuple(one_hot.shape)}.")
    check_one_hot(one_hot, name, dim=1)
    if isinstance(motifs, Motif):
        motifs = [motifs]
    motifs = list(motifs)
    if not motifs or not all(isinstance(m, Motif) for m in motifs):
        raise TypeError("`motifs` must be a Motif or a non-empty list of Motif.")
    for m in motifs:
        if m.width > one_hot.shape[2]:
            raise ValueError(f"`motifs`: {m.id} ({m.width} bp) is longer than the sequences "
                             f"({one_hot.shape[2]} bp).")
    return one_hot, motifs


def _centred(motif: Motif) -> np.ndarray:
    return _probabilities(motif) - 0.25


def motif_ground_truth(
    one_hot: Tensor,
    motifs: Motif | Sequence[Motif],
    min_relative_score: float = 0.8,
    best_only: bool = False,
) -> tuple[GroundTruth, pd.DataFrame]:
    """Mark the motif matches of each sequence as its ground truth.

    A site's relative score is ``(s - s_min) / (s_max - s_min)`` where ``s``
    is its log2-odds score (:func:`~captum_genomics.seq.motifs.scan`,
    pseudocount 1, uniform background) and ``s_min``/``s_max`` the lowest and
    highest scores the matrix can give.

    Parameters
    ----------
    one_hot : Tensor ``(N, 4, L)``
        One-hot sequences, ACGT rows.
    motifs : Motif or list of Motif
    min_relative_score : float
        Keep sites scoring at least this, in ``(0, 1]``. Default 0.8.
    best_only : bool
        Keep only the best site per sequence over all motifs and both strands
        (ignoring the threshold). Default False.

    Returns
    -------
    ground_truth : GroundTruth
        ``mask`` ``(N, L)`` bool over the kept sites; ``pwm`` ``(N, 4, L)``
        float32 the centred column probabilities oriented to the site's
        strand (where sites overlap, the higher-scoring one's columns).
    sites : pandas.DataFrame
        One row per kept site: ``example``, ``motif``, ``id``, ``start``,
        ``end`` (0-based, half-open), ``strand`` (``"+"``/``"-"``), ``core``
        (True), ``sequence``, ``relative_score``.

    Raises
    ------
    ValueError, TypeError
        Inputs not one-hot ``(N, 4, L)``, no motif, a motif longer than the
        sequences, or a threshold outside ``(0, 1]``.
    """
    one_hot, motifs = _check_inputs(one_hot, motifs)
    if not 0 < float(min_relative_score) <= 1:
        raise ValueError(f"`min_relative_score` must be in (0, 1], got {min_relative_score!r}.")
    n, _, length = one_hot.shape
    found = []  # (relative, example, motif index, start, strand)
    for j, motif in enumerate(motifs):
        lo_odds = motif.log_odds()
        s_min, s_max = lo_odds.min(0).sum(), lo_odds.max(0).sum()
        rel = (scan(one_hot, motif) - s_min) / max(s_max - s_min, 1e-12)  # (N, 2, P)
        if best_only:
            flat = rel.reshape(n, -1)
            best = flat.argmax(1)
            for i in range(n):
                b = int(best[i])
                found.append((float(flat[i, b]), i, j, b % rel.shape[2], b // rel.shape[2]))
        else:
            for i, strand, start in (rel >= min_relative_score).nonzero().tolist():
                found.append((float(rel[i, strand, start]), i, j, start, strand))
    if best_only:
        best_of = {}
        for f in found:
            if f[1] not in best_of or f[0] > best_of[f[1]][0]:
                best_of[f[1]] = f
        found = list(best_of.values())
    found.sort()  # ascending score: the best site's columns are written last
    mask = torch.zeros(n, length, dtype=torch.bool)
    pwm = torch.zeros(n, 4, length, dtype=torch.float32)
    tokens = one_hot.argmax(1)
    rows = []
    for rel, i, j, start, strand in found:
        motif = motifs[j]
        cols = _centred(motif)
        if strand == 1:
            cols = cols[::-1, ::-1]
        end = start + motif.width
        mask[i, start:end] = True
        pwm[i, :, start:end] = torch.from_numpy(np.ascontiguousarray(cols)).float()
        seq = "".join(ALPHABET[int(b)] if float(one_hot[i, :, p].sum()) else "N"
                      for p, b in zip(range(start, end), tokens[i, start:end]))
        rows.append((i, motif.name, motif.id, start, end, "-" if strand else "+", True, seq,
                     rel))
    sites = pd.DataFrame(rows, columns=[*SITE_COLUMNS, "relative_score"])
    sites = sites.sort_values(["example", "start"], kind="stable").reset_index(drop=True)
    return GroundTruth(mask=mask, pwm=pwm), sites


def plant_motifs(
    one_hot: Tensor,
    motifs: Motif | Sequence[Motif],
    random_state: int = 0,
) -> tuple[Tensor, GroundTruth, pd.DataFrame]:
    """Plant one sampled instance of every motif into each sequence.

    Each instance is sampled column by column from the matrix's
    probabilities, put on a random strand, at uniformly random positions with
    no two instances of a sequence overlapping (stars and bars), as in the
    planted task of Koo & Ploenzke (2021).

    Parameters
    ----------
    one_hot : Tensor ``(N, 4, L)``
        The background sequences (not modified).
    motifs : Motif or list of Motif
        Their total width must fit in ``L``.
    random_state : int
        Seed of the ``numpy.random.Generator``. Default 0.

    Returns
    -------
    planted : Tensor ``(N, 4, L)``
        A copy with the instances written in (float, the input's dtype).
    ground_truth : GroundTruth
        ``mask`` over the planted bases; ``pwm`` the centred probabilities.
    sites : pandas.DataFrame
        Columns as in :func:`motif_ground_truth` without ``relative_score``.

    Raises
    ------
    ValueError, TypeError
        Inputs not one-hot ``(N, 4, L)``, no motif, or motifs wider in total
        than the sequences.
    """
    one_hot, motifs = _check_inputs(one_hot, motifs)
    seed = check_random_state(random_state, allow_none=False)
    n, _, length = one_hot.shape
    widths = np.array([m.width for m in motifs])
    if widths.sum() > length:
        raise ValueError(f"`motifs` are {int(widths.sum())} bp together, longer than the "
                         f"sequences ({length} bp): plant fewer motifs.")
    probs = [_probabilities(m) for m in motifs]
    rng = np.random.default_rng(seed)
    planted = one_hot.detach().clone()
    mask = torch.zeros(n, length, dtype=torch.bool)
    pwm = torch.zeros(n, 4, length, dtype=torch.float32)
    rows = []
    k = len(motifs)
    for i in range(n):
        order = rng.permutation(k)
        starts = non_overlapping_starts(rng, widths[order], length)
        for j, start in zip(order, starts):
            bases, p, reverse = sample_instance(rng, probs[j])
            start, end = int(start), int(start) + p.shape[1]
            planted[i, :, start:end] = 0
            planted[i, torch.from_numpy(bases.copy()), torch.arange(start, end)] = 1
            mask[i, start:end] = True
            pwm[i, :, start:end] = torch.from_numpy(np.ascontiguousarray(p - 0.25)).float()
            rows.append((i, motifs[j].name, motifs[j].id, start, end, "-" if reverse else "+",
                         True, "".join(ALPHABET[b] for b in bases)))
    sites = pd.DataFrame(rows, columns=SITE_COLUMNS)
    sites = sites.sort_values(["example", "start"], kind="stable").reset_index(drop=True)
    return planted, GroundTruth(mask=mask, pwm=pwm), sites
