"""Small float64 models whose DeepLIFT failure is known (the test bed of ``testing.localize``).

Each :class:`ZooCase` says which op breaks additivity of
:class:`~captum_genomics.ShuffleDeepLiftShap` (``culprit``, with the caller
:func:`~captum_genomics.testing.localize.localize_additivity` must name), or
None where our rules are exact, and whether Captum's ``DeepLift`` and
tangermeme's ``deep_lift_shap`` are additive on it, with their measured
figures. Two kinds of models:

* **we fail, and the culprit is named**: an op with no rule (``F.normalize``,
  ``nn.Softmin``), a hand-written ReLU ``h * (h > 0)`` (a comparison-built mask
  is a constant to DeepLIFT, so the ``mul`` is linearised), a custom
  ``torch.autograd.Function`` (its own gradient is used), and a Python branch
  on a tensor value (the two passes take different branches);
* **the peers fail and we are exact**: GELU, LayerNorm, functional ReLU, one
  ``nn.ReLU`` module used twice (Captum raises), attention ``softmax(QK^T) V``;
  and one model where everyone is exact, with in-place ops (``h += conv(x)``).

Models map one-hot ``(B, 4, L)`` to ``(B, 3)``, are float64, in eval mode and
built from a seed; they reuse the builders of :mod:`captum_genomics.testing.models`
(which needs the test extras, pytest and hypothesis).
"""

from __future__ import annotations

import inspect
import math
import os
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from captum_genomics.testing.models import (
    ACTIVATIONS,
    ALPHABET,
    DTYPE,
    _act_model,
    _Attention,
    _ChannelNorm,
    _linear_head,
    _Reused,
    _seeded,
    random_one_hot,
)

__all__ = ["ZooCase", "ZOO", "PEER_TOL", "SwishFunction", "gc_biased_one_hot", "zoo_case",
           "zoo_cases"]

#: The bound below which a peer's ``max |delta|`` counts as additive (float64).
PEER_TOL = 1e-6


def _tagged(tag: str) -> str:
    """``failure_zoo.py:LINE`` of the line ending in ``# culprit: <tag>`` (the model's name)."""
    lines = inspect.getsource(inspect.getmodule(_tagged)).splitlines()
    hits = [i for i, line in enumerate(lines, 1) if line.rstrip().endswith(f"# culprit: {tag}")]
    if len(hits) != 1:
        raise LookupError(f"expected one line tagged `# culprit: {tag}`, found {len(hits)}")
    return f"{os.path.basename(__file__)}:{hits[0]}"


# ----------------------------------------------------------------- we fail

class _Normalize(nn.Module):
    """conv -> ReLU -> ``F.normalize`` over channels (no rule) -> conv -> linear."""

    def __init__(self, length):
        super().__init__()
        self.c1, self.act = nn.Conv1d(4, 6, 5, padding=2), nn.ReLU()
        self.c2, self.out = nn.Conv1d(6, 4, 3, padding=1), nn.Linear(4 * length, 3)

    def forward(self, x):
        h = self.act(self.c1(x))
        h = F.normalize(h, dim=1)  # culprit: normalize
        return self.out(self.c2(h).flatten(1))


class _HandMask(nn.Module):
    """A hand-written ReLU ``h * (h > 0)``: the mask is a constant to DeepLIFT."""

    def __init__(self, length):
        super().__init__()
        self.c1, self.c2 = nn.Conv1d(4, 6, 5, padding=2), nn.Conv1d(6, 4, 3, padding=1)
        self.out = nn.Linear(4 * length, 3)

    def forward(self, x):
        h = self.c1(x)
        h = h * (h > 0).to(h.dtype)  # culprit: hand_mask
        return self.out(self.c2(h).flatten(1))


class SwishFunction(torch.autograd.Function):
    """``x * sigmoid(x)`` with its exact gradient: correct autograd, invisible to the rules."""

    @staticmethod
    def forward(ctx, x):
        s = torch.sigmoid(x)
        ctx.save_for_backward(x, s)
        return x * s

    @staticmethod
    def backward(ctx, grad):
        x, s = ctx.saved_tensors
        return grad * s * (1 + x * (1 - s))


class _CustomFunction(nn.Module):
    """conv -> a custom ``torch.autograd.Function`` (swish) -> conv -> linear."""

    def __init__(self, length):
        super().__init__()
        self.c1, self.c2 = nn.Conv1d(4, 6, 5, padding=2), nn.Conv1d(6, 4, 3, padding=1)
        self.out = nn.Linear(4 * length, 3)

    def forward(self, x):
        h = SwishFunction.apply(self.c1(x))  # culprit: custom_function
        return self.out(self.c2(h).flatten(1))


class _Branch(nn.Module):
    """A Python ``if`` on a tensor value: the scale depends on the batch's GC content."""

    def __init__(self, length):
        super().__init__()
        self.c1, self.act = nn.Conv1d(4, 6, 5, padding=2), nn.ReLU()
        self.out = nn.Linear(6 * length, 3)

    def forward(self, x):
        scale = 2.0 if bool(x[:, 1:3].sum() > x[:, 0::3].sum()) else 0.5
        h = self.act(self.c1(x) * scale)  # culprit: branch
        return self.out(h.flatten(1))


