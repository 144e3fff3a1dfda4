"""Autograd inside ``torch.no_grad()`` and ``torch.inference_mode()``.

Users call attribution inside evaluation loops that switch autograd off.
Methods that need gradients (DeepLIFT's backward pass, FastSHAP's training)
run their own work inside :func:`autograd_enabled` and pass the user's tensors
through :func:`autograd_tensors`, so they work under either mode. The
caller's grad mode and inference mode are restored on exit, also after an
error; the user's tensors and model are never modified (inference tensors
are copied, not converted in place).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor

__all__ = ["autograd_enabled", "autograd_tensors"]


@contextlib.contextmanager
def autograd_enabled() -> Iterator[None]:
    """Grad mode on and inference mode off inside the block.

    Equivalent to ``torch.inference_mode(False)`` plus ``torch.enable_grad()``;
    both of the caller's settings come back on exit, also after an error.
    """
    with torch.inference_mode(False), torch.enable_grad():
        yield


def autograd_tensors(obj: Any) -> Any:
    """``obj`` with every inference tensor replaced by an ordinary copy.

    Tensors created under ``torch.inference_mode()`` cannot take part in
    autograd ("Inference tensors cannot be saved for backward"). Call this
    inside :func:`autograd_enabled`: each inference tensor is cloned (same
    values, dtype and device) into an ordinary tensor; tuples, lists and dict
    values are walked; anything else (ordinary tensors included) is returned
    as it is, so nothing is copied in the common case.

    Parameters
    ----------
    obj
        A tensor, or a tuple/list/dict holding tensors, or any other value.

    Returns
    -------
    The same structure, with inference tensors replaced by copies.
    """
    if isinstance(obj, Tensor):
        if obj.is_inference():
            with torch.inference_mode(False):
                return obj.clone()
        return obj
    if isinstance(obj, tuple):
        items = tuple(autograd_tensors(v) for v in obj)
        return type(obj)(*items) if hasattr(obj, "_fields") else items
    if isinstance(obj, list):
        return [autograd_tensors(v) for v in obj]
    if isinstance(obj, dict):
        return {k: autograd_tensors(v) for k, v in obj.items()}
    return obj
