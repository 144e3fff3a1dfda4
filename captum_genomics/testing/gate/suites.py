"""Imports every suite module, so that each registers its checks in :data:`core.SUITES`."""

from __future__ import annotations

import importlib

_SUITE_MODULES = ("sequence", "peers", "tabular", "heads")

for _name in _SUITE_MODULES:
    try:
        importlib.import_module(f"captum_genomics.testing.gate.{_name}")
    except ModuleNotFoundError as err:  # a suite module not written yet
        if err.name != f"captum_genomics.testing.gate.{_name}":
            raise
