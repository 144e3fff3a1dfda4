"""The ``captum-genomics`` command line.

``captum-genomics`` (or ``captum-genomics deeplift``) runs the default job:
ShuffleDeepLiftShap on the held-out GM12878 CTCF peaks with the shipped CNN
(``--zoo-model transformer``: the shipped transformer), checked against
JASPAR's CTCF motif. ``captum-genomics attribute`` runs the
same attribution and outputs on your own model and FASTA file.
``captum-genomics validate`` runs the correctness gate of a method on your model
and exits 0 when every check holds, 1 when one fails, 2 on a usage error.

Every subcommand reports a user error (bad argument, unreadable input, refused
output folder) as one line ``captum-genomics SUBCOMMAND: error: MESSAGE`` on
stderr with exit status 2, Ctrl-C with status 130 and an unexpected error (a
bug) with status 70; ``--debug`` shows the full traceback instead. Output
folders are checked before the job starts, a folder holding an earlier run's
results is refused without ``--overwrite``, and files appear only when a job
succeeds (:mod:`captum_genomics._utils.outputs`). See ``docs/cli.md``.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING


class _LazyTorch:
    """``torch``, imported on first attribute use: ``--help``, ``--version`` and
    usage errors then answer without its seconds-long import."""

    def __getattr__(self, name: str):
        import torch as module

        globals()["torch"] = module  # later uses see the module itself
        return getattr(module, name)


if TYPE_CHECKING:
    import torch
else:
    torch = _LazyTorch()

__all__ = ["main", "build_parser", "load_model", "CLIError", "EXIT_OK", "EXIT_FAILED",
           "EXIT_USAGE", "EXIT_INTERNAL", "EXIT_INTERRUPTED"]

DEFAULT_OUT = "captum_genomics_out"

EXIT_OK = 0
"""The job ran (``validate``: every check holds)."""
EXIT_FAILED = 1
"""``validate``: a check failed; ``attribute``/``deeplift --strict``: a pair is not additive."""
EXIT_USAGE = 2
"""A user error: a bad argument, an unreadable input, a refused output folder."""
EXIT_INTERNAL = 70
"""An unexpected error, probably a bug (``EX_SOFTWARE`` of sysexits.h)."""
EXIT_INTERRUPTED = 130
"""Ctrl-C (128 + SIGINT, as shells report it)."""


class CLIError(Exception):
    """A user error with a message that says what to fix."""


class _Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose usage errors are one line, exit status 2.

    ``PROG: error: MESSAGE (see 'PROG --help')`` instead of argparse's usage
    block followed by the error, so that every user error of the command
    line, argparse's or ours, reads the same.
    """

    def error(self, message: str):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def _seed(text: str) -> int:
    """``--random-state``: an integer in ``[0, 2**64)``, the range of every seed we take."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected an integer in [0, 2**64), got {text!r}") from None
    if not 0 <= value < 2**64:
        raise argparse.ArgumentTypeError(f"expected an integer in [0, 2**64), got {text!r}")
    return value


def _add_run_options(parser: argparse.ArgumentParser, writes_folder: bool = True) -> None:
    """``--overwrite`` (for a subcommand that writes an output folder) and ``--debug``."""
    if writes_folder:
        parser.add_argument(
            "--overwrite", action="store_true",
            help="allow an --out folder that holds an earlier run's results: replace them and "
                 "remove the files its summary.json lists (other files are never touched)")
    parser.add_argument("--debug", action="store_true",
                        help="on an error, show the full Python traceback")


def _check_out(args, names: Sequence[str]) -> None:
    """Check ``--out`` before any work (:func:`~captum_genomics._utils.outputs.check_output_folder`)."""
    from captum_genomics._utils.outputs import check_output_folder

    check_output_folder(args.out, names, args.overwrite, option="--out",
                        overwrite_option="--overwrite")


def _check_finite(values, what: str, path) -> None:
    """Raise :class:`CLIError` naming ``--h5ad`` when ``values`` holds NaN or infinity.

    ``values``: a dense array or tensor, or a scipy sparse matrix (its stored
    entries are checked; ``what`` says where it came from, e.g. ``adata.X``).
    """
    import numpy as np

    if hasattr(values, "tocoo"):  # scipy sparse: only stored entries can be NaN
        coo = values.tocoo()
        bad = ~np.isfinite(coo.data) if coo.data.dtype.kind in "fc" else np.zeros(0, bool)
        count = int(bad.sum())
        first = (int(coo.row[bad][0]), int(coo.col[bad][0])) if count else None
    else:
        array = values.numpy() if isinstance(values, torch.Tensor) else np.asarray(values)
        if array.dtype.kind not in "fc":
            return
        bad = ~np.isfinite(array)
        count = int(bad.sum())
        first = tuple(int(i) for i in np.argwhere(bad)[0]) if count else None
    if count:
        raise CLIError(
            f"--h5ad: {os.fspath(path)!r} holds {count} NaN or infinite value(s) in {what} "
            f"(first at cell {first[0]}, gene {first[1]}); remove or impute them first.")


def _matrix_name(args) -> str:
    """Which matrix of ``--h5ad`` is read: ``adata.X``, ``adata.raw.X`` or a layer."""
    if args.use_raw:
        return "adata.raw.X"
    return f"adata.layers[{args.layer!r}]" if args.layer else "adata.X"


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out", default=DEFAULT_OUT, type=Path,
        help=f"output folder (default: ./{DEFAULT_OUT}/)",
    )
    parser.add_argument(
        "--n-references", type=_positive_int, default=20,
        help="dinucleotide-shuffled references per sequence (default: 20)",
    )
    parser.add_argument(
        "--random-state", type=_seed, default=0, help="seed of the shuffles (default: 0)"
    )
    parser.add_argument(
        "--batch-size", type=_positive_int, default=64,
        help="example-reference pairs per batch (default: 64)",
    )
    parser.add_argument(
        "--n-examples", type=_positive_int, default=None,
        help="use only the first N sequences (default: all)",
    )
    parser.add_argument("--no-plot", action="store_true", help="do not write logo.png")
    parser.add_argument("--show-progress", "--progress", dest="show_progress",
                        action="store_true", help="show progress bars")
    parser.add_argument(
        "--strict", action="store_true",
        help="exit with status 1 when any example-reference pair is not additive "
             "(|convergence delta| > 1e-3); the files are written either way")
    _add_run_options(parser)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``captum-genomics`` (subcommands ``deeplift``, ``attribute``,
    ``fastshap``, ``heads``, ``validate``, ``genes``, ``nodes``, ``compare``)."""
    parser = _Parser(
        prog="captum-genomics",
        description=(
            "Attribution for genomics models. Without a subcommand, runs the "
            "default CTCF job ('deeplift')."
        ),
    )
    from captum_genomics import __version__

    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command",
                                metavar="{deeplift,attribute,fastshap,heads,validate,genes,nodes,compare,scan}")

    deeplift = sub.add_parser(
        "deeplift",
        help="ShuffleDeepLiftShap on held-out CTCF peaks with a shipped model (default)",
        description=(
            "Attribute the 50 held-out GM12878 CTCF peaks with the shipped CNN (or, "
            "with --zoo-model transformer, the shipped transformer), write "
            "ohe.npz/shap.npz (modisco-lite inputs), contributions.npz and "
            "logo.png, and report how often the top-attribution window hits the "
            "JASPAR CTCF match, against shuffled controls and chance. For your own "
            "model, use 'captum-genomics attribute --model MODULE:FACTORY'."
        ),
    )
    deeplift.add_argument(
        "--zoo-model", choices=("cnn", "transformer"), default="cnn",
        help="which shipped CTCF model to explain: the CNN (default) or the transformer "
             "(same training split)",
    )
    _add_common(deeplift)

    attribute = sub.add_parser(
        "attribute",
        help="ShuffleDeepLiftShap on your model and FASTA file",
        description=(
            "Attribute every sequence of a FASTA file (all the same length) with "
            "your model: MODULE:FACTORY is called with no arguments to build it, "
            "then the state dict in --weights is loaded and the model put in "
            "eval mode. Writes ohe.npz, shap.npz, contributions.npz, windows.tsv, "
            "summary.json and logo.png."
        ),
    )
    attribute.add_argument(
        "--model", required=True, metavar="MODULE:FACTORY",
        help="importable module (or path to a .py file) and the function that builds the model",
    )
    attribute.add_argument(
        "--weights", type=Path, default=None,
        help="state dict saved with torch.save (loaded with weights_only=True)",
    )
    attribute.add_argument("--fasta", type=Path, default=None,
                           help="FASTA file (may be gzipped); or --bed with --genome")
    attribute.add_argument(
        "--bed", type=Path, default=None,
        help="BED file of regions (3+ columns, may be gzipped), attributed in its order in "
             "resumable chunks (also under torchrun); needs --genome")
    attribute.add_argument(
        "--genome", type=Path, default=None,
        help="genome FASTA for --bed (plain or bgzip; the .fai index is built when missing)")
    attribute.add_argument(
        "--width", type=_positive_int, default=1000,
        help="--bed: regions are centred and resized to this many bases (default: 1000)")
    attribute.add_argument(
        "--chunk-size", type=_positive_int, default=256,
        help="--bed: regions per chunk, the unit of resumption and of work per process "
             "(default: 256); the results do not depend on it")
    attribute.add_argument("--target", type=int, default=0, help="output column to explain (default: 0)")
    attribute.add_argument(
        "--motif", type=Path, default=None,
        help="JASPAR file with one motif: report the top-window/motif-match overlap",
    )
    _add_common(attribute)
    _add_fastshap(sub)
    _add_heads(sub)
    _add_validate(sub)
    _add_genes(sub)
    _add_nodes(sub)
    _add_compare(sub)
    _add_scan(sub)
    return parser


