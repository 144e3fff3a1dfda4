"""Agreement with the peers: tangermeme's ``deep_lift_shap`` and Captum's ``DeepLift``."""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import Tensor

from captum_genomics.testing.checks.additivity import reference_outputs
from captum_genomics.testing.checks.report import CheckReport, _max_abs_diff, _passes

__all__ = ["check_agreement_tangermeme", "check_agreement_captum_deeplift"]


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
