"""The CTCF job: ShuffleDeepLiftShap on held-out GM12878 CTCF peaks.

What it does, in order:

1. attributes each sequence with :class:`~captum_genomics.ShuffleDeepLiftShap`
   against ``n_references`` dinucleotide shuffles of itself, returning
   hypothetical contributions ``(N, 4, L)`` and convergence deltas ``(N, K)``;
2. projects them onto the observed bases (contributions);
3. writes ``ohe.npz`` + ``shap.npz`` (the inputs of tfmodisco-lite's
   ``modisco motifs``), ``contributions.npz``, ``windows.tsv`` (one row per
   sequence), ``summary.json`` and ``logo.png``: the output folder is checked
   before step 1 and the files are staged and moved into place together when
   the job succeeds, ``summary.json`` last
   (:class:`~captum_genomics._utils.outputs.OutputFolder`); the summary counts
   the non-ACGT characters encoded as N and the example-reference pairs that
   are not additive;
4. with a motif: checks, per sequence, whether the highest-attribution window
   (width = motif width, sliding sum of contributions over positions) overlaps
   the best PWM match (both strands), and compares that fraction with the same
   statistic on dinucleotide-shuffled copies of the sequences (attributed the
   same way) and with the chance level of a uniformly placed window.

:func:`run_ctcf_job` runs it on a shipped CTCF model (the CNN by default, or
the transformer) and the held-out peaks; :func:`run_attribution_job` on any
model and sequences (``captum-genomics attribute``).
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import Tensor

from captum_genomics._utils.outputs import OutputFolder
from captum_genomics.seq.io import ALPHABET, one_hot_encode
from captum_genomics.seq.modisco import modisco_command, save_modisco_inputs, save_npz
from captum_genomics.seq.motifs import Motif, scan_best_match

__all__ = [
    "AttributionResult",
    "attribute_sequences",
    "top_windows",
    "windows_overlap",
    "chance_overlap",
    "motif_overlap",
    "nonadditive_pairs",
    "sequence_composition",
    "OUTPUT_FILES",
    "DELTA_THRESHOLD",
    "run_attribution_job",
    "run_ctcf_job",
]


@dataclass
class AttributionResult:
    """Attributions of a set of sequences against their shuffled references.

    Attributes
    ----------
    one_hot : Tensor, shape=(N, 4, L)
    hypothetical : Tensor, shape=(N, 4, L)
        Hypothetical contributions, averaged over the references.
    contributions : Tensor, shape=(N, 4, L)
        ``hypothetical * one_hot``: the contribution of each observed base.
    delta : Tensor, shape=(N, K)
        Convergence delta per example-reference pair.
    outputs : Tensor, shape=(N,)
        The model's output for ``target`` on each sequence.
    """

    one_hot: Tensor
    hypothetical: Tensor
    contributions: Tensor
    delta: Tensor
    outputs: Tensor


def attribute_sequences(
    model: torch.nn.Module,
    one_hot: Tensor,
    target: int = 0,
    n_references: int = 20,
    random_state: int = 0,
    batch_size: int = 64,
    show_progress: bool = False,
) -> AttributionResult:
    """Run ShuffleDeepLiftShap with dinucleotide-shuffled references.

    Parameters
    ----------
    model
        In eval mode; maps ``(N, 4, L)`` to ``(N, T)`` outputs.
    one_hot
        Shape=(N, 4, L), float one-hot.
    target
        Output column to explain. Default 0.
    n_references
        Shuffles per sequence (``K``). Default 20.
    random_state
        Seed of the shuffles. Default 0.
    batch_size
        Example-reference pairs per forward/backward pass. Default 64.
    show_progress
        tqdm bar over batches. Default False.

    Returns
    -------
    AttributionResult
    """
    from captum_genomics import ShuffleDeepLiftShap

    explainer = ShuffleDeepLiftShap(model)
    hypothetical, delta = explainer.attribute(
        one_hot,
        n_references=n_references,
        target=target,
        batch_size=batch_size,
        hypothetical=True,
        return_convergence_delta=True,
        random_state=random_state,
        show_progress=show_progress,
    )
    hypothetical = hypothetical.detach()
    with torch.no_grad():
        outs = []
        for start in range(0, len(one_hot), batch_size):
            out = model(one_hot[start : start + batch_size])
            outs.append((out[:, target] if out.ndim > 1 else out).reshape(-1))
        outputs = torch.cat(outs).detach()
    return AttributionResult(
        one_hot=one_hot,
        hypothetical=hypothetical,
        contributions=hypothetical * one_hot,
        delta=delta.detach().reshape(len(one_hot), -1),
        outputs=outputs,
    )


def top_windows(contributions: Tensor, width: int) -> tuple[np.ndarray, np.ndarray]:
    """The window of ``width`` bases with the largest summed contribution.

    Parameters
    ----------
    contributions
        Shape=(N, 4, L); summed over the 4 channels per position first.
    width
        Window width, ``1 <= width <= L``.

    Returns
    -------
    starts : np.ndarray of int64, shape=(N,)
        Leftmost position of each sequence's best window (first on ties).
    sums : np.ndarray of float64, shape=(N,)
        Its summed contribution.

    Raises
    ------
    ValueError
        If ``width`` is not in ``[1, L]``.
    """
    per_pos = contributions.detach().to(torch.float64).sum(dim=1).cpu().numpy()
    length = per_pos.shape[1]
    if not 1 <= width <= length:
        raise ValueError(f"`width` must be in [1, {length}], got {width}.")
    csum = np.concatenate([np.zeros((len(per_pos), 1)), np.cumsum(per_pos, axis=1)], axis=1)
    sums = csum[:, width:] - csum[:, :-width]  # (N, L - width + 1)
    starts = sums.argmax(axis=1)
    return starts.astype(np.int64), sums[np.arange(len(sums)), starts]


def windows_overlap(starts_a, width_a: int, starts_b, width_b: int) -> np.ndarray:
    """Whether intervals ``[a, a + width_a)`` and ``[b, b + width_b)`` share a base.

    Parameters
    ----------
    starts_a, starts_b
        Integer arrays of interval starts, shape=(N,) (or broadcastable).
    width_a, width_b
        The interval widths.

    Returns
    -------
    np.ndarray of bool, shape=(N,)
    """
    a, b = np.asarray(starts_a), np.asarray(starts_b)
    return (a < b + width_b) & (b < a + width_a)


def chance_overlap(motif_starts, motif_width: int, window_width: int, length: int) -> np.ndarray:
    """Probability that a uniformly placed window overlaps each motif site.

    The window start is uniform on ``0 .. length - window_width``; it overlaps
    ``[p, p + motif_width)`` when it lies in
    ``[p - window_width + 1, p + motif_width - 1]``.

    Parameters
    ----------
    motif_starts
        Integer array, shape=(N,): leftmost base of each motif site.
    motif_width, window_width
        Widths of the site and of the window.
    length
        Sequence length ``L >= window_width``.

    Returns
    -------
    np.ndarray of float64, shape=(N,)
    """
    p = np.asarray(motif_starts, dtype=np.int64)
    n_starts = length - window_width + 1
    lo = np.maximum(p - window_width + 1, 0)
    hi = np.minimum(p + motif_width - 1, length - window_width)
    return np.clip(hi - lo + 1, 0, None) / n_starts


def _wilson(k: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score 95% interval of a binomial proportion."""
    if n == 0:
        return (math.nan, math.nan)
    p = k / n
    den = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return (max(0.0, centre - half), min(1.0, centre + half))


