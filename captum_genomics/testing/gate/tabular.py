"""The gate's ``FastSHAP`` suite: what amortized Shapley values owe on a user's tabular model.

The model maps expression ``(N, G)`` to outputs ``(N, T)`` (or ``(N,)``);
``context.inputs`` are the cells explained, ``context.options["x_train"]``
(optional) the cells FastSHAP is trained on. Every check measures one figure
and holds it to a stated bound (:func:`fastshap_suite` lists them with their
reasons). The suite trains small explainers (a few epochs, narrow layers), so
on a 50-gene MLP it takes a few seconds on one CPU core.

FastSHAP is Jethani, Sudarshan, Covert, Lee & Ranganath (ICLR 2022); exact
Shapley values by enumeration follow Shapley (1953), see
:mod:`captum_genomics.fastshap.exact`.
"""

from __future__ import annotations

import copy
import math
import os
import tempfile
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from captum_genomics._utils.targets import resolve_output_target
from captum_genomics.fastshap.exact import exact_shapley
from captum_genomics.methods.fast_shap import FastSHAP
from captum_genomics.sc.inputs import FeatureRows
from captum_genomics.testing.checks import (
    check_model_unchanged,
    snapshot_state,
)
from captum_genomics.testing.gate.core import (
    CheckResult,
    GateContext,
    SkipCheck,
    state_result,
    register_suite,
    timed_check,
)

__all__ = [
    "ACCURACY_BOUND",
    "MAX_EXACT_CELLS",
    "MAX_EXACT_PLAYERS",
    "contiguous_groups",
    "fastshap_suite",
    "relative_l2_error",
]

MAX_EXACT_PLAYERS = 12
"""Players of the accuracy check: ``min(12, G)`` contiguous gene groups (``2^12 = 4096`` coalitions)."""

MAX_EXACT_CELLS = 32
"""Cells whose exact Shapley values the accuracy check enumerates."""

MAX_TRAIN_CELLS = 256
"""Training cells of the small per-gene explainers (the first rows of ``x_train``)."""

ACCURACY_BOUND = 0.3
"""Default bound of the relative mean L2 error to exact Shapley values.

Measured with the suite's own check (:func:`_accuracy`: 12 gene groups, 32
cells, 40 epochs) on 48 correct setups: MLPs with ReLU, two GELU layers, a
wide tanh layer, and a linear model; 12, 50 and 200 genes; identity and
softmax links; float64 and float32: worst 0.071, median 0.031. An explainer
that only splits the efficiency gap evenly over the players scores 0.84-0.98
on the same setups, so 0.3 leaves a margin of about 4x over a correct setup
and still flags one that learnt nothing.
"""

ACCURACY_VALUE_SCALE = 0.3
"""Mean L2 norm the accuracy check rescales the exact values' game to (see :func:`_accuracy`)."""

_ACCURACY_TRAINING = {"max_epochs": 40, "n_samples": 32, "batch_size": 16, "lr": 2e-3,
                      "schedule": "cosine", "early_stopping_patience": None}
_ACCURACY_EXPLAINER = {"hidden_width": 128}
_SMALL_TRAINING = {"max_epochs": 3, "batch_size": 32}
_SMALL_EXPLAINER = {"hidden_width": 32}

_FLOAT_BOUND = {torch.float64: 1e-10, torch.float32: 1e-5}
_RELATIVE_BOUND = {torch.float64: 1e-12, torch.float32: 1e-5}


# ----------------------------------------------------------------------------- helpers
def contiguous_groups(n_features: int, n_groups: int = MAX_EXACT_PLAYERS) -> list[list[int]]:
    """``min(n_groups, n_features)`` groups of consecutive feature indices, sizes differing by <= 1.

    Parameters
    ----------
    n_features : int
        ``G``, at least 1.
    n_groups : int
        The most groups. Default :data:`MAX_EXACT_PLAYERS` (12).

    Returns
    -------
    list of list of int
        Group ``j`` holds a run of consecutive indices (``numpy.array_split``);
        together they cover ``0..G-1`` once.
    """
    d = max(1, min(int(n_groups), int(n_features)))
    return [[int(i) for i in g] for g in np.array_split(np.arange(int(n_features)), d)]


