"""Saving and loading trained FastSHAP surrogates and explainers.

One file per module, written with ``torch.save`` as a plain dictionary::

    {"format": "captum_genomics.fastshap", "version": 1,
     "class": "MLPExplainer" | "MaskedSurrogate",
     "config": {...JSON-able constructor arguments...},
     "dtype": "float32", "metadata": {...JSON-able...},
     "state_dict": {name: tensor}}

and read back with ``torch.load(path, weights_only=True)``: no pickled code is
executed, so files from others are safe to open.
"""

from __future__ import annotations

import json
import os
from typing import Any

import torch
from torch import nn

from captum_genomics.fastshap.explainer import MLPExplainer
from captum_genomics.fastshap.players import Players
from captum_genomics.fastshap.surrogate import MaskedSurrogate

__all__ = ["save_module", "load_module", "FORMAT", "VERSION"]

FORMAT = "captum_genomics.fastshap"
VERSION = 1
_CLASSES = {"MLPExplainer": MLPExplainer, "MaskedSurrogate": MaskedSurrogate}


def save_module(module: nn.Module, path: str | os.PathLike,
                metadata: dict[str, Any] | None = None) -> None:
    """Write a trained explainer or surrogate (weights + config) to one file.

    Parameters
    ----------
    module
        An :class:`~captum_genomics.fastshap.explainer.MLPExplainer` or
        :class:`~captum_genomics.fastshap.surrogate.MaskedSurrogate`.
    path
        Destination file (conventionally ``.pt``); overwritten.
    metadata
        Optional JSON-able dictionary stored beside the config (e.g. training
        history, data description, link, seed). Default None.

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
    torch.save({"format": FORMAT, "version": VERSION, "class": name, "config": config,
                "dtype": str(dtype).replace("torch.", ""), "metadata": metadata,
                "state_dict": state}, path)


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
        If the file is not in this format or is of a newer version.
    """
    blob = torch.load(path, map_location=map_location, weights_only=True)
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise ValueError(f"{os.fspath(path)!r} is not a {FORMAT} file.")
    if int(blob.get("version", 0)) > VERSION:
        raise ValueError(
            f"{os.fspath(path)!r} has format version {blob['version']}; this captum_genomics "
            f"reads up to {VERSION}. Upgrade the package."
        )
    cls_name = blob["class"]
    if cls_name not in _CLASSES:
        raise ValueError(f"{os.fspath(path)!r} holds an unknown module class {cls_name!r}.")
    config = dict(blob["config"])
    if cls_name == "MaskedSurrogate":
        config["players"] = Players.from_config(config["players"])
    dtype = getattr(torch, str(blob.get("dtype", "float32")), None)
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise ValueError(f"{os.fspath(path)!r} names an invalid dtype {blob.get('dtype')!r}.")
    module = _CLASSES[cls_name](**config)
    module.to(dtype)
    module.load_state_dict(blob["state_dict"])
    if map_location is not None:
        module.to(map_location)
    module.eval()
    return (module, blob["metadata"]) if return_metadata else module
