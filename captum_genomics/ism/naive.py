"""The naive path: run the model on every edited sequence, in bounded batches."""

from __future__ import annotations

from typing import Any, Callable

from torch import Tensor

from captum_genomics._utils.batching import index_examples
from captum_genomics.ism.edits import EditBatch

__all__ = ["NaiveISM"]


class NaiveISM:
    """The model's output on the edited sequences of a batch, by full forward passes.

    Parameters
    ----------
    forward_func : callable
        ``forward_func(x (B, A, L), *additional_forward_args)``.
    x : Tensor ``(N, A, L)``
        The unedited sequences, on the model's device.
    extra : tuple
        ``additional_forward_args``; tensors whose first axis is ``N`` are
        indexed per edited sequence, other values passed unchanged.
    """

    def __init__(self, forward_func: Callable, x: Tensor, extra: tuple):
        self.forward_func, self.x, self.extra = forward_func, x, extra
        self.n = x.shape[0]

    def forward(self, batch: EditBatch) -> Any:
        """``forward_func`` on the ``G * E`` edited sequences of ``batch``."""
        rows = batch.row_seq()
        args = index_examples(self.extra, rows, self.n, self.x.device)
        return self.forward_func(batch.edited(self.x), *args)
