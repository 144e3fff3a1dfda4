"""Small attention models shared by the head-ablation tests."""

import torch
import torch.nn as nn

DT = torch.float64


class NeighbourModel(nn.Module):
    """Stand-in for the real model: query from the cell type, keys from the neighbours."""

    def __init__(self, n_genes=6, n_types=3, embed=8, heads=4, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.encode = nn.Linear(n_genes, embed)
        self.query = nn.Embedding(n_types, embed)
        self.attention = nn.MultiheadAttention(embed, heads, batch_first=True)
        self.decode = nn.Linear(embed, n_genes)
        with torch.no_grad():
            for p in self.parameters():
                p.normal_(0, 0.5)
        self.to(DT).eval()

    def forward(self, neighbours, cell_type):
        kv = self.encode(neighbours)
        q = self.query(cell_type).unsqueeze(1)
        out, _ = self.attention(q, kv, kv, need_weights=False)
        return self.decode(out.squeeze(1))


class EncoderClassifier(nn.Module):
    """A classifier with two ``nn.TransformerEncoderLayer`` blocks: ``(N, L, F) -> (N, C)`` logits.

    A linear token embedding, ``nn.TransformerEncoder`` of two layers (batch first,
    ``heads`` heads, dropout 0.1 for training only), a mean over positions and a
    linear read-out. ``n_classes=1`` gives one binary logit per example ``(N, 1)``.
    Weights drawn from ``N(0, 0.5^2)`` under ``seed``; float64, eval mode.
    """

    def __init__(self, n_features=5, d_model=8, heads=4, n_classes=3, norm_first=False,
                 activation="relu", seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.embed = nn.Linear(n_features, d_model)
        layer = nn.TransformerEncoderLayer(d_model, heads, dim_feedforward=16, dropout=0.1,
                                           activation=activation, batch_first=True,
                                           norm_first=norm_first)
        self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.out = nn.Linear(d_model, n_classes)
        with torch.no_grad():
            for name, p in self.named_parameters():
                if "norm" not in name:
                    p.normal_(0, 0.5)
        self.to(DT).eval()

    def forward(self, x):
        return self.out(self.encoder(self.embed(x)).mean(1))
