"""``compare``: run several attribution methods on one model and measure them side by side.

What a study measures (issue-13 definitions; the metric functions live in
:mod:`captum_genomics.comparison.metrics`):

- speed: wall time of each method's call and examples per second;
- completeness: ``sum of the position scores - (f(x) - f(reference))`` per
  example for methods that explain a difference from references (the mean
  of ``f`` over the shuffled references, or ``f`` of the all-zero input). A
  position's score is the map's value at the observed base for hypothetical
  maps (ours, tangermeme's, gradients, ISM) and the sum over the four bases
  for contribution maps (``(x - r) * g``: Captum's methods, a user's);
- agreement: Spearman and cosine of the observed-base scores between every
  pair of methods, per example;
- ground truth, when given: per-sequence AUROC and AUPR of the observed-base
  score against the planted positions (Koo & Ploenzke 2021; Majdandzic et al.
  2023), and the cosine to the centred PWM at those positions;
- the sanity check of Adebayo et al. (2018): cascading randomisation of the
  model's layers from the top; a method whose attributions hardly move is
  flagged.
"""

from __future__ import annotations

import copy
import os
import platform
import time
import warnings
from typing import Any, Callable

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from captum_genomics._utils.checks import (
    check_eval_mode,
    check_one_hot,
    check_positive_int,
    check_random_state,
    check_tensor,
)
from captum_genomics._utils.targets import make_selector, validate_target
from captum_genomics.comparison.metrics import (
    ground_truth_auc,
    observed_scores,
    pairwise_agreement,
    pwm_cosine,
)
from captum_genomics.comparison.registry import (
    MethodRun,
    MethodSpec,
    StudyContext,
    resolve_methods,
)
from captum_genomics.comparison.result import ComparisonResult

__all__ = ["compare", "ComparisonWarning"]


WARMUP_EXAMPLES = 8
"""Examples of the untimed warm-up call of each method."""

RANDOMIZATION_THRESHOLD = 0.5
"""A method is flagged when its median Spearman after randomising every layer is above this."""


class ComparisonWarning(UserWarning):
    """A method failed after others had run; the study keeps the results it has."""


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), or ``platform.processor()``."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _check_ground_truth(ground_truth: Any, n: int, length: int):
    """Return ``(mask (N, L) bool, pwm (N, 4, L) or None, original object)``."""
    if ground_truth is None:
        return None, None
    mask = getattr(ground_truth, "mask", ground_truth)
    pwm = getattr(ground_truth, "pwm", None)
    if not isinstance(mask, Tensor):
        raise TypeError("`ground_truth` must be a GroundTruth (mask and pwm) or a bool Tensor "
                        f"(N, L), got {type(ground_truth).__name__}.")
    if mask.dtype != torch.bool:
        raise TypeError(f"`ground_truth` mask must be a bool Tensor, got dtype {mask.dtype}.")
    if tuple(mask.shape) != (n, length):
        raise ValueError(f"`ground_truth` mask must have shape (N, L) = ({n}, {length}) to match "
                         f"`inputs`, got {tuple(mask.shape)}.")
    if pwm is not None and tuple(pwm.shape) != (n, 4, length):
        raise ValueError(f"`ground_truth.pwm` must have shape (N, 4, L) = ({n}, 4, {length}), "
                         f"got {tuple(pwm.shape)}.")
    return mask.cpu(), None if pwm is None else pwm.detach().cpu().float()


class _quiet_captum(warnings.catch_warnings):
    """Silence Captum's notice that it set ``requires_grad`` on the inputs (every call)."""

    def __enter__(self):
        out = super().__enter__()
        warnings.filterwarnings("ignore", message=r"Input Tensor \d+ did not already require")
        warnings.filterwarnings("ignore", message=r"Setting forward, backward hooks")
        return out


