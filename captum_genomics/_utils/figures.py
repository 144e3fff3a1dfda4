"""The matplotlib ``Figure`` class, imported lazily with a clear error.

Plots are built on ``matplotlib.figure.Figure`` (no pyplot, no GUI backend);
matplotlib is the optional ``plot`` extra.
"""

from __future__ import annotations

__all__ = ["figure_class"]


def figure_class():
    """``matplotlib.figure.Figure``.

    Raises
    ------
    ImportError
        If matplotlib is not installed, saying which extra installs it.
    """
    try:
        from matplotlib.figure import Figure
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError('Plotting needs matplotlib: pip install "captum-genomics[plot]".') from err
    return Figure
