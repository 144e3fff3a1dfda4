"""A self-contained HTML report of a method-comparison study.

The page has no external assets: CSS is inline and the figures are PNG data
URIs, so the single ``report.html`` file can be mailed or archived. All text
taken from the result (method names, metadata, notes) is HTML-escaped.
"""

from __future__ import annotations

import base64
import html
import io
import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from captum_genomics.comparison.result import ComparisonResult

__all__ = ["FIGURES", "figure_names", "figure_png", "render_figures", "render_html"]

FIGURES = (
    ("speed_accuracy.png", "speed_accuracy", {},
     "Speed and accuracy: examples per second (log scale) against the median AUROC of the "
     "attributions at planted positions (or the median convergence delta without ground "
     "truth). Flagged methods are marked x."),
    ("auroc.png", "auroc", {},
     "AUROC per example: how well the attribution at the observed base separates planted "
     "from background positions (0.5 = chance)."),
    ("agreement.png", "agreement", {"metric": "spearman"},
     "Agreement between methods: median over examples of the Spearman correlation of their "
     "attributions."),
    ("logos.png", "logos", {"example": 0},
     "Example 0: attribution logos per method (planted positions shaded) and, when known, "
     "the centred PWM of the planted motif."),
    ("randomization.png", "randomization", {},
     "Model-parameter randomisation (cascading from the output): median Spearman correlation "
     "with the trained model's attributions per step. Methods that stay correlated are "
     "flagged."),
)
"""``(file name, plot kind, keyword arguments, caption)`` of the report's figures."""

_CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em auto;
       max-width: 1100px; color: #222; line-height: 1.4; padding: 0 1em; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th { background: #f3f3f3; } td.key, th.key { text-align: left; }
figure { margin: 1.5em 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-size: 0.85em; color: #555; }
.flagged { color: #a40000; font-weight: bold; }
"""


def figure_png(fig, dpi: int = 110) -> bytes:
    """A matplotlib figure as PNG bytes.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
    dpi : int
        Resolution. Default 110.

    Returns
    -------
    bytes
        The PNG file's content.
    """
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def render_figures(result: ComparisonResult) -> dict[str, tuple[bytes, str]]:
    """Draw the report's figures (:data:`FIGURES`) as PNG bytes.

    Parameters
    ----------
    result : ComparisonResult

    Returns
    -------
    dict of str to (bytes, str)
        File name -> (PNG bytes, caption), in :data:`FIGURES` order, for
        the names of :func:`figure_names`.

    Raises
    ------
    ImportError
        If matplotlib or logomaker is missing.
    """
    from captum_genomics.seq.plot import require_plotting

    require_plotting()
    wanted = set(figure_names(result))
    return {name: (figure_png(result.plot(kind, **kwargs)), caption)
            for name, kind, kwargs, caption in FIGURES if name in wanted}


def figure_names(result: ComparisonResult) -> list[str]:
    """The file names of the figures :func:`render_figures` draws for ``result``.

    ``randomization.png`` only when ``result.randomization`` is not None;
    ``logos.png`` only when there are attributions or a ground-truth PWM.

    Parameters
    ----------
    result : ComparisonResult

    Returns
    -------
    list of str
        In :data:`FIGURES` order.
    """
    from captum_genomics.comparison.plots import ground_truth_arrays

    names = []
    for name, kind, _, _ in FIGURES:
        if kind == "randomization" and result.randomization is None:
            continue
        if kind == "logos" and not result.attributions \
                and ground_truth_arrays(result.ground_truth)[1] is None:
            continue
        names.append(name)
    return names


def _text(value: Any) -> str:
    if isinstance(value, (dict, list, tuple)):
        try:
            value = json.dumps(value, default=str)
        except (TypeError, ValueError):
            value = str(value)
    return html.escape(str(value))


def _flag_explanation(result: ComparisonResult) -> str:
    if not result.flagged:
        checked = "was not run" if result.randomization is None else "flagged no method"
        return f"<p>The model-parameter randomisation check {checked}.</p>"
    summary = result.summary()
    items = []
    for method in result.flagged:
        rho = summary.loc[method, "randomization_spearman"]
        shown = "n/a" if rho != rho else f"{rho:.2f}"
        items.append(f"<li><span class='flagged'>{html.escape(method)}</span>: median Spearman "
                     f"with the trained model's attributions at the last step = "
                     f"{html.escape(shown)}</li>")
    threshold = result.metadata.get("randomization_threshold")
    rule = ("" if threshold is None else
            f" (threshold: median Spearman above {html.escape(str(threshold))})")
    return (
        "<p>The model-parameter randomisation test (Adebayo et al. 2018, <i>Sanity checks for "
        "saliency maps</i>) randomises the model's layers one by one from the output and "
        "recomputes the attributions. A method whose attributions stay correlated with those "
        "of the trained model depends little on what the model learned; it is flagged"
        f"{rule}. Its scores above should be read with caution.</p><ul>"
        + "".join(items) + "</ul>")


def render_html(result: ComparisonResult, *, title: str = "Attribution method comparison",
                figures: dict[str, tuple[bytes, str]] | None = None) -> str:
    """The study as one self-contained HTML page.

    Sections: the run's metadata, the summary table
    (:meth:`ComparisonResult.summary`), the flagged methods with an
    explanation, ``metadata["notes"]``, and each figure (an embedded PNG data
    URI) with a caption. No external links or assets; every string from the
    result is HTML-escaped.

    Parameters
    ----------
    result : ComparisonResult
    title : str
        Page title. Default ``"Attribution method comparison"``.
    figures : dict of str to (bytes, str), optional
        Pre-rendered figures, as returned by :func:`render_figures`; ``{}``
        for none. Default: :func:`render_figures` (needs matplotlib and
        logomaker).

    Returns
    -------
    str
        The HTML document.
    """
    if figures is None:
        figures = render_figures(result)
    meta = {k: v for k, v in result.metadata.items() if k != "notes"}
    n, _, length = tuple(result.inputs.shape)
    meta_rows = "".join(f"<tr><th class='key'>{_text(k)}</th><td class='key'>{_text(v)}</td></tr>"
                        for k, v in meta.items())
    summary_html = result.summary().to_html(escape=True, float_format=lambda v: f"{v:.4g}",
                                            na_rep="–", border=0)
    notes = result.metadata.get("notes") or []
    if isinstance(notes, str):
        notes = [notes]
    notes_html = ("<ul>" + "".join(f"<li>{_text(note)}</li>" for note in notes) + "</ul>"
                  if notes else "<p>None.</p>")
    figure_html = []
    for name, (png, caption) in figures.items():
        data = base64.b64encode(png).decode("ascii")
        figure_html.append(
            f"<figure><img src='data:image/png;base64,{data}' alt='{html.escape(name)}'>"
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")
    methods = ", ".join(html.escape(m) for m in result.methods)
    return "\n".join([
        "<!DOCTYPE html>",
        "<html lang='en'><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f"<p>{len(result.methods)} methods ({methods}) on {n} sequences of length {length}.</p>",
        "<h2>Run</h2>",
        f"<table>{meta_rows}</table>",
        "<h2>Summary</h2>",
        "<p>One row per method: wall time, throughput, and medians over examples "
        "(AUROC also as a mean); <code>randomization_spearman</code> is the median at the "
        "last randomisation step.</p>",
        summary_html,
        "<h2>Flagged methods</h2>",
        _flag_explanation(result),
        "<h2>Notes</h2>",
        notes_html,
        "<h2>Figures</h2>",
        "\n".join(figure_html) if figure_html else "<p>No figures.</p>",
        "</body></html>",
        "",
    ])
