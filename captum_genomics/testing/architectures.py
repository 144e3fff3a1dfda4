"""Random convolutional architectures drawn by hypothesis, for the property suite.

:func:`architectures` draws an :class:`ArchSpec` (conv blocks with an activation
and an optional pooling, then a linear head); :func:`build_arch` builds the
float64 model. Options restrict the draw to what a peer implementation
supports (tangermeme, Captum), so agreement tests compare like with like.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
from hypothesis import strategies as st

from captum_genomics.testing.models import ACTIVATIONS, ALPHABET, _seeded

__all__ = ["PoolSpec", "BlockSpec", "ArchSpec", "architectures", "build_arch"]

@dataclass(frozen=True)
class PoolSpec:
    kind: str  # "max" or "avg"
    kernel: int
    stride: int
    dilation: int = 1


@dataclass(frozen=True)
class BlockSpec:
    channels: int
    kernel: int
    dilation: int
    activation: str
    functional: bool = False
    residual: bool = False
    pool: PoolSpec | None = None


@dataclass(frozen=True)
class ArchSpec:
    """A random convolutional stack: blocks, then a head, to ``(B, 3)``.

    ``shared_activation`` makes every block call the first block's activation
    module (a module reused in one forward). ``head`` is ``"flatten"``
    (flatten + linear), ``"mean"`` or ``"max"`` (global pooling by ``x.max(-1)``).
    """

    length: int
    blocks: tuple[BlockSpec, ...]
    head: str
    shared_activation: bool
    seed: int

    @property
    def tangermeme(self) -> bool:
        return (all(ACTIVATIONS[b.activation].tangermeme and not b.functional
                    for b in self.blocks)
                and self.head != "max" and not (self.shared_activation and len(self.blocks) > 1))

    @property
    def bitwise(self) -> bool:
        return all(ACTIVATIONS[b.activation].bitwise for b in self.blocks)

    @property
    def captum(self) -> bool:
        return (all(ACTIVATIONS[b.activation].captum and not b.functional
                    and (b.pool is None or b.pool.kind == "avg") for b in self.blocks)
                and self.head != "max" and not (self.shared_activation and len(self.blocks) > 1))


class _ArchNet(nn.Module):
    def __init__(self, spec: ArchSpec):
        super().__init__()
        self.spec = spec
        convs, acts, pools = [], [], []
        c_in = ALPHABET
        for b in spec.blocks:
            pad = b.dilation * (b.kernel - 1) // 2
            convs.append(nn.Conv1d(c_in, b.channels, b.kernel, padding=pad, dilation=b.dilation))
            if b.functional:
                acts.append(nn.Identity())
            elif spec.shared_activation and acts:
                acts.append(acts[0])
            else:
                acts.append(ACTIVATIONS[b.activation].module())
            if b.pool is None:
                pools.append(nn.Identity())
            elif b.pool.kind == "max":
                pools.append(nn.MaxPool1d(b.pool.kernel, b.pool.stride, dilation=b.pool.dilation))
            else:
                pools.append(nn.AvgPool1d(b.pool.kernel, b.pool.stride))
            c_in = b.channels
        self.convs, self.acts, self.pools = (nn.ModuleList(convs), nn.ModuleList(acts),
                                             nn.ModuleList(pools))
        with torch.no_grad():
            width = self._body(torch.zeros(1, ALPHABET, spec.length)).shape[1]
        self.out = nn.Linear(width, 3)

    def _body(self, x):
        for b, conv, act, pool in zip(self.spec.blocks, self.convs, self.acts, self.pools):
            h = conv(x)
            h = ACTIVATIONS[b.activation].functional(h) if b.functional else act(h)
            if b.residual and h.shape == x.shape:
                h = h + x
            x = pool(h)
        if self.spec.head == "flatten":
            return x.flatten(1)
        if self.spec.head == "mean":
            return x.mean(-1)
        return x.max(-1).values

    def forward(self, x):
        return self.out(self._body(x))


def build_arch(spec: ArchSpec) -> nn.Module:
    """The float64 eval-mode model of ``spec``, with weights drawn from ``spec.seed``."""
    return _seeded(lambda: _ArchNet(spec), spec.seed)


@st.composite
def _pools(draw, tangermeme: bool, captum: bool):
    choice = draw(st.sampled_from(["none", "avg"] if captum else
                                  ["none", "max", "max_overlap", "max_dilated", "avg"]))
    if choice == "none":
        return None
    if choice == "avg":
        k = draw(st.integers(2, 3))
        return PoolSpec("avg", k, draw(st.integers(1, k)))
    if choice == "max":
        k = draw(st.integers(2, 3))
        return PoolSpec("max", k, k)
    if choice == "max_overlap":
        k = draw(st.integers(3, 4))
        return PoolSpec("max", k, draw(st.integers(1, k - 1)))
    return PoolSpec("max", 3, draw(st.integers(1, 2)), dilation=2)


@st.composite
def architectures(draw, tangermeme: bool = False, captum: bool = False,
                  min_length: int = 16, max_length: int = 40) -> ArchSpec:
    """Strategy over :class:`ArchSpec`.

    Parameters
    ----------
    tangermeme, captum
        Restrict to models the peer handles exactly (module activations of
        the peer's list, no reuse, no ``x.max``; for Captum also no max-pool).
    min_length, max_length
        Range of the input length ``L``.
    """
    names = [n for n, a in ACTIVATIONS.items()
             if (a.tangermeme or not tangermeme) and (a.captum or not captum)]
    length = draw(st.integers(min_length, max_length))
    n_blocks = draw(st.integers(1, 3))
    blocks, c_in, cur = [], ALPHABET, length
    for _ in range(n_blocks):
        act = draw(st.sampled_from(names))
        functional = (not (tangermeme or captum) and ACTIVATIONS[act].functional is not None
                      and draw(st.booleans()))
        kernel = draw(st.sampled_from([1, 3, 5]))
        dilation = draw(st.integers(1, 2))
        residual = draw(st.booleans())
        channels = c_in if residual else draw(st.integers(2, 8))
        pool = draw(_pools(tangermeme, captum)) if cur >= 8 else None
        if pool is not None:
            span = pool.dilation * (pool.kernel - 1) + 1
            cur = (cur - span) // pool.stride + 1
        blocks.append(BlockSpec(channels, kernel, dilation, act, functional, residual, pool))
        c_in = channels
    heads = ["flatten", "mean"] if (tangermeme or captum) else ["flatten", "mean", "max"]
    head = draw(st.sampled_from(heads))
    shared = not (tangermeme or captum) and draw(st.booleans())
    if shared:  # one module instance for all blocks: they must share the activation
        blocks = [BlockSpec(b.channels, b.kernel, b.dilation, blocks[0].activation, False,
                            b.residual, b.pool) for b in blocks]
    seed = draw(st.integers(0, 2**31 - 1))
    return ArchSpec(length, tuple(blocks), head, shared, seed)
