"""The gate's ``HeadAblationExplainedVariance`` suite: head ablation checked on a user's model.

The reference is a brute-force loop written here from the definitions,
independently of :mod:`captum_genomics.heads` and
:mod:`captum_genomics.stats`: a copy of the model whose
``torch.nn.MultiheadAttention`` layers are replaced by :class:`HeadLoop`
(each head's ``softmax(q_h k_h^T / sqrt(d) + masks) v_h`` computed one head at
a time from the module's weights, ablated heads replaced by zero or by their
mean over a reference set), one forward per variant, and explained variance
per (head, group, gene) with numpy (AMICI: Hong et al. 2025).
"""

from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from captum_genomics.heads import ablated_forward
from captum_genomics.methods.head_ablation import HeadAblationExplainedVariance
from captum_genomics.stats.explained_variance import encode_groups, explained_variance
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

__all__ = ["HeadLoop", "explained_variance_numpy", "heads_suite"]

VARIANTS = (("keep", "zero"), ("remove", "zero"), ("keep", "mean"))
"""(ablation, mode) pairs the brute-force agreement check runs."""

_BOUND = {torch.float64: 1e-10, torch.float32: 1e-4}
_KEEP_ALL_BOUND = {torch.float64: 1e-10, torch.float32: 1e-5}


# ----------------------------------------------------------------------------- brute force
class HeadLoop(nn.Module):
    """``nn.MultiheadAttention`` recomputed one head at a time, some heads ablated.

    Written from the definition: head ``h`` is
    ``o_h = softmax(q_h k_h^T / sqrt(d) + masks) v_h`` with its rows of the
    in-projection, and the layer output is
    ``out_proj.bias + sum_h o_h W_out[:, h d:(h+1) d]^T``. Honours
    ``batch_first``, separate ``kdim``/``vdim`` weights, ``bias=False``,
    ``add_bias_kv``, ``add_zero_attn``, ``key_padding_mask`` and
    ``attn_mask`` (2-D or 3-D, bool or float); dropout is not applied (eval
    mode).

    Parameters
    ----------
    mha : nn.MultiheadAttention
        The module whose weights are used (not modified).
    keep : set of int
        Heads kept; the others contribute ``fill[h]`` (zeros by default).
    fill : list of Tensor ``(L, d)``, optional
        Per-head replacement of an ablated head's output (its reference mean).
    record : list, optional
        If given, every call appends its per-head outputs ``[(B, L, d)] * H``.

    Raises
    ------
    SkipCheck
        From ``forward``, for an unbatched call or ``is_causal=True`` (not
        implemented by the reference).
    """

    def __init__(self, mha: nn.MultiheadAttention, keep: set[int],
                 fill: list[Tensor] | None = None, record: list | None = None):
        super().__init__()
        self.mha, self.keep, self.fill, self.record = mha, set(keep), fill, record

    def _head_outputs(self, query, key, value, key_padding_mask, attn_mask):
        m = self.mha
        e, n_heads = m.embed_dim, m.num_heads
        d = e // n_heads
        if m.in_proj_weight is not None:
            w = (m.in_proj_weight[:e], m.in_proj_weight[e:2 * e], m.in_proj_weight[2 * e:])
        else:
            w = (m.q_proj_weight, m.k_proj_weight, m.v_proj_weight)
        bias = ((None,) * 3 if m.in_proj_bias is None else
                (m.in_proj_bias[:e], m.in_proj_bias[e:2 * e], m.in_proj_bias[2 * e:]))
        b = query.shape[0]

        def additive(mask):
            if mask is None:
                return None
            if mask.dtype == torch.bool:
                return torch.zeros(mask.shape, dtype=query.dtype,
                                   device=mask.device).masked_fill(mask, -math.inf)
            return mask.to(query.dtype)

        am, kpm = additive(attn_mask), additive(key_padding_mask)
        extra = int(m.bias_k is not None) + int(m.add_zero_attn)
        outs, weights = [], []
        for h in range(n_heads):
            rows = slice(h * d, (h + 1) * d)

            q, k, v = (x @ w[i][rows].T + (0.0 if bias[i] is None else bias[i][rows])
                       for i, x in enumerate((query, key, value)))
            if m.bias_k is not None:
                k = torch.cat([k, m.bias_k[..., rows].reshape(1, 1, d).expand(b, 1, d)], 1)
                v = torch.cat([v, m.bias_v[..., rows].reshape(1, 1, d).expand(b, 1, d)], 1)
            if m.add_zero_attn:
                k = torch.cat([k, k.new_zeros(b, 1, d)], 1)
                v = torch.cat([v, v.new_zeros(b, 1, d)], 1)
            scores = (q / math.sqrt(d)) @ k.transpose(1, 2)                     # (B, L, S)
            if am is not None:
                head_mask = am if am.dim() == 2 else am.view(b, n_heads, *am.shape[1:])[:, h]
                scores = scores + nn.functional.pad(head_mask, (0, extra))
            if kpm is not None:
                scores = scores + nn.functional.pad(kpm, (0, extra)).view(b, 1, -1)
            a = torch.softmax(scores, dim=-1)
            weights.append(a)
            outs.append(a @ v)                                                 # (B, L, d)
        return outs, torch.stack(weights, 1)

    def forward(self, query, key, value, key_padding_mask=None, need_weights=True,
                attn_mask=None, average_attn_weights=True, is_causal=False):
        m = self.mha
        if query.dim() != 3 or is_causal:
            raise SkipCheck("the brute-force reference handles batched calls without is_causal "
                            "only")
        if not m.batch_first:
            query, key, value = (t.transpose(0, 1) for t in (query, key, value))
        outs, attn = self._head_outputs(query, key, value, key_padding_mask, attn_mask)
        if self.record is not None:
            self.record.append([o.detach() for o in outs])
        d = m.embed_dim // m.num_heads
        out = 0.0 if m.out_proj.bias is None else m.out_proj.bias
        for h, o in enumerate(outs):
            if h not in self.keep:
                o = torch.zeros_like(o) if self.fill is None else self.fill[h].expand_as(o)
            out = out + o @ m.out_proj.weight[:, h * d:(h + 1) * d].T
        if not m.batch_first:
            out = out.transpose(0, 1)
        if not need_weights:
            return out, None
        return out, (attn.mean(1) if average_attn_weights else attn)