def _add_scan(sub) -> None:
    sc = sub.add_parser(
        "scan",
        help="the CTCF CNN scanned along a real genome piece: bigWig, HDF5, modisco files",
        description=(
            "Tile the shipped demo genome (40 kb of human chr17, from pyfaidx's examples) "
            "into overlapping 200-bp windows, attribute every window with the shipped CTCF "
            "CNN as a genome-scale run (chunked, resumable: attributions.h5, ohe.npz, "
            "shap.npz, regions.tsv, contributions.bw, manifest.json), and list the windows "
            "the model scores highest against their best JASPAR CTCF match "
            "(top_windows.tsv). For your own BED and genome: 'captum-genomics attribute "
            "--bed ... --genome ...'."),
    )
    sc.add_argument("--out", type=Path, default=Path("captum_genomics_scan_out"),
                    help="output folder (default: ./captum_genomics_scan_out/)")
    sc.add_argument("--step", type=_positive_int, default=100,
                    help="distance between window starts in bp (default: 100)")
    sc.add_argument("--n-references", type=_positive_int, default=20,
                    help="dinucleotide-shuffled references per window (default: 20)")
    sc.add_argument("--random-state", type=_seed, default=0,
                    help="seed of the shuffles (default: 0)")
    sc.add_argument("--batch-size", type=_positive_int, default=64,
                    help="window-reference pairs per batch (default: 64)")
    sc.add_argument("--chunk-size", type=_positive_int, default=64,
                    help="windows per chunk, the unit of resumption (default: 64)")
    sc.add_argument("--top-k", type=_positive_int, default=10,
                    help="windows listed in top_windows.tsv (default: 10)")
    sc.add_argument("--show-progress", "--progress", dest="show_progress",
                    action="store_true", help="show progress bars")
    _add_run_options(sc)


def _add_compare(sub) -> None:
    co = sub.add_parser(
        "compare",
        help="attribution methods side by side: speed, completeness, agreement, ground truth",
        description=(
            "Run several attribution methods on the same model and sequences and measure "
            "each: wall time, completeness (convergence delta), agreement (Spearman, "
            "cosine), per-sequence AUROC/AUPR against planted or matched motifs, cosine to "
            "the centred PWM, and the cascading-randomisation sanity check. Default: the "
            "planted-motif task (SP1, GABPA, CEBPB, MAX, YY1 in random 200 bp) with the "
            "shipped ReLU and exponential CNNs. Writes per model CSV tables, PNG figures "
            "and a self-contained HTML report, plus summary.csv and summary.json."),
    )
    co.add_argument("--out", type=Path, default=Path("captum_genomics_compare_out"),
                    help="output folder (default: ./captum_genomics_compare_out/)")
    co.add_argument("--dataset", choices=("planted", "ctcf"), default="planted",
                    help="built-in study: 'planted' (default; both shipped planted-motif "
                         "CNNs) or 'ctcf' (the shipped CTCF CNN on its 50 held-out peaks, "
                         "the best JASPAR CTCF match as ground truth)")
    co.add_argument("--model", default=None, metavar="MODULE:FACTORY",
                    help="your model (a module or .py file and the function that builds it); "
                         "needs --fasta")
    co.add_argument("--weights", type=Path, default=None, help="state dict for --model")
    co.add_argument("--fasta", type=Path, default=None,
                    help="your sequences (FASTA, all the same length; may be gzipped)")
    co.add_argument("--bed", type=Path, default=None,
                    help="your regions (BED; needs --genome): centred and resized to --width")
    co.add_argument("--genome", type=Path, default=None,
                    help="indexed (or indexable) FASTA genome for --bed")
    co.add_argument("--width", type=_positive_int, default=None,
                    help="with --bed: the width in bp every region is resized to, around its "
                         "centre (required with --bed)")
    co.add_argument("--motifs", type=Path, default=None,
                    help="JASPAR or MEME motif file: score the methods against the motif "
                         "matches in your sequences (or, with --plant, plant them)")
    co.add_argument("--plant", action="store_true",
                    help="with --motifs: plant one sampled instance of every motif into each "
                         "sequence and use the planted bases as ground truth")
    co.add_argument("--min-relative-score", type=float, default=0.8,
                    help="with --motifs: a match's least relative PWM score (default: 0.8)")
    co.add_argument("--methods", default=None,
                    help="comma-separated method names (default: all; see docs/compare.md)")
    co.add_argument("--target", type=int, default=None,
                    help="output column to explain (default: the model's single output)")
    co.add_argument("--n-examples", type=_positive_int, default=None,
                    help="use only the first N sequences (default: 32 planted positives; all "
                         "of --fasta)")
    co.add_argument("--n-references", type=_positive_int, default=20,
                    help="dinucleotide-shuffled references per sequence (default: 20)")
    co.add_argument("--ig-steps", type=_positive_int, default=32,
                    help="Integrated Gradients steps (default: 32)")
    co.add_argument("--batch-size", type=_positive_int, default=64,
                    help="sequences or pairs per model call (default: 64)")
    co.add_argument("--no-randomization", action="store_true",
                    help="skip the cascading-randomisation sanity check")
    co.add_argument("--randomization-examples", type=_positive_int, default=8,
                    help="sequences the randomisation check uses (default: the first 8)")
    co.add_argument("--random-state", type=_seed, default=0,
                    help="seed of the references, GradientShap and randomisation (default: 0)")
    co.add_argument("--no-plot", action="store_true", help="do not write the PNG figures")
    co.add_argument("--show-progress", "--progress", dest="show_progress",
                    action="store_true", help="show progress bars")
    _add_run_options(co)


