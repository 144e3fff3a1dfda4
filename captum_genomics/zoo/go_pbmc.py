"""A GO-structured cell-type classifier of PBMCs (genes -> GO terms -> hidden -> types).

In the spirit of DCell (Ma et al. 2018, Nat. Methods 15:290) and NetworkVI
(written from the papers' descriptions, no code taken): every Gene Ontology
biological-process term is a *node*, a small group of hidden units that sees
only the genes of its term::

    x        (N, G)      log-normalized expression, G=765 (pbmc68k_reduced .raw.X)
    terms    (N, T*k)    tanh(masked Linear(G, T*k)): units t*k .. t*k+k-1 of term t
                         see only term t's genes; T=134 terms, k=2 units per term
    hidden   (N, H)      ReLU(Linear(T*k, H)), H=64, dropout 0.3 before and after
    logits   (N, C)      Linear(H, C), C=10 cell types (PBMCData.label_names order)

The masked layer is :class:`MaskedLinear`: ``F.linear(x, weight * mask, bias)``
with the term-by-gene mask a (non-persistent) buffer rebuilt from the vendored
GO table (:func:`captum_genomics.sc.go.load_go_terms`), so the map from genes
to term units is linear in ``x`` and attribution rules see an ordinary linear
op; the shipped weights are also exactly zero outside the mask. Of the 765
genes, 623 belong to at least one kept term; the others have no path to the
output (their attributions are exactly 0).

The module ``model.terms`` (:class:`GOTermLayer`, its output is the tanh of
the masked layer) is the node layer: :func:`go_pbmc_nodes` maps each term to
its unit indices there and :func:`go_pbmc_parents` gives the hierarchy among
the kept terms (nearest kept ancestors under ``is_a``/``part_of``).

The shipped weights (``go_pbmc.pt``) were fitted by ``scripts/train_go_pbmc.py``
on the fixed stratified split of :func:`captum_genomics.sc.pbmc.load_pbmc68k`
(seed 0); ``go_pbmc.json`` records the architecture, the term order, the GO
table's SHA-256, the split, training and held-out metrics (accuracy, balanced
accuracy, macro one-vs-rest AUROC).
"""

from __future__ import annotations

import hashlib
import json
from importlib import resources

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from captum_genomics._utils.checks import check_shape, check_tensor

__all__ = [
    "MaskedLinear",
    "GOTermLayer",
    "GOClassifier",
    "load_go_pbmc_model",
    "load_go_pbmc_metadata",
    "go_pbmc_nodes",
    "go_pbmc_parents",
    "TERM_LAYER",
    "WEIGHTS_FILE",
    "METADATA_FILE",
]

WEIGHTS_FILE = "go_pbmc.pt"
METADATA_FILE = "go_pbmc.json"
TERM_LAYER = "terms"
"""Name of the node layer in :class:`GOClassifier` (``model.terms``)."""


class MaskedLinear(nn.Module):
    """A linear layer with a fixed 0/1 connectivity mask: ``x @ (weight * mask).T + bias``.

    Parameters
    ----------
    mask : Tensor or ndarray, shape=(out_features, in_features)
        Bool or 0/1: which inputs each output sees. Stored as a float32
        buffer that is *not* saved in the ``state_dict`` (rebuild it from its
        source).

    Attributes
    ----------
    weight : Parameter, shape=(out_features, in_features)
        Initialized uniform in ``+-1/sqrt(fan_in)`` with each row's own fan-in
        (its number of connected inputs) on the mask, 0 elsewhere; gradient
        steps keep the entries off the mask at 0.
    bias : Parameter, shape=(out_features,)
    mask : Tensor, shape=(out_features, in_features), float32

    Raises
    ------
    ValueError
        If ``mask`` is not 2-D or holds values other than 0 and 1.
    """

    def __init__(self, mask) -> None:
        super().__init__()
        mask = torch.as_tensor(np.asarray(mask) if not isinstance(mask, Tensor) else mask)
        if mask.ndim != 2:
            raise ValueError(f"`mask` must be 2-D (out_features, in_features), got shape "
                             f"{tuple(mask.shape)}.")
        mask = mask.to(torch.float32)
        if not bool(((mask == 0) | (mask == 1)).all()):
            raise ValueError("`mask` must hold only 0/1 (or bool) values.")
        self.out_features, self.in_features = mask.shape
        self.register_buffer("mask", mask, persistent=False)
        self.weight = nn.Parameter(torch.empty(self.out_features, self.in_features))
        self.bias = nn.Parameter(torch.empty(self.out_features))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Uniform ``+-1/sqrt(fan_in)`` per row on the mask, zero off it (uses torch's RNG)."""
        fan_in = self.mask.sum(dim=1).clamp_min(1.0)
        bound = (1.0 / fan_in.sqrt()).unsqueeze(1)
        with torch.no_grad():
            self.weight.uniform_(-1.0, 1.0).mul_(bound).mul_(self.mask)
            self.bias.uniform_(-1.0, 1.0).mul_(bound.squeeze(1))

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight * self.mask, self.bias)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"connections={int(self.mask.sum())}")


