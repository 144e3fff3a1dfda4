"""A Basset-style model for benchmarks and validation (random weights by default).

The architecture of Kelley, Snoek & Rinn (2016), "Basset: learning the
regulatory code of the accessible genome with deep convolutional neural
networks", Genome Research: three wide convolutions, each followed by batch
normalisation, ReLU and max-pooling, then two dense layers with ReLU and a
dense output of one logit per cell type. The layer sizes are Basset's (300,
200, 200 filters of width 19, 11, 7; pools 3, 4, 4; two 1000-unit layers; 164
outputs) on 600-bp inputs.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["BassetLike"]


class BassetLike(nn.Module):
    """Basset-style classifier.

    Parameters
    ----------
    length : int
        Input length in bp. Default 600 (Basset's).
    n_outputs : int
        Outputs (cell types). Default 164 (Basset's).
    filters : tuple of int
        Filters of the three convolutions. Default ``(300, 200, 200)``.
    widths : tuple of int
        Their widths. Default ``(19, 11, 7)``.
    pools : tuple of int
        Max-pool widths (and strides) after each. Default ``(3, 4, 4)``.
    hidden : int
        Units of each of the two dense layers. Default 1000.

    Input ``(B, 4, length)`` one-hot, output ``(B, n_outputs)`` logits; every
    output is a valid ``target``. Call ``.eval()`` before attribution (batch
    normalisation then uses its running statistics, an affine map).
    """

    def __init__(self, length: int = 600, n_outputs: int = 164,
                 filters: tuple[int, ...] = (300, 200, 200), widths: tuple[int, ...] = (19, 11, 7),
                 pools: tuple[int, ...] = (3, 4, 4), hidden: int = 1000):
        super().__init__()
        layers: list[nn.Module] = []
        channels, size = 4, length
        for f, w, p in zip(filters, widths, pools):
            layers += [nn.Conv1d(channels, f, w, padding=w // 2), nn.BatchNorm1d(f), nn.ReLU(),
                       nn.MaxPool1d(p)]
            channels, size = f, size // p
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(channels * size, hidden), nn.ReLU(), nn.Dropout(0.3),
            nn.Linear(hidden, hidden), nn.ReLU(), nn.Dropout(0.3), nn.Linear(hidden, n_outputs))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))
