"""The engine's "batched" layout: shared convolutions/dense layers, pair-row checks, agreement.

Every check compares against the "examples" layout (one backward per reference
through an n-row graph, which shares nothing between pairs) and against
autograd's own input gradients, in float64.
"""

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from captum_genomics import ShuffleDeepLiftShap
from captum_genomics.deeplift.engine import DeepLiftPasses, detached_forward
from captum_genomics.deeplift.rules import default_rules
from captum_genomics.deeplift.rules.base import PairCursor
from captum_genomics.deeplift.rules.conv import SharedLinear
from tests.conftest import random_one_hot

D = torch.float64


def _attribute(model, x, refs, strategy, **kwargs):
    return ShuffleDeepLiftShap(model).attribute(
        x, references=refs, strategy=strategy, return_multipliers=True,
        return_convergence_delta=True, **kwargs)


def _check_layouts_agree(model, x, refs, **kwargs):
    base, base_delta = _attribute(model, x, refs, "examples", **kwargs)
    for strategy in ("batched", "pairs", "auto"):
        mult, delta = _attribute(model, x, refs, strategy, **kwargs)
        assert torch.allclose(mult, base, rtol=0, atol=1e-12), strategy
        assert delta.abs().max() < 1e-10, strategy
    assert base_delta.abs().max() < 1e-10


