"""DeepLIFT: the engine that applies rules to torch operations, the rules, and contributions.

- :mod:`.engine`: the forward/backward passes that turn rules into multipliers.
- :mod:`.rules`: one small module per rule family, the op lists and the registry.
- :mod:`.contributions`: multipliers to contributions and hypothetical contributions.
- :mod:`.decompositions`: composite ops (scaled dot-product and multi-head attention)
  rewritten from ops that have rules; register your own as a ``Decomposition``.
"""

from captum_genomics.deeplift.contributions import (
    hypothetical_contributions,
    project_contributions,
)
from captum_genomics.deeplift.decompositions import DEFAULT_DECOMPOSITIONS, Decomposition
from captum_genomics.deeplift.engine import (
    DeepLiftPasses,
    deeplift_multipliers,
    detached_forward,
    fused_attention_disabled,
)

__all__ = [
    "DEFAULT_DECOMPOSITIONS",
    "Decomposition",
    "DeepLiftPasses",
    "deeplift_multipliers",
    "detached_forward",
    "fused_attention_disabled",
    "hypothetical_contributions",
    "project_contributions",
]