def _softmin(length):
    def build():
        body = nn.Sequential(nn.Conv1d(4, 6, 5, padding=2), nn.Softmin(dim=1),
                             nn.Conv1d(6, 4, 3, padding=1), nn.ReLU())
        return _linear_head(body, length)
    return build


# ---------------------------------------------------------- the peers fail

class _FunctionalReLU(nn.Module):
    """``torch.relu`` and ``F.relu`` called inside ``forward`` (no module to hook)."""

    def __init__(self, length):
        super().__init__()
        self.c1, self.c2 = nn.Conv1d(4, 6, 5, padding=2), nn.Conv1d(6, 4, 3, padding=1)
        self.out = nn.Linear(4 * length, 3)

    def forward(self, x):
        h = torch.relu(self.c1(x))
        return self.out(F.relu(self.c2(h)).flatten(1))


class _InplaceResidual(nn.Module):
    """Two conv branches added in place, ``h += conv2(x)``, then ReLU and an in-place scaling."""

    def __init__(self, length):
        super().__init__()
        self.c1, self.c2 = nn.Conv1d(4, 6, 5, padding=2), nn.Conv1d(4, 6, 3, padding=1)
        self.c3, self.act1, self.act2 = nn.Conv1d(6, 6, 3, padding=1), nn.ReLU(), nn.ReLU()
        self.out = nn.Linear(6 * length, 3)

    def forward(self, x):
        h = self.c1(x)
        h += self.c2(x)
        h = self.c3(self.act1(h))
        h.mul_(0.5)
        return self.out(self.act2(h).flatten(1))


# ------------------------------------------------------------------ the zoo

def gc_biased_one_hot(n: int, length: int, gc: float, generator: torch.Generator
                      ) -> torch.Tensor:
    """``n`` random one-hot float64 sequences ``(n, 4, length)`` (A, C, G, T rows).

    Each position is G or C with probability ``gc`` (each half of it), A or T
    otherwise, drawn with ``generator``.
    """
    probs = torch.tensor([(1 - gc) / 2, gc / 2, gc / 2, (1 - gc) / 2], dtype=DTYPE)
    idx = torch.multinomial(probs, n * length, replacement=True, generator=generator)
    return F.one_hot(idx.reshape(n, length), ALPHABET).permute(0, 2, 1).to(DTYPE)


@dataclass(frozen=True)
class ZooCase:
    """A model with a known DeepLIFT failure.

    Attributes
    ----------
    name : str
    model : nn.Module
        float64, eval mode, ``(B, 4, L) -> (B, 3)``.
    length : int
        ``L``.
    culprit : str or None
        The op :func:`~captum_genomics.testing.localize.localize_additivity`
        must rank first (its registry name, or a custom Function's class
        name); None where ``ShuffleDeepLiftShap`` is exact.
    culprit_caller : str or None
        The caller it must name: a module path, or ``failure_zoo.py:LINE``.
    captum_wrong, tangermeme_wrong : bool
        Whether Captum 0.9's ``DeepLift`` / tangermeme 1.6's ``deep_lift_shap``
        are expected not to be additive (``max |delta| > PEER_TOL``).
    captum_delta, tangermeme_delta : float
        Their ``max |delta|`` measured on :meth:`batch` (``N=2, K=2, L=12``,
        ``random_state=0``); ``nan``: the peer raises on this model.
    notes : str
    gc_bias : tuple of float or None
        G/C probabilities of the inputs and references drawn by :meth:`batch`
        (the branch model needs GC-rich inputs and AT-rich references).
    """

    name: str
    model: nn.Module
    length: int
    culprit: str | None
    culprit_caller: str | None
    captum_wrong: bool
    tangermeme_wrong: bool
    captum_delta: float
    tangermeme_delta: float
    notes: str = field(default="", compare=False)
    gc_bias: tuple[float, float] | None = None
    target: int = 0

    @property
    def exact(self) -> bool:
        """Whether ``ShuffleDeepLiftShap`` is additive on this model."""
        return self.culprit is None

    def batch(self, n: int = 2, k: int = 2, random_state: int = 0
              ) -> tuple[torch.Tensor, torch.Tensor]:
        """One-hot float64 inputs and references for this model.

        Parameters
        ----------
        n, k : int
            Examples and references per example. Defaults 2 and 2.
        random_state : int
            Seeds a ``torch.Generator``. Default 0.

        Returns
        -------
        inputs : Tensor ``(n, 4, L)``
        references : Tensor ``(n, k, 4, L)``
            Uniform bases, or G/C with the probabilities in ``gc_bias``.
        """
        g = torch.Generator().manual_seed(int(random_state))
        if self.gc_bias is None:
            x = random_one_hot(n, self.length, g)
            r = random_one_hot(n * k, self.length, g)
        else:
            x = gc_biased_one_hot(n, self.length, self.gc_bias[0], g)
            r = gc_biased_one_hot(n * k, self.length, self.gc_bias[1], g)
        return x, r.reshape(n, k, ALPHABET, self.length)

    def __repr__(self) -> str:
        return f"ZooCase({self.name!r}, culprit={self.culprit!r})"


