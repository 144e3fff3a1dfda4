"""Lazy tiles in the batched layout (PairCursor.fill): rows written only when read.

The reference is the same engine with eager tiles (a PassObserver turns lazy tiles
off, so every tile is written when it is made), in float64: multipliers must be equal
bitwise, and every tensor the model reads or keeps must hold all of its rows.
"""

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from captum_genomics import ShuffleDeepLiftShap
from captum_genomics.deeplift.engine import DeepLiftPasses, PassObserver, detached_forward
from captum_genomics.deeplift.rules import default_rules
from captum_genomics.deeplift.rules.base import PairCursor
from tests.conftest import random_one_hot


@pytest.fixture(autouse=True)
def poisoned(monkeypatch):
    """Unwritten rows of lazy tiles hold NaN, so any read of one changes the results."""
    monkeypatch.setattr(PairCursor, "poison_pending", True)


def test_pending_tile_rows_and_fill():
    pairs = PairCursor(2, 3, batched=True, lazy=True)
    y = torch.arange(8.0).reshape(2, 4)
    t = pairs.tile(y)
    assert t.shape == (6, 4) and pairs.is_pending(t)
    assert torch.equal(t[:2], y)
    assert pairs.dedupable(t)  # known repeated rows: no values read
    version = t._version
    pairs.fill(t)
    assert not pairs.is_pending(t)
    assert torch.equal(t, y.repeat(3, 1))
    assert t._version == version  # nothing saved from the example rows is invalidated
    assert pairs.dedupable(t)
    t.add_(1.0)  # changed in place: checked again from its values (still repeated)
    assert pairs.dedupable(t)
    t[3] += 1.0
    assert not pairs.dedupable(t)


def test_fill_in_and_fill_all():
    pairs = PairCursor(1, 4, batched=True, lazy=True)
    a, b = pairs.tile(torch.ones(1, 3)), pairs.tile(torch.full((1, 2), 2.0))
    pairs.fill_in({"x": [(a,)], "y": 3})
    assert torch.equal(a, torch.ones(4, 3)) and pairs.is_pending(b)
    pairs.fill_all()
    assert torch.equal(b, torch.full((4, 2), 2.0)) and not pairs.is_pending(b)


def test_eager_cursors_never_leave_rows_unwritten():
    for pairs in (PairCursor(2, 3, batched=True), PairCursor(2, 1, batched=True, lazy=True),
                  PairCursor(2, 3, lazy=True)):
        t = pairs.tile(torch.ones(2, 5))
        assert not pairs.is_pending(t)
        assert torch.equal(t, torch.ones(t.shape[0], 5))


