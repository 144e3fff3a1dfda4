"""Genome-scale attribution: regions from a BED and a genome in, a chunked, resumable run.

- :func:`attribute_regions` (:mod:`.runner`): the run, chunked, resumable, sharded
  across ``torch.distributed`` ranks.
- :mod:`.manifest`: the run manifest and the resumption check.
- :mod:`.store`: chunk files and the streamed merge into ``attributions.h5``,
  ``ohe.npz``/``shap.npz``, ``regions.tsv`` and ``contributions.bw``.
"""

from __future__ import annotations

from captum_genomics.genome_scale.manifest import check_resumable, model_hash
from captum_genomics.genome_scale.runner import RunInterrupted, attribute_regions
from captum_genomics.genome_scale.store import OUTPUT_NAMES, merge_chunks

__all__ = ["attribute_regions", "RunInterrupted", "check_resumable", "model_hash",
           "merge_chunks", "OUTPUT_NAMES"]
