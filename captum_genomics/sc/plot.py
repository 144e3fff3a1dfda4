"""Plots of per-class gene attribution tables (single-cell workflows).

matplotlib is optional (``pip install "captum-genomics[plot]"``) and imported
inside the functions. Figures are built with ``matplotlib.figure.Figure``, not
``pyplot``: no GUI backend is touched and nothing global changes. Every
function takes a table from
:func:`captum_genomics.stats.attribution_table`.

The plots of scvi-tools' interpretability tutorial, with intervals that mean
what they say: :func:`plot_top_genes_signed` / :func:`plot_class_top_genes`
(top positive and negative genes per class, with the bootstrap CI of a full
table), :func:`plot_positive_contributions` (each gene's positive mean
attributions stacked by class) and :func:`plot_gene_class_heatmap`
(genes x classes).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from captum_genomics._utils.figures import figure_class

__all__ = ["plot_top_genes", "plot_top_genes_grid", "plot_stacked_contributions",
           "plot_top_genes_signed", "plot_class_top_genes", "plot_positive_contributions",
           "plot_gene_class_heatmap", "MIN_BOOTSTRAP_CELLS"]


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
        Class name to marker genes, highlighted. Default none. The figure's
        x label mentions markers only when one is among the genes shown.
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
    shown_marker = False
    for ax, cls in zip(axes.flat, classes):
        mk = set((markers or {}).get(cls, ()))
        plot_top_genes(table, cls, k, ax=ax, markers=mk)
        ax.set_xlabel("")
        shown_marker |= bool(mk & set(_class_rows(table, cls).head(k)["gene"]))
    for ax in list(axes.flat)[len(classes):]:
        ax.set_visible(False)
    # Mention markers only when a marker bar is actually drawn.
    fig.supxlabel("mean attribution (95% CI)"
                  + ("; markers in orange" if shown_marker else ""), fontsize=9)
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


MIN_BOOTSTRAP_CELLS = 20
"""With ``ci="auto"``, classes with fewer cells get the t interval.

