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
