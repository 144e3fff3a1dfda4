"""Each rule's multipliers reproduce the op's output change exactly (closed-form check)."""

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from captum_genomics import deeplift_multipliers
from captum_genomics.deeplift.rules import (
    ELEMENTWISE_OPS,
    Rescale,
    RuleRegistry,
    UnsupportedOperationError,
    UnsupportedOperationWarning,
    default_rules,
    op_name,
)

D = torch.float64


def _exactness(op, shape, rules=None, scale=2.0):
    """sum(m * (x - r)) must equal sum(g * (op(x) - op(r))) for a random upstream g."""
    x = torch.randn(shape, dtype=D) * scale
    r = torch.randn(shape, dtype=D) * scale
    g = torch.randn_like(op(x))

    def model(t):
        return (op(t) * g).reshape(len(t), -1).sum(1)

    mult, delta = deeplift_multipliers(model, x, r, rules=rules)
    expected = model(x) - model(r)
    got = (mult * (x - r)).reshape(len(x), -1).sum(1)
    return (got - expected).abs().max().item(), delta.abs().max().item()


ACTIVATIONS = [
    F.relu, F.relu6, lambda t: F.leaky_relu(t, 0.1), F.elu, F.selu, F.celu, F.gelu,
    lambda t: F.gelu(t, approximate="tanh"), F.silu, F.mish, F.softplus, torch.sigmoid,
    torch.tanh, F.hardtanh, F.softsign, F.hardswish, F.hardsigmoid, F.softshrink,
    F.tanhshrink, F.logsigmoid, torch.exp, lambda t: torch.clamp(t, -0.5, 0.7),
    lambda t: torch.pow(t, 2), torch.sin, torch.erf, nn.PReLU(4).double(), nn.RReLU().eval(),
    nn.Threshold(0.1, -1.0),
]


@pytest.mark.parametrize("act", ACTIVATIONS, ids=lambda a: getattr(a, "__name__", type(a).__name__))
def test_rescale_is_exact(act):
    err, delta = _exactness(act, (5, 4, 7))
    assert err < 1e-12 and delta < 1e-12


def test_rescale_secant_value():
    # closed form: the multiplier of relu between x=2 and r=-1 is (2 - 0) / 3
    x = torch.tensor([[2.0]], dtype=D)
    r = torch.tensor([[-1.0]], dtype=D)
    mult, _ = deeplift_multipliers(lambda t: F.relu(t).sum(1), x, r)
    assert mult.item() == pytest.approx(2 / 3, abs=1e-15)


def test_rescale_falls_back_to_derivative_when_input_unchanged():
    x = torch.tensor([[0.3, -2.0]], dtype=D)
    mult, _ = deeplift_multipliers(lambda t: torch.sigmoid(t).sum(1), x, x.clone())
    s = torch.sigmoid(x)
    assert torch.allclose(mult, s * (1 - s), atol=1e-15)


@pytest.mark.parametrize("pool", [
    lambda t: F.max_pool1d(t, 4), lambda t: F.max_pool1d(t, 4, 2),
    lambda t: F.max_pool1d(t, 3, 1, dilation=2), lambda t: F.max_pool1d(t, 3, 2, padding=1),
    lambda t: F.max_pool1d(t, 3, 2, ceil_mode=True), lambda t: F.adaptive_max_pool1d(t, 3),
    nn.MaxPool1d(5, 1), lambda t: t.max(dim=-1).values, lambda t: torch.amax(t, -1),
])
def test_maxpool_1d_is_exact_after_relu(pool):
    # ReLU zeros create ties and unchanged positions, where naive rules lose additivity
    err, delta = _exactness(lambda t: pool(F.relu(t)), (6, 3, 17))
    assert err < 1e-12 and delta < 1e-12


@pytest.mark.parametrize("pool", [
    lambda t: F.max_pool2d(t, 2), lambda t: F.max_pool2d(t, 3, 1),
    lambda t: F.max_pool2d(t, (2, 3), (1, 2), dilation=(2, 1)),
])
def test_maxpool_2d_is_exact(pool):
    err, delta = _exactness(lambda t: pool(F.relu(t)), (3, 2, 7, 8))
    assert err < 1e-12 and delta < 1e-12


def test_maxpool_matches_brute_force_routing():
    # one window: dy >= 0 goes to argmax(x), dy < 0 to argmax(r)
    x = torch.tensor([[[1.0, 3.0, 2.0, 0.0]]], dtype=D)
    r = torch.tensor([[[0.0, 1.0, 5.0, 0.5]]], dtype=D)
    mult, _ = deeplift_multipliers(lambda t: F.max_pool1d(t, 4).reshape(1), x, r)
    # dy = 3 - 5 = -2 routed to position 2 (argmax r), whose change is 2 - 5 = -3
    assert torch.allclose(mult, torch.tensor([[[0, 0, 2 / 3, 0]]], dtype=D))


