"""In-silico saturation mutagenesis: exact, with the fastISM shortcut where it applies.

- :mod:`~captum_genomics.ism.edits`: the single-base edits, identity edits
  skipped, grouped by position into bounded batches;
- :mod:`~captum_genomics.ism.naive`: full forward passes of the edited sequences;
- :mod:`~captum_genomics.ism.fast`: fastISM (Nair et al. 2022) on a ``torch.fx``
  graph: only what an edit changes is recomputed;
- :mod:`~captum_genomics.ism.mutagenesis`: :func:`edit_changes`, the change of
  every target for every edit, choosing the path;
- :mod:`~captum_genomics.ism.scores`: centering and projection (tangermeme's convention).

The Captum shell is :class:`captum_genomics.InSilicoMutagenesis`.
"""

from captum_genomics.ism.fast import FastPathUnsupported
from captum_genomics.ism.mutagenesis import FastPathReport, edit_changes
from captum_genomics.ism.scores import ism_scores

__all__ = ["edit_changes", "ism_scores", "FastPathReport", "FastPathUnsupported"]
