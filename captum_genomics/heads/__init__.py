"""Head adapters for attention modules, and batched head ablation.

* :mod:`.adapters`: :class:`HeadAdapter` and the built-in adapters
  (``torch.nn.MultiheadAttention``, ``torch.nn.TransformerEncoderLayer``,
  modules with a head axis, out-projections called as modules),
  :func:`per_head_outputs`.
* :mod:`.registry`: :class:`HeadAdapterRegistry` (immutable, extensible with
  ``with_adapter``), :func:`default_head_adapters`.
* :mod:`.ablation`: :func:`ablated_forward`, all ablation variants of a model
  as (variant, example) rows in a few batched passes.
* :mod:`.result`: :class:`HeadAblationResult`, the tables of a head-ablation
  explained-variance run; :class:`HeadAblationClassifierResult`, those of a
  classifier's head-ablation effects.
"""

from captum_genomics.heads.ablation import (
    check_ablation_options,
    ABLATIONS,
    DEFAULT_BATCH_ROWS,
    DEFAULT_CHUNK_BYTES,
    MODES,
    ablated_forward,
    default_batch_size,
    keep_masks,
    reference_means,
)
from captum_genomics.heads.adapters import (
    HeadAdapter,
    HeadAxisAdapter,
    MultiheadAttentionAdapter,
    OutputProjectionAdapter,
    TransformerEncoderLayerAdapter,
    UnsupportedAttentionError,
    per_head_outputs,
)
from captum_genomics.heads.registry import (
    AdapterFactory,
    HeadAdapterRegistry,
    default_head_adapters,
)
from captum_genomics.heads.result import (
    HeadAblationClassifierResult,
    HeadAblationResult,
)

__all__ = [
    "HeadAdapter",
    "MultiheadAttentionAdapter",
    "TransformerEncoderLayerAdapter",
    "HeadAxisAdapter",
    "OutputProjectionAdapter",
    "UnsupportedAttentionError",
    "per_head_outputs",
    "AdapterFactory",
    "HeadAdapterRegistry",
    "default_head_adapters",
    "ablated_forward",
    "check_ablation_options",
    "keep_masks",
    "reference_means",
    "MODES",
    "ABLATIONS",
    "DEFAULT_BATCH_ROWS",
    "DEFAULT_CHUNK_BYTES",
    "default_batch_size",
    "HeadAblationResult",
    "HeadAblationClassifierResult",
]