def relative_l2_error(estimate: Tensor, exact: Tensor) -> tuple[float, float, float]:
    """Mean L2 error over examples, relative to the exact values' mean L2 norm.

    Parameters
    ----------
    estimate, exact : Tensor ``(N, d)``
        Player values per example.

    Returns
    -------
    relative : float
        ``mean_i ||estimate_i - exact_i|| / mean_i ||exact_i||``, computed in
        float64 (``inf`` when the exact values are all 0 and the estimate is not).
    mean_l2 : float
        ``mean_i ||estimate_i - exact_i||``.
    exact_norm : float
        ``mean_i ||exact_i||``.
    """
    est, ref = estimate.detach().double().cpu(), exact.detach().double().cpu()
    mean_l2 = float((est - ref).norm(dim=1).mean())
    norm = float(ref.norm(dim=1).mean())
    if norm == 0.0:
        return (0.0 if mean_l2 == 0.0 else math.inf), mean_l2, norm
    return mean_l2 / norm, mean_l2, norm


def _apply_link(y: Tensor, link: str) -> Tensor:
    y = y.unsqueeze(1) if y.dim() == 1 else y
    return torch.softmax(y, dim=-1) if link == "softmax" else y


class _LinkedOutputs(nn.Module):
    """``scale * link(model(x))``, optionally only output ``index`` (kept as ``(B, 1)``).

    Holds the user's model as a child without changing it: the wrapper's own
    ``training`` flag is set directly (``eval()`` would recurse into the model).
    """

    def __init__(self, model: nn.Module, link: str, scale: float, index: int | None):
        super().__init__()
        self.model, self.link, self.scale, self.index = model, link, float(scale), index
        self.training = False

    def forward(self, x: Tensor) -> Tensor:
        y = _apply_link(self.model(x), self.link)
        if self.index is not None:
            y = y[:, self.index:self.index + 1]
        return self.scale * y


def _group_game(model: Any, groups: list[list[int]], n_features: int, link: str):
    """``v(x, S) = link(f(x masked to the groups in S, 0 elsewhere))``, written from the definition.

    Independent of :mod:`captum_genomics.fastshap.games`: the feature mask is
    ``S (R, d) @ membership (d, G)``.
    """
    member = torch.zeros(len(groups), n_features)
    for j, g in enumerate(groups):
        member[j, g] = 1.0

    def game(x: Tensor, S: Tensor) -> Tensor:
        mask = S.to(x.dtype) @ member.to(device=x.device, dtype=x.dtype)
        with torch.no_grad():
            return _apply_link(model(x * mask), link)

    return game


class _Setup:
    """What every check of the suite reads: inputs, training cells, target, link, bounds."""

    def __init__(self, context: GateContext):
        x = context.inputs
        if isinstance(x, tuple) and len(x) == 1:
            x = x[0]
        if not isinstance(x, Tensor) or x.dim() != 2:
            shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(
                f"FastSHAP's gate needs `inputs` of expression (N, G) as a tensor, got {shape}.")
        self.model = context.model
        self.x = x
        self.dtype = x.dtype
        self.options = dict(context.options or {})
        self.link = self.options.get("link", "identity")
        if self.link not in ("identity", "softmax"):
            raise ValueError(f"options['link'] must be 'identity' or 'softmax', got {self.link!r}.")
        train = self.options.get("x_train")
        if train is None:
            self.x_train = x[:MAX_TRAIN_CELLS]
        else:
            rows = FeatureRows(train, None, False, "x_train")
            self.x_train = rows.rows(0, min(rows.n, MAX_TRAIN_CELLS), self.dtype).to(x.device)
        with torch.no_grad():
            self.fx = _apply_link(self.model(x), self.link)            # (N, T)
        self.n_outputs = self.fx.shape[1]
        self.target = resolve_output_target(context.target, x.shape[0], self.n_outputs)
        self.random_state = int(context.random_state)
        self.on_cpu = x.device.type == "cpu"
        self.float_bound = _FLOAT_BOUND.get(self.dtype, 1e-5)
        self.relative_bound = _RELATIVE_BOUND.get(self.dtype, 1e-5)
        self.explainer: FastSHAP | None = self.options.get("explainer")
        self.user_explainer = self.explainer is not None
        # f(baseline): the explainer's baseline (0 for the explainers fitted here)
        base = (self.explainer.baseline if self.user_explainer
                else torch.zeros(x.shape[1])).to(device=x.device, dtype=self.dtype)
        with torch.no_grad():
            f0 = _apply_link(self.model(base.reshape(1, -1).expand_as(x).clone()), self.link)
        self.diff = self.fx.double() - f0.double()                         # (N, T)

    def fit_small(self) -> FastSHAP:
        """A per-gene explainer, a few epochs on ``x_train`` under ``random_state``."""
        return FastSHAP.fit(self.model, self.x_train, self.x_train[:64], link=self.link,
                            random_state=self.random_state,
                            explainer_kwargs=dict(_SMALL_EXPLAINER),
                            train_kwargs=dict(_SMALL_TRAINING))

    def checked_explainer(self) -> FastSHAP:
        """The user's fitted explainer (``options["explainer"]``) or a small one fitted here."""
        if self.explainer is None:
            self.explainer = self.fit_small()
        return self.explainer


