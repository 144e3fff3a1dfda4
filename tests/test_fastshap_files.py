"""FastSHAP files: every kind of damage gives one clear error; checksums; atomic writes; provenance.

Issue 11, section 5 (damaged or foreign files, checksums), section 2 (a failed
save over a good file) and section 4b (an explainer remembers which AnnData
matrix and which genes it was fitted on).
"""

import errno
import io
import os
import struct
import zipfile

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from captum_genomics import FastSHAP
from captum_genomics.fastshap import FastSHAPFileError, load_module, payload_sha256, save_module
from captum_genomics.fastshap import io as fio

pytestmark = pytest.mark.usefixtures("one_thread")

SETTINGS = dict(max_examples=25, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow,
                                       HealthCheck.function_scoped_fixture])
F, T = 5, 3
QUICK = {"max_epochs": 2, "n_samples": 8}
GENES = [f"g{i}" for i in range(F)]


def _model():
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return torch.nn.Sequential(torch.nn.Linear(F, 8), torch.nn.Tanh(),
                                   torch.nn.Linear(8, T)).eval()


def _cells(n, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, F, generator=g)


@pytest.fixture(scope="module")
def model():
    return _model()


@pytest.fixture(scope="module")
def fitted(model):
    return FastSHAP.fit(model, _cells(64, 1), _cells(16, 2), game="marginal", random_state=0,
                        explainer_kwargs={"hidden_width": 8}, train_kwargs=QUICK)


@pytest.fixture(scope="module")
def good(tmp_path_factory, fitted):
    path = tmp_path_factory.mktemp("good") / "fs.pt"
    fitted.save(path)
    return path


def _state(fs):
    """Everything a FastSHAP file describes, as one hash (equal content <=> equal hash)."""
    return payload_sha256(fio.fastshap_state(fs))


def _tensor_payloads(path):
    """(start, length) of every tensor's bytes inside the zip file ``path``."""
    raw = open(path, "rb").read()
    out = []
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            if "/data/" in info.filename and info.file_size:
                name_len, extra_len = struct.unpack("<HH", raw[info.header_offset + 26:
                                                               info.header_offset + 30])
                start = info.header_offset + 30 + name_len + extra_len
                assert info.compress_type == zipfile.ZIP_STORED
                out.append((start, info.file_size))
    return out


def _flip(data, position, mask=0x01):
    out = bytearray(data)
    out[position] ^= mask
    return bytes(out)


def _v1(state):
    """The layout of format version 1 (releases before checksums and sources)."""
    state = {k: v for k, v in state.items() if k != "sha256"}
    state["version"] = 1
    for key in ("explainer", "surrogate"):
        if isinstance(state.get(key), dict):
            state[key] = dict(state[key], version=1)
    state["config"] = {k: v for k, v in state["config"].items() if k != "source"}
    return state


# ----------------------------------------------------------------------------- damages
def _blob(good):
    return torch.load(good, weights_only=True)


def _edited(change):
    """A damage: the good file's dictionary, edited, saved again with torch.save."""
    def make(good, path):
        blob = _blob(good)
        change(blob)
        torch.save(blob, path)
    return make


def _raw(change):
    """A damage: the good file's bytes, changed."""
    def make(good, path):
        path.write_bytes(change(good.read_bytes()))
    return make


def _saved(obj_fn):
    def make(good, path):
        torch.save(obj_fn(), path)
    return make


def _plain_zip(good, path):
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("notes.txt", "not a model")


def _module_file(good, path):
    save_module(FastSHAP.load(good, _model()).explainer, path)


def _v1_baseline_shape(good, path):
    blob = _v1(_blob(good))
    blob["baseline"] = torch.zeros(F + 2)
    torch.save(blob, path)


def _v1_missing_weight(good, path):
    blob = _v1(_blob(good))
    blob["explainer"]["state_dict"].pop(next(iter(blob["explainer"]["state_dict"])))
    torch.save(blob, path)


def _bad_source(good, path):
    blob = _blob(good)
    blob["config"]["source"] = {"layer": None, "use_raw": False, "var_names": ["a"],
                                "n_features": 1}
    torch.save(fio._with_checksum(blob), path)  # a consistent checksum, a wrong record