def _replace(model: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, module)


def explained_variance_numpy(pred: np.ndarray, obs: np.ndarray) -> tuple[np.ndarray, float]:
    """Per-gene and overall explained variance of one group's cells, from the definition.

    Parameters
    ----------
    pred, obs : ndarray ``(n, G)``
        Predictions and observed expression of the group's cells.

    Returns
    -------
    ev_gene : ndarray ``(G,)`` float64
        ``1 - var(pred - obs) / var(obs)`` (population variance); NaN for a
        gene constant in the group.
    ev_head : float
        ``1 - sum var(pred - obs) / sum var(obs)`` over all genes; NaN when
        every gene is constant.
    """
    pred, obs = np.asarray(pred, np.float64), np.asarray(obs, np.float64)
    res, var = np.var(pred - obs, axis=0), np.var(obs, axis=0)
    var[np.ptp(obs, axis=0) == 0] = 0.0
    with np.errstate(divide="ignore", invalid="ignore"):
        ev_gene = np.where(var > 0, 1.0 - res / var, np.nan)
    total = var.sum()
    return ev_gene, (1.0 - res.sum() / total if total > 0 else math.nan)


class _Setup:
    """The suite's inputs, resolved once from the context."""

    def __init__(self, context: GateContext):
        opts = dict(context.options or {})
        missing = [k for k in ("attention", "groups", "observed") if opts.get(k) is None]
        if missing:
            raise ValueError(
                f"the HeadAblationExplainedVariance gate needs options {missing}: `attention` "
                "(the attention layer name(s)), `groups` (N,) and `observed` (N, genes).")
        self.model = context.model
        inputs = context.inputs
        self.inputs = tuple(inputs) if isinstance(inputs, (tuple, list)) else (inputs,)
        args = opts.get("additional_forward_args")
        self.args = () if args is None else (tuple(args) if isinstance(args, (tuple, list))
                                             else (args,))
        layers = opts["attention"]
        self.layers = [layers] if isinstance(layers, str) else list(layers)
        self.groups, self.observed = opts["groups"], opts["observed"]
        self.n_permutations = int(opts.get("n_permutations", 9))
        self.random_state = int(context.random_state)
        self.explainer = HeadAblationExplainedVariance(self.model, self.layers)
        self.dtype = next((p.dtype for p in self.model.parameters() if p.is_floating_point()),
                          torch.float32)
        self.obs = np.asarray(self.observed.detach().cpu() if isinstance(self.observed, Tensor)
                              else self.observed, dtype=np.float64)
        labels = self.groups.detach().cpu().numpy() if isinstance(self.groups, Tensor) \
            else np.asarray(self.groups)
        self.cells = {str(u): np.flatnonzero(labels == u) for u in np.unique(labels)}
        self._results: dict = {}

    def call(self, **kwargs):
        return self.explainer.attribute(
            self.inputs if len(self.inputs) > 1 else self.inputs[0], self.groups, self.observed,
            additional_forward_args=self.args or None, n_permutations=self.n_permutations,
            random_state=self.random_state, **kwargs)

    def result(self, ablation: str, mode: str):
        key = (ablation, mode)
        if key not in self._results:
            extra = {}
            if mode == "mean":
                extra = {"reference_inputs": self.inputs, "reference_forward_args": self.args
                         or None}
            self._results[key] = self.call(ablation=ablation, mode=mode, **extra)
        return self._results[key]

    def forward(self, model) -> np.ndarray:
        with torch.no_grad():
            out = model(*self.inputs, *self.args)
        return out.detach().double().cpu().reshape(out.shape[0], -1).numpy()

    def numpy_ev(self, pred: np.ndarray, names: list[str], min_cells: int = 2):
        """EV tables ``(n_groups, G)`` and ``(n_groups,)`` in the order of ``names``."""
        ev_gene = np.full((len(names), pred.shape[1]), np.nan)
        ev_head = np.full(len(names), np.nan)
        for g, name in enumerate(names):
            idx = self.cells.get(name)
            if idx is None:
                raise ValueError(f"group {name!r} of the result is not a label of `groups`")
            if len(idx) >= min_cells:
                ev_gene[g], ev_head[g] = explained_variance_numpy(pred[idx], self.obs[idx])
        return ev_gene, ev_head