def position_map(attributions: Tensor, inputs: Tensor, hypothetical: bool) -> Tensor:
    """The map whose observed-base values are each position's score ``(N, 4, L)``.

    A hypothetical map (what each base would contribute) is returned as is:
    its value at the observed base is the position's score. A contribution
    map (e.g. ``(x - r) * g``, with the reference's part at other bases) is
    summed over the four bases and put at the observed base.
    """
    if hypothetical:
        return attributions
    return inputs.to(attributions.dtype) * attributions.sum(1, keepdim=True)


def _subset_target(target: Any, index: Tensor) -> Any:
    if isinstance(target, Tensor) and target.dim() > 0 and target.numel() > 1:
        return target[index.to(target.device)]
    if isinstance(target, list):
        return [target[i] for i in index.tolist()]
    return target


def _selected(model: Callable, x: Tensor, target: Any, example: Tensor,
              batch_size: int) -> Tensor:
    """``f(x)`` selected by ``target``: ``(B,)`` float64, rows of ``x`` belong to ``example``."""
    select = make_selector(target, example, int(example.max()) + 1 if example.numel() else 0)
    out = []
    with torch.no_grad():
        for s in range(0, x.shape[0], batch_size):
            out.append(select(model(x[s:s + batch_size])).double().cpu())
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.float64)


def _baseline_outputs(model, inputs, target, references, batch_size,
                      needed: set[str]) -> dict[str, Tensor]:
    """``f(x) - f(baseline)`` per example ``(N,)`` float64, for the baselines in ``needed``.

    ``"shuffle"``: the mean of ``f`` over the references; ``"zero"``: ``f`` of
    the all-zero input. ``f(x)`` always runs (one pass over the examples): it
    checks ``target`` against the model's output with a clear error before any
    method does; nothing runs for a baseline no method uses.
    """
    n, k = references.shape[:2]
    idx = torch.arange(n)
    fx = _selected(model, inputs, target, idx, batch_size)
    out = {}
    if "shuffle" in needed:
        refs = references.reshape(n * k, *references.shape[2:]).to(inputs.dtype)
        fr = _selected(model, refs, target, idx.repeat_interleave(k), batch_size).reshape(n, k)
        out["shuffle"] = fx - fr.mean(1)
    if "zero" in needed:
        out["zero"] = fx - _selected(model, torch.zeros_like(inputs), target, idx, batch_size)
    return out


def _as_run(name: str, out: Any, shape: tuple[int, ...]) -> MethodRun:
    run = out if isinstance(out, MethodRun) else MethodRun(out)
    attr = run.attributions
    if isinstance(attr, tuple) and len(attr) == 1:
        attr = attr[0]
    if not isinstance(attr, Tensor):
        raise TypeError(f"`methods[{name!r}]` must return a Tensor of shape {shape}, got "
                        f"{type(attr).__name__}.")
    if tuple(attr.shape) != shape:
        raise ValueError(f"`methods[{name!r}]` must return attributions shaped like `inputs` "
                         f"{shape}, got {tuple(attr.shape)}.")
    attr = attr.detach().to("cpu", torch.float32)
    if not bool(torch.isfinite(attr).all()):
        raise ValueError(f"`methods[{name!r}]` returned non-finite attributions.")
    return MethodRun(attr, run.off_simplex_angle)


def _rows(method: str, metric: str, values, examples=None) -> list[dict]:
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    if examples is None:
        return [{"method": method, "example": pd.NA, "metric": metric, "value": float(v)}
                for v in values]
    return [{"method": method, "example": int(e), "metric": metric, "value": float(v)}
            for e, v in zip(examples, values)]


def _versions() -> dict[str, str]:
    import captum

    import captum_genomics

    out = {"torch": torch.__version__, "captum": captum.__version__,
           "captum_genomics": captum_genomics.__version__}
    try:
        from importlib.metadata import version

        out["tangermeme"] = version("tangermeme")
    except Exception:  # noqa: BLE001 - optional peer
        pass
    return out


