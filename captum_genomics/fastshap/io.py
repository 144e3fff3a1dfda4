"""Saving and loading trained FastSHAP networks, alone or as a whole ``FastSHAP``.

A module (explainer or surrogate) is stored as a plain dictionary,
:func:`module_state`::

    {"format": "captum_genomics.fastshap", "version": 1,
     "class": "MLPExplainer" | "MaskedSurrogate",
     "config": {...JSON-able constructor arguments...},
     "dtype": "float32", "metadata": {...JSON-able...},
     "state_dict": {name: tensor}}

written alone by :func:`save_module`, or inside the file of
:meth:`FastSHAP.save <captum_genomics.FastSHAP.save>` (:func:`fastshap_state`)::

    {"format": "captum_genomics.FastSHAP", "version": 1,
     "explainer": {...module state...}, "baseline": tensor,
     "surrogate": {...module state...} | None, "background": tensor | None,
     "weights": tensor | None, "game_baseline": tensor | None,
     "config": {"game": "model" | "surrogate" | "marginal" | "baseline",
                "link", "game_link", "game_batch_size", "trained", "players",
                "history", "mask_null_players"}}

Both are read back with ``torch.load(path, weights_only=True)``: no pickled
code is executed, so files from others are safe to open. Files are written
atomically: under their own name in a temporary folder beside the destination
(``torch.save`` names the archive inside the file after it, so the bytes do not
depend on the temporary location), then moved into place with ``os.replace``;
a reader never sees a half-written file.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
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
    "FORMAT", "VERSION", "FASTSHAP_FORMAT", "FASTSHAP_VERSION",
]

FORMAT = "captum_genomics.fastshap"
"""The ``format`` tag of a module state."""
VERSION = 1
FASTSHAP_FORMAT = "captum_genomics.FastSHAP"
"""The ``format`` tag of files written by :meth:`FastSHAP.save <captum_genomics.FastSHAP.save>`."""
FASTSHAP_VERSION = 1
_CLASSES = {"MLPExplainer": MLPExplainer, "MaskedSurrogate": MaskedSurrogate}
_LOADED = (TypeError, ValueError, KeyError, RuntimeError)


# ----------------------------------------------------------------------------- files
def _where(path: Any) -> str:
    return os.fspath(path) if isinstance(path, (str, os.PathLike)) else "the file"


def _write(obj: dict, path: Any) -> None:
    """``torch.save(obj, path)``, atomically for a path (see the module docstring)."""
    if not isinstance(path, (str, os.PathLike)):
        torch.save(obj, path)  # a file object: written in place
        return
    directory, name = os.path.split(os.fspath(path))
    if not os.path.isdir(directory or "."):
        torch.save(obj, path)  # raises torch's own error for a missing folder
        return
    # The temporary path is the given one plus an ASCII folder name: torch.save
    # treats it exactly as it would `path` (archive name, non-ASCII paths).
    tmp_dir = os.path.join(directory, os.path.basename(
        tempfile.mkdtemp(prefix=".saving-", suffix=".tmp", dir=directory or ".")))
    try:
        tmp = os.path.join(tmp_dir, name)
        torch.save(obj, tmp)
        os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)


def _check_header(blob: Any, fmt: str, version: int, where: str, what: str | None,
                  hint: str = "") -> None:
    """Raise ValueError unless ``blob`` is a dict tagged ``fmt`` of at most ``version``."""
    if not isinstance(blob, dict) or blob.get("format") != fmt:
        if what is None:
            raise ValueError(f"{where!r} is not a {fmt} file{hint}.")
        raise ValueError(f"{where!r} does not hold a valid {what}.")
    if int(blob.get("version", 0)) > version:
        held = "has" if what is None else f"stores its {what} in"
        raise ValueError(
            f"{where!r} {held} format version {blob['version']}; this captum_genomics reads up "
            f"to {version}. Upgrade the package."
        )


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


def _build_module(state: dict, map_location: Any, where: str) -> nn.Module:
    cls_name = state["class"]
    if cls_name not in _CLASSES:
        raise ValueError(f"{where!r} holds an unknown module class {cls_name!r}.")
    config = dict(state["config"])
    if cls_name == "MaskedSurrogate":
        config["players"] = Players.from_config(config["players"])
    dtype = getattr(torch, str(state.get("dtype", "float32")), None)
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise ValueError(f"{where!r} names an invalid dtype {state.get('dtype')!r}.")
    module = _CLASSES[cls_name](**config)
    module.to(dtype)
    module.load_state_dict(state["state_dict"])
    if map_location is not None:
        module.to(map_location)
    module.eval()
    return module


def module_from_state(state: dict, map_location: str | torch.device | None = "cpu",
                      where: str = "the module state", what: str | None = None) -> nn.Module:
    """The module a :func:`module_state` dictionary describes (its inverse).

    Parameters
    ----------
    state : dict
        As returned by :func:`module_state` or read from a file.
    map_location : str or torch.device, optional
        Device of the module. Default ``"cpu"``; None leaves it where the
        weights are.
    where : str
        The file the state comes from, for the messages.
    what : str, optional
        For a state stored inside a larger file (e.g. ``"explainer"``): the
        messages name it, and any failure to build the module is reported as
        ``ValueError("... holds an invalid {what}: ...")``. Default None.

    Returns
    -------
    nn.Module
        The module in ``eval()`` mode, with the saved dtype and weights.

    Raises
    ------
    ValueError
        If ``state`` is not in this format, is of a newer version, names an
        unknown class or dtype (or, with ``what``, is invalid in any way).
    """
    _check_header(state, FORMAT, VERSION, where, what)
    if what is None:
        return _build_module(state, map_location, where)
    try:
        return _build_module(state, map_location, where)
    except _LOADED as err:
        raise ValueError(f"{where!r} holds an invalid {what}: {err}") from err


def save_module(module: nn.Module, path: str | os.PathLike,
                metadata: dict[str, Any] | None = None) -> None:
    """Write a trained explainer or surrogate (weights + config) to one file.

    Parameters
    ----------
    module
        An :class:`~captum_genomics.fastshap.explainer.MLPExplainer` or
        :class:`~captum_genomics.fastshap.surrogate.MaskedSurrogate`.
    path
        Destination file (conventionally ``.pt``); overwritten, atomically.
    metadata
        Optional JSON-able dictionary stored beside the config (e.g. training
        history, data description, link, random state). Default None.

    Raises
    ------
    TypeError
        If ``module`` is of another class, or ``metadata`` is not JSON-able.
    """
    _write(module_state(module, metadata), path)


def load_module(path: str | os.PathLike, map_location: str | torch.device | None = "cpu",
                return_metadata: bool = False):
    """Read a module written by :func:`save_module`.

    Parameters
    ----------
    path
        The file.
    map_location
        Device for the weights. Default ``"cpu"``.
    return_metadata
        Also return the stored metadata. Default False.

    Returns
    -------
    nn.Module or (nn.Module, dict)
        The module in ``eval()`` mode, with the saved dtype and weights.

    Raises
    ------
    ValueError
        If the file is not in this format, is of a newer version, or names an
        unknown class or dtype.
    """
    blob = torch.load(path, map_location=map_location, weights_only=True)
    module = module_from_state(blob, map_location, _where(path))
    return (module, blob["metadata"]) if return_metadata else module


# ----------------------------------------------------------------------------- a whole FastSHAP
def fastshap_state(fs: Any) -> dict:
    """The dictionary :meth:`FastSHAP.save <captum_genomics.FastSHAP.save>` writes.

    Parameters
    ----------
    fs : FastSHAP
        Its explainer, game, players, link, baseline, ``trained`` flag,
        history and ``mask_null_players`` are stored; not the model.

    Returns
    -------
    dict
        See the module docstring. The game is stored as ``"model"`` (the
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
                      "mask_null_players": fs.mask_null_players}
    return blob


