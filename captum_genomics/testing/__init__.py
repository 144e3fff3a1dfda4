"""The correctness gate: property checks, assertions, strategies, and the suite users run.

- :mod:`.checks`: the checks as functions returning a ``CheckReport``
  (additivity, batch invariance, determinism, agreement, model state).
- :mod:`.assertions`: the same as ``assert_*`` functions for your own tests,
  in the style of ``torch.testing``.
- :mod:`.strategies`: hypothesis strategies for one-hot sequences and
  expression matrices.
- :mod:`.gate`: every check a method owes on a model, as one run
  (``captum-genomics validate``).
- :mod:`.plugin`: the pytest plugin (``--cg-*`` options); the ``test_*.py``
  files here are the suite it runs
  (``pytest --pyargs captum_genomics.testing --cg-model ...``).

Names are imported on first use, so that loading the pytest plugin imports
neither torch nor hypothesis.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    **dict.fromkeys(["assert_additive", "assert_batch_invariant", "assert_deterministic",
                     "assert_model_unchanged", "assert_agrees_with"],
                    "captum_genomics.testing.assertions"),
    **dict.fromkeys(["one_hot_sequences", "expression_matrices"],
                    "captum_genomics.testing.strategies"),
}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'captum_genomics.testing' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
