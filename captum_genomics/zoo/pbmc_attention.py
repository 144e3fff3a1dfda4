"""An attention-over-neighbours expression model of PBMCs, for head ablation.

In the spirit of AMICI (Hong et al. 2025, "AMICI: attention mechanism
interpretation of cell-cell interactions"; written from the paper's
description, no code taken): each cell (the *receiver*) predicts its own
log-normalized expression from the expression of its ``k`` neighbours (the
*senders*) through multi-head attention whose **query depends only on the
receiver's cell type** and whose **keys and values are a projection of each
neighbour's expression**::

    tokens  = sender(neighbours)                   (N, k, d_model)   Linear(G, d_model)
    query   = receiver(cell_type)[:, None]         (N, 1, d_model)   Embedding(T, d_model)
    context = attention(query, tokens, tokens)     (N, 1, d_model)   nn.MultiheadAttention
    output  = baseline(cell_type) + decoder(context)   (N, G)        Embedding(T, G), Linear

The per-type ``baseline`` carries each type's mean profile, so the attention
path models the variation *within* a cell type, which is what head ablation
with within-type explained variance measures. Genes: all 765 of
``pbmc68k_reduced`` (already a highly-variable panel), log-normalized
(``adata.raw.X``). Neighbours: the 9 kNN-graph neighbours of
:func:`captum_genomics.sc.neighbours.neighbour_inputs` (expression-space
neighbours, self excluded; not spatial, so this is expression smoothing, not
cell-cell communication).

The shipped weights (``pbmc_attention.pt``, ~230 KB) were fitted by
``scripts/train_pbmc_attention.py`` on the fixed train split (seed 0);
``pbmc_attention.json`` records the architecture, split, training and
held-out metrics (explained variance within cell types against the per-type
mean and neighbour-mean baselines).
"""

from __future__ import annotations

import json
from importlib import resources

import torch
from torch import Tensor, nn

from captum_genomics._utils.checks import check_shape, check_tensor

__all__ = ["NeighbourAttentionModel", "load_pbmc_attention_model",
           "load_pbmc_attention_metadata", "WEIGHTS_FILE", "METADATA_FILE"]

WEIGHTS_FILE = "pbmc_attention.pt"
METADATA_FILE = "pbmc_attention.json"


class NeighbourAttentionModel(nn.Module):
    """Predict a cell's expression ``(N, G)`` from its neighbours' ``(N, k, G)`` and its type.

    Parameters
    ----------
    n_genes
        G. Default 765 (all genes of ``pbmc68k_reduced``).
    n_types
        Number of cell types T. Default 10.
    d_model
        Width of the tokens, query and attention. Default 32.
    n_heads
        Attention heads (``d_model`` must be divisible by it). Default 4.
    input_dropout
        Dropout on the neighbours' expression before the sender projection,
        active only in training mode (``model.eval()`` turns it off). Default
        0.5.

    Attributes
    ----------
    sender : nn.Linear
        ``G -> d_model``, applied to each neighbour (keys and values).
    receiver : nn.Embedding
        ``T x d_model``, the query of each cell type.
    attention : nn.MultiheadAttention
        ``batch_first=True``, ``n_heads`` heads, no attention dropout.
    decoder : nn.Linear
        ``d_model -> G``.
    baseline : nn.Embedding
        ``T x G``: the per-type expression baseline.

    Notes
    -----
    ``forward(neighbours, cell_type)``: ``neighbours`` ``(N, k, G)`` float,
    ``cell_type`` ``(N,)`` int64 in ``[0, T)``; returns ``(N, G)``. Raises
    ``ValueError`` for wrong shapes or out-of-range types and ``TypeError``
    for non-tensors or a non-integer ``cell_type``.
    """

    def __init__(self, n_genes: int = 765, n_types: int = 10, d_model: int = 32,
                 n_heads: int = 4, input_dropout: float = 0.5) -> None:
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"`d_model`={d_model} must be divisible by `n_heads`={n_heads}.")
        self.n_genes, self.n_types = n_genes, n_types
        self.input_dropout = nn.Dropout(input_dropout)
        self.sender = nn.Linear(n_genes, d_model)
        self.receiver = nn.Embedding(n_types, d_model)
        self.attention = nn.MultiheadAttention(d_model, n_heads, batch_first=True)
        self.decoder = nn.Linear(d_model, n_genes)
        self.baseline = nn.Embedding(n_types, n_genes)

    def forward(self, neighbours: Tensor, cell_type: Tensor) -> Tensor:
        check_tensor(neighbours, "neighbours")
        check_tensor(cell_type, "cell_type")
        check_shape(neighbours, "neighbours", (None, None, self.n_genes))
        check_shape(cell_type, "cell_type", (neighbours.shape[0],))
        if cell_type.is_floating_point() or cell_type.dtype == torch.bool:
            raise TypeError(f"`cell_type` must hold integer type indices, got {cell_type.dtype}.")
        if cell_type.numel() and (int(cell_type.min()) < 0 or int(cell_type.max()) >= self.n_types):
            raise ValueError(f"`cell_type` must lie in [0, {self.n_types}), got values in "
                             f"[{int(cell_type.min())}, {int(cell_type.max())}].")
        tokens = self.sender(self.input_dropout(neighbours))
        query = self.receiver(cell_type).unsqueeze(1)
        context, _ = self.attention(query, tokens, tokens, need_weights=False)
        return self.baseline(cell_type) + self.decoder(context.squeeze(1))


def load_pbmc_attention_metadata() -> dict:
    """The JSON shipped with the weights: architecture, data, split, training, metrics.

    Returns
    -------
    dict
        Keys ``architecture`` (the constructor arguments), ``type_names``,
        ``genes``, ``split``, ``metrics`` (held-out explained variance, see
        ``scripts/train_pbmc_attention.py``), ``training``.
    """
    text = resources.files("captum_genomics.zoo").joinpath(METADATA_FILE).read_text("utf-8")
    return json.loads(text)


def load_pbmc_attention_model() -> NeighbourAttentionModel:
    """The shipped neighbour-attention model, on the CPU, in eval mode.

    Returns
    -------
    NeighbourAttentionModel
        4 heads, d_model 32, 765 genes, 10 cell types (the order of
        ``load_pbmc_attention_metadata()["type_names"]``); weights read with
        ``torch.load(weights_only=True)``.
    """
    meta = load_pbmc_attention_metadata()
    model = NeighbourAttentionModel(**meta["architecture"])
    with resources.as_file(resources.files("captum_genomics.zoo").joinpath(WEIGHTS_FILE)) as p:
        state = torch.load(p, map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    return model.eval()
