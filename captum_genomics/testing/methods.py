"""The one list of the package's Captum attribution methods that the contract tests run.

Every :class:`captum.attr.Attribution` subclass the package ships has one
:class:`MethodSpec` in :data:`METHODS`. ``test_contract.py`` runs the checks
every method owes Captum's API on all of them (a logged ``attribute``, the
convergence-delta flag, the model and inputs unchanged after a call and after
an error, bitwise-repeatable calls); the same list, filtered by ``kind``,
drives the method-family contracts (per-example references for ``"sequence"``
methods, fitted explainers for ``"tabular"`` ones). Add a method here and every
contract test runs on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch
import torch.nn as nn
import torch.nn.functional as F
from captum.attr import Attribution

from captum_genomics import (
    FastSHAP,
    HeadAblationClassifierEffect,
    HeadAblationExplainedVariance,
    InSilicoMutagenesis,
    LayerNodeProbe,
    ShuffleDeepLiftShap,
)
from captum_genomics.testing.models import DTYPE, random_one_hot

__all__ = [
    "KINDS",
    "METHODS",
    "MethodExample",
    "MethodSpec",
    "NeighbourModel",
    "SequenceModel",
    "methods_of_kind",
    "tabular_cells",
    "tabular_model",
]

KINDS = ("sequence", "tabular", "heads", "nodes", "perturbation")
"""``"sequence"``: one-hot ``(N, 4, L)`` in, per-example references, per-pair deltas.
``"tabular"``: ``(cells, genes)`` in, a fitted explainer, one efficiency gap per cell.
``"heads"``: attention heads of a model, a result object out.
``"nodes"``: named groups of a layer's units, a result object out.
``"perturbation"``: one-hot ``(N, 4, L)`` in, forward passes only, no references or deltas."""

N_GENES, N_CLASSES = 7, 3


@dataclass(frozen=True)
class MethodExample:
    """A ready-to-run call of one method on a small built-in model.

    Attributes
    ----------
    explainer : captum.attr.Attribution
    inputs : Tensor or tuple of Tensor
        The first argument of ``attribute``.
    kwargs : dict
        The other arguments of a valid call.
    bad_kwargs : dict
        Arguments of a call that must raise ``ValueError`` (e.g. a target out
        of range), naming the user's argument.
    """

    explainer: Attribution
    inputs: Any
    kwargs: dict
    bad_kwargs: dict


@dataclass(frozen=True)
class MethodSpec:
    """How the contract tests build and call one attribution method.

    Attributes
    ----------
    name : str
        Test id.
    kind : str
        One of :data:`KINDS`.
    example : callable
        ``() -> MethodExample`` on a small float64 model.
    has_convergence_delta : bool
        What ``explainer.has_convergence_delta()`` must return.
    make : callable, optional
        ``"sequence"``: ``model -> Attribution``.
    kwargs : callable, optional
        ``"sequence"``: ``references (Tensor or tuple) -> dict`` of the
        method-specific arguments that pass the references of a batch.
    fit : callable, optional
        ``"tabular"``: ``(model, x_train (N, G), x_val, seed) -> Attribution``.
    delta_tol : float, optional
        ``"tabular"``: largest ``|convergence delta|`` accepted in float64.
    """

    name: str
    kind: str
    example: Callable[[], MethodExample]
    has_convergence_delta: bool
    make: Callable[[Callable], Attribution] | None = None
    kwargs: Callable[[Any], dict] | None = None
    fit: Callable[..., Attribution] | None = None
    delta_tol: float | None = None


# ----------------------------------------------------------------------------- models
class SequenceModel(nn.Module):
    """A small conv + GELU + global max model ``(B, 4, L) -> (B, 3)`` (float32 until cast)."""

    def __init__(self):
        super().__init__()
        self.conv, self.out = nn.Conv1d(4, 5, 5), nn.Linear(5, 3)

    def forward(self, x):
        return self.out(F.gelu(self.conv(x)).amax(-1))


def tabular_model(random_state: int = 0) -> nn.Module:
    """A float64 MLP ``(B, 7 genes) -> (B, 3 classes)`` in eval mode, seeded by ``random_state``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(random_state)
        return nn.Sequential(nn.Linear(N_GENES, 16), nn.ReLU(),
                             nn.Linear(16, N_CLASSES)).to(DTYPE).eval()


def tabular_cells(n: int, random_state: int) -> torch.Tensor:
    """``(n, 7)`` float64 non-negative, sparse values, like log-normalized expression."""
    g = torch.Generator().manual_seed(random_state)
    x = torch.rand(n, N_GENES, generator=g, dtype=DTYPE) * 3
    return torch.where(torch.rand(n, N_GENES, generator=g, dtype=DTYPE) < 0.4, 0.0, x)


class NeighbourModel(nn.Module):
    """Attention over neighbours: the query from the cell type, keys/values from neighbours.

    ``forward(neighbours (B, K, n_features), cell_type (B,) int64) -> (B, n_genes)``,
    float64, eval mode, weights drawn from ``N(0, 0.4^2)`` under ``random_state``.
    """

    def __init__(self, n_features=6, n_genes=6, n_types=5, embed=12, heads=3, random_state=0):
        super().__init__()
        torch.manual_seed(random_state)
        self.encode = nn.Linear(n_features, embed)
        self.query = nn.Embedding(n_types, embed)
        self.attention = nn.MultiheadAttention(embed, heads, batch_first=True)
        self.decode = nn.Linear(embed, n_genes)
        with torch.no_grad():
            for p in self.parameters():
                p.normal_(0, 0.4)
        self.to(DTYPE).eval()

    def forward(self, neighbours, cell_type):
        kv = torch.tanh(self.encode(neighbours))
        q = self.query(cell_type).unsqueeze(1)
        out, _ = self.attention(q, kv, kv)
        return self.decode(out.squeeze(1))


