"""Tables over examples: per-class gene tables of attributions; head-ablation explained variance."""

from captum_genomics.stats.attribution_tables import (
    attribution_table,
    per_class_tables,
    top_genes,
)
from captum_genomics.stats.explained_variance import (
    HeadAblationResult,
    adjust_p_values,
    default_n_permutations,
    encode_groups,
    explained_variance,
    permutation_test,
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
]