def _run_compare(args) -> dict:
    from captum_genomics.workflows.compare_study import (
        bed_sequences,
        ctcf_study,
        motif_truth,
        output_files,
        run_compare_job,
    )

    methods = None
    if args.methods is not None:
        methods = [m.strip() for m in args.methods.split(",") if m.strip()]
        if not methods:
            raise CLIError("--methods: give at least one method name.")
        from captum_genomics.comparison.registry import resolve_methods

        try:
            resolve_methods(methods)  # checked before any work: names known, none twice
        except ValueError as err:
            raise CLIError(f"--methods: {err}") from err
    if args.plant and args.motifs is None:
        raise CLIError("--plant needs --motifs FILE (the motifs to plant).")
    if args.fasta is not None and args.bed is not None:
        raise CLIError("give your sequences as --fasta or as --bed with --genome, not both.")
    if (args.bed is None) != (args.genome is None) or (args.bed is None) != (args.width is None):
        if args.bed is not None or args.genome is not None or args.width is not None:
            raise CLIError("--bed, --genome and --width go together (regions, the genome they "
                           "come from, and the width to resize them to).")
    has_sequences = args.fasta is not None or args.bed is not None
    if (args.model is None) != (not has_sequences):
        raise CLIError("--model goes with --fasta or --bed/--genome (your model and your "
                       "sequences).")
    if args.model is None and (args.weights or args.motifs):
        raise CLIError("--weights/--motifs need --model and --fasta (or --bed/--genome).")
    kwargs = dict(methods=methods, target=args.target, n_references=args.n_references,
                  batch_size=args.batch_size, ig_steps=args.ig_steps,
                  randomization=not args.no_randomization,
                  randomization_examples=args.randomization_examples,
                  random_state=args.random_state,
                  plot=not args.no_plot, show_progress=args.show_progress,
                  overwrite=args.overwrite)
    if args.model is None and args.dataset == "planted":
        _check_out(args, output_files(["relu", "exponential"]))
        return run_compare_job(args.out, n_examples=args.n_examples or 32, **kwargs)
    if args.model is None:
        _check_out(args, output_files(["ctcf_cnn"]))
        models, one_hot, truth, label = ctcf_study(args.n_examples)
        return run_compare_job(args.out, models=models, inputs=one_hot, ground_truth=truth,
                               label=label, **kwargs)
    _check_out(args, output_files(["model"]))
    model = load_model(args.model, args.weights)
    if args.bed is not None:
        try:
            one_hot, label = bed_sequences(args.bed, args.genome, args.width, args.n_examples)
        except (OSError, ValueError) as err:
            on_genome = os.fspath(args.genome) in str(err) or (
                isinstance(err, OSError) and err.filename is not None
                and os.fspath(err.filename) == os.fspath(args.genome))
            option, path = ("--genome", args.genome) if on_genome else ("--bed", args.bed)
            if isinstance(err, FileNotFoundError):
                raise CLIError(f"{option}: no such file {os.fspath(path)!r}.") from None
            raise CLIError(f"{option}: {err}") from err
    else:
        from captum_genomics.seq.io import one_hot_encode

        one_hot = one_hot_encode(_read_same_length_fasta(args.fasta, args.n_examples)[1])
        label = f"{one_hot.shape[0]} sequences of {args.fasta.name}"
    truth = None
    if args.motifs is not None:
        from captum_genomics.seq.motifs import load_motifs

        try:
            motifs = load_motifs(args.motifs)
            one_hot, truth, more = motif_truth(
                one_hot, motifs, plant=args.plant, min_relative_score=args.min_relative_score,
                random_state=args.random_state, source=args.motifs.name)
        except (OSError, ValueError) as err:
            raise CLIError(f"--motifs: {err}") from err
        label += more
    return run_compare_job(args.out, models={"model": model}, inputs=one_hot,
                           ground_truth=truth, label=label, **kwargs)


def _read_same_length_fasta(path: Path, n_examples: int | None):
    """``--fasta`` as ``(names, sequences)``, all the same length (CLIError when unusable)."""
    from captum_genomics.seq.io import read_fasta

    try:
        names, seqs = read_fasta(path)
    except FileNotFoundError:
        raise CLIError(f"--fasta: no such file {os.fspath(path)!r}.") from None
    except (ValueError, OSError) as err:
        raise CLIError(f"--fasta: {err}") from err
    if n_examples is not None:
        names, seqs = names[:n_examples], seqs[:n_examples]
    if not seqs:
        raise CLIError(f"--fasta: {os.fspath(path)!r} holds no sequence.")
    lengths = {len(s) for s in seqs}
    if len(lengths) > 1:
        first = len(seqs[0])
        i = next(i for i, s in enumerate(seqs) if len(s) != first)
        raise CLIError(
            f"--fasta: all sequences must have the same length; {names[0]!r} has "
            f"{first} bp but {names[i]!r} has {len(seqs[i])} bp "
            f"({len(lengths)} different lengths in the file). Trim or pad them first."
        )
    return names, seqs


def _add_fastshap(sub) -> None:
    fs = sub.add_parser(
        "fastshap",
        help="FastSHAP over genes for a cell-type classifier (default: PBMCs, shipped MLP)",
        description=(
            "Fit FastSHAP (one player per gene) for a cell-type classifier and explain "
            "held-out cells: per-class gene tables with 95% CIs (gene_table.csv, "
            "top_genes.csv), plots, attributions.npz, fastshap.pt, summary.json. By default "
            "on scanpy's pbmc68k_reduced with the shipped classifier; with --h5ad, on your "
            "AnnData and model (MODULE:FACTORY + --weights). Needs captum-genomics[sc]."
        ),
    )
    fs.add_argument("--out", type=Path, default=Path("captum_genomics_fastshap_out"),
                    help="output folder (default: ./captum_genomics_fastshap_out/)")
    fs.add_argument("--random-state", type=_seed, default=0,
                    help="seed of FastSHAP's training (default: 0)")
    fs.add_argument("--seed", type=_seed, dest="seed", default=None, help=argparse.SUPPRESS)
    fs.add_argument("--max-epochs", type=_positive_int, default=40,
                    help="explainer training epochs (default: 40)")
    fs.add_argument("--n-samples", type=_positive_int, default=32,
                    help="coalitions per cell per step with --objective fastshap (default: 32)")
    fs.add_argument("--objective", choices=("permutation", "fastshap"), default="permutation",
                    help="training labels: permutation-sampling estimates (default) or the "
                         "FastSHAP paper's loss")
    fs.add_argument("--gene-dropout", type=float, default=0.15,
                    help="augmentation: probability of resetting a gene to 0 in a training "
                         "cell each step; 0 turns it off (default: 0.15)")
    fs.add_argument("--link", choices=("softmax", "identity"), default="softmax",
                    help="explain probabilities (softmax, default) or logits (identity)")
    fs.add_argument("--target", choices=("true", "predicted"), default="true",
                    help="explain each cell's true (default) or predicted class")
    fs.add_argument("--n-cells", type=_positive_int, default=None,
                    help="explain only the first N held-out cells (default: all)")
    fs.add_argument("--top-k", type=_positive_int, default=10, help="genes per class (default: 10)")
    fs.add_argument("--no-plot", action="store_true", help="do not write the PNGs")
    fs.add_argument("--h5ad", type=Path, default=None, help="your AnnData file")
    fs.add_argument("--model", default=None, metavar="MODULE:FACTORY",
                    help="with --h5ad: builds your model, (N, genes) -> (N, classes) logits")
    fs.add_argument("--weights", type=Path, default=None, help="with --h5ad: state dict")
    fs.add_argument("--label-key", default=None,
                    help="with --h5ad: obs column of the classes (sorted names = model outputs)")
    fs.add_argument("--use-raw", action="store_true", help="with --h5ad: read adata.raw.X")
    fs.add_argument("--layer", default=None, help="with --h5ad: read adata.layers[LAYER]")
    fs.add_argument("--split-key", default=None, metavar="KEY",
                    help="with --h5ad: obs column of each cell's split (train/validation/test; "
                         "also training, val, valid, testing): the explainer is fitted on "
                         "train, and only test cells are explained and reported. Without it "
                         "the job makes its own split, which may include cells your model "
                         "trained on")
    fs.add_argument("--show-progress", "--progress", dest="show_progress", action="store_true",
                    default=None,
                    help="show progress bars while the explainer trains (default: on when "
                         "stderr is a terminal)")
    fs.add_argument("--no-progress", dest="show_progress", action="store_false",
                    help="no progress bars")
    _add_run_options(fs)


