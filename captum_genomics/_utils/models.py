"""Loading a user's model: ``MODULE_OR_FILE:NAME`` plus an optional weights file.

One loader for every entry point (the CLI's ``--model``/``--weights``, the
validation suite's ``--model``/``--weights``), so they accept the same specs
and the same weight files.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import pickle
import re
import sys
from pathlib import Path
from typing import Any

import torch
from torch import nn

__all__ = ["ModelSpecError", "import_model_module", "load_user_model", "load_state_dict_file"]

_STATE_KEYS = ("state_dict", "model_state_dict")


class ModelSpecError(ValueError):
    """A model spec or weights file that cannot be used; the message says what to fix."""


def import_model_module(where: str, option: str = "--model"):
    """Import ``where``: a dotted module name, or the path of a ``.py`` file.

    A dotted name is looked up with the working directory on ``sys.path`` (console
    scripts do not put it there). A file is imported under a private module name.

    Raises
    ------
    ModelSpecError
        If the file does not exist or importing fails; the message starts with ``option``.
    """
    if where.endswith(".py") or os.sep in where or (os.altsep and os.altsep in where):
        path = Path(where)
        if not path.is_file():
            raise ModelSpecError(f"{option}: no such Python file {where!r}.")
        name = f"_captum_genomics_user_{path.stem}"
        module_spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[name] = module
        try:
            module_spec.loader.exec_module(module)
        except Exception as err:
            sys.modules.pop(name, None)
            raise ModelSpecError(
                f"{option}: importing {where!r} failed: {type(err).__name__}: {err}") from err
        return module
    added = os.getcwd() not in sys.path
    if added:
        sys.path.insert(0, os.getcwd())
    try:
        return importlib.import_module(where)
    except Exception as err:
        raise ModelSpecError(
            f"{option}: cannot import module {where!r} ({type(err).__name__}: {err}); "
            "give an importable module name or a path to a .py file."
        ) from err
    finally:
        if added:
            sys.path.remove(os.getcwd())


def load_state_dict_file(model: nn.Module, weights: str | os.PathLike,
                         option: str = "--weights") -> None:
    """Load a weights file into ``model`` (in place), strictly.

    The file is read with ``torch.load(weights_only=True)`` (no pickled code
    runs) and may hold the state dict itself or a checkpoint dict with it
    under ``"state_dict"`` or ``"model_state_dict"`` (Lightning and common
    training loops).

    Raises
    ------
    ModelSpecError
        If the file is missing, a folder, empty, damaged, not a PyTorch file,
        a pickled whole model (with how to save a state dict instead), not a
        state dict, or its keys or shapes do not match the model. Messages are
        one plain line (no terminal colour codes).
    """
    where = repr(os.fspath(weights))
    if os.path.isdir(weights):
        raise ModelSpecError(f"{option}: {where} is a folder, not a weights file.")
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ModelSpecError(f"{option}: no such file {where}.") from None
    except pickle.UnpicklingError as err:
        if "weights_only" in str(err) or "Weights only" in str(err):
            raise ModelSpecError(
                f"{option}: {where} holds pickled Python objects (a whole model saved with "
                "`torch.save(model, ...)`?), which are not loaded because unpickling can run "
                "code. Save the weights with `torch.save(model.state_dict(), path)` and pass "
                "that file."
            ) from None
        raise ModelSpecError(f"{option}: {where} is damaged or not a PyTorch file.") from None
    except Exception as err:
        if os.path.getsize(weights) == 0:
            raise ModelSpecError(f"{option}: {where} is empty (0 bytes).") from None
        # KeyError/EOFError from torch's reader carry a byte or nothing: not worth showing
        detail = "" if isinstance(err, (KeyError, EOFError)) else f" ({_plain(str(err))})"
        raise ModelSpecError(
            f"{option}: {where} is damaged or not a PyTorch weights file{detail}."
        ) from None
    for key in _STATE_KEYS:
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor)
                                              for v in state.values()):
        raise ModelSpecError(
            f"{option}: {where} does not hold a state dict (a mapping of names to tensors), "
            f"got {type(state).__name__}. Save it with `torch.save(model.state_dict(), path)`."
        )
    try:
        model.load_state_dict(state)
    except Exception as err:
        raise ModelSpecError(
            f"{option}: the weights in {where} do not fit the model "
            f"({type(err).__name__}: {_plain(str(err))})."
        ) from None


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _plain(text: str, limit: int = 600) -> str:
    """``text`` without terminal colour codes, on one line, at most ``limit`` characters."""
    text = " ".join(_ANSI.sub("", text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def load_user_model(spec: str, weights: str | os.PathLike | None = None, *,
                    option: str = "--model", weights_option: str = "--weights") -> nn.Module:
    """Build a user model from ``MODULE_OR_FILE:NAME`` and load its weights.

    Parameters
    ----------
    spec : str
        ``"package.module:name"`` or ``"path/to/file.py:name"``. ``name`` is a
        ``torch.nn.Module`` instance, or a factory called with no arguments
        that returns one.
    weights : str or PathLike, optional
        A state dict saved with ``torch.save(model.state_dict(), path)``, or a
        checkpoint dict holding it under ``"state_dict"`` /
        ``"model_state_dict"``. Default None: keep the model's own weights.
    option, weights_option : str
        The names of the user's options, used in error messages.

    Returns
    -------
    torch.nn.Module
        On the CPU, in eval mode.

    Raises
    ------
    ModelSpecError
        If the spec is malformed, the module or name is missing, the factory
        fails or does not return a module, or the weights do not load.
    """
    module_name, sep, name = spec.rpartition(":")
    if not sep or not module_name or not name or not name.isidentifier():
        raise ModelSpecError(
            f"{option} must look like 'package.module:factory' or 'path/to/file.py:factory', "
            f"got {spec!r}."
        )
    module = import_model_module(module_name, option)
    obj: Any = getattr(module, name, None)
    if isinstance(obj, nn.Module):
        model = obj
    else:
        if not callable(obj):
            raise ModelSpecError(f"{option}: {module_name!r} has no callable {name!r}.")
        try:
            model = obj()
        except Exception as err:
            raise ModelSpecError(
                f"{option}: calling {name}() failed: {type(err).__name__}: {err}") from err
        if not isinstance(model, nn.Module):
            raise ModelSpecError(
                f"{option}: {name}() returned {type(model).__name__}, expected a torch.nn.Module."
            )
    if weights is not None:
        load_state_dict_file(model, weights, weights_option)
    return model.cpu().eval()
