"""Saving and loading trained FastSHAP networks, alone or as a whole ``FastSHAP``.

A module (explainer or surrogate) is stored as a plain dictionary,
:func:`module_state`::

    {"format": "captum_genomics.fastshap", "version": 2,
     "class": "MLPExplainer" | "MaskedSurrogate",
     "config": {...JSON-able constructor arguments...},
     "dtype": "float32", "metadata": {...JSON-able...},
     "state_dict": {name: tensor}}

written alone by :func:`save_module`, or inside the file of
:meth:`FastSHAP.save <captum_genomics.FastSHAP.save>` (:func:`fastshap_state`)::

    {"format": "captum_genomics.FastSHAP", "version": 2,
     "explainer": {...module state...}, "baseline": tensor,
     "surrogate": {...module state...} | None, "background": tensor | None,
     "weights": tensor | None, "game_baseline": tensor | None,
     "config": {"game": "model" | "surrogate" | "marginal" | "baseline",
                "link", "game_link", "game_batch_size", "trained", "players",
                "history", "mask_null_players",
                "source": None | {"layer", "use_raw", "var_names", "n_features"}}}

A file written by :func:`save_module` or :func:`save_fastshap` also holds
``"sha256"``: :func:`payload_sha256` of everything else in it, a SHA-256 over a
canonical serialization (every tensor's dtype, shape and bytes in
little-endian order, every string, number, list and dictionary with sorted
keys; see :func:`payload_sha256`) that does not depend on torch's zip layout.
Loading recomputes it, so a flipped byte, a truncated tensor or an edited
class name, dtype or config is reported as a damaged file instead of silently
giving other values.

Versions: 2 (this one) adds the checksum and, in FastSHAP files, the
``source`` of AnnData inputs (see :meth:`FastSHAP.fit
<captum_genomics.FastSHAP.fit>`). Version 1 files (no checksum, no source)
are still read. A file of a newer version is refused with a request to upgrade.

Every way a file can fail to load (empty, truncated, not a zip archive, a
torch file that is not ours, edited, a checksum mismatch, inconsistent
contents, a newer version) raises :class:`FastSHAPFileError` (a
``ValueError``) naming the file; a missing file or a directory raise
``FileNotFoundError`` / ``IsADirectoryError`` naming it.

Both are read back with ``torch.load(path, weights_only=True)``: no pickled
code is executed, so files from others are safe to open. Files are written
atomically: under their own name in a temporary folder beside the destination
(``torch.save`` names the archive inside the file after it, so the bytes do not
depend on the temporary location), flushed to disk, then moved into place with
``os.replace`` (or, when an existing file must not be overwritten, hard-linked
into place, which fails if the name was taken meanwhile); a reader never sees a
half-written file, a failed write (e.g. a full disk) leaves any existing file
as it was, and no temporary file is left behind.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
import zipfile
from typing import Any, Callable

import torch
from torch import nn

from captum_genomics._utils.devices import module_device
from captum_genomics.fastshap.explainer import MLPExplainer
from captum_genomics.fastshap.games import BaselineGame, MarginalGame, SurrogateGame
from captum_genomics.fastshap.players import Players
from captum_genomics.fastshap.surrogate import MaskedSurrogate

__all__ = [
    "save_module", "load_module", "module_state", "module_from_state",
    "save_fastshap", "read_fastshap", "fastshap_state", "fastshap_arguments",
    "payload_sha256", "FastSHAPFileError",
    "FORMAT", "VERSION", "FASTSHAP_FORMAT", "FASTSHAP_VERSION",
]

FORMAT = "captum_genomics.fastshap"
"""The ``format`` tag of a module state."""
VERSION = 2
"""The format version of module states written now (1 is still read)."""
FASTSHAP_FORMAT = "captum_genomics.FastSHAP"
"""The ``format`` tag of files written by :meth:`FastSHAP.save <captum_genomics.FastSHAP.save>`."""
FASTSHAP_VERSION = 2
"""The format version of FastSHAP files written now (1 is still read)."""
CHECKSUM_KEY = "sha256"
"""The key of :func:`payload_sha256` in a file written by this module (version >= 2)."""
_CHECKSUMMED_FROM = 2
_CLASSES = {"MLPExplainer": MLPExplainer, "MaskedSurrogate": MaskedSurrogate}
_LOADED = (TypeError, ValueError, KeyError, RuntimeError, AttributeError, IndexError)
_WRITERS = {FORMAT: "save_module", FASTSHAP_FORMAT: "FastSHAP.save"}
_READERS = {FORMAT: "load_module", FASTSHAP_FORMAT: "FastSHAP.load"}
_OOM = tuple(c for c in (getattr(torch, "OutOfMemoryError", None), MemoryError) if c is not None)


class FastSHAPFileError(ValueError):
    """A file that cannot be read as a FastSHAP file (or module file), with the reason.

    Raised by :meth:`FastSHAP.load <captum_genomics.FastSHAP.load>`,
    :func:`load_module` and :func:`read_fastshap` for a file that is empty,
    truncated or otherwise damaged, is not a file written by ``torch.save``,
    holds something other than a FastSHAP state, fails its checksum, has
    inconsistent contents, or was written by a newer version. The message
    names the file. A ``ValueError``, so ``except ValueError`` still catches it.
    """


# ----------------------------------------------------------------------------- checksum
def _key_order(key: Any) -> tuple[str, str]:
    return type(key).__name__, str(key)


def _feed(h: Any, obj: Any) -> None:
    """Add a canonical, type-tagged, length-prefixed encoding of ``obj`` to the hash ``h``."""
    def tagged(tag: bytes, data: bytes) -> None:
        h.update(tag + b"%d:" % len(data))
        h.update(data)

    if obj is None:
        h.update(b"N")
    elif isinstance(obj, bool):
        h.update(b"T" if obj else b"F")
    elif isinstance(obj, int):
        tagged(b"I", str(int(obj)).encode("ascii"))
    elif isinstance(obj, float):
        tagged(b"R", float(obj).hex().encode("ascii"))
    elif isinstance(obj, str):
        tagged(b"S", obj.encode("utf-8", "surrogatepass"))
    elif isinstance(obj, (list, tuple)):
        h.update(b"L%d:" % len(obj))
        for value in obj:
            _feed(h, value)
    elif isinstance(obj, dict):
        h.update(b"D%d:" % len(obj))
        for key in sorted(obj, key=_key_order):
            _feed(h, key)
            _feed(h, obj[key])
    elif isinstance(obj, torch.Tensor):
        t = obj.detach()
        if t.layout != torch.strided or t.is_quantized or t.is_complex():
            raise TypeError(f"a {t.layout} / {t.dtype} tensor cannot be checksummed")
        t = t.cpu().contiguous().reshape(-1)
        tagged(b"A", f"{str(t.dtype).replace('torch.', '')}|"
                     f"{','.join(str(int(s)) for s in obj.shape)}".encode("ascii"))
        raw = t.view(torch.uint8)
        if sys.byteorder == "big" and t.element_size() > 1:  # pragma: no cover - big-endian
            raw = raw.reshape(-1, t.element_size()).flip(1).reshape(-1)
        data = raw.numpy()  # a view: hashed without a copy
        h.update(b"B%d:" % data.nbytes)
        h.update(data)
    else:
        raise TypeError(f"a {type(obj).__name__} cannot be stored in a FastSHAP file")


def payload_sha256(state: dict) -> str:
    """SHA-256 (hex) of ``state`` without its ``"sha256"`` entry, independent of the file layout.

    The hash runs over a canonical serialization: ``None``, booleans,
    integers, floats (``float.hex``), strings (UTF-8), lists and tuples (as one
    kind), dictionaries (keys sorted by type name, then text) and tensors
    (dtype, shape, then the bytes in little-endian order), each tagged with
    its kind and length. The same state gives the same checksum whatever the
    zip layout, archive name or pickle memo of the file that holds it.

    Parameters
    ----------
    state : dict
        A :func:`module_state` or :func:`fastshap_state` dictionary (CPU or
        device tensors).

    Returns
    -------
    str
        64 lowercase hexadecimal digits.

    Raises
    ------
    TypeError
        If ``state`` holds anything else than the kinds above (or sparse,
        quantized or complex tensors).
    """
    h = hashlib.sha256(b"captum_genomics.fastshap payload v1\0")
    _feed(h, {k: v for k, v in state.items() if k != CHECKSUM_KEY})
    return h.hexdigest()


def _with_checksum(state: dict) -> dict:
    out = dict(state)
    out.pop(CHECKSUM_KEY, None)
    out[CHECKSUM_KEY] = payload_sha256(out)
    return out


# ----------------------------------------------------------------------------- files
def _where(path: Any) -> str:
    if isinstance(path, (str, os.PathLike)):
        return os.fspath(path)
    name = getattr(path, "name", None)
    return name if isinstance(name, str) else f"the {type(path).__name__} file object"


def _fsync(path: str) -> None:
    with open(path, "rb+") as fh:
        os.fsync(fh.fileno())


def _exists_error(path: str) -> FileExistsError:
    return FileExistsError(errno.EEXIST, "File exists; pass overwrite=True to replace it", path)


def _write(obj: dict, path: Any, overwrite: bool = True) -> None:
    """``torch.save(obj, path)``, atomically for a path (see the module docstring).

    With ``overwrite=False`` an existing ``path`` raises ``FileExistsError``
    (before anything is written, and again, atomically, if the name was taken
    while writing). A failed write leaves an existing file unchanged and no
    temporary file behind; the error gets a note naming ``path``.
    """
    if not isinstance(path, (str, os.PathLike)):
        torch.save(obj, path)  # a file object: written in place
        return
    path = os.fspath(path)
    if not overwrite and os.path.lexists(path):
        raise _exists_error(path)
    directory, name = os.path.split(path)
    if not os.path.isdir(directory or "."):
        torch.save(obj, path)  # raises torch's own error for a missing folder
        return
    # The temporary path is the given one plus an ASCII folder name: torch.save
    # treats it exactly as it would `path` (archive name, non-ASCII paths).
    tmp_dir = os.path.join(directory, os.path.basename(
        tempfile.mkdtemp(prefix=".saving-", suffix=".tmp", dir=directory or ".")))
    try:
        tmp = os.path.join(tmp_dir, name)
        try:
            torch.save(obj, tmp)
            _fsync(tmp)
        except Exception as err:
            if hasattr(err, "add_note"):  # Python >= 3.11
                err.add_note(f"While writing {path!r}: nothing was written there; an existing "
                             "file of that name is unchanged.")
            raise
        if overwrite:
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)  # fails if `path` appeared meanwhile
            except FileExistsError:
                raise _exists_error(path) from None
            except OSError:  # no hard links on this file system
                if os.path.lexists(path):
                    raise _exists_error(path) from None
                os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)


def _unreadable(path: Any, where: str, fmt: str, err: BaseException) -> FastSHAPFileError:
    """The error for a file ``torch.load`` could not read: why, as far as can be told."""
    what = f"a {fmt} file (written by {_WRITERS[fmt]})"
    text = str(err)
    unsafe = re.search(r"Unsupported global: GLOBAL (\S+)", text)
    if unsafe:
        return FastSHAPFileError(
            f"{where!r} is not {what}, or is damaged: it holds pickled Python objects that these "
            f"files never contain, and torch.load(weights_only=True) refuses them for safety "
            f"(the global {unsafe.group(1)}).")
    cause = _text(err, first_sentence=True)
    head = b""
    if isinstance(path, (str, os.PathLike)):
        try:
            with open(path, "rb") as fh:
                head = fh.read(8)
        except OSError:
            pass
        if head == b"":
            return FastSHAPFileError(
                f"{where!r} is empty (0 bytes): a damaged or unfinished file, not {what}.")
        if not head.startswith(b"PK"):
            return FastSHAPFileError(
                f"{where!r} is not {what}: it is not a zip archive written by torch.save "
                f"(it starts with {head!r}).")
        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
        except (zipfile.BadZipFile, OSError, ValueError, EOFError):
            return FastSHAPFileError(
                f"{where!r} is damaged (truncated or partly overwritten): it starts like {what} "
                f"but torch.load cannot read it ({cause}).")
        if not any(n.endswith("/data.pkl") or n == "data.pkl" for n in names):
            return FastSHAPFileError(
                f"{where!r} is not {what}: it is a zip archive, but not one written by "
                f"torch.save ({len(names)} member(s), no data.pkl).")
    return FastSHAPFileError(
        f"{where!r} is damaged (or not {what}): torch.load cannot read it ({cause}).")


def _text(err: BaseException, first_sentence: bool = False) -> str:
    """``err`` as ``"Kind: message"`` on one line, without a final period."""
    text = " ".join(str(err).split())
    if first_sentence:
        text = text.split(". ")[0][:200]
    text = text.rstrip(".")
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def _describe(blob: Any) -> str:
    if isinstance(blob, dict):
        keys = sorted(map(str, blob))
        shown = ", ".join(map(repr, keys[:6])) + (", ..." if len(keys) > 6 else "")
        tag = blob.get("format")
        return (f"a dictionary with format tag {tag!r}" if tag is not None
                else f"a dictionary without a format tag (keys {shown})")
    if isinstance(blob, torch.Tensor):
        return f"a tensor of shape {tuple(blob.shape)}"
    return f"a {type(blob).__name__}"


def _read(path: Any, fmt: str, version: int) -> dict:
    """The checked, checksum-verified dictionary in the file ``path`` (tensors on the CPU).

    Raises FileNotFoundError / IsADirectoryError / PermissionError as
    ``open`` does (naming the path), FastSHAPFileError for anything else.
    """
    where = _where(path)
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError):
        raise
    except _OOM:
        raise
    except Exception as err:  # torch raises many kinds: OSError, EOFError, KeyError, ...
        raise _unreadable(path, where, fmt, err) from err
    _check_header(blob, fmt, version, where, None)
    _check_checksum(blob, where)
    return blob


def _check_header(blob: Any, fmt: str, version: int, where: str, what: str | None) -> None:
    """Raise FastSHAPFileError unless ``blob`` is a dict tagged ``fmt`` of at most ``version``."""
    if not isinstance(blob, dict) or blob.get("format") != fmt:
        if what is not None:
            raise FastSHAPFileError(
                f"{where!r} is damaged or not a valid FastSHAP file: it does not hold a valid "
                f"{what} ({_describe(blob)}).")
        other = blob.get("format") if isinstance(blob, dict) else None
        hint = (f"; it was written by {_WRITERS[other]}, read it with {_READERS[other]}"
                if other in _WRITERS else "")
        damaged = " is damaged or" if (isinstance(other, str) and other not in _WRITERS
                                       and other.startswith("captum_genomics")) else ""
        raise FastSHAPFileError(
            f"{where!r}{damaged} is not a {fmt} file (written by {_WRITERS[fmt]}): it holds "
            f"{_describe(blob)}{hint}.")
    held = blob.get("version")
    if isinstance(held, bool) or not isinstance(held, int) or held < 1:
        raise FastSHAPFileError(
            f"{where!r} is damaged: its {'' if what is None else what + ' '}format version is "
            f"{held!r}, expected an integer from 1 to {version}.")
    if held > version:
        held_in = "" if what is None else f" (its {what})"
        raise FastSHAPFileError(
            f"{where!r}{held_in} was written by a newer version of captum_genomics: format "
            f"version {held}, this one reads up to {version}. Upgrade captum_genomics to "
            "load it.")


def _diagnose(blob: dict) -> str:
    """What looks edited in a state whose checksum failed, as far as cheap checks tell."""
    states = [("", blob)] if blob.get("format") == FORMAT else [
        (f"{k} ", blob.get(k)) for k in ("explainer", "surrogate")]
    for label, state in states:
        if not isinstance(state, dict):
            continue
        subject = f"its {label.strip()}" if label else "it"
        cls_name = state.get("class")
        if cls_name not in _CLASSES:
            return f"; {subject} names an unknown module class {cls_name!r}"
        dtype = getattr(torch, str(state.get("dtype")), None)
        if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
            return f"; {subject} names an invalid dtype {state.get('dtype')!r}"
    return ""


def _check_checksum(blob: dict, where: str) -> None:
    stored = blob.get(CHECKSUM_KEY)
    if stored is None and blob["version"] < _CHECKSUMMED_FROM:
        return  # version 1: written before checksums
    if not isinstance(stored, str) or len(stored) != 64:
        raise FastSHAPFileError(
            f"{where!r} is damaged: format version {blob['version']} files hold a SHA-256 "
            f"checksum, this one holds {stored!r}.")
    try:
        actual = payload_sha256(blob)
    except TypeError as err:
        raise FastSHAPFileError(f"{where!r} is damaged or was edited: {err}.") from err
    if actual != stored:
        raise FastSHAPFileError(
            f"{where!r} is damaged or was edited after it was written: the SHA-256 checksum "
            f"of its contents does not match the one stored in it{_diagnose(blob)}. Its values "
            "cannot be trusted; re-create the file.")


def _check_device(device: torch.device | None) -> None:
    """Raise the device's own error now, so that it is not taken for a damaged file later."""
    if device is not None:
        torch.empty(0, device=device)


