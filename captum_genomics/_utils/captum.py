"""The only module that imports Captum's private helpers.

Captum is pinned to a tested range in ``pyproject.toml``; if a release moves a
helper, this is the one file to change.
"""

from __future__ import annotations

from captum._utils.common import _format_additional_forward_args  # noqa: F401
from captum.attr import Attribution, GradientAttribution, PerturbationAttribution  # noqa: F401
from captum.log import log_usage  # noqa: F401

__all__ = [
    "Attribution",
    "GradientAttribution",
    "PerturbationAttribution",
    "log_usage",
    "format_additional_forward_args",
]


def format_additional_forward_args(args) -> tuple:
    """Captum's normalization of ``additional_forward_args`` to a tuple (``()`` for None)."""
    out = _format_additional_forward_args(args)
    return () if out is None else tuple(out)
