"""A small transformer that tells GM12878 CTCF ChIP-seq peaks from dinucleotide shuffles.

The architecture most sequence models since Enformer share, at toy size: a
convolutional stem (``Conv1d`` + GELU + ``MaxPool1d``), sinusoidal position
encodings, two pre-norm ``nn.TransformerEncoderLayer`` blocks built from
PyTorch's own modules (``d_model=32``, 4 heads, GELU feed-forward), a final
``LayerNorm``, a mean over positions and one output logit. Every op has an
exact DeepLIFT rule or decomposition in :mod:`captum_genomics.deeplift`, so
:class:`~captum_genomics.ShuffleDeepLiftShap` is additive on it to rounding.
Its weights were fitted by ``scripts/train_ctcf_transformer.py`` on the
vendored peaks (:func:`captum_genomics.seq.datasets.load_ctcf_peaks`) with the
CNN's split and held-out negatives; ``ctcf_transformer.json`` beside the
weights records the architecture, the split and the held-out metrics.
"""

from __future__ import annotations

import json
import math

import torch
from torch import Tensor, nn

from captum_genomics.zoo.ctcf import _zoo_path

__all__ = [
    "METADATA_FILE",
    "WEIGHTS_FILE",
    "CTCFTransformer",
    "load_ctcf_transformer",
    "load_ctcf_transformer_metadata",
    "sinusoidal_positions",
]

WEIGHTS_FILE = "ctcf_transformer.pt"
METADATA_FILE = "ctcf_transformer.json"


def sinusoidal_positions(length: int, d_model: int) -> Tensor:
    """The fixed sine/cosine position encodings of Vaswani et al. (2017).

    Parameters
    ----------
    length
        Number of positions.
    d_model
        Embedding width (even).

    Returns
    -------
    Tensor, float32, shape=(length, d_model)
        ``P[p, 2i] = sin(p / 10000^(2i/d))``, ``P[p, 2i+1] = cos(p / 10000^(2i/d))``.

    Raises
    ------
    ValueError
        If ``d_model`` is odd or ``length``/``d_model`` is not positive.
    """
    if length < 1 or d_model < 2 or d_model % 2:
        raise ValueError(
            f"`length` must be >= 1 and `d_model` even and >= 2, got length={length}, "
            f"d_model={d_model}."
        )
    position = torch.arange(length, dtype=torch.float64).unsqueeze(1)
    freq = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float64)
                     * (-math.log(10000.0) / d_model))
    table = torch.zeros(length, d_model, dtype=torch.float64)
    table[:, 0::2] = torch.sin(position * freq)
    table[:, 1::2] = torch.cos(position * freq)
    return table.float()


class CTCFTransformer(nn.Module):
    """Conv stem + two ``nn.TransformerEncoderLayer`` blocks + mean pool: one logit per sequence.

    Parameters
    ----------
    d_model
        Channels of the stem and width of the encoder. Default 32.
    n_heads
        Attention heads per layer. Default 4.
    n_layers
        Encoder layers. Default 2.
    dim_feedforward
        Hidden width of each layer's feed-forward block. Default 64.
    filter_width
        Width of the stem convolution (``padding="same"``). Default 15, the
        width of JASPAR's CTCF matrix MA0139.2.
    pool
        Kernel and stride of the max-pool after the stem: a length-``L`` input
        becomes ``L // pool`` tokens. Default 4.
    dropout
        Dropout inside the encoder layers and before the output (training
        only). Default 0.1.
    max_tokens
        Longest token sequence the position table covers. Default 1024
        (inputs up to ``max_tokens * pool`` bp).

    Notes
    -----
    Input is one-hot DNA ``(N, 4, L)`` with ``pool <= L <= max_tokens * pool``;
    output is ``(N, 1)`` logits of "is a CTCF peak". The encoder layers use
    ``batch_first=True``, ``norm_first=True`` and ``activation="gelu"``, and
    their heads are labelled by module path (``encoder.layers.0.self_attn``)
    in head ablation.
    """

    def __init__(
        self,
        d_model: int = 32,
        n_heads: int = 4,
        n_layers: int = 2,
        dim_feedforward: int = 64,
        filter_width: int = 15,
        pool: int = 4,
        dropout: float = 0.1,
        max_tokens: int = 1024,
    ):
        super().__init__()
        self.conv = nn.Conv1d(4, d_model, filter_width, padding="same")
        self.act = nn.GELU()
        self.pool = nn.MaxPool1d(pool)
        self.register_buffer("positions", sinusoidal_positions(max_tokens, d_model),
                             persistent=False)
        layer = nn.TransformerEncoderLayer(
            d_model, n_heads, dim_feedforward, dropout=dropout, activation="gelu",
            batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)
        self.linear = nn.Linear(d_model, 1)

    def forward(self, x: Tensor) -> Tensor:
        """Logits, shape=(N, 1), for one-hot ``x`` shaped ``(N, 4, L)``."""
        h = self.pool(self.act(self.conv(x))).transpose(1, 2)  # (N, T, d_model)
        h = h + self.positions[: h.shape[1]].to(h.dtype)
        h = self.norm(self.encoder(h))
        return self.linear(self.dropout(h.mean(1)))


def load_ctcf_transformer_metadata() -> dict:
    """The training record shipped beside the weights (``ctcf_transformer.json``).

    Returns
    -------
    dict
        Keys include ``"architecture"`` (the :class:`CTCFTransformer` keyword
        arguments), ``"split"`` (lists of peak indices ``"train"``,
        ``"validation"``, ``"test"`` into
        :func:`~captum_genomics.seq.datasets.load_ctcf_peaks`, the same as the
        CNN's :func:`~captum_genomics.zoo.ctcf_split`), ``"metrics"``
        (validation, test and train AUROC against dinucleotide-shuffled
        negatives, defined as for the CNN) and ``"training"`` (seed, threads,
        epochs, best epoch, optimiser, torch and Python versions, seconds,
        per-epoch history).

    Raises
    ------
    FileNotFoundError
        If the package was installed without its data files.
    """
    with open(_zoo_path(METADATA_FILE), encoding="utf-8") as handle:
        return json.load(handle)


def load_ctcf_transformer() -> CTCFTransformer:
    """The trained CTCF transformer, in eval mode, on the CPU, in float32.

    Returns
    -------
    CTCFTransformer
        Built from the architecture in ``ctcf_transformer.json`` with the
        shipped ``ctcf_transformer.pt`` weights (read with
        ``torch.load(weights_only=True)``). It maps one-hot DNA ``(N, 4, L)``,
        float32, with ``L >= 4`` and ``L // 4 <= 1024`` tokens, to ``(N, 1)``
        float32 logits of "is a CTCF peak"; it was trained on 200-bp
        sequences.

    Raises
    ------
    FileNotFoundError
        If the package was installed without its data files.
    """
    meta = load_ctcf_transformer_metadata()
    model = CTCFTransformer(**meta["architecture"])
    state = torch.load(_zoo_path(WEIGHTS_FILE), map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    return model.eval()