# ----------------------------------------------------------------------------- one module
def _unshared(obj: Any, memo: dict[int, Any]) -> Any:
    """A copy of JSON-like ``obj`` holding new containers and strings, shared objects kept shared.

    What loading a saved copy gives. Pickle writes a second reference to one
    object as a back-reference, so a state embedded in a larger dictionary
    must not share strings with it: the embedding file then has the same bytes
    as when the state was saved to a buffer and loaded back.
    """
    key = id(obj)
    if key in memo:
        return memo[key]
    if isinstance(obj, str):
        out: Any = obj.encode("utf-8", "surrogatepass").decode("utf-8", "surrogatepass")
    elif isinstance(obj, dict):
        out = {}
        memo[key] = out
        for k, v in obj.items():
            out[_unshared(k, memo)] = _unshared(v, memo)
    elif isinstance(obj, list):
        out = []
        memo[key] = out
        out.extend(_unshared(v, memo) for v in obj)
    elif isinstance(obj, tuple):
        out = tuple(_unshared(v, memo) for v in obj)
    else:  # numbers, None, and tensors (fresh CPU copies already)
        out = obj
    memo[key] = out
    return out


def module_state(module: nn.Module, metadata: dict[str, Any] | None = None) -> dict:
    """The dictionary that :func:`save_module` writes for ``module``.

    Parameters
    ----------
    module : MLPExplainer or MaskedSurrogate
        An :class:`~captum_genomics.fastshap.explainer.MLPExplainer` or
        :class:`~captum_genomics.fastshap.surrogate.MaskedSurrogate`.
    metadata : dict, optional
        JSON-able dictionary stored beside the config (e.g. training
        history, data description, link, random state). Default None: ``{}``.

    Returns
    -------
    dict
        ``{"format", "version", "class", "config", "dtype", "metadata",
        "state_dict"}`` (see the module docstring); the weights are detached
        CPU copies in the module's dtype, and nothing, not even a string, is
        shared with ``module`` or ``metadata``.

    Raises
    ------
    TypeError
        If ``module`` is of another class, or ``metadata`` is not JSON-able.
    """
    name = type(module).__name__
    if name not in _CLASSES or not isinstance(module, _CLASSES[name]):
        raise TypeError(
            f"`module` must be one of {sorted(_CLASSES)}, got {type(module).__name__}."
        )
    config = module.config()
    metadata = {} if metadata is None else metadata
    try:
        json.dumps(config)
        json.dumps(metadata)
    except TypeError as err:
        raise TypeError(f"`metadata` (or the config) is not JSON-able: {err}") from err
    dtype = next(module.parameters()).dtype
    state = {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}
    return _unshared({"format": FORMAT, "version": VERSION, "class": name, "config": config,
                      "dtype": str(dtype).replace("torch.", ""), "metadata": metadata,
                      "state_dict": state}, {})