def fastshap_arguments(state: dict, model: Callable,
                       map_location: str | torch.device | None = None,
                       where: str = "the state") -> dict[str, Any]:
    """The ``FastSHAP`` constructor arguments a :func:`fastshap_state` dictionary describes.

    Parameters
    ----------
    state : dict
        As returned by :func:`fastshap_state` or read from a file (tensors on
        the CPU).
    model : callable
        The model the explainer was trained for; the game is rebuilt around it.
    map_location : str or torch.device, optional
        Device of the explainer and surrogate. Default None: the model's
        device (CPU for a callable without parameters).
    where : str
        The file the state comes from, for the messages.

    Returns
    -------
    dict
        ``explainer``, ``game`` (None for the model's own), ``players``,
        ``link``, ``baseline``, ``trained``, ``mask_null_players`` (the
        constructor's keywords after ``model``) and ``history``; networks in
        eval mode, in their saved dtype.

    Raises
    ------
    ValueError
        If ``state`` is not a FastSHAP state, is of a newer version, names an
        unknown game or holds invalid modules.
    """
    _check_header(state, FASTSHAP_FORMAT, FASTSHAP_VERSION, where, None,
                  " (written by FastSHAP.save)")
    device = torch.device(map_location) if map_location is not None else module_device(
        model, torch.device("cpu"))
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
        raise ValueError(f"{where!r} names an unknown game {kind!r}.")
    return {"explainer": explainer, "game": game, "players": players, "link": config["link"],
            "baseline": state["baseline"], "trained": bool(config["trained"]),
            "mask_null_players": bool(config.get("mask_null_players", False)),
            "history": dict(config.get("history") or {})}


def save_fastshap(fs: Any, path: str | os.PathLike) -> None:
    """Write :func:`fastshap_state` of ``fs`` to ``path``, atomically (overwritten)."""
    _write(fastshap_state(fs), path)


def read_fastshap(path: str | os.PathLike, model: Callable,
                  map_location: str | torch.device | None = None) -> dict[str, Any]:
    """:func:`fastshap_arguments` of the file ``path`` written by :func:`save_fastshap`."""
    blob = torch.load(path, map_location="cpu", weights_only=True)
    return fastshap_arguments(blob, model, map_location, _where(path))