# ----------------------------------------------------------------------------- checks
def _efficiency(s: _Setup) -> tuple[float, dict]:
    fs = s.checked_explainer()
    phi = fs.attribute(s.x, targets="all", return_player_values=True)   # (N, d, T)
    gap = (phi.double().sum(1) - s.diff).abs()                          # (N, T)
    worst = int(gap.max(dim=1).values.argmax())
    return float(gap.max()), {"output_scale": float(s.diff.abs().max()), "worst_cell": worst,
                              "n_players": int(phi.shape[1]), "n_outputs": int(phi.shape[2])}


def _accuracy(s: _Setup) -> tuple[float, dict]:
    n_features = s.x.shape[1]
    groups = contiguous_groups(n_features)
    d = len(groups)
    n = min(s.x.shape[0], MAX_EXACT_CELLS)
    cells = s.x[:n]
    game = _group_game(s.model, groups, n_features, s.link)
    per_cell = isinstance(s.target, Tensor)
    exact = []
    for i in range(n):                                     # one cell's 2^d coalitions at a time
        values = exact_shapley(game, cells[i:i + 1], n_players=d)[0]    # (d, T)
        t = int(s.target[i]) if per_cell else s.target
        exact.append(values[:, t])
    exact = torch.stack(exact).double()                                 # (n, d)
    norm = float(exact.norm(dim=1).mean())
    if not math.isfinite(norm) or norm <= 1e-12 * (1.0 + float(s.fx.abs().max())):
        raise SkipCheck(
            f"the exact Shapley values of {d} gene groups are all ~0 on these cells (mean norm "
            f"{norm:.3g}): the explained output does not depend on the genes here, so a "
            "relative error is undefined")
    # Adam's step size is absolute: rescale the game so the values' mean norm is 0.3, where
    # the recipe was measured, then scale back (Shapley values are linear in the game).
    scale = ACCURACY_VALUE_SCALE / norm
    wrapped = _LinkedOutputs(s.model, s.link, scale, None if per_cell else s.target)
    train = torch.cat([cells, s.x_train[:max(0, 64 - n)]]) if s.options.get("x_train") \
        is not None else s.x[:64]
    fs = FastSHAP.fit(wrapped, train, train, players=groups, random_state=s.random_state,
                      explainer_kwargs=dict(_ACCURACY_EXPLAINER),
                      train_kwargs=dict(_ACCURACY_TRAINING))
    target = (s.target[:n] if per_cell else 0)
    est = fs.attribute(cells, target=target, return_player_values=True).double() / scale
    rel, mean_l2, _ = relative_l2_error(est, exact)
    split = (exact.sum(1, keepdim=True) / d).expand_as(exact)
    even, _, _ = relative_l2_error(split, exact)
    return rel, {"n_players": d, "n_cells": n, "mean_l2": mean_l2, "exact_mean_norm": norm,
                 "even_split_error": even,
                 "group_sizes": sorted({len(g) for g in groups})}