def _run_fastshap(args) -> dict:
    from captum_genomics.workflows.fastshap_pbmc import OUTPUT_FILES

    if not 0.0 <= args.gene_dropout < 1.0:
        raise CLIError(f"--gene-dropout must be in [0, 1), got {args.gene_dropout}.")
    if args.seed is not None:
        print("captum-genomics fastshap: --seed is deprecated; use --random-state.",
              file=sys.stderr)
        args.random_state = args.seed
    show_progress = args.show_progress
    if show_progress is None:
        show_progress = bool(getattr(sys.stderr, "isatty", lambda: False)())
    common = dict(random_state=args.random_state, max_epochs=args.max_epochs,
                  n_samples=args.n_samples,
                  objective=args.objective, gene_dropout=args.gene_dropout,
                  link=args.link, target=args.target, n_cells=args.n_cells, top_k=args.top_k,
                  plot=not args.no_plot, overwrite=args.overwrite, show_progress=show_progress)
    if args.h5ad is None:
        if (args.model or args.weights or args.label_key or args.use_raw or args.layer
                or args.split_key):
            raise CLIError("--model/--weights/--label-key/--use-raw/--layer/--split-key "
                           "need --h5ad.")
        _check_out(args, OUTPUT_FILES)
        from captum_genomics.workflows.fastshap_pbmc import run_fastshap_job

        return run_fastshap_job(args.out, **common)
    if args.model is None or args.label_key is None:
        raise CLIError("--h5ad needs --model MODULE:FACTORY and --label-key KEY.")
    _check_out(args, OUTPUT_FILES)
    import numpy as np

    from captum_genomics.sc.inputs import anndata_matrix
    from captum_genomics.sc.pbmc import stratified_split
    from captum_genomics.workflows.fastshap_pbmc import run_fastshap_on_data, split_from_obs

    adata = _read_h5ad(args.h5ad)
    if args.label_key not in adata.obs:
        raise CLIError(f"--label-key {args.label_key!r} is not an obs column; "
                       f"columns: {list(adata.obs.columns)}.")
    if args.split_key is not None and args.split_key not in adata.obs:
        raise CLIError(f"--split-key {args.split_key!r} is not an obs column; "
                       f"columns: {list(adata.obs.columns)}.")
    try:
        matrix = anndata_matrix(adata, args.layer, args.use_raw, "--h5ad")
    except ValueError as err:
        raise CLIError(str(err)) from err
    _check_finite(matrix, _matrix_name(args), args.h5ad)
    x = matrix.toarray() if hasattr(matrix, "toarray") else np.asarray(matrix)
    genes = adata.raw.var_names if args.use_raw else adata.var_names
    names = adata.obs[args.label_key].astype(str).to_numpy()
    label_names = sorted(set(names))
    labels = np.array([label_names.index(c) for c in names], dtype=np.int64)
    if args.split_key is None:
        split, source = stratified_split(labels, random_state=0), "job"
    else:
        try:
            split = split_from_obs(adata.obs[args.split_key].to_numpy(), labels,
                                   random_state=0, key=args.split_key)
        except ValueError as err:
            raise CLIError(f"--split-key: {err}") from err
        source = "obs"
    model = load_model(args.model, args.weights)
    with torch.no_grad():
        try:
            out = model(torch.as_tensor(x[:1], dtype=torch.float32))
        except Exception as err:
            raise CLIError(f"--model: calling it on cells of shape (1, {x.shape[1]}) failed: "
                           f"{type(err).__name__}: {err}") from err
    if not isinstance(out, torch.Tensor) or out.ndim != 2 or out.shape[1] != len(label_names):
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise CLIError(f"--model returns shape {shape} but {args.label_key!r} has "
                       f"{len(label_names)} classes; expected (N, {len(label_names)}).")
    return run_fastshap_on_data(model, x.astype(np.float32), labels, list(genes), label_names,
                                split, args.out, label=f"cells of {args.h5ad.name}",
                                cell_names=[str(c) for c in adata.obs_names],
                                split_source=source, **common)


def _alpha(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1), got {text!r}") from None
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1), got {text!r}")
    return value


def _add_heads(sub) -> None:
    hd = sub.add_parser(
        "heads",
        help="head-ablation explained variance of an attention model (default: PBMCs, "
             "shipped neighbour-attention model)",
        description=(
            "Keep one attention head (ablate the others), measure how much of each gene's "
            "variance the prediction still explains within each cell type, test each (head, "
            "cell type) with a permutation test and Benjamini-Hochberg correction. Prints the "
            "head x cell-type EV table with adjusted p-values; writes ev_table.csv, "
            "head_table.csv, summary.json, ev_bars.png, gene_head_heatmap.png. By default on "
            "scanpy's pbmc68k_reduced with the shipped neighbour-attention model; with --h5ad, "
            "on your AnnData (kNN graph in obsp) and your model (MODULE:FACTORY + --weights), "
            "called as model(neighbours (N, k, genes), cell_type (N,)) -> (N, genes). Needs "
            "captum-genomics[sc]."
        ),
    )
    hd.add_argument("--out", type=Path, default=Path("captum_genomics_heads_out"),
                    help="output folder (default: ./captum_genomics_heads_out/)")
    hd.add_argument("--cells", choices=("all", "train", "validation", "test"), default="all",
                    help="default job: which cells of the fixed split (default: all)")
    hd.add_argument("--ablation", choices=("keep", "remove"), default="keep",
                    help="keep one head and ablate the others (default), or remove one head")
    hd.add_argument("--mode", choices=("zero", "mean"), default="zero",
                    help="replace ablated heads by zero (default) or by their mean over the "
                         "reference cells (train split; with --h5ad: all cells)")
    hd.add_argument("--n-permutations", type=_positive_int, default=None,
                    help="permutations per test (default: ceil(heads x groups / alpha))")
    hd.add_argument("--alpha", type=_alpha, default=0.05,
                    help="significance level after BH correction (default: 0.05)")
    hd.add_argument("--random-state", type=_seed, default=0,
                    help="seed of the permutations (default: 0)")
    hd.add_argument("--batch-size", type=_positive_int, default=None,
                    help="(variant, cell) rows per forward pass (default: library default)")
    hd.add_argument("--top-k", type=_positive_int, default=10,
                    help="genes per cell type in the heatmap (default: 10)")
    hd.add_argument("--no-plot", action="store_true", help="do not write the PNGs")
    hd.add_argument("--show-progress", "--progress", dest="show_progress", action="store_true",
                    help="show progress bars")
    hd.add_argument("--h5ad", type=Path, default=None,
                    help="your AnnData file, with a kNN graph in obsp (scanpy.pp.neighbors)")
    hd.add_argument("--model", default=None, metavar="MODULE:FACTORY",
                    help="with --h5ad: builds your model, "
                         "(neighbours (N, k, genes), cell_type (N,)) -> (N, genes)")
    hd.add_argument("--weights", type=Path, default=None, help="with --h5ad: state dict")
    hd.add_argument("--attention", action="append", default=None, metavar="NAME",
                    help="with --h5ad: dotted name of an attention module of your model "
                         "(repeat for several; default: attention)")
    hd.add_argument("--label-key", default=None,
                    help="with --h5ad: obs column of the cell types (sorted names = the "
                         "cell_type indices the model reads)")
    hd.add_argument("--graph-key", default="distances",
                    help="with --h5ad: obsp key of the kNN distance graph (default: distances)")
    hd.add_argument("--k", type=_positive_int, default=None,
                    help="with --h5ad: neighbours per cell (default: all of the graph's)")
    hd.add_argument("--use-raw", action="store_true", help="with --h5ad: read adata.raw.X")
    hd.add_argument("--layer", default=None, help="with --h5ad: read adata.layers[LAYER]")
    _add_run_options(hd)


