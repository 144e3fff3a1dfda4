"""The tables of an attribution-method comparison study, as a dataclass with pandas views.

:class:`ComparisonResult` holds what a comparison study computes: a tidy
table of per-method and per-example metrics (speed, convergence delta, AUROC
/ AUPR against planted ground truth, PWM cosine, off-simplex angle), a tidy
table of pairwise agreement between methods, the optional model-parameter
randomisation table (Adebayo et al. 2018, "Sanity checks for saliency maps")
and the attributions themselves. :meth:`ComparisonResult.summary` gives one
row per method; :meth:`ComparisonResult.save` writes CSV tables, PNG figures
and a self-contained HTML report.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from torch import Tensor

__all__ = [
    "AGREEMENT_COLUMNS",
    "FRAME_COLUMNS",
    "PLOT_KINDS",
    "RANDOMIZATION_COLUMNS",
    "SUMMARY_COLUMNS",
    "ComparisonResult",
]

FRAME_COLUMNS = ("method", "example", "metric", "value")
"""Columns of :attr:`ComparisonResult.frame`."""
AGREEMENT_COLUMNS = ("method_a", "method_b", "example", "metric", "value")
"""Columns of :attr:`ComparisonResult.agreement`."""
RANDOMIZATION_COLUMNS = ("method", "step", "layer", "example", "spearman")
"""Columns of :attr:`ComparisonResult.randomization`."""
SUMMARY_COLUMNS = ("seconds", "examples_per_s", "first_call_seconds", "convergence_delta",
                   "convergence_delta_max", "auroc", "auroc_mean", "aupr", "pwm_cosine",
                   "off_simplex_angle", "randomization_spearman", "flagged")
"""Columns of :meth:`ComparisonResult.summary`, always all present (NaN when not computed)."""

# summary column -> (frame metric, aggregate)
_SUMMARY_FROM_FRAME = {
    "seconds": ("seconds", "median"),
    "examples_per_s": ("examples_per_s", "median"),
    "first_call_seconds": ("first_call_seconds", "median"),
    "convergence_delta": ("convergence_delta", "median"),
    "convergence_delta_max": ("convergence_delta", "max"),
    "auroc": ("auroc", "median"),
    "auroc_mean": ("auroc", "mean"),
    "aupr": ("aupr", "median"),
    "pwm_cosine": ("pwm_cosine", "median"),
    "off_simplex_angle": ("off_simplex_angle", "median"),
}

PLOT_KINDS = ("speed_accuracy", "auroc", "agreement", "logos", "randomization")
"""What :meth:`ComparisonResult.plot` draws (``kind=``)."""


def _check_columns(table: Any, name: str, expected: tuple[str, ...]) -> None:
    import pandas as pd

    if not isinstance(table, pd.DataFrame):
        raise TypeError(f"ComparisonResult.{name} must be a pandas DataFrame, "
                        f"got {type(table).__name__}.")
    missing = [c for c in expected if c not in table.columns]
    if missing:
        raise ValueError(f"ComparisonResult.{name} must have columns {list(expected)}; "
                         f"missing {missing} (got {list(map(str, table.columns))}).")


@dataclass
class ComparisonResult:
    """The tables of a comparison of attribution methods on ``N`` sequences of length ``L``.

    Attributes
    ----------
    frame : pandas.DataFrame
        Tidy metrics, columns ``method`` (str), ``example`` (pandas
        ``"Int64"``; ``<NA>`` for a per-method metric), ``metric`` (str),
        ``value`` (float). Per-method metrics: ``seconds`` (wall time of the
        attribution calls), ``examples_per_s``. Per-example metrics:
        ``convergence_delta``, ``auroc``, ``aupr``, ``pwm_cosine``,
        ``off_simplex_angle`` (degrees); each only where defined. Stored as a
        copy with ``example`` cast to ``"Int64"`` and ``value`` to float64.
    agreement : pandas.DataFrame
        Tidy pairwise agreement, columns ``method_a``, ``method_b``,
        ``example``, ``metric`` (``"spearman"`` or ``"cosine"``), ``value``;
        one order of each pair is enough.
    randomization : pandas.DataFrame or None
        Columns ``method``, ``step`` (int, 0 = trained model), ``layer`` (the
        last layer randomised, ``""`` at step 0), ``example``, ``spearman``
        (attribution at the observed base vs step 0). None when not run.
    attributions : dict of str to Tensor
        Method -> shape=(N, 4, L) float32 CPU attributions; keys are methods.
    inputs : Tensor
        Shape=(N, 4, L) one-hot sequences, ACGT rows.
    ground_truth : GroundTruth, Tensor or None
        Any object with ``.mask`` (shape=(N, L), bool) and optionally
        ``.pwm`` (shape=(N, 4, L), float, centred PWM), or a bare bool mask
        Tensor of shape=(N, L); None without ground truth.
    methods : list of str
        The methods, in display order (unique).
    metadata : dict
        Free-form facts about the run (model name, N, L, target,
        random_state, versions, CPU, threads); ``metadata["notes"]`` (list
        of str) is shown in the report. Default empty.
    flagged : list of str
        Methods flagged by the randomisation check. Default empty.

    Raises
    ------
    TypeError
        If a table is not a DataFrame, or ``attributions`` is not a dict.
    ValueError
        If a table lacks a column, ``methods`` is empty or repeats a name,
        a table, ``attributions`` or ``flagged`` names a method not in
        ``methods``, or an attribution's shape differs from ``inputs``.
    """

    frame: Any
    agreement: Any
    randomization: Any | None
    attributions: dict[str, Tensor]
    inputs: Tensor
    ground_truth: Any | None
    methods: list[str]
    metadata: dict = field(default_factory=dict)
    flagged: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.methods = [str(m) for m in self.methods]
        if not self.methods:
            raise ValueError("ComparisonResult.methods must name at least one method, got [].")
        if len(set(self.methods)) != len(self.methods):
            raise ValueError(f"ComparisonResult.methods must be unique, got {self.methods}.")
        known = set(self.methods)
        _check_columns(self.frame, "frame", FRAME_COLUMNS)
        _check_columns(self.agreement, "agreement", AGREEMENT_COLUMNS)
        if self.randomization is not None:
            _check_columns(self.randomization, "randomization", RANDOMIZATION_COLUMNS)
        frame = self.frame.copy()
        frame["example"] = frame["example"].astype("Int64")
        frame["value"] = frame["value"].astype(np.float64)
        self.frame = frame
        checks = [("frame", "method", self.frame), ("agreement", "method_a", self.agreement),
                  ("agreement", "method_b", self.agreement)]
        if self.randomization is not None:
            checks.append(("randomization", "method", self.randomization))
        for name, column, table in checks:
            unknown = sorted(set(map(str, table[column].unique())) - known)
            if unknown:
                raise ValueError(f"ComparisonResult.{name}[{column!r}] names methods not in "
                                 f"`methods` {self.methods}: {unknown}.")
        if not isinstance(self.attributions, dict):
            raise TypeError("ComparisonResult.attributions must be a dict method -> Tensor, "
                            f"got {type(self.attributions).__name__}.")
        unknown = sorted(set(self.attributions) - known)
        if unknown:
            raise ValueError(f"ComparisonResult.attributions has methods not in `methods` "
                             f"{self.methods}: {unknown}.")
        shape = tuple(self.inputs.shape)
        for method, attr in self.attributions.items():
            if tuple(attr.shape) != shape:
                raise ValueError(f"ComparisonResult.attributions[{method!r}] must have the "
                                 f"shape of `inputs` {shape}, got {tuple(attr.shape)}.")
        self.flagged = [str(m) for m in self.flagged]
        unknown = sorted(set(self.flagged) - known)
        if unknown:
            raise ValueError(f"ComparisonResult.flagged names methods not in `methods` "
                             f"{self.methods}: {unknown}.")
        if self.metadata is None:
            self.metadata = {}

    # -- tables
    def to_frame(self):
        """The tidy metrics table (a copy of :attr:`frame`).

        Returns
        -------
        pandas.DataFrame
            Columns ``method, example, metric, value``; ``example`` is
            ``"Int64"`` with ``<NA>`` for per-method metrics.
        """
        return self.frame.copy()

    def summary(self):
        """One row per method: speed, medians of the per-example metrics, the flag.

        Aggregates ignore NaN values. A column whose metric was not computed
        (or not for this method) is NaN, so the table always has the columns
        of :data:`SUMMARY_COLUMNS`.

        Returns
        -------
        pandas.DataFrame
            Index ``method`` (in :attr:`methods` order). float64 columns:
            ``seconds``, ``examples_per_s``, ``first_call_seconds`` (the
            per-method values; the median if repeated), ``convergence_delta``
            (median |delta|), ``convergence_delta_max`` (max), ``auroc``, ``aupr``,
            ``pwm_cosine``, ``off_simplex_angle`` (medians over examples),
            ``auroc_mean`` (mean AUROC), ``randomization_spearman`` (median
            over examples of the Spearman correlation at the method's last
            randomisation step); bool column ``flagged``.
        """
        import pandas as pd

        out = pd.DataFrame(np.nan, index=pd.Index(self.methods, name="method"),
                           columns=list(SUMMARY_COLUMNS[:-1]), dtype=np.float64)
        frame = self.frame.dropna(subset=["value"])
        grouped = frame.groupby(["metric", "method"])["value"]
        stats = {"median": grouped.median(), "mean": grouped.mean(), "max": grouped.max()}
        for column, (metric, how) in _SUMMARY_FROM_FRAME.items():
            series = stats[how]
            if metric in series.index.get_level_values(0):
                values = series.loc[metric]
                values = values[values.index.isin(self.methods)]
                out.loc[values.index, column] = values.to_numpy(np.float64)
        if self.randomization is not None and len(self.randomization):
            rand = self.randomization.dropna(subset=["spearman"])
            for method, rows in rand.groupby("method"):
                last = rows[rows["step"] == rows["step"].max()]
                out.loc[str(method), "randomization_spearman"] = float(last["spearman"].median())
        out["flagged"] = [m in self.flagged for m in self.methods]
        return out

    def agreement_matrix(self, metric: str = "spearman"):
        """Methods x methods matrix of the median agreement over examples.

        Parameters
        ----------
        metric : str
            An agreement metric, ``"spearman"`` or ``"cosine"`` (or any other
            value of ``agreement["metric"]``). Default ``"spearman"``.

        Returns
        -------
        pandas.DataFrame
            Shape=(M, M) float64, index and columns :attr:`methods`;
            symmetric (rows for either order of a pair are pooled), diagonal
            1.0, NaN for pairs without values.

        Raises
        ------
        ValueError
            If ``metric`` is neither ``"spearman"``, ``"cosine"`` nor a
            metric of the agreement table.
        """
        import pandas as pd

        present = set(map(str, self.agreement["metric"].unique()))
        if metric not in present | {"spearman", "cosine"}:
            raise ValueError(f"`metric` must be one of {sorted(present | {'spearman', 'cosine'})}"
                             f", got {metric!r}.")
        m = len(self.methods)
        values = np.full((m, m), np.nan)
        np.fill_diagonal(values, 1.0)
        rows = self.agreement[(self.agreement["metric"] == metric)
                              & self.agreement["value"].notna()]
        position = {name: i for i, name in enumerate(self.methods)}
        pooled: dict[tuple[int, int], list[float]] = {}
        for a, b, v in zip(rows["method_a"], rows["method_b"], rows["value"]):
            i, j = position[str(a)], position[str(b)]
            if i == j:
                continue
            pooled.setdefault((min(i, j), max(i, j)), []).append(float(v))
        for (i, j), vals in pooled.items():
            values[i, j] = values[j, i] = float(np.median(vals))
        index = pd.Index(self.methods, name="method")
        return pd.DataFrame(values, index=index, columns=pd.Index(self.methods, name="method"))

    # -- figures
    def plot(self, kind: str = "speed_accuracy", **kwargs):
        """Draw one of the comparison figures.

        Parameters
        ----------
        kind : str
            ``"speed_accuracy"`` (:func:`~captum_genomics.comparison.plots.plot_speed_accuracy`),
            ``"auroc"`` (:func:`~captum_genomics.comparison.plots.plot_auroc_distributions`),
            ``"agreement"`` (:func:`~captum_genomics.comparison.plots.plot_agreement_heatmap`),
            ``"logos"`` (:func:`~captum_genomics.comparison.plots.plot_example_logos`) or
            ``"randomization"`` (:func:`~captum_genomics.comparison.plots.plot_randomization`).
            Default ``"speed_accuracy"``.
        **kwargs
            Passed to the plotting function (e.g. ``metric=``, ``example=``).

        Returns
        -------
        matplotlib.figure.Figure

        Raises
        ------
        ValueError
            If ``kind`` is unknown.
        ImportError
            If matplotlib (or, for logos, logomaker) is missing.
        """
        from captum_genomics.comparison import plots

        functions = {
            "speed_accuracy": plots.plot_speed_accuracy,
            "auroc": plots.plot_auroc_distributions,
            "agreement": plots.plot_agreement_heatmap,
            "logos": plots.plot_example_logos,
            "randomization": plots.plot_randomization,
        }
        if kind not in functions:
            raise ValueError(f"`kind` must be one of {list(functions)}, got {kind!r}.")
        return functions[kind](self, **kwargs)

    # -- files
    def save(self, folder: str | os.PathLike, overwrite: bool = False,
             figures: bool = True, prefix: str = "") -> list[Path]:
        """Write the tables, the figures and a self-contained HTML report into ``folder``.

        Files: ``comparison.csv`` (:attr:`frame`, tidy), ``summary.csv``
        (:meth:`summary`, with the ``method`` index), ``agreement.csv``
        (:attr:`agreement`, tidy), ``randomization.csv`` (when
        :attr:`randomization` is not None), the PNG figures of
        :func:`captum_genomics.comparison.report.render_figures` (named by
        :func:`~captum_genomics.comparison.report.figure_names`) and
        ``report.html`` (:func:`captum_genomics.comparison.report.render_html`).
        Existing files are checked first, everything is computed before the
        first file is written, and each file is written atomically (a
        temporary file, then a rename).

        Parameters
        ----------
        folder : str or PathLike
            Created with its parents when missing.
        overwrite : bool
            Replace files of these names that already exist. Default False.
        figures : bool
            Write the PNG figures and embed them in the report. Default True
            (needs matplotlib and logomaker).
        prefix : str
            Put before every file name (e.g. ``"relu_"`` gives
            ``relu_summary.csv``); plain file-name characters only. Default ``""``.

        Returns
        -------
        list of Path
            The files written, in the order above.

        Raises
        ------
        FileExistsError
            If one of the files exists and ``overwrite`` is False (nothing
            is written then).
        NotADirectoryError
            If ``folder`` is a file.
        ImportError
            If ``figures`` is True and matplotlib or logomaker is missing.
        """
        from captum_genomics._utils.files import write_bytes_atomic
        from captum_genomics.comparison.report import render_figures, render_html

        folder = Path(folder)
        if os.path.lexists(folder) and not folder.is_dir():
            raise NotADirectoryError(f"`folder` {os.fspath(folder)!r} is a file, not a folder.")
        from captum_genomics.comparison.report import figure_names

        names = ["comparison.csv", "summary.csv", "agreement.csv"]
        if self.randomization is not None:
            names.append("randomization.csv")
        if figures:
            names += figure_names(self)
        names.append("report.html")
        if prefix and (os.sep in prefix or "/" in prefix or prefix.startswith(".")):
            raise ValueError(f"`prefix` must be a plain file-name prefix, got {prefix!r}.")
        if not overwrite:
            existing = [prefix + name for name in names
                        if os.path.lexists(folder / (prefix + name))]
            if existing:
                raise FileExistsError(
                    f"`folder` {os.fspath(folder)!r} already has {', '.join(existing)}; "
                    "give overwrite=True to replace them, or choose another folder.")
        contents: dict[str, bytes] = {
            "comparison.csv": self.frame.to_csv(index=False).encode("utf-8"),
            "summary.csv": self.summary().to_csv(index=True).encode("utf-8"),
            "agreement.csv": self.agreement.to_csv(index=False).encode("utf-8"),
        }
        if self.randomization is not None:
            contents["randomization.csv"] = self.randomization.to_csv(index=False).encode("utf-8")
        pngs = render_figures(self) if figures else {}
        for name, (png, _caption) in pngs.items():
            contents[name] = png
        contents["report.html"] = render_html(self, figures=pngs).encode("utf-8")
        if list(contents) != names:  # pragma: no cover - FIGURES and render_figures agree
            raise RuntimeError(f"internal error: planned files {names}, got {list(contents)}.")
        folder.mkdir(parents=True, exist_ok=True)
        return [write_bytes_atomic(folder / (prefix + name), data)
                for name, data in contents.items()]