def _build_module(state: dict) -> nn.Module:
    """The module of a header-checked state, on the CPU (errors: see ``_LOADED``)."""
    cls_name = state["class"]
    if cls_name not in _CLASSES:
        raise ValueError(f"unknown module class {cls_name!r}")
    config = dict(state["config"])
    if cls_name == "MaskedSurrogate":
        config["players"] = Players.from_config(config["players"])
    dtype = getattr(torch, str(state.get("dtype", "float32")), None)
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise ValueError(f"invalid dtype {state.get('dtype')!r}")
    module = _CLASSES[cls_name](**config)
    module.to(dtype)
    module.load_state_dict(state["state_dict"])
    module.eval()
    return module


def module_from_state(state: dict, map_location: str | torch.device | None = "cpu",
                      where: str = "the module state", what: str | None = None) -> nn.Module:
    """The module a :func:`module_state` dictionary describes (its inverse).

    Parameters
    ----------
    state : dict
        As returned by :func:`module_state` or read from a file. A
        ``"sha256"`` entry, if present, is verified (:func:`payload_sha256`).
    map_location : str or torch.device, optional
        Device of the module. Default ``"cpu"``; None leaves it on the CPU.
    where : str
        The file the state comes from, for the messages. Default
        ``"the module state"``.
    what : str, optional
        For a state stored inside a larger file (e.g. ``"explainer"``): the
        messages name it. Default None.

    Returns
    -------
    nn.Module
        The module in ``eval()`` mode, with the saved dtype and weights.

    Raises
    ------
    FastSHAPFileError
        (a ``ValueError``) If ``state`` is not in this format, is of a newer
        version, fails its checksum, names an unknown class or dtype, or its
        config and weights do not build the module.
    """
    _check_header(state, FORMAT, VERSION, where, what)
    if what is None and CHECKSUM_KEY in state:
        _check_checksum(state, where)
    return _module(state, map_location, where, what)