class _Reader(nn.Module):
    """Reads shared outputs every way a model can: properties, views, slices, concatenation,
    printing to a list, in-place writes, a stash on the module read after the call, and
    returns the max-pool indices."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv1d(4, 6, 3, padding=1)
        self.c2 = nn.Conv1d(6, 6, 3, padding=2, dilation=2)
        self.c3 = nn.Conv1d(6, 6, 1)
        self.fc = nn.Linear(6 * 6 + 6, 2)
        self.kept = []

    def forward(self, x):
        h = F.relu(self.c1(x))
        a = self.c2(h)
        self.kept.append(self.c3(h))        # stashed, read only after the call
        t = a.data.mT.sum() * 0             # .data, .mT: views of a shared output
        u = h[:, :3] * 2.0                  # a slice
        rows = float(len(h.tolist()))       # values as Python numbers
        a = F.relu(a) + torch.cat([u, u], 1)
        b = self.c3(a)
        b += a                              # in place on a shared output
        F.relu(b, inplace=True)             # in place, as a statement
        p, idx = F.max_pool1d(b, 2, return_indices=True)
        flat = torch.cat([p.view(p.shape[0], -1), b.mean(-1)], 1)
        return self.fc(flat) + t + 0 * rows, idx


@pytest.mark.parametrize("n_examples,n_references", [(1, 4), (3, 4), (2, 1)])
def test_lazy_and_eager_tiles_give_the_same_bits(n_examples, n_references):
    torch.manual_seed(0)
    model = _Reader().double().eval()
    forward = detached_forward(model)
    g = torch.Generator().manual_seed(1)
    x = random_one_hot(n_examples, 12, g)
    refs = random_one_hot(n_examples * n_references, 12, g).reshape(
        n_examples, n_references, 4, 12)
    sel = (lambda y: y[0][:, 1], lambda y: y[0][:, 1])
    results, kept, last = [], [], []
    for observer in (None, PassObserver()):
        model.kept.clear()
        passes = DeepLiftPasses(forward, default_rules(), strategy="batched",
                                observer=observer)
        mult, out, ref_out = passes.run((x,), (refs,), [sel])
        results.append((mult[0][0], out[0], ref_out[0]))
        kept.append(model.kept[-1].detach().clone())  # the input pass's stashed activation
        last.append(model.kept[-1])
    for lazy, eager in zip(results[0], results[1]):
        assert torch.equal(lazy, eager)
    assert torch.equal(kept[0], kept[1])
    rows = kept[0].reshape(n_references, n_examples, *kept[0].shape[1:])
    assert torch.equal(rows, rows[:1].expand_as(rows))  # every row written
    # and the attributions are additive
    _, delta = ShuffleDeepLiftShap(lambda t: model(t)[0]).attribute(
        x, references=refs, target=1, return_convergence_delta=True)
    assert delta.abs().max() < 1e-10


class _Attention(nn.Module):
    """Products of two input-dependent tensors (in place too), softmax (with a dtype),
    layer norm, scalar products and an encoder layer: the other rules that read only the
    example rows, and their fallbacks."""

    def __init__(self, d=8):
        super().__init__()
        self.embed = nn.Conv1d(4, d, 3, padding=1)
        self.norm = nn.LayerNorm(d)
        self.q, self.k = nn.Linear(d, d), nn.Linear(d, d)
        self.layer = nn.TransformerEncoderLayer(d, 2, 16, dropout=0.0, batch_first=True)
        self.head = nn.Linear(d, 2)

    def forward(self, x):
        h = self.embed(x).transpose(1, 2)            # (N, T, d)
        h = self.norm(h)
        q, k = self.q(h), self.k(h)
        scores = (q * 0.5) @ k.transpose(1, 2)      # the product rule's (lazy) output
        w = torch.softmax(scores, dim=-1, dtype=torch.float32)  # a converted copy
        a = torch.bmm(w.to(h.dtype), h)
        a.mul_(torch.sigmoid(q))                     # in place, two input-dependent tensors
        g = a * h                                    # a product the rule shares
        out = self.layer(g + a)
        return self.head(out.mean(1))


@pytest.mark.parametrize("n_examples", [1, 3])
def test_lazy_tiles_in_attention_layers(n_examples):
    torch.manual_seed(1)
    model = _Attention().double().eval()
    forward = detached_forward(model)
    g = torch.Generator().manual_seed(2)
    x = random_one_hot(n_examples, 10, g)
    refs = random_one_hot(n_examples * 3, 10, g).reshape(n_examples, 3, 4, 10)
    sel = (lambda y: y[:, 0], lambda y: y[:, 0])
    runs = []
    for observer in (None, PassObserver()):
        passes = DeepLiftPasses(forward, default_rules(), strategy="batched",
                                observer=observer)
        mult, out, ref_out = passes.run((x,), (refs,), [sel])
        runs.append((mult[0][0], out[0], ref_out[0]))
    for lazy, eager in zip(*runs):
        assert torch.equal(lazy, eager)
    _, delta = ShuffleDeepLiftShap(model).attribute(x, references=refs, target=0,
                                                    return_convergence_delta=True)
    assert delta.abs().max() < 1e-5  # the float32 softmax


class _WithDropout(nn.Module):
    """A convolution, an eval-mode dropout (the identity) and another convolution."""

    def __init__(self, p):
        super().__init__()
        self.c1 = nn.Conv1d(4, 6, 3, padding=1)
        self.drop = nn.Dropout(p)
        self.c2 = nn.Conv1d(6, 2, 3, padding=1)

    def forward(self, x):
        return self.c2(torch.relu(self.drop(self.c1(x)))).mean(-1)


def test_eval_dropout_passes_a_pending_tile_through(monkeypatch):
    """In eval mode a dropout returns its input, so a lazy tile goes through it unwritten
    (no fill while the dropout runs), with the bits of the model without it."""
    inside, filled = [False], []
    fill = PairCursor.fill

    def counting(self, t):
        if self.is_pending(t) and inside[0]:
            filled.append(tuple(t.shape))
        return fill(self, t)

    monkeypatch.setattr(PairCursor, "fill", counting)
    g = torch.Generator().manual_seed(3)
    x = random_one_hot(2, 9, g)
    refs = random_one_hot(2 * 3, 9, g).reshape(2, 3, 4, 9)
    runs = []
    for p in (0.0, 0.4):
        torch.manual_seed(4)
        model = _WithDropout(p).double().eval()
        model.drop.register_forward_pre_hook(lambda m, a: inside.__setitem__(0, True))
        model.drop.register_forward_hook(lambda m, a, o: inside.__setitem__(0, False))
        runs.append(ShuffleDeepLiftShap(model).attribute(x, references=refs, target=1,
                                                         return_multipliers=True))
    assert torch.equal(runs[0], runs[1])
    assert filled == []
