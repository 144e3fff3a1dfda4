"""Where a model lives: the device and floating dtype of its parameters and buffers."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["module_device", "module_dtype"]


def _first_tensor(module: Any, floating: bool) -> Tensor | None:
    if isinstance(module, nn.Module):
        for t in module.parameters():
            if t.is_floating_point() or not floating:
                return t
        for t in module.buffers():
            if t.is_floating_point() or not floating:
                return t
    return None


def module_device(module: Any, fallback: torch.device | str | None = None) -> torch.device:
    """The device of ``module``'s first parameter (else buffer), or ``fallback``.

    Parameters
    ----------
    module : nn.Module or callable
        A callable that is not a module has no device.
    fallback : torch.device or str, optional
        Returned when ``module`` has no parameters or buffers. Default None:
        ``torch.device("cpu")``.

    Returns
    -------
    torch.device
    """
    t = _first_tensor(module, floating=False)
    if t is not None:
        return t.device
    return torch.device("cpu") if fallback is None else torch.device(fallback)


def module_dtype(module: Any, fallback: torch.dtype) -> torch.dtype:
    """The dtype of ``module``'s first floating parameter (else buffer), or ``fallback``."""
    t = _first_tensor(module, floating=True)
    return t.dtype if t is not None else fallback