def _module(state: dict, map_location: Any, where: str, what: str | None) -> nn.Module:
    """:func:`module_from_state` of a state whose header and checksum are checked."""
    device = None if map_location is None else torch.device(map_location)
    _check_device(device)
    try:
        module = _build_module(state)
    except _OOM:
        raise
    except _LOADED as err:
        held = "a valid module" if what is None else f"a valid {what}"
        raise FastSHAPFileError(
            f"{where!r} is damaged or not a valid FastSHAP file: it does not hold {held} "
            f"({_text(err)}).") from err
    return module if device is None else module.to(device)


def save_module(module: nn.Module, path: str | os.PathLike,
                metadata: dict[str, Any] | None = None, overwrite: bool = False) -> None:
    """Write a trained explainer or surrogate (weights + config) to one file.

    The file holds :func:`module_state` plus its checksum
    (:func:`payload_sha256`), format version 2; it is written atomically (see
    the module docstring).

    Parameters
    ----------
    module : MLPExplainer or MaskedSurrogate
        An :class:`~captum_genomics.fastshap.explainer.MLPExplainer` or
        :class:`~captum_genomics.fastshap.surrogate.MaskedSurrogate`.
    path : str or os.PathLike, or a writable binary file object
        Destination file (conventionally ``.pt``).
    metadata : dict, optional
        JSON-able dictionary stored beside the config (e.g. training
        history, data description, link, random state). Default None.
    overwrite : bool
        Replace an existing file at ``path``. Default False: an existing file
        raises ``FileExistsError`` and is left as it is.

    Raises
    ------
    TypeError
        If ``module`` is of another class, or ``metadata`` is not JSON-able.
    FileExistsError
        If ``path`` exists and ``overwrite`` is False.
    OSError, RuntimeError
        If writing fails (e.g. a full disk): an existing file is left
        unchanged and no temporary file remains.
    """
    _write(_with_checksum(module_state(module, metadata)), path, overwrite=overwrite)


