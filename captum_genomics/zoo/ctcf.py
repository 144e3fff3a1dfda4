"""A small CNN that tells GM12878 CTCF ChIP-seq peaks from dinucleotide shuffles.

The model is a worked example for attribution, not a state-of-the-art
predictor: two convolutions, a max-pool and a global mean, only layers that
DeepLIFT's rules cover (``Conv1d``, ``ReLU``, ``MaxPool1d``, the linear
``AdaptiveAvgPool1d``, ``Flatten``, ``Dropout`` in eval mode, ``Linear``).
Its weights were fitted by ``scripts/train_ctcf.py`` on the vendored peaks
(:func:`captum_genomics.seq.datasets.load_ctcf_peaks`); ``ctcf_cnn.json`` beside
the weights records the architecture, the train/validation/test split and the
held-out metrics.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import numpy as np
import torch
from scipy.stats import rankdata
from torch import Tensor, nn

__all__ = [
    "CTCFNet",
    "load_ctcf_model",
    "load_ctcf_metadata",
    "ctcf_split",
    "auroc",
    "WEIGHTS_FILE",
    "METADATA_FILE",
]

WEIGHTS_FILE = "ctcf_cnn.pt"
METADATA_FILE = "ctcf_cnn.json"


class CTCFNet(nn.Module):
    """Conv-ReLU-MaxPool-Conv-ReLU-mean-Linear: one logit per sequence.

    Parameters
    ----------
    n_filters
        Channels of both convolutions. Default 32.
    filter_width
        Width of the first (motif-detecting) convolution. Default 15, the
        width of JASPAR's CTCF matrix MA0139.2.
    hidden_width
        Width of the second convolution. Default 5.
    pool
        Kernel and stride of the max-pool after the first convolution.
        Default 4.
    dropout
        Dropout probability before the output layer (active only in training
        mode). Default 0.1.

    Notes
    -----
    Input is one-hot DNA ``(N, 4, L)`` with
    ``L >= filter_width + pool * hidden_width - 1``; output is ``(N, 1)``
    logits of "is a CTCF peak". The global mean makes the model accept any
    such length. Every nonlinearity is its own module instance, as
    DeepLIFT's hooks require.
    """

    def __init__(
        self,
        n_filters: int = 32,
        filter_width: int = 15,
        hidden_width: int = 5,
        pool: int = 4,
        dropout: float = 0.1,
    ):
        super().__init__()
        self.conv1 = nn.Conv1d(4, n_filters, filter_width)
        self.relu1 = nn.ReLU()
        self.pool1 = nn.MaxPool1d(pool)
        self.conv2 = nn.Conv1d(n_filters, n_filters, hidden_width)
        self.relu2 = nn.ReLU()
        self.mean = nn.AdaptiveAvgPool1d(1)
        self.flatten = nn.Flatten()
        self.dropout = nn.Dropout(dropout)
        self.linear = nn.Linear(n_filters, 1)

    def forward(self, x: Tensor) -> Tensor:
        """Logits, shape=(N, 1), for one-hot ``x`` shaped ``(N, 4, L)``."""
        x = self.pool1(self.relu1(self.conv1(x)))
        x = self.relu2(self.conv2(x))
        return self.linear(self.dropout(self.flatten(self.mean(x))))


def _zoo_path(name: str) -> Path:
    return Path(str(resources.files("captum_genomics") / "zoo" / name))


def load_ctcf_metadata() -> dict:
    """The training record shipped beside the weights (``ctcf_cnn.json``).

    Returns
    -------
    dict
        Keys include ``"architecture"`` (the :class:`CTCFNet` keyword
        arguments), ``"split"`` (lists of peak indices ``"train"``,
        ``"validation"``, ``"test"`` into
        :func:`~captum_genomics.seq.datasets.load_ctcf_peaks`), ``"metrics"``
        (held-out AUROC) and ``"training"`` (seed, epochs, optimiser).
    """
    with open(_zoo_path(METADATA_FILE), encoding="utf-8") as handle:
        return json.load(handle)


def ctcf_split() -> dict[str, np.ndarray]:
    """The fixed train/validation/test split of the 500 CTCF peaks.

    Returns
    -------
    dict of str to np.ndarray of int64
        ``{"train": (400,), "validation": (50,), "test": (50,)}`` sorted peak
        indices; the three sets are disjoint and cover all 500 peaks.
    """
    split = load_ctcf_metadata()["split"]
    return {k: np.asarray(v, dtype=np.int64) for k, v in split.items()}


def load_ctcf_model() -> CTCFNet:
    """The trained CTCF CNN, in eval mode, on the CPU.

    Returns
    -------
    CTCFNet
        Built from the architecture in ``ctcf_cnn.json`` with the shipped
        ``ctcf_cnn.pt`` weights (read with ``torch.load(weights_only=True)``).
    """
    meta = load_ctcf_metadata()
    model = CTCFNet(**meta["architecture"])
    state = torch.load(_zoo_path(WEIGHTS_FILE), map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    return model.eval()


def auroc(labels, scores) -> float:
    """Area under the ROC curve by the rank-sum (Mann-Whitney U) formula.

    ``AUROC = (R_pos - n_pos (n_pos + 1) / 2) / (n_pos n_neg)`` where
    ``R_pos`` is the sum of the positives' ranks among all scores; tied
    scores get their average rank, so a tie counts one half, as in
    ``sklearn.metrics.roc_auc_score``.

    Parameters
    ----------
    labels
        Array-like of 0/1 (or bool), shape=(n,).
    scores
        Array-like of floats, shape=(n,); larger means more likely positive.

    Returns
    -------
    float
        In ``[0, 1]``; 0.5 is chance.

    Raises
    ------
    ValueError
        If the shapes differ, labels are not binary, or one class is absent.
    """
    labels = np.asarray(labels).reshape(-1)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if labels.shape != scores.shape:
        raise ValueError(
            f"`labels` and `scores` must have the same length, got {labels.shape} "
            f"and {scores.shape}."
        )
    if not np.isin(labels, (0, 1)).all():
        raise ValueError("`labels` must be 0/1 or boolean.")
    pos = labels.astype(bool)
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError("AUROC needs at least one positive and one negative example.")
    ranks = rankdata(scores)
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))
