"""Figures of a method-comparison study (matplotlib ``Figure``, no pyplot).

Each function takes a :class:`~captum_genomics.comparison.result.ComparisonResult`
and returns a ``matplotlib.figure.Figure``; where the data for a figure are
missing (no AUROC, no randomisation run) the figure says so in a note instead
of failing. matplotlib (and logomaker, for the logos) are the optional
``plot`` extra.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from torch import Tensor

from captum_genomics._utils.figures import figure_class

if TYPE_CHECKING:  # pragma: no cover
    from captum_genomics.comparison.result import ComparisonResult

__all__ = [
    "ground_truth_arrays",
    "plot_agreement_heatmap",
    "plot_auroc_distributions",
    "plot_example_logos",
    "plot_randomization",
    "plot_speed_accuracy",
]

_SHORT = 100
"""Sequences up to this length are drawn whole by :func:`plot_example_logos`."""
_FLANK = 10
"""Bases drawn either side of the planted span by :func:`plot_example_logos`."""


def _new_axes(ax, figsize=(5.5, 4.0)):
    if ax is not None:
        return ax.figure, ax
    fig = figure_class()(figsize=figsize, layout="constrained")
    return fig, fig.add_subplot()


def _note(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, fontsize=9,
            color="0.3", wrap=True)


def _label(text: str) -> str:
    """``text`` safe from matplotlib's mathtext (a ``$`` in a method name)."""
    return str(text).replace("$", r"\$")


def _colors(n: int) -> list:
    from matplotlib import colormaps

    cmap = colormaps["tab10"]
    return [cmap(i % 10) for i in range(n)]