def _flip_tensor(good, path):
    start, length = _tensor_payloads(good)[-1]
    path.write_bytes(_flip(good.read_bytes(), start + length // 2))


def _random(good, path):
    data = np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes()
    path.write_bytes(b"\x00" + data)


DAMAGES = {
    # name: (how to make it, exception, words in the message)
    "truncated to half": (_raw(lambda b: b[:len(b) // 2]), FastSHAPFileError, "is damaged"),
    "last 10 bytes cut": (_raw(lambda b: b[:-10]), FastSHAPFileError, "is damaged"),
    "empty": (_raw(lambda b: b""), FastSHAPFileError, "is empty"),
    "text file": (_raw(lambda b: b"gene,value\nCD3E,1\n"), FastSHAPFileError,
                  "is not a captum_genomics.FastSHAP file"),
    "random bytes": (_random, FastSHAPFileError, "is not a captum_genomics.FastSHAP file"),
    "zip of other files": (_plain_zip, FastSHAPFileError, "not one written by torch.save"),
    "a torch tensor": (_saved(lambda: torch.zeros(3)), FastSHAPFileError,
                       "is not a captum_genomics.FastSHAP file"),
    "a state_dict": (_saved(lambda: _model().state_dict()), FastSHAPFileError,
                     "without a format tag"),
    "a pickled module": (_saved(lambda: torch.nn.Linear(2, 2)), FastSHAPFileError,
                         "pickled Python objects"),
    "a save_module file": (_module_file, FastSHAPFileError, "read it with load_module"),
    "format tag edited": (_edited(lambda b: b.__setitem__("format", "captum_genomics.FastSHAX")),
                          FastSHAPFileError, "is damaged or is not"),
    "newer version": (_edited(lambda b: b.__setitem__("version", 3)), FastSHAPFileError,
                      "written by a newer version"),
    "version not a number": (_edited(lambda b: b.__setitem__("version", "2")),
                             FastSHAPFileError, "is damaged"),
    "checksum removed": (_edited(lambda b: b.pop("sha256")), FastSHAPFileError, "is damaged"),
    "class edited": (_edited(lambda b: b["explainer"].__setitem__("class", "Foo")),
                     FastSHAPFileError, "unknown module class 'Foo'"),
    "class swapped": (_edited(lambda b: b["explainer"].__setitem__("class", "MaskedSurrogate")),
                      FastSHAPFileError, "was edited after it was written"),
    "dtype edited": (_edited(lambda b: b["explainer"].__setitem__("dtype", "int64")),
                     FastSHAPFileError, "invalid dtype 'int64'"),
    "dtype edited to float64": (_edited(lambda b: b["explainer"].__setitem__("dtype",
                                                                             "float64")),
                                FastSHAPFileError, "was edited after it was written"),
    "setting edited": (_edited(lambda b: b["config"].__setitem__("mask_null_players", False)),
                       FastSHAPFileError, "checksum"),
    "tensor edited": (_edited(lambda b: b["background"].__setitem__((0, 0), 5.0)),
                      FastSHAPFileError, "checksum"),
    "dtype bytes edited": (_raw(lambda b: b.replace(b"float32", b"float64", 1)),
                           FastSHAPFileError, "checksum"),
    "class bytes edited": (_raw(lambda b: b.replace(b"MLPExplainer", b"MLPExplainez", 1)),
                           FastSHAPFileError, "unknown module class 'MLPExplainez'"),
    "tensor byte flipped": (_flip_tensor, FastSHAPFileError, "checksum"),
    "source record wrong": (_bad_source, FastSHAPFileError, "invalid source record"),
    "version 1, baseline of wrong shape": (_v1_baseline_shape, FastSHAPFileError,
                                           "parts do not fit together"),
    "version 1, a weight missing": (_v1_missing_weight, FastSHAPFileError,
                                    "not a valid FastSHAP file"),
}


@pytest.mark.parametrize("damage", sorted(DAMAGES))
def test_every_damage_gives_one_clear_error_naming_the_file(tmp_path, model, good, damage):
    make, error, words = DAMAGES[damage]
    path = tmp_path / "damaged.pt"
    make(good, path)
    with pytest.raises(error) as caught:
        FastSHAP.load(path, model)
    message = str(caught.value)
    assert type(caught.value) is error
    assert isinstance(caught.value, ValueError)  # `except ValueError` still catches it
    assert repr(str(path)) in message, message
    assert words in message, message
    assert any(w in message for w in ("damaged", "not a captum_genomics.FastSHAP file",
                                      "newer version")), message


def test_missing_file_and_directory_name_the_path(tmp_path, model):
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "nope.pt")):
        FastSHAP.load(tmp_path / "nope.pt", model)
    with pytest.raises(IsADirectoryError, match=str(tmp_path)):
        FastSHAP.load(tmp_path, model)
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        load_module(tmp_path / "nope.pt")


def test_file_objects_are_named_too(model, good):
    buffer = io.BytesIO(good.read_bytes()[:100])
    with pytest.raises(FastSHAPFileError, match="the BytesIO file object"):
        FastSHAP.load(buffer, model)


def test_module_files(tmp_path, fitted, good):
    path = tmp_path / "explainer.pt"
    save_module(fitted.explainer, path, metadata={"cells": 64})
    blob = torch.load(path, weights_only=True)
    assert blob["version"] == 2 and blob["sha256"] == payload_sha256(blob)
    back, meta = load_module(path, return_metadata=True)
    x = _cells(4, 3)
    assert meta == {"cells": 64} and torch.equal(back(x), fitted.explainer(x))
    # damaged, foreign, newer
    start, length = _tensor_payloads(path)[0]
    (tmp_path / "flip.pt").write_bytes(_flip(path.read_bytes(), start + length - 1))
    with pytest.raises(FastSHAPFileError, match=r"'.*flip\.pt' is damaged .*checksum"):
        load_module(tmp_path / "flip.pt")
    with pytest.raises(FastSHAPFileError, match="read it with FastSHAP.load"):
        load_module(good)
    blob["version"] = 9
    torch.save(blob, tmp_path / "new.pt")
    with pytest.raises(FastSHAPFileError, match="newer version"):
        load_module(tmp_path / "new.pt")
    # version 1 (no checksum) still loads
    torch.save(_v1(torch.load(path, weights_only=True)), tmp_path / "v1.pt")
    assert torch.equal(load_module(tmp_path / "v1.pt")(x), fitted.explainer(x))


# ----------------------------------------------------------------------------- flipped bytes
@pytest.fixture(scope="module")
def payloads(good):
    return good.read_bytes(), _tensor_payloads(good)


@settings(**SETTINGS)
@given(where=st.floats(0, 1, exclude_max=True), mask=st.integers(1, 255))
def test_a_flipped_byte_in_any_tensor_is_detected(tmp_path, model, payloads, where, mask):
    data, ranges = payloads
    total = sum(n for _, n in ranges)
    k = int(where * total)
    for start, n in ranges:
        if k < n:
            break
        k -= n
    path = tmp_path / "flipped.pt"
    path.write_bytes(_flip(data, start + k, mask))
    with pytest.raises(FastSHAPFileError, match="damaged"):
        FastSHAP.load(path, model)


@settings(**SETTINGS)
@given(where=st.floats(0, 1, exclude_max=True), mask=st.integers(1, 255))
def test_a_flipped_byte_anywhere_is_detected_or_harmless(tmp_path, model, fitted, payloads,
                                                        where, mask):
    # Bytes torch never reads (zip padding, the serialization id) may change
    # without effect; everything else must be refused, never give other values.
    data, _ = payloads
    path = tmp_path / "flipped.pt"
    path.write_bytes(_flip(data, int(where * len(data)), mask))
    try:
        loaded = FastSHAP.load(path, model)
    except FastSHAPFileError as err:
        assert repr(str(path)) in str(err)
    else:
        assert _state(loaded) == _state(fitted)


# ----------------------------------------------------------------------------- checksum
def test_checksum_is_canonical(fitted, good):
    state = fio.fastshap_state(fitted)
    reference = payload_sha256(state)
    blob = torch.load(good, weights_only=True)
    assert blob["version"] == 2 and blob["sha256"] == reference
    assert "source" in blob["config"]
    buffer = io.BytesIO()  # another archive name and layout, the same checksum
    torch.save(fio._with_checksum(state), buffer)
    buffer.seek(0)
    assert torch.load(buffer, weights_only=True)["sha256"] == reference
    assert payload_sha256(dict(reversed(list(state.items())))) == reference
    assert payload_sha256({**state, "sha256": "x" * 64}) == reference
    changed = dict(state, baseline=state["baseline"].double())  # same values, other dtype
    assert payload_sha256(changed) != reference
    changed = dict(state, baseline=state["baseline"].reshape(1, -1))  # other shape
    assert payload_sha256(changed) != reference
    assert payload_sha256({"a": [1, 2]}) != payload_sha256({"a": [12]})
    assert payload_sha256({"a": "1"}) != payload_sha256({"a": 1})
    assert payload_sha256({"a": 1.0}) != payload_sha256({"a": 1})
    with pytest.raises(TypeError, match="cannot be stored"):
        payload_sha256({"a": object()})


def test_version_1_files_still_load(tmp_path, model, fitted):
    for game in ("marginal", "model"):
        fs = fitted if game == "marginal" else FastSHAP(model, fitted.explainer, trained=True)
        torch.save(_v1(fio.fastshap_state(fs)), tmp_path / f"{game}.pt")
        back = FastSHAP.load(tmp_path / f"{game}.pt", model)
        x = _cells(6, 4)
        assert back.source is None and back.trained
        assert torch.equal(back.attribute(x, targets="all"), fs.attribute(x, targets="all"))


# ----------------------------------------------------------------------------- writing
def _partial_then_fail(error):
    def fake_save(obj, f, *args, **kwargs):
        with open(f, "wb") as fh:
            fh.write(b"PK\x03\x04 half a file")
        raise error
    return fake_save


@pytest.mark.parametrize("error", [OSError(errno.ENOSPC, "No space left on device"),
                                   RuntimeError("PytorchStreamWriter failed writing file")])
def test_a_failed_save_leaves_the_good_file_and_no_temporary_files(tmp_path, monkeypatch,
                                                                   fitted, model, error):
    path = tmp_path / "fs.pt"
    fitted.save(path)
    before = path.read_bytes()
    monkeypatch.setattr(torch, "save", _partial_then_fail(error))
    with pytest.raises(type(error)) as caught:
        fitted.save(path, overwrite=True)
    with pytest.raises(type(error)):
        fitted.save(tmp_path / "new.pt")
    with pytest.raises(type(error)):
        save_module(fitted.explainer, tmp_path / "new_module.pt")
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["fs.pt"]  # no temporary file or folder
    assert isinstance(caught.value, type(error))
    notes = getattr(caught.value, "__notes__", [])
    if hasattr(caught.value, "add_note"):
        assert any(repr(str(path)) in n and "unchanged" in n for n in notes)
    assert _state(FastSHAP.load(path, model)) == _state(fitted)


def test_save_does_not_overwrite_unless_asked(tmp_path, monkeypatch, fitted, model):
    path = tmp_path / "fs.pt"
    path.write_bytes(b"precious")
    with pytest.raises(FileExistsError, match="overwrite=True") as caught:
        fitted.save(path)
    assert caught.value.filename == str(path) and str(path) in str(caught.value)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        save_module(fitted.explainer, path)
    assert path.read_bytes() == b"precious"
    fitted.save(path, overwrite=True)
    assert _state(FastSHAP.load(path, model)) == _state(fitted)
    # the name is taken while the file is being written: still refused, atomically
    real_save = torch.save

    def racing_save(obj, f, *args, **kwargs):
        real_save(obj, f, *args, **kwargs)
        (tmp_path / "raced.pt").write_bytes(b"someone else's")

    monkeypatch.setattr(torch, "save", racing_save)
    with pytest.raises(FileExistsError, match="raced.pt"):
        fitted.save(tmp_path / "raced.pt")
    assert (tmp_path / "raced.pt").read_bytes() == b"someone else's"
    # a file system without hard links
    monkeypatch.setattr(torch, "save", real_save)
    monkeypatch.setattr(os, "link", lambda *a, **k: (_ for _ in ()).throw(
        OSError(errno.EPERM, "Operation not permitted")))
    fitted.save(tmp_path / "nolinks.pt")
    with pytest.raises(FileExistsError):
        fitted.save(tmp_path / "nolinks.pt")
    monkeypatch.undo()
    assert _state(FastSHAP.load(tmp_path / "nolinks.pt", model)) == _state(fitted)
    assert sorted(os.listdir(tmp_path)) == ["fs.pt", "nolinks.pt", "raced.pt"]


def test_file_bytes_are_deterministic(tmp_path, fitted):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    fitted.save(tmp_path / "a" / "fs.pt")
    fitted.save(tmp_path / "b" / "fs.pt")
    assert (tmp_path / "a" / "fs.pt").read_bytes() == (tmp_path / "b" / "fs.pt").read_bytes()


# ----------------------------------------------------------------------------- provenance
anndata = pytest.importorskip("anndata")


def _adata(x_raw, genes=GENES, layers=None):
    """An AnnData whose .X is the z-scored .raw.X (as after scanpy's scale)."""
    import pandas as pd

    raw = np.asarray(x_raw, dtype=np.float32)
    z = (raw - raw.mean(0)) / (raw.std(0) + 1e-6)
    var = pd.DataFrame(index=list(genes))
    adata = anndata.AnnData(X=z.astype(np.float32), var=var,
                            layers={k: v[:, :] for k, v in (layers or {}).items()})
    adata.raw = anndata.AnnData(X=raw, var=var)
    return adata


def _permuted(adata, perm):
    """The same cells with genes (in .X, layers and .raw) in the order ``perm``."""
    import pandas as pd

    var = pd.DataFrame(index=[adata.var_names[i] for i in perm])
    out = anndata.AnnData(X=np.asarray(adata.X)[:, perm], var=var,
                          layers={k: np.asarray(v)[:, perm] for k, v in adata.layers.items()})
    out.raw = anndata.AnnData(X=np.asarray(adata.raw.X)[:, perm], var=var)
    return out


@pytest.fixture(scope="module")
def raw_fit(model):
    counts = (_cells(96, 5).abs() * 3).numpy()
    train, val = _adata(counts[:64]), _adata(counts[64:])
    fs = FastSHAP.fit(model, train, val, use_raw=True, random_state=0,
                      explainer_kwargs={"hidden_width": 8}, train_kwargs=QUICK)
    return fs, train, val


def test_fit_records_the_source_and_attribute_follows_it(raw_fit):
    fs, train, _ = raw_fit
    assert fs.source == {"layer": None, "use_raw": True, "var_names": GENES, "n_features": F}
    raw_values = fs.attribute(np.asarray(train.raw.X), targets="all")
    # the issue: attribute(adata) used to read the z-scored .X
    assert torch.equal(fs.attribute(train, targets="all"), raw_values)
    assert torch.equal(fs.attribute(train, targets="all", use_raw=True), raw_values)
    assert not torch.equal(fs.attribute(np.asarray(train.X), targets="all"), raw_values)
    with pytest.raises(ValueError, match=r"`use_raw`=False read `\.X`.*fitted on `\.raw\.X`"):
        fs.attribute(train, target=0, use_raw=False)
    with pytest.raises(ValueError, match=r"`layer`='counts'.*fitted on `\.raw\.X`"):
        fs.attribute(train, target=0, layer="counts")
    assert fs.source["use_raw"]  # unchanged by the errors
    # tensors and arrays carry no names: read as given
    assert fs.attribute(torch.as_tensor(np.asarray(train.X)), target=0).shape == (64, F)


def test_the_source_survives_save_and_load(tmp_path, model, raw_fit):
    fs, train, _ = raw_fit
    fs.save(tmp_path / "fs.pt")
    back = FastSHAP.load(tmp_path / "fs.pt", model)
    assert back.source == fs.source
    assert torch.equal(back.attribute(train, targets="all"), fs.attribute(train, targets="all"))
    with pytest.raises(ValueError, match="fitted on `.raw.X`"):
        back.attribute(train, target=0, use_raw=False)


def test_genes_in_another_order_are_matched_by_name(raw_fit):
    fs, train, _ = raw_fit
    perm = [3, 0, 4, 1, 2]
    shuffled = _permuted(train, perm)
    right = fs.attribute(train, targets="all")
    got = fs.attribute(shuffled, targets="all")
    assert torch.equal(got, right[:, perm])  # column j is shuffled.var_names[j]
    for kwargs in ({"target": 1}, {"target": 2, "batch_size": 7}):
        assert torch.equal(fs.attribute(shuffled, **kwargs), fs.attribute(train, **kwargs)[:, perm])
    assert torch.equal(fs.attribute(shuffled, target=0, return_player_values=True),
                       fs.attribute(train, target=0, return_player_values=True))
    a, d = fs.attribute(shuffled, target=1, return_convergence_delta=True)
    b, e = fs.attribute(train, target=1, return_convergence_delta=True)
    assert torch.equal(a, b[:, perm]) and torch.equal(d, e)
    torch.testing.assert_close(fs.compute_convergence_delta(a, shuffled, target=1),
                               fs.compute_convergence_delta(b, train, target=1))


def test_other_genes_are_refused_with_their_names(raw_fit):
    fs, train, _ = raw_fit
    renamed = _adata(np.asarray(train.raw.X), genes=["g0", "g1", "CD3E", "g3", "g4"])
    with pytest.raises(ValueError, match=r"1 of them are missing here \(first: \['g2'\]\).*"
                                         r"\['CD3E'\].*position 2: 'CD3E' here, 'g2' at fit"):
        fs.attribute(renamed, target=0)
    fewer = _adata(np.asarray(train.raw.X)[:, :4], genes=GENES[:4])
    with pytest.raises(ValueError, match=r"\(4 in `\.raw\.var_names`\).*missing here "
                                         r"\(first: \['g4'\]\)"):
        fs.attribute(fewer, target=0)
    no_raw = anndata.AnnData(X=np.asarray(train.raw.X))
    no_raw.var_names = GENES
    with pytest.raises(ValueError, match=r"fitted on `\.raw\.X`.*has no `\.raw`"):
        fs.attribute(no_raw, target=0)


def test_layers_and_fit_time_checks(model):
    counts = (_cells(80, 6).abs() * 2).numpy()
    train = _adata(counts[:64], layers={"counts": counts[:64]})
    val = _adata(counts[64:], layers={"counts": counts[64:]})
    fit = dict(layer="counts", random_state=0, explainer_kwargs={"hidden_width": 8},
               train_kwargs=QUICK)
    fs = FastSHAP.fit(model, train, val, **fit)
    assert fs.source["layer"] == "counts" and not fs.source["use_raw"]
    assert torch.equal(fs.attribute(train, target=0), fs.attribute(counts[:64], target=0))
    with pytest.raises(ValueError, match=r"fitted on `\.layers\['counts'\]`.*no layer 'counts'; "
                                         r"available layers: \[\]"):
        fs.attribute(_adata(counts[:4]), target=0)
    # x_val's genes in another order: matched by name, the same fit
    perm = [4, 3, 2, 1, 0]
    again = FastSHAP.fit(model, train, _permuted(val, perm), **fit)
    assert torch.equal(again.attribute(train, targets="all"), fs.attribute(train, targets="all"))
    assert again.source == fs.source
    with pytest.raises(ValueError, match=r"genes of the AnnData `x_val`.*\['g4'\]"):
        FastSHAP.fit(model, train, _adata(counts[64:, :4], genes=GENES[:4],
                                          layers={"counts": counts[64:, :4]}), **fit)


def test_fit_explainer_records_a_source_only_when_training_succeeds(model, fitted, raw_fit):
    _, train, val = raw_fit
    fs = FastSHAP(model, FastSHAP.fit(model, _cells(32, 7), _cells(8, 8), random_state=0,
                                      explainer_kwargs={"hidden_width": 8},
                                      train_kwargs={"max_epochs": 1}).explainer)
    assert fs.source is None
    other = _adata(np.asarray(val.raw.X), genes=["x"] + GENES[1:])
    with pytest.raises(ValueError, match="genes of the AnnData `x_val`"):
        fs.fit_explainer(train, other, max_epochs=1)
    assert fs.source is None and not fs.trained
    fs.fit_explainer(train, val, use_raw=True, max_epochs=1)
    assert fs.source == {"layer": None, "use_raw": True, "var_names": GENES, "n_features": F}
    assert fitted.source is None  # fitted on tensors: nothing recorded, nothing checked
    assert fitted.attribute(train, target=0, layer=None, use_raw=False).shape == (64, F)