def load_module(path: str | os.PathLike, map_location: str | torch.device | None = "cpu",
                return_metadata: bool = False):
    """Read a module written by :func:`save_module` (format version 1 or 2).

    Parameters
    ----------
    path : str or os.PathLike, or a readable binary file object
        The file.
    map_location : str or torch.device, optional
        Device for the weights. Default ``"cpu"``; None: the CPU.
    return_metadata : bool
        Also return the stored metadata. Default False.

    Returns
    -------
    nn.Module or (nn.Module, dict)
        The module in ``eval()`` mode, with the saved dtype and weights.

    Raises
    ------
    FastSHAPFileError
        (a ``ValueError``) If the file is empty, damaged, not a module file,
        fails its checksum, names an unknown class or dtype, or was written
        by a newer version; the message names the file.
    FileNotFoundError, IsADirectoryError
        If ``path`` does not exist or is a directory.
    """
    blob = _read(path, FORMAT, VERSION)
    module = _module(blob, map_location, _where(path), None)
    return (module, blob.get("metadata", {})) if return_metadata else module


# ----------------------------------------------------------------------------- a whole FastSHAP
def _source_record(source: Any) -> dict[str, Any] | None:
    """A fresh copy of a FastSHAP's ``source`` record, as stored."""
    if source is None:
        return None
    return {"layer": source["layer"], "use_raw": bool(source["use_raw"]),
            "var_names": [str(v) for v in source["var_names"]],
            "n_features": int(source["n_features"])}


