"""A model wrapper whose input gradients come out corrected (off-simplex part removed).

:class:`GradientCorrectedModel` puts an identity op with a corrected backward in
front of the user's model. Because the correction is linear, every Captum
gradient method run on the wrapped model returns exactly its corrected version:

- ``Saliency(abs=False)`` -> the corrected gradient;
- ``InputXGradient`` -> ``x * corrected g``;
- ``IntegratedGradients`` -> ``(x - b) *`` the path mean of the corrected gradient;
- ``GradientShap`` -> ``mean_i (x - b_i) * corrected g_i``.

Attributions of the form ``sum_b (x - r) * g`` with ``x`` and ``r`` both on the
simplex (one-hot ``x``; one-hot, shuffled or uniform ``r``) are unchanged when
summed over bases, since ``x - r`` sums to 0 per position.

Reference: Majdandzic A., Rajesh C. & Koo P. K. "Correcting gradient-based
interpretations of deep neural networks for genomics." Genome Biology 24, 109 (2023).
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch
from torch import Tensor, nn

from captum_genomics._utils.checks import check_tensor
from captum_genomics.gradients.correction import correct_gradients, off_simplex_angle

__all__ = ["GradientCorrectedModel", "AngleRecord", "CorrectGradient", "corrected"]

_LAYOUTS = ("step_major", "example_major")


class AngleRecord:
    """Off-simplex angles of the gradients corrected while recording.

    ``angles`` holds one tensor per backward pass through the wrapper, each
    ``shape=(R, *rest)`` in degrees (``R`` rows of that batch; ``rest`` the input's
    axes after the alphabet axis, e.g. ``(L,)``), detached, on the gradient's
    device and dtype. A record is bound at forward time: a backward run after the
    ``with`` block still lands in the record of the forward that built the graph.
    """

    def __init__(self) -> None:
        self.angles: list[Tensor] = []

    def __len__(self) -> int:
        return len(self.angles)

    def mean_angle(self, n_examples: int | None = None, layout: str = "step_major") -> Tensor:
        """Per-example mean angle, in degrees, over positions, rows and backward calls.

        Each recorded batch of ``R`` rows is mapped to ``n_examples`` examples,
        then every row's mean over positions is averaged per example (all rows
        and calls weigh equally; IG's Riemann weights are not applied).

        Parameters
        ----------
        n_examples
            ``N``, the number of examples the user passed. Default None: every
            recorded batch must have the same row count, which is taken as ``N``
            (right for Saliency / InputXGradient; for methods that expand the
            batch, pass ``N``).
        layout
            How Captum laid out an expanded batch of ``R = k * N`` rows:
            ``"step_major"`` (default; row ``r`` is example ``r % N``) for
            IntegratedGradients (``n_steps`` blocks of ``N``, also per
            ``internal_batch_size`` chunk), or ``"example_major"`` (row ``r`` is
            example ``r // k``) for NoiseTunnel and GradientShap
            (``repeat_interleave``). The two agree when ``R == N``.

        Returns
        -------
        Tensor
            ``shape=(N,)``, degrees, the recorded dtype and device.

        Raises
        ------
        RuntimeError
            If nothing was recorded.
        ValueError
            For an unknown ``layout``, a bad ``n_examples``, a row count not a
            multiple of ``n_examples``, or unequal row counts with ``n_examples=None``.
        """
        if not self.angles:
            raise RuntimeError(
                "No angles recorded: run a backward pass through the wrapped model inside "
                "`record_angles()`."
            )
        if layout not in _LAYOUTS:
            raise ValueError(f"`layout` must be one of {_LAYOUTS}, got {layout!r}.")
        rows = [a.shape[0] for a in self.angles]
        if n_examples is None:
            if len(set(rows)) != 1:
                raise ValueError(
                    f"`n_examples` is needed: recorded batches have different row counts "
                    f"{sorted(set(rows))}; pass the number of examples you attributed."
                )
            n_examples = rows[0]
        if isinstance(n_examples, bool) or not isinstance(n_examples, int) or n_examples < 1:
            raise ValueError(f"`n_examples` must be an integer >= 1, got {n_examples!r}.")
        total = None
        count = 0
        for a in self.angles:
            r = a.shape[0]
            if r % n_examples:
                raise ValueError(
                    f"`n_examples`={n_examples} does not divide a recorded batch of {r} rows."
                )
            k = r // n_examples
            per_row = a.reshape(r, -1).mean(dim=1)
            if layout == "step_major":
                s = per_row.reshape(k, n_examples).sum(dim=0)
            else:
                s = per_row.reshape(n_examples, k).sum(dim=1)
            total = s if total is None else total + s
            count += k
        return total / count


class CorrectGradient(torch.autograd.Function):
    """Identity in forward; :func:`correct_gradients` (alphabet axis 1) in backward.

    ``CorrectGradient.apply(x, record)``: ``x`` ``shape=(N, 4, ...)``, float;
    ``record`` an :class:`AngleRecord` or None. When given, the off-simplex
    angle of each incoming gradient (before correction) is appended to it.
    The backward is built from differentiable ops, so higher-order gradients work.
    """

    @staticmethod
    def forward(ctx, x: Tensor, record: AngleRecord | None) -> Tensor:  # noqa: D102
        ctx.record = record
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad_output: Tensor):  # noqa: D102
        if ctx.record is not None:
            ctx.record.angles.append(off_simplex_angle(grad_output.detach(), dim=1))
        return correct_gradients(grad_output, dim=1), None


class GradientCorrectedModel(nn.Module):
    """Wrap a one-hot model so that gradients w.r.t. its input are corrected.

    ``forward(x, *args, **kwargs) == model(x, *args, **kwargs)`` exactly; only the
    gradient w.r.t. ``x`` changes: at each position the mean over the 4 bases is
    subtracted (Majdandzic, Rajesh & Koo, Genome Biology 24:109, 2023). Use the
    wrapper as Captum's ``forward_func``; see the module docstring for what each
    Captum method then returns.

    The user's model is held as the submodule ``model`` and never modified: no
    hooks, no attributes written. The wrapper starts in the model's
    training/eval state; ``eval()`` / ``train()`` on the wrapper propagate to the
    model as for any ``nn.Module`` container.

    Parameters
    ----------
    model
        An ``nn.Module`` taking one-hot sequences ``shape=(N, 4, L)`` (alphabet
        axis 1) as its first argument.

    Raises
    ------
    TypeError
        If ``model`` is not an ``nn.Module``.

    Examples
    --------
    >>> wrapped = GradientCorrectedModel(model.eval())
    >>> with wrapped.record_angles() as rec:
    ...     attr = IntegratedGradients(wrapped).attribute(x, target=0, n_steps=16)
    >>> rec.mean_angle(n_examples=len(x), layout="step_major")  # (N,) degrees
    """

    def __init__(self, model: nn.Module) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"`model` must be a torch.nn.Module, got {type(model).__name__}.")
        super().__init__()
        self.model = model
        self.training = model.training
        self._record: AngleRecord | None = None

    def forward(self, x: Tensor, *args, **kwargs):
        """``model(x, *args, **kwargs)`` with the gradient w.r.t. ``x`` corrected.

        Raises
        ------
        TypeError
            If ``x`` is not a floating tensor.
        ValueError
            If ``x`` has fewer than 2 axes or axis 1 is not of size 4.
        """
        check_tensor(x, "inputs")
        if not x.is_floating_point():
            raise TypeError(f"`inputs` must have a floating dtype, got {x.dtype}.")
        if x.ndim < 2 or x.shape[1] != 4:
            raise ValueError(
                f"`inputs` must be one-hot sequences of shape (N, 4, L) (alphabet axis 1 of "
                f"size 4), got shape {tuple(x.shape)}."
            )
        return self.model(CorrectGradient.apply(x, self._record), *args, **kwargs)

    @contextlib.contextmanager
    def record_angles(self) -> Iterator[AngleRecord]:
        """Record the off-simplex angle of every gradient corrected in this block.

        Yields a fresh :class:`AngleRecord`; nested blocks record into the
        innermost one and restore the outer one on exit (also after an error).
        """
        previous, record = self._record, AngleRecord()
        self._record = record
        try:
            yield record
        finally:
            self._record = previous


def corrected(method_cls, model: nn.Module, **kwargs):
    """``method_cls(GradientCorrectedModel(model), **kwargs)``, e.g. ``corrected(Saliency, m)``.

    ``method_cls`` is a Captum attribution class taking a forward function first.
    """
    return method_cls(GradientCorrectedModel(model), **kwargs)