def _run_heads(args) -> dict:
    from captum_genomics.workflows.head_ablation_pbmc import OUTPUT_FILES

    common = dict(ablation=args.ablation, mode=args.mode, n_permutations=args.n_permutations,
                  alpha=args.alpha, random_state=args.random_state, batch_size=args.batch_size,
                  top_k=args.top_k, plot=not args.no_plot, show_progress=args.show_progress,
                  overwrite=args.overwrite)
    if args.h5ad is None:
        if (args.model or args.weights or args.label_key or args.use_raw or args.layer
                or args.attention or args.k or args.graph_key != "distances"):
            raise CLIError("--model/--weights/--attention/--label-key/--graph-key/--k/"
                           "--use-raw/--layer need --h5ad.")
        _check_out(args, OUTPUT_FILES)
        from captum_genomics.workflows.head_ablation_pbmc import run_head_ablation_job

        return run_head_ablation_job(args.out, cells=args.cells, **common)
    if args.model is None or args.label_key is None:
        raise CLIError("--h5ad needs --model MODULE:FACTORY and --label-key KEY.")
    if args.cells != "all":
        raise CLIError("--cells selects cells of the default PBMC job; with --h5ad every cell "
                       "is used (subset your AnnData instead).")
    _check_out(args, OUTPUT_FILES)
    import numpy as np

    from captum_genomics.heads import UnsupportedAttentionError
    from captum_genomics.sc.inputs import anndata_matrix
    from captum_genomics.sc.neighbours import neighbour_inputs
    from captum_genomics.workflows.head_ablation_pbmc import run_head_ablation_on_data

    adata = _read_h5ad(args.h5ad)
    try:
        matrix = anndata_matrix(adata, args.layer, args.use_raw, "--h5ad")
    except ValueError as err:
        raise CLIError(str(err)) from err
    _check_finite(matrix, _matrix_name(args), args.h5ad)
    try:
        data = neighbour_inputs(adata, k=args.k, label_key=args.label_key,
                                use_raw=args.use_raw,
                                layer=args.layer, graph_key=args.graph_key)
    except ValueError as err:
        raise CLIError(f"--h5ad: {err}") from err
    model = load_model(args.model, args.weights)
    with torch.no_grad():
        try:
            out = model(data.neighbours[:2], data.cell_type[:2])
        except Exception as err:
            raise CLIError(
                f"--model: calling it as model(neighbours {tuple(data.neighbours[:2].shape)}, "
                f"cell_type {tuple(data.cell_type[:2].shape)}) failed: "
                f"{type(err).__name__}: {err}") from err
    if tuple(out.shape) != (2, data.observed.shape[1]):
        raise CLIError(f"--model returns shape {tuple(out.shape)} for 2 cells; expected "
                       f"(2, {data.observed.shape[1]}) (one prediction per gene).")
    inputs = (data.neighbours, data.cell_type)
    names = np.asarray(data.type_names, dtype=object)[data.cell_type.numpy()]
    try:
        return run_head_ablation_on_data(
            model, inputs, names, data.observed, args.out,
            layers=args.attention or "attention", gene_names=data.gene_names,
            reference_inputs=inputs if args.mode == "mean" else None,
            label=f"cells of {args.h5ad.name}", **common)
    except UnsupportedAttentionError as err:  # --attention names no attention module
        raise CLIError(f"--attention: {err}") from err


def _add_validate(sub) -> None:
    va = sub.add_parser(
        "validate",
        help="the correctness gate: check an attribution method on your model",
        description=(
            "Run every check an attribution method owes on your model (additivity, batch "
            "invariance, determinism, agreement with tangermeme and Captum, no side effects) "
            "and print each check's measured figure and bound. With a peer as --method "
            "(captum:DeepLiftShap, captum:DeepLift, captum:IntegratedGradients, "
            "tangermeme:deep_lift_shap, shap:DeepExplainer), check that tool's completeness "
            "on your model. Exit status: 0 when every check holds, 1 when one fails, 2 on a "
            "usage error (130 on Ctrl-C, 70 on an internal error)."
        ),
    )
    va.add_argument("--model", required=True, metavar="MODULE_OR_FILE:NAME",
                    help="importable module (or path to a .py file) and the nn.Module or the "
                         "function that builds it")
    va.add_argument("--weights", type=Path, default=None,
                    help="state dict saved with torch.save (loaded with weights_only=True)")
    va.add_argument("--method", default=None,
                    help="the method under test (default: ShuffleDeepLiftShap)")
    given = va.add_mutually_exclusive_group()
    given.add_argument("--input-length", type=_positive_int, default=None, metavar="L",
                       help="length of random one-hot input sequences")
    given.add_argument("--inputs", type=Path, default=None, metavar="FILE",
                       help="FASTA (sequence models), .npy or .h5ad (tabular) inputs")
    va.add_argument("--target", default=None, metavar="T",
                    help="output to explain: an index T of (B, T), 'T,P' for (B, T, P), or "
                         "'none' for a (B,) output (default: 0, or none for a (B,) output)")
    va.add_argument("--device", default="cpu", metavar="cpu|cuda",
                    help="where the checks run (default: cpu)")
    va.add_argument("--dtype", choices=("float64", "float32"), default="float64",
                    help="cast the model and inputs (default: float64)")
    va.add_argument("--json", type=Path, default=None, metavar="PATH",
                    help="write every check's figure, bound, verdict and timing as JSON")
    va.add_argument("--junit-xml", type=Path, default=None, metavar="PATH",
                    help="write a JUnit XML report (one test case per check)")
    va.add_argument("--baseline", type=Path, default=None, metavar="DIR",
                    help="compare attributions with the baseline stored in DIR")
    va.add_argument("--update-baseline", action="store_true",
                    help="(re)write the baseline in --baseline DIR")
    va.add_argument("--random-state", type=_seed, default=0,
                    help="seed of the random inputs and references (default: 0)")
    va.add_argument("--n-examples", type=_positive_int, default=None,
                    help="examples checked (default: 4; with --groups: every cell)")
    va.add_argument("--n-references", type=_positive_int, default=4,
                    help="references per example (default: 4)")
    heads = va.add_argument_group("HeadAblationExplainedVariance (with --inputs FILE.npy)")
    heads.add_argument("--attention", action="append", default=None, metavar="NAME",
                       help="attention layer(s) of the model to ablate (repeat for several)")
    heads.add_argument("--groups", type=Path, default=None, metavar="FILE",
                       help=".npy of N group labels (e.g. cell types)")
    heads.add_argument("--observed", type=Path, default=None, metavar="FILE",
                       help=".npy (N, genes) of the observed expression the model predicts")
    heads.add_argument("--forward-args", type=Path, default=None, metavar="FILE",
                       help=".npz of additional forward arguments with first axis N, in the "
                            "order arr_0, arr_1, ... (np.savez)")
    va.add_argument("--overwrite", action="store_true",
                    help="replace an existing --json/--junit-xml file that is not a report of "
                         "this command (an earlier report is always replaced)")
    _add_run_options(va, writes_folder=False)