def motif_overlap(result: AttributionResult, motif: Motif) -> dict:
    """Per-sequence test: does the top-attribution window hit the best motif match?

    Parameters
    ----------
    result
        From :func:`attribute_sequences`.
    motif
        Scanned on both strands with :func:`~captum_genomics.seq.motifs.scan_best_match`
        (pseudocount 1, uniform background).

    Returns
    -------
    dict
        ``window_start``, ``window_sum``, ``motif_start``, ``motif_strand``,
        ``motif_score``, ``overlap`` (per-sequence arrays), and the scalars
        ``fraction``, ``n_overlap``, ``n``, ``ci95`` (Wilson interval),
        ``chance`` (mean of :func:`chance_overlap`), ``median_motif_score``
        (log2-odds, bits) and ``window_width``.
    """
    width = motif.width
    length = result.one_hot.shape[-1]
    starts, sums = top_windows(result.contributions, width)
    m_pos, m_strand, m_score = scan_best_match(result.one_hot, motif)
    m_pos = m_pos.numpy()
    hit = windows_overlap(starts, width, m_pos, width)
    k, n = int(hit.sum()), len(hit)
    return {
        "window_start": starts,
        "window_sum": sums,
        "motif_start": m_pos,
        "motif_strand": m_strand.numpy(),
        "motif_score": m_score.numpy(),
        "overlap": hit,
        "n_overlap": k,
        "n": n,
        "fraction": k / n,
        "ci95": _wilson(k, n),
        "chance": float(chance_overlap(m_pos, width, width, length).mean()),
        "median_motif_score": float(m_score.median()),
        "window_width": width,
    }