class GOTermLayer(nn.Module):
    """The node layer: ``tanh(MaskedLinear(x))``, ``units_per_term`` units per term.

    Parameters
    ----------
    term_gene_mask : Tensor or ndarray, shape=(T, G), bool
        ``[t, g]``: gene ``g`` belongs to term ``t``
        (:func:`captum_genomics.sc.go.go_gene_mask`).
    units_per_term
        k, the units of each term. Default 2.

    Attributes
    ----------
    linear : MaskedLinear
        ``G -> T*k``; unit ``t*k + j`` (``j < k``) sees the genes of term ``t``.
    activation : nn.Tanh

    Notes
    -----
    ``forward(x)``: ``x`` ``(N, G)`` to ``(N, T*k)``, the units of term ``t``
    at columns ``t*k .. t*k+k-1``.
    """

    def __init__(self, term_gene_mask, units_per_term: int = 2) -> None:
        super().__init__()
        if not isinstance(units_per_term, int) or units_per_term < 1:
            raise ValueError(f"`units_per_term` must be a positive int, got {units_per_term!r}.")
        mask = torch.as_tensor(np.asarray(term_gene_mask, dtype=bool))
        if mask.ndim != 2:
            raise ValueError(f"`term_gene_mask` must be (T, G), got shape {tuple(mask.shape)}.")
        self.n_terms, self.n_genes = mask.shape
        self.units_per_term = units_per_term
        self.linear = MaskedLinear(mask.repeat_interleave(units_per_term, dim=0))
        self.activation = nn.Tanh()

    def forward(self, x: Tensor) -> Tensor:
        return self.activation(self.linear(x))

    def term_units(self, term: int) -> list:
        """Unit indices (columns of the output) of term number ``term`` (0-based)."""
        if not 0 <= term < self.n_terms:
            raise ValueError(f"`term` must lie in [0, {self.n_terms}), got {term}.")
        k = self.units_per_term
        return list(range(term * k, term * k + k))


class GOClassifier(nn.Module):
    """Genes -> GO term nodes -> hidden -> cell-type logits.

    Parameters
    ----------
    term_gene_mask : Tensor or ndarray, shape=(T, G), bool
        Term membership of the input genes.
    n_classes
        C. Default 10.
    units_per_term
        k. Default 2.
    hidden_width
        H. Default 64.
    dropout
        Dropout on the term units and on the hidden units (training mode
        only). Default 0.3.

    Attributes
    ----------
    terms : GOTermLayer
        The node layer, output ``(N, T*k)``.
    term_dropout, hidden_dropout : nn.Dropout
    hidden : nn.Linear
        ``T*k -> H``.
    relu : nn.ReLU
    out : nn.Linear
        ``H -> C``.

    Notes
    -----
    ``forward(x)``: ``x`` ``(N, G)`` float to logits ``(N, C)``; raises
    ``TypeError`` for a non-tensor and ``ValueError`` for a wrong shape.
    """

    def __init__(self, term_gene_mask, n_classes: int = 10, units_per_term: int = 2,
                 hidden_width: int = 64, dropout: float = 0.3) -> None:
        super().__init__()
        self.terms = GOTermLayer(term_gene_mask, units_per_term)
        self.n_genes = self.terms.n_genes
        n_units = self.terms.n_terms * units_per_term
        self.term_dropout = nn.Dropout(dropout)
        self.hidden = nn.Linear(n_units, hidden_width)
        self.relu = nn.ReLU()
        self.hidden_dropout = nn.Dropout(dropout)
        self.out = nn.Linear(hidden_width, n_classes)

    def forward(self, x: Tensor) -> Tensor:
        check_tensor(x, "x")
        check_shape(x, "x", (None, self.n_genes))
        h = self.relu(self.hidden(self.term_dropout(self.terms(x))))
        return self.out(self.hidden_dropout(h))


def _zoo_file(name: str):
    return resources.files("captum_genomics") / "zoo" / name