class Conv2dNet(nn.Module):
    """conv2d with a stride, groups, string padding; a dense layer; every op shared."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(1, 4, (4, 3), padding=(0, 1))
        self.c2 = nn.Conv2d(4, 4, (1, 3), stride=(1, 2), groups=2)
        self.c3 = nn.Conv2d(4, 6, (1, 5), padding="same")
        self.c4 = nn.Conv2d(6, 6, (1, 2), padding="valid", dilation=(1, 2))
        self.fc = nn.Linear(6 * 5, 3)

    def forward(self, x):  # (N, 4, 16)
        h = torch.relu(self.c1(x.unsqueeze(1)))
        h = F.gelu(self.c2(h))
        h = torch.tanh(self.c3(h))
        h = torch.relu(self.c4(h))
        return self.fc(h.flatten(1))


class Conv3dNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.c = nn.Conv3d(1, 3, (2, 2, 3), padding=(0, 0, 1))
        self.fc = nn.Linear(3 * 12, 2)

    def forward(self, x):  # (N, 4, 12) -> (N, 1, 2, 2, 12)
        h = torch.relu(self.c(x.reshape(len(x), 1, 2, 2, -1)))
        return self.fc(h.flatten(1))


@pytest.mark.parametrize("model_cls,length", [(Conv2dNet, 16), (Conv3dNet, 12)])
@pytest.mark.parametrize("batch_size", [3, 7, 64])
def test_shared_convolutions_agree_with_examples_layout(model_cls, length, batch_size):
    torch.manual_seed(0)
    model = model_cls().double().eval()
    x = random_one_hot(5, length)
    refs = random_one_hot(5 * 3, length).reshape(5, 3, 4, length)
    _check_layouts_agree(model, x, refs, target=1, batch_size=batch_size)


def test_shared_linear_input_gradient_equals_autograd():
    """SharedLinear's backward over R * n pair rows is the op's input gradient, row by row."""
    torch.manual_seed(1)
    n, r = 2, 3
    for func, weight, shape, extra in (
        (F.conv1d, torch.randn(5, 4, 3, dtype=D), (4, 11), {"padding": 2, "dilation": 2}),
        (F.conv1d, torch.randn(6, 2, 3, dtype=D), (4, 11), {"stride": 2, "groups": 2}),
        (F.conv2d, torch.randn(3, 2, 2, 3, dtype=D), (2, 5, 7), {"padding": "same"}),
        (F.linear, torch.randn(4, 6, dtype=D), (3, 6), {}),
    ):
        base = torch.randn(n, *shape, dtype=D)
        rows = base.repeat(r, *([1] * len(shape))).requires_grad_(True)
        pairs = PairCursor(n, r, batched=True)
        rule = SharedLinear()
        from captum_genomics.deeplift.rules.base import attributed_inputs

        with attributed_inputs([rows]):
            out = rule.apply(func, (rows, weight), extra, None, pairs)
        expected_out = func(rows.detach(), weight, **extra)
        assert torch.allclose(out, expected_out, atol=1e-12)
        g = torch.randn_like(expected_out)
        (got,) = torch.autograd.grad(out, rows, g)
        probe = rows.detach().clone().requires_grad_(True)
        (want,) = torch.autograd.grad(func(probe, weight, **extra), probe, g)
        assert torch.allclose(got, want, atol=1e-12), func.__name__


def test_a_sequence_axis_the_size_of_the_pair_rows_is_not_shared():
    """A tensor whose first axis only happens to hold R * n entries is left whole.

    The model moves the length axis first, ``(L, N, C)``, with ``L == R * n``: its
    linear layer and ReLU see ``L`` on axis 0 and must not be computed once per
    "example" there (rows ``0..n-1`` are positions, not examples).
    """
    torch.manual_seed(2)
    n, r = 2, 3
    length = n * r
    conv = nn.Conv1d(4, 5, 3, padding=1).double()
    lin = nn.Linear(5, 4).double()
    head = nn.Linear(4 * length, 2).double()

    def model(t):
        h = conv(t).permute(2, 0, 1)  # (L, N, 5)
        h = torch.relu(lin(h))        # (L, N, 4)
        return head(h.permute(1, 0, 2).reshape(len(t), -1))

    x = random_one_hot(n, length)
    refs = random_one_hot(n * r, length).reshape(n, r, 4, length)
    base, _ = _attribute(model, x, refs, "pairs", target=0, batch_size=n * r)
    for strategy in ("batched", "auto"):
        mult, delta = _attribute(model, x, refs, strategy, target=0, batch_size=n * r)
        assert torch.allclose(mult, base, rtol=0, atol=1e-12), strategy
        assert delta.abs().max() < 1e-10, strategy
    # the "examples" layout cannot align such a model: it says so instead of a wrong answer
    with pytest.raises(ValueError, match="examples on its first axis"):
        _attribute(model, x, refs, "examples", target=0, batch_size=n * r)


def test_dedupable_needs_repeated_rows():
    pairs = PairCursor(2, 3, batched=True)
    t = torch.arange(6.0).reshape(6, 1)
    assert not pairs.dedupable(t)
    assert pairs.dedupable(torch.tensor([[1.0], [2.0]]).repeat(3, 1))
    assert not pairs.dedupable(torch.ones(5, 1))       # not R * n rows
    assert not PairCursor(2, 3).dedupable(torch.ones(6, 1))  # not the batched layout
    assert pairs.layout(t).n_references == 1          # falls back to one row per pair


def test_batched_layout_on_residual_and_reused_modules():
    """Reused modules, in-place ops on shared outputs, residual adds, a max-pool with indices."""
    torch.manual_seed(3)
    conv = nn.Conv1d(4, 4, 3, padding=1).double()
    conv2 = nn.Conv1d(4, 4, 3, padding=1).double()
    fc = nn.Linear(4 * 5, 2).double()

    def model(t):
        h = conv(t)
        h = h + F.relu(conv2(h))
        a = conv2(h)
        a += h                        # in-place add on a shared output
        h = F.relu(a, inplace=True)
        p, idx = F.max_pool1d(h, 2, return_indices=True)
        return fc((p + idx.to(p.dtype) * 0).flatten(1))

    x = random_one_hot(4, 10)
    refs = random_one_hot(4 * 5, 10).reshape(4, 5, 4, 10)
    _check_layouts_agree(model, x, refs, target=1, batch_size=11)


def test_auto_is_batched_for_batch_first_models():
    model = Conv2dNet().double().eval()
    passes = DeepLiftPasses(detached_forward(model), default_rules(), strategy="auto")
    sel = (lambda y: y[:, 0], lambda y: y[:, 0])
    passes.run((random_one_hot(2, 16),), (random_one_hot(6, 16).reshape(2, 3, 4, 16),), [sel])
    assert passes.last_strategy == "batched"


def test_dedupable_with_masked_positions():
    """-inf masks (attention) and NaN-free rows that differ in the last bit still count."""
    pairs = PairCursor(2, 3, batched=True)
    base = torch.tensor([[0.5, -float("inf")], [1.0, 2.0]])
    assert pairs.dedupable(base.repeat(3, 1))
    nudged = base.repeat(3, 1)
    nudged[2, 0] = torch.nextafter(torch.tensor(0.5), torch.tensor(1.0))
    assert pairs.dedupable(nudged)
    other = base.repeat(3, 1)
    other[3, 1] = 3.0
    assert not pairs.dedupable(other)


@pytest.mark.parametrize("in_place", [False, True])
def test_one_example_per_batch_with_and_without_in_place_writes(in_place):
    """One example per batch, with and without in-place writes into shared outputs: both
    agree with the unshared layout."""
    torch.manual_seed(4)
    conv = nn.Conv1d(4, 4, 3, padding=1).double()
    conv2 = nn.Conv1d(4, 4, 3, padding=1).double()
    fc = nn.Linear(4 * 10, 2).double()

    def model(t):
        h = F.relu(conv(t))
        a = conv2(h)
        if in_place:
            a += h
            a.mul_(0.5)
        else:
            a = (a + h) * 0.5
        return fc(F.relu(a).flatten(1))

    x = random_one_hot(3, 10)
    refs = random_one_hot(3 * 4, 10).reshape(3, 4, 4, 10)
    _check_layouts_agree(model, x, refs, target=1, batch_size=4)


def test_shared_sums_and_in_place_sums():
    """Residual sums (+, -, torch.add with alpha, rsub) shared; add_ keeps its in-place meaning."""
    torch.manual_seed(5)
    c1 = nn.Conv1d(4, 4, 3, padding=1).double()
    c2 = nn.Conv1d(4, 4, 3, padding=1).double()
    fc = nn.Linear(4 * 8, 2).double()

    def model(t):
        h = F.relu(c1(t))
        a = F.relu(c2(h))
        u = torch.add(h, a, alpha=0.5) - a
        u = torch.rsub(u, h, alpha=2.0) + h.sub(a)
        v = u.clone()
        v.add_(h)                     # in place: must change v
        return fc(torch.tanh(v + u).flatten(1))

    x = random_one_hot(3, 8)
    refs = random_one_hot(3 * 4, 8).reshape(3, 4, 4, 8)
    for batch_size in (4, 12):
        _check_layouts_agree(model, x, refs, target=0, batch_size=batch_size)
    # the model's own output is unchanged by the engine's interception
    out = ShuffleDeepLiftShap(model).attribute(x, references=refs, target=0,
                                               return_convergence_delta=True)[1]
    assert out.abs().max() < 1e-10


def test_dedupable_checks_the_last_block_too():
    """A sequence axis of R * n positions whose first 2n positions coincide (padding) is
    still not taken for repeated pair rows."""
    pairs = PairCursor(2, 4, batched=True)
    t = torch.zeros(8, 3)
    t[6:] = 1.0                    # blocks 0 and 1 equal, the last one differs
    assert not pairs.dedupable(t)
    assert pairs.dedupable(torch.randn(2, 3).repeat(4, 1))


@pytest.mark.parametrize("lazy", [False, True])
def test_shared_batch_norm_equals_autograd_and_falls_back(lazy):
    """Eval-mode batch norm computed once per example: forward and input gradient equal
    the op's own (row by row); batch statistics and torch.batch_norm run unchanged."""
    from captum_genomics.deeplift.rules.base import attributed_inputs
    from captum_genomics.deeplift.rules.conv import SharedBatchNorm

    g = torch.Generator().manual_seed(3)
    n, r, c = 2, 3, 5
    mean, var = torch.randn(c, generator=g, dtype=D), torch.rand(c, generator=g, dtype=D) + 0.5
    weight, bias = torch.randn(c, generator=g, dtype=D), torch.randn(c, generator=g, dtype=D)
    rule = SharedBatchNorm()
    for shape, w in (((c, 7), weight), ((c,), None), ((c, 3, 4), weight)):
        base = torch.randn(n, *shape, generator=g, dtype=D)
        rows = base.repeat(r, *([1] * len(shape))).requires_grad_(True)
        pairs = PairCursor(n, r, batched=True, lazy=lazy)
        kwargs = {"weight": w, "bias": bias, "eps": 1e-3}
        with attributed_inputs([rows]):
            out = rule.apply(F.batch_norm, (rows, mean, var), kwargs, None, pairs)
        pairs.fill_all()
        expected = F.batch_norm(rows.detach(), mean, var, **kwargs)
        assert torch.equal(out, expected)  # the op's own kernel, row by row
        grad = torch.randn(expected.shape, generator=g, dtype=D)
        (got,) = torch.autograd.grad(out, rows, grad)
        probe = rows.detach().clone().requires_grad_(True)
        (want,) = torch.autograd.grad(F.batch_norm(probe, mean, var, **kwargs), probe, grad)
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    # batch statistics (training=True) are not per row: the op itself, autograd's backward
    rows = base.repeat(r, *([1] * len(shape))).requires_grad_(True)
    pairs = PairCursor(n, r, batched=True, lazy=lazy)
    with attributed_inputs([rows]):
        out = rule.apply(F.batch_norm, (rows, None, None), {"training": True}, None, pairs)
    assert out.grad_fn is not None and "SharedFunction" not in type(out.grad_fn).__name__
    torch.testing.assert_close(out, F.batch_norm(rows.detach(), None, None, training=True))
    # torch.batch_norm (other argument order) is not rewritten
    with attributed_inputs([rows]):
        out = rule.apply(torch.batch_norm, (rows, weight, bias, mean, var, False, 0.1, 1e-3,
                                            False), {}, None, pairs)
    torch.testing.assert_close(out, torch.batch_norm(rows.detach(), weight, bias, mean, var,
                                                     False, 0.1, 1e-3, False))


