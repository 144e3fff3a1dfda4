"""Per-example references (backgrounds) for DeepLIFT/SHAP, shaped ``(N, K, 4, L)``.

Inputs are one-hot DNA ``(N, 4, L)``, channel-first in ACGT order, an all-zero
column being an ``N``. Every function returns ``K`` references per example with
the input's dtype and device, and never modifies its input.

- :func:`kmer_shuffle`, :func:`dinucleotide_shuffle`: uniform k-mer-preserving
  shuffles (Kandel et al. 1996), seeded per (example, reference).
- :func:`zero_references`, :func:`uniform_references`,
  :func:`gc_matched_references`: fixed and GC-matched backgrounds.
- :class:`ReferenceGenerator` and its subclasses: the same as callables that a
  method can hold; :func:`resolve_reference_generator` maps user input to one.
- :class:`PerExampleReferences`: a method's references (given tensors or a
  generator) for any range of its examples.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

#: Public name -> the module that defines it. Imported on first use (PEP 562):
#: only the shuffles and the GC-matched draw need numba, whose import and
#: first kernel load take about a second even with the compiled kernels cached.
_EXPORTS = {
    "kmer_shuffle": "captum_genomics.references.shuffle",
    "dinucleotide_shuffle": "captum_genomics.references.shuffle",
    "zero_references": "captum_genomics.references.simple",
    "uniform_references": "captum_genomics.references.simple",
    "gc_matched_references": "captum_genomics.references.simple",
    "ReferenceGenerator": "captum_genomics.references.generators",
    "KmerShuffle": "captum_genomics.references.generators",
    "DinucleotideShuffle": "captum_genomics.references.generators",
    "ZeroReferences": "captum_genomics.references.generators",
    "UniformReferences": "captum_genomics.references.generators",
    "GCMatchedReferences": "captum_genomics.references.generators",
    "CallableReferences": "captum_genomics.references.generators",
    "resolve_reference_generator": "captum_genomics.references.generators",
    "REFERENCE_NAMES": "captum_genomics.references.generators",
    "PerExampleReferences": "captum_genomics.references.per_example",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'captum_genomics.references' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


if TYPE_CHECKING:  # static analysers and IDEs see the real names
    from captum_genomics.references.generators import (  # noqa: F401
        REFERENCE_NAMES,
        CallableReferences,
        DinucleotideShuffle,
        GCMatchedReferences,
        KmerShuffle,
        ReferenceGenerator,
        UniformReferences,
        ZeroReferences,
        resolve_reference_generator,
    )
    from captum_genomics.references.per_example import PerExampleReferences  # noqa: F401
    from captum_genomics.references.shuffle import dinucleotide_shuffle, kmer_shuffle  # noqa: F401
    from captum_genomics.references.simple import (  # noqa: F401
        gc_matched_references,
        uniform_references,
        zero_references,
    )