@pytest.mark.parametrize("op,shape", [
    (lambda t: torch.softmax(t, -1), (4, 3, 6)),
    (lambda t: F.softmax(t, dim=1), (4, 5, 3)),
    (lambda t: F.log_softmax(t, -1), (4, 3, 6)),
    (lambda t: F.layer_norm(t, (6,)), (4, 3, 6)),
    (nn.LayerNorm((3, 6)).double(), (4, 3, 6)),
    (lambda t: F.rms_norm(t, (6,), eps=1e-6), (4, 3, 6)),
    (lambda t: F.glu(t, -1), (4, 3, 8)),
    (lambda t: F.glu(t, 1), (4, 6, 5)),
    (lambda t: t * torch.sigmoid(t), (4, 3, 6)),
    (lambda t: t @ t.transpose(-1, -2), (4, 3, 6)),
    (lambda t: torch.softmax(t @ t.transpose(-1, -2) / 2, -1) @ t, (4, 5, 6)),
])
def test_structured_rules_are_exact(op, shape):
    err, delta = _exactness(op, shape)
    assert err < 1e-11 and delta < 1e-11


def test_layer_norm_with_affine_weights_is_exact():
    ln = nn.LayerNorm(6).double()
    with torch.no_grad():
        ln.weight.normal_()
        ln.bias.normal_()
    err, _ = _exactness(ln, (4, 3, 6))
    assert err < 1e-12


def test_softmax_over_batch_axis_is_rejected():
    x = torch.randn(3, 4, dtype=D)
    with pytest.raises(ValueError, match="axis 0"):
        deeplift_multipliers(lambda t: torch.softmax(t, 0).sum(1), x, x + 1)


def test_registry_is_immutable_and_extensible():
    base = default_rules()
    smaller = base.without("gelu", F.relu)
    assert "gelu" in base and "relu" in base
    assert "gelu" not in smaller and "relu" not in smaller
    bigger = smaller.with_rules({"gelu": Rescale(eps=1e-9)})
    assert bigger["gelu"].eps == 1e-9 and "gelu" not in smaller
    assert op_name(torch.Tensor.relu_) == "relu" and op_name(torch.Tensor.__getitem__) == "getitem"
    assert set(ELEMENTWISE_OPS) <= set(base)
    with pytest.raises(TypeError, match="rules\\['gelu'\\]"):
        RuleRegistry({"gelu": object()})


def test_op_without_rule_warns_naming_it_and_strict_raises():
    x = torch.randn(3, 5, dtype=D)
    rules = default_rules().without("gelu")
    with pytest.warns(UnsupportedOperationWarning, match="gelu"):
        deeplift_multipliers(lambda t: F.gelu(t).sum(1), x, x + 1, rules=rules)
    with pytest.raises(UnsupportedOperationError, match="gelu"):
        deeplift_multipliers(lambda t: F.gelu(t).sum(1), x, x + 1, rules=rules, strict=True)
    # an op nobody has a rule for
    with pytest.warns(UnsupportedOperationWarning, match="cumprod"):
        deeplift_multipliers(lambda t: torch.cumprod(t, 1).sum(1), x, x + 1)
    # dividing by an input-dependent tensor is nonlinear
    with pytest.raises(UnsupportedOperationError, match="div"):
        deeplift_multipliers(lambda t: (t / (t.abs() + 1)).sum(1), x, x + 1, strict=True)


def test_linear_ops_do_not_warn(recwarn):
    x = torch.randn(3, 4, 6, dtype=D)
    conv = nn.Conv1d(4, 2, 3).double()

    def model(t):
        h = conv(t) * 2.0 + 1
        h = torch.cat([h, h.flip(-1)], 1).permute(0, 2, 1).reshape(3, -1)
        return h[:, ::2].sum(1) / 3 - h.mean(1)

    deeplift_multipliers(model, x, x + 1)
    assert not [w for w in recwarn if issubclass(w.category, UnsupportedOperationWarning)]


class MyReLU(nn.ReLU):
    pass


