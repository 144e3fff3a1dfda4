"""Saturation mutagenesis: the change of each target output for every single-base edit.

The functional core behind :class:`~captum_genomics.InSilicoMutagenesis`:
:func:`edit_changes` enumerates the edits (:mod:`~captum_genomics.ism.edits`),
runs them on the fast path (:mod:`~captum_genomics.ism.fast`) when it applies
and pays, else on the naive path (:mod:`~captum_genomics.ism.naive`), and
returns ``f(edited) - f(original)`` for every (base, position), one tensor per
target, from the same forward passes.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Any, Callable, Literal, Sequence

import torch
from torch import Tensor

from captum_genomics._utils.batching import index_examples
from captum_genomics._utils.targets import make_selector
from captum_genomics.ism.edits import EditBatch, edit_batches, observed_bases, sequence_chunks
from captum_genomics.ism.fast import FastISM, FastPathUnsupported, build_fast_ism
from captum_genomics.ism.naive import NaiveISM

__all__ = ["FastPathReport", "edit_changes", "MIN_SPEEDUP"]

#: With ``fast="auto"`` the fast path is used only when its estimated
#: multiply-adds per edit are at most ``1 / MIN_SPEEDUP`` of a full forward.
MIN_SPEEDUP = 1.5

#: Relative tolerance of the fast path's check against full forwards, by dtype
#: (relative to the largest output of the checked edits).
_CHECK_TOLERANCE = {torch.float64: 1e-9, torch.float32: 1e-4}


@dataclass(frozen=True)
class FastPathReport:
    """Which path computed the edits, and why.

    Attributes
    ----------
    used : bool
        True when the fast path computed the edits.
    note : str
        The reason the naive path was used, or a summary of the fast path
        (local nodes, estimated multiply-adds per edit).
    estimated_speedup : float or None
        Full-forward over fast-path multiply-adds per edit (convolutions and
        linear layers), when the model was planned.
    setup_seconds : float
        Wall time spent choosing the path: tracing and planning the model and
        checking the fast path against full forwards (0 when not tried).
    """

    used: bool
    note: str
    estimated_speedup: float | None = None
    setup_seconds: float = 0.0


def _select_all(selectors: list[Callable], out: Any) -> Tensor:
    return torch.stack([s(out) for s in selectors])  # (T, B)


def edit_changes(
    forward_func: Callable,
    x: Tensor,
    targets: Sequence[Any],
    extra: tuple = (),
    start: int = 0,
    end: int | None = None,
    batch_size: int = 64,
    fast: bool | Literal["auto"] = "auto",
    show_progress: bool = False,
) -> tuple[list[Tensor], FastPathReport]:
    """``f(edited) - f(original)`` of every target for every single-base edit.

    Parameters
    ----------
    forward_func : callable
        ``forward_func(x (B, A, L), *extra)`` returning outputs indexed by
        Captum targets. In eval mode (checked by the caller).
    x : Tensor ``(N, A, L)``
        One-hot sequences on the model's device and in its dtype (checked by
        the caller); all-zero columns are ``N``.
    targets : sequence
        Captum targets (see :func:`~captum_genomics._utils.targets.make_selector`),
        all computed from the same forward passes.
    extra : tuple
        ``additional_forward_args`` (Captum's rule: tensors with first axis
        ``N`` hold one row per example). Default ``()``.
    start, end : int
        Edit positions ``start <= l < end``. Default the whole sequence.
    batch_size : int
        Edited sequences per forward pass of the naive path. A step of the
        fast path holds ``batch_size * engine.step_factor`` edits (see
        :meth:`~captum_genomics.ism.fast.FastISM._step_factor`): no more
        activations than a naive batch. Default 64.
    fast : bool or "auto"
        ``True``: the fast path whenever the model supports it; ``"auto"``
        (default): also skip it when the job is a single batch or the
        estimated gain is below :data:`MIN_SPEEDUP`; ``False``: always full
        forwards. The fast path is checked against full forwards on the edits
        at three positions of the first sequence before it is used.
    show_progress : bool
        A tqdm bar over edited sequences. Default False.

    Returns
    -------
    changes : list of Tensor ``(N, A, L)``
        One per target, in ``x``'s dtype and device: 0 at the observed base
        and outside ``[start, end)``.
    report : FastPathReport
    """
    n, a, length = x.shape
    end = length if end is None else end
    with torch.no_grad():
        y0 = _original_outputs(forward_func, x, targets, extra, batch_size)
        observed = observed_bases(x)
        n_edits = int(((observed[:, start:end] < a).sum() * (a - 1)
                       + (observed[:, start:end] == a).sum() * a).item())
        tic = time.perf_counter()
        engine, report = _choose(forward_func, x, extra, observed, start, end, batch_size, fast,
                                 n_edits)
        report = dataclasses.replace(report, setup_seconds=time.perf_counter() - tic)
        changes = [torch.zeros(n, a, length, dtype=x.dtype, device=x.device) for _ in targets]
        try:
            _run(engine, x, extra, observed, start, end, batch_size, targets, y0, changes,
                 n_edits, show_progress)
        except Exception as error:  # noqa: BLE001 - the naive path is the reference
            if not isinstance(engine, FastISM):
                raise
            report = FastPathReport(False, f"the fast path raised {type(error).__name__}: "
                                    f"{str(error)[:200]}", report.estimated_speedup,
                                    report.setup_seconds)
            engine = NaiveISM(forward_func, x, extra)
            _run(engine, x, extra, observed, start, end, batch_size, targets, y0, changes,
                 n_edits, show_progress)
    return changes, report


def _original_outputs(forward_func, x, targets, extra, batch_size) -> Tensor:
    n = x.shape[0]
    parts = []
    for lo in range(0, n, batch_size):
        rows = torch.arange(lo, min(lo + batch_size, n))
        out = forward_func(x[lo:lo + len(rows)], *index_examples(extra, rows, n, x.device))
        parts.append(_select_all([make_selector(t, rows, n) for t in targets], out))
    return torch.cat(parts, 1)  # (T, N)


def _choose(forward_func, x, extra, observed, start, end, batch_size, fast, n_edits):
    if fast is False:
        return NaiveISM(forward_func, x, extra), FastPathReport(False, "fast=False")
    if fast == "auto" and n_edits <= batch_size:
        return NaiveISM(forward_func, x, extra), FastPathReport(
            False, f"fast='auto': {n_edits} edits fit in one batch")
    n = x.shape[0]
    try:
        engine = build_fast_ism(forward_func, x[:1], extra, n, start, end)
    except FastPathUnsupported as error:
        return NaiveISM(forward_func, x, extra), FastPathReport(False, str(error))
    speedup = engine.naive_macs / max(engine.fast_macs, 1)
    if fast == "auto" and speedup < MIN_SPEEDUP:
        return NaiveISM(forward_func, x, extra), FastPathReport(
            False, f"fast='auto': estimated speed-up {speedup:.2f}x < {MIN_SPEEDUP}x", speedup)
    reason = _check(engine, forward_func, x, extra, observed, start, end)
    if reason is not None:
        return NaiveISM(forward_func, x, extra), FastPathReport(False, reason, speedup)
    return engine, FastPathReport(
        True, f"fast path: {engine.n_local} position-local nodes, estimated {speedup:.1f}x "
        "fewer multiply-adds per edit", speedup)


def _check(engine: FastISM, forward_func, x, extra, observed, start, end) -> str | None:
    """Compare the fast path with full forwards at three positions of the first sequence."""
    n, a, _ = x.shape
    picks = sorted({start, (start + end) // 2, end - 1})
    batches = [b for b in edit_batches(observed, 0, 1, start, end, a, 4 * a)]
    keep = []
    for b in batches:
        mask = torch.isin(b.pos, torch.tensor(picks))
        if mask.any():
            keep.append(EditBatch(b.seq[mask], b.pos[mask], b.old[mask], b.new[mask]))
    naive = NaiveISM(forward_func, x, extra)
    try:
        engine.set_sequences(x[:1], 0, index_examples(extra, torch.zeros(1, dtype=torch.long),
                                                      n, x.device))
        for b in keep:
            fast_out, slow_out = engine.forward(b), naive.forward(b)
            for f, s in zip(_leaves(fast_out), _leaves(slow_out)):
                if f.shape != s.shape:
                    return (f"the fast path gave outputs of shape {tuple(f.shape)}, full "
                            f"forwards {tuple(s.shape)}")
                scale = max(float(s.abs().max()), 1e-30) if s.numel() else 1.0
                err = float((f.double() - s.double()).abs().max()) if s.numel() else 0.0
                tol = _CHECK_TOLERANCE.get(s.dtype, 1e-2) * max(scale, 1.0)
                if not err <= tol:
                    return (f"the fast path differed from full forwards by {err:.3g} "
                            f"(tolerance {tol:.3g}) on a check batch")
    except FastPathUnsupported as error:
        return str(error)
    except Exception as error:  # noqa: BLE001 - never let the fast path break a call
        return f"the fast path raised {type(error).__name__}: {str(error)[:200]}"
    return None


def _leaves(out: Any) -> list[Tensor]:
    if isinstance(out, Tensor):
        return [out]
    if isinstance(out, (tuple, list)):
        return [t for o in out for t in _leaves(o)]
    if isinstance(out, dict):
        return [t for o in out.values() for t in _leaves(o)]
    return []


def _run(engine, x, extra, observed, start, end, batch_size, targets, y0, changes, n_edits,
         show_progress) -> None:
    n, a, length = x.shape
    fast = isinstance(engine, FastISM)
    if fast:  # a step of the fast path holds windows: more edits fit in the same memory
        batch_size = batch_size * engine.step_factor
    chunks = sequence_chunks(n, n_edits // max(n, 1), batch_size) if fast else [(0, n)]
    bar = None
    if show_progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=n_edits, desc="InSilicoMutagenesis", unit="edit")
    try:
        for lo, hi in chunks:
            if fast:
                engine.set_sequences(x[lo:hi], lo, index_examples(
                    extra, torch.arange(lo, hi), n, x.device))
            for batch in edit_batches(observed, lo, hi, start, end, a, batch_size):
                rows = batch.row_seq()
                out = engine.forward(batch)
                values = _select_all([make_selector(t, rows, n) for t in targets], out)
                pos = batch.pos.repeat_interleave(batch.per_group)
                new = batch.new.reshape(-1)
                dev = values.device
                diff = values - y0[:, rows.to(dev)]
                for t, c in enumerate(changes):
                    c[rows.to(c.device), new.to(c.device), pos.to(c.device)] = diff[t].to(c)
                if bar is not None:
                    bar.update(batch.n_rows)
    finally:
        if bar is not None:
            bar.close()
