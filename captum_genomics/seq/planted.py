"""Synthetic sequences with planted JASPAR motifs: a task whose ground truth is known.

Follows the synthetic task of Koo & Ploenzke (2021), "Improving
representations of genomic sequence motifs in convolutional networks with
exponential activations", *Nat Mach Intell* 3:258-266: uniform random DNA into
which whole motif instances are planted, each a sequence *sampled* from a
JASPAR matrix's column probabilities. Positives carry 3-5 *core* motifs (SP1,
GABPA, CEBPB, MAX, YY1), negatives 3-5 *distractors* (ARID3A, FOSL1, MAFK,
MEF2A, NFYB, SRF, STAT1), so a model must learn the core motifs to tell them
apart, and an attribution method should highlight exactly the planted core
bases of positives (:class:`GroundTruth`).

The matrices are vendored in ``captum_genomics/data/planted_motifs.jaspar``
(JASPAR 2024, CC BY 4.0; see ``data/NOTICE.md``).
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass, field
from importlib import resources
from typing import Sequence

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from captum_genomics._utils.checks import check_positive_int, check_random_state
from captum_genomics.seq.io import ALPHABET
from captum_genomics.seq.motifs import Motif, load_jaspar

__all__ = [
    "CORE_IDS",
    "DISTRACTOR_IDS",
    "GroundTruth",
    "PlantedMotifData",
    "load_planted_motifs",
    "make_planted_dataset",
]

MOTIFS_FILE = "planted_motifs.jaspar"
CORE_IDS = ("MA0079.5", "MA0062.4", "MA0466.4", "MA0058.4", "MA0095.2")
DISTRACTOR_IDS = (
    "MA0151.1", "MA0477.3", "MA0496.4", "MA0052.5", "MA0502.3", "MA0083.3", "MA0137.4",
)
PLANTED_CITATION = (
    "JASPAR 2024 (CC BY 4.0): Rauluseviciute I, et al. Nucleic Acids Res 52(D1):D174-D182 "
    "(2024). Task after Koo PK, Ploenzke M. Nat Mach Intell 3:258-266 (2021)."
)
SITE_COLUMNS = ["example", "motif", "id", "start", "end", "strand", "core", "sequence"]


def load_planted_motifs() -> tuple[list[Motif], list[Motif]]:
    """The vendored motif pool of the planted-motif task.

    Returns
    -------
    (core, distractors) : tuple of two lists of Motif
        ``core``: SP1 MA0079.5, GABPA MA0062.4, CEBPB MA0466.4, MAX MA0058.4,
        YY1 MA0095.2. ``distractors``: ARID3A MA0151.1, FOSL1 MA0477.3, MAFK
        MA0496.4, MEF2A MA0052.5, NFYB MA0502.3, SRF MA0083.3, STAT1 MA0137.4.
        Counts ``(4, W)`` float64, ACGT rows, as in JASPAR 2024.
    """
    path = resources.files("captum_genomics") / "data" / MOTIFS_FILE
    with resources.as_file(path) as p:
        motifs = {m.id: m for m in load_jaspar(p, citation=PLANTED_CITATION)}
    return [motifs[i] for i in CORE_IDS], [motifs[i] for i in DISTRACTOR_IDS]


def _as_index(index) -> Tensor | slice:
    if isinstance(index, slice):
        return index
    if isinstance(index, numbers.Integral) and not isinstance(index, bool):
        return torch.tensor([int(index)])
    idx = torch.as_tensor(np.asarray(index))
    if idx.dtype != torch.bool and (idx.is_floating_point() or idx.is_complex()):
        raise TypeError(f"`index` must hold integers or booleans, got dtype {idx.dtype}.")
    return idx.reshape(-1)


@dataclass(frozen=True)
class GroundTruth:
    """Where the informative planted motifs lie, per example.

    Parameters
    ----------
    mask
        Tensor, shape=(N, L), dtype bool: True at every base of a planted
        informative motif.
    pwm
        Tensor, shape=(N, 4, L), floating: the planted motif's centred column
        probabilities ``p - 0.25`` (ACGT rows), oriented to the planted strand
        (reverse strand: the matrix flipped along both axes), at planted
        positions; 0 elsewhere.

    Raises
    ------
    TypeError
        If ``mask`` or ``pwm`` is not a tensor, ``mask`` is not bool or ``pwm``
        not floating.
    ValueError
        If the shapes are not ``(N, L)`` and ``(N, 4, L)`` with equal N and L.
    """

    mask: Tensor
    pwm: Tensor = field(repr=False)

    def __post_init__(self):
        for name in ("mask", "pwm"):
            if not isinstance(getattr(self, name), Tensor):
                raise TypeError(
                    f"GroundTruth `{name}` must be a torch.Tensor, "
                    f"got {type(getattr(self, name)).__name__}."
                )
        if self.mask.dtype != torch.bool:
            raise TypeError(
                f"GroundTruth `mask` must have dtype torch.bool, got {self.mask.dtype}."
            )
        if not self.pwm.is_floating_point():
            raise TypeError(f"GroundTruth `pwm` must be floating, got {self.pwm.dtype}.")
        if self.mask.ndim != 2:
            raise ValueError(
                f"GroundTruth `mask` must have shape (N, L), got {tuple(self.mask.shape)}."
            )
        n, length = self.mask.shape
        if tuple(self.pwm.shape) != (n, 4, length):
            raise ValueError(
                f"GroundTruth `pwm` must have shape (N, 4, L) = ({n}, 4, {length}) to match "
                f"`mask`, got {tuple(self.pwm.shape)}."
            )

    def __len__(self) -> int:
        return int(self.mask.shape[0])

    def subset(self, index) -> "GroundTruth":
        """The ground truth of the selected examples.

        Parameters
        ----------
        index
            An int, a slice, a sequence / array / tensor of ints, or a bool
            mask of length N. An int keeps the example axis (N' = 1).

        Returns
        -------
        GroundTruth
            ``mask`` (N', L) and ``pwm`` (N', 4, L), copies of the selected rows.
        """
        idx = _as_index(index)
        return GroundTruth(mask=self.mask[idx].clone(), pwm=self.pwm[idx].clone())


@dataclass(frozen=True)
class PlantedMotifData:
    """A planted-motif data set (see :func:`make_planted_dataset`).

    Attributes
    ----------
    one_hot
        Tensor, shape=(N, 4, L), float32, ACGT rows.
    labels
        Tensor, shape=(N,), float32, 1.0 for positives (core motifs planted).
    ground_truth
        :class:`GroundTruth`: the core motifs of positives; all False / 0 in negatives.
    sites
        pandas.DataFrame, one row per planted motif, columns ``example``
        (int), ``motif`` (name), ``id`` (JASPAR ID), ``start``, ``end``
        (0-based, half-open), ``strand`` (``"+"``/``"-"``), ``core`` (bool),
        ``sequence`` (the planted bases as read on the + strand of the example).
    """

    one_hot: Tensor
    labels: Tensor
    ground_truth: GroundTruth = field(repr=False)
    sites: pd.DataFrame = field(repr=False)

    def __len__(self) -> int:
        return int(self.one_hot.shape[0])

    def subset(self, index) -> "PlantedMotifData":
        """The selected examples, renumbered ``0..N'-1`` in ``sites`` (same index forms as
        :meth:`GroundTruth.subset`)."""
        idx = _as_index(index)
        rows = torch.arange(len(self))[idx]
        new = {int(old): i for i, old in enumerate(rows.tolist())}
        sites = self.sites[self.sites["example"].isin(new)].copy()
        sites["example"] = sites["example"].map(new).astype(np.int64)
        sites = sites.sort_values(["example", "start"], kind="stable").reset_index(drop=True)
        return PlantedMotifData(
            one_hot=self.one_hot[idx].clone(),
            labels=self.labels[idx].clone(),
            ground_truth=self.ground_truth.subset(index),
            sites=sites,
        )


def _probabilities(motif: Motif) -> np.ndarray:
    totals = motif.counts.sum(axis=0)
    if (totals <= 0).any():
        raise ValueError(f"Motif {motif.id!r} has a column with zero total count.")
    return motif.counts / totals


def non_overlapping_starts(rng: np.random.Generator, widths: np.ndarray,
                           length: int) -> np.ndarray:
    """Uniformly random starts of motifs of ``widths`` (in that order) that do not overlap.

    Stars and bars: ``k`` sorted gap ends among ``slack + k`` slots, one draw of
    ``rng.choice``. ``widths.sum()`` must not exceed ``length``.
    """
    k = len(widths)
    slack = length - int(widths.sum())
    slots = np.sort(rng.choice(slack + k, size=k, replace=False))
    return slots - np.arange(k) + np.concatenate([[0], np.cumsum(widths)[:-1]])


def sample_instance(rng: np.random.Generator,
                    probabilities: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool]:
    """One motif instance sampled column by column, on a random strand.

    Returns ``(bases (W,) int in 0..3, probabilities oriented to the strand
    (4, W), reverse)``; the reverse strand is the reverse complement, the
    matrix flipped along both axes in ACGT order. Draws ``rng.random(W)``
    then ``rng.random()``.
    """
    u = rng.random(probabilities.shape[1])
    bases = np.minimum((np.cumsum(probabilities, axis=0) < u).sum(axis=0), 3)
    reverse = bool(rng.random() < 0.5)
    if reverse:
        return 3 - bases[::-1], probabilities[::-1, ::-1], True
    return bases, probabilities, False


def _check_pool(pool, name: str) -> list[Motif]:
    if isinstance(pool, Motif) or not isinstance(pool, Sequence) or len(pool) == 0:
        raise TypeError(f"`{name}` must be a non-empty list of Motif, got {pool!r:.60}.")
    for m in pool:
        if not isinstance(m, Motif):
            raise TypeError(f"`{name}` must hold Motif objects, got {type(m).__name__}.")
    return list(pool)


def make_planted_dataset(
    n: int,
    length: int = 200,
    n_motifs: tuple[int, int] = (3, 5),
    positive_fraction: float = 0.5,
    core: Sequence[Motif] | None = None,
    distractors: Sequence[Motif] | None = None,
    random_state: int = 0,
) -> PlantedMotifData:
    """Random DNA with sampled motif instances planted, after Koo & Ploenzke (2021).

    Each sequence starts as uniform random bases. ``round(n * positive_fraction)``
    randomly chosen examples are positives: they get ``k`` motifs drawn with
    replacement from ``core``; the others get ``k`` from ``distractors``; ``k``
    is uniform on ``n_motifs[0]..n_motifs[1]``. Each motif instance is a
    sequence sampled column by column from the matrix's probabilities
    (counts / column total), put on a random strand (the reverse strand
    plants the reverse complement) at a random position, with no two motifs
    of an example overlapping (uniform over non-overlapping placements in a
    random order).

    Parameters
    ----------
    n
        Number of sequences, >= 1.
    length
        Sequence length L. Default 200.
    n_motifs
        ``(low, high)`` motifs per sequence, inclusive, ``1 <= low <= high``.
        Default ``(3, 5)``.
    positive_fraction
        Fraction of positives, in [0, 1]. Default 0.5.
    core, distractors
        Motif pools; default None = :func:`load_planted_motifs`.
    random_state
        Seed of the ``numpy.random.Generator``; an int (None is refused: the
        result depends on the arguments only). Default 0.

    Returns
    -------
    PlantedMotifData
        ``one_hot`` (N, 4, L) float32, ``labels`` (N,) float32,
        ``ground_truth`` (core motifs of positives) and ``sites``.

    Raises
    ------
    ValueError
        If ``n``, ``length`` are not integers >= 1, ``n_motifs`` is not a valid
        pair, ``positive_fraction`` lies outside [0, 1], or ``high`` copies of
        the widest motif of a pool in use cannot fit in ``length`` without overlap.
    TypeError
        For a non-integer ``random_state`` or a pool that is not a list of Motif.
    """
    n = check_positive_int(n, "n")
    length = check_positive_int(length, "length")
    if (
        not isinstance(n_motifs, (tuple, list)) or len(n_motifs) != 2
        or any(isinstance(v, bool) or not isinstance(v, numbers.Integral) for v in n_motifs)
        or not 1 <= n_motifs[0] <= n_motifs[1]
    ):
        raise ValueError(
            f"`n_motifs` must be a pair of integers (low, high) with 1 <= low <= high, "
            f"got {n_motifs!r}."
        )
    low, high = int(n_motifs[0]), int(n_motifs[1])
    if (
        isinstance(positive_fraction, bool) or not isinstance(positive_fraction, numbers.Real)
        or not 0.0 <= float(positive_fraction) <= 1.0
    ):
        raise ValueError(
            f"`positive_fraction` must be a number in [0, 1], got {positive_fraction!r}."
        )
    seed = check_random_state(random_state, "random_state", allow_none=False)
    if core is None or distractors is None:
        default_core, default_distractors = load_planted_motifs()
        core = default_core if core is None else core
        distractors = default_distractors if distractors is None else distractors
    pools = {True: _check_pool(core, "core"), False: _check_pool(distractors, "distractors")}

    n_pos = int(round(n * float(positive_fraction)))
    for is_core, name in ((True, "core"), (False, "distractors")):
        if (n_pos if is_core else n - n_pos) == 0:
            continue
        widest = max(m.width for m in pools[is_core])
        if high * widest > length:
            raise ValueError(
                f"`n_motifs` high={high} motifs of the `{name}` pool (widest {widest} bp) do not "
                f"fit in `length`={length} without overlap; need length >= {high * widest} "
                f"or fewer motifs."
            )
    probs = {k: [_probabilities(m) for m in pool] for k, pool in pools.items()}

    rng = np.random.default_rng(seed)
    tokens = rng.integers(0, 4, size=(n, length), dtype=np.int64)
    positive = np.zeros(n, dtype=bool)
    positive[rng.permutation(n)[:n_pos]] = True
    mask = np.zeros((n, length), dtype=bool)
    pwm = np.zeros((n, 4, length), dtype=np.float32)
    rows = []
    for i in range(n):
        is_core = bool(positive[i])
        pool, pool_probs = pools[is_core], probs[is_core]
        k = int(rng.integers(low, high + 1))
        chosen = rng.integers(0, len(pool), size=k)
        widths = np.array([pool[j].width for j in chosen])
        starts = non_overlapping_starts(rng, widths, length)
        for j, start in zip(chosen, starts):
            bases, p, reverse = sample_instance(rng, pool_probs[j])
            start, end = int(start), int(start) + p.shape[1]
            tokens[i, start:end] = bases
            if is_core:
                mask[i, start:end] = True
                pwm[i, :, start:end] = p - 0.25
            rows.append((
                i, pool[j].name, pool[j].id, start, end, "-" if reverse else "+", is_core,
                "".join(ALPHABET[b] for b in tokens[i, start:end]),
            ))

    one_hot = torch.nn.functional.one_hot(torch.from_numpy(tokens), 4).permute(0, 2, 1)
    sites = pd.DataFrame(rows, columns=SITE_COLUMNS).astype(
        {"example": np.int64, "start": np.int64, "end": np.int64, "core": bool}
    )
    return PlantedMotifData(
        one_hot=one_hot.to(torch.float32).contiguous(),
        labels=torch.from_numpy(positive.astype(np.float32)),
        ground_truth=GroundTruth(mask=torch.from_numpy(mask), pwm=torch.from_numpy(pwm)),
        sites=sites,
    )
