"""The model, the inputs and torch's global state come back unchanged from ``attribute``."""

from __future__ import annotations

import warnings
from typing import Any, Sequence

import torch
from torch import Tensor

from captum_genomics.testing.checks.report import (CheckReport, _as_tuple, _equal, _explicit,
                                                   _flatten_result, _max_abs_diff, _model_of)

__all__ = ["check_model_unchanged", "snapshot_state", "compare_states"]


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


def snapshot_state(model, tensors: Sequence[Tensor]) -> dict:
    """Copies of everything ``attribute`` must leave as it was.

    Parameters
    ----------
    model : nn.Module or callable
        For a module: parameters (values, ``requires_grad``, ``.grad``),
        buffers, and per submodule the training flag, attribute names, hooks
        and children. A plain callable contributes nothing.
    tensors : sequence of Tensor
        The user's inputs (and references), cloned.

    Returns
    -------
    dict
        Compare two snapshots with :func:`compare_states`. Also records torch's
        grad mode, the depth of the ``TorchFunctionMode`` stack and the global
        module hooks.
    """
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


def compare_states(before: dict, after: dict) -> tuple[list[str], float]:
    """What changed between two :func:`snapshot_state` snapshots.

    Returns
    -------
    problems : list of str
        One line per change (empty when nothing changed).
    max_error : float
        The largest absolute change of a tensor value (0.0 when none changed).
    """
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
    before = snapshot_state(model, tensors)
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
    after = snapshot_state(model, tensors)
    problems, worst = compare_states(before, after)
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
