"""Sequence logos of attributions and motifs (logomaker).

matplotlib and logomaker are optional dependencies (``pip install
captum-genomics[plot]``); they are imported inside the functions, so the rest
of the package works without them. Figures are built with
``matplotlib.figure.Figure`` rather than ``pyplot``, so no GUI backend is
touched and nothing global is changed.
"""

from __future__ import annotations

import os

import numpy as np
from torch import Tensor

from captum_genomics.seq.io import ALPHABET
from captum_genomics.seq.motifs import Motif

__all__ = [
    "plot_attribution_logo",
    "plot_motif_logo",
    "require_plotting",
    "save_attribution_figure",
]


def _import_plotting():
    try:
        import logomaker
        from matplotlib.figure import Figure
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            "Plotting needs matplotlib and logomaker: pip install 'captum-genomics[plot]'."
        ) from err
    return logomaker, Figure


def require_plotting() -> None:
    """Raise ``ImportError`` (saying which extra installs them) unless matplotlib and logomaker import.

    Lets a job skip its plots with a message instead of failing after the
    computation.
    """
    _import_plotting()


def _new_axes(ax, width: int):
    if ax is not None:
        return ax
    _, Figure = _import_plotting()
    fig = Figure(figsize=(max(4.0, 0.3 * width), 2.0))
    return fig.add_subplot()


def plot_attribution_logo(
    attributions: Tensor | np.ndarray, ax=None, start: int = 0, title: str | None = None
):
    """Draw per-base attributions as a sequence logo.

    Letter heights are the attribution values: positive scores stack above
    the baseline, negative below. For projected contributions (one non-zero
    base per position) this draws the sequence scaled by its importance; for
    hypothetical contributions it draws all four bases.

    Parameters
    ----------
    attributions
        Shape=(4, W), ``ACGT`` rows.
    ax
        A matplotlib ``Axes``; default a new ``Figure``'s axes
        (``ax.figure`` gives the figure).
    start
        The sequence coordinate of the first column, used for the x-axis.
        Default 0.
    title
        Axes title. Default none.

    Returns
    -------
    matplotlib.axes.Axes

    Raises
    ------
    ValueError
        If ``attributions`` is not ``(4, W)``.
    ImportError
        If matplotlib or logomaker is missing.
    """
    import pandas as pd

    logomaker, _ = _import_plotting()
    if isinstance(attributions, Tensor):
        attributions = attributions.detach().cpu().numpy()
    values = np.asarray(attributions, dtype=np.float64)
    if values.ndim != 2 or values.shape[0] != 4:
        raise ValueError(f"`attributions` must have shape (4, W), got {values.shape}.")
    df = pd.DataFrame(values.T, columns=list(ALPHABET), index=np.arange(start, start + values.shape[1]))
    ax = _new_axes(ax, values.shape[1])
    logomaker.Logo(df, ax=ax, color_scheme="classic")
    ax.axhline(0, color="0.5", lw=0.5)
    ax.set_ylabel("attribution")
    if title:
        ax.set_title(title, fontsize=9)
    return ax


def plot_motif_logo(
    motif: Motif,
    ax=None,
    start: int = 0,
    reverse_complement: bool = False,
    title: str | None = None,
):
    """Draw a motif as an information-content logo (bits).

    Parameters
    ----------
    motif
        Its counts are turned into probabilities with a pseudocount of 1 per
        column (``logomaker.transform_matrix``, uniform background).
    ax
        A matplotlib ``Axes``; default a new figure's axes.
    start
        x coordinate of the first column. Default 0.
    reverse_complement
        Draw the reverse-complement motif (for a minus-strand match).
        Default False.
    title
        Axes title. Default ``"<id> <name>"``.

    Returns
    -------
    matplotlib.axes.Axes
    """
    import pandas as pd

    logomaker, _ = _import_plotting()
    counts = motif.counts[::-1, ::-1] if reverse_complement else motif.counts
    df = pd.DataFrame(counts.T, columns=list(ALPHABET), index=np.arange(start, start + motif.width))
    info = logomaker.transform_matrix(df, from_type="counts", to_type="information")
    ax = _new_axes(ax, motif.width)
    logomaker.Logo(info, ax=ax, color_scheme="classic")
    ax.set_ylabel("bits")
    ax.set_ylim(0, 2)
    strand = " (reverse complement)" if reverse_complement else ""
    ax.set_title(title if title is not None else f"{motif.id} {motif.name}{strand}", fontsize=9)
    return ax


def save_attribution_figure(
    path: str | os.PathLike,
    attributions: Tensor | np.ndarray,
    start: int,
    title: str,
    motif: Motif | None = None,
    motif_start: int | None = None,
    motif_strand: int = 1,
) -> None:
    """Save a logo of an attribution window, optionally above a motif logo.

    Parameters
    ----------
    path
        Output image file (format from the suffix, e.g. ``.png``).
    attributions
        Shape=(4, W): the window to draw.
    start
        Sequence coordinate of the window's first column.
    title
        Title of the attribution panel.
    motif
        If given, a second panel draws it at ``motif_start`` on the same x
        axis. Default None.
    motif_start
        Leftmost coordinate of the motif match. Default ``start``.
    motif_strand
        ``+1`` or ``-1``; ``-1`` draws the reverse complement. Default ``+1``.
    """
    _, Figure = _import_plotting()

    width = np.asarray(attributions).shape[-1]
    n_panels = 1 if motif is None else 2
    fig = Figure(figsize=(max(5.0, 0.32 * width), 2.0 * n_panels), layout="constrained")
    axes = fig.subplots(n_panels, 1, sharex=True, squeeze=False)[:, 0]
    plot_attribution_logo(attributions, ax=axes[0], start=start, title=title)
    if motif is not None:
        m_start = start if motif_start is None else motif_start
        plot_motif_logo(motif, ax=axes[1], start=m_start, reverse_complement=motif_strand < 0)
        axes[1].set_xlabel("position in sequence (bp)")
        lo = min(start, m_start) - 0.5
        hi = max(start + width, m_start + motif.width) - 0.5
        axes[0].set_xlim(lo, hi)
    else:
        axes[0].set_xlabel("position in sequence (bp)")
    fig.savefig(path, dpi=150)