def _cpu(value: Any) -> Any:
    return value.cpu() if isinstance(value, Tensor) else value


def _device_agreement(s: _Setup) -> tuple[float, dict]:
    """EV per (head, group, gene) on the device against a CPU copy of the model."""
    device = next((t.device for t in s.inputs if isinstance(t, Tensor)), torch.device("cpu"))
    if device.type == "cpu":
        raise SkipCheck("runs on the CPU already (use --device cuda to compare a GPU with the "
                        "CPU)")
    on_device = s.result("keep", "zero")
    cpu_model = copy.deepcopy(s.model).cpu()
    inputs = tuple(_cpu(x) for x in s.inputs)
    on_cpu = HeadAblationExplainedVariance(cpu_model, s.layers).attribute(
        inputs if len(inputs) > 1 else inputs[0], _cpu(s.groups), _cpu(s.observed),
        additional_forward_args=tuple(_cpu(a) for a in s.args) or None,
        n_permutations=s.n_permutations, random_state=s.random_state)
    a = np.asarray(_cpu(on_device.ev_gene), dtype=np.float64)
    b = np.asarray(_cpu(on_cpu.ev_gene), dtype=np.float64)
    return _nan_max_diff(a, b), {"devices": [str(device), "cpu"]}


def _nan_max_diff(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape or not np.array_equal(np.isnan(a), np.isnan(b)):
        return math.inf
    diff = np.abs(a - b)[~np.isnan(a)]
    return float(diff.max()) if diff.size else 0.0


# ----------------------------------------------------------------------------- checks
def _brute_force(s: _Setup) -> tuple[float, dict]:
    modules = {name: s.model.get_submodule(name) for name in s.explainer.layer_names}
    other = {n: type(m).__name__ for n, m in modules.items()
             if not isinstance(m, nn.MultiheadAttention)}
    if other:
        raise SkipCheck(f"the brute-force reference is written for torch.nn.MultiheadAttention; "
                        f"layer(s) {other} are not")
    # The reference must first reproduce the model with every head kept.
    record: dict[str, list] = {n: [] for n in modules}
    full_copy = copy.deepcopy(s.model)
    for name, module in modules.items():
        _replace(full_copy, name, HeadLoop(full_copy.get_submodule(name),
                                           set(range(module.num_heads)), record=record[name]))
    plain, looped = s.forward(s.model), s.forward(full_copy)
    reproduction = float(np.abs(plain - looped).max()) / max(float(np.abs(plain).max()), 1e-300)
    fills = {n: [torch.cat([c[h] for c in calls]).mean(0) for h in range(modules[n].num_heads)]
             for n, calls in record.items()}
    details: dict[str, Any] = {"reproduction_relative_error": reproduction}
    worst = reproduction
    for ablation, mode in VARIANTS:
        result = s.result(ablation, mode)
        names = list(result.group_names)
        ev_gene = np.full(tuple(result.ev_gene.shape), np.nan)
        ev_head = np.full(tuple(result.ev_head.shape), np.nan)
        for v, (layer, head) in enumerate(result.heads):
            n_heads = modules[layer].num_heads
            keep = {head} if ablation == "keep" else set(range(n_heads)) - {head}
            variant = copy.deepcopy(s.model)
            _replace(variant, layer, HeadLoop(variant.get_submodule(layer), keep,
                                              fills[layer] if mode == "mean" else None))
            ev_gene[v], ev_head[v] = s.numpy_ev(s.forward(variant), names)
        err = max(_nan_max_diff(result.ev_gene.numpy(), ev_gene),
                  _nan_max_diff(result.ev_head.numpy(), ev_head))
        details[f"{ablation}/{mode}"] = err
        worst = max(worst, err)
    if reproduction > _BOUND.get(s.dtype, 1e-4):
        details["failure"] = (
            "the heads recomputed from the module's weights do not reproduce the model's "
            "output: the layer is not plain nn.MultiheadAttention (a subclass with its own "
            "forward?), so ablating its heads from its weights cannot be exact")
    return worst, details


def _keep_all(s: _Setup) -> tuple[float, dict]:
    result = s.result("keep", "zero")
    names = list(result.group_names)
    ref_gene, ref_head = s.numpy_ev(s.forward(s.model), names)
    keep = [torch.ones(1, a.n_heads, dtype=torch.bool) for a in s.explainer.layer_adapters]
    preds = ablated_forward(s.model, s.explainer.layer_adapters, keep, s.inputs, s.args or None)
    codes, enc_names = encode_groups(s.groups, preds.shape[1])
    obs = torch.from_numpy(s.obs).to(preds.device)
    gene, head, _ = explained_variance(preds[0], obs, codes.to(preds.device), len(enc_names))
    order = [enc_names.index(n) for n in names]
    keep_all = max(_nan_max_diff(gene.cpu().numpy()[order], ref_gene),
                   _nan_max_diff(head.cpu().numpy()[order], ref_head))
    full = max(_nan_max_diff(result.full_ev_gene.numpy(), ref_gene),
               _nan_max_diff(result.full_ev_head.numpy(), ref_head))
    return max(keep_all, full), {"keep_all_heads": keep_all, "full_model_ev": full}


def _unchanged(s: _Setup, start: dict) -> tuple[float, dict]:
    # Repeated results are compared bitwise with NaN equal to NaN (skipped groups and genes
    # constant within a group are NaN by design).
    report = check_model_unchanged(s.explainer, s.inputs if len(s.inputs) > 1 else s.inputs[0],
                                   repeats=2, groups=s.groups, observed=s.observed,
                                   additional_forward_args=s.args or None,
                                   n_permutations=s.n_permutations,
                                   random_state=s.random_state)
    return state_result(report, start, s.model, list(s.inputs))


# ----------------------------------------------------------------------------- the suite
@register_suite("HeadAblationExplainedVariance")
def heads_suite(context: GateContext) -> list[CheckResult]:
    """The checks :class:`~captum_genomics.HeadAblationExplainedVariance` owes on a user's model.

    Parameters
    ----------
    context : GateContext
        ``model`` maps ``(*inputs, *additional_forward_args)`` to predictions
        ``(N, G)`` (eval mode); ``inputs`` a tensor or tuple of tensors with
        first axis ``N``; ``random_state`` seeds the permutations.
        ``options``: ``attention`` (str or list of str, required: the
        attention layers, names in ``model.named_modules()``), ``groups``
        (length N, required: one group label per cell), ``observed``
        (``(N, G)``, required), ``additional_forward_args`` (optional, first
        axis N) and ``n_permutations`` (default 9; the p-values are not
        checked here).

    Returns
    -------
    list of CheckResult
        In order:

        - ``brute_force_agreement``: for ``(keep, zero)``, ``(remove, zero)``
          and ``(keep, mean)`` (reference = the inputs), the largest absolute
          difference of ``ev_gene`` and ``ev_head`` from a brute-force loop
          (:class:`HeadLoop` in a copy of the model, one forward per head,
          EV with numpy), and the relative error with which the loop
          reproduces the unablated model. Bound ``1e-10`` in float64 (the
          loop sums heads in another order: rounding, measured ~1e-15) and
          ``1e-4`` in float32. Skipped for layers other than
          ``nn.MultiheadAttention``.
        - ``keep_all_heads``: the package's ablation with every head kept
          (:func:`~captum_genomics.heads.ablated_forward`) and the result's
          full-model EV against numpy EV of a plain forward. Bound ``1e-10``
          (float64) or ``1e-5`` (float32): only batching may round
          differently.
        - ``model_unchanged``: changes found after repeated ``attribute``
          calls and after the whole suite (parameters, buffers, hooks, flags,
          inputs); bound 0.

    Raises
    ------
    ValueError
        If a required option is missing, or a layer name is not a submodule.
    """
    start = snapshot_state(context.model, list(context.inputs)
                           if isinstance(context.inputs, (tuple, list)) else [context.inputs])
    s = _Setup(context)
    bound = _BOUND.get(s.dtype, 1e-4)
    keep_bound = _KEEP_ALL_BOUND.get(s.dtype, 1e-5)
    return [
        timed_check("brute_force_agreement", bound,
                    "EV per (head, group, gene) from a per-head loop written from the "
                    f"definition; only float rounding differs ({bound:g} in {s.dtype})",
                    lambda: _brute_force(s)),
        timed_check("keep_all_heads", keep_bound,
                    "keeping every head must be the full model; only batching may round "
                    f"differently ({keep_bound:g} in {s.dtype})", lambda: _keep_all(s)),
        timed_check("device_agreement", bound,
                    f"the same EV on a CPU copy of the model ({bound:g} in {s.dtype})",
                    lambda: _device_agreement(s)),
        timed_check("model_unchanged", 0.0,
                    "changes found: attribute and the whole suite must leave the model and the "
                    "inputs as they were", lambda: _unchanged(s, start)),
    ]
