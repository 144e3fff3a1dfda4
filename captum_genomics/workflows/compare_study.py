"""The comparison job behind ``captum-genomics compare``: methods side by side, files out.

What :func:`run_compare_job` does:

1. takes one or more models and one set of sequences with (optionally) their
   ground truth; by default the planted-motif task (Koo & Ploenzke 2021):
   the shipped ReLU and exponential-activation CNNs
   (:func:`captum_genomics.zoo.planted.load_planted_model`) on the positives
   of their held-out test set, the planted core motifs as ground truth;
2. runs :func:`captum_genomics.comparison.compare` once per model;
3. writes, through :class:`~captum_genomics._utils.outputs.OutputFolder`
   (staged, moved into place when the job succeeds, ``summary.json`` last;
   nothing replaced without ``overwrite``), for each model ``M``:
   ``M_comparison.csv`` (tidy: method, example, metric, value),
   ``M_summary.csv``, ``M_agreement.csv``, ``M_randomization.csv``, the PNG
   figures ``M_speed_accuracy.png``, ``M_auroc.png``, ``M_agreement.png``,
   ``M_logos.png``, ``M_randomization.png`` and the self-contained
   ``M_report.html``; and ``summary.csv`` (every model's summary, with a
   ``model`` column) and ``summary.json``.

A model whose study fails after another model's has succeeded is left out
with a note in ``summary.json`` (the others' files are kept); a failure
before any result writes nothing.
"""

from __future__ import annotations

import os
import time
import warnings
from typing import Any

__all__ = ["run_compare_job", "output_files", "PER_MODEL_FILES", "default_planted_study",
           "ctcf_study", "bed_sequences", "motif_truth"]

PER_MODEL_FILES = ("comparison.csv", "summary.csv", "agreement.csv", "randomization.csv",
                   "speed_accuracy.png", "auroc.png", "agreement.png", "logos.png",
                   "randomization.png", "report.html")
"""The files written per model, each prefixed by the model's name and ``_``."""


def output_files(model_names) -> list[str]:
    """Every file the job may write for these model names."""
    names = [f"{m}_{f}" for m in model_names for f in PER_MODEL_FILES]
    return [*names, "summary.csv", "summary.json"]


def default_planted_study(n_examples: int = 32, activations=("relu", "exponential")):
    """The shipped planted-motif models and the positives of their held-out test set.

    Parameters
    ----------
    n_examples : int
        How many test positives (the first ones). Default 32.
    activations : sequence of str
        Which shipped models: ``"relu"``, ``"exponential"``. Default both.

    Returns
    -------
    models : dict of str to nn.Module
        In eval mode.
    inputs : Tensor ``(n_examples, 4, 200)`` float32
    ground_truth : GroundTruth
        The planted core motifs.

    Raises
    ------
    ValueError
        If the shipped models were not evaluated on the same test set.
    """
    from captum_genomics.zoo.planted import load_planted_model, planted_data_for

    models, data = {}, None
    for activation in activations:
        models[activation] = load_planted_model(activation)
        test = planted_data_for(activation, "test")
        if data is not None and not bool((test.one_hot == data.one_hot).all()):
            raise ValueError("the shipped planted-motif models have different test sets.")
        data = test
    positives = (data.labels == 1).nonzero().flatten()[:n_examples]
    sub = data.subset(positives)
    return models, sub.one_hot, sub.ground_truth


def ctcf_study(n_examples: int | None = None):
    """The shipped CTCF CNN and its held-out peaks, the best JASPAR CTCF match as ground truth.

    Parameters
    ----------
    n_examples : int or None
        The first ``n_examples`` of the 50 held-out peaks. Default all.

    Returns
    -------
    models : dict ``{"ctcf_cnn": CTCFNet}`` (eval mode)
    inputs : Tensor ``(n, 4, 200)`` float32
    ground_truth : GroundTruth
        The best MA0139.2 match (15 bp) of each peak, over both strands.
    label : str
    """
    from captum_genomics.seq.datasets import load_ctcf_motif, load_ctcf_peaks
    from captum_genomics.seq.motif_sites import motif_ground_truth
    from captum_genomics.zoo.ctcf import ctcf_split, load_ctcf_model

    test = ctcf_split()["test"][:n_examples]
    one_hot = load_ctcf_peaks().one_hot[test]
    truth, _ = motif_ground_truth(one_hot, load_ctcf_motif(), best_only=True)
    label = f"{len(test)} held-out GM12878 CTCF peaks (best JASPAR MA0139.2 match as ground truth)"
    return {"ctcf_cnn": load_ctcf_model()}, one_hot, truth, label