def test_constant_operands_are_shared_with_autograds_backward(monkeypatch):
    """x * c, c * x, x / c, x + c, c + x, x - c, c - x (numbers, per-channel tensors, a
    one-row tensor) run once per example in the batched layout, with the bits of the
    unshared ops (float64); constants with pair rows, c / x and promoting constants are
    left to the op itself."""
    from captum_genomics.deeplift import engine
    from captum_genomics.deeplift.rules import conv as conv_rules
    from captum_genomics.deeplift.rules import product

    torch.manual_seed(7)
    n, r, length = 3, 4, 8
    c1 = nn.Conv1d(4, 5, 3, padding=1).double()
    fc = nn.Linear(5 * length, 2).double()
    scale = torch.rand(5, 1, dtype=D) + 0.5          # per channel, broadcast over rows
    row = torch.rand(1, 5, length, dtype=D)          # one row, broadcast
    rows = torch.rand(n * r, 5, length, dtype=D)     # pair rows: not shared

    def model(t):
        h = torch.tanh(c1(t))
        h = h * 0.5 + 2.0 * h
        h = h / 3 - 1.5
        h = (0.25 - h) * scale
        h = torch.mul(row, h) + row
        h = torch.add(h, scale, alpha=2.0) - torch.sub(1.0, h, alpha=0.5)
        h = h.div(scale)
        h = torch.tanh(h)
        if h.shape[0] == rows.shape[0]:
            h = h * rows                              # pair rows: the op itself
        return fc((h + 4.0).flatten(1))

    g = torch.Generator().manual_seed(2)
    x = random_one_hot(n, length, g)
    refs = random_one_hot(n * r, length, g).reshape(n, r, 4, length)

    calls = []
    real = conv_rules.shared_constant

    def counting(func, args, kwargs, pairs):
        out = real(func, args, kwargs, pairs)
        calls.append((getattr(func, "__name__", ""), out is not None))
        return out

    monkeypatch.setattr(engine, "shared_constant", counting)
    monkeypatch.setattr(product, "shared_constant", counting)
    shared = ShuffleDeepLiftShap(model).attribute(
        x, references=refs, target=1, strategy="batched", batch_size=n * r,
        return_convergence_delta=True)
    # h*0.5, 2.0*h, *scale, mul(row, h); /3, div(scale); -1.5, sub(1.0, h); +row, add(alpha)
    assert [name for name, ok in calls if ok] == ["mul", "mul", "div", "sub", "mul", "mul",
                                                  "add", "add", "sub", "div"], calls
    assert calls[-2:] == [("mul", False), ("add", False)]  # pair rows: the op itself
    monkeypatch.setattr(engine, "shared_constant", lambda *a: None)
    monkeypatch.setattr(product, "shared_constant", lambda *a: None)
    plain = ShuffleDeepLiftShap(model).attribute(
        x, references=refs, target=1, strategy="batched", batch_size=n * r,
        return_convergence_delta=True)
    assert torch.equal(shared[0], plain[0])
    assert shared[1].abs().max() < 1e-10

    # left to the op itself: c / x, in place, a promoting constant, other layouts
    from captum_genomics.deeplift.rules.base import attributed_inputs

    t = torch.randn(2, 5, dtype=D).repeat(3, 1).requires_grad_(True)
    batched = PairCursor(2, 3, batched=True)
    with attributed_inputs([t]):
        assert real(torch.div, (3.0, t), {}, batched) is None
        assert real(torch.Tensor.mul_, (t.clone(), 2.0), {}, batched) is None
        assert real(torch.mul, (t.float(), torch.ones(5, dtype=D)), {}, batched) is None
        assert real(torch.mul, (t, 2.0), {}, PairCursor(6, 1)) is None
        assert real(torch.mul, (t, 2.0), {}, batched) is not None
