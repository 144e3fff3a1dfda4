"""Batched head ablation: every ablated variant of a model in one set of passes.

A *variant* is one ablated version of the model, described per adapter by a
keep mask (True = head kept as is). :func:`ablated_forward` runs all
``V`` variants on all ``N`` examples as ``V * N`` rows, (variant, example)
pairs, in chunks of ``batch_size`` rows: the adapters' hooks look up each
row's keep mask and replace the ablated heads of that row only. So the cost
is a few large passes, not ``V`` separate ones (or, as in AMICI, Hong et al.
2025, one pass per head and cell type).

Ablation modes: ``"zero"`` replaces an ablated head's values by 0, ``"mean"``
by their mean over a reference set (one pass over ``reference_inputs`` with
recording hooks; the mean is over the reference rows, the batch axis, only).

``include_full=True`` adds the unablated model to the same loop: its chunks of
examples run first, before the hooks are installed, so its output is bit for
bit that of a plain chunked forward (with PyTorch's fused attention path off,
as for the variants).

Fused attention: in eval mode without gradients PyTorch may run
``nn.TransformerEncoderLayer`` as one fused kernel that never calls its
``self_attn`` module (and ``nn.MultiheadAttention`` as a fused kernel with
different rounding). Every pass here, reference and unablated passes included,
runs inside :func:`~captum_genomics._utils.attention.fused_attention_disabled`,
which switches ``torch.backends.mha``'s fast path off and restores the
user's setting afterwards, also after an error. So the hooks always fire and
the unablated and ablated rows take the same kernels: differences between
them are the ablation's, not those of a fused kernel's rounding.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import Tensor, nn

from captum_genomics._utils.batching import as_forward_args, as_input_tuple, index_examples
from captum_genomics._utils.checks import check_eval_mode, check_positive_int
from captum_genomics._utils.deprecation import MISSING, renamed_keyword
from captum_genomics._utils.attention import fused_attention_disabled
from captum_genomics.heads.adapters import HeadAdapter

__all__ = [
    "ABLATIONS",
    "DEFAULT_BATCH_ROWS",
    "DEFAULT_CHUNK_BYTES",
    "MODES",
    "ablated_forward",
    "default_batch_size",
    "keep_masks",
    "reference_means",
]

MODES = ("zero", "mean")
"""Ablation modes: replace an ablated head by zeros, or by its reference mean."""

ABLATIONS = ("keep", "remove")
"""Variant kinds: keep one head (ablate the layer's others), or remove one head."""

DEFAULT_BATCH_ROWS = 4096
"""The most rows, (variant, example) pairs, per batched pass when ``batch_size`` is None."""

DEFAULT_CHUNK_BYTES = 8 * 2**20
"""Input bytes per batched pass when ``batch_size`` is None (see :func:`default_batch_size`)."""


def default_batch_size(inputs: Sequence[Tensor], args: Sequence[Any] = ()) -> int:
    """Rows per pass: about :data:`DEFAULT_CHUNK_BYTES` of gathered inputs, at most 4096.

    Each pass gathers its rows of the inputs into fresh tensors; on CPU a
    large fresh allocation costs more in page faults than the copy itself
    (measured: gathering 2800 rows of a ``(700, 9, 765)`` float32 input, 77 MB,
    takes 30x as long as 700 rows), so passes over ~8 MB of inputs are faster
    than one huge pass, and memory stays bounded.

    Parameters
    ----------
    inputs : sequence of Tensor ``(N, ...)``
    args : sequence
        Extra forward arguments; tensors count like inputs.

    Returns
    -------
    int
        ``clip(DEFAULT_CHUNK_BYTES // bytes_per_row, 1, DEFAULT_BATCH_ROWS)``.
    """
    row = sum(t[0].numel() * t.element_size() for t in (*inputs, *args)
              if isinstance(t, Tensor) and t.dim() >= 1 and t.shape[0] > 0)
    return int(max(1, min(DEFAULT_BATCH_ROWS, DEFAULT_CHUNK_BYTES // max(row, 1))))


# ----------------------------------------------------------------------------- arguments
def _check_adapters(adapters: Any) -> list[HeadAdapter]:
    adapters = list(adapters) if isinstance(adapters, (list, tuple)) else [adapters]
    if not adapters:
        raise ValueError("`adapters` is empty; pass at least one HeadAdapter.")
    for i, a in enumerate(adapters):
        if not isinstance(a, HeadAdapter):
            raise TypeError(f"`adapters[{i}]` must be a HeadAdapter, got {type(a).__name__}.")
    if len({id(a.module) for a in adapters}) != len(adapters):
        raise ValueError("`adapters` wrap the same module more than once.")
    return adapters


def _check_keep(keep: Any, adapters: Sequence[HeadAdapter]) -> list[Tensor]:
    if isinstance(keep, Tensor):
        keep = [keep]
    keep = list(keep)
    if len(keep) != len(adapters):
        raise ValueError(
            f"`keep` must hold one mask per adapter ({len(adapters)}), got {len(keep)}."
        )
    n_variants = None
    for i, (m, a) in enumerate(zip(keep, adapters)):
        if not isinstance(m, Tensor) or m.dtype != torch.bool:
            what = type(m).__name__ if not isinstance(m, Tensor) else f"a {m.dtype} tensor"
            raise TypeError(f"`keep[{i}]` must be a bool tensor (V, {a.n_heads}), got {what}.")
        if m.dim() != 2 or m.shape[1] != a.n_heads:
            raise ValueError(
                f"`keep[{i}]` (layer {a.name!r}) must have shape (V, {a.n_heads}), got "
                f"{tuple(m.shape)}."
            )
        if n_variants is None:
            n_variants = m.shape[0]
        elif m.shape[0] != n_variants:
            raise ValueError(
                f"All keep masks must have the same number of variants V; `keep[0]` has "
                f"{n_variants}, `keep[{i}]` has {m.shape[0]}."
            )
    if not n_variants:
        raise ValueError("`keep` describes no variants (V = 0).")
    return keep


def check_ablation_options(ablation: Any, mode: Any, reference_inputs: Any) -> None:
    """The ``ablation``/``mode`` arguments every head-ablation method takes.

    Raises
    ------
    ValueError
        ``ablation`` not in :data:`ABLATIONS`, ``mode`` not in :data:`MODES`,
        or ``mode="mean"`` without ``reference_inputs``.
    """
    if ablation not in ABLATIONS:
        raise ValueError(f"`ablation` must be one of {ABLATIONS}, got {ablation!r}.")
    if mode not in MODES:
        raise ValueError(f"`mode` must be one of {MODES}, got {mode!r}.")
    if mode == "mean" and reference_inputs is None:
        raise ValueError(
            "`mode='mean'` replaces ablated heads by their mean over a reference set: pass "
            "`reference_inputs` (e.g. the inputs themselves), or use `mode='zero'`."
        )


def _check_mode(mode: Any) -> str:
    if mode not in MODES:
        raise ValueError(f"`mode` must be one of {MODES}, got {mode!r}.")
    return mode


def _check_ready(model: Any, adapters: Sequence[HeadAdapter]) -> None:
    if isinstance(model, nn.Module):
        check_eval_mode(model)
    for a in adapters:
        a.check()


def keep_masks(n_heads: Sequence[int], variants: Sequence[tuple[int, int]],
               ablation: str = "keep") -> list[Tensor]:
    """Keep masks of single-head variants, one per adapter.

    Parameters
    ----------
    n_heads : sequence of int
        ``H_i``, the heads of adapter ``i``.
    variants : sequence of (adapter index, head) pairs, length V
    ablation : {"keep", "remove"}
        ``"keep"``: variant ``(i, h)`` keeps head ``h`` of adapter ``i`` and
        ablates that adapter's other heads; ``"remove"``: it ablates head
        ``h`` only. Other adapters keep all their heads. Default ``"keep"``.

    Returns
    -------
    list of Tensor
        ``keep[i]`` bool ``(V, H_i)``.

    Raises
    ------
    ValueError
        For an unknown ``ablation``, or an adapter index or head out of range.
    """
    if ablation not in ABLATIONS:
        raise ValueError(f"`ablation` must be one of {ABLATIONS}, got {ablation!r}.")
    n_heads = [int(h) for h in n_heads]
    layer = torch.tensor([int(v[0]) for v in variants], dtype=torch.long)
    head = torch.tensor([int(v[1]) for v in variants], dtype=torch.long)
    for i, (li, hi) in enumerate(zip(layer.tolist(), head.tolist())):
        if not 0 <= li < len(n_heads) or not 0 <= hi < n_heads[li]:
            raise ValueError(
                f"`variants[{i}]` = ({li}, {hi}) is out of range: {len(n_heads)} adapter(s) "
                f"with {n_heads} heads."
            )
    out = []
    rows = torch.arange(len(variants))
    for i, h in enumerate(n_heads):
        sel = layer == i
        mask = torch.ones(len(variants), h, dtype=torch.bool)
        if ablation == "keep":
            mask[sel] = False
        mask[rows[sel], head[sel]] = ablation == "keep"
        out.append(mask)
    return out


# ----------------------------------------------------------------------------- passes
def reference_means(model: Any, adapters: Sequence[HeadAdapter], reference_inputs: Any,
                    reference_forward_args: Any = None, batch_size: int | None = None
                    ) -> list[Tensor]:
    """Each adapter's heads averaged over a reference set (no ablation).

    One pass over ``reference_inputs`` (chunked) with recording hooks, with
    PyTorch's fused attention path off (restored afterwards).

    Parameters
    ----------
    model : callable
        ``model(*reference_inputs, *reference_forward_args)``.
    adapters : sequence of HeadAdapter
    reference_inputs : Tensor ``(R, ...)`` or tuple of them
    reference_forward_args : optional
        Extra arguments; tensors have one row per reference (first axis R).
    batch_size : int, optional
        Reference rows per pass. Default :func:`default_batch_size`.

    Returns
    -------
    list of Tensor
        Per adapter, the mean ``(H, *rest)`` of its canonical per-head tensor
        ``(B, H, *rest)`` over the rows (and over repeated calls of the module
        within one forward), in float64.

    Raises
    ------
    ValueError
        NaN/Inf in the references, an adapter's module never called, or
        per-head shapes that change between calls.
    """
    adapters = _check_adapters(adapters)
    refs = as_input_tuple(reference_inputs, "reference_inputs")
    r = refs[0].shape[0]
    args = as_forward_args(reference_forward_args, r, "reference_forward_args")
    batch_size = check_positive_int(
        default_batch_size(refs, args) if batch_size is None else batch_size, "batch_size")
    _check_ready(model, adapters)
    sums: list[Tensor | None] = [None] * len(adapters)
    counts = [0] * len(adapters)

    def recorder(i: int):
        def transform(x: Tensor) -> Tensor:
            total = x.detach().to(torch.float64).sum(dim=0)
            if sums[i] is None:
                sums[i] = total
            elif sums[i].shape != total.shape:
                raise ValueError(
                    f"Layer {adapters[i].name!r}: per-head shape changed between calls "
                    f"({tuple(sums[i].shape)} vs {tuple(total.shape)}); the reference mean "
                    "needs a fixed shape."
                )
            else:
                sums[i] = sums[i] + total
            counts[i] += x.shape[0]
            return x
        return transform

    handles = []
    try:
        for i, a in enumerate(adapters):
            handles.extend(a.attach(recorder(i)))
        with torch.no_grad(), fused_attention_disabled():
            for lo in range(0, r, batch_size):
                index = torch.arange(lo, min(lo + batch_size, r))
                model(*index_examples(refs, index), *index_examples(args, index))
    finally:
        for h in handles:
            h.remove()
    for i, a in enumerate(adapters):
        if sums[i] is None:
            raise ValueError(
                f"Layer {a.name!r} was not called by the model on `reference_inputs`; "
                "is it part of the model's forward?"
            )
    return [s / c for s, c in zip(sums, counts)]


def ablated_forward(model: Any, adapters: Sequence[HeadAdapter], keep: Sequence[Tensor],
                    inputs: Any, additional_forward_args: Any = None, mode: str = "zero",
                    reference_inputs: Any = None, reference_forward_args: Any = None,
                    batch_size: int | None = None, show_progress: bool = False, *,
                    validate_inputs: bool = True, include_full: bool = False,
                    progress: Any = MISSING) -> Tensor:
    """The model's output under every ablation variant, batched.

    Rows are (variant, example) pairs, variant-major: row ``v * N + n`` runs
    example ``n`` under variant ``v``. ``inputs`` and the tensors of
    ``additional_forward_args`` are repeated along axis 0 (gathered chunk by
    chunk), and each chunk of ``batch_size`` rows is one model call with the
    rows' keep masks installed on the adapters. Hooks are removed in a
    ``finally`` (also on error); the model's parameters, buffers and training
    flags and the inputs are never modified. Runs under ``torch.no_grad()``.

    With ``include_full=True`` the same loop first runs the unablated model
    on the examples, in chunks of ``batch_size`` examples, before any hook is
    installed (the model's own operations, bit for bit a plain chunked
    forward with the fused attention path off), and returns it as one more
    variant, the last.

    Parameters
    ----------
    model : callable
        Usually an ``nn.Module`` holding the adapters' modules;
        ``model(*inputs, *additional_forward_args)`` returns a tensor with
        one row per example, ``(N, *out_shape)``.
    adapters : sequence of HeadAdapter
        One per ablated layer (distinct modules).
    keep : sequence of Tensor
        ``keep[i]`` bool ``(V, H_i)``: True = head kept as is, False =
        ablated. Same ``V`` for all adapters; see :func:`keep_masks`.
    inputs : Tensor ``(N, ...)`` or tuple of tensors with first axis N
    additional_forward_args : optional
        Captum's extra forward arguments: tensors must have first axis ``N``
        (one row per example, repeated like the inputs); other values are
        passed as is. Default None.
    mode : {"zero", "mean"}
        Replace ablated heads by 0 or by their mean over ``reference_inputs``.
        Default ``"zero"``.
    reference_inputs : Tensor ``(R, ...)`` or tuple, optional
        Required for ``mode="mean"``; ignored for ``"zero"``.
    reference_forward_args : optional
        Extra arguments for the reference pass (tensors with first axis R).
    batch_size : int, optional
        Rows per model call. Default None: :func:`default_batch_size`, about
        8 MB of gathered inputs per call and at most 4096 rows. Results do not
        depend on it beyond float rounding of the model's own batched kernels.
    show_progress : bool
        Show a tqdm bar over the chunks. Default False.
    validate_inputs : bool, keyword-only
        Check ``inputs`` and the tensors of ``additional_forward_args`` for
        NaN/Inf. Default True; a caller that has checked them passes False.
    include_full : bool, keyword-only
        Also return the unablated model's output, as variant ``V`` (the
        last), computed without hooks. Default False.
    progress : bool, keyword-only
        Deprecated spelling of ``show_progress`` (a ``DeprecationWarning``);
        removed in the next release.

    Returns
    -------
    Tensor
        ``(V, N, *out_shape)``, or ``(V + 1, N, *out_shape)`` with
        ``include_full`` (``[V]`` = the unablated model); the model's dtype
        and device.

    Raises
    ------
    TypeError
        Non-tensor inputs, non-HeadAdapter adapters, non-bool keep masks, a
        model that does not return a tensor; both ``progress`` and
        ``show_progress`` given with different values.
    ValueError
        Keep masks of the wrong shape; NaN/Inf in the inputs; an unknown
        ``mode``; ``mode="mean"`` without ``reference_inputs``; the model (or
        an attention module) in training mode with active dropout; a layer
        whose batch axis does not follow the rows; a layer with ablated heads
        that the model never called; a model output without one row per
        example.
    """
    show_progress = renamed_keyword("progress", progress, "show_progress", show_progress, False,
                                    "ablated_forward")
    adapters = _check_adapters(adapters)
    keep = _check_keep(keep, adapters)
    mode = _check_mode(mode)
    x = as_input_tuple(inputs, "inputs", validate_inputs)
    n = x[0].shape[0]
    args = as_forward_args(additional_forward_args, n, "additional_forward_args", validate_inputs)
    batch_size = check_positive_int(
        default_batch_size(x, args) if batch_size is None else batch_size, "batch_size")
    if mode == "mean" and reference_inputs is None:
        raise ValueError(
            "`mode='mean'` replaces ablated heads by their mean over a reference set: pass "
            "`reference_inputs` (e.g. the inputs themselves), or use `mode='zero'`."
        )
    _check_ready(model, adapters)
    refs: list[Tensor | None] = [None] * len(adapters)
    if mode == "mean":
        refs = list(reference_means(model, adapters, reference_inputs, reference_forward_args,
                                    batch_size))

    n_variants = keep[0].shape[0]
    total = n_variants * n
    current: list[Tensor | None] = [None] * len(adapters)
    called = [False] * len(adapters)

    def ablator(i: int):
        adapter = adapters[i]

        def transform(heads: Tensor) -> Tensor:
            called[i] = True
            rows = current[i]
            if heads.shape[0] != rows.shape[0]:
                raise ValueError(
                    f"Layer {adapter.name!r} was called with batch size {heads.shape[0]}, but "
                    f"the model was called with {rows.shape[0]} rows; head ablation needs the "
                    "layer's batch axis to follow the inputs' first axis (see the adapter's "
                    "`batch_dim` option)."
                )
            if heads.shape[1] != adapter.n_heads:
                raise ValueError(
                    f"Layer {adapter.name!r}: {heads.shape[1]} heads at call time, expected "
                    f"{adapter.n_heads}."
                )
            if bool(rows.all()):
                return heads
            mask = rows.to(heads.device).view(*rows.shape, *([1] * (heads.dim() - 2)))
            if refs[i] is None:
                fill = heads.new_zeros(())
            else:
                fill = refs[i]
                if tuple(fill.shape) != tuple(heads.shape[1:]):
                    raise ValueError(
                        f"Layer {adapter.name!r}: the reference mean has per-row shape "
                        f"{tuple(fill.shape)} but the heads have {tuple(heads.shape[1:])}; "
                        "mode='mean' needs references shaped like the inputs (same lengths)."
                    )
                fill = fill.to(device=heads.device, dtype=heads.dtype)
            return torch.where(mask, heads, fill)
        return transform

    # One model call per chunk: (first row, end row, ablated?). The unablated model's
    # chunks (rows = examples) come first and run before the hooks are installed.
    chunks = [(lo, min(lo + batch_size, n), False)
              for lo in range(0, n if include_full else 0, batch_size)]
    chunks += [(lo, min(lo + batch_size, total), True) for lo in range(0, total, batch_size)]
    if show_progress:
        from tqdm.auto import tqdm
        chunks = tqdm(chunks, desc="head ablation", unit="batch")
    outputs = []
    full_outputs = []
    handles = []
    attached = False
    keep = [k.detach() for k in keep]
    try:
        with torch.no_grad(), fused_attention_disabled():
            for lo, hi, ablate in chunks:
                rows = torch.arange(lo, hi)
                if ablate:
                    if not attached:
                        attached = True
                        for i, a in enumerate(adapters):
                            handles.extend(a.attach(ablator(i)))
                    variant, example = rows // n, rows % n
                    for i in range(len(adapters)):
                        current[i] = keep[i].index_select(0, variant.to(keep[i].device))
                        called[i] = False
                else:
                    example = rows
                out = model(*index_examples(x, example), *index_examples(args, example))
                if not isinstance(out, Tensor):
                    raise TypeError(
                        f"The model must return a tensor with one row per example; called on "
                        f"{len(rows)} rows it returned {type(out).__name__}."
                    )
                if out.dim() == 0 or out.shape[0] != len(rows):
                    raise ValueError(
                        f"The model must return a tensor with one row per example; called on "
                        f"{len(rows)} rows it returned {tuple(out.shape)}."
                    )
                if not ablate:
                    full_outputs.append(out)
                    continue
                for i, a in enumerate(adapters):
                    if not called[i] and not bool(current[i].all()):
                        raise ValueError(
                            f"Layer {a.name!r} was not called by the model's forward, so its "
                            "heads cannot be ablated; is it part of the model?"
                        )
                outputs.append(out)
    finally:
        for h in handles:
            h.remove()
        current[:] = [None] * len(adapters)
    result = torch.cat(outputs + full_outputs, dim=0)
    return result.view(n_variants + bool(include_full), n, *result.shape[1:])
