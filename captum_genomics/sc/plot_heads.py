"""Plots of head-ablation explained variance (a :class:`HeadAblationResult`).

- :func:`plot_ev_bars`: per-group explained variance of every tested head as
  grouped bars, heads significant after Benjamini-Hochberg marked ``*``.
- :func:`plot_gene_head_heatmap`: gene x head heatmap of per-gene explained
  variance for the top genes of one group.
- :func:`plot_gene_head_heatmap_grid`: those heatmaps for several groups, as
  a grid of panels in one figure.

The views of AMICI's head-ablation figures (Hong et al. 2025). matplotlib is
optional (``pip install "captum-genomics[plot]"``) and imported inside the
functions. Figures are built with ``matplotlib.figure.Figure``, not
``pyplot``: no GUI backend is touched and nothing global changes.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from captum_genomics._utils.figures import figure_class

__all__ = ["plot_ev_bars", "plot_gene_head_heatmap", "plot_gene_head_heatmap_grid"]


def _np(x) -> np.ndarray:
    return x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)


def plot_ev_bars(result, ax=None, significance: str = "p_adj", show_full: bool = True,
                 title: str | None = None):
    """Explained variance per head and group as grouped bars.

    One cluster of bars per (non-skipped) group on the x-axis, one bar per
    tested head (``result.heads`` order, one colour each) with height
    ``result.ev_head``. A head whose ``significance`` p-value is ``<=
    result.alpha`` in a group gets a ``*`` above its bar.

    Parameters
    ----------
    result : HeadAblationResult
    ax
        A matplotlib ``Axes``. Default: a new ``Figure``'s.
    significance
        ``"p_adj"`` (default; Benjamini-Hochberg adjusted) or ``"p_value"``.
    show_full
        Draw the full (unablated) model's EV of each group as a black
        horizontal segment across its cluster, when available. Default True.
    title
        Axes title. Default ``"<ablation>-one-head EV (<mode> ablation)"``.

    Returns
    -------
    matplotlib.figure.Figure
        The bars are ``ax.patches`` (heads x groups, head-major order); the
        asterisks are ``ax.texts``.

    Raises
    ------
    ValueError
        If ``significance`` is not ``"p_adj"`` or ``"p_value"``, or every
        group was skipped.
    """
    if significance not in ("p_adj", "p_value"):
        raise ValueError(
            f'`significance` must be "p_adj" or "p_value", got {significance!r}.')
    kept = result.kept_group_indices()
    if len(kept) == 0:
        raise ValueError("Every group was skipped (too few cells); nothing to plot.")
    n_heads = len(result.heads)
    ev = _np(result.ev_head)[:, kept]
    p = _np(getattr(result, significance))[:, kept]
    labels = result.head_labels()
    if ax is None:
        ax = figure_class()(figsize=(max(4.0, 0.35 * n_heads * len(kept) + 1.5), 3.2)
                             ).add_subplot()
    width = 0.8 / n_heads
    x = np.arange(len(kept), dtype=float)
    finite = ev[np.isfinite(ev)]
    pad = 0.02 * (float(np.ptp(finite)) if finite.size else 1.0) or 0.02
    for h in range(n_heads):
        xs = x - 0.4 + width * (h + 0.5)
        heights = np.nan_to_num(ev[h], nan=0.0)
        ax.bar(xs, heights, width=width, label=labels[h], color=f"C{h % 10}")
        for xi, e, pv in zip(xs, ev[h], p[h]):
            if np.isfinite(pv) and pv <= result.alpha and np.isfinite(e):
                ax.text(xi, e + pad if e >= 0 else pad, "*", ha="center", va="bottom",
                        fontsize=11)
    if show_full and result.full_ev_head is not None:
        full = _np(result.full_ev_head)[kept]
        ax.hlines(full, x - 0.42, x + 0.42, colors="k", lw=1.2, label="full model")
    ax.axhline(0.0, color="0.5", lw=0.8)
    ax.set_xticks(x)
    ax.set_xticklabels([result.group_names[i] for i in kept], rotation=45, ha="right")
    ax.set_ylabel("explained variance")
    star = "BH-adjusted" if significance == "p_adj" else "permutation"
    ax.set_title(title if title is not None else
                 f"{result.ablation}-one-head EV ({result.mode} ablation); "
                 f"* {star} p <= {result.alpha:g}", fontsize=9)
    ax.margins(y=0.12)
    ax.legend(fontsize=7, frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return ax.figure


def plot_gene_head_heatmap(result, group, k: int = 10, ax=None, title: str | None = None):
    """Gene x head heatmap of per-gene explained variance in one group.

    Rows are ``result.top_genes(group, k)`` (best explained first: by the
    full model's EV when available, else the best head's); columns are the
    tested heads; cells are ``result.ev_gene[head, group, gene]``. A diverging
    colormap (``RdBu_r``) centred at 0 with symmetric limits ``+/- max |EV|``;
    NaN cells are drawn grey.

    Parameters
    ----------
    result : HeadAblationResult
    group
        A group name (see :meth:`HeadAblationResult.top_genes`).
    k
        Genes shown. Default 10.
    ax
        A matplotlib ``Axes``. Default: a new ``Figure``'s (with a colorbar).
    title
        Axes title. Default ``"<group> (n=<cells>)"``.

    Returns
    -------
    matplotlib.figure.Figure
        ``ax.images[0].get_array()`` is the ``(k, n_heads)`` EV matrix.

    Raises
    ------
    ValueError
        If ``group`` is unknown or skipped, or it has no gene with a defined EV.
    """
    genes = result.top_genes(group, k)
    gi = result.group_index(group)
    if not genes:
        raise ValueError(f"`group` {result.group_names[gi]!r} has no gene with a defined EV.")
    rows = [result.gene_names.index(g) for g in genes]
    values = _np(result.ev_gene)[:, gi, :][:, rows].T  # (k, n_heads)
    finite = values[np.isfinite(values)]
    lim = float(np.abs(finite).max()) if finite.size else 1.0
    lim = lim if lim > 0 else 1.0
    if ax is None:
        ax = figure_class()(figsize=(0.5 * len(result.heads) + 2.5, 0.3 * len(genes) + 1.5)
                             ).add_subplot()
    import matplotlib

    cmap = matplotlib.colormaps["RdBu_r"].with_extremes(bad="0.8")
    im = ax.imshow(np.ma.masked_invalid(values), cmap=cmap, vmin=-lim, vmax=lim,
                   aspect="auto", interpolation="nearest")
    ax.set_xticks(np.arange(len(result.heads)))
    ax.set_xticklabels(result.head_labels(), rotation=45, ha="right")
    ax.set_yticks(np.arange(len(genes)))
    ax.set_yticklabels(genes)
    n = int(_np(result.n_cells)[gi])
    ax.set_title(title if title is not None else f"{result.group_names[gi]} (n={n})",
                 fontsize=9)
    ax.figure.colorbar(im, ax=ax, label="explained variance")
    return ax.figure


def plot_gene_head_heatmap_grid(result, groups: Sequence[str] | None = None, k: int = 10):
    """:func:`plot_gene_head_heatmap` of several groups, one panel each, in one figure.

    Panels are laid out row by row, at most 5 per row; unused axes of the
    last row are hidden. Used for ``gene_head_heatmap.png`` of
    :func:`captum_genomics.workflows.head_ablation_pbmc.run_head_ablation_on_data`.

    Parameters
    ----------
    result : HeadAblationResult
    groups : sequence of str, optional
        The groups, in panel order. Default None: every group that was not
        skipped (``result.kept_group_indices()``), in group order.
    k
        Genes per panel. Default 10.

    Returns
    -------
    matplotlib.figure.Figure
        A ``constrained``-layout figure of size ``(3.4 * ncols, (0.28 * k +
        1.6) * nrows)`` inches, ``ncols = min(len(groups), 5)``.

    Raises
    ------
    ValueError
        As :func:`plot_gene_head_heatmap`, for any of the groups; if
        ``groups`` is empty.
    """
    if groups is None:
        groups = [result.group_names[i] for i in result.kept_group_indices()]
    groups = list(groups)
    if not groups:
        raise ValueError("`groups` is empty; nothing to plot.")
    n = len(groups)
    ncols = min(n, 5)
    nrows = math.ceil(n / ncols)
    fig = figure_class()(figsize=(3.4 * ncols, 0.28 * k * nrows + 1.6 * nrows),
                          layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax, group in zip(axes, groups):
        plot_gene_head_heatmap(result, group, k=k, ax=ax)
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig
