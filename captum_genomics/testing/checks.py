"""Reusable correctness checks for attribution methods on any model.

Each check runs an attribution method (or a peer implementation) on a
batch and returns a :class:`CheckReport` with the measured error and a pass
flag. Checks never raise because a property fails; they raise only for
misuse (wrong shapes, a missing dependency). The property suite in
``captum_genomics/testing/`` is built on these functions, and users can call them from
their own tests::

    from captum_genomics import ShuffleDeepLiftShap
    from captum_genomics.testing.checks import check_additivity

    report = check_additivity(ShuffleDeepLiftShap(model.double()), x, references, target=0)
    assert report.passed, report

Terms follow the package: ``inputs`` ``(N, A, L)`` one-hot sequences,
``references`` ``(N, K, A, L)`` (``K`` per example), *multipliers* are
DeepLIFT's modified gradients and the *convergence delta* of an
example-reference pair is ``sum(m * (x - r)) - (f(x) - f(r))``.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import torch
from torch import Tensor

__all__ = [
    "CheckReport",
    "check_additivity",
    "check_batch_invariance",
    "check_determinism",
    "check_agreement_tangermeme",
    "check_agreement_captum_deeplift",
    "check_model_unchanged",
    "reference_outputs",
]


@dataclass(frozen=True)
class CheckReport:
    """The outcome of one check.

    Attributes
    ----------
    name : str
        Which check ran.
    passed : bool
        Whether ``max_error <= tolerance`` (and any other condition the
        check names in ``details``).
    max_error : float
        The largest absolute error measured (``inf`` for mismatched shapes).
    tolerance : float
        The bound ``max_error`` was held to. ``0.0`` means bitwise equality.
    details : dict
        Check-specific measurements (per-component errors, peer deltas,
        the exception a call raised, ...).
    """

    name: str
    passed: bool
    max_error: float
    tolerance: float
    details: dict = field(default_factory=dict)

    def __bool__(self) -> bool:
        return self.passed

    def __str__(self) -> str:
        status = "passed" if self.passed else "FAILED"
        extra = ", ".join(f"{k}={_fmt(v)}" for k, v in self.details.items())
        return (f"{self.name} {status}: max error {self.max_error:.3g} (tolerance "
                f"{self.tolerance:.3g})" + (f"; {extra}" if extra else ""))


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return repr(value) if not isinstance(value, str) else value


def _max_abs_diff(a: Tensor | Sequence[Tensor], b: Tensor | Sequence[Tensor]) -> float:
    a = (a,) if isinstance(a, Tensor) else tuple(a)
    b = (b,) if isinstance(b, Tensor) else tuple(b)
    if len(a) != len(b):
        return math.inf
    worst = 0.0
    for u, v in zip(a, b):
        if u.shape != v.shape:
            return math.inf
        if u.numel():
            worst = max(worst, float((u.detach().cpu().double() - v.detach().cpu().double())
                                     .abs().max()))
    return worst


def _equal(a: Tensor | Sequence[Tensor], b: Tensor | Sequence[Tensor]) -> bool:
    a = (a,) if isinstance(a, Tensor) else tuple(a)
    b = (b,) if isinstance(b, Tensor) else tuple(b)
    return len(a) == len(b) and all(torch.equal(u.cpu(), v.cpu()) for u, v in zip(a, b))


def _passes(error: float, tolerance: float, exact: bool | None = None) -> bool:
    if tolerance == 0.0 and exact is not None:
        return exact
    return error <= tolerance  # False for nan


def _as_tuple(x) -> tuple[Tensor, ...]:
    return tuple(x) if isinstance(x, (tuple, list)) else (x,)


def _model_of(explainer) -> Callable:
    model = getattr(explainer, "forward_func", None)
    if model is None:
        raise TypeError(f"`explainer` must be a Captum Attribution with a `forward_func`, got "
                        f"{type(explainer).__name__}.")
    return model


def _device_of(model, fallback: torch.device) -> torch.device:
    if isinstance(model, torch.nn.Module):
        for t in list(model.parameters()) + list(model.buffers()):
            return t.device
    return fallback


def _explicit(references) -> bool:
    return isinstance(references, Tensor) or (
        isinstance(references, (tuple, list)) and len(references) > 0
        and all(isinstance(r, Tensor) for r in references))


def _generate_references(inputs: tuple[Tensor, ...], references, n_references: int,
                         random_state: int | None) -> tuple[Tensor, ...]:
    """The references ``ShuffleDeepLiftShap`` would generate, as explicit tensors."""
    from captum_genomics.references import resolve_reference_generator

    specs = tuple(references) if isinstance(references, (tuple, list)) else (
        (references,) * len(inputs))
    n = inputs[0].shape[0]
    ex = torch.arange(n)
    return tuple(resolve_reference_generator(s)(x, n_references, example_indices=ex,
                                                random_state=random_state).to(x.dtype)
                 for s, x in zip(specs, inputs))


def _select(output: Tensor, target: Any, n: int, k: int = 1) -> Tensor:
    from captum_genomics._utils.targets import make_selector

    return make_selector(target, torch.arange(n).repeat_interleave(k), n)(output)


def reference_outputs(model: Callable, inputs: Tensor | tuple[Tensor, ...],
                      references: Tensor | tuple[Tensor, ...], target: Any = None,
                      additional_forward_args: Any = None) -> tuple[Tensor, Tensor]:
    """Plain forward passes of the inputs and of every reference (no DeepLIFT).

    Parameters
    ----------
    model
        The model (``nn.Module`` or callable).
    inputs : Tensor ``(N, A, L)`` or tuple of ``(N, *shape_j)``
    references : Tensor ``(N, K, A, L)`` or tuple of ``(N, K, *shape_j)``
    target
        Captum ``target`` (int, tuple, per-example tensor/list or None).
    additional_forward_args
        Extra model arguments; a tensor whose first axis has size ``N`` is
        indexed per example (per pair for the references).

    Returns
    -------
    f_x : Tensor ``(N,)``
        The selected output on each input, in float64.
    f_r : Tensor ``(N, K)``
        The selected output on each reference, in float64.
    """
    from captum_genomics._utils.captum import format_additional_forward_args

    xs, rs = _as_tuple(inputs), _as_tuple(references)
    n, k = xs[0].shape[0], rs[0].shape[1]
    device = _device_of(model, xs[0].device)
    extra = format_additional_forward_args(additional_forward_args)
    ex = torch.arange(n).repeat_interleave(k)

    def per(index, a):
        return a[index.to(a.device)].to(device) if (
            isinstance(a, Tensor) and a.ndim and a.shape[0] == n) else a

    with torch.no_grad():
        fx = _select(model(*(x.to(device) for x in xs), *(per(torch.arange(n), a)
                                                            for a in extra)), target, n)
        fr = _select(model(*(r.reshape(n * k, *r.shape[2:]).to(device) for r in rs),
                           *(per(ex, a) for a in extra)), target, n, k)
    return fx.double().cpu(), fr.double().cpu().reshape(n, k)


def check_additivity(
    explainer,
    inputs: Tensor | tuple[Tensor, ...],
    references: Any = None,
    target: Any = None,
    atol: float = 1e-10,
    n_references: int = 4,
    random_state: int | None = 0,
    additional_forward_args: Any = None,
    **attribute_kwargs,
) -> CheckReport:
    """DeepLIFT's summation-to-delta, per pair and for the averaged attributions.

    Two errors are measured and both must be ``<= atol``:

    * ``pair_delta``: ``max |delta|`` over the ``(N, K)`` convergence deltas
      the method returns, ``sum(m * (x - r)) - (f(x) - f(r))`` per
      example-reference pair;
    * ``sum_vs_output``: ``max_i |sum(attributions_i) - mean_k (f(x_i) -
      f(r_ik))|`` with ``f`` evaluated by plain forward passes of the model,
      independently of the method.

    The second needs the references, so generated ones (``references`` not a
    tensor) are produced first with the package's generators and passed
    explicitly. For one-hot inputs with ``N`` (all-zero) columns the second
    error is only zero if the references are all-zero there too: the
    contribution ``m * (x - r)`` of such a column is ``-sum(m * r)``, which
    projection onto the observed (absent) base drops.

    Parameters
    ----------
    explainer
        A Captum-style attribution object (e.g. ``ShuffleDeepLiftShap(model)``)
        whose ``attribute`` takes ``references`` and
        ``return_convergence_delta``. Use a float64 model for ``atol=1e-10``.
    inputs : Tensor ``(N, A, L)`` or tuple of ``(N, *shape_j)``
    references : Tensor ``(N, K, A, L)``, tuple, or a generator spec
        As in ``ShuffleDeepLiftShap.attribute``. Default None (dinucleotide
        shuffles, generated here with ``n_references`` and ``random_state``).
    target
        Captum ``target``. Default None.
    atol : float
        Bound on both errors. Default ``1e-10`` (float64).
    n_references, random_state
        Used when the references are generated. Defaults 4 and 0.
    additional_forward_args
        Extra model arguments, passed to the method and to the plain forwards.
    **attribute_kwargs
        Passed to ``attribute`` (e.g. ``batch_size``).

    Returns
    -------
    CheckReport
        ``details``: ``pair_delta``, ``sum_vs_output``, ``max_abs_output_difference``.
    """
    xs = _as_tuple(inputs)
    refs = references if _explicit(references) else _generate_references(
        xs, references, n_references, random_state)
    refs_t = _as_tuple(refs)
    model = _model_of(explainer)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        attr, delta = explainer.attribute(
            inputs, references=refs if isinstance(inputs, (tuple, list)) else refs_t[0],
            target=target, additional_forward_args=additional_forward_args,
            return_convergence_delta=True, **attribute_kwargs)
    fx, fr = reference_outputs(model, inputs, refs_t, target, additional_forward_args)
    n = xs[0].shape[0]
    total = sum(a.detach().double().cpu().reshape(n, -1).sum(1) for a in _as_tuple(attr))
    expected = (fx[:, None] - fr).mean(1)
    pair = float(delta.detach().abs().max()) if delta.numel() else 0.0
    summed = float((total - expected).abs().max())
    error = max(pair, summed)
    return CheckReport(
        "additivity", _passes(error, atol), error, atol,
        {"pair_delta": pair, "sum_vs_output": summed,
         "max_abs_output_difference": float((fx[:, None] - fr).abs().max())},
    )


def check_batch_invariance(
    explainer,
    inputs: Tensor | tuple[Tensor, ...],
    references: Any = None,
    target: Any = None,
    batch_sizes: Sequence[int] | None = None,
    n_references: int = 4,
    random_state: int | None = 0,
    atol: float = 0.0,
    rtol: float = 0.0,
    **attribute_kwargs,
) -> CheckReport:
    """An example's attributions do not depend on the batch it is computed in.

    Compares ``attribute(X)`` with

    * ``attribute(X[i:i+1], example_indices=[i])`` for every example ``i``
      (with ``references[i:i+1]`` when they are explicit tensors), and
    * ``attribute(X, batch_size=b)`` for every ``b`` in ``batch_sizes``.

    Parameters
    ----------
    explainer
        A Captum-style attribution object taking ``references``,
        ``example_indices`` and ``batch_size``.
    inputs : Tensor ``(N, A, L)`` or tuple of ``(N, *shape_j)``
    references : Tensor ``(N, K, A, L)``, tuple, or a generator spec
        Default None (generated dinucleotide shuffles, seeded by
        ``random_state``; a generated-reference check needs a seed).
    target
        Captum ``target``; a per-example tensor or list is sliced with the
        examples. Default None.
    batch_sizes : sequence of int, optional
        Default ``(1, 3, K, 1000)``.
    n_references, random_state
        For generated references. Defaults 4 and 0.
    atol, rtol : float
        Passes when ``max_error <= atol + rtol * max|attributions|``. Both
        ``0.0`` (default) requires bitwise equality (``torch.equal``). On CPU
        some kernels cannot give bitwise batch invariance: transcendental
        activations (ELU, SiLU, Softplus, Sigmoid, ...) compute the tail of a
        tensor in scalar code and the rest vectorized, float32 convolutions
        (oneDNN) and matrix products (MKL) block rows by batch size; there
        use ``rtol`` ~ ``1e-12`` (float64) / ``1e-5`` (float32).
    **attribute_kwargs
        Passed to every ``attribute`` call.

    Returns
    -------
    CheckReport
        ``tolerance`` is ``atol + rtol * max|attributions|``; ``details``:
        ``per_example`` and ``per_batch_size`` (max errors), ``exact``
        (whether every comparison was bitwise equal).
    """
    if not _explicit(references) and random_state is None:
        raise ValueError("Batch invariance with generated references needs a seed: pass "
                         "`random_state`.")
    xs = _as_tuple(inputs)
    is_tuple = isinstance(inputs, (tuple, list))
    n = xs[0].shape[0]
    k = _as_tuple(references)[0].shape[1] if _explicit(references) else n_references
    sizes = tuple(batch_sizes) if batch_sizes is not None else (1, 3, k, 1000)
    common = dict(target=target, random_state=random_state, n_references=n_references,
                  **attribute_kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        full = explainer.attribute(inputs, references=references, **common)
        per_example, per_size, exact = 0.0, {}, True
        for i in range(n):
            x_i = tuple(x[i:i + 1] for x in xs)
            r_i = references
            if _explicit(references):
                r_i = tuple(r[i:i + 1] for r in _as_tuple(references))
                r_i = r_i if is_tuple else r_i[0]
            t_i = target
            if isinstance(target, Tensor) and target.numel() > 1:
                t_i = target[i:i + 1]
            elif isinstance(target, list):
                t_i = target[i:i + 1]
            one = explainer.attribute(x_i if is_tuple else x_i[0], references=r_i,
                                      example_indices=[i], **{**common, "target": t_i})
            want = tuple(a[i:i + 1] for a in _as_tuple(full))
            per_example = max(per_example, _max_abs_diff(want, one))
            exact &= _equal(want, one)
        for b in sizes:
            other = explainer.attribute(inputs, references=references, batch_size=b, **common)
            per_size[b] = _max_abs_diff(full, other)
            exact &= _equal(full, other)
    error = max([per_example, *per_size.values()])
    scale = max((float(a.detach().abs().max()) for a in _flatten_result(full) if a.numel()),
                default=0.0)
    tolerance = atol + rtol * scale
    return CheckReport("batch_invariance", _passes(error, tolerance, exact), error, tolerance,
                       {"per_example": per_example, "per_batch_size": per_size,
                        "exact": exact})


def check_determinism(
    explainer,
    inputs: Tensor | tuple[Tensor, ...],
    references: Any = None,
    target: Any = None,
    random_state: int = 0,
    other_random_state: int = 1,
    n_references: int = 4,
    atol: float = 0.0,
    **attribute_kwargs,
) -> CheckReport:
    """Same seed, same result; another seed, another result.

    Two calls with ``random_state`` must agree within ``atol`` (bitwise for
    the default ``0.0``). When the references are generated, a call with
    ``other_random_state`` must differ from them (different references);
    with explicit reference tensors only the repeat is checked.

    Parameters
    ----------
    explainer
        A Captum-style attribution object.
    inputs : Tensor ``(N, A, L)`` or tuple of ``(N, *shape_j)``
    references : Tensor ``(N, K, A, L)``, tuple, or a generator spec
        Default None (generated dinucleotide shuffles).
    target
        Captum ``target``. Default None.
    random_state, other_random_state : int
        The seed repeated, and a different one. Defaults 0 and 1.
    n_references : int
        ``K`` for generated references. Default 4.
    atol : float
        Bound on the difference of the two same-seed calls. Default ``0.0``.
    **attribute_kwargs
        Passed to every ``attribute`` call.

    Returns
    -------
    CheckReport
        ``max_error`` is the same-seed difference; ``details``: ``exact`` and,
        for generated references, ``difference_other_seed`` (must be > 0).
    """
    common = dict(references=references, target=target, n_references=n_references,
                  **attribute_kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        first = explainer.attribute(inputs, random_state=random_state, **common)
        second = explainer.attribute(inputs, random_state=random_state, **common)
        details: dict[str, Any] = {"exact": _equal(first, second)}
        differs = True
        if not _explicit(references):
            other = explainer.attribute(inputs, random_state=other_random_state, **common)
            details["difference_other_seed"] = _max_abs_diff(first, other)
            differs = details["difference_other_seed"] > 0
    error = _max_abs_diff(first, second)
    return CheckReport("determinism", _passes(error, atol, details["exact"]) and differs,
                       error, atol, details)


def _ours(model, explainer):
    if explainer is not None:
        return explainer
    from captum_genomics.methods import ShuffleDeepLiftShap

    return ShuffleDeepLiftShap(model)


def check_agreement_tangermeme(
    model: torch.nn.Module,
    inputs: Tensor,
    references: Tensor,
    target: int = 0,
    hypothetical: bool = False,
    raw_outputs: bool = False,
    atol: float = 1e-6,
    explainer=None,
    device: str | torch.device | None = None,
    batch_size: int = 64,
    **attribute_kwargs,
) -> CheckReport:
    """Agreement with ``tangermeme.deep_lift_shap.deep_lift_shap`` on the same references.

    tangermeme attaches its rules to modules (``nn.ReLU``, ``nn.GELU``,
    ``nn.MaxPool1d``, ``nn.Softmax``, ``nn.LayerNorm``, ``nn.GLU``, ...), so
    agreement is only expected on models built from those modules, without
    functional activations, subclasses or modules used twice. tangermeme's
    own convergence deltas are reported in ``details`` so a disagreement can
    be blamed on the side that is not additive.

    Parameters
    ----------
    model
        An ``nn.Module`` returning ``(B, T)``. tangermeme runs it on
        ``device`` and restores it afterwards.
    inputs : Tensor ``(N, A, L)``
        One-hot sequences.
    references : Tensor ``(N, K, A, L)``
        One-hot references, given to both implementations.
    target : int
        Output column. Default 0.
    hypothetical : bool
        Compare hypothetical contributions. Default False.
    raw_outputs : bool
        Compare the raw multipliers ``(N, K, A, L)`` (ours with
        ``return_multipliers=True``). Default False.
    atol : float
        Default ``1e-6``.
    explainer
        Ours; default ``ShuffleDeepLiftShap(model)``.
    device
        Where tangermeme runs; default the inputs' device.
    batch_size : int
        Pairs per batch, for both. Default 64.
    **attribute_kwargs
        Passed to our ``attribute`` (e.g. ``strategy``).

    Returns
    -------
    CheckReport
        ``details``: ``tangermeme_delta`` (tangermeme's max ``|delta|``,
        recomputed from its multipliers), ``ours_delta``.
    """
    from tangermeme.deep_lift_shap import deep_lift_shap

    ours = _ours(model, explainer)
    device = inputs.device if device is None else torch.device(device)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mine, delta = ours.attribute(inputs, references=references, target=target,
                                     hypothetical=hypothetical, return_multipliers=raw_outputs,
                                     batch_size=batch_size, return_convergence_delta=True,
                                     **attribute_kwargs)
        theirs = deep_lift_shap(model, inputs, target=target, references=references,
                                device=device, hypothetical=hypothetical,
                                raw_outputs=raw_outputs, batch_size=batch_size)
        raw = theirs if raw_outputs else deep_lift_shap(
            model, inputs, target=target, references=references, device=device,
            raw_outputs=True, batch_size=batch_size)
    fx, fr = reference_outputs(model, inputs, references, target)
    contrib = (raw.double().cpu() * (inputs[:, None] - references).double().cpu()).sum((2, 3))
    their_delta = float((contrib - (fx[:, None] - fr)).abs().max())
    error = _max_abs_diff(mine, theirs)
    return CheckReport("agreement_tangermeme", _passes(error, atol), error, atol,
                       {"tangermeme_delta": their_delta,
                        "ours_delta": float(delta.abs().max()),
                        "hypothetical": hypothetical, "raw_outputs": raw_outputs})


def check_agreement_captum_deeplift(
    model: torch.nn.Module,
    inputs: Tensor,
    references: Tensor,
    target: Any = None,
    atol: float = 1e-10,
    explainer=None,
    **attribute_kwargs,
) -> CheckReport:
    """Agreement with Captum's ``DeepLift`` run on every example-reference pair.

    Captum's attributions of a pair are ``m * (x - r)`` per input element
    (``multiply_by_inputs=True``); ours are compared as
    ``multipliers * (x - r)`` from ``return_multipliers=True``, pair by pair,
    and as sums over the channel axis.

    Captum 0.9 is exact only on some models: it treats every module it does
    not know (``nn.GELU``, ``nn.SiLU``, functional calls, subclasses) as
    linear, and its max-pool rule loses additivity when another nonlinearity
    precedes or follows the pool. Its own convergence delta is reported in
    ``details["captum_delta"]``; compare only where it is ~0.

    Parameters
    ----------
    model
        An ``nn.Module``.
    inputs : Tensor ``(N, A, L)``
    references : Tensor ``(N, K, A, L)``
    target
        Captum ``target``: int, tuple, None, or one per example (tensor
        ``(N,)`` or list), repeated for each of the example's pairs. Default None.
    atol : float
        Default ``1e-10``.
    explainer
        Ours; default ``ShuffleDeepLiftShap(model)``.
    **attribute_kwargs
        Passed to our ``attribute`` (e.g. ``strategy``).

    Returns
    -------
    CheckReport
        ``max_error`` over ``(N, K, A, L)`` pair contributions; ``details``:
        ``channel_sums`` (error of the sums over ``A``), ``captum_delta``,
        ``ours_delta``.
    """
    from captum.attr import DeepLift

    ours = _ours(model, explainer)
    n, k = references.shape[:2]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mult, delta = ours.attribute(inputs, references=references, target=target,
                                     return_multipliers=True, return_convergence_delta=True,
                                     **attribute_kwargs)
        pairs_x = inputs.repeat_interleave(k, 0)
        pairs_r = references.reshape(n * k, *references.shape[2:])
        pair_target = target
        if isinstance(target, Tensor) and target.numel() > 1:
            pair_target = target.repeat_interleave(k)
        elif isinstance(target, list):
            pair_target = [t for t in target for _ in range(k)]
        theirs, captum_delta = DeepLift(model).attribute(
            pairs_x, baselines=pairs_r, target=pair_target, return_convergence_delta=True)
    mine = mult * (inputs[:, None] - references)
    theirs = theirs.reshape(mine.shape)
    error = _max_abs_diff(mine, theirs)
    return CheckReport("agreement_captum_deeplift", _passes(error, atol), error, atol,
                       {"channel_sums": _max_abs_diff(mine.sum(2), theirs.sum(2)),
                        "captum_delta": float(captum_delta.abs().max()),
                        "ours_delta": float(delta.abs().max())})


_HOOK_DICTS = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks",
               "_backward_pre_hooks", "_forward_hooks_with_kwargs",
               "_forward_pre_hooks_with_kwargs", "_forward_hooks_always_called",
               "_state_dict_hooks", "_state_dict_pre_hooks", "_load_state_dict_pre_hooks",
               "_load_state_dict_post_hooks")

_GLOBAL_HOOKS = ("_global_forward_hooks", "_global_forward_pre_hooks",
                 "_global_backward_hooks", "_global_backward_pre_hooks",
                 "_global_forward_hooks_with_kwargs", "_global_forward_hooks_always_called")


def _function_mode_depth() -> int:
    length = getattr(torch._C, "_len_torch_function_stack", None)
    return int(length()) if length is not None else 0


def _snapshot(model, tensors: Sequence[Tensor]) -> dict:
    state: dict[str, Any] = {
        "tensors": [t.detach().clone() for t in tensors],
        "grad_enabled": torch.is_grad_enabled(),
        "function_modes": _function_mode_depth(),
        "global_hooks": {name: dict(getattr(torch.nn.modules.module, name, {}))
                         for name in _GLOBAL_HOOKS},
    }
    if isinstance(model, torch.nn.Module):
        state["params"] = {n: (p.detach().clone(), p.requires_grad,
                               None if p.grad is None else p.grad.detach().clone())
                           for n, p in model.named_parameters(remove_duplicate=False)}
        state["buffers"] = {n: b.detach().clone()
                            for n, b in model.named_buffers(remove_duplicate=False)}
        state["modules"] = {
            n: {"training": m.training, "attributes": set(m.__dict__),
                "hooks": {h: dict(getattr(m, h, {})) for h in _HOOK_DICTS},
                "children": dict(m._modules)}
            for n, m in model.named_modules(remove_duplicate=False)}
    return state


def _compare(before: dict, after: dict) -> tuple[list[str], float]:
    problems: list[str] = []
    worst = 0.0
    for i, (u, v) in enumerate(zip(before["tensors"], after["tensors"])):
        if not torch.equal(u, v):
            problems.append(f"input tensor #{i} was modified")
            worst = max(worst, _max_abs_diff(u, v))
    for key in ("grad_enabled", "function_modes", "global_hooks"):
        if before[key] != after[key]:
            problems.append(f"{key} changed: {before[key]!r} -> {after[key]!r}")
    if "params" not in before:
        return problems, worst
    if before["params"].keys() != after["params"].keys():
        problems.append("the set of parameters changed")
    for name, (p, grad_flag, grad) in before["params"].items():
        if name not in after["params"]:
            continue
        q, grad_flag2, grad2 = after["params"][name]
        if not torch.equal(p, q):
            problems.append(f"parameter {name!r} changed")
            worst = max(worst, _max_abs_diff(p, q))
        if grad_flag != grad_flag2:
            problems.append(f"parameter {name!r} requires_grad changed")
        if (grad is None) != (grad2 is None) or (grad is not None and not torch.equal(grad, grad2)):
            problems.append(f"parameter {name!r} .grad changed")
    if before["buffers"].keys() != after["buffers"].keys():
        problems.append("the set of buffers changed")
    for name, b in before["buffers"].items():
        if name in after["buffers"] and not torch.equal(b, after["buffers"][name]):
            problems.append(f"buffer {name!r} changed")
            worst = max(worst, _max_abs_diff(b, after["buffers"][name]))
    if before["modules"].keys() != after["modules"].keys():
        problems.append("the module tree changed")
    for name, m in before["modules"].items():
        other = after["modules"].get(name)
        if other is None:
            continue
        label = name or "<root>"
        if m["training"] != other["training"]:
            problems.append(f"module {label!r} training flag changed")
        added = other["attributes"] - m["attributes"]
        removed = m["attributes"] - other["attributes"]
        if added or removed:
            problems.append(f"module {label!r} attributes changed (added {sorted(added)}, "
                            f"removed {sorted(removed)})")
        for h, hooks in m["hooks"].items():
            if hooks != other["hooks"][h]:
                problems.append(f"module {label!r} {h} changed")
        if m["children"] != other["children"]:
            problems.append(f"module {label!r} submodules changed")
    return problems, worst


def check_model_unchanged(
    explainer,
    inputs: Tensor | tuple[Tensor, ...],
    references: Any = None,
    repeats: int = 2,
    expect_error: type[BaseException] | tuple[type[BaseException], ...] | None = None,
    **attribute_kwargs,
) -> CheckReport:
    """Calling ``attribute`` leaves the model, the inputs and torch's state as they were.

    Snapshots, before and after ``repeats`` calls (each may raise), the
    model's parameters (values, ``requires_grad``, ``.grad``), buffers, the
    hook dictionaries, ``training`` flags, attribute names and children of
    every submodule, torch's global module hooks, grad mode and
    torch-function-mode stack, and the input and reference tensors. Repeated
    calls that return must return bitwise identical results (no state
    carried between calls).

    Parameters
    ----------
    explainer
        A Captum-style attribution object; its ``forward_func`` is the model.
    inputs : Tensor ``(N, A, L)`` or tuple of ``(N, *shape_j)``
    references : Tensor ``(N, K, A, L)``, tuple, or a generator spec
        Passed as ``references=`` when not None; methods without references
        (e.g. :class:`~captum_genomics.FastSHAP`) take None. Default None.
    repeats : int
        Calls to make. Default 2.
    expect_error : exception type(s), optional
        If given, every call must raise it (e.g. ``ValueError`` for a target
        out of range); the check then verifies that a failed call leaves
        nothing behind.
    **attribute_kwargs
        Passed to ``attribute`` (e.g. ``target``, ``strict=True``).

    Returns
    -------
    CheckReport
        ``max_error`` is the largest change of a parameter, buffer or input
        value, or the difference between repeated results; ``details``:
        ``problems`` (list of what changed), ``raised`` (exception type names).
    """
    model = _model_of(explainer)
    tensors = list(_as_tuple(inputs))
    if _explicit(references):
        tensors += list(_as_tuple(references))
    before = _snapshot(model, tensors)
    results, raised = [], []
    for _ in range(repeats):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                kwargs = dict(attribute_kwargs)
                if references is not None:
                    kwargs["references"] = references
                results.append(explainer.attribute(inputs, **kwargs))
        except Exception as error:  # noqa: BLE001 - the check reports, never raises
            raised.append(error)
    after = _snapshot(model, tensors)
    problems, worst = _compare(before, after)
    if expect_error is not None:
        wrong = [e for e in raised if not isinstance(e, expect_error)]
        if len(raised) != repeats or wrong:
            problems.append(f"expected every call to raise {expect_error!r}; got "
                            f"{[type(e).__name__ for e in raised]}")
    elif raised:
        problems.append(f"calls raised {[f'{type(e).__name__}: {e}' for e in raised]}")
    for other in results[1:]:
        first, second = _flatten_result(results[0]), _flatten_result(other)
        if not _equal(first, second):
            problems.append("repeated calls returned different results")
            worst = max(worst, _max_abs_diff(first, second))
    return CheckReport("model_unchanged", not problems, worst, 0.0,
                       {"problems": problems,
                        "raised": [type(e).__name__ for e in raised]})


def _flatten_result(result) -> tuple[Tensor, ...]:
    if isinstance(result, Tensor):
        return (result,)
    out: list[Tensor] = []
    for item in result:
        out.extend(_flatten_result(item))
    return tuple(out)