# ----------------------------------------------------------------------------- methods
def _fit_fastshap(model, xtr, xva, seed=0, **train):
    # `seed` is the MethodSpec.fit signature the contract tests call
    return FastSHAP.fit(model, xtr, xva, link="softmax", random_state=seed,
                        explainer_kwargs={"hidden_width": 32},
                        train_kwargs={"max_epochs": 3, **train})


def _sequence_example() -> MethodExample:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = SequenceModel().to(DTYPE).eval()
    x = random_one_hot(3, 16, torch.Generator().manual_seed(0))
    call = {"n_references": 2, "random_state": 0}
    return MethodExample(ShuffleDeepLiftShap(model), x, {"target": 1, **call},
                         {"target": 7, **call})


def _tabular_example(**train) -> Callable[[], MethodExample]:
    def example() -> MethodExample:
        explainer = _fit_fastshap(tabular_model(), tabular_cells(64, 1), tabular_cells(16, 2),
                                  **train)
        return MethodExample(explainer, tabular_cells(5, 10), {"target": 1}, {"target": 7})

    return example


def _heads_example() -> MethodExample:
    model = NeighbourModel()
    g = torch.Generator().manual_seed(1)
    nb = torch.randn(24, 4, 6, generator=g, dtype=DTYPE)
    ct = torch.randint(0, 3, (24,), generator=g)
    obs = torch.randn(24, 6, generator=g, dtype=DTYPE)
    call = {"additional_forward_args": (ct,), "n_permutations": 9, "random_state": 0}
    return MethodExample(HeadAblationExplainedVariance(model, "attention"), nb,
                         {"groups": ct, "observed": obs, **call},
                         {"groups": ct[:5], "observed": obs, **call})


def _heads_classifier_example() -> MethodExample:
    model = NeighbourModel()  # its 6 outputs serve as 6 class logits
    g = torch.Generator().manual_seed(2)
    nb = torch.randn(24, 4, 6, generator=g, dtype=DTYPE)
    ct = torch.randint(0, 3, (24,), generator=g)
    labels = torch.randint(0, 6, (24,), generator=g)
    call = {"additional_forward_args": (ct,), "n_permutations": 9, "random_state": 0}
    return MethodExample(HeadAblationClassifierEffect(model, "attention"), nb,
                         {"labels": labels, "groups": ct, **call},
                         {"labels": labels, "groups": ct[:5], **call})


def _node_probe_example() -> MethodExample:
    model = tabular_model()  # Linear(7, 16) -> ReLU -> Linear(16, 3); nodes over the 16 units
    x = tabular_cells(30, 3)
    labels = torch.arange(30) % 3
    call = {"labels": labels, "nodes": {"a": slice(0, 4), "b": slice(4, 10), "c": [10, 12, 15]},
            "n_folds": 3, "n_permutations": 9, "n_bootstrap": 20, "n_random": 2,
            "untrained": "reinit", "random_state": 0}
    return MethodExample(LayerNodeProbe(model, "0"), x, call, {**call, "labels": labels[:5]})


def _ism_example() -> MethodExample:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = SequenceModel().to(DTYPE).eval()
    x = random_one_hot(3, 16, torch.Generator().manual_seed(0))
    return MethodExample(InSilicoMutagenesis(model, fast=True), x, {"target": 1}, {"target": 7})


METHODS = [
    MethodSpec("ShuffleDeepLiftShap", "sequence", _sequence_example, True,
               make=ShuffleDeepLiftShap, kwargs=lambda refs: {"references": refs}),
    MethodSpec("FastSHAP", "tabular", _tabular_example(), True,
               fit=_fit_fastshap, delta_tol=1e-12),
    MethodSpec("FastSHAP-permutation", "tabular", _tabular_example(objective="permutation"),
               True, fit=lambda m, a, b, seed=0: _fit_fastshap(m, a, b, seed,
                                                               objective="permutation"),
               delta_tol=1e-12),
    MethodSpec("HeadAblationExplainedVariance", "heads", _heads_example, False),
    MethodSpec("HeadAblationClassifierEffect", "heads", _heads_classifier_example, False),
    MethodSpec("LayerNodeProbe", "nodes", _node_probe_example, False),
    MethodSpec("InSilicoMutagenesis", "perturbation", _ism_example, False),
]
"""Every Captum attribution method of the package, one entry each."""


def methods_of_kind(kind: str) -> list[MethodSpec]:
    """The entries of :data:`METHODS` of one ``kind`` (see :data:`KINDS`).

    Raises
    ------
    ValueError
        If ``kind`` is not one of :data:`KINDS`.
    """
    if kind not in KINDS:
        raise ValueError(f"`kind` must be one of {KINDS}, got {kind!r}.")
    return [m for m in METHODS if m.kind == kind]
