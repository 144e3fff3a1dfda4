"""Tables over examples: per-class gene tables of attributions."""

from captum_genomics.summaries.attribution_tables import (
    attribution_table,
    per_class_tables,
    top_genes,
)

__all__ = ["attribution_table", "per_class_tables", "top_genes"]