def _check_source(source: Any, n_features: int) -> dict[str, Any] | None:
    """The ``source`` record of a file, checked (ValueError when malformed)."""
    if source is None:
        return None
    ok = (isinstance(source, dict)
          and set(source) == {"layer", "use_raw", "var_names", "n_features"}
          and (source["layer"] is None or isinstance(source["layer"], str))
          and isinstance(source["use_raw"], bool)
          and not (source["use_raw"] and source["layer"] is not None)
          and isinstance(source["var_names"], list)
          and all(isinstance(v, str) for v in source["var_names"])
          and source["n_features"] == len(source["var_names"]) == n_features)
    if not ok:
        raise ValueError(
            f"invalid source record (expected layer, use_raw and {n_features} gene names)")
    return _source_record(source)


def fastshap_state(fs: Any) -> dict:
    """The dictionary :meth:`FastSHAP.save <captum_genomics.FastSHAP.save>` writes.

    Parameters
    ----------
    fs : FastSHAP
        Its explainer, game, players, link, baseline, ``trained`` flag,
        history, ``mask_null_players`` and ``source`` are stored; not the model.

    Returns
    -------
    dict
        See the module docstring (without the checksum, which
        :func:`save_fastshap` adds). The game is stored as ``"model"`` (the
        model's own game, ``fs.model_game``), ``"surrogate"`` (the
        surrogate's module state), ``"marginal"`` (background rows and
        weights) or ``"baseline"`` (its baseline).

    Raises
    ------
    TypeError
        If the explainer is not an ``MLPExplainer``, or the game is not a
        ``BaselineGame``, ``MarginalGame`` or a ``SurrogateGame`` of a
        ``MaskedSurrogate``.
    """
    game = fs.game
    blob: dict[str, Any] = {"format": FASTSHAP_FORMAT, "version": FASTSHAP_VERSION,
                            "explainer": module_state(fs.explainer),
                            "baseline": fs.baseline.detach().cpu().clone(),
                            "surrogate": None, "background": None, "weights": None,
                            "game_baseline": None}
    if game is fs.model_game:
        kind = "model"
    elif isinstance(game, SurrogateGame) and isinstance(game.surrogate, MaskedSurrogate):
        kind = "surrogate"
        blob["surrogate"] = module_state(game.surrogate)
    elif isinstance(game, MarginalGame):
        kind = "marginal"
        blob["background"] = game.background.detach().cpu().clone()
        blob["weights"] = game.weights.detach().cpu().clone()
    elif isinstance(game, BaselineGame):
        kind = "baseline"
        blob["game_baseline"] = game.baseline.detach().cpu().clone()
    else:
        raise TypeError(
            f"`game` of type {type(game).__name__} cannot be saved: only the model's game, "
            "a BaselineGame, a MarginalGame or a SurrogateGame of a MaskedSurrogate."
        )
    blob["config"] = {"game": kind, "link": fs.link, "game_link": game.link,
                      "game_batch_size": game.batch_size, "trained": fs.trained,
                      "players": fs.players.to_config(), "history": fs.history,
                      "mask_null_players": fs.mask_null_players,
                      "source": _source_record(getattr(fs, "source", None))}
    return blob