def _add_genes(sub) -> None:
    ge = sub.add_parser(
        "genes",
        help="gene attributions per class of a cell classifier: tables, plots, AnnData",
        description=(
            "Explain a cell-type classifier gene by gene (Captum's IntegratedGradients by "
            "default), summarize per class (mean, mean |.|, std, bootstrap 95%% CI, share "
            "positive, rank), write the tables, plots, an .h5ad with the results and "
            "summary.json. Default: the shipped PBMC classifier on scanpy's pbmc68k_reduced "
            "(.raw, labels 'bulk_labels')."),
    )
    ge.add_argument("--out", type=Path, default=Path("captum_genomics_genes_out"),
                    help="output folder (default: ./captum_genomics_genes_out/)")
    ge.add_argument("--h5ad", type=Path, default=None, help="your cells (.h5ad)")
    ge.add_argument("--model", default=None,
                    help="your classifier, MODULE_OR_FILE:NAME (an nn.Module or a function "
                         "that builds one); needs --h5ad")
    ge.add_argument("--weights", default=None, help="a state_dict file for --model")
    ge.add_argument("--labels-key", default=None,
                    help="the .obs column with each cell's class (needed for --target label)")
    ge.add_argument("--class-names", nargs="+", default=None,
                    help="names of the model's output classes, in order")
    matrix = ge.add_mutually_exclusive_group()
    matrix.add_argument("--layer", default=None, help="read this .layers entry of --h5ad")
    matrix.add_argument("--use-raw", action="store_true", help="read .raw.X of --h5ad")
    ge.add_argument("--target", choices=("predicted", "label", "all"), default="predicted",
                    help="the class each cell is explained for (default: predicted)")
    ge.add_argument("--method", choices=("ig", "deeplift", "input_x_gradient"), default="ig",
                    help="attribution method (default: ig, Captum's IntegratedGradients)")
    ge.add_argument("--baseline", choices=("zeros", "mean", "shuffle"), default="zeros",
                    help="baseline cells (default: zeros)")
    ge.add_argument("--n-steps", type=_positive_int, default=50,
                    help="integration steps of IG (default: 50)")
    ge.add_argument("--n-bootstrap", type=_positive_int, default=1000,
                    help="bootstrap resamples of the per-class CI (default: 1000)")
    ge.add_argument("--top-k", type=_positive_int, default=10,
                    help="top genes per class and sign in top_genes.csv (default: 10)")
    ge.add_argument("--batch-size", type=_positive_int, default=64,
                    help="cells per batch (default: 64)")
    ge.add_argument("--random-state", type=_seed, default=0,
                    help="seed of the bootstrap and shuffle baseline (default: 0)")
    ge.add_argument("--scvi-compatible", action="store_true",
                    help="also write scvi-tools' table (predict(ig_interpretability=True))")
    ge.add_argument("--no-plot", action="store_true", help="do not write the PNGs")
    ge.add_argument("--show-progress", "--progress", dest="show_progress",
                    action="store_true", help="show progress bars")
    _add_run_options(ge)


def _run_genes(args) -> dict:
    from captum_genomics.workflows.genes_pbmc import OUTPUT_FILES, run_genes_job

    if args.h5ad is None and (args.model or args.weights or args.labels_key or args.layer
                              or args.use_raw):
        raise CLIError("--model/--weights/--labels-key/--layer/--use-raw need --h5ad.")
    if args.h5ad is not None and args.model is None:
        raise CLIError("--h5ad needs --model MODULE_OR_FILE:NAME (your classifier).")
    _check_out(args, OUTPUT_FILES)
    model = adata = None
    if args.h5ad is not None:
        adata = _read_h5ad(args.h5ad)
        model = load_model(args.model, args.weights)
    return run_genes_job(
        args.out, model=model, adata=adata, target=args.target, method=args.method,
        baseline=args.baseline, n_steps=args.n_steps, labels_key=args.labels_key,
        class_names=args.class_names, layer=args.layer, use_raw=args.use_raw or None,
        n_bootstrap=args.n_bootstrap, top_k=args.top_k, batch_size=args.batch_size,
        random_state=args.random_state, scvi_compatible=args.scvi_compatible,
        plot=not args.no_plot, show_progress=args.show_progress, overwrite=args.overwrite)


def _add_nodes(sub) -> None:
    no = sub.add_parser(
        "nodes",
        help="held-out node importances (GO terms) per class, with CIs and q-values",
        description=(
            "Probe every node of a layer (a group of its units, e.g. a GO term) for every "
            "class: out-of-fold AUROC of a logistic-regression probe with a bootstrap 95%% CI, "
            "permutation p-value and BH q-value, beside width-matched random nodes and an "
            "untrained copy of the model; parent vs children; a gene perturbation scored by "
            "the probes. Writes node_table.csv, parent_vs_children.csv, perturbation.csv, "
            "node_heatmap.png and summary.json. Default: the shipped GO model on the held-out "
            "cells of scanpy's pbmc68k_reduced (.raw, labels 'bulk_labels')."),
    )
    no.add_argument("--out", type=Path, default=Path("captum_genomics_nodes_out"),
                    help="output folder (default: ./captum_genomics_nodes_out/)")
    no.add_argument("--h5ad", type=Path, default=None, help="your cells (.h5ad); needs --model")
    no.add_argument("--model", default=None, metavar="MODULE_OR_FILE:NAME",
                    help="your classifier (an nn.Module or a function that builds one); needs "
                         "--h5ad, --layer, --nodes and --labels-key")
    no.add_argument("--weights", default=None, help="a state_dict file for --model")
    no.add_argument("--layer", default=None, metavar="NAME",
                    help="dotted name of the node layer in --model (default: 'terms' of the "
                         "shipped model)")
    no.add_argument("--nodes", type=Path, default=None, metavar="FILE",
                    help="node -> unit indices of --layer's output: JSON {node: [i, ...]} or "
                         "TSV lines 'node<TAB>i,j,...' (a node may repeat)")
    no.add_argument("--parents", type=Path, default=None, metavar="FILE",
                    help="JSON {parent: [child, ...]} over --nodes, for parent_vs_children.csv "
                         "(default: the GO hierarchy of the shipped model)")
    no.add_argument("--labels-key", default=None,
                    help="the .obs column with each cell's class (default: 'bulk_labels' of "
                         "the default data)")
    no.add_argument("--use-raw", action="store_true", help="read .raw.X of --h5ad")
    no.add_argument("--cells", choices=("held_out", "all"), default=None,
                    help="held_out (default for the shipped model): the validation and test "
                         "cells of its split; all: every cell (the only choice with --model)")
    no.add_argument("--n-folds", type=_positive_int, default=3,
                    help="stratified folds of the probes; classes with fewer cells are dropped "
                         "(default: 3)")
    no.add_argument("--n-permutations", type=_nonnegative_int, default=99,
                    help="label permutations of the p-values, p >= 1/(1+N) (default: 99)")
    no.add_argument("--n-bootstrap", type=_positive_int, default=1000,
                    help="bootstrap resamples of the CIs (default: 1000)")
    no.add_argument("--n-random", type=_nonnegative_int, default=20,
                    help="width-matched random nodes per width (default: 20)")
    no.add_argument("--perturb", nargs="+", default=None, metavar="GENE",
                    help="gene(s) set together to --perturb-value in every cell, scored by "
                         "the fitted probes (writes perturbation.csv)")
    no.add_argument("--perturb-value", choices=("zero", "mean"), default="zero",
                    help="value of the perturbed genes (default: zero)")
    no.add_argument("--random-state", type=_seed, default=0,
                    help="seed of folds, permutations, resamples, random nodes (default: 0)")
    no.add_argument("--threads", type=_positive_int, default=1,
                    help="torch threads (default: 1; the many small probe fits run slower "
                         "with more)")
    no.add_argument("--no-plot", action="store_true", help="do not write node_heatmap.png")
    no.add_argument("--show-progress", "--progress", dest="show_progress",
                    action="store_true", help="show a progress bar over the nodes")
    _add_run_options(no)


def _nonnegative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return value


def _read_nodes(path: Path) -> dict:
    """``--nodes``: JSON ``{node: [unit, ...]}`` or TSV ``node<TAB>unit,unit,...`` lines."""
    import json

    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CLIError(f"--nodes: no such file {os.fspath(path)!r}.") from None
    except (OSError, UnicodeDecodeError) as err:
        raise CLIError(f"--nodes: cannot read {os.fspath(path)!r}: {err}") from err
    if text.lstrip().startswith("{"):
        try:
            raw = json.loads(text)
            return {str(k): [int(i) for i in v] for k, v in raw.items()}
        except (ValueError, TypeError, AttributeError) as err:
            raise CLIError(f"--nodes: {os.fspath(path)!r} is not a JSON object of node -> list "
                           f"of unit indices: {err}") from err
    nodes: dict = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.rstrip("\n").split("\t")
        units = parts[1].replace(",", " ").split() if len(parts) == 2 else None
        try:
            values = [int(u) for u in units] if units else None
        except ValueError:
            values = None
        if values is None:
            if number == 1 and not nodes:  # a header line
                continue
            raise CLIError(f"--nodes: line {number} of {os.fspath(path)!r} is not "
                           "'node<TAB>unit,unit,...'.")
        nodes.setdefault(parts[0], []).extend(values)
    if not nodes:
        raise CLIError(f"--nodes: {os.fspath(path)!r} names no node.")
    return nodes


