"""Small random float64 models and data for the validation suite.

Two sources of models:

* :data:`CATALOG`, hand-written models, each exercising one layer type or
  structure (every activation module, a subclass of ``nn.ReLU``, functional
  activations, a module reused in one forward, overlapping/dilated max-pool,
  average pooling, residual adds, global max via ``x.max(-1)``, LayerNorm,
  RMSNorm, softmax, GLU, attention products). Each says whether tangermeme
  and Captum's ``DeepLift`` support it exactly.
* :func:`architectures`, a hypothesis strategy over random convolutional
  stacks (:class:`ArchSpec`), built by :func:`build_arch`.

All models are float64 and in eval mode, map ``(B, 4, L)`` one-hot batches
to ``(B, T)`` and are built from a seed, so a failure is reproducible from
the seed hypothesis prints.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from hypothesis import settings
from hypothesis import strategies as st

from captum_genomics.seq.io import random_one_hot  # noqa: F401 - re-exported
from captum_genomics.testing.checks.report import INVARIANCE_TOL

DTYPE = torch.float64
ALPHABET = 4

__all__ = [
    "DTYPE",
    "Activation",
    "ACTIVATIONS",
    "MyReLU",
    "ModelCase",
    "CATALOG",
    "catalog_case",
    "catalog_flags",
    "INVARIANCE_TOL",
    "Batch",
    "batches",
    "random_one_hot",
    "bounded",
    "PROFILE",
    "references_available",
    "STRATEGIES",
    "needs_generated_references",
]




#: The hypothesis profile of the suite's tests; ``captum_genomics/testing/conftest.py`` sets
#: it (``ci``, ``dev`` or ``user-model``) before the test modules are imported.
PROFILE: str | None = None


def bounded(max_examples: int) -> settings:
    """Hypothesis settings: the suite's profile, at most ``max_examples`` examples, no deadline.

    Never more than the profile's ``max_examples`` (see
    ``captum_genomics/testing/conftest.py``: ``ci`` 10, ``dev`` 15, ``user-model`` 3).
    """
    parent = settings.get_profile(PROFILE) if PROFILE else settings.default
    return settings(parent=parent, max_examples=min(max_examples, parent.max_examples),
                    deadline=None)


def references_available() -> bool:
    """Whether ``captum_genomics.references`` can generate references (``references=None``)."""
    try:
        import captum_genomics.references as references
    except ImportError:
        return False
    return hasattr(references, "resolve_reference_generator")


def _strategies() -> tuple[dict, ...]:
    import inspect

    from captum_genomics import ShuffleDeepLiftShap

    if "strategy" not in inspect.signature(ShuffleDeepLiftShap.attribute).parameters:
        return ({},)
    return ({"strategy": "batched"}, {"strategy": "examples"}, {"strategy": "pairs"})


#: The engine strategies of ``ShuffleDeepLiftShap.attribute`` as keyword
#: arguments (``"auto"`` picks ``"batched"``, or ``"pairs"`` for a model with
#: activations that are not batch-first, so the suite runs each explicitly).
STRATEGIES: tuple[dict, ...] = _strategies()


#: Skips a test of generated references while the references module is missing.
needs_generated_references = pytest.mark.skipif(
    not references_available(),
    reason="captum_genomics.references.resolve_reference_generator is not importable")


# --------------------------------------------------------------------------- data

@dataclass(frozen=True)
class Batch:
    """Inputs ``(N, 4, L)`` and explicit references ``(N, K, 4, L)`` from one seed."""

    inputs: torch.Tensor
    references: torch.Tensor
    seed: int

    @property
    def n(self) -> int:
        return self.inputs.shape[0]

    @property
    def k(self) -> int:
        return self.references.shape[1]

    def __repr__(self) -> str:
        return f"Batch(N={self.n}, K={self.k}, L={self.inputs.shape[-1]}, seed={self.seed})"


@st.composite
def batches(draw, length: int, max_n: int = 4, max_k: int = 4, min_n: int = 1,
            min_k: int = 1, dtype: torch.dtype = DTYPE) -> Batch:
    """Strategy: a :class:`Batch` of random one-hot inputs and references."""
    seed = draw(st.integers(0, 2**31 - 1))
    n = draw(st.integers(min_n, max_n))
    k = draw(st.integers(min_k, max_k))
    g = torch.Generator().manual_seed(seed)
    x = random_one_hot(n, length, g, dtype)
    r = random_one_hot(n * k, length, g, dtype).reshape(n, k, ALPHABET, length)
    return Batch(x, r, seed)


# -------------------------------------------------------------------- activations

class MyReLU(nn.ReLU):
    """A user subclass of ``nn.ReLU`` (Captum and tangermeme match modules by exact type)."""

    def forward(self, x):
        return super().forward(x)


@dataclass(frozen=True)
class Activation:
    """An activation as a module factory and a functional form, with peer support.

    ``bitwise``: the CPU kernel gives the same bits whatever the batch size.
    True for piecewise-linear and exactly rounded functions. Transcendental
    ones (ELU, SELU, CELU, SiLU, Mish, Softplus, Sigmoid; GELU and Tanh are
    not guaranteed either) run vectorized (SLEEF) on full SIMD chunks and in
    scalar libm code on the tail of the tensor, and the two can differ in the
    last bit; where the tail falls depends on the batch's total size.
    """

    name: str
    module: Callable[[], nn.Module]
    functional: Callable[[torch.Tensor], torch.Tensor] | None
    tangermeme: bool
    captum: bool
    bitwise: bool = False


ACTIVATIONS: dict[str, Activation] = {a.name: a for a in (
    Activation("relu", nn.ReLU, torch.relu, True, True, bitwise=True),
    Activation("leaky_relu", lambda: nn.LeakyReLU(0.1), lambda t: F.leaky_relu(t, 0.1),
               True, True, bitwise=True),
    Activation("elu", nn.ELU, F.elu, True, True),
    Activation("selu", nn.SELU, F.selu, True, False),
    Activation("celu", lambda: nn.CELU(0.7), lambda t: F.celu(t, 0.7), True, False),
    Activation("gelu", nn.GELU, F.gelu, True, False),
    Activation("silu", nn.SiLU, F.silu, True, False),
    Activation("mish", nn.Mish, F.mish, True, False),
    Activation("softplus", nn.Softplus, F.softplus, True, True),
    Activation("sigmoid", nn.Sigmoid, torch.sigmoid, True, True),
    Activation("tanh", nn.Tanh, torch.tanh, True, True),
    Activation("hardtanh", lambda: nn.Hardtanh(-0.3, 0.4), lambda t: F.hardtanh(t, -0.3, 0.4),
               False, False, bitwise=True),
    Activation("softsign", nn.Softsign, F.softsign, False, False, bitwise=True),
    Activation("my_relu", MyReLU, None, False, False, bitwise=True),
)}


# ------------------------------------------------------------------- the catalog

@dataclass(frozen=True)
class ModelCase:
    """A built model with what the suite needs to know about it.

    Attributes
    ----------
    name : str
    model : nn.Module
        float64 (unless a user asked otherwise), eval mode.
    length : int
        Input length ``L``.
    n_outputs : int or None
        ``T`` of a ``(B, T)`` output; None for ``(B,)``.
    target : Any
        The target the suite explains by default.
    tangermeme, captum : bool or None
        Whether tangermeme's ``deep_lift_shap`` / Captum's ``DeepLift`` handle
        every nonlinearity of the model exactly. None: unknown (user models);
        the suite then measures the peer's own additivity and skips the
        comparison where the peer is not additive.
    bitwise : bool or None
        Whether results must be bitwise independent of batching on CPU: true
        when every kernel of the model gives the same bits for a row whatever
        the batch (float64 conv, piecewise-linear activations, pools, a
        linear head). Otherwise batch invariance is checked to
        :data:`INVARIANCE_TOL` (see ``docs/validation.md``).
    """

    name: str
    model: nn.Module
    length: int
    n_outputs: int | None = 3
    target: Any = 0
    tangermeme: bool | None = False
    captum: bool | None = False
    bitwise: bool | None = False
    notes: str = field(default="", compare=False)

    @property
    def dtype(self) -> torch.dtype:
        for p in self.model.parameters():
            return p.dtype
        return DTYPE

    def __repr__(self) -> str:
        return f"ModelCase({self.name!r}, L={self.length})"


def _seeded(build: Callable[[], nn.Module], seed: int) -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build()
    return model.to(DTYPE).eval()


def _linear_head(body: nn.Module, length: int, n_outputs: int = 3) -> nn.Sequential:
    with torch.no_grad():
        width = body.to(DTYPE)(torch.zeros(1, ALPHABET, length, dtype=DTYPE)).numel()
    return nn.Sequential(body, nn.Flatten(), nn.Linear(width, n_outputs))


def _act_model(act: Activation, length: int) -> Callable[[], nn.Module]:
    def build():
        body = nn.Sequential(nn.Conv1d(4, 6, 5, padding=2), act.module(),
                             nn.Conv1d(6, 4, 3), act.module())
        return _linear_head(body, length)
    return build


class _Functional(nn.Module):
    """Activations called as functions inside ``forward``."""

    def __init__(self, length):
        super().__init__()
        self.c1, self.c2, self.c3 = nn.Conv1d(4, 6, 5), nn.Conv1d(6, 6, 3), nn.Conv1d(6, 4, 3)
        self.out = nn.Linear(4, 3)

    def forward(self, x):
        h = torch.relu(self.c1(x))
        h = F.gelu(self.c2(h)) + F.silu(h[..., 1:-1])
        h = torch.tanh(self.c3(h)) * 2.0
        h = F.max_pool1d(F.softplus(h), 2)
        return self.out(h.mean(-1))


class _Reused(nn.Module):
    """One ReLU module and one conv each called twice in the same forward."""

    def __init__(self, length):
        super().__init__()
        self.c_in = nn.Conv1d(4, 5, 3, padding=1)
        self.c = nn.Conv1d(5, 5, 3, padding=1)
        self.act = nn.ReLU()
        self.out = nn.Linear(5 * length, 3)

    def forward(self, x):
        h = self.act(self.c_in(x))
        h = self.act(self.c(h))
        h = self.act(self.c(h)) + h
        return self.out(h.flatten(1))


class _Residual(nn.Module):
    """BPNet-like: dilated convs with residual adds, mean-pooled head."""

    def __init__(self, length):
        super().__init__()
        self.stem = nn.Conv1d(4, 6, 5, padding=2)
        self.blocks = nn.ModuleList(nn.Conv1d(6, 6, 3, padding=d, dilation=d) for d in (1, 2, 4))
        self.acts = nn.ModuleList(nn.ReLU() for _ in range(4))
        self.out = nn.Linear(6, 3)

    def forward(self, x):
        h = self.acts[0](self.stem(x))
        for conv, act in zip(self.blocks, self.acts[1:]):
            h = h + act(conv(h))
        return self.out(h.mean(-1))


class _GlobalMax(nn.Module):
    """Global max pooling by ``x.max(-1)`` and ``torch.amax``."""

    def __init__(self, length):
        super().__init__()
        self.c1, self.c2 = nn.Conv1d(4, 6, 5), nn.Conv1d(4, 6, 3)
        self.act = nn.ELU()
        self.out = nn.Linear(12, 3)

    def forward(self, x):
        a = self.act(self.c1(x)).max(-1).values
        b = torch.amax(torch.relu(self.c2(x)), dim=-1)
        return self.out(torch.cat([a, b], 1))


class _ChannelNorm(nn.Module):
    """LayerNorm (or RMSNorm) over channels at every position."""

    def __init__(self, length, norm=nn.LayerNorm):
        super().__init__()
        self.c1 = nn.Conv1d(4, 6, 5, padding=2)
        self.norm = norm(6)
        self.act = nn.ReLU()
        self.c2 = nn.Conv1d(6, 4, 3)
        self.out = nn.Linear(4 * (length - 2), 3)
        with torch.no_grad():  # make the affine parameters nontrivial
            self.norm.weight.uniform_(0.5, 1.5)
            if getattr(self.norm, "bias", None) is not None:
                self.norm.bias.uniform_(-0.5, 0.5)

    def forward(self, x):
        h = self.c1(x).transpose(1, 2)
        h = self.norm(h).transpose(1, 2)
        return self.out(self.c2(self.act(h)).flatten(1))


class _Softmax(nn.Module):
    """Softmax over channels, and a softmax-weighted pooling over positions."""

    def __init__(self, length):
        super().__init__()
        self.c1, self.c2 = nn.Conv1d(4, 6, 5, padding=2), nn.Conv1d(6, 3, 3, padding=1)
        self.sm_c, self.sm_l = nn.Softmax(dim=1), nn.Softmax(dim=-1)
        self.out = nn.Linear(3 * length, 3)

    def forward(self, x):
        h = self.sm_c(self.c1(x) * 2.0)
        return self.out(self.sm_l(self.c2(h)).flatten(1))


class _LogSoftmaxHead(nn.Module):
    """Class log-probabilities via ``F.log_softmax`` on the logits."""

    def __init__(self, length):
        super().__init__()
        self.body = nn.Sequential(nn.Conv1d(4, 6, 5), nn.Tanh(), nn.MaxPool1d(2))
        self.out = nn.Linear(6 * ((length - 4) // 2), 3)

    def forward(self, x):
        return F.log_softmax(self.out(self.body(x).flatten(1)), dim=-1)


class _GLU(nn.Module):
    """Gated linear unit over channels."""

    def __init__(self, length):
        super().__init__()
        self.c1, self.glu = nn.Conv1d(4, 8, 5, padding=2), nn.GLU(dim=1)
        self.c2 = nn.Conv1d(4, 4, 3)
        self.out = nn.Linear(4 * (length - 2), 3)

    def forward(self, x):
        return self.out(self.c2(self.glu(self.c1(x))).flatten(1))


class _Attention(nn.Module):
    """One self-attention head: softmax(Q K^T / sqrt(d)) V, and a hand-written swish."""

    def __init__(self, length):
        super().__init__()
        self.embed = nn.Conv1d(4, 8, 3, padding=1)
        self.qkv = nn.Linear(8, 24)
        self.out = nn.Linear(8, 3)

    def forward(self, x):
        h = self.embed(x).transpose(1, 2)  # (B, L, 8)
        h = h * torch.sigmoid(h)  # swish by hand: a product of two input-dependent tensors
        q, k, v = self.qkv(h).chunk(3, dim=-1)
        w = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(8), dim=-1)
        return self.out((w @ v).mean(1))


def _pool_model(pool: Callable[[], nn.Module], act: Callable[[], nn.Module], length: int):
    def build():
        body = nn.Sequential(nn.Conv1d(4, 6, 5, padding=2), act(), pool(),
                             nn.Conv1d(6, 4, 3, padding=1), act())
        return _linear_head(body, length)
    return build


def _bn_dropout(length):
    def build():
        bn = nn.BatchNorm1d(6)
        with torch.no_grad():
            bn.running_mean.uniform_(-0.5, 0.5)
            bn.running_var.uniform_(0.5, 2.0)
        body = nn.Sequential(nn.Conv1d(4, 6, 5, padding=2), bn, nn.ReLU(), nn.Dropout(0.3),
                             nn.AvgPool1d(2))
        return _linear_head(body, length)
    return build


def _conv_relu_maxpool(length):
    def build():
        return _linear_head(nn.Sequential(nn.Conv1d(4, 8, 5, padding=2), nn.ReLU(),
                                          nn.MaxPool1d(2)), length)
    return build


def _conv_maxpool(length):
    def build():
        return _linear_head(nn.Sequential(nn.Conv1d(4, 8, 5, padding=2), nn.MaxPool1d(3)),
                            length)
    return build


@dataclass(frozen=True)
class _Entry:
    factory: Callable[[int], Callable[[], nn.Module]]  # length -> builder
    tangermeme: bool
    captum: bool
    bitwise: bool
    notes: str


def _fixed(cls, *args):
    return lambda L: lambda: cls(L, *args)


_ENTRIES: dict[str, _Entry] = {
    **{f"act_{a.name}": _Entry((lambda a: lambda L: _act_model(a, L))(a), a.tangermeme,
                               a.captum, a.bitwise, f"conv-{a.name}-conv-{a.name}-linear")
       for a in ACTIVATIONS.values()},
    "conv_maxpool": _Entry(_conv_maxpool, True, True, True,
                           "conv -> non-overlapping MaxPool1d(3) -> linear"),
    "conv_relu_maxpool": _Entry(_conv_relu_maxpool, True, False, True,
                                "conv -> ReLU -> MaxPool1d(2); Captum 0.9 is not additive here"),
    "maxpool_overlapping": _Entry(lambda L: _pool_model(lambda: nn.MaxPool1d(4, 2), nn.ELU, L),
                                  True, False, False, "ELU, MaxPool1d(4, stride=2)"),
    "maxpool_dilated": _Entry(
        lambda L: _pool_model(lambda: nn.MaxPool1d(3, 1, dilation=2), nn.ReLU, L),
        True, False, True, "ReLU, MaxPool1d(3, stride=1, dilation=2)"),
    "maxpool_padded_ceil": _Entry(
        lambda L: _pool_model(lambda: nn.MaxPool1d(3, 2, padding=1, ceil_mode=True), nn.Tanh, L),
        True, False, False, "Tanh, MaxPool1d(3, 2, padding=1, ceil_mode=True)"),
    "avgpool": _Entry(lambda L: _pool_model(lambda: nn.AvgPool1d(3, 2), nn.Softplus, L),
                      True, True, False, "Softplus, AvgPool1d(3, 2)"),
    "batchnorm_dropout": _Entry(_bn_dropout, True, True, True,
                                "BatchNorm1d and Dropout in eval mode, ReLU, AvgPool1d"),
    "functional": _Entry(_fixed(_Functional), False, False, False,
                         "torch.relu, F.gelu, F.silu, torch.tanh, F.softplus, F.max_pool1d"),
    "reused_module": _Entry(_fixed(_Reused), True, False, True,
                            "one ReLU and one conv used twice"),
    "residual": _Entry(_fixed(_Residual), True, True, True, "dilated residual convs, ReLU"),
    "global_max": _Entry(_fixed(_GlobalMax), False, False, False, "x.max(-1), torch.amax"),
    "layernorm": _Entry(_fixed(_ChannelNorm, nn.LayerNorm), True, False, False,
                        "LayerNorm over channels"),
    "rmsnorm": _Entry(_fixed(_ChannelNorm, nn.RMSNorm), True, False, False,
                      "RMSNorm over channels"),
    "softmax": _Entry(_fixed(_Softmax), True, False, False,
                      "nn.Softmax over channels and over length"),
    "log_softmax_head": _Entry(_fixed(_LogSoftmaxHead), False, False, False,
                               "F.log_softmax of the logits"),
    "glu": _Entry(_fixed(_GLU), True, False, False, "nn.GLU over channels"),
    "attention": _Entry(_fixed(_Attention), False, False, False,
                        "softmax(QK^T)V and x * sigmoid(x): products of input-dependent tensors"),
}

#: Names of the hand-written models.
CATALOG: tuple[str, ...] = tuple(_ENTRIES)


def catalog_flags(name: str) -> dict[str, bool]:
    """``{"tangermeme": ..., "captum": ..., "bitwise": ...}`` of catalog model ``name``."""
    e = _ENTRIES[name]
    return {"tangermeme": e.tangermeme, "captum": e.captum, "bitwise": e.bitwise}


def catalog_case(name: str, length: int = 24, random_state: int = 0) -> ModelCase:
    """Build the catalog model ``name`` for inputs of length ``length``, weights seeded by
    ``random_state``."""
    e = _ENTRIES[name]
    model = _seeded(e.factory(length), random_state)
    return ModelCase(name, model, length, 3, 0, e.tangermeme, e.captum, e.bitwise, e.notes)