@dataclass(frozen=True)
class _Entry:
    factory: Callable[[int], Callable[[], nn.Module]]  # length -> builder
    culprit: str | None
    caller: Callable[[], str] | None
    captum_wrong: bool
    tangermeme_wrong: bool
    captum_delta: float
    tangermeme_delta: float
    notes: str
    gc_bias: tuple[float, float] | None = None


def _fixed(cls, *args):
    return lambda L: lambda: cls(L, *args)


def _line(tag):
    return lambda: _tagged(tag)


# Peer figures: max |delta| on ZooCase.batch() (N=2, K=2, L=12, random_state=0, seed 0),
# Captum 0.9 and tangermeme 1.6, float64; nan: Captum raises on a module used twice.
_ENTRIES: dict[str, _Entry] = {
    # we fail: the culprit, the caller named for it; then Captum wrong?, tangermeme wrong?
    "normalize": _Entry(_fixed(_Normalize), "normalize", _line("normalize"), True, True,
                        1.348e-01, 1.348e-01, "F.normalize has no rule: linearised"),
    "hand_mask": _Entry(_fixed(_HandMask), "mul", _line("hand_mask"), True, True,
                        3.129e-02, 3.129e-02,
                        "h * (h > 0): the comparison-built mask differs between the passes"),
    "custom_function": _Entry(_fixed(_CustomFunction), "SwishFunction",
                              _line("custom_function"), True, True, 2.588e-02, 2.588e-02,
                              "custom autograd.Function: its exact gradient is not a multiplier"),
    "branch": _Entry(_fixed(_Branch), "mul", _line("branch"), True, True, 1.579e-01, 1.579e-01,
                     "Python if on the batch's GC content: 2.0 on the inputs, 0.5 on the "
                     "references", gc_bias=(0.9, 0.1)),
    "softmin_module": _Entry(_softmin, "softmin", lambda: "0.1", True, True,
                             1.080e-03, 1.080e-03, "nn.Softmin has no rule (softmax has one)"),
    # the peers fail, we are exact
    "gelu": _Entry(lambda L: _act_model(ACTIVATIONS["gelu"], L), None, None, True, False,
                   1.502e-02, 2.8e-17, "nn.GELU: Captum has no GELU rule"),
    "layernorm": _Entry(_fixed(_ChannelNorm, nn.LayerNorm), None, None, True, False,
                        5.819e-02, 1.1e-16, "nn.LayerNorm over channels"),
    "functional_relu": _Entry(_fixed(_FunctionalReLU), None, None, True, True,
                              3.269e-02, 3.269e-02,
                              "torch.relu and F.relu in forward: the peers hook modules"),
    "reused_relu": _Entry(_fixed(_Reused), None, None, True, False, math.nan, 1.5e-16,
                          "one nn.ReLU (and one conv) called twice"),
    "attention": _Entry(_fixed(_Attention), None, None, True, True, 6.198e-03, 6.198e-03,
                        "softmax(QK^T / sqrt(d)) V and x * sigmoid(x)"),
    # everyone is exact (exercises in-place ops)
    "inplace_residual": _Entry(_fixed(_InplaceResidual), None, None, False, False,
                               2.4e-17, 2.8e-17, "h += conv2(x); h.mul_(0.5): in-place ops"),
}

#: Names of the zoo's models.
ZOO: tuple[str, ...] = tuple(_ENTRIES)


def zoo_case(name: str, length: int = 12, random_state: int = 0) -> ZooCase:
    """Build zoo model ``name`` for inputs of length ``length``.

    Parameters
    ----------
    name : str
        One of :data:`ZOO`.
    length : int
        ``L``. Default 12.
    random_state : int
        ``torch.manual_seed`` for the weights (torch's global RNG is restored).
        Default 0. The recorded peer figures are for the defaults.

    Returns
    -------
    ZooCase
        A float64 model in eval mode and what is known about it.

    Raises
    ------
    KeyError
        For a name not in :data:`ZOO` (the message lists them).
    """
    if name not in _ENTRIES:
        raise KeyError(f"unknown zoo model {name!r}; expected one of {list(ZOO)}")
    e = _ENTRIES[name]
    return ZooCase(name, _seeded(e.factory(length), random_state), length, e.culprit,
                   None if e.caller is None else e.caller(), e.captum_wrong,
                   e.tangermeme_wrong, e.captum_delta, e.tangermeme_delta, e.notes, e.gc_bias)


def zoo_cases(length: int = 12, random_state: int = 0) -> list[ZooCase]:
    """Every zoo model (in :data:`ZOO` order), built as :func:`zoo_case` builds one."""
    return [zoo_case(name, length, random_state) for name in ZOO]