def bed_sequences(bed: str | os.PathLike, genome: str | os.PathLike, width: int,
                  n_examples: int | None = None):
    """The regions of a BED file, centred and resized, as one-hot sequences.

    Parameters
    ----------
    bed, genome : path
        As :func:`captum_genomics.seq.genome.read_bed` and
        :func:`~captum_genomics.seq.genome.open_genome` take them.
    width : int
        Every region is resized to this around its midpoint.
    n_examples : int or None
        The first ``n_examples`` regions. Default all.

    Returns
    -------
    one_hot : Tensor ``(n, 4, width)`` float32 (N-padded off chromosome ends)
    label : str
        Says how many regions, from where, and how many were padded.

    Raises
    ------
    FileNotFoundError, ValueError, PermissionError
        From reading the BED or opening the genome (messages name the file and line).
    """
    from pathlib import Path

    from captum_genomics.seq.genome import fetch_one_hot, open_genome, read_bed, resize_regions

    regions = read_bed(bed)
    if n_examples is not None:
        regions = regions.iloc[:n_examples]
    with open_genome(genome) as opened:
        one_hot, report = fetch_one_hot(opened, resize_regions(regions, width))
    label = f"{len(regions)} regions of {Path(bed).name} ({width} bp from {Path(genome).name})"
    if report["n_padded"]:
        label += f"; {report['n_padded']} padded with N off a chromosome end"
    return one_hot, label


def motif_truth(one_hot, motifs, *, plant: bool = False, min_relative_score: float = 0.8,
                random_state: int = 0, source: str = "the motif file"):
    """Ground truth for your sequences from motifs: their matches, or planted instances.

    Parameters
    ----------
    one_hot : Tensor ``(N, 4, L)``
    motifs : list of Motif
    plant : bool
        Plant one sampled instance of every motif per sequence
        (:func:`~captum_genomics.seq.motif_sites.plant_motifs`) instead of
        scoring the matches (:func:`~captum_genomics.seq.motif_sites.motif_ground_truth`).
        Default False.
    min_relative_score : float
        A match's least relative PWM score. Default 0.8.
    random_state : int
        Seeds the planting. Default 0.
    source : str
        Names the motifs in the label.

    Returns
    -------
    one_hot : Tensor ``(N, 4, L)`` (a planted copy with ``plant=True``)
    ground_truth : GroundTruth
    label : str
        What the ground truth is, to append to the sequences' label.

    Raises
    ------
    ValueError, TypeError
        As the two functions above (e.g. motifs longer than the sequences).
    """
    from captum_genomics.seq.motif_sites import motif_ground_truth, plant_motifs

    if plant:
        one_hot, truth, _ = plant_motifs(one_hot, motifs, random_state=random_state)
        return one_hot, truth, f" with {len(motifs)} motif(s) of {source} planted"
    truth, sites = motif_ground_truth(one_hot, motifs, min_relative_score=min_relative_score)
    return one_hot, truth, (f", {len(sites)} match(es) of {source} (relative score >= "
                            f"{min_relative_score:g}) as ground truth")


def _check_models(models: Any) -> dict:
    from torch import nn

    if isinstance(models, nn.Module):
        models = {"model": models}
    if not isinstance(models, dict) or not models:
        raise TypeError("`models` must be an nn.Module or a non-empty dict of name to module, "
                        f"got {type(models).__name__}.")
    for name in models:
        if not isinstance(name, str) or not name or not all(c.isalnum() or c in "-_." for c in
                                                            name):
            raise ValueError(f"`models`: a model name must be a non-empty file-name-safe string "
                             f"(letters, digits, -_.), got {name!r}.")
    return models


SUMMARY_COLUMNS = ("seconds", "first_call_seconds", "convergence_delta_max", "auroc", "aupr",
                   "pwm_cosine", "off_simplex_angle", "randomization_spearman", "flagged")


def format_summary(summary) -> str:
    """The summary table as fixed-width text (3 significant digits)."""
    table = summary[[c for c in SUMMARY_COLUMNS if c in summary.columns]]
    return table.to_string(float_format=lambda v: f"{v:.3g}", na_rep="-")