def _read_parents(path: Path) -> dict:
    import json

    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return {str(k): [str(c) for c in v] for k, v in raw.items()}
    except FileNotFoundError:
        raise CLIError(f"--parents: no such file {os.fspath(path)!r}.") from None
    except (OSError, ValueError, TypeError, AttributeError) as err:
        raise CLIError(f"--parents: {os.fspath(path)!r} is not a JSON object of parent -> list "
                       f"of children: {err}") from err


def _run_nodes(args) -> dict:
    from captum_genomics.workflows.nodes_pbmc import OUTPUT_FILES, run_nodes_job

    own = [args.model, args.weights, args.layer, args.nodes, args.use_raw]
    if args.h5ad is None and any(own):
        raise CLIError("--model/--weights/--layer/--nodes/--use-raw need --h5ad (your cells).")
    if args.h5ad is not None:
        missing = [o for o, v in (("--model", args.model), ("--layer", args.layer),
                                  ("--nodes", args.nodes), ("--labels-key", args.labels_key))
                   if v is None]
        if missing:
            raise CLIError(f"--h5ad needs {', '.join(missing)} (your classifier, its node "
                           "layer, the nodes' unit indices and the obs column of the classes).")
        if args.cells == "held_out":
            raise CLIError("--cells held_out needs the shipped model's split; with --model give "
                           "cells it did not train on (--cells all).")
    _check_out(args, OUTPUT_FILES)
    model = adata = nodes = parents = None
    if args.h5ad is not None:
        adata = _read_h5ad(args.h5ad)
        model = load_model(args.model, args.weights)
        nodes = _read_nodes(args.nodes)
    if args.parents is not None:
        parents = _read_parents(args.parents)
    if args.perturb:
        if adata is None:
            from captum_genomics.zoo.go_pbmc import load_go_pbmc_metadata

            genes = load_go_pbmc_metadata()["genes"]
        else:
            genes = adata.raw.var_names if args.use_raw and adata.raw is not None \
                else adata.var_names
        known = {str(g) for g in genes}
        for gene in args.perturb:
            if gene not in known:
                raise CLIError(f"--perturb: {gene!r} is not a gene of the data "
                               f"({len(known)} genes).")
        if len(set(args.perturb)) != len(args.perturb):
            raise CLIError("--perturb names a gene more than once.")
    return run_nodes_job(
        args.out, model=model, adata=adata, layer=args.layer, nodes=nodes, parents=parents,
        labels_key=args.labels_key, cells=args.cells, n_folds=args.n_folds,
        n_permutations=args.n_permutations, n_bootstrap=args.n_bootstrap,
        n_random=args.n_random, perturb=args.perturb, perturb_value=args.perturb_value,
        random_state=args.random_state, use_raw=args.use_raw or None, threads=args.threads,
        plot=not args.no_plot, show_progress=args.show_progress, overwrite=args.overwrite)


def _npy(path: Path, option: str):
    import numpy as np

    try:
        return np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise CLIError(f"{option}: no such file {os.fspath(path)!r}.") from None
    except Exception as err:
        raise CLIError(f"{option}: cannot read {os.fspath(path)!r} as a numpy file: {err}") \
            from err


def _head_options(args) -> dict:
    """``--attention/--groups/--observed/--forward-args`` as the head-ablation suite's options."""
    given = [args.attention, args.groups, args.observed, args.forward_args]
    if all(v is None for v in given):
        return {}
    if args.attention is None or args.groups is None or args.observed is None:
        raise CLIError("--attention, --groups and --observed go together (the head-ablation "
                       "checks need all three).")
    options = {"attention": args.attention if len(args.attention) > 1 else args.attention[0],
               "groups": torch.as_tensor(_npy(args.groups, "--groups")),
               "observed": torch.as_tensor(_npy(args.observed, "--observed"))}
    if args.forward_args is not None:
        arrays = _npy(args.forward_args, "--forward-args")
        options["additional_forward_args"] = tuple(
            torch.as_tensor(arrays[k]) for k in sorted(arrays.files, key=lambda k: (len(k), k)))
    return options


def _run_validate(args) -> int:
    from captum_genomics.workflows.validate import ValidationUsageError, run_validate

    options = _head_options(args)
    method = args.method
    if options and method is None:
        method = "HeadAblationExplainedVariance"
    n_examples = args.n_examples
    if n_examples is None:
        n_examples = len(options["groups"]) if options else 4
    try:
        report = run_validate(
            args.model, weights=args.weights, method=method, options=options,
            input_length=args.input_length, inputs=args.inputs, target=args.target,
            device=args.device, dtype=args.dtype, json_path=args.json,
            junit_path=args.junit_xml, baseline=args.baseline,
            update_baseline=args.update_baseline, random_state=args.random_state,
            n_examples=n_examples, n_references=args.n_references, verbose=True,
            overwrite=args.overwrite)
    except ValidationUsageError as err:
        raise CLIError(" ".join(str(err).splitlines())) from err
    return 0 if report.passed else 1


def _read_h5ad(path) -> "anndata.AnnData":  # noqa: F821 - optional dependency
    """Read ``--h5ad`` with errors that name the option (:class:`CLIError`)."""
    try:
        import anndata
    except ImportError:
        raise CLIError('--h5ad needs anndata: pip install "captum-genomics[sc]".') from None
    try:
        return anndata.read_h5ad(path)
    except FileNotFoundError:
        raise CLIError(f"--h5ad: no such file {os.fspath(path)!r}.") from None
    except Exception as err:
        raise CLIError(f"--h5ad: cannot read {os.fspath(path)!r}: {err}") from err


def load_model(spec: str, weights: str | os.PathLike | None = None) -> torch.nn.Module:
    """Build a user model from ``MODULE:FACTORY`` and load its weights.

    The spec and weight files accepted, and the model returned (on the CPU,
    in eval mode), are those of
    :func:`captum_genomics._utils.models.load_user_model`, which the
    validation suite's ``--model``/``--weights`` use too.

    Raises
    ------
    CLIError
        With ``load_user_model``'s one-line message, for the CLI to print.
    """
    from captum_genomics._utils.models import ModelSpecError, load_user_model

    try:
        return load_user_model(spec, weights)
    except ModelSpecError as err:
        raise CLIError(str(err)) from err


def _run_attribute_genome(args) -> dict:
    from captum_genomics.workflows.genome_scale import run_genome_job

    if args.fasta is not None:
        raise CLIError("--fasta cannot be combined with --bed/--genome; give one or the other.")
    if args.bed is None or args.genome is None:
        missing = "--genome" if args.genome is None else "--bed"
        raise CLIError(f"--bed and --genome go together; {missing} is missing.")
    if args.motif is not None:
        raise CLIError("--motif is not available with --bed/--genome.")
    model = load_model(args.model, args.weights)
    return run_genome_job(
        args.out, model, args.bed, args.genome, args.width, target=args.target,
        n_references=args.n_references, random_state=args.random_state,
        batch_size=args.batch_size, chunk_size=args.chunk_size, n_examples=args.n_examples,
        show_progress=args.show_progress, overwrite=args.overwrite)


