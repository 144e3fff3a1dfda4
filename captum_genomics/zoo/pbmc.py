"""A small MLP that tells the 10 PBMC cell types of ``pbmc68k_reduced`` apart.

A worked example for single-cell attribution (FastSHAP over genes), not a
state-of-the-art annotator. Input: the log-normalized expression of **all 765
genes** of ``pbmc68k_reduced`` (``adata.raw.X``), so every gene is a player and
the attributions cover the whole panel (the panel is already a
highly-variable-gene selection, so no further HVG filter is applied). Output:
10 logits, in the order of :attr:`captum_genomics.sc.pbmc.PBMCData.label_names`.

Its weights were fitted by ``scripts/train_pbmc.py`` on the fixed stratified
split of :func:`captum_genomics.sc.pbmc.load_pbmc68k` (seed 0);
``pbmc_classifier.json`` beside the weights records the architecture, split,
class names and held-out metrics.
"""

from __future__ import annotations

import json
from importlib import resources

import torch
from torch import nn

__all__ = ["PBMCClassifier", "load_pbmc_classifier", "load_pbmc_metadata",
           "WEIGHTS_FILE", "METADATA_FILE"]

WEIGHTS_FILE = "pbmc_classifier.pt"
METADATA_FILE = "pbmc_classifier.json"


class PBMCClassifier(nn.Module):
    """Linear-ReLU-Dropout-Linear: log-normalized expression ``(N, G)`` to logits ``(N, C)``.

    Parameters
    ----------
    n_genes
        Default 765 (all genes of ``pbmc68k_reduced``).
    n_classes
        Default 10.
    hidden_width
        Default 64.
    dropout
        Dropout before the output layer (active only in training mode).
        Default 0.3.
    """

    def __init__(self, n_genes: int = 765, n_classes: int = 10, hidden_width: int = 64,
                 dropout: float = 0.3) -> None:
        super().__init__()
        self.fc1 = nn.Linear(n_genes, hidden_width)
        self.relu = nn.ReLU()
        self.dropout = nn.Dropout(dropout)
        self.fc2 = nn.Linear(hidden_width, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.dropout(self.relu(self.fc1(x))))


def load_pbmc_metadata() -> dict:
    """The JSON shipped with the weights: architecture, split, classes, genes, metrics."""
    text = resources.files("captum_genomics.zoo").joinpath(METADATA_FILE).read_text("utf-8")
    return json.loads(text)


def load_pbmc_classifier() -> PBMCClassifier:
    """The shipped classifier, on the CPU, in eval mode.

    Returns
    -------
    PBMCClassifier
        Weights read with ``torch.load(weights_only=True)``.
    """
    meta = load_pbmc_metadata()
    model = PBMCClassifier(**meta["architecture"])
    with resources.as_file(resources.files("captum_genomics.zoo").joinpath(WEIGHTS_FILE)) as p:
        state = torch.load(p, map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    return model.eval()
