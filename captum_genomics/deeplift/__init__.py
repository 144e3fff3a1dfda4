"""DeepLIFT: the engine that applies rules to torch operations, the rules, and contributions.

- :mod:`.engine`: the forward/backward passes that turn rules into multipliers.
- :mod:`.rules`: one small module per rule family, the op lists and the registry.
- :mod:`.contributions`: multipliers to contributions and hypothetical contributions.
"""

from captum_genomics.deeplift.contributions import (
    hypothetical_contributions,
    project_contributions,
)
from captum_genomics.deeplift.engine import DeepLiftPasses, deeplift_multipliers, detached_forward

__all__ = [
    "DeepLiftPasses",
    "deeplift_multipliers",
    "detached_forward",
    "hypothetical_contributions",
    "project_contributions",
]
