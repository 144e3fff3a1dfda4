"""Fused CPU kernels (numba) for the hottest DeepLIFT rule arithmetic.

One module per rule family; each computes in one or two passes over the pair
activations what the rule's torch version computes in many, with the same float
operations in the same order where the rule's results are compared bitwise.
The rules in :mod:`captum_genomics.deeplift.rules` call them for CPU
float32/float64 tensors and keep their torch version for everything else
(GPU, half precision). Compilation is cached like the shuffles' kernels
(:func:`captum_genomics.references._kernels._kernel`); rows are split over the
package's thread pool (:func:`captum_genomics.references._draw.parallel`).

- :mod:`.rescale`: the rescale multipliers of ReLU (fused into the backward) and of any
  other elementwise function.
- :mod:`.softmax`: the softmax / log-softmax rule's multipliers and backward, one pass
  per row.
- :mod:`.maxpool`: the max-pool rule's backward (routing and division) in one pass.
"""

import torch
from torch import Tensor

__all__ = ["fused_available"]


def fused_available(*tensors: Tensor) -> bool:
    """Whether the kernels apply to ``tensors``: all on the CPU, one dtype, float32 or
    float64, outside ``torch.autocast`` (this module imports no numba; the kernels' own
    modules do)."""
    first = tensors[0]
    return (all(t.device.type == "cpu" and t.dtype == first.dtype for t in tensors)
            and first.dtype in (torch.float32, torch.float64)
            and not torch.is_autocast_enabled("cpu"))
