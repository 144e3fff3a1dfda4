"""A BPNet-style model for benchmarks and validation (random weights by default).

The architecture of Avsec et al. (2021), "Base-resolution models of
transcription-factor binding reveal soft motif syntax", Nat. Genet.: a wide
first convolution, a stack of dilated residual convolutions with ReLU, and a
count head (global average pooling and a linear layer). Only the count head
is kept, so the output is ``(B, n_outputs)`` and every output is a valid
``target`` for attribution.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["BPNetLike"]


class BPNetLike(nn.Module):
    """BPNet-style count model.

    Parameters
    ----------
    n_filters : int
        Channels of every convolution. Default 64.
    n_layers : int
        Dilated residual layers (dilation ``2**i``). Default 8.
    n_outputs : int
        Outputs (tasks/targets). Default 8.
    first_kernel : int
        Width of the first convolution. Default 21.

    Input ``(B, 4, L)`` one-hot, output ``(B, n_outputs)``.
    """

    def __init__(self, n_filters: int = 64, n_layers: int = 8, n_outputs: int = 8,
                 first_kernel: int = 21):
        super().__init__()
        self.iconv = nn.Conv1d(4, n_filters, first_kernel, padding=first_kernel // 2)
        self.irelu = nn.ReLU()
        self.rconvs = nn.ModuleList(
            nn.Conv1d(n_filters, n_filters, 3, padding=2 ** i, dilation=2 ** i)
            for i in range(1, n_layers + 1)
        )
        self.rrelus = nn.ModuleList(nn.ReLU() for _ in range(n_layers))
        self.linear = nn.Linear(n_filters, n_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.irelu(self.iconv(x))
        for conv, relu in zip(self.rconvs, self.rrelus):
            h = h + relu(conv(h))
        return self.linear(h.mean(dim=-1))