def _batch_invariance(s: _Setup) -> tuple[float, dict]:
    fs = s.checked_explainer()
    n = s.x.shape[0]
    whole = fs.attribute(s.x, target=s.target).double()
    scale = float(whole.abs().max())
    per_size = {}
    for bs in sorted({1, 3, n}):
        other = fs.attribute(s.x, target=s.target, batch_size=bs).double()
        per_size[str(bs)] = float((other - whole).abs().max()) / max(scale, 1e-300)
    return max(per_size.values()), {"relative_difference_by_batch_size": per_size,
                                    "max_abs_attribution": scale}


def _determinism(s: _Setup) -> tuple[float, dict]:
    first = s.fit_small() if s.user_explainer else s.checked_explainer()
    a = first.attribute(s.x, target=s.target).double()
    b = s.fit_small().attribute(s.x, target=s.target).double()
    scale = max(float(a.abs().max()), 1e-300)
    return float((a - b).abs().max()) / scale, {"bitwise_equal": bool(torch.equal(a, b)),
                                                "random_state": s.random_state}


def _save_load(s: _Setup) -> tuple[float, dict]:
    fs = s.checked_explainer()
    before = fs.attribute(s.x, target=s.target)
    with tempfile.TemporaryDirectory(prefix="cg-gate-fastshap-") as tmp:
        path = os.path.join(tmp, "fastshap.pt")
        fs.save(path)
        loaded = FastSHAP.load(path, s.model)
        after = loaded.attribute(s.x, target=s.target)
    return float((after.double() - before.double()).abs().max()), {
        "bitwise_equal": bool(torch.equal(after, before)), "dtype": str(after.dtype)}


def fastshap_device_agreement(fs: FastSHAP, model: Any, x: Tensor, target: Any) -> tuple[float, dict]:
    """Attributions of ``fs`` on ``x.device`` against the same explainer loaded on the CPU.

    The explainer goes through :meth:`FastSHAP.save` / :meth:`FastSHAP.load`
    (``map_location="cpu"``) with a CPU copy of ``model``; the user's objects
    are not touched.

    Returns
    -------
    figure : float
        ``max |a_device - a_cpu| / max(max |a_cpu|, 1e-300)``.
    details : dict
        ``max_abs_difference`` and the two devices.
    """
    on_device = fs.attribute(x, target=target).detach().cpu().double()
    cpu_model = copy.deepcopy(model).cpu()
    with tempfile.TemporaryDirectory(prefix="cg-gate-fastshap-") as tmp:
        path = os.path.join(tmp, "fastshap.pt")
        fs.save(path)
        on_cpu = FastSHAP.load(path, cpu_model, map_location="cpu").attribute(
            x.cpu(), target=target.cpu() if isinstance(target, Tensor) else target)
    on_cpu = on_cpu.detach().double()
    diff = float((on_device - on_cpu).abs().max())
    return diff / max(float(on_cpu.abs().max()), 1e-300), {
        "max_abs_difference": diff, "devices": [str(x.device), "cpu"]}


def _device_agreement(s: _Setup) -> tuple[float, dict]:
    if s.on_cpu:
        raise SkipCheck("runs on the CPU already (use --device cuda to compare a GPU with the "
                        "CPU)")
    return fastshap_device_agreement(s.checked_explainer(), s.model, s.x, s.target)


def _unchanged(s: _Setup, start: dict) -> tuple[float, dict]:
    fs = s.checked_explainer()
    report = check_model_unchanged(fs, s.x, repeats=2, target=s.target)
    return state_result(report, start, s.model, [s.x])