See :func:`plot_top_genes_signed`.
"""


def _ci_columns(table, ci: str, n: int | None = None):
    """``(low column, high column, label)`` of the interval to draw, or None."""
    if ci == "auto":
        ci = ("bootstrap" if "boot_low" in table.columns
              and (n is None or n >= MIN_BOOTSTRAP_CELLS) else "t")
    if ci == "bootstrap":
        if "boot_low" not in table.columns:
            raise ValueError("`ci`='bootstrap' needs a full table (attribution_table(..., "
                             "full=True)); this one has no boot_low/boot_high.")
        return "boot_low", "boot_high", "95% bootstrap CI"
    if ci == "t":
        return "ci_low", "ci_high", "95% t CI"
    if ci == "none":
        return None
    raise ValueError(f"`ci` must be 'auto', 'bootstrap', 't' or 'none', got {ci!r}.")


def _classes(table, classes):
    present = list(table["class"].unique())
    if classes is None:
        return present
    classes = [str(c) for c in classes]
    unknown = [c for c in classes if c not in set(present)]
    if unknown:
        raise ValueError(f"`classes`: {unknown} not in the table; classes: {present}.")
    return classes


def plot_top_genes_signed(table, cls: str, k: int = 5, ax=None, ci: str = "auto",
                          title: str | None = None):
    """The ``k`` highest and the ``k`` lowest mean attributions of one class, with intervals.

    The per-class panel of scvi-tools' tutorial (its ``head(5)`` and
    ``tail(5)`` of each class's table): positive side red, on top, highest
    first; negative side blue, below, lowest last. Genes are not filtered by
    sign (a class with fewer than ``k`` negative means shows its smallest
    positive ones in blue), and a gene is drawn once.

    Parameters
    ----------
    table : DataFrame
        From :func:`~captum_genomics.stats.attribution_table`.
    cls
        The class (a value of ``table["class"]``).
    k
        Genes on each side. Default 5.
    ax
        A matplotlib ``Axes``. Default: a new ``Figure``'s.
    ci : {"auto", "bootstrap", "t", "none"}
        Error bars: the percentile bootstrap interval of a full table
        (``boot_low``/``boot_high``), the t interval (``ci_low``/``ci_high``)
        or none. ``"auto"`` (default): the bootstrap interval when the table
        has it and the class has at least :data:`MIN_BOOTSTRAP_CELLS` (20)
        cells, else the t interval (percentile intervals from a handful of
        cells are too narrow: with n=5 they are about as narrow as the normal
        ``1.96 * std / sqrt(n)`` of scvi-tools' tutorial, the t interval is
        1.4 times wider). The axis label names the interval drawn.
    title
        Default ``"<class> (n=<cells>)"``.

    Returns
    -------
    matplotlib.axes.Axes
    """
    rows = _class_rows(table, cls)
    top = rows.head(k)
    bottom = rows.tail(k)
    bottom = bottom[~bottom["gene"].isin(set(top["gene"]))]
    shown = __import__("pandas").concat([top, bottom])
    if ax is None:
        ax = figure_class()(figsize=(4.2, 0.28 * len(shown) + 1.0)).add_subplot()
    y = np.arange(len(shown))[::-1]
    mean = shown["mean"].to_numpy(dtype=float)
    n = int(rows["n"].iloc[0]) if "n" in rows.columns and len(rows) else 0
    cols = _ci_columns(table, ci, n)
    err = None
    if cols is not None:
        lo, hi, label = cols
        err = np.vstack([mean - shown[lo].to_numpy(dtype=float),
                         shown[hi].to_numpy(dtype=float) - mean])
        err = None if np.isnan(err).all() else np.nan_to_num(err)
    colors = ["tab:red"] * len(top) + ["tab:blue"] * (len(shown) - len(top))
    ax.barh(y, mean, xerr=err, color=colors, ecolor="0.25", capsize=2)
    ax.set_yticks(y)
    ax.set_yticklabels(shown["gene"], fontsize=8)
    ax.axvline(0.0, color="0.5", lw=0.8)
    ax.set_xlabel("mean attribution" + (f" ({cols[2]})" if cols is not None else ""),
                  fontsize=8)
    ax.set_title(title if title is not None else f"{cls} (n={n})", fontsize=9)
    return ax


def plot_class_top_genes(table, k: int = 5, classes=None, ncols: int = 3, ci: str = "auto"):
    """:func:`plot_top_genes_signed` for every class, one panel each (scvi-tools' grid).

    Parameters
    ----------
    table : DataFrame
    k
        Genes on each side per panel. Default 5.
    classes
        Default: every class, in the table's order.
    ncols
        Panels per row. Default 3.
    ci
        See :func:`plot_top_genes_signed`.

    Returns
    -------
    matplotlib.figure.Figure
    """
    classes = _classes(table, classes)
    ncols = max(1, min(int(ncols), len(classes)))
    nrows = -(-len(classes) // ncols)
    fig = figure_class()(figsize=(4.2 * ncols, (0.28 * 2 * k + 1.2) * nrows),
                         layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for ax, cls in zip(axes.flat, classes):
        plot_top_genes_signed(table, cls, k, ax=ax, ci=ci)
    for ax in list(axes.flat)[len(classes):]:
        ax.set_visible(False)
    return fig


def plot_positive_contributions(table, k: int = 20, classes=None, ax=None):
    """Horizontal bars per gene: its positive mean attributions, stacked by class.

    scvi-tools' tutorial figure: every class's positive means (negative
    ones are left out) are summed per gene; the ``k`` genes with the largest
    sums are drawn, largest on top, each bar split into one segment per
    class. A long bar of one colour marks a gene specific to one class; a
    bar of many colours, a gene that counts for several.

    Parameters
    ----------
    table : DataFrame
    k
        Genes shown. Default 20.
    classes
        Classes stacked. Default: every class, in the table's order.
    ax
        A matplotlib ``Axes``. Default: a new ``Figure``'s.

    Returns
    -------
    matplotlib.axes.Axes
    """
    classes = _classes(table, classes)
    sub = table[table["class"].isin(classes)]
    wide = sub.pivot(index="gene", columns="class", values="mean").reindex(columns=classes)
    pos = wide.clip(lower=0).fillna(0.0)
    total = pos.sum(axis=1)
    order = total.sort_values(ascending=False, kind="stable").index[:k]
    pos = pos.loc[order]
    if ax is None:
        ax = figure_class()(figsize=(7.5, 0.28 * len(order) + 1.5),
                            layout="constrained").add_subplot()
    try:
        from matplotlib import colormaps
        cmap = colormaps["tab20"]
    except ImportError:  # pragma: no cover
        cmap = None
    y = np.arange(len(order))[::-1]
    left = np.zeros(len(order))
    for i, cls in enumerate(classes):
        v = pos[cls].to_numpy()
        ax.barh(y, v, left=left, color=None if cmap is None else cmap(i % 20),
                hatch=None if i < 20 else "//", label=cls, height=0.75)
        left += v
    ax.set_yticks(y)
    ax.set_yticklabels(list(order), fontsize=8)
    ax.set_xlabel("sum over classes of the positive mean attributions")
    ax.legend(fontsize=7, title="class", title_fontsize=7, bbox_to_anchor=(1.01, 1.0),
              loc="upper left", frameon=False)
    return ax


def plot_gene_class_heatmap(table, k: int = 5, genes=None, classes=None, ax=None,
                            value: str = "mean"):
    """Genes x classes heatmap of a statistic, on a colour scale centred at zero.

    Parameters
    ----------
    table : DataFrame
    k
        With ``genes`` None: the union of every class's ``k`` highest-mean
        genes, grouped by the class that selected them first. Default 5.
    genes
        The rows, in this order. Default: see ``k``.
    classes
        The columns. Default: every class, in the table's order.
    ax
        A matplotlib ``Axes``. Default: a new ``Figure``'s (with a colour bar).
    value
        The table column shown. Default ``"mean"``; e.g. ``"mean_abs"`` or
        ``"frac_positive"`` for a full table.

    Returns
    -------
    matplotlib.axes.Axes
    """
    if value not in table.columns:
        raise ValueError(f"`value`={value!r} is not a column of the table: "
                         f"{list(table.columns)}.")
    classes = _classes(table, classes)
    if genes is None:
        genes = []
        for cls in classes:
            for g in _class_rows(table, cls).head(k)["gene"]:
                if g not in genes:
                    genes.append(g)
    else:
        genes = [str(g) for g in genes]
        unknown = [g for g in genes if g not in set(table["gene"])]
        if unknown:
            raise ValueError(f"`genes`: {unknown[:5]} are not in the table.")
    wide = (table[table["class"].isin(classes)]
            .pivot(index="gene", columns="class", values=value)
            .reindex(index=genes, columns=classes))
    data = wide.to_numpy(dtype=float)
    finite = data[np.isfinite(data)]
    if value in ("mean", "ci_low", "ci_high", "boot_low", "boot_high"):
        lim = float(np.abs(finite).max()) if finite.size else 1.0
        vmin, vmax, cmap = -lim, lim, "RdBu_r"
    else:
        vmin = float(finite.min()) if finite.size else 0.0
        vmax = float(finite.max()) if finite.size else 1.0
        cmap = "viridis"
    if ax is None:
        fig = figure_class()(figsize=(1.2 + 0.45 * len(classes), 1.2 + 0.22 * len(genes)),
                             layout="constrained")
        ax = fig.add_subplot()
    im = ax.imshow(data, aspect="auto", cmap=cmap, vmin=vmin, vmax=vmax,
                   interpolation="nearest")
    ax.set_xticks(np.arange(len(classes)))
    ax.set_xticklabels(classes, rotation=45, ha="right", fontsize=7)
    ax.set_yticks(np.arange(len(genes)))
    ax.set_yticklabels(genes, fontsize=7)
    ax.figure.colorbar(im, ax=ax, shrink=0.6, label=value)
    return ax