def _write_table(path: Path, names: Sequence[str], result: AttributionResult, overlap: dict | None):
    delta = result.delta.abs().median(dim=1).values.numpy()
    head = ["name", "output", "total_contribution", "median_abs_delta"]
    if overlap is not None:
        head += ["window_start", "window_sum", "motif_start", "motif_strand", "motif_score", "overlap"]
    total = result.contributions.sum(dim=(1, 2)).numpy()
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("\t".join(head) + "\n")
        for i, name in enumerate(names):
            row = [name, f"{float(result.outputs[i]):.6g}", f"{total[i]:.6g}", f"{delta[i]:.3g}"]
            if overlap is not None:
                row += [
                    str(int(overlap["window_start"][i])),
                    f"{overlap['window_sum'][i]:.6g}",
                    str(int(overlap["motif_start"][i])),
                    "+" if overlap["motif_strand"][i] > 0 else "-",
                    f"{overlap['motif_score'][i]:.3f}",
                    str(bool(overlap["overlap"][i])),
                ]
            handle.write("\t".join(row) + "\n")


def _save_logo(path: Path, result: AttributionResult, names, motif: Motif | None, overlap: dict | None, pad: int = 5):
    """Logo of the strongest window over all sequences (largest window sum)."""
    from captum_genomics.seq.plot import save_attribution_figure

    width = motif.width if motif is not None else min(20, result.one_hot.shape[-1])
    if overlap is None:
        starts, sums = top_windows(result.contributions, width)
    else:
        starts, sums = overlap["window_start"], overlap["window_sum"]
    i = int(np.argmax(sums))
    length = result.one_hot.shape[-1]
    lo, hi = max(0, int(starts[i]) - pad), min(length, int(starts[i]) + width + pad)
    title = f"{names[i]}: contributions, top {width}-bp window at {int(starts[i])} (sum {sums[i]:.3g})"
    kwargs = {}
    if motif is not None and overlap is not None:
        kwargs = dict(
            motif=motif,
            motif_start=int(overlap["motif_start"][i]),
            motif_strand=int(overlap["motif_strand"][i]),
        )
    save_attribution_figure(path, result.contributions[i, :, lo:hi], start=lo, title=title, **kwargs)
    return i


_OVERLAP_KEYS = ("n_overlap", "n", "fraction", "ci95", "chance", "median_motif_score")

OUTPUT_FILES = ("ohe.npz", "shap.npz", "contributions.npz", "windows.tsv", "summary.json",
                "controls_ohe.npz", "controls_contributions.npz", "logo.png")
