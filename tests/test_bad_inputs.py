"""A bad-input suite that stays (issue #11, section 7).

Hypothesis draws malformed values for one argument at a time of every public
entry point (the attribution methods, the reference generators, the
sequence readers) and checks the contract each must keep:

* a clear exception (``TypeError``, ``ValueError`` or a subclass, or
  ``FileNotFoundError``/``IsADirectoryError`` for paths) whose message names
  the user's argument (or the path);
* the model's state (parameters, buffers, training flag, hooks) and the
  inputs exactly as they were;
* grad mode as it was.

Every argument is drawn from classes of bad values (wrong type, wrong
dtype, wrong shape, non-finite, empty, out of range, unknown name); the
classes tried are counted in ``TRIED`` and printed with ``-s``.
"""

from __future__ import annotations

import collections
import gzip
import math
import os
import re
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from captum_genomics import (
    FastSHAP,
    HeadAblationExplainedVariance,
    ShuffleDeepLiftShap,
    UninformativeReferencesWarning,
)
from captum_genomics.deeplift import deeplift_multipliers
from captum_genomics.references import (
    dinucleotide_shuffle,
    gc_matched_references,
    kmer_shuffle,
    uniform_references,
    zero_references,
)
from captum_genomics.seq.io import one_hot_decode, one_hot_encode, read_fasta
from captum_genomics.testing.checks import check_model_unchanged  # noqa: F401 (documented twin)
from tests.head_models import NeighbourModel