def _run_attribute(args) -> dict:
    if args.bed is not None or args.genome is not None:
        return _run_attribute_genome(args)
    if args.fasta is None:
        raise CLIError("give --fasta FILE, or --bed FILE with --genome FILE.")
    from captum_genomics.seq.io import one_hot_encode
    from captum_genomics.seq.motifs import load_jaspar
    from captum_genomics.workflows.deeplift_ctcf import (
        OUTPUT_FILES,
        run_attribution_job,
        sequence_composition,
    )

    _check_out(args, OUTPUT_FILES)
    model = load_model(args.model, args.weights)
    names, seqs = _read_same_length_fasta(args.fasta, args.n_examples)
    composition = sequence_composition(seqs)
    if composition["n_all_n"] == len(seqs):
        raise CLIError(
            f"--fasta: all {len(seqs)} record(s) used from {os.fspath(args.fasta)!r} are all "
            "N (no A, C, G or T): there is nothing to attribute.")
    one_hot = one_hot_encode(seqs)
    motif = None
    if args.motif is not None:
        try:
            motifs = load_jaspar(args.motif)
        except (OSError, ValueError) as err:
            raise CLIError(f"--motif: {err}") from err
        if len(motifs) != 1:
            raise CLIError(
                f"--motif: {os.fspath(args.motif)!r} holds {len(motifs)} motifs; "
                "give a file with exactly one."
            )
        motif = motifs[0]
        if motif.width > one_hot.shape[-1]:
            raise CLIError(
                f"--motif: the motif ({motif.width} bp) is longer than the sequences "
                f"({one_hot.shape[-1]} bp)."
            )
    with torch.no_grad():
        try:
            out = model(one_hot[:1])
        except Exception as err:
            raise CLIError(f"--model: calling it on one-hot sequences of shape "
                           f"{tuple(one_hot[:1].shape)} failed: {type(err).__name__}: "
                           f"{err}") from err
    if not isinstance(out, torch.Tensor):
        raise CLIError(f"--model returns {type(out).__name__}; expected a tensor (N, T).")
    n_out = out.shape[1] if out.ndim > 1 else 1
    if not -n_out <= args.target < n_out:
        raise CLIError(f"--target {args.target} is out of range: the model has {n_out} output(s).")
    return run_attribution_job(
        model, one_hot, args.out, names=names, target=args.target,
        n_references=args.n_references, random_state=args.random_state,
        batch_size=args.batch_size, motif=motif, plot=not args.no_plot,
        show_progress=args.show_progress, label=f"sequences of {args.fasta.name}",
        overwrite=args.overwrite, composition=composition,
    )


def _run_deeplift(args) -> dict:
    from captum_genomics.workflows.deeplift_ctcf import OUTPUT_FILES, run_ctcf_job

    _check_out(args, OUTPUT_FILES)
    return run_ctcf_job(
        args.out, model=args.zoo_model,
        n_references=args.n_references, random_state=args.random_state,
        n_examples=args.n_examples, batch_size=args.batch_size,
        plot=not args.no_plot, show_progress=args.show_progress, overwrite=args.overwrite,
    )


def _strict_status(args, summary) -> int:
    """``--strict``: 1 (and a line on stderr) when a pair is not additive, else 0."""
    from captum_genomics.workflows.deeplift_ctcf import nonadditive_pairs

    bad = nonadditive_pairs(summary) if isinstance(summary, dict) else 0
    if not (args.strict and bad):
        return EXIT_OK
    total = summary["n_pairs"] + summary.get("controls", {}).get("n_pairs", 0)
    print(f"captum-genomics {args.command}: --strict: {bad} of {total} example-reference "
          f"pairs are not additive (|delta| > {summary['delta_threshold']:g}); the files "
          f"are in {os.fspath(args.out)}/.", file=sys.stderr)
    return EXIT_FAILED


def _dispatch(args) -> int:
    if args.command == "validate":
        return _run_validate(args)
    if args.command == "attribute":
        return _strict_status(args, _run_attribute(args))
    if args.command == "fastshap":
        _run_fastshap(args)
        return EXIT_OK
    if args.command == "heads":
        _run_heads(args)
        return EXIT_OK
    if args.command == "genes":
        _run_genes(args)
        return EXIT_OK
    if args.command == "nodes":
        _run_nodes(args)
        return EXIT_OK
    if args.command == "compare":
        _run_compare(args)
        return EXIT_OK
    if args.command == "scan":
        from captum_genomics.workflows.genome_scale import run_demo_genome_job

        run_demo_genome_job(args.out, step=args.step, n_references=args.n_references,
                            random_state=args.random_state, batch_size=args.batch_size,
                            chunk_size=args.chunk_size, top_k=args.top_k,
                            show_progress=args.show_progress, overwrite=args.overwrite)
        return EXIT_OK
    return _strict_status(args, _run_deeplift(args))


def _one_line(text: str) -> str:
    return " ".join(part.strip() for part in str(text).splitlines() if part.strip())


def _message(err: BaseException) -> str:
    """A user error as one line; OSError as 'reason: path'."""
    if isinstance(err, OSError) and err.strerror and err.filename is not None:
        text = f"{err.strerror}: {os.fspath(err.filename)!r}"
        if err.filename2 is not None:
            text += f" -> {os.fspath(err.filename2)!r}"
        return text
    return _one_line(err) or type(err).__name__


def _user_errors() -> tuple[type[BaseException], ...]:
    """The exceptions reported as user errors (exit status 2)."""
    from captum_genomics.deeplift.rules.base import UnsupportedOperationError

    return (CLIError, ValueError, TypeError, OSError, UnsupportedOperationError)


def _show_warning(prog: str):
    """``warnings.showwarning`` printing ``PROG: warning: Category: message`` on one line."""
    def show(message, category, filename, lineno, file=None, line=None):
        stream = sys.stderr if file is None else file
        try:
            stream.write(f"{prog}: warning: {category.__name__}: {_one_line(message)}\n")
        except OSError:  # pragma: no cover - stderr closed
            pass
    return show


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``captum-genomics``.

    Parameters
    ----------
    argv
        Arguments without the program name. Default ``sys.argv[1:]``.

    Returns
    -------
    int
        :data:`EXIT_OK` (0) on success; :data:`EXIT_FAILED` (1) when a
        ``validate`` check fails, or with ``--strict`` when an
        example-reference pair is not additive.

    Raises
    ------
    SystemExit
        With one line ``captum-genomics SUBCOMMAND: ...`` on stderr and no
        traceback: status :data:`EXIT_USAGE` (2) for a user error (a bad
        argument, an unreadable or invalid input file, a refused output
        folder, argparse's own errors included), :data:`EXIT_INTERRUPTED`
        (130) for Ctrl-C, :data:`EXIT_INTERNAL` (70) for any other exception
        (probably a bug). With ``--debug`` the exception propagates instead,
        with its traceback. In every case nothing is left under a final
        output name: a job's files appear only when it succeeds.
    """
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help", "--version")):
        argv = ["deeplift", *argv]
    args = parser.parse_args(argv)
    prog = f"captum-genomics {args.command}"
    debug = getattr(args, "debug", False)
    try:
        with warnings.catch_warnings():
            if not debug:
                warnings.showwarning = _show_warning(prog)
            return _dispatch(args)
    except KeyboardInterrupt as err:
        if debug:
            raise
        from captum_genomics.genome_scale import RunInterrupted

        if not isinstance(err, RunInterrupted):  # RunInterrupted: the job said how to resume
            print(f"{prog}: interrupted; no output was written (a job's files appear only "
                  "when it completes).", file=sys.stderr)
        raise SystemExit(EXIT_INTERRUPTED) from None
    except Exception as err:
        if debug:
            raise
        if isinstance(err, _user_errors()):
            hint = "" if isinstance(err, (CLIError, OSError)) else " (--debug for the traceback)"
            print(f"{prog}: error: {_message(err)}{hint}", file=sys.stderr)
            raise SystemExit(EXIT_USAGE) from None
        first = _one_line(err)[:300]
        print(f"{prog}: internal error: {type(err).__name__}{': ' + first if first else ''}; "
              "this is probably a bug in captum-genomics: rerun with --debug for the "
              "traceback and report it.", file=sys.stderr)
        raise SystemExit(EXIT_INTERNAL) from None


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