def ground_truth_arrays(ground_truth: Any) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The mask and centred PWM of a ground truth as numpy arrays.

    Parameters
    ----------
    ground_truth
        None, a bool Tensor/array of shape=(N, L) (a bare mask), or an object
        with ``.mask`` (shape=(N, L)) and optionally ``.pwm`` (shape=(N, 4, L)).

    Returns
    -------
    (mask, pwm)
        ``mask`` bool shape=(N, L) or None; ``pwm`` float64 shape=(N, 4, L)
        or None.
    """
    def as_np(x, dtype):
        if x is None:
            return None
        if isinstance(x, Tensor):
            x = x.detach().cpu().numpy()
        return np.asarray(x).astype(dtype)

    if ground_truth is None:
        return None, None
    if hasattr(ground_truth, "mask"):
        return as_np(ground_truth.mask, bool), as_np(getattr(ground_truth, "pwm", None), float)
    return as_np(ground_truth, bool), None


def plot_speed_accuracy(result: ComparisonResult, ax=None):
    """Speed against accuracy: one labelled point per method.

    x is examples per second (log scale); y is the median AUROC over
    examples, or, without AUROC, the median convergence delta. Flagged
    methods are drawn with an ``x`` marker. Methods without a speed or
    without a y value are left out (and listed in a note).

    Parameters
    ----------
    result : ComparisonResult
    ax : matplotlib Axes, optional
        Draw here; default a new figure.

    Returns
    -------
    matplotlib.figure.Figure
    """
    fig, ax = _new_axes(ax)
    summary = result.summary()
    if summary["auroc"].notna().any():
        y_col, y_label = "auroc", "median AUROC (planted positions)"
    elif summary["convergence_delta"].notna().any():
        y_col, y_label = "convergence_delta", "median |convergence delta|"
    else:
        y_col, y_label = None, ""
    ax.set_xlabel("examples per second")
    ax.set_title("Speed and accuracy", fontsize=10)
    if y_col is None:
        _note(ax, "No AUROC or convergence delta was computed.")
        return fig
    ax.set_ylabel(y_label)
    colors = _colors(len(result.methods))
    skipped = []
    for method, color in zip(result.methods, colors):
        x, y = summary.loc[method, "examples_per_s"], summary.loc[method, y_col]
        if not (np.isfinite(x) and np.isfinite(y) and x > 0):
            skipped.append(method)
            continue
        flagged = bool(summary.loc[method, "flagged"])
        ax.scatter([x], [y], color=color, marker="x" if flagged else "o", s=40, zorder=3,
                   label=_label(method) + (" (flagged)" if flagged else ""))
        ax.annotate(_label(method), (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
    if len(skipped) < len(result.methods):
        from matplotlib.ticker import FuncFormatter

        ax.set_xscale("log")
        ax.margins(x=0.15, y=0.1)
        shown = summary.loc[[m for m in result.methods if m not in skipped], "examples_per_s"]
        if shown.max() < 10 * shown.min():  # under a decade: short plain labels
            plain = FuncFormatter(lambda v, _: f"{v:.3g}")
            ax.xaxis.set_major_formatter(plain)
            ax.xaxis.set_minor_formatter(plain)
    if skipped:
        ax.text(0.01, 0.01, "not shown (no value): " + ", ".join(map(_label, skipped)),
                fontsize=7, transform=ax.transAxes, color="0.4")
    if y_col == "auroc":
        ax.axhline(0.5, color="0.6", lw=0.8, ls=":")
    ax.grid(True, which="both", lw=0.3, alpha=0.5)
    return fig


def plot_auroc_distributions(result: ComparisonResult, metric: str = "auroc", ax=None):
    """Distribution of a per-example metric per method: a box plot with the points.

    Parameters
    ----------
    result : ComparisonResult
    metric : str
        A per-example metric of ``result.frame`` (``"auroc"``, ``"aupr"``,
        ``"pwm_cosine"``, ``"convergence_delta"``, ``"off_simplex_angle"``).
        Default ``"auroc"``.
    ax : matplotlib Axes, optional
        Draw here; default a new figure.

    Returns
    -------
    matplotlib.figure.Figure
        One box per method with values (in method order), its examples as
        jittered points; a note when no method has values.
    """
    fig, ax = _new_axes(ax, figsize=(max(4.0, 1.0 + 0.9 * len(result.methods)), 4.0))
    frame = result.frame
    rows = frame[(frame["metric"] == metric) & frame["example"].notna() & frame["value"].notna()]
    data, names = [], []
    for method in result.methods:
        values = rows.loc[rows["method"] == method, "value"].to_numpy(np.float64)
        if values.size:
            data.append(values)
            names.append(_label(method))
    ax.set_title(f"{metric} per example", fontsize=10)
    if not data:
        _note(ax, f"No per-example {metric!r} values.")
        return fig
    positions = np.arange(1, len(data) + 1)
    ax.boxplot(data, positions=positions, widths=0.5, showfliers=False)
    rng = np.random.default_rng(0)
    for pos, values, color in zip(positions, data, _colors(len(data))):
        jitter = rng.uniform(-0.12, 0.12, size=values.size)
        ax.scatter(pos + jitter, values, s=10, color=color, alpha=0.7, zorder=3)
    ax.set_xticks(positions)
    ax.set_xticklabels(names, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel(metric)
    if metric == "auroc":
        ax.axhline(0.5, color="0.6", lw=0.8, ls=":")
    return fig


def plot_agreement_heatmap(result: ComparisonResult, metric: str = "spearman", ax=None):
    """Heatmap of :meth:`ComparisonResult.agreement_matrix`, each cell annotated.

    Parameters
    ----------
    result : ComparisonResult
    metric : str
        ``"spearman"`` or ``"cosine"``. Default ``"spearman"``.
    ax : matplotlib Axes, optional
        Draw here; default a new figure.

    Returns
    -------
    matplotlib.figure.Figure
        Colour scale from -1 to 1; NaN cells are blank and annotated ``"–"``.

    Raises
    ------
    ValueError
        If ``metric`` is unknown (see :meth:`ComparisonResult.agreement_matrix`).
    """
    matrix = result.agreement_matrix(metric)
    m = len(result.methods)
    size = max(3.5, 1.2 + 0.7 * m)
    fig, ax = _new_axes(ax, figsize=(size + 1.0, size))
    values = matrix.to_numpy()
    image = ax.imshow(np.ma.masked_invalid(values), cmap="RdBu_r", vmin=-1, vmax=1)
    for i in range(m):
        for j in range(m):
            v = values[i, j]
            text = "–" if not np.isfinite(v) else f"{v:.2f}"
            color = "white" if np.isfinite(v) and abs(v) > 0.6 else "black"
            ax.text(j, i, text, ha="center", va="center", fontsize=8, color=color)
    ax.set_xticks(range(m))
    ax.set_yticks(range(m))
    labels = [_label(m) for m in result.methods]
    ax.set_xticklabels(labels, rotation=40, ha="right", fontsize=8)
    ax.set_yticklabels(labels, fontsize=8)
    ax.set_title(f"Median {metric} agreement over examples", fontsize=10)
    fig.colorbar(image, ax=ax, shrink=0.8, label=metric)
    return fig


def _default_window(mask_row: np.ndarray | None, length: int) -> tuple[int, int]:
    if length <= _SHORT:
        return 0, length
    if mask_row is not None and mask_row.any():
        where = np.flatnonzero(mask_row)
        return max(0, int(where[0]) - _FLANK), min(length, int(where[-1]) + 1 + _FLANK)
    centre = length // 2
    return centre - _SHORT // 2, centre - _SHORT // 2 + _SHORT


def plot_example_logos(result: ComparisonResult, example: int = 0,
                       window: tuple[int, int] | None = None):
    """Logos of one example's attributions, one row per method, and the planted PWM.

    Rows follow ``result.methods`` (methods without attributions are
    skipped); a last row draws the ground truth's centred PWM when
    ``result.ground_truth`` has one. Planted positions are shaded.

    Parameters
    ----------
    result : ComparisonResult
    example : int
        Which sequence, ``0 <= example < N``. Default 0.
    window : (int, int), optional
        Half-open span ``[start, end)`` of positions to draw. Default: the
        whole sequence when ``L <= 100``, else the span of the example's
        planted positions +- 10 bases, else the central 100 bases.

    Returns
    -------
    matplotlib.figure.Figure
        One axes per row, sharing the x axis.

    Raises
    ------
    ValueError
        If ``example`` or ``window`` is out of range, or there is nothing to
        draw.
    ImportError
        If matplotlib or logomaker is missing.
    """
    from captum_genomics.seq.plot import plot_attribution_logo

    n, _, length = tuple(result.inputs.shape)
    if isinstance(example, bool) or not isinstance(example, (int, np.integer)) \
            or not 0 <= example < n:
        raise ValueError(f"`example` must be an int in [0, {n}), got {example!r}.")
    example = int(example)
    mask, pwm = ground_truth_arrays(result.ground_truth)
    mask_row = None if mask is None else mask[example]
    if window is None:
        start, end = _default_window(mask_row, length)
    else:
        start, end = (int(v) for v in window)
        if not 0 <= start < end <= length:
            raise ValueError(f"`window` must be (start, end) with 0 <= start < end <= {length}, "
                             f"got {window!r}.")
    rows: list[tuple[str, np.ndarray]] = []
    for method in result.methods:
        if method in result.attributions:
            attr = result.attributions[method][example].detach().cpu().numpy()
            rows.append((_label(method), attr[:, start:end]))
    if pwm is not None:
        rows.append(("ground truth: centred PWM", pwm[example][:, start:end]))
    if not rows:
        raise ValueError("`result` has no attributions to draw.")
    width = end - start
    fig = figure_class()(figsize=(max(5.0, 0.16 * width + 1.5), 1.5 * len(rows) + 0.4),
                         layout="constrained")
    axes = fig.subplots(len(rows), 1, sharex=True, squeeze=False)[:, 0]
    spans = []
    if mask_row is not None:
        inside = np.concatenate([[False], mask_row[start:end], [False]]).astype(np.int8)
        edges = np.flatnonzero(np.diff(inside))
        spans = [(start + a, start + b) for a, b in zip(edges[::2], edges[1::2])]
    for ax, (title, values) in zip(axes, rows):
        plot_attribution_logo(values, ax=ax, start=start, title=title)
        for a, b in spans:
            ax.axvspan(a - 0.5, b - 0.5, color="gold", alpha=0.2, lw=0)
        ax.set_ylabel("")
    axes[-1].set_xlabel("position in sequence (bp)")
    axes[-1].set_xlim(start - 0.5, end - 0.5)
    fig.suptitle(f"Example {example}: attributions per method", fontsize=10)
    return fig


def plot_randomization(result: ComparisonResult, ax=None):
    """Model-parameter randomisation: median Spearman vs step, one line per method.

    Step 0 is the trained model; step ``k`` has the top ``k`` layers
    randomised (cascading). Flagged methods are dashed, marked ``x`` and
    labelled ``(flagged)``.

    Parameters
    ----------
    result : ComparisonResult
    ax : matplotlib Axes, optional
        Draw here; default a new figure.

    Returns
    -------
    matplotlib.figure.Figure
        One line per method with randomisation rows; a note when
        ``result.randomization`` is None or empty.
    """
    fig, ax = _new_axes(ax, figsize=(6.0, 4.0))
    ax.set_title("Model-parameter randomisation", fontsize=10)
    rand = result.randomization
    if rand is None or not len(rand):
        _note(ax, "The randomisation check was not run.")
        return fig
    layers: dict[int, str] = {}
    for step, layer in zip(rand["step"], rand["layer"]):
        layers.setdefault(int(step), "" if layer is None or layer != layer else _label(layer))
    for method, color in zip(result.methods, _colors(len(result.methods))):
        rows = rand[rand["method"] == method]
        if not len(rows):
            continue
        med = rows.groupby("step")["spearman"].median().sort_index()
        flagged = method in result.flagged
        ax.plot(med.index.to_numpy(int), med.to_numpy(float), color=color,
                ls="--" if flagged else "-", marker="x" if flagged else "o", ms=4,
                label=_label(method) + (" (flagged)" if flagged else ""))
    steps = sorted(layers)
    ax.set_xticks(steps)
    ax.set_xticklabels([f"{s}\n{layers[s]}" if layers[s] else str(s) for s in steps],
                       fontsize=7)
    ax.axhline(0, color="0.6", lw=0.8, ls=":")
    ax.set_xlabel("randomisation step (last layer randomised)")
    ax.set_ylabel("median Spearman vs trained model")
    ax.legend(fontsize=7, loc="best")
    return fig