SETTINGS = dict(max_examples=25, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
#: (entry point, argument, class of bad value) -> number of inputs tried
TRIED: collections.Counter = collections.Counter()
CLEAR = (TypeError, ValueError)

pytestmark = pytest.mark.usefixtures("one_thread")


# ----------------------------------------------------------------------------- fixtures


def _one_hot(n, length, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return F.one_hot(torch.randint(4, (n, length), generator=g), 4).transpose(1, 2).to(dtype)


class _CNN(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv1d(4, 6, 5)
        self.bn = nn.BatchNorm1d(6)
        self.head = nn.Linear(6, 2)

    def forward(self, x):
        return self.head(torch.relu(self.bn(self.conv(x))).mean(-1))


def _snapshot(model):
    return ({k: v.detach().clone() for k, v in model.state_dict().items()},
            [m.training for m in model.modules()],
            sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks)
                for m in model.modules()))


def _same_snapshot(a, b):
    return (a[0].keys() == b[0].keys() and all(torch.equal(a[0][k], b[0][k]) for k in a[0])
            and a[1] == b[1] and a[2] == b[2])


def _same(a, b):
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and a.shape == b.shape and (
            torch.equal(a, b) or (a.is_floating_point() and torch.equal(a.isnan(), b.isnan())
                                  and torch.equal(a.nan_to_num(), b.nan_to_num())))
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and np.array_equal(a, b, equal_nan=a.dtype.kind == "f")
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return True


def _copy(value):
    if isinstance(value, torch.Tensor):
        return value.clone()
    if isinstance(value, np.ndarray):
        return value.copy()
    if isinstance(value, (list, tuple)):
        return type(value)(_copy(v) for v in value)
    return value


def _names_argument(message: str, name: str) -> bool:
    return re.search(rf"(?<![\w]){re.escape(name)}(?![\w])", message) is not None


def _expect_clear_error(call, kwargs, name, *, model=None, label=None, mentions=None):
    """Run ``call(**kwargs)``: a clear error naming ``name``; model, inputs and grad mode kept."""
    before = {k: _copy(v) for k, v in kwargs.items()}
    snap = _snapshot(model) if model is not None else None
    grad = torch.is_grad_enabled()
    with pytest.raises(CLEAR) as info:
        call(**kwargs)
    message = str(info.value)
    assert _names_argument(message, mentions or name), (
        f"{label or call}: the error for a bad `{name}` does not name it: "
        f"{type(info.value).__name__}: {message}")
    assert "\x1b[" not in message  # no terminal colour codes
    for k in kwargs:
        assert _same(kwargs[k], before[k]), f"`{k}` was modified"
    if model is not None:
        assert _same_snapshot(snap, _snapshot(model)), "the model was modified"
    assert torch.is_grad_enabled() == grad


# ----------------------------------------------------------------------------- bad values


def _tensor_classes(shape, dtype=torch.float32):
    """Strategies of bad tensors for an argument whose valid form is ``shape``/``dtype``."""
    n = shape[0]

    def non_finite(value):
        t = torch.zeros(shape, dtype=dtype)
        t.view(-1)[0] = value
        return t

    return {
        "not_a_tensor": st.sampled_from(["ACGT", 1.5, None, {"a": 1}, [[0.0, 1.0]]]),
        "numpy": st.just(np.zeros(shape, dtype=np.float32)),
        "integer_dtype": st.sampled_from([torch.int64, torch.int32, torch.bool, torch.uint8])
        .map(lambda d: torch.zeros(shape, dtype=d)),
        "complex_dtype": st.just(torch.zeros(shape, dtype=torch.complex64)),
        "scalar": st.just(torch.tensor(1.0, dtype=dtype)),
        "too_few_axes": st.just(torch.zeros(shape[:-1], dtype=dtype)),
        "empty_batch": st.just(torch.zeros((0, *shape[1:]), dtype=dtype)),
        "non_finite": st.sampled_from([math.nan, math.inf, -math.inf]).map(non_finite),
        "wrong_batch": st.integers(1, 5).filter(lambda m: m != n).map(
            lambda m: torch.zeros((m, *shape[1:]), dtype=dtype)),
    }


def _int_classes(low=1):
    return {
        "below_range": st.integers(-5, low - 1),
        "float": st.floats(low + 0.1, 10.0).filter(lambda v: not float(v).is_integer()),
        "string": st.sampled_from(["3", "many", ""]),
        "bool": st.just(True),
        "none": st.none(),
    }


def _seed_classes():
    return {
        "negative": st.integers(-(2 ** 40), -1),
        "too_large": st.integers(2 ** 64, 2 ** 70),
        "float": st.floats(0.5, 100.0).filter(lambda v: not float(v).is_integer()),
        "string": st.sampled_from(["0", "seed"]),
    }


def _draw_case(data, classes):
    kind = data.draw(st.sampled_from(sorted(classes)), label="class")
    return kind, data.draw(classes[kind], label=kind)


# ----------------------------------------------------------------------------- ShuffleDeepLiftShap

N, L = 3, 24
X = _one_hot(N, L, 1)
CNN = _CNN().eval()

SDLS_CLASSES = {
    "inputs": {**{k: v for k, v in _tensor_classes((N, 4, L)).items() if k != "wrong_batch"},
               "wrong_channels": st.integers(1, 6).filter(lambda a: a != 4).map(
                   lambda a: torch.zeros(N, a, L)),
               "not_one_hot": st.floats(0.1, 0.9).map(lambda v: torch.full((N, 4, L), v)),
               "model_dtype": st.sampled_from([torch.float64, torch.float16])
               .map(lambda d: X.to(d))},
    "references": {"wrong_shape": st.sampled_from([(N, 4, L), (N, 2, 4, L + 1), (N + 1, 2, 4, L),
                                                   (N, 0, 4, L)]).map(torch.zeros),
                   "wrong_dtype": st.just(torch.zeros(N, 2, 4, L, dtype=torch.float64)),
                   "non_finite": st.just(torch.full((N, 2, 4, L), math.nan)),
                   "unknown_name": st.sampled_from(["shuffled", "dinuc", "zeros!"]),
                   "wrong_type": st.sampled_from([3, 2.5, {"k": 2}])},
    "n_references": _int_classes(),
    "batch_size": _int_classes(),
    "random_state": _seed_classes(),
    "target": {"string": st.sampled_from(["0", "peak"]),
               "float": st.floats(0.1, 1.9).filter(lambda v: not float(v).is_integer()),
               "out_of_range": st.sampled_from([2, 7, -3]),
               "float_list": st.lists(st.floats(0.1, 0.9), min_size=N, max_size=N),
               "wrong_length_list": st.integers(0, 6).filter(lambda m: m != N).map(
                   lambda m: [0] * m),
               "float_tensor": st.just(torch.zeros(N)),
               "wrong_length_tensor": st.just(torch.zeros(N + 2, dtype=torch.long))},
    "warning_threshold": {"negative": st.floats(-10, -1e-9), "nan": st.just(math.nan),
                          "string": st.just("1e-3")},
    "strategy": {"unknown": st.sampled_from(["fast", "", "Pairs"])},
    "example_indices": {"wrong_length": st.integers(0, 6).filter(lambda m: m != N).map(
        lambda m: list(range(m)))},
    "targets": {"empty": st.just([]), "bad_entry": st.just([0, "x"])},
}


@pytest.mark.parametrize("name", sorted(SDLS_CLASSES))
@settings(**SETTINGS)
@given(data=st.data())
def test_shuffle_deep_lift_shap_bad_argument(name, data):
    kind, value = _draw_case(data, SDLS_CLASSES[name])
    TRIED["ShuffleDeepLiftShap.attribute", name, kind] += 1
    kwargs = dict(inputs=X, target=0, n_references=2, random_state=0)
    kwargs[name] = value
    explainer = ShuffleDeepLiftShap(CNN)
    _expect_clear_error(explainer.attribute, kwargs, name, model=CNN,
                        label="ShuffleDeepLiftShap.attribute")


def test_shuffle_deep_lift_shap_valid_call_still_works():
    out, delta = ShuffleDeepLiftShap(CNN).attribute(X, target=0, n_references=2, random_state=0,
                                                    return_convergence_delta=True)
    assert out.shape == X.shape and delta.abs().max() < 1e-4


class _TwoArg(nn.Module):
    def __init__(self):
        super().__init__()
        self.cnn = _CNN().eval()

    def forward(self, x, weight):
        return self.cnn(x) * weight


def test_additional_forward_args_of_another_batch_size_are_named():
    TRIED["ShuffleDeepLiftShap.attribute", "additional_forward_args", "wrong_batch"] += 1
    model = _TwoArg().eval()
    with pytest.raises(ValueError, match=r"`additional_forward_args\[0\]` of shape \(5, 1\)"):
        ShuffleDeepLiftShap(model).attribute(X, target=0, n_references=2, random_state=0,
                                             additional_forward_args=(torch.ones(5, 1),))
    out = ShuffleDeepLiftShap(model).attribute(X, target=0, n_references=2, random_state=0,
                                               additional_forward_args=(torch.ones(N, 1),))
    assert out.shape == X.shape


DLM_CLASSES = {
    "inputs": {k: v for k, v in _tensor_classes((N, 4, L)).items()
               if k not in ("wrong_batch", "empty_batch")},
    "references": {"wrong_batch": st.just(torch.zeros(N + 1, 4, L)),
                   "wrong_shape": st.just(torch.zeros(N, 4, L + 2)),
                   "not_a_tensor": st.just("zeros")},
}


@pytest.mark.parametrize("name", sorted(DLM_CLASSES))
@settings(**{**SETTINGS, "max_examples": 12})
@given(data=st.data())
def test_deeplift_multipliers_bad_argument(name, data):
    kind, value = _draw_case(data, DLM_CLASSES[name])
    TRIED["deeplift_multipliers", name, kind] += 1
    kwargs = dict(model=CNN, inputs=X, references=_one_hot(N, L, 2), target=0)
    kwargs[name] = value
    _expect_clear_error(deeplift_multipliers, kwargs, name, model=CNN,
                        label="deeplift_multipliers")


# ----------------------------------------------------------------------------- references

REF_FUNCTIONS = {
    "kmer_shuffle": kmer_shuffle,
    "dinucleotide_shuffle": dinucleotide_shuffle,
    "gc_matched_references": gc_matched_references,
    "zero_references": zero_references,
    "uniform_references": uniform_references,
}
REF_CLASSES = {
    "sequences": {**{k: v for k, v in _tensor_classes((N, 4, L)).items()
                     if k not in ("wrong_batch", "non_finite", "empty_batch", "integer_dtype")},
                  "wrong_channels": st.just(torch.zeros(N, 5, L)),
                  "not_one_hot": st.just(torch.full((N, 4, L), 0.5))},
    "n_references": _int_classes(),
}


@pytest.mark.parametrize("function", sorted(REF_FUNCTIONS))
@pytest.mark.parametrize("name", sorted(REF_CLASSES))
@settings(**{**SETTINGS, "max_examples": 12})
@given(data=st.data())
def test_reference_generators_bad_argument(function, name, data):
    kind, value = _draw_case(data, REF_CLASSES[name])
    TRIED[function, name, kind] += 1
    kwargs = dict(sequences=X, n_references=2)
    kwargs[name] = value
    _expect_clear_error(REF_FUNCTIONS[function], kwargs, name, label=function)


SHUFFLE_OPTIONS = {
    "k": _int_classes(),
    "start": {"out_of_range": st.sampled_from([L + 1, -L - 1, 10 ** 6]),
              "float": st.just(2.5), "string": st.just("0")},
    "end": {"out_of_range": st.sampled_from([L + 1, -L - 1]), "float": st.just(3.5)},
    "random_state": _seed_classes(),
}


@pytest.mark.parametrize("name", sorted(SHUFFLE_OPTIONS))
@settings(**{**SETTINGS, "max_examples": 12})
@given(data=st.data())
def test_kmer_shuffle_bad_option(name, data):
    kind, value = _draw_case(data, SHUFFLE_OPTIONS[name])
    TRIED["kmer_shuffle", name, kind] += 1
    kwargs = dict(sequences=X, n_references=2, random_state=0)
    kwargs[name] = value
    _expect_clear_error(kmer_shuffle, kwargs, name, label="kmer_shuffle")


def test_window_shorter_than_k_warns_that_references_are_copies():
    """L <= k (or an empty window): the only shuffle is the input; say so."""
    TRIED["kmer_shuffle", "sequences", "shorter_than_k"] += 1
    short = _one_hot(2, 3)
    with pytest.warns(UserWarning, match="at most k=3.*copy of its example"):
        refs = kmer_shuffle(short, 2, k=3)
    assert torch.equal(refs, short[:, None].expand(2, 2, 4, 3))
    TRIED["kmer_shuffle", "start", "empty_window"] += 1
    with pytest.warns(UserWarning, match=r"window \[5, 5\)"):
        kmer_shuffle(X, 2, start=5, end=5)


def test_uninformative_references_warn_and_name_the_example():
    """A low-complexity sequence: every dinucleotide shuffle is itself, attributions are zero."""
    TRIED["ShuffleDeepLiftShap.attribute", "inputs", "uninformative_references"] += 1
    x = X.clone()
    x[1] = 0
    x[1, 0] = 1  # poly-A
    with pytest.warns(UninformativeReferencesWarning, match=r"1 of 3 examples \(first: index 1\)"):
        out = ShuffleDeepLiftShap(CNN).attribute(x, target=0, n_references=3, random_state=0)
    assert torch.count_nonzero(out[1]) == 0 and torch.count_nonzero(out[0]) > 0
    with warnings.catch_warnings():
        warnings.simplefilter("error", UninformativeReferencesWarning)
        ShuffleDeepLiftShap(CNN).attribute(X, target=0, n_references=3, random_state=0)


# ----------------------------------------------------------------------------- sequence I/O


def _fasta_cases(tmp_path):
    good = tmp_path / "good.fa"
    good.write_text(">a\nACGT\n")
    gz = tmp_path / "truncated.fa.gz"
    rng = np.random.default_rng(0)
    text = "".join(f">r{i}\n" + "".join(rng.choice(list("ACGT"), 200)) + "\n" for i in range(40))
    packed = gzip.compress(text.encode())
    gz.write_bytes(packed[: len(packed) // 2])
    empty_record = tmp_path / "empty_record.fa"
    empty_record.write_text(">a\n")
    no_header = tmp_path / "no_header.fa"
    no_header.write_text("ACGT\nACGT\n")
    empty = tmp_path / "empty.fa"
    empty.write_bytes(b"")
    binary = tmp_path / "binary.fa"
    binary.write_bytes(bytes(range(256)))
    return {"truncated_gzip": gz, "empty_record": empty_record, "no_header": no_header,
            "empty_file": empty, "binary": binary, "directory": tmp_path,
            "missing": tmp_path / "missing.fa"}


def test_read_fasta_damaged_files_name_the_path(tmp_path):
    for kind, path in _fasta_cases(tmp_path).items():
        TRIED["read_fasta", "path", kind] += 1
        with pytest.raises((ValueError, OSError)) as info:
            read_fasta(path)
        assert str(path) in str(info.value), (kind, str(info.value))
        assert not isinstance(info.value, (UnicodeDecodeError, EOFError, gzip.BadGzipFile)) or \
            str(path) in str(info.value)


ENCODE_CLASSES = {
    "sequences": {"not_strings": st.sampled_from([[1, 2], [b"ACGT"], "ACGT", None]),
                  "unequal_lengths": st.just(["ACGT", "ACG"]),
                  "empty": st.just([])},
    "dtype": {"not_a_dtype": st.sampled_from(["float32", np.float32, 3]),
              "complex": st.just(torch.complex64)},
}


@pytest.mark.parametrize("name", sorted(ENCODE_CLASSES))
@settings(**{**SETTINGS, "max_examples": 8})
@given(data=st.data())
def test_one_hot_encode_bad_argument(name, data):
    kind, value = _draw_case(data, ENCODE_CLASSES[name])
    TRIED["one_hot_encode", name, kind] += 1
    kwargs = dict(sequences=["ACGT", "TTGA"], dtype=torch.float32)
    kwargs[name] = value
    _expect_clear_error(one_hot_encode, kwargs, name, label="one_hot_encode")


def test_one_hot_decode_bad_argument():
    for kind, value in (("not_one_hot", torch.full((2, 4, 3), 0.5)),
                        ("wrong_channels", torch.zeros(2, 3, 3)),
                        ("not_a_tensor", "ACGT")):
        TRIED["one_hot_decode", "one_hot", kind] += 1
        _expect_clear_error(one_hot_decode, {"one_hot": value}, "one_hot",
                            label="one_hot_decode")


# ----------------------------------------------------------------------------- FastSHAP

D_IN = 5
_TAB = nn.Sequential(nn.Linear(D_IN, 8), nn.Tanh(), nn.Linear(8, 2)).eval()
_XTR = torch.randn(64, D_IN, generator=torch.Generator().manual_seed(0))
_XVA = torch.randn(16, D_IN, generator=torch.Generator().manual_seed(1))
FIT = {"max_epochs": 1, "n_samples": 2}


@pytest.fixture(scope="module")
def fitted():
    return FastSHAP.fit(_TAB, _XTR, _XVA, random_state=0, train_kwargs=FIT)


FIT_CLASSES = {
    # integer counts are cast to the model's dtype (documented): not a bad value
    "x_train": {k: v for k, v in _tensor_classes((64, D_IN)).items()
                if k not in ("wrong_batch", "numpy", "not_a_tensor", "integer_dtype")}
    | {"wrong_features": st.just(torch.zeros(64, D_IN + 1))},
    "x_val": {"wrong_features": st.just(torch.zeros(16, D_IN - 1)),
              "non_finite": st.just(torch.full((16, D_IN), math.nan))},
    "random_state": _seed_classes(),
    "game": {"unknown": st.sampled_from(["exact", "kernel", 3])},
    "link": {"unknown": st.sampled_from(["logit", "relu"])},
}


@pytest.mark.parametrize("name", sorted(FIT_CLASSES))
@settings(**{**SETTINGS, "max_examples": 10})
@given(data=st.data())
def test_fastshap_fit_bad_argument(name, data):
    kind, value = _draw_case(data, FIT_CLASSES[name])
    TRIED["FastSHAP.fit", name, kind] += 1
    kwargs = dict(model=_TAB, x_train=_XTR, x_val=_XVA, random_state=0, train_kwargs=FIT)
    kwargs[name] = value
    _expect_clear_error(FastSHAP.fit, kwargs, name, model=_TAB, label="FastSHAP.fit")


def test_fastshap_softmax_of_a_single_output_is_refused():
    TRIED["FastSHAP.fit", "link", "softmax_single_output"] += 1
    single = nn.Sequential(nn.Linear(D_IN, 4), nn.Tanh(), nn.Linear(4, 1)).eval()
    with pytest.raises(ValueError, match="`link='softmax'`.*single output"):
        FastSHAP.fit(single, _XTR, _XVA, link="softmax", random_state=0, train_kwargs=FIT)


FS_ATTR_CLASSES = {
    "inputs": {k: v for k, v in _tensor_classes((4, D_IN)).items()
               if k not in ("wrong_batch", "numpy", "not_a_tensor", "integer_dtype")}
    | {"wrong_features": st.just(torch.zeros(4, D_IN + 2))},
    "target": {"out_of_range": st.sampled_from([2, 9, -3]), "string": st.just("a"),
               "float": st.just(0.5)},
}


@pytest.mark.parametrize("name", sorted(FS_ATTR_CLASSES))
@settings(**{**SETTINGS, "max_examples": 10})
@given(data=st.data())
def test_fastshap_attribute_bad_argument(fitted, name, data):
    kind, value = _draw_case(data, FS_ATTR_CLASSES[name])
    TRIED["FastSHAP.attribute", name, kind] += 1
    kwargs = dict(inputs=_XVA[:4], target=0)
    kwargs[name] = value
    _expect_clear_error(fitted.attribute, kwargs, name, model=_TAB, label="FastSHAP.attribute")


# ----------------------------------------------------------------------------- head ablation

_HEAD_MODEL = NeighbourModel()
_G = torch.Generator().manual_seed(3)
_NB = torch.randn(30, 4, 6, generator=_G, dtype=torch.float64)
_CT = torch.arange(30) % 3
with torch.no_grad():
    _OBS = _HEAD_MODEL(_NB, _CT) + 0.1 * torch.randn(30, 6, generator=_G, dtype=torch.float64)

HEAD_CLASSES = {
    "groups": {"wrong_length": st.integers(1, 40).filter(lambda m: m != 30).map(
        lambda m: torch.arange(m) % 3),
        "continuous_values": st.just(torch.rand(30, generator=torch.Generator().manual_seed(0))),
        "two_dimensional": st.just(torch.zeros(30, 2, dtype=torch.long))},
    "observed": {"wrong_rows": st.just(torch.zeros(29, 6, dtype=torch.float64)),
                 "wrong_genes": st.just(torch.zeros(30, 5, dtype=torch.float64)),
                 "non_finite": st.just(torch.full((30, 6), math.nan, dtype=torch.float64)),
                 "not_a_tensor": st.just("counts")},
    "ablation": {"unknown": st.sampled_from(["drop", "", "KEEP!"])},
    "mode": {"unknown": st.sampled_from(["mean_", "noise"])},
    "n_permutations": _int_classes() | {"below_range": st.integers(-3, 0)},
    "random_state": _seed_classes(),
    "alpha": {"out_of_range": st.sampled_from([0.0, 1.0, 1.5, -0.1]),
              "nan": st.just(math.nan)},
}
HEAD_CLASSES["n_permutations"].pop("none")  # None is documented: the default


@pytest.mark.parametrize("name", sorted(HEAD_CLASSES))
@settings(**{**SETTINGS, "max_examples": 8})
@given(data=st.data())
def test_head_ablation_bad_argument(name, data):
    kind, value = _draw_case(data, HEAD_CLASSES[name])
    TRIED["HeadAblationExplainedVariance.attribute", name, kind] += 1
    kwargs = dict(inputs=(_NB, _CT), groups=_CT, observed=_OBS, n_permutations=5,
                  random_state=0)
    kwargs[name] = value
    method = HeadAblationExplainedVariance(_HEAD_MODEL, "attention")
    _expect_clear_error(method.attribute, kwargs, name, model=_HEAD_MODEL,
                        label="HeadAblationExplainedVariance.attribute")


def test_small_groups_warn_and_are_named():
    TRIED["HeadAblationExplainedVariance.attribute", "groups", "some_groups_too_small"] += 1
    groups = _CT.clone()
    groups[0] = 7  # a group of one example
    with pytest.warns(UserWarning, match=r"1 of 4 groups in `groups` have fewer than "
                                         r"`min_cells`=2 examples.*'7'"):
        result = HeadAblationExplainedVariance(_HEAD_MODEL, "attention").attribute(
            (_NB, _CT), groups, _OBS, n_permutations=5, random_state=0)
    assert result.skipped_groups == ["7"]


_LABELS = torch.arange(30) % 6  # NeighbourModel's 6 outputs serve as 6 class logits
CLASSIFIER_CLASSES = {
    "labels": {"wrong_length": st.integers(1, 40).filter(lambda m: m != 30).map(
        lambda m: torch.arange(m) % 6),
        "float": st.just(torch.rand(30, generator=torch.Generator().manual_seed(1))),
        "out_of_range": st.sampled_from([6, 9, -7]).map(lambda c: torch.full((30,), c)),
        "not_a_tensor": st.just("celltype")},
    "groups": {"wrong_length": st.just(torch.arange(29) % 3),
               "continuous_values": st.just(torch.rand(30, generator=torch.Generator()
                                                       .manual_seed(2)))},
    "ablation": {"unknown": st.sampled_from(["drop", "Remove"])},
    "n_permutations": {"below_range": st.integers(-3, 0), "float": st.just(2.5)},
    "random_state": _seed_classes(),
}


@pytest.mark.parametrize("name", sorted(CLASSIFIER_CLASSES))
@settings(**{**SETTINGS, "max_examples": 8})
@given(data=st.data())
def test_head_classifier_bad_argument(name, data):
    from captum_genomics import HeadAblationClassifierEffect

    kind, value = _draw_case(data, CLASSIFIER_CLASSES[name])
    TRIED["HeadAblationClassifierEffect.attribute", name, kind] += 1
    kwargs = dict(inputs=_NB, labels=_LABELS, groups=_CT, additional_forward_args=(_CT,),
                  n_permutations=5, random_state=0)
    kwargs[name] = value
    method = HeadAblationClassifierEffect(_HEAD_MODEL, "attention")
    _expect_clear_error(method.attribute, kwargs, name, model=_HEAD_MODEL,
                        label="HeadAblationClassifierEffect.attribute")


# ----------------------------------------------------------------------------- the count


def test_report_inputs_tried(capsys):
    """Print the classes and counts (run with ``-s``); runs last in this module."""
    if not TRIED:
        pytest.skip("run with the whole module to count the inputs tried")
    entries = collections.Counter()
    for (entry, _name, _kind), count in TRIED.items():
        entries[entry] += count
    with capsys.disabled():
        print(f"\nbad-input suite: {sum(TRIED.values())} inputs, {len(TRIED)} classes, "
              f"{len(entries)} entry points")
        for entry, count in sorted(entries.items()):
            print(f"  {entry}: {count}")
    assert os.environ.get("PYTEST_XDIST_WORKER") or sum(TRIED.values()) > 0


# ----------------------------------------------------------------------------- compare (issue 13)

COMPARE_CLASSES = {
    "inputs": {**{k: v for k, v in _tensor_classes((N, 4, L)).items() if k != "wrong_batch"},
               "wrong_channels": st.integers(1, 6).filter(lambda a: a != 4).map(
                   lambda a: torch.zeros(N, a, L)),
               "not_one_hot": st.floats(0.1, 0.9).map(lambda v: torch.full((N, 4, L), v))},
    "ground_truth": {"float_mask": st.just(torch.zeros(N, L)),
                     "wrong_shape": st.sampled_from([(N, L + 1), (N + 1, L), (L,)]).map(
                         lambda s: torch.zeros(s, dtype=torch.bool)),
                     "not_a_tensor": st.sampled_from(["mask", 3, [True, False]])},
    "references": {"wrong_shape": st.sampled_from([(N, 4, L), (N, 2, 4, L + 1),
                                                   (N + 1, 2, 4, L)]).map(torch.zeros),
                   "not_a_tensor": st.sampled_from(["dinuc", 2.0])},
    "methods": {"unknown": st.sampled_from([["nope"], ["saliency", "Saliency"], "ISM"]),
                "empty": st.just([]), "bad_entry": st.sampled_from([[3], [("x",)], {"u": 2}])},
    "n_references": _int_classes(),
    "batch_size": _int_classes(),
    "ig_steps": _int_classes(),
    "randomization_examples": _int_classes(),
    "random_state": _seed_classes(),
    "target": {"string": st.sampled_from(["0", "peak"]),
               "wrong_length_list": st.integers(0, 6).filter(lambda m: m != N).map(
                   lambda m: [0] * m)},
}


@pytest.mark.parametrize("name", sorted(COMPARE_CLASSES))
@settings(**{**SETTINGS, "max_examples": 10})
@given(data=st.data())
def test_compare_bad_argument(name, data):
    from captum_genomics import compare

    kind, value = _draw_case(data, COMPARE_CLASSES[name])
    TRIED["compare", name, kind] += 1
    kwargs = dict(methods=["saliency"], model=CNN, inputs=X, randomization=False,
                  n_references=2)
    kwargs[name] = value
    mentions = "methods" if name == "methods" else None
    _expect_clear_error(compare, kwargs, name, model=CNN, label="compare", mentions=mentions)