def fastshap_arguments(state: dict, model: Callable,
                       map_location: str | torch.device | None = None,
                       where: str = "the state") -> dict[str, Any]:
    """The ``FastSHAP`` constructor arguments a :func:`fastshap_state` dictionary describes.

    Parameters
    ----------
    state : dict
        As returned by :func:`fastshap_state` or read from a file (tensors on
        the CPU), format version 1 or 2. A ``"sha256"`` entry, if present, is
        verified.
    model : callable
        The model the explainer was trained for; the game is rebuilt around it.
    map_location : str or torch.device, optional
        Device of the explainer and surrogate. Default None: the model's
        device (CPU for a callable without parameters).
    where : str
        The file the state comes from, for the messages. Default ``"the state"``.

    Returns
    -------
    dict
        ``explainer``, ``game`` (None for the model's own), ``players``,
        ``link``, ``baseline``, ``trained``, ``mask_null_players`` (the
        constructor's keywords after ``model``), ``history`` and ``source``
        (None for version 1 and for explainers not fitted on AnnData); networks
        in eval mode, in their saved dtype.

    Raises
    ------
    FastSHAPFileError
        (a ``ValueError``) If ``state`` is not a FastSHAP state, is of a
        newer version, fails its checksum, names an unknown game or holds
        invalid modules or settings.
    """
    _check_header(state, FASTSHAP_FORMAT, FASTSHAP_VERSION, where, None)
    if CHECKSUM_KEY in state:
        _check_checksum(state, where)
    return _arguments(state, model, map_location, where)