def run_compare_job(
    out_dir: str | os.PathLike = "captum_genomics_compare_out",
    models: Any = None,
    inputs: Any = None,
    ground_truth: Any = None,
    methods: Any = None,
    n_examples: int = 32,
    target: Any = None,
    n_references: int = 20,
    batch_size: int = 64,
    ig_steps: int = 32,
    randomization: bool = True,
    randomization_examples: int = 8,
    random_state: int = 0,
    plot: bool = True,
    verbose: bool = True,
    show_progress: bool = False,
    overwrite: bool = False,
    label: str = "",
) -> dict:
    """Compare attribution methods on each model, write tables, figures and reports.

    Parameters
    ----------
    out_dir : str or PathLike
        Output folder (created). Default ``"captum_genomics_compare_out"``.
    models : nn.Module, dict of str to nn.Module, or None
        The models, in eval mode. Default None: the shipped planted-motif
        CNNs (``relu``, ``exponential``) on their test positives
        (:func:`default_planted_study`); ``inputs``/``ground_truth`` must
        then be None.
    inputs : Tensor ``(N, 4, L)`` or None
        One-hot sequences (needed with ``models``).
    ground_truth : GroundTruth, Tensor ``(N, L)`` bool, or None
        Planted or matched motif positions. Default None.
    methods : see :func:`captum_genomics.comparison.compare`
        Default None: every built-in method.
    n_examples : int
        With the default study: how many test positives. Default 32.
    target, n_references, batch_size, ig_steps, randomization, randomization_examples,
    random_state, show_progress
        Passed to :func:`captum_genomics.comparison.compare`.
    plot : bool
        Write the PNG figures (and embed them in the reports). Default True.
    verbose : bool
        Print the summary tables and the files written. Default True.
    overwrite : bool
        Replace an earlier run's results in ``out_dir``. Default False.
    label : str
        Describes the sequences in the report. Default: the planted task.

    Returns
    -------
    dict
        The contents of ``summary.json``: per model its summary table
        (records), flagged methods, notes and metadata; ``files``;
        ``seconds``; ``report`` (the printed lines).

    Raises
    ------
    ValueError, TypeError
        Bad arguments (before anything runs), or the first model's study
        failing (nothing written).
    FileExistsError
        ``out_dir`` holds another run's results and ``overwrite`` is False.
    """
    import pandas as pd

    from captum_genomics._utils.outputs import (
        OutputFolder,
        check_output_folder,
        finish_report,
        stage_summary,
    )
    from captum_genomics.comparison import compare

    t_start = time.perf_counter()
    if models is None:
        if inputs is not None or ground_truth is not None:
            raise ValueError("`inputs`/`ground_truth` need `models` (the default study brings "
                             "its own sequences).")
        models, inputs, ground_truth = default_planted_study(n_examples)
        label = label or (f"{inputs.shape[0]} held-out positives of the planted-motif task "
                          "(SP1, GABPA, CEBPB, MAX, YY1 planted in random 200 bp)")
    elif inputs is None:
        raise ValueError("`inputs` (one-hot sequences (N, 4, L)) is needed with `models`.")
    models = _check_models(models)
    names = output_files(models)
    check_output_folder(out_dir, names, overwrite)

    results, notes = {}, []
    for name, model in models.items():
        try:
            result = compare(methods, model, inputs, target=target, ground_truth=ground_truth,
                             n_references=n_references, batch_size=batch_size,
                             ig_steps=ig_steps, randomization=randomization,
                             randomization_examples=randomization_examples,
                             random_state=random_state, show_progress=show_progress,
                             model_name=name)
        except Exception as err:
            if not results:
                raise
            message = f"model {name!r} failed and was left out: {type(err).__name__}: {err}"
            warnings.warn(message, UserWarning, stacklevel=2)
            notes.append(message)
            continue
        result.metadata["sequences"] = label
        results[name] = result

    lines = [f"Compared {len(results[next(iter(results))].methods)} methods on "
             f"{inputs.shape[0]} sequences ({label or 'your sequences'}):"]
    summaries = []
    for name, result in results.items():
        table = result.summary()
        lines += ["", f"model {name}:", format_summary(table)]
        if result.flagged:
            lines.append(f"flagged by cascading randomisation: {', '.join(result.flagged)}")
        lines += [f"note: {n}" for n in result.metadata.get("notes", [])]
        summaries.append(table.assign(model=name).reset_index())
    lines += [f"note: {n}" for n in notes]
    combined = pd.concat(summaries, ignore_index=True)
    combined = combined[["model", *[c for c in combined.columns if c != "model"]]]

    summary = {
        "job": "compare", "sequences": label, "n_examples": int(inputs.shape[0]),
        "length": int(inputs.shape[-1]), "random_state": random_state,
        "models": {name: {"summary": r.summary().reset_index().to_dict("records"),
                          "flagged": r.flagged, "notes": r.metadata.get("notes", []),
                          "metadata": {k: v for k, v in r.metadata.items() if k != "notes"}}
                   for name, r in results.items()},
        "notes": notes,
    }
    with OutputFolder(out_dir, names, overwrite) as out:
        files = []
        for name, result in results.items():
            written = result.save(out.staging, overwrite=False, figures=plot, prefix=f"{name}_")
            files += [p.name for p in written]
        combined.to_csv(out.staged("summary.csv"), index=False)
        files.append("summary.csv")
        stage_summary(out, summary, files, t_start)
    return finish_report(out, out_dir, summary, lines, verbose)