# ----------------------------------------------------------------------------- the suite
@register_suite("FastSHAP")
def fastshap_suite(context: GateContext) -> list[CheckResult]:
    """The checks :class:`~captum_genomics.FastSHAP` owes on a user's tabular model.

    Parameters
    ----------
    context : GateContext
        ``model`` maps ``(B, G)`` to ``(B, T)`` or ``(B,)`` (eval mode);
        ``inputs`` ``(N, G)`` the explained cells (a tensor on the model's
        device, in its dtype); ``target`` a Captum target of the ``(B, T)``
        output (None for one output); ``random_state`` seeds every fit.
        ``options`` may hold ``x_train`` (cells to train on: tensor, ndarray,
        scipy sparse or AnnData; default the inputs; the first 256 rows are
        used), ``link`` (``"identity"``, default, or ``"softmax"``: explain
        class probabilities of a model returning logits), ``explainer`` (a
        fitted :class:`~captum_genomics.FastSHAP` of this model to check
        instead of the small one fitted here) and ``accuracy_bound`` (default
        :data:`ACCURACY_BOUND`).

    Returns
    -------
    list of CheckResult
        In order:

        - ``efficiency``: ``max |sum_j phi_j - (link f(x) - link f(b))|``
          over cells and outputs, with ``f`` called directly (``b`` the
          explainer's baseline, 0 by default). Bound ``1e-10`` (float64) or
          ``1e-5`` (float32) times ``max(1, max |link f(x) - link f(b)|)``:
          additive efficient normalization makes it exact up to the rounding
          of a sum over ``d`` players.
        - ``exact_shapley_accuracy``: the genes grouped into ``min(12, G)``
          contiguous players; exact Shapley values of the first 32 cells by
          enumerating all ``2^d`` coalitions of a game written here from the
          definition (held-out groups set to 0); a grouped FastSHAP trained
          40 epochs on those cells (in-sample: the check measures whether
          training reaches the exact values, not generalization). Figure:
          mean L2 error relative to the exact values' mean norm; bound
          :data:`ACCURACY_BOUND` (its docstring gives the measurements).
        - ``batch_invariance``: ``batch_size`` 1, 3 and N against one pass;
          largest difference relative to ``max |attribution|``. Bound
          ``1e-12`` (float64: matrix products may sum in another order for
          another number of rows) or ``1e-5`` (float32).
        - ``determinism``: two ``FastSHAP.fit(random_state=...)`` calls give
          the same attributions; relative difference, bound 0 (bitwise) on
          CPU, the batch-invariance bound on other devices (their kernels may
          not be deterministic).
        - ``save_load``: ``FastSHAP.save`` to a temporary directory and
          ``FastSHAP.load``: attributions bitwise equal (bound 0).
        - ``model_unchanged``: after repeated ``attribute`` calls and after
          the whole suite, the model's parameters, buffers, hooks, flags and
          the inputs are as they were (bound 0).

    Raises
    ------
    ValueError
        If ``inputs`` is not a tensor ``(N, G)``, ``options["link"]`` is
        unknown, or ``target`` does not fit the model's outputs.
    """
    start = snapshot_state(context.model, [context.inputs] if isinstance(context.inputs, Tensor)
                           else list(context.inputs))
    s = _Setup(context)
    exactly = "bitwise on CPU" if s.on_cpu else "to the float tolerance off the CPU"
    results = [
        timed_check("efficiency", s.float_bound * max(1.0, float(s.diff.abs().max())),
                    "additive efficient normalization makes sum(phi) = f(x) - f(baseline) "
                    "exactly, up to the rounding of a sum over players "
                    f"({s.float_bound:g} in {s.dtype}, times the output scale when above 1)",
                    lambda: _efficiency(s)),
        timed_check("exact_shapley_accuracy", float(s.options.get("accuracy_bound",
                                                                  ACCURACY_BOUND)),
                    "amortized estimates are approximate: correct setups reach <= 0.071 relative "
                    "L2 error on small MLPs (12 players, 40 epochs); an even split of the gap "
                    "scores 0.84-0.98", lambda: _accuracy(s)),
        timed_check("batch_invariance", s.relative_bound,
                    "one cell's values do not depend on the batch; matrix products may round "
                    f"differently for another number of rows ({s.relative_bound:g} relative in "
                    f"{s.dtype})", lambda: _batch_invariance(s)),
        timed_check("determinism", 0.0 if s.on_cpu else s.relative_bound,
                    f"every random choice of FastSHAP.fit comes from random_state ({exactly})",
                    lambda: _determinism(s)),
        timed_check("save_load", 0.0, "FastSHAP.save stores the weights and settings exactly",
                    lambda: _save_load(s)),
        timed_check("device_agreement", s.relative_bound,
                    "the same explainer on the CPU: the device's kernels round differently "
                    f"({s.relative_bound:g} relative in {s.dtype})",
                    lambda: _device_agreement(s)),
    ]
    results.append(timed_check("model_unchanged", 0.0,
                               "changes found: attribute and the whole suite must leave the "
                               "model and the inputs as they were", lambda: _unchanged(s, start)))
    return results
