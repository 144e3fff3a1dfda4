"""The shared jobs of ``captum_genomics._utils``, checked against brute force and by their errors."""

from __future__ import annotations

import os
import warnings

import numpy as np
import pytest
import torch
import torch.nn as nn
from hypothesis import given, settings
from hypothesis import strategies as st

from captum_genomics import cli
from captum_genomics._utils.batching import as_forward_args, as_input_tuple, index_examples
from captum_genomics._utils.deprecation import MISSING, renamed_keyword
from captum_genomics._utils.devices import module_device, module_dtype
from captum_genomics._utils.models import ModelSpecError, load_user_model
from captum_genomics.sc.pbmc import stratified_split


# ----------------------------------------------------------------------------- batching
@settings(max_examples=25, deadline=None, derandomize=True)
@given(n=st.integers(1, 6), b=st.integers(0, 12), seed=st.integers(0, 2**16))
def test_index_examples_matches_a_loop(n, b, seed):
    g = torch.Generator().manual_seed(seed)
    rows = torch.randint(0, n, (b,), generator=g)
    per_example = torch.randn(n, 3, generator=g)
    other_length = torch.randn(n + 1, 2, generator=g)   # first axis is not N: passes through
    scalar = torch.tensor(2.0)
    values = (per_example, other_length, scalar, "text", 0.5)
    out = index_examples(values, rows, n)
    want = torch.stack([per_example[int(r)] for r in rows]) if b else per_example[:0]
    assert torch.equal(out[0], want)
    assert out[1] is other_length and out[2] is scalar and out[3:] == ("text", 0.5)
    every = index_examples((per_example, "text"), rows)          # n=None: every tensor
    assert torch.equal(every[0], want) and every[1] == "text"


def test_index_examples_moves_to_the_device_and_leaves_inputs_alone():
    x = torch.arange(6.0).reshape(3, 2)
    before = x.clone()
    (out,) = index_examples((x,), torch.tensor([2, 0]), 3, device="cpu")
    assert torch.equal(out, torch.tensor([[4.0, 5.0], [0.0, 1.0]]))
    out[0, 0] = -1
    assert torch.equal(x, before)


@pytest.mark.parametrize("inputs, kind, words", [
    ((), ValueError, ["`inputs` is empty"]),
    ((torch.zeros(2, 3), "x"), TypeError, ["`inputs[1]`", "torch.Tensor", "str"]),
    (torch.tensor(1.0), ValueError, ["`inputs`", "scalar"]),
    ((torch.zeros(2, 3), torch.zeros(3, 3)), ValueError, ["`inputs[0]` has 2 rows", "`inputs[1]` has 3"]),
    (torch.zeros(0, 3), ValueError, ["empty batch"]),
    (torch.tensor([[0.0, float("nan")]]), ValueError, ["`inputs`", "NaN"]),
])
def test_as_input_tuple_errors_name_the_argument(inputs, kind, words):
    with pytest.raises(kind) as err:
        as_input_tuple(inputs)
    assert all(w in str(err.value) for w in words), str(err.value)


def test_as_forward_args():
    assert as_forward_args(None, 3) == ()
    ids = torch.arange(3)
    assert as_forward_args(ids, 3)[0] is ids
    assert as_forward_args((ids, 2.0), 3)[1] == 2.0
    with pytest.raises(ValueError, match=r"`extra\[0\]` must have one row per example"):
        as_forward_args(torch.zeros(4), 3, "extra")
    with pytest.raises(ValueError, match="NaN"):
        as_forward_args(torch.tensor([0.0, float("nan"), 1.0]), 3)


# ----------------------------------------------------------------------------- devices
class _BufferOnly(nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("steps", torch.zeros(1, dtype=torch.long))
        self.register_buffer("scale", torch.ones(1, dtype=torch.float64))


def test_module_device_and_dtype():
    linear = nn.Linear(2, 2).double()
    assert module_device(linear) == torch.device("cpu")
    assert module_dtype(linear, torch.float32) == torch.float64
    buffers = _BufferOnly()
    assert module_dtype(buffers, torch.float32) == torch.float64   # first floating tensor
    assert module_device(buffers) == torch.device("cpu")
    assert module_device(lambda x: x, "meta") == torch.device("meta")   # a plain callable
    assert module_device(nn.ReLU()) == torch.device("cpu")
    assert module_dtype(nn.ReLU(), torch.float16) == torch.float16


# ----------------------------------------------------------------------------- models
MODEL_FILE = '''
import torch.nn as nn

def build():
    return nn.Linear(3, 2)

instance = nn.Linear(3, 2)

def broken():
    raise RuntimeError("boom")

def not_a_model():
    return 42
'''


@pytest.fixture()
def model_file(tmp_path):
    path = tmp_path / "user_models.py"
    path.write_text(MODEL_FILE)
    return path


@pytest.mark.parametrize("wrap", [None, "state_dict", "model_state_dict"])
def test_weights_load_from_a_state_dict_or_a_checkpoint(tmp_path, model_file, wrap):
    source = nn.Linear(3, 2)
    state = source.state_dict()
    weights = tmp_path / "w.pt"
    torch.save(state if wrap is None else {wrap: state, "epoch": 3}, weights)
    for load in (load_user_model, cli.load_model):   # the CLI and the validation suite agree
        model = load(f"{model_file}:build", weights)
        assert not model.training
        assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(),
                                                     state.values()))