"""Every file :func:`run_attribution_job` may write (``summary.json`` is written last)."""

DELTA_THRESHOLD = 1e-3
"""An example-reference pair whose ``|convergence delta|`` exceeds it (or is NaN) is
counted as not additive: ShuffleDeepLiftShap's default ``warning_threshold``."""


def sequence_composition(sequences: Sequence[str] | Tensor) -> dict:
    """Count what one-hot encoding turns into ``N`` (all-zero columns).

    Parameters
    ----------
    sequences : sequence of str, or Tensor of shape (N, 4, L)
        The sequences as text (every character other than ``ACGT``/``acgt``
        counts), or already one-hot (every all-zero column counts; which
        characters they were is then unknown).

    Returns
    -------
    dict
        ``n_records``; ``n_all_n``: records without a single A/C/G/T base;
        ``n_records_with_n``: records with at least one non-ACGT character;
        ``n_non_acgt``: those characters in all, each encoded as an all-zero
        column; ``n_other``: of them, the characters other than ``N``/``n``
        (IUPAC ambiguity codes such as ``R`` or ``Y``, gaps, anything else),
        None for one-hot input; ``other_characters``: those characters
        (uppercased) and their counts, most frequent first (``{}`` for
        one-hot input).
    """
    if isinstance(sequences, Tensor):
        unknown = sequences.detach().sum(dim=1) == 0  # (N, L)
        per_record = unknown.sum(dim=1)
        return {
            "n_records": int(unknown.shape[0]),
            "n_all_n": int((per_record == unknown.shape[1]).sum()),
            "n_records_with_n": int((per_record > 0).sum()),
            "n_non_acgt": int(per_record.sum()),
            "n_other": None,
            "other_characters": {},
        }
    n_all_n = n_with = n_non = n_other = 0
    other: dict[str, int] = {}
    for seq in sequences:
        upper = seq.upper()
        non = len(upper) - sum(upper.count(base) for base in ALPHABET)
        if non:
            n_with += 1
            n_non += non
            n_all_n += non == len(upper)
            rest = non - upper.count("N")
            if rest:
                n_other += rest
                for char in upper:
                    if char not in "ACGTN":
                        other[char] = other.get(char, 0) + 1
    return {
        "n_records": len(sequences),
        "n_all_n": n_all_n,
        "n_records_with_n": n_with,
        "n_non_acgt": n_non,
        "n_other": n_other,
        "other_characters": dict(sorted(other.items(), key=lambda kv: (-kv[1], kv[0]))),
    }


def _composition_line(composition: dict, label: str) -> str | None:
    """The report's line on N and IUPAC characters; None when every base is A/C/G/T."""
    if not composition["n_non_acgt"]:
        return None
    line = (f"input: {composition['n_non_acgt']} non-ACGT characters in "
            f"{composition['n_records_with_n']} of {composition['n_records']} {label}, "
            "encoded as N (all-zero columns)")
    if composition.get("n_other"):
        chars = list(composition["other_characters"].items())
        shown = ", ".join(f"{c!r} x{k}" for c, k in chars[:6]) + (", ..." if len(chars) > 6
                                                                  else "")
        line += f"; {composition['n_other']} of them IUPAC codes or other characters ({shown})"
    if composition["n_all_n"]:
        line += (f"; {composition['n_all_n']} of them all N, kept with zero contributions "
                 "(every shuffle of such a sequence equals it)")
    return line


def _additivity(delta: Tensor, threshold: float) -> dict:
    """Pairs counted, and those over ``threshold`` (NaN counts as over)."""
    within = delta.detach().abs() <= threshold
    return {"n_pairs": int(within.numel()), "n_nonadditive_pairs": int((~within).sum())}