def compare(
    methods: Any = None,
    model: nn.Module | Callable | None = None,
    inputs: Tensor | None = None,
    *,
    target: Any = None,
    ground_truth: Any = None,
    references: Tensor | None = None,
    n_references: int = 20,
    batch_size: int = 64,
    ig_steps: int = 32,
    randomization: bool = True,
    randomization_examples: int = 8,
    randomization_layers: list[str] | None = None,
    random_state: int = 0,
    warmup: bool = True,
    show_progress: bool = False,
    model_name: str = "",
) -> ComparisonResult:
    r"""Run attribution methods side by side: speed, completeness, agreement, accuracy.

    Parameters
    ----------
    methods : None, str, list or dict
        Which methods; see :func:`captum_genomics.comparison.registry.resolve_methods`.
        None (default) runs every built-in one (ours, saliency, gradient x
        input, Integrated Gradients from zero and shuffled references,
        GradientShap, in-silico mutagenesis, the gradient-corrected variants
        and the installed peers). A user's Captum ``Attribution`` or callable
        ``(model, inputs, target) -> (N, 4, L)`` can be added by name.
    model : nn.Module or callable
        The model, in eval mode, mapping ``(B, 4, L)`` to ``(B,)`` or
        ``(B, T, ...)``. Never modified (peers run on a copy).
    inputs : Tensor ``(N, 4, L)``
        One-hot sequences (ACGT rows; all-zero columns are N), float, in the
        model's dtype.
    target : int, tuple, Tensor ``(N,)``, list, or None
        Captum's ``target``. Default None (the model's output is ``(B,)`` or
        ``(B, 1)``).
    ground_truth : GroundTruth, Tensor ``(N, L)`` bool, or None
        The planted positions (``mask``) and optionally the centred PWM
        ``(N, 4, L)`` (``pwm``). Default None: no AUROC/AUPR/PWM cosine.
    references : Tensor ``(N, K, 4, L)`` or None
        References shared by every reference-based method. Default None:
        ``n_references`` dinucleotide shuffles per example seeded by
        ``random_state``.
    n_references : int
        Default 20.
    batch_size : int
        Examples (or example-reference pairs) per model call. Default 64.
    ig_steps : int
        Integrated Gradients' steps (Gauss-Legendre, Captum's default). Default 32.
    randomization : bool
        Run the cascading-randomisation check. Default True.
    randomization_examples : int
        How many of the first examples the check uses. Default 8.
    randomization_layers : list of str or None
        Module names to randomise, bottom to top. Default None: every module
        with parameters and ``reset_parameters``.
    random_state : int
        Seeds the references, GradientShap's draws and the randomisation.
        Default 0.
    warmup : bool
        Call each method once on the first 8 examples before timing it, so
        ``seconds`` measures steady-state speed (imports, compilation and the
        per-shape kernels of oneDNN/cuDNN are paid there, whatever order the
        methods run in); the warm-up call's time is reported as
        ``first_call_seconds``. Default True.
    show_progress : bool
        tqdm bars over methods and randomisation steps. Default False.
    model_name : str
        A label for the report. Default ``""``.

    Returns
    -------
    ComparisonResult
        Tidy tables (``frame``, ``agreement``, ``randomization``), the
        attributions per method (float32, ``(N, 4, L)``), ``summary()`` and
        plots. A method that fails after another has succeeded is recorded in
        ``metadata["notes"]`` (with a :class:`ComparisonWarning`) and left out.

    Raises
    ------
    ValueError, TypeError
        Unknown method names, ``inputs`` not one-hot ``(N, 4, L)``, a model in
        training mode, a ground truth of the wrong shape, a bad ``target``, or
        a method that returns the wrong shape when it is the first to run.
    """
    if model is None or not callable(model):
        raise TypeError(f"`model` must be a torch module or callable, got {type(model).__name__}.")
    check_eval_mode(model)
    specs = resolve_methods(methods)
    inputs = check_tensor(inputs, "inputs")
    if inputs.dim() != 3 or inputs.shape[1] != 4:
        raise ValueError(f"`inputs` must be one-hot DNA of shape (N, 4, L), got "
                         f"{tuple(inputs.shape)}.")
    if not inputs.is_floating_point():
        raise TypeError(f"`inputs` must be a float tensor, got dtype {inputs.dtype}.")
    check_one_hot(inputs, "inputs", dim=1)
    n, _, length = inputs.shape
    if n == 0:
        raise ValueError("`inputs` has no examples (N = 0).")
    validate_target(target, n)
    mask, pwm = _check_ground_truth(ground_truth, n, length)
    batch_size = check_positive_int(batch_size, "batch_size")
    ig_steps = check_positive_int(ig_steps, "ig_steps")
    randomization_examples = check_positive_int(randomization_examples, "randomization_examples")
    random_state = check_random_state(random_state, allow_none=False)
    if references is None:
        from captum_genomics.references import dinucleotide_shuffle

        n_references = check_positive_int(n_references, "n_references")
        references = dinucleotide_shuffle(inputs, n_references, random_state=random_state)
    else:
        references = check_tensor(references, "references")
        if references.dim() != 4 or tuple(references.shape[::2]) != (n, 4) \
                or references.shape[3] != length:
            raise ValueError(f"`references` must have shape (N, K, 4, L) = ({n}, K, 4, {length}),"
                             f" got {tuple(references.shape)}.")
    ctx = StudyContext(references.detach(), batch_size, ig_steps, random_state)

    # the warm-up sees batches of the study's shapes (oneDNN builds a kernel per shape)
    n_warm = min(n, WARMUP_EXAMPLES)
    warm = torch.arange(n_warm)
    warm_ctx = StudyContext(ctx.references[:n_warm], batch_size, ig_steps, random_state)
    x_cpu = inputs.detach().cpu()
    position_maps: dict[str, Tensor] = {}
    attributions: dict[str, Tensor] = {}
    rows: list[dict] = []
    notes: list[str] = []
    examples = np.arange(n)
    differences = _baseline_outputs(model, inputs.detach(), target, references, batch_size,
                                    {spec.baseline for spec in specs if spec.baseline})

    from tqdm.auto import tqdm

    for spec in tqdm(specs, desc="methods", disable=not show_progress):
        runner = copy.deepcopy(model) if spec.kind == "peer" and isinstance(model, nn.Module) \
            else model
        try:
            first = None
            if warmup:
                t0 = time.perf_counter()
                with _quiet_captum():
                    spec.run(runner, inputs[:n_warm].detach(), _subset_target(target, warm),
                             warm_ctx)
                first = time.perf_counter() - t0
            t0 = time.perf_counter()
            with _quiet_captum():
                out = spec.run(runner, inputs.detach(), target, ctx)
            seconds = time.perf_counter() - t0
            run = _as_run(spec.name, out, tuple(inputs.shape))
        except Exception as err:
            if not attributions:
                raise
            message = f"method {spec.name!r} failed and was left out: {type(err).__name__}: {err}"
            warnings.warn(message, ComparisonWarning, stacklevel=2)
            notes.append(message)
            continue
        attributions[spec.name] = run.attributions
        projected = position_map(run.attributions, x_cpu, spec.hypothetical)
        position_maps[spec.name] = projected
        scores = np.asarray(observed_scores(projected, x_cpu), dtype=np.float64)
        rows += _rows(spec.name, "seconds", [seconds])
        if first is not None:
            rows += _rows(spec.name, "first_call_seconds", [first])
        rows += _rows(spec.name, "examples_per_s", [n / max(seconds, 1e-12)])
        if spec.baseline:
            delta = scores.sum(1) - differences[spec.baseline].numpy()
            rows += _rows(spec.name, "convergence_delta", np.abs(delta), examples)
        if mask is not None:
            auroc, aupr = ground_truth_auc(projected, x_cpu, mask)
            rows += _rows(spec.name, "auroc", auroc, examples)
            rows += _rows(spec.name, "aupr", aupr, examples)
            if pwm is not None:
                rows += _rows(spec.name, "pwm_cosine", pwm_cosine(run.attributions, pwm, mask),
                              examples)
        if run.off_simplex_angle is not None:
            rows += _rows(spec.name, "off_simplex_angle", run.off_simplex_angle, examples)

    names = list(attributions)
    agreement_rows = []
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            rho, cos = pairwise_agreement(position_maps[a], position_maps[b], x_cpu)
            for metric, values in (("spearman", rho), ("cosine", cos)):
                agreement_rows += [{"method_a": a, "method_b": b, "example": int(e),
                                    "metric": metric, "value": float(v)}
                                   for e, v in zip(examples, np.asarray(values))]

    randomization_frame, flagged = None, []
    if randomization and isinstance(model, nn.Module):
        randomization_frame, flagged, more_notes = _randomization(
            [s for s in specs if s.name in attributions], model, inputs.detach(), target,
            ctx, randomization_examples, randomization_layers, random_state, show_progress)
        notes += more_notes

    frame = pd.DataFrame(rows, columns=["method", "example", "metric", "value"])
    frame["example"] = frame["example"].astype("Int64")
    agreement = pd.DataFrame(agreement_rows,
                             columns=["method_a", "method_b", "example", "metric", "value"])
    metadata = {
        "model": model_name or type(model).__name__,
        "n_examples": int(n), "length": int(length), "target": repr(target),
        "n_references": int(references.shape[1]), "ig_steps": ig_steps,
        "batch_size": batch_size, "random_state": random_state,
        "randomization_threshold": RANDOMIZATION_THRESHOLD if randomization else None,
        "cpu": cpu_model(), "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(), "python": platform.python_version(),
        **_versions(), "notes": notes,
    }
    return ComparisonResult(
        frame=frame, agreement=agreement, randomization=randomization_frame,
        attributions=attributions, inputs=x_cpu.float(),
        ground_truth=ground_truth if mask is not None else None, methods=names,
        metadata=metadata, flagged=flagged)