class Reused(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(4, 4, 3, padding=1)
        self.act = MyReLU()
        self.out = nn.Linear(4, 2)

    def forward(self, x):
        h = self.act(self.conv(x))
        h = self.act(self.conv(h))  # the same modules twice
        h = F.gelu(h) + torch.tanh(h)  # functional calls
        return self.out(h.mean(-1))


def test_subclass_reuse_and_functional_calls_are_exact():
    model = Reused().double().eval()
    x = torch.randn(5, 4, 9, dtype=D)
    r = torch.randn(5, 4, 9, dtype=D)
    _, delta = deeplift_multipliers(model, x, r, target=1)
    assert delta.abs().max() < 1e-13


@pytest.mark.filterwarnings("ignore:Converting a tensor with requires_grad=True:UserWarning")
def test_data_dependent_control_flow_is_reported():
    def model(t):
        if float(t.sum()) > 0:
            t = torch.relu(t)
        return torch.tanh(t).sum(1)

    x = torch.ones(2, 3, dtype=D)
    with pytest.raises(RuntimeError, match="differ between the reference pass and the input"):
        deeplift_multipliers(model, x, -x)


def test_rescale_with_batch_shaped_constant_argument():
    # the constant second argument has the batch shape of each pass (n vs R * n rows)
    from captum_genomics import ShuffleDeepLiftShap

    rules = default_rules().with_rules({"logaddexp": Rescale()})
    conv = nn.Conv1d(4, 3, 3).double()

    def model(t):
        h = conv(t)
        return torch.logaddexp(h, torch.zeros_like(h)).sum((1, 2))

    x = torch.randn(2, 4, 9, dtype=D)
    refs = torch.randn(2, 3, 4, 9, dtype=D)
    for strategy in ("examples", "pairs", "batched"):
        _, delta = ShuffleDeepLiftShap(model, rules=rules).attribute(
            x, references=refs, strategy=strategy, return_convergence_delta=True)
        assert delta.abs().max() < 1e-12


def test_aliases_and_special_spellings_share_rules(recwarn):
    x = torch.randn(3, 5, dtype=D)
    for op in (torch.special.expit, torch.special.erf, torch.arcsinh, torch.clip):
        f = (lambda t, op=op: op(t, -0.5, 0.5).sum(1)) if op is torch.clip else (
            lambda t, op=op: op(t).sum(1))
        _, delta = deeplift_multipliers(f, x, x + 1)
        assert delta.abs().max() < 1e-12
    assert op_name(torch.special.expit) == "sigmoid"
    assert not [w for w in recwarn if issubclass(w.category, UnsupportedOperationWarning)]


@pytest.mark.parametrize("relu", [lambda h: h * (h > 0), lambda h: torch.where(h > 0, h, 0.0)])
def test_hand_written_mask_relu_is_reported(relu):
    x = torch.randn(3, 5, dtype=D)
    with pytest.warns(UnsupportedOperationWarning, match="`gt`.*mask"):
        deeplift_multipliers(lambda t: relu(t).sum(1), x, x + 1)
    with pytest.raises(UnsupportedOperationError, match="strict=True"):
        deeplift_multipliers(lambda t: relu(t).sum(1), x, x + 1, strict=True)


def test_warnings_point_at_the_caller():
    from captum_genomics import ShuffleDeepLiftShap

    x = torch.randn(2, 4, 6, dtype=D)
    model = nn.Sequential(nn.Conv1d(4, 2, 3), nn.GELU(), nn.Flatten(), nn.Linear(8, 1)).double()
    with pytest.warns(UnsupportedOperationWarning) as record:
        ShuffleDeepLiftShap(model, rules=default_rules().without("gelu")).attribute(
            x, references=torch.randn(2, 2, 4, 6, dtype=D), target=0)
    assert record[0].filename == __file__


@pytest.mark.parametrize("padding,dilation,k", [(0, 1, 3), (2, 2, 3), (8, 8, 3), (3, 1, 7), (0, 4, 5)])
def test_conv1d_input_gradient_matches_autograd(padding, dilation, k):
    from captum_genomics.deeplift.rules.conv import MIN_CHANNELS

    conv = nn.Conv1d(MIN_CHANNELS, 5, k, padding=padding, dilation=dilation).double()
    x = torch.randn(3, MIN_CHANNELS, 30, dtype=D)
    r = torch.randn(3, MIN_CHANNELS, 30, dtype=D)
    fast, _ = deeplift_multipliers(lambda t: torch.tanh(conv(t)).sum((1, 2)), x, r)
    plain, _ = deeplift_multipliers(lambda t: torch.tanh(conv(t)).sum((1, 2)), x, r,
                                    rules=default_rules().without("conv1d"))
    assert torch.allclose(fast, plain, atol=1e-13)


@pytest.mark.parametrize("padding,dilation,k,length", [
    (0, 1, 1, 1), (0, 1, 3, 9), (1, 1, 3, 9), (2, 1, 3, 9), (9, 1, 19, 30), (4, 2, 5, 30),
    (0, 3, 4, 30), (3, 2, 4, 7), (12, 3, 5, 20)])
def test_gemm_fold_input_gradient_matches_autograd(padding, dilation, k, length):
    """The GEMM-and-fold input gradient against autograd's, over paddings (none, partial,
    full), dilations, widths and lengths down to one position."""
    from captum_genomics.deeplift.rules.conv import _gemm_fold_input_gradient

    torch.manual_seed(k + padding)
    x = torch.randn(5, 4, length, dtype=D, requires_grad=True)
    weight = torch.randn(7, 4, k, dtype=D)
    y = F.conv1d(x, weight, padding=padding, dilation=dilation)
    grad = torch.randn_like(y)
    expected, = torch.autograd.grad(y, x, grad)
    got = _gemm_fold_input_gradient(grad, weight, padding, dilation, length)
    assert got.shape == expected.shape
    assert torch.allclose(got, expected, atol=1e-12)
    channels_last = grad.transpose(1, 2).contiguous().transpose(1, 2)  # any strides
    assert torch.equal(_gemm_fold_input_gradient(channels_last, weight, padding, dilation,
                                                 length), got)


@pytest.mark.parametrize("strategy", ["batched", "examples"])
def test_wide_first_layer_uses_the_gemm_fold_and_matches_autograd(strategy, monkeypatch):
    """A one-hot first layer with GEMM_MIN_FILTERS filters takes the GEMM-and-fold input
    gradient in both layouts, with autograd's attributions (float64) and batch invariance."""
    from captum_genomics import ShuffleDeepLiftShap
    from captum_genomics.deeplift.rules import conv as conv_rules
    from tests.conftest import random_one_hot

    calls = []
    original = conv_rules._gemm_fold_input_gradient
    monkeypatch.setattr(conv_rules, "_gemm_fold_input_gradient",
                        lambda *a: calls.append(a[0].shape) or original(*a))
    torch.manual_seed(0)
    filters = conv_rules.GEMM_MIN_FILTERS
    model = nn.Sequential(nn.Conv1d(4, filters, 7, padding=2), nn.ReLU(), nn.MaxPool1d(3),
                          nn.Flatten(), nn.Linear(filters * 10, 2)).double().eval()
    g = torch.Generator().manual_seed(1)
    x = random_one_hot(3, 34, g)
    refs = torch.stack([random_one_hot(4, 34, g) for _ in range(3)])

    def run(rules=None, batch_size=64):
        kwargs = {} if rules is None else {"rules": rules}
        return ShuffleDeepLiftShap(model, **kwargs).attribute(
            x, references=refs, target=1, batch_size=batch_size, strategy=strategy)
    fast = run()
    assert calls, "the GEMM-and-fold path did not run"
    plain = run(default_rules().without("conv1d"))
    assert torch.allclose(fast, plain, atol=1e-12)
    assert torch.equal(run(batch_size=5), fast)


@pytest.mark.parametrize("strategy", ["batched", "examples", "pairs"])
def test_in_place_activations_equal_their_out_of_place_forms(strategy):
    """x.relu_(), F.relu(x, inplace=True), torch.sigmoid_(x), g.mul_(h) written as
    statements (the model relies on the write) give the attributions of the out-of-place
    model, with additivity."""
    import torch.nn.functional as F

    from captum_genomics import ShuffleDeepLiftShap
    from tests.conftest import random_one_hot

    torch.manual_seed(0)
    conv = nn.Conv1d(4, 5, 3, padding=1).double()
    conv2 = nn.Conv1d(5, 5, 3, padding=1).double()
    fc = nn.Linear(50, 2).double()

    def in_place(t):
        h = conv(t)
        h.relu_()
        g = conv2(h)
        F.relu(g, inplace=True)
        torch.sigmoid_(g)
        g.mul_(h)
        return fc(g.flatten(1))

    def out_of_place(t):
        h = torch.relu(conv(t))
        g = torch.sigmoid(F.relu(conv2(h)))
        return fc((g * h).flatten(1))

    x = random_one_hot(3, 10)
    refs = random_one_hot(3 * 4, 10).reshape(3, 4, 4, 10)
    assert torch.allclose(in_place(x), out_of_place(x), atol=1e-14)
    kw = dict(references=refs, target=0, strategy=strategy, return_convergence_delta=True)
    a, delta = ShuffleDeepLiftShap(in_place).attribute(x, **kw)
    b, _ = ShuffleDeepLiftShap(out_of_place).attribute(x, **kw)
    assert delta.abs().max() < 1e-12
    assert torch.allclose(a, b, rtol=0, atol=1e-12)


def test_product_midpoint_has_the_bits_of_the_sum_halved():
    from captum_genomics.deeplift.rules.product import _midpoint

    g = torch.Generator().manual_seed(5)
    for dtype in (torch.float32, torch.float64):
        x = torch.randn(3, 7, 11, generator=g, dtype=dtype) * 1e3
        r = torch.randn(4, 3, 7, 11, generator=g, dtype=dtype) * 1e-2
        assert torch.equal(_midpoint(x, r), (x + r) / 2)
