"""Plots of per-class gene attribution tables (single-cell workflows).

matplotlib is optional (``pip install "captum-genomics[plot]"``) and imported
inside the functions. Figures are built with ``matplotlib.figure.Figure``, not
``pyplot``: no GUI backend is touched and nothing global changes. Every
function takes a table from
:func:`captum_genomics.stats.attribution_table`.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from captum_genomics._utils.figures import figure_class

__all__ = ["plot_top_genes", "plot_top_genes_grid", "plot_stacked_contributions"]


def _class_rows(table, cls: str):
    sub = table[table["class"] == cls]
    if sub.empty:
        raise ValueError(
            f"class {cls!r} is not in the table; classes: {list(table['class'].unique())}.")
    return sub.sort_values("rank")


def plot_top_genes(table, cls: str, k: int = 10, ax=None, markers: Sequence[str] = (),
                   title: str | None = None):
    """Horizontal bars of the ``k`` highest mean attributions of one class, with CIs.

    Parameters
    ----------
    table : DataFrame
        From :func:`~captum_genomics.stats.attribution_table`.
    cls
        The class (a value of ``table["class"]``).
    k
        Genes shown, highest mean on top. Default 10.
    ax
        A matplotlib ``Axes``. Default: a new ``Figure``'s.
    markers
        Known marker genes of the class: their bars are drawn in a second
        colour and their labels in bold.
    title
        Default ``"<class> (n=<cells>)"``.

    Returns
    -------
    matplotlib.axes.Axes
        Error bars span the table's ``ci_low``..``ci_high`` (none where n=1).
    """
    top = _class_rows(table, cls).head(k)
    if ax is None:
        ax = figure_class()(figsize=(4.0, 0.3 * len(top) + 1.0)).add_subplot()
    y = np.arange(len(top))[::-1]
    mean = top["mean"].to_numpy()
    err = np.vstack([mean - top["ci_low"].to_numpy(), top["ci_high"].to_numpy() - mean])
    err = None if np.isnan(err).all() else np.nan_to_num(err)
    marker_set = set(markers)
    colors = ["tab:orange" if g in marker_set else "tab:blue" for g in top["gene"]]
    ax.barh(y, mean, xerr=err, color=colors, ecolor="0.3", capsize=2)
    ax.set_yticks(y)
    ax.set_yticklabels(top["gene"])
    for label in ax.get_yticklabels():
        if label.get_text() in marker_set:
            label.set_fontweight("bold")
    ax.axvline(0.0, color="0.5", lw=0.8)
    ax.set_xlabel("mean attribution (95% CI)")
    n = int(top["n"].iloc[0]) if len(top) else 0
    ax.set_title(title if title is not None else f"{cls} (n={n})", fontsize=9)
    return ax


def plot_top_genes_grid(table, k: int = 8, classes: Sequence[str] | None = None,
                        markers: dict | None = None, ncols: int = 5):
    """:func:`plot_top_genes` for every class, one panel each.

    Parameters
    ----------
    table : DataFrame
    k
        Genes per panel. Default 8.
    classes
        Default: every class, in the table's order.
    markers
        Class name to marker genes, highlighted. Default none.
    ncols
        Panels per row. Default 5.

    Returns
    -------
    matplotlib.figure.Figure
    """
    classes = list(table["class"].unique()) if classes is None else list(classes)
    ncols = max(1, min(ncols, len(classes)))
    nrows = -(-len(classes) // ncols)
    fig = figure_class()(figsize=(3.2 * ncols, (0.28 * k + 1.0) * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for ax, cls in zip(axes.flat, classes):
        plot_top_genes(table, cls, k, ax=ax, markers=(markers or {}).get(cls, ()))
        ax.set_xlabel("")
    for ax in list(axes.flat)[len(classes):]:
        ax.set_visible(False)
    fig.supxlabel("mean attribution (95% CI); markers in orange", fontsize=9)
    return fig


def plot_stacked_contributions(table, k: int = 3, classes: Sequence[str] | None = None,
                               ax=None):
    """Stacked bars: each class's mean attributions of the union of every class's top genes.

    One bar per class; its segments are the mean attributions, in that class,
    of the genes that are among the ``k`` highest of any class: positive
    values stack upwards from 0, negative ones downwards, one colour per gene.
    A gene that marks one class and counts against another shows up above
    the axis in the first and below it in the second.

    Parameters
    ----------
    table : DataFrame
    k
        Top genes taken from each class. Default 3.
    classes
        Default: every class, in the table's order.
    ax
        A matplotlib ``Axes``. Default: a new ``Figure``'s.

    Returns
    -------
    matplotlib.axes.Axes
    """
    classes = list(table["class"].unique()) if classes is None else list(classes)
    genes: list[str] = []
    for cls in classes:
        for g in _class_rows(table, cls).head(k)["gene"]:
            if g not in genes:
                genes.append(g)
    wide = table.pivot(index="class", columns="gene", values="mean").loc[classes, genes]
    if ax is None:
        ax = figure_class()(figsize=(1.0 + 0.6 * len(classes) + 2.0, 4.5),
                             layout="constrained").add_subplot()
    try:
        from matplotlib import colormaps
        cmap = colormaps["tab20"]
    except ImportError:  # pragma: no cover
        cmap = None
    x = np.arange(len(classes))
    up, down = np.zeros(len(classes)), np.zeros(len(classes))
    for i, g in enumerate(genes):
        v = wide[g].to_numpy()
        pos, neg = np.clip(v, 0, None), np.clip(v, None, 0)
        color = cmap(i % 20) if cmap is not None else None
        hatch = None if i < 20 else "//"
        ax.bar(x, pos, bottom=up, color=color, hatch=hatch, label=g, width=0.7)
        ax.bar(x, neg, bottom=down, color=color, hatch=hatch, width=0.7)
        up += pos
        down += neg
    ax.axhline(0.0, color="0.3", lw=0.8)
    ax.set_xticks(x)
    ax.set_xticklabels(classes, rotation=45, ha="right", fontsize=8)
    ax.set_ylabel("mean attribution")
    ax.legend(fontsize=6, ncol=2, bbox_to_anchor=(1.01, 1.0), loc="upper left", frameon=False)
    return ax