def _additivity_line(summary: dict, label: str) -> str:
    threshold = summary["delta_threshold"]
    parts = [(label, summary)]
    if "controls" in summary:
        parts.append(("controls", summary["controls"]))
    if not any(p["n_nonadditive_pairs"] for _, p in parts):
        total = sum(p["n_pairs"] for _, p in parts)
        return f"additivity: all {total} example-reference pairs have |delta| <= {threshold:g}"
    counts = "; ".join(f"{p['n_nonadditive_pairs']} of {p['n_pairs']} ({what})"
                       for what, p in parts)
    return (f"additivity: {counts} example-reference pairs are not additive "
            f"(|delta| > {threshold:g}): their attributions do not add up to the change in "
            "output; check the model with 'captum-genomics validate'")


def nonadditive_pairs(summary: dict) -> int:
    """Example-reference pairs over the delta threshold in a job's summary, controls included.

    Parameters
    ----------
    summary : dict
        As returned by :func:`run_attribution_job`.

    Returns
    -------
    int
    """
    return int(summary.get("n_nonadditive_pairs", 0)) + int(
        summary.get("controls", {}).get("n_nonadditive_pairs", 0))


def _fmt_overlap(label: str, ov: dict) -> str:
    lo, hi = ov["ci95"]
    return (
        f"  {label:<19}{ov['n_overlap']:>4}/{ov['n']:<4} = {ov['fraction']:.2f} "
        f"(95% CI {lo:.2f}-{hi:.2f}); chance {ov['chance']:.2f}; "
        f"median match score {ov['median_motif_score']:.1f} bits"
    )


def run_attribution_job(
    model: torch.nn.Module,
    one_hot: Tensor,
    out_dir: str | os.PathLike,
    names: Sequence[str] | None = None,
    target: int = 0,
    n_references: int = 20,
    random_state: int = 0,
    batch_size: int = 64,
    motif: Motif | None = None,
    controls: bool | None = None,
    plot: bool = True,
    show_progress: bool = False,
    verbose: bool = True,
    label: str = "sequences",
    model_name: str | None = None,
    overwrite: bool = False,
    composition: dict | None = None,
) -> dict:
    """Attribute sequences, write the output files, summarise.

    Parameters
    ----------
    model
        Maps ``(N, 4, L)`` one-hot to ``(N, T)``; put in eval mode here.
    one_hot
        Shape=(N, 4, L), float one-hot in ``ACGT`` order (all-zero columns
        for ``N``).
    out_dir
        Output folder, created if needed. Written (see :data:`OUTPUT_FILES`):
        ``ohe.npz``, ``shap.npz`` (hypothetical contributions),
        ``contributions.npz``, ``windows.tsv``, ``summary.json``, and
        ``logo.png`` when ``plot``; with controls also ``controls_ohe.npz``
        and ``controls_contributions.npz``. The folder is checked before the
        attribution starts and the files appear only when the job succeeds,
        ``summary.json`` last (:class:`~captum_genomics._utils.outputs.OutputFolder`).
    names
        One label per sequence. Default ``seq0, seq1, ...``.
    target
        Output column to explain. Default 0.
    n_references
        Dinucleotide shuffles per sequence. Default 20.
    random_state
        Seed of the references; the shuffled controls use ``random_state + 1``
        (modulo ``2**64``) for themselves and ``random_state`` for their
        references. Default 0.
    batch_size
        Example-reference pairs per batch. Default 64.
    motif
        If given, the motif-overlap summary is computed and printed.
        Default None.
    controls
        Attribute dinucleotide-shuffled copies of the sequences the same way
        and report the same overlap statistic on them. Default: True when a
        motif is given.
    plot
        Write ``logo.png`` (needs matplotlib and logomaker; skipped with a
        note when they are missing). Default True.
    show_progress
        tqdm progress bars. Default False.
    verbose
        Print the summary. Default True.
    label
        What the sequences are, for the printed summary. Default
        ``"sequences"``.
    model_name
        What the model is, recorded as ``summary["model"]`` and printed.
        Default: the model's class name.
    overwrite
        Allow an ``out_dir`` that holds an earlier run's results: its files
        are replaced, and those its ``summary.json`` lists that this run does
        not write are removed. Other files are never touched. Default False.
    composition
        :func:`sequence_composition` of the sequences as text (what the
        command line reads from the FASTA file), recorded as
        ``summary["composition"]``. Default: counted from ``one_hot``
        (all-zero columns; no breakdown of the characters).

    Returns
    -------
    dict
        The content of ``summary.json``: the model (``"model"``, and its
        class, ``"model_class"``), counts, settings, timings, median absolute
        convergence delta, the input's ``"composition"``, ``"n_pairs"`` and
        ``"n_nonadditive_pairs"`` (pairs with ``|delta| >``
        ``"delta_threshold"``, :data:`DELTA_THRESHOLD`; also under
        ``"controls"``), file names, and with a motif the ``"overlap"`` (and
        ``"controls"``) statistics; plus ``"report"`` (the printed text).

    Raises
    ------
    ValueError
        If ``names`` does not have one entry per sequence; errors of
        :class:`~captum_genomics.ShuffleDeepLiftShap` (e.g. inputs not one-hot)
        pass through.
    FileExistsError, NotADirectoryError, PermissionError
        If ``out_dir`` holds an earlier run's results (without ``overwrite``),
        is a file, or is not writable; raised before any computation.
    """
    from captum_genomics.references import dinucleotide_shuffle

    t0 = time.perf_counter()
    out_dir = Path(out_dir)
    n, _, length = one_hot.shape
    names = [f"seq{i}" for i in range(n)] if names is None else list(names)
    if len(names) != n:
        raise ValueError(f"`names` has {len(names)} entries for {n} sequences; give one per sequence.")
    if controls is None:
        controls = motif is not None
    if composition is None:
        composition = sequence_composition(one_hot)

    with OutputFolder(out_dir, OUTPUT_FILES, overwrite=overwrite) as out:
        model.eval()
        result = attribute_sequences(
            model, one_hot, target=target, n_references=n_references,
            random_state=random_state, batch_size=batch_size, show_progress=show_progress,
        )
        save_modisco_inputs(out.staging, one_hot, result.hypothetical)
        save_npz(out.staged("contributions.npz"), result.contributions)
        model_class = type(model).__name__
        model_name = model_class if model_name is None else str(model_name)
        summary: dict = {
            "model": model_name,
            "model_class": model_class,
            "n_sequences": n,
            "length": length,
            "target": target,
            "n_references": n_references,
            "random_state": random_state,
            "references": "dinucleotide shuffles of each sequence",
            "method": "ShuffleDeepLiftShap",
            "median_abs_convergence_delta": float(result.delta.abs().median()),
            "max_abs_convergence_delta": float(result.delta.abs().max()),
            "mean_output": float(result.outputs.mean()),
            "delta_threshold": DELTA_THRESHOLD,
            **_additivity(result.delta, DELTA_THRESHOLD),
            "composition": composition,
        }
        lines = [
            (f"ShuffleDeepLiftShap on {n} {label} (L={length}, target {target}, "
             f"{n_references} dinucleotide-shuffled references each)"),
            f"model: {model_name}" + (f" ({model_class})" if model_class != model_name else ""),
        ]
        composition_line = _composition_line(composition, label)
        if composition_line is not None:
            lines.append(composition_line)
        overlap = None
        if motif is not None:
            overlap = motif_overlap(result, motif)
            summary["motif"] = {"id": motif.id, "name": motif.name, "width": motif.width}
            summary["overlap"] = {k: overlap[k] for k in _OVERLAP_KEYS}
            lines.append(
                f"top-attribution {motif.width}-bp window overlaps the best {motif.id} "
                f"({motif.name}) match, both strands:"
            )
            lines.append(_fmt_overlap(label, overlap))
        if controls:
            shuffled = dinucleotide_shuffle(one_hot, n_references=1,
                                            random_state=(random_state + 1) % 2**64)[:, 0]
            shuffled = shuffled.to(one_hot.dtype)
            ctrl = attribute_sequences(
                model, shuffled, target=target, n_references=n_references,
                random_state=random_state, batch_size=batch_size, show_progress=show_progress,
            )
            save_npz(out.staged("controls_ohe.npz"), shuffled)
            save_npz(out.staged("controls_contributions.npz"), ctrl.contributions)
            summary["controls"] = {
                "what": "one dinucleotide shuffle per sequence (seed random_state + 1), attributed the same way",
                "median_abs_convergence_delta": float(ctrl.delta.abs().median()),
                "mean_output": float(ctrl.outputs.mean()),
                **_additivity(ctrl.delta, DELTA_THRESHOLD),
            }
            if motif is not None:
                c_ov = motif_overlap(ctrl, motif)
                summary["controls"]["overlap"] = {k: c_ov[k] for k in _OVERLAP_KEYS}
                lines.append(_fmt_overlap("shuffled controls", c_ov))
            lines.append(
                f"mean model output: {summary['mean_output']:.3g} ({label}), "
                f"{summary['controls']['mean_output']:.3g} (shuffled controls)"
            )
        lines.append(
            f"median |convergence delta|: {summary['median_abs_convergence_delta']:.2e}"
            + (
                f" ({label}), {summary['controls']['median_abs_convergence_delta']:.2e} (controls)"
                if controls else ""
            )
            + f"; max {summary['max_abs_convergence_delta']:.2e}"
        )
        lines.append(_additivity_line(summary, label))
        _write_table(out.staged("windows.tsv"), names, result, overlap)
        files = ["ohe.npz", "shap.npz", "contributions.npz", "windows.tsv", "summary.json"]
        if controls:
            files += ["controls_ohe.npz", "controls_contributions.npz"]
        if plot:
            try:
                from captum_genomics.seq.plot import require_plotting

                require_plotting()
            except ImportError as err:
                lines.append(f"logo.png skipped: {err}")
            else:
                idx = _save_logo(out.staged("logo.png"), result, names, motif, overlap)
                summary["logo_sequence"] = names[idx]
                files.append("logo.png")
        summary["files"] = files
        summary["modisco_command"] = modisco_command(out.final("ohe.npz"),
                                                     out.final("shap.npz"), length)
        summary["seconds"] = round(time.perf_counter() - t0, 2)
        with open(out.staged("summary.json"), "w", encoding="utf-8") as handle:
            json.dump(summary, handle, indent=1, default=float)
            handle.write("\n")
    lines.append(f"wrote {', '.join(files)} to {out_dir}/ in {summary['seconds']:.1f} s")
    if out.removed:
        lines.append(f"removed the earlier run's {', '.join(out.removed)}")
    lines.append(f"motif discovery: {summary['modisco_command']}")
    summary["report"] = "\n".join(lines)
    if verbose:
        print(summary["report"])
    return summary