def _arguments(state: dict, model: Callable, map_location: Any, where: str) -> dict[str, Any]:
    """:func:`fastshap_arguments` of a state whose header and checksum are checked."""
    device = torch.device(map_location) if map_location is not None else module_device(
        model, torch.device("cpu"))
    _check_device(device)
    try:
        config = state["config"]
        explainer = module_from_state(state["explainer"], device, where, "explainer")
        players = Players.from_config(config["players"])
        kind, link, batch = config["game"], config["game_link"], config["game_batch_size"]
        if kind == "model":
            game = None
        elif kind == "surrogate":
            sur = module_from_state(state["surrogate"], device, where, "surrogate")
            game = SurrogateGame(sur, link=link, batch_size=batch)
        elif kind == "marginal":
            game = MarginalGame(model, state["background"].to(device), players,
                                weights=state["weights"], link=link, batch_size=batch)
        elif kind == "baseline":
            game = BaselineGame(model, players, baseline=state["game_baseline"], link=link,
                                batch_size=batch)
        else:
            raise ValueError(f"unknown game {kind!r}")
        if not isinstance(config["trained"], bool) or not isinstance(
                config.get("mask_null_players", False), bool):
            raise ValueError("`trained` and `mask_null_players` must be booleans")
        history = config.get("history") or {}
        if not isinstance(history, dict):
            raise ValueError(f"history must be a dictionary, got {type(history).__name__}")
        source = _check_source(config.get("source"), explainer.n_features)
        baseline = state["baseline"]
        if not isinstance(baseline, torch.Tensor):
            raise ValueError(f"baseline must be a tensor, got {type(baseline).__name__}")
    except FastSHAPFileError:
        raise
    except _OOM:
        raise
    except _LOADED as err:
        raise FastSHAPFileError(
            f"{where!r} is damaged or not a valid FastSHAP file: {_text(err)}.") from err
    return {"explainer": explainer, "game": game, "players": players, "link": config["link"],
            "baseline": baseline, "trained": config["trained"],
            "mask_null_players": bool(config.get("mask_null_players", False)),
            "history": dict(history), "source": source}


def save_fastshap(fs: Any, path: str | os.PathLike, overwrite: bool = False) -> None:
    """Write :func:`fastshap_state` of ``fs`` and its checksum to ``path``, atomically.

    Parameters
    ----------
    fs : FastSHAP
        See :func:`fastshap_state`.
    path : str or os.PathLike, or a writable binary file object
        Destination file.
    overwrite : bool
        Replace an existing file. Default False: ``FileExistsError``.

    Raises
    ------
    TypeError
        As :func:`fastshap_state`, or for a history that cannot be stored.
    FileExistsError
        If ``path`` exists and ``overwrite`` is False.
    OSError, RuntimeError
        If writing fails: an existing file is left unchanged.
    """
    _write(_with_checksum(fastshap_state(fs)), path, overwrite=overwrite)


def read_fastshap(path: str | os.PathLike, model: Callable,
                  map_location: str | torch.device | None = None) -> dict[str, Any]:
    """:func:`fastshap_arguments` of the file ``path`` written by :func:`save_fastshap`.

    Raises
    ------
    FastSHAPFileError
        (a ``ValueError``) For a file that cannot be read as a FastSHAP file,
        whatever the reason (see the module docstring); the message names it.
    FileNotFoundError, IsADirectoryError
        If ``path`` does not exist or is a directory.
    """
    blob = _read(path, FASTSHAP_FORMAT, FASTSHAP_VERSION)
    return _arguments(blob, model, map_location, _where(path))
