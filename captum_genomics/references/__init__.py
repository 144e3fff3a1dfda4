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

from captum_genomics.references.generators import (
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
from captum_genomics.references.per_example import PerExampleReferences
from captum_genomics.references.shuffle import dinucleotide_shuffle, kmer_shuffle
from captum_genomics.references.simple import gc_matched_references, uniform_references, zero_references

__all__ = [
    "kmer_shuffle",
    "dinucleotide_shuffle",
    "zero_references",
    "uniform_references",
    "gc_matched_references",
    "ReferenceGenerator",
    "KmerShuffle",
    "DinucleotideShuffle",
    "ZeroReferences",
    "UniformReferences",
    "GCMatchedReferences",
    "CallableReferences",
    "resolve_reference_generator",
    "REFERENCE_NAMES",
    "PerExampleReferences",
]
