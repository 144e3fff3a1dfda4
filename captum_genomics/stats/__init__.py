"""Tables over examples: per-class gene tables of attributions; head-ablation statistics.

* :mod:`.attribution_tables`: :func:`attribution_table`, :func:`per_class_tables`,
  :func:`top_genes`.
* :mod:`.explained_variance`: :func:`encode_groups`, :func:`explained_variance`
  (within-group explained variance from segment sums).
* :mod:`.permutation`: :func:`permutation_test`, :func:`default_n_permutations`.
* :mod:`.multiple_testing`: :func:`adjust_p_values` (Benjamini-Hochberg).
* :mod:`.classifier_effects`: :func:`classifier_metrics`, :func:`sign_flip_test`,
  :func:`classifier_effects` (a classifier's metric drops under head ablation,
  with a paired sign-flip test).
* :mod:`.probes`: held-out node importances: :func:`stratified_folds`,
  :func:`fit_logistic` (batched probes), :func:`cross_validated_logits`,
  :func:`auroc`, :func:`bootstrap_weights`, :func:`bootstrap_auroc`,
  :func:`node_index`.
* :mod:`.probe_statistics`: :func:`node_probe_statistics` (per node and class:
  out-of-fold AUROC, bootstrap CI, permutation p-value, controls), :class:`NodeProbeFit`.
* :mod:`.probe_results`: :func:`probe_nodes`, :func:`compare_parent_children`,
  :func:`perturbation_effects` and their results (:class:`NodeProbeResult`,
  :class:`NodeComparisonResult`, :class:`NodePerturbationResult`).

``HeadAblationResult`` lives in :mod:`captum_genomics.heads.result`; it is
still importable from here (loaded on first access, so importing this package
does not import :mod:`captum_genomics.heads`).
"""

from typing import Any

from captum_genomics.stats.attribution_tables import (
    attribution_table,
    per_class_tables,
    top_genes,
)
from captum_genomics.stats.classifier_effects import (
    classifier_effects,
    classifier_metrics,
    sign_flip_test,
)
from captum_genomics.stats.explained_variance import encode_groups, explained_variance
from captum_genomics.stats.multiple_testing import adjust_p_values
from captum_genomics.stats.permutation import default_n_permutations, permutation_test
from captum_genomics.stats.probe_results import (
    NodeComparisonResult,
    NodePerturbationResult,
    NodeProbeResult,
    compare_parent_children,
    perturbation_effects,
    probe_nodes,
)
from captum_genomics.stats.probe_statistics import NodeProbeFit, node_probe_statistics
from captum_genomics.stats.probes import (
    auroc,
    bootstrap_auroc,
    bootstrap_weights,
    cross_validated_logits,
    fit_logistic,
    node_index,
    stratified_folds,
)

__all__ = [
    "attribution_table",
    "per_class_tables",
    "top_genes",
    "HeadAblationResult",
    "encode_groups",
    "explained_variance",
    "permutation_test",
    "default_n_permutations",
    "adjust_p_values",
    "classifier_metrics",
    "sign_flip_test",
    "classifier_effects",
    "NodeProbeFit",
    "auroc",
    "bootstrap_auroc",
    "bootstrap_weights",
    "cross_validated_logits",
    "fit_logistic",
    "node_index",
    "node_probe_statistics",
    "stratified_folds",
    "NodeComparisonResult",
    "NodePerturbationResult",
    "NodeProbeResult",
    "compare_parent_children",
    "perturbation_effects",
    "probe_nodes",
]


def __getattr__(name: str) -> Any:
    """``HeadAblationResult``, imported from :mod:`captum_genomics.heads.result` on first access.

    Parameters
    ----------
    name : str
        The attribute looked up on this package.

    Returns
    -------
    type
        :class:`captum_genomics.heads.result.HeadAblationResult` for
        ``name == "HeadAblationResult"``.

    Raises
    ------
    AttributeError
        For any other name.
    """
    if name == "HeadAblationResult":
        from captum_genomics.heads.result import HeadAblationResult

        globals()[name] = HeadAblationResult
        return HeadAblationResult
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
