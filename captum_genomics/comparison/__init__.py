"""Method comparison studies: several attribution methods on one model, measured side by side.

- :func:`compare` (``study.py``): runs the methods, times them, and measures
  completeness, agreement, ground-truth recovery and the cascading
  randomisation sanity check.
- ``registry.py``: the built-in methods by name and the user's own.
- ``metrics.py``: per-example AUROC/AUPR, PWM cosine, agreement.
- ``randomization.py``: cascading randomisation (Adebayo et al. 2018).
- ``result.py``, ``plots.py``, ``report.py``: :class:`ComparisonResult`, its
  figures and its self-contained HTML report.

Names are imported on first use, so importing one submodule does not import
the others.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "compare": "captum_genomics.comparison.study",
    "ComparisonWarning": "captum_genomics.comparison.study",
    "ComparisonResult": "captum_genomics.comparison.result",
    "MethodSpec": "captum_genomics.comparison.registry",
    "builtin_methods": "captum_genomics.comparison.registry",
    "default_method_names": "captum_genomics.comparison.registry",
    "resolve_methods": "captum_genomics.comparison.registry",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'captum_genomics.comparison' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
