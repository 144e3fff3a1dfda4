"""The gate's suite for the peers as the method under test: is the tool you use silently wrong?

``--method`` names a peer implementation instead of this package's method:

=============================  ==================================================  ==========
method                         what runs                                           per
=============================  ==================================================  ==========
``captum:DeepLiftShap``        ``captum.attr.DeepLiftShap`` on each example, its   example
                               ``K`` references as the baseline distribution
``captum:DeepLift``            ``captum.attr.DeepLift`` on every example-          pair
                               reference pair
``captum:IntegratedGradients`` ``captum.attr.IntegratedGradients``,                example,
                               ``n_steps=50``, zero baseline and every reference   pair
``tangermeme:deep_lift_shap``  ``tangermeme.deep_lift_shap.deep_lift_shap``        example
``shap:DeepExplainer``         ``shap.DeepExplainer`` on each example, its ``K``   example
                               references as the background
=============================  ==================================================  ==========

Each runs one check, completeness: the figure is
``max |sum(attr) - (f(x) - mean_k f(r_k))|`` per example (``f(x) - f(r)`` per
pair), with ``f`` the model's plain forward and ``r_k`` the same dinucleotide
shuffles ``ShuffleDeepLiftShap`` uses
(:func:`~captum_genomics.testing.gate.sequence.shuffled_references`, seeded by
the context's ``random_state``). DeepLIFT/SHAP owes this exactly (bound
``1e-10`` in float64, ``1e-4`` in float32): a peer above it treats one of the
model's ops as linear and its attributions are off by about the figure, with
no warning (e.g. Captum's ``DeepLiftShap`` on a GELU model). Integrated
gradients owes it only in the limit of ``n_steps``; its bound is relative
(5% of the largest output difference), see :data:`IG_RTOL`.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from captum_genomics.testing.checks import reference_outputs
from captum_genomics.testing.gate.core import (
    CheckResult,
    GateContext,
    SkipCheck,
    register_suite,
    timed_check,
)
from captum_genomics.testing.gate.sequence import (
    ADDITIVITY_BOUND,
    default_target,
    output_shape,
    raised_in_peer,
    shape_text,
    shuffled_references,
)

__all__ = ["IG_N_STEPS", "IG_RTOL", "PEERS", "TABULAR_PEERS", "peer_suite"]

#: The peers the gate can run as the method under test.
PEERS = ("captum:DeepLiftShap", "captum:DeepLift", "captum:IntegratedGradients",
         "tangermeme:deep_lift_shap", "shap:DeepExplainer")

#: Peers that also take tabular inputs ``(N, G)`` (checked against a zero baseline only).
TABULAR_PEERS = ("captum:IntegratedGradients",)

#: Integration steps of Captum's integrated gradients (Gauss-Legendre, Captum's default rule).
IG_N_STEPS = 50

#: Relative completeness bound of integrated gradients: error ``<= IG_RTOL * max|f(x) - f(r)|``
#: (plus the additivity bound). IG is complete only as ``n_steps -> inf``: its attributions
#: are a quadrature of the path integral (Sundararajan, Taly & Yan 2017, "Axiomatic
#: attribution for deep networks", ICML), whose authors check completeness and find that
#: "somewhere between 20 and 300 steps are enough to approximate the integral (within 5%)".
#: An error above 5% of the output difference at ``n_steps=50`` means 50 steps do not
#: resolve the model's path (kinks of ReLU-like activations, steep saturations);
#: ``details["error_at_n_steps"]`` gives the error at 25 and 50 steps, so a user sees
#: whether more steps help (quadrature error) or not (the gradients themselves are off).
IG_RTOL = 5e-2

_DEEPLIFT_REASON = ("a DeepLIFT/SHAP attribution must sum exactly to the output difference "
                    "(rounding ~1e-14 in float64); above the bound the peer treats an op of "
                    "the model as linear and its attributions are off, without a warning")


def _quiet(call: Callable[[], Any]) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return call()


def _require(package: str) -> None:
    import importlib

    try:
        importlib.import_module(package)
    except ImportError as err:
        raise SkipCheck(f"{package} is not installed ({err}); pip install {package}") from None


class _Peer:
    """The data every peer check shares: inputs, references, target, plain outputs."""

    def __init__(self, context: GateContext):
        x = context.inputs
        tabular = context.method in TABULAR_PEERS and isinstance(x, Tensor) and x.ndim == 2
        if not tabular and (not isinstance(x, Tensor) or x.ndim != 3 or x.shape[1] != 4):
            shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"--method {context.method} takes one-hot inputs (N, 4, L)"
                             f"{' or features (N, G)' if context.method in TABULAR_PEERS else ''}"
                             f"; got {shape}.")
        self.context, self.model, self.x = context, context.model, x
        self.out_shape = output_shape(self.model, x)
        self.target = default_target(context.target, self.out_shape)
        self.refs = None if tabular else shuffled_references(context)
        self.n, self.k = (x.shape[0], 0) if tabular else self.refs.shape[:2]
        self.fx, self.fr = reference_outputs(
            self.model, x, x[:, None] if tabular else self.refs, self.target)
        self.dtype = x.dtype
        self.bound = ADDITIVITY_BOUND.get(self.dtype, ADDITIVITY_BOUND[torch.float32])

    def pairs(self) -> tuple[Tensor, Tensor]:
        """``(N*K, 4, L)`` inputs and references, example-major."""
        return (self.x.repeat_interleave(self.k, 0),
                self.refs.reshape(self.n * self.k, *self.refs.shape[2:]))

    def per_example(self, attr: Tensor) -> tuple[float, dict]:
        expected = (self.fx[:, None] - self.fr).mean(1)
        return _errors(attr, expected, "example")

    def per_pair(self, attr: Tensor) -> tuple[float, dict]:
        expected = (self.fx[:, None] - self.fr).reshape(-1)
        return _errors(attr, expected, "pair")


def _errors(attr, expected: Tensor, unit: str) -> tuple[float, dict]:
    attr = torch.as_tensor(attr).detach().double().cpu()
    total = attr.reshape(attr.shape[0], -1).sum(1)
    err = (total - expected).abs()
    worst = int(err.argmax())
    scale = float(expected.abs().max()) if expected.numel() else 0.0
    return float(err.max()), {"per": unit, "worst_index": worst,
                              "attribution_sum": float(total[worst]),
                              "output_difference": float(expected[worst]),
                              "max_abs_output_difference": scale,
                              "relative_error": float(err.max()) / scale if scale else None}


def _captum_deeplift_shap(p: _Peer) -> list[CheckResult]:
    def measure():
        _require("captum")
        from captum.attr import DeepLiftShap

        if p.k < 2:
            raise SkipCheck("Captum's DeepLiftShap needs at least 2 references "
                            "(--n-references >= 2)")
        attr = torch.cat([_quiet(lambda i=i: DeepLiftShap(p.model).attribute(
            p.x[i:i + 1], baselines=p.refs[i], target=p.target)) for i in range(p.n)])
        return p.per_example(attr)

    return [timed_check("completeness", p.bound, _DEEPLIFT_REASON, measure)]


def _captum_deeplift(p: _Peer) -> list[CheckResult]:
    def measure():
        _require("captum")
        from captum.attr import DeepLift

        x, r = p.pairs()
        attr = _quiet(lambda: DeepLift(p.model).attribute(x, baselines=r, target=p.target))
        return p.per_pair(attr)

    return [timed_check("completeness", p.bound, _DEEPLIFT_REASON + " (each reference "
                        "separately)", measure)]


def _ig(p: _Peer, x: Tensor, baselines: Tensor, n_steps: int) -> Tensor:
    from captum.attr import IntegratedGradients

    return _quiet(lambda: IntegratedGradients(p.model).attribute(
        x, baselines=baselines, target=p.target, n_steps=n_steps,
        internal_batch_size=max(n_steps, 256)))


def _captum_integrated_gradients(p: _Peer) -> list[CheckResult]:
    reason = (f"relative: {IG_RTOL:g} * max|f(x) - f(r)| (+ {p.bound:g}); IG is complete only "
              "as n_steps -> inf, and 20-300 steps approximate the integral within 5% "
              f"(Sundararajan et al. 2017); n_steps={IG_N_STEPS}, details give the error at "
              "half the steps")
    zeros = torch.zeros_like(p.x[:1])
    f0 = reference_outputs(p.model, zeros, zeros[:, None], p.target)[0]      # f(0), (1,)

    def result(name: str, x: Tensor, baselines: Tensor, expected: Tensor) -> CheckResult:
        bound = IG_RTOL * float(expected.abs().max()) + p.bound

        def measure():
            _require("captum")
            figure, details = _errors(_ig(p, x, baselines, IG_N_STEPS), expected, details_unit)
            half, _ = _errors(_ig(p, x, baselines, IG_N_STEPS // 2), expected, details_unit)
            details["n_steps"] = IG_N_STEPS
            details["error_at_n_steps"] = {str(IG_N_STEPS // 2): half, str(IG_N_STEPS): figure}
            return figure, details

        details_unit = "example" if name.endswith("zero_baseline") else "pair"
        return timed_check(name, bound, reason, measure)

    checks = [result("completeness_zero_baseline", p.x, torch.zeros_like(p.x), p.fx - f0)]
    if p.refs is not None:  # one-hot sequences: also against the shuffled references
        pairs_x, pairs_r = p.pairs()
        checks.append(result("completeness_references", pairs_x, pairs_r,
                             (p.fx[:, None] - p.fr).reshape(-1)))
    return checks


def _tangermeme(p: _Peer) -> list[CheckResult]:
    def measure():
        _require("tangermeme")
        from tangermeme.deep_lift_shap import deep_lift_shap

        if len(p.out_shape) != 1:
            raise SkipCheck("tangermeme's deep_lift_shap needs a (B, T) output; the model "
                            f"returns {shape_text(p.out_shape)}")
        if not isinstance(p.target, int):
            raise SkipCheck(f"tangermeme takes an int target, got {p.target!r}")
        attr = _quiet(lambda: deep_lift_shap(p.model, p.x, target=p.target, references=p.refs,
                                             device=p.x.device, batch_size=64))
        return p.per_example(attr)

    return [timed_check("completeness", p.bound, _DEEPLIFT_REASON, measure)]


def _shap_deep_explainer(p: _Peer) -> list[CheckResult]:
    def measure():
        _require("shap")
        import numpy as np
        import shap

        if len(p.out_shape) != 1 or not isinstance(p.target, int):
            raise SkipCheck("shap's DeepExplainer explains outputs (B, T) with an int target; "
                            f"the model returns {shape_text(p.out_shape)}, target {p.target!r}")
        rows = []
        for i in range(p.n):
            try:
                values = _quiet(lambda i=i: shap.DeepExplainer(p.model, p.refs[i]).shap_values(
                    p.x[i:i + 1], check_additivity=False))
            except Exception as err:
                if raised_in_peer(err, "shap"):
                    first = str(err).splitlines()[0] if str(err) else ""
                    raise SkipCheck(f"shap's DeepExplainer cannot run this model: "
                                    f"{type(err).__name__}: {first}") from None
                raise
            values = np.asarray(values[p.target] if isinstance(values, list) else values)
            if values.ndim == p.x.ndim + 1:  # (1, 4, L, T): one slice per output
                values = values[..., p.target]
            rows.append(torch.from_numpy(np.ascontiguousarray(values)))
        return p.per_example(torch.cat(rows))

    return [timed_check("completeness", p.bound, _DEEPLIFT_REASON, measure)]


_RUNNERS = {
    "captum:DeepLiftShap": _captum_deeplift_shap,
    "captum:DeepLift": _captum_deeplift,
    "captum:IntegratedGradients": _captum_integrated_gradients,
    "tangermeme:deep_lift_shap": _tangermeme,
    "shap:DeepExplainer": _shap_deep_explainer,
}


@register_suite(*PEERS)
def peer_suite(context: GateContext) -> list[CheckResult]:
    """Completeness of a peer implementation (``context.method`` in :data:`PEERS`) on the model.

    Parameters
    ----------
    context : GateContext
        ``method`` one of :data:`PEERS`; ``model`` mapping ``(B, 4, L)`` to
        ``(B,)`` or ``(B, T)``; ``inputs`` ``(N, 4, L)`` one-hot; ``target``
        (None: ``0`` for ``(B, T)``); ``n_references`` ``K``;
        ``random_state`` (seeds the dinucleotide-shuffled references).

    Returns
    -------
    list of CheckResult
        ``completeness`` (``completeness_zero_baseline`` and
        ``completeness_references`` for integrated gradients; on tabular
        inputs ``(N, G)`` only the zero baseline). Skipped, with
        the reason, when the peer is not installed or cannot take the model's
        output or target (shap: when it raises on the model). An exception in
        Captum or tangermeme fails the check (``details["error"]``): the tool
        does not run on this model.

    Raises
    ------
    ValueError
        If ``context.method`` is not a peer, ``inputs`` is not ``(N, 4, L)`` or
        the model does not return ``(B,)`` / ``(B, T)``.
    """
    runner = _RUNNERS.get(context.method)
    if runner is None:
        raise ValueError(f"method {context.method!r} is not a peer; expected one of {PEERS}.")
    return runner(_Peer(context))