def _randomization(specs: list[MethodSpec], model: nn.Module, inputs: Tensor, target: Any,
                   ctx: StudyContext, n_examples: int, layers, random_state: int,
                   show_progress: bool):
    from captum_genomics.comparison.randomization import flag_insensitive, randomization_spearman

    n = min(n_examples, inputs.shape[0])
    index = torch.arange(n)
    x = inputs[:n]
    sub_target = _subset_target(target, index)
    sub_ctx = StudyContext(ctx.references[:n], ctx.batch_size, ctx.ig_steps, ctx.random_state)
    frames, flagged, notes = [], [], []
    for spec in specs:
        if not spec.randomizable:
            notes.append(f"method {spec.name!r} was not randomisation-checked: its model cannot "
                         "be replaced by a randomised copy.")
            continue

        def attribute(m, xs, _spec=spec):
            with _quiet_captum():
                out = _spec.run(m, xs, sub_target, sub_ctx)
            out = _as_run(_spec.name, out, tuple(xs.shape))
            return position_map(out.attributions, xs.detach().cpu(), _spec.hypothetical)

        try:
            frame = randomization_spearman(attribute, model, x, layers=layers,
                                           random_state=random_state,
                                           show_progress=show_progress)
        except Exception as err:  # noqa: BLE001 - keep the study's other results
            message = (f"randomisation check of {spec.name!r} failed: "
                       f"{type(err).__name__}: {err}")
            warnings.warn(message, ComparisonWarning, stacklevel=3)
            notes.append(message)
            continue
        frame.insert(0, "method", spec.name)
        frames.append(frame)
        if flag_insensitive(frame, threshold=RANDOMIZATION_THRESHOLD):
            flagged.append(spec.name)
    if not frames:
        return None, flagged, notes
    return pd.concat(frames, ignore_index=True), flagged, notes