_ZOO_MODELS = ("cnn", "transformer")


def _zoo_model(model) -> tuple[torch.nn.Module, str]:
    """``run_ctcf_job``'s ``model`` argument as (module, name for the summary)."""
    if model is None or isinstance(model, str):
        name = "cnn" if model is None else model
        if name == "cnn":
            from captum_genomics.zoo.ctcf import load_ctcf_model

            return load_ctcf_model(), name
        if name == "transformer":
            from captum_genomics.zoo.ctcf_transformer import load_ctcf_transformer

            return load_ctcf_transformer(), name
        raise ValueError(
            f"`model` must be one of {', '.join(repr(m) for m in _ZOO_MODELS)} (the shipped "
            f"CTCF models) or a torch.nn.Module, got {model!r}."
        )
    if isinstance(model, torch.nn.Module):
        return model, type(model).__name__
    raise TypeError(
        f"`model` must be one of {', '.join(repr(m) for m in _ZOO_MODELS)} or a "
        f"torch.nn.Module, got {type(model).__name__}."
    )


def run_ctcf_job(
    out_dir: str | os.PathLike = "captum_genomics_out",
    model: str | torch.nn.Module | None = "cnn",
    sequences: Tensor | Sequence[str] | None = None,
    n_references: int = 20,
    random_state: int = 0,
    n_examples: int | None = None,
    batch_size: int = 64,
    plot: bool = True,
    show_progress: bool = False,
    verbose: bool = True,
    overwrite: bool = False,
) -> dict:
    """The default job: attribute held-out CTCF peaks, check against JASPAR CTCF.

    Parameters
    ----------
    out_dir
        Output folder. Default ``"captum_genomics_out"``.
    model
        Which model to explain: ``"cnn"`` (default; the shipped CNN,
        :func:`~captum_genomics.zoo.load_ctcf_model`), ``"transformer"`` (the
        shipped transformer,
        :func:`~captum_genomics.zoo.load_ctcf_transformer`; both were trained
        on the same split), or any ``nn.Module`` mapping ``(N, 4, L)`` to
        ``(N, T)`` (output column 0 is explained). ``None`` means ``"cnn"``.
        Recorded as ``summary["model"]`` (the zoo name, or the class name of
        a module).
    sequences
        One-hot tensor ``(N, 4, L)`` or equal-length strings. Default: the 50
        test-split peaks of :func:`~captum_genomics.seq.datasets.load_ctcf_peaks`
        (never seen in training or model selection).
    n_references
        Dinucleotide shuffles per sequence. Default 20.
    random_state
        Seed of references and controls. Default 0.
    n_examples
        Use only the first ``n_examples`` sequences (for quick runs).
        Default all.
    batch_size
        Example-reference pairs per batch. Default 64.
    plot
        Write ``logo.png``. Default True.
    show_progress
        tqdm bars. Default False.
    verbose
        Print the summary. Default True.
    overwrite
        Replace an earlier run's results in ``out_dir`` (see
        :func:`run_attribution_job`). Default False.

    Returns
    -------
    dict
        See :func:`run_attribution_job`; always includes ``"model"``, the motif
        overlap for JASPAR MA0139.2 and the shuffled controls.

    Raises
    ------
    ValueError
        If ``model`` is a string other than ``"cnn"`` or ``"transformer"``,
        or ``n_examples < 1``.
    TypeError
        If ``model`` is neither a string, ``None`` nor an ``nn.Module``.
    FileExistsError, NotADirectoryError, PermissionError
        As :func:`run_attribution_job`, before any computation.
    """
    from captum_genomics.seq.datasets import load_ctcf_motif, load_ctcf_peaks
    from captum_genomics.zoo.ctcf import ctcf_split

    model, model_name = _zoo_model(model)
    if sequences is None:
        peaks = load_ctcf_peaks()
        test = ctcf_split()["test"]
        one_hot = peaks.one_hot[torch.from_numpy(test)]
        names = [peaks.names[i] for i in test]
        label = "held-out CTCF peaks"
    else:
        if isinstance(sequences, Tensor):
            one_hot = sequences.to(torch.float32)
        else:
            one_hot = one_hot_encode(list(sequences))
        names = None
        label = "sequences"
    if n_examples is not None:
        if n_examples < 1:
            raise ValueError(f"`n_examples` must be >= 1, got {n_examples}.")
        one_hot = one_hot[:n_examples]
        names = None if names is None else names[:n_examples]
    return run_attribution_job(
        model, one_hot, out_dir, names=names, target=0, n_references=n_references,
        random_state=random_state, batch_size=batch_size, motif=load_ctcf_motif(),
        controls=True, plot=plot, show_progress=show_progress, verbose=verbose, label=label,
        model_name=model_name, overwrite=overwrite,
    )