def load_go_pbmc_metadata() -> dict:
    """The JSON shipped with the weights.

    Returns
    -------
    dict
        Keys ``architecture`` (constructor arguments but the mask),
        ``terms`` (GO ids in node order), ``term_names``, ``go_table``
        (file name and SHA-256 of the table the mask comes from),
        ``label_names``, ``genes``, ``split``, ``metrics`` (per split:
        ``accuracy``, ``balanced_accuracy``, ``macro_auroc``, ``n``; and the
        test confusion matrix), ``training``.
    """
    return json.loads(_zoo_file(METADATA_FILE).read_text("utf-8"))


def _table_and_mask(meta: dict):
    from captum_genomics.sc.go import GO_TABLE_FILE, go_gene_mask, load_go_terms

    data = (resources.files("captum_genomics") / "data" / GO_TABLE_FILE).read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != meta["go_table"]["sha256"]:
        raise RuntimeError(f"the GO table {GO_TABLE_FILE} (sha256 {digest}) is not the one "
                           f"the weights were trained with ({meta['go_table']['sha256']}).")
    terms = load_go_terms()
    if list(terms.index) != list(meta["terms"]):
        raise RuntimeError("the GO table's terms differ from the model's term order.")
    return terms, go_gene_mask(terms, meta["genes"])


def load_go_pbmc_model() -> GOClassifier:
    """The shipped GO-structured classifier, on the CPU, in eval mode.

    Returns
    -------
    GOClassifier
        765 genes, 134 terms x 2 units, 64 hidden units, 10 cell types (the
        order of ``load_go_pbmc_metadata()["label_names"]``); weights read with
        ``torch.load(weights_only=True)``, the mask rebuilt from the vendored
        GO table.

    Raises
    ------
    RuntimeError
        If the vendored GO table is not the one the weights were trained with,
        or the weights are non-zero off the mask.
    """
    meta = load_go_pbmc_metadata()
    _, mask = _table_and_mask(meta)
    model = GOClassifier(mask, **meta["architecture"])
    with resources.as_file(_zoo_file(WEIGHTS_FILE)) as p:
        state = torch.load(p, map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    off = model.terms.linear.weight.detach()[model.terms.linear.mask == 0]
    if bool((off != 0).any()):
        raise RuntimeError("the shipped term-layer weights are non-zero off the GO mask.")
    return model.eval()


def _labels(meta: dict, label: str) -> dict:
    if label not in ("id", "name"):
        raise ValueError(f"`label` must be 'id' or 'name', got {label!r}.")
    if label == "id":
        return {t: t for t in meta["terms"]}
    return {t: f"{t} {n}" for t, n in zip(meta["terms"], meta["term_names"])}


def go_pbmc_nodes(label: str = "id") -> dict:
    """The nodes of the shipped model: term to unit indices in ``model.terms``'s output.

    Parameters
    ----------
    label
        ``"id"`` (default): keys are GO ids (``"GO:0006955"``); ``"name"``:
        the id and the name (``"GO:0006955 immune response"``).

    Returns
    -------
    dict of str to list of int
        134 terms in node order (sorted GO ids), each with its
        ``units_per_term`` (2) consecutive unit indices; disjoint, covering
        ``0 .. 267``.

    Raises
    ------
    ValueError
        If ``label`` is neither ``"id"`` nor ``"name"``.
    """
    meta = load_go_pbmc_metadata()
    names = _labels(meta, label)
    k = meta["architecture"]["units_per_term"]
    return {names[t]: list(range(i * k, i * k + k)) for i, t in enumerate(meta["terms"])}


def go_pbmc_parents(label: str = "id") -> dict:
    """The hierarchy among the shipped model's terms: parent term to child terms.

    A child's parents are its nearest kept ancestors in GO (``is_a`` and
    ``part_of`` paths, go-basic 2022-07-01); see
    :func:`captum_genomics.sc.go.go_children`.

    Parameters
    ----------
    label
        ``"id"`` (default) or ``"name"``, as in :func:`go_pbmc_nodes`.

    Returns
    -------
    dict of str to list of str
        Every term with at least one child, mapped to its children (keys and
        values are keys of :func:`go_pbmc_nodes` with the same ``label``).
    """
    from captum_genomics.sc.go import go_children

    meta = load_go_pbmc_metadata()
    names = _labels(meta, label)
    terms, _ = _table_and_mask(meta)
    return {names[p]: [names[c] for c in cs] for p, cs in go_children(terms).items()}