def test_a_module_instance_is_used_as_is(model_file):
    model = load_user_model(f"{model_file}:instance")
    assert isinstance(model, nn.Linear) and not model.training


@pytest.mark.parametrize("spec, words", [
    ("no_colon", ["--model must look like"]),
    ("{file}:missing", ["has no callable 'missing'"]),
    ("{file}:broken", ["calling broken() failed", "boom"]),
    ("{file}:not_a_model", ["returned int", "torch.nn.Module"]),
    ("{dir}/absent.py:build", ["no such Python file"]),
    ("no_such_module_xyz:build", ["cannot import module 'no_such_module_xyz'"]),
])
def test_bad_specs_give_one_line_errors(model_file, spec, words):
    spec = spec.format(file=model_file, dir=model_file.parent)
    with pytest.raises(ModelSpecError) as err:
        load_user_model(spec)
    message = str(err.value)
    assert "\n" not in message and all(w in message for w in words), message
    with pytest.raises(cli.CLIError):
        cli.load_model(spec)


def test_bad_weights_name_the_option(tmp_path, model_file):
    with pytest.raises(ModelSpecError, match="--weights: no such file"):
        load_user_model(f"{model_file}:build", tmp_path / "none.pt")
    wrong = tmp_path / "wrong.pt"
    torch.save(nn.Linear(5, 1).state_dict(), wrong)
    with pytest.raises(ModelSpecError, match="--cg-weights: the weights in .* do not fit the model"):
        load_user_model(f"{model_file}:build", wrong, weights_option="--cg-weights")


# ----------------------------------------------------------------------------- deprecation
def test_renamed_keyword():
    assert renamed_keyword("seed", MISSING, "random_state", 5, 0, "f") == 5
    with pytest.warns(DeprecationWarning, match="`seed` is deprecated.*use `random_state`"):
        assert renamed_keyword("seed", 3, "random_state", 0, 0, "f") == 3
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert renamed_keyword("seed", 3, "random_state", 3, 0, "f") == 3   # same value: fine
    with pytest.raises(TypeError, match="both `seed`"):
        renamed_keyword("seed", 3, "random_state", 4, 0, "f")


def test_stratified_split_old_keyword_gives_the_same_split():
    labels = np.repeat(np.arange(3), 20)
    new = stratified_split(labels, random_state=4)
    with pytest.warns(DeprecationWarning, match="random_state"):
        old = stratified_split(labels, seed=4)
    assert all(np.array_equal(new[k], old[k]) for k in new)
    assert not np.array_equal(new["test"], stratified_split(labels, random_state=5)["test"])


# ----------------------------------------------------------------------------- targets
def test_deeplift_multipliers_takes_any_captum_target():
    from captum_genomics import deeplift_multipliers

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv1d(4, 3, 3), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 6, 3)).double()
    x = torch.rand(4, 4, 8, dtype=torch.float64)
    r = torch.rand(4, 4, 8, dtype=torch.float64)
    per_pair = [2, 0, 1, 2]
    mult, delta = deeplift_multipliers(model, x, r, target=per_pair)
    for i, t in enumerate(per_pair):   # brute force: one pair at a time, an int target
        m_i, d_i = deeplift_multipliers(model, x[i:i + 1], r[i:i + 1], target=t)
        torch.testing.assert_close(mult[i:i + 1], m_i, rtol=0, atol=1e-12)
        torch.testing.assert_close(delta[i:i + 1], d_i, rtol=0, atol=1e-12)
    assert delta.abs().max() < 1e-10
    with pytest.raises(ValueError, match="one scalar per example"):
        deeplift_multipliers(model, x, r, target=None)


@pytest.mark.parametrize("kind", ["whole_model", "text", "empty", "not_state", "folder",
                                  "truncated"])
def test_damaged_weights_files_one_plain_line(tmp_path, model_file, kind):
    """Each damaged or foreign weights file: a ModelSpecError naming the path, no colour codes."""
    path = tmp_path / f"{kind}.pt"
    good = tmp_path / "good.pt"
    torch.save(load_user_model(f"{model_file}:build").state_dict(), good)
    if kind == "whole_model":
        torch.save(nn.Linear(5, 1), path)
        expected = "state_dict"
    elif kind == "text":
        path.write_text("hello")
        expected = "damaged or not a PyTorch"
    elif kind == "empty":
        path.write_bytes(b"")
        expected = "empty"
    elif kind == "not_state":
        torch.save({"epoch": 3}, path)
        expected = "does not hold a state dict"
    elif kind == "folder":
        path = tmp_path
        expected = "is a folder"
    else:
        data = good.read_bytes()
        path.write_bytes(data[: len(data) // 2])
        expected = "damaged or not a PyTorch"
    with pytest.raises(ModelSpecError) as info:
        load_user_model(f"{model_file}:build", path)
    message = str(info.value)
    assert expected in message and repr(str(path)) in message
    assert "\x1b[" not in message and "\n" not in message


def test_write_bytes_atomic_permissions_and_failure(tmp_path, monkeypatch):
    """Files get open()'s permissions; a failed write leaves the old file and no temp file."""
    import stat

    from captum_genomics._utils import files

    target = tmp_path / "out.bin"
    files.write_bytes_atomic(target, b"first")
    mask = os.umask(0o022)
    os.umask(mask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~mask

    def boom(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(files.os, "fsync", boom)
    with pytest.raises(OSError, match="No space"):
        files.write_bytes_atomic(target, b"second")
    assert target.read_bytes() == b"first"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]
