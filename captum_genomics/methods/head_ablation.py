"""``HeadAblationExplainedVariance``: which attention heads explain which genes, per cell type.

The method of AMICI (Hong et al. 2025, "AMICI: attention mechanism
interpretation of cell-cell interactions"), implemented from its definition
for any PyTorch attention: keep one head (ablating the other heads of its
layer) or remove one head, predict every cell's expression, and measure
within each group of cells (cell type) how much of each gene's variance the
prediction still explains, with a within-group permutation test and
Benjamini-Hochberg correction.

Orchestration only. The heads are reached through
:mod:`captum_genomics.heads` (one batched :func:`~captum_genomics.heads.ablated_forward`
for all variants and the unablated model); the statistics are
:mod:`captum_genomics.stats` (:mod:`~captum_genomics.stats.explained_variance`,
:mod:`~captum_genomics.stats.permutation`,
:mod:`~captum_genomics.stats.multiple_testing`).
"""

from __future__ import annotations

import numbers
from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from captum_genomics._utils.batching import as_forward_args, as_input_tuple
from captum_genomics._utils.captum import PerturbationAttribution, log_usage
from captum_genomics._utils.checks import check_eval_mode, check_finite, check_positive_int
from captum_genomics._utils.deprecation import MISSING, renamed_keyword
from captum_genomics.heads import (
    ABLATIONS,
    MODES,
    HeadAblationResult,
    HeadAdapter,
    HeadAdapterRegistry,
    ablated_forward,
    default_batch_size,
    default_head_adapters,
    keep_masks,
)
from captum_genomics.stats.explained_variance import encode_groups, explained_variance
from captum_genomics.stats.multiple_testing import adjust_p_values, check_alpha
from captum_genomics.stats.permutation import default_n_permutations, permutation_test

__all__ = ["HeadAblationExplainedVariance"]


def _as_observed(observed: Any) -> Tensor:
    if isinstance(observed, Tensor):
        out = observed.detach()
    else:
        try:
            import scipy.sparse
            if scipy.sparse.issparse(observed):
                observed = observed.toarray()
        except ImportError:  # pragma: no cover - scipy is a dependency
            pass
        arr = np.asarray(observed)
        if arr.dtype.kind not in "biuf":
            raise TypeError(
                f"`observed` must be a tensor or array of real numbers (N, G), got "
                f"{type(observed).__name__} of dtype {arr.dtype}."
            )
        out = torch.from_numpy(np.array(arr, dtype=np.float64))
    if out.is_complex() or out.dtype == torch.bool:
        raise TypeError(f"`observed` must hold real numbers, got dtype {out.dtype}.")
    check_finite(out, "observed")
    return out


def _names(values: Any, n: int, name: str, what: str) -> list[str]:
    if values is None:
        return [str(i) for i in range(n)]
    values = [str(v) for v in values]
    if len(values) != n:
        raise ValueError(f"`{name}` must have one name per {what} ({n}), got {len(values)}.")
    return values


class HeadAblationExplainedVariance(PerturbationAttribution):
    r"""Head-ablation explained variance per (head, group, gene), with a permutation test.

    For each tested head ``(layer, h)`` a *variant* of the model keeps head
    ``h`` and ablates the layer's other heads (``ablation="keep"``), or
    ablates head ``h`` only (``"remove"``); ablated heads are replaced by zero
    or by their mean over a reference set (``mode``). For variant ``v``,
    group ``g`` (e.g. a cell type) and gene ``j``, with variances over the
    group's cells::

        ev_gene[v, g, j] = 1 - var(pred_v[:, j] - obs[:, j]) / var(obs[:, j])
        ev_head[v, g]    = 1 - sum_j var(pred_v - obs)_j / sum_j var(obs)_j

    Each (variant, group) is tested by permuting prediction rows against
    observed rows within the group (MSE statistic, ``p = (1 + b) / (1 + n)``);
    p-values are Benjamini-Hochberg adjusted over all (variant, group) tests.
    AMICI (Hong et al. 2025) defines the method; here all variants run as
    (variant, cell) rows of a few batched passes, not one pass per head and
    cell type, zero-variance genes give NaN, and groups with fewer than
    ``min_cells`` cells are skipped and reported.

    Parameters
    ----------
    forward_func : nn.Module
        The model; ``forward_func(*inputs, *additional_forward_args)`` returns
        predictions ``(N, G)``. A plain callable works if ``layers`` are given
        as modules or :class:`~captum_genomics.heads.HeadAdapter` instances.
    layers : str, nn.Module, HeadAdapter, list of them, or dict
        The attention layers whose heads are ablated: dotted names from
        ``forward_func.named_modules()``, the modules themselves, or ready
        adapters. A dict maps a name or module to an adapter factory
        ``factory(module, name) -> HeadAdapter`` for that layer (e.g.
        ``{"blocks.0.attn.proj": partial(OutputProjectionAdapter, n_heads=4)}``),
        or to None for the registry's adapter. Variants are ordered layer by
        layer in this order.
    adapters : HeadAdapterRegistry, optional
        Where adapters for the layers are looked up. Default
        :func:`~captum_genomics.heads.default_head_adapters`
        (``torch.nn.MultiheadAttention``).

    Attributes
    ----------
    layer_adapters : list of HeadAdapter
        One per layer.
    layer_names : list of str
    n_heads : list of int
        Heads per layer.

    Raises
    ------
    UnsupportedAttentionError
        (a ``TypeError``) If a layer is not an attention module with a
        registered adapter; the message names the layer, its type and how to
        register an adapter.
    ValueError
        If a layer name is not a submodule of ``forward_func``, a module is not
        part of it, or a layer is given twice.
    """

    def __init__(self, forward_func: Any, layers: Any,
                 adapters: HeadAdapterRegistry | None = None) -> None:
        super().__init__(forward_func)
        if adapters is None:
            adapters = default_head_adapters()
        if not isinstance(adapters, HeadAdapterRegistry):
            raise TypeError(
                f"`adapters` must be a HeadAdapterRegistry (e.g. default_head_adapters()"
                f".with_adapter(...)), got {type(adapters).__name__}."
            )
        self.registry = adapters
        self.layer_adapters = self._resolve_layers(layers)
        self.layer_names = [a.name for a in self.layer_adapters]
        self.n_heads = [int(a.n_heads) for a in self.layer_adapters]

    # ------------------------------------------------------------------ layers
    def _module_names(self) -> dict[int, str] | None:
        if not isinstance(self.forward_func, nn.Module):
            return None
        return {id(m): n for n, m in self.forward_func.named_modules()}

    def _resolve_layers(self, layers: Any) -> list[HeadAdapter]:
        if isinstance(layers, dict):
            items = list(layers.items())
        elif isinstance(layers, (list, tuple)):
            items = [(layer, None) for layer in layers]
        else:
            items = [(layers, None)]
        if not items:
            raise ValueError("`layers` is empty; name at least one attention layer.")
        names = self._module_names()
        modules = dict(self.forward_func.named_modules()) if names is not None else {}
        out: list[HeadAdapter] = []
        for layer, factory in items:
            if isinstance(layer, HeadAdapter):
                if factory is not None:
                    raise ValueError(f"Layer {layer.name!r} is already a HeadAdapter; map it to "
                                     "None, not to a factory.")
                if names is not None and id(layer.module) not in names:
                    raise ValueError(f"The module of adapter {layer.name!r} is not part of "
                                     "`forward_func`.")
                out.append(layer)
                continue
            if isinstance(layer, str):
                if names is None:
                    raise TypeError(
                        f"Layer {layer!r} is a name, but `forward_func` is not an nn.Module; "
                        "pass the module (or a HeadAdapter) instead."
                    )
                if layer not in modules:
                    known = [n for n, m in modules.items()
                             if n and self.registry.factory_for(m) is not None]
                    raise ValueError(
                        f"`layers`: {layer!r} is not a submodule of the model (dotted names "
                        f"from model.named_modules()); attention layers found: {known}."
                    )
                module, name = modules[layer], layer
            elif isinstance(layer, nn.Module):
                module = layer
                if names is None:
                    name = type(layer).__name__
                elif id(layer) in names:
                    name = names[id(layer)]
                else:
                    raise ValueError(
                        f"`layers`: the {type(layer).__name__} module given is not part of "
                        "the model (`forward_func.named_modules()`)."
                    )
            else:
                raise TypeError(
                    f"`layers` entries must be dotted names, nn.Modules or HeadAdapters, got "
                    f"{type(layer).__name__}."
                )
            if factory is None:
                adapter = self.registry.adapter_for(module, name)
            else:
                if not callable(factory):
                    raise TypeError(f"The adapter factory for layer {name!r} must be callable "
                                    f"(module, name) -> HeadAdapter, got {type(factory).__name__}.")
                adapter = factory(module, name)
                if not isinstance(adapter, HeadAdapter):
                    raise TypeError(f"The adapter factory for layer {name!r} returned a "
                                    f"{type(adapter).__name__}, expected a HeadAdapter.")
            out.append(adapter)
        seen: set[int] = set()
        for a in out:
            if id(a.module) in seen:
                raise ValueError(f"`layers` names layer {a.name!r} more than once.")
            seen.add(id(a.module))
        return out

    def _variants(self, heads: Any) -> list[tuple[int, int]]:
        """``(layer index, head)`` pairs in canonical order (layer by layer, head ascending)."""
        if heads is None:
            return [(i, h) for i, n in enumerate(self.n_heads) for h in range(n)]
        if isinstance(heads, tuple) and len(heads) == 2 and isinstance(heads[0], str):
            heads = [heads]
        variants = []
        for item in heads:
            if not (isinstance(item, (tuple, list)) and len(item) == 2):
                raise ValueError(f"`heads` must be a list of (layer_name, head_index) pairs, got "
                                 f"entry {item!r}.")
            layer, h = item
            if layer not in self.layer_names:
                raise ValueError(f"`heads`: layer {layer!r} is not one of the layers "
                                 f"{self.layer_names}.")
            i = self.layer_names.index(layer)
            if isinstance(h, bool) or not isinstance(h, numbers.Integral) or not (
                    0 <= int(h) < self.n_heads[i]):
                raise ValueError(
                    f"`heads`: head index {h!r} is out of range for layer {layer!r}, which has "
                    f"{self.n_heads[i]} heads (valid: 0..{self.n_heads[i] - 1})."
                )
            variants.append((i, int(h)))
        if not variants:
            raise ValueError("`heads` is empty; pass None for all heads.")
        if len(set(variants)) != len(variants):
            raise ValueError("`heads` lists a head more than once.")
        return sorted(variants)

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _groups(groups: Any, n: int, group_names: Any) -> tuple[Tensor, list[str]]:
        if group_names is None:
            return encode_groups(groups, n, "groups")
        import pandas as pd

        names = [str(g) for g in group_names]
        if len(set(names)) != len(names):
            raise ValueError("`group_names` holds a name more than once.")
        codes = groups.detach().cpu().numpy() if isinstance(groups, Tensor) else np.asarray(
            groups)
        if codes.dtype.kind not in "iu":
            raise TypeError(
                "With `group_names`, `groups` must hold integer codes into `group_names`, got "
                f"dtype {codes.dtype}."
            )
        if codes.ndim == 1 and codes.size and (codes.min() < 0 or codes.max() >= len(names)):
            raise ValueError(
                f"`groups` codes must lie in [0, {len(names)}) to index `group_names`, got "
                f"values in [{codes.min()}, {codes.max()}]."
            )
        if codes.ndim != 1:
            return encode_groups(codes, n, "groups")       # raises the shape error
        return encode_groups(pd.Categorical.from_codes(codes, categories=names), n, "groups")

    @property
    def multiplies_by_inputs(self) -> bool:
        """False: explained variances are not multiplied by the inputs."""
        return False

    # ------------------------------------------------------------------ attribute
    @log_usage()
    def attribute(
        self,
        inputs: Any,
        groups: Any,
        observed: Any,
        additional_forward_args: Any = None,
        heads: Sequence[tuple[str, int]] | None = None,
        ablation: str = "keep",
        mode: str = "zero",
        reference_inputs: Any = None,
        n_permutations: int | None = None,
        alpha: float = 0.05,
        random_state: int | None = 0,
        batch_size: int | None = None,
        group_names: Sequence[Any] | None = None,
        gene_names: Sequence[Any] | None = None,
        show_progress: bool = False,
        reference_forward_args: Any = None,
        min_cells: int = 2,
        permutation_batch_size: int | None = None,
        *,
        progress: Any = MISSING,
    ) -> HeadAblationResult:
        r"""Explained variance of every tested head in every group, with p-values.

        Runs one batched :func:`~captum_genomics.heads.ablated_forward` loop:
        the unablated model (the full model's EV; ``N`` rows in chunks of
        ``batch_size``, no hooks installed) and all ``V`` variants (``V * N``
        rows in chunks of ``batch_size``), then computes EV, the permutation
        test and the BH adjustment vectorized over variants and groups.

        Parameters
        ----------
        inputs : Tensor ``(N, ...)`` or tuple of tensors with first axis N
            One row per cell, e.g. ``(neighbours (N, k, G), cell_type (N,))``.
            Floating inputs must be finite.
        groups : array-like, length N
            One group label per cell (cell type): strings, integers, a pandas
            ``Categorical``/``Series`` or a 1-D tensor. Group names are the
            sorted distinct labels (category order for categoricals), unless
            ``group_names`` is given.
        observed : Tensor or ndarray ``(N, G)``
            The expression the model predicts (finite). A scipy sparse matrix
            is densified.
        additional_forward_args : optional
            Captum's extra forward arguments; tensors must have first axis N.
            Default None.
        heads : list of (layer_name, head_index), optional
            The heads to test. Default None: every head of every layer. Tested
            in canonical order (layer by layer, head ascending).
        ablation : {"keep", "remove"}
            ``"keep"``: keep one head, ablate the other heads of its layer
            (AMICI's definition); ``"remove"``: ablate the one head. Default
            ``"keep"``.
        mode : {"zero", "mean"}
            Replace ablated heads by zero, or by their mean over
            ``reference_inputs``. Default ``"zero"``.
        reference_inputs : Tensor or tuple, optional
            Required for ``mode="mean"`` (e.g. ``inputs`` themselves).
        n_permutations : int, optional
            Permutations per (variant, group). Default None:
            ``ceil(V * n_tested_groups / alpha)``, so that a Bonferroni-level
            p-value is resolvable.
        alpha : float
            Significance level in (0, 1) (default permutation count and the
            ``significant`` column of ``head_table()``). Default 0.05.
        random_state : int or None
            Seed of the permutations; the same seed gives bit-identical
            results. Default 0.
        batch_size : int, optional
            Rows, (variant, cell) pairs, per model call. Default None:
            :func:`~captum_genomics.heads.default_batch_size` (about 8 MB of
            inputs per call, at most 4096 rows).
        group_names : sequence, optional
            With integer ``groups``: the name of each code (``groups`` index
            into it; the order is kept). Default None.
        gene_names : sequence of length G, optional
            Default ``"0" .. "G-1"``.
        show_progress : bool
            A tqdm bar over the model calls. Default False.
        reference_forward_args : optional
            Extra forward arguments for ``reference_inputs``. Default None.
        min_cells : int
            Groups with fewer cells are skipped (NaN, listed in
            ``skipped_groups``). Default 2.
        permutation_batch_size : int, optional
            Permutations scored per batch (memory). Default: automatic.
        progress : bool, keyword-only
            Deprecated spelling of ``show_progress`` (a ``DeprecationWarning``);
            removed in the next release.

        Returns
        -------
        HeadAblationResult
            ``ev_gene (V, n_groups, G)``, ``ev_head``, ``mse``, ``p_value``,
            ``p_adj`` ``(V, n_groups)``, ``full_ev_gene (n_groups, G)``,
            ``full_ev_head (n_groups,)``, ``n_cells``; ``to_frame()`` and
            ``head_table()`` give tidy tables.

        Raises
        ------
        ValueError
            ``groups`` of the wrong length, NaN/Inf in ``inputs`` or
            ``observed``, ``alpha`` outside (0, 1), a head index out of range,
            an unknown ``ablation`` or ``mode``, ``mode="mean"`` without
            ``reference_inputs``, ``observed`` not shaped like the
            predictions, the model in training mode with active dropout.
        TypeError
            Non-tensor inputs; a model that does not return a tensor; both
            ``progress`` and ``show_progress`` given with different values.
        """
        show_progress = renamed_keyword("progress", progress, "show_progress", show_progress,
                                        False, "HeadAblationExplainedVariance.attribute",
                                        stacklevel=4)
        alpha = check_alpha(alpha)
        if ablation not in ABLATIONS:
            raise ValueError(f"`ablation` must be one of {ABLATIONS}, got {ablation!r}.")
        if mode not in MODES:
            raise ValueError(f"`mode` must be one of {MODES}, got {mode!r}.")
        if mode == "mean" and reference_inputs is None:
            raise ValueError(
                "`mode='mean'` replaces ablated heads by their mean over a reference set: pass "
                "`reference_inputs` (e.g. the inputs themselves), or use `mode='zero'`."
            )
        if n_permutations is not None:
            check_positive_int(n_permutations, "n_permutations")
        check_positive_int(min_cells, "min_cells")
        if batch_size is not None:
            check_positive_int(batch_size, "batch_size")
        inputs_t = as_input_tuple(inputs, "inputs")      # checks finiteness once
        n = inputs_t[0].shape[0]
        args = as_forward_args(additional_forward_args, n, "additional_forward_args")
        rows = default_batch_size(inputs_t, args) if batch_size is None else batch_size
        codes, names = self._groups(groups, n, group_names)
        obs = _as_observed(observed)
        variants = self._variants(heads)
        keep = keep_masks(self.n_heads, variants, ablation)
        check_eval_mode(self.forward_func, "forward_func")
        for a in self.layer_adapters:
            a.check()

        outputs = ablated_forward(self.forward_func, self.layer_adapters, keep, inputs_t, args,
                                  mode=mode, reference_inputs=reference_inputs,
                                  reference_forward_args=reference_forward_args,
                                  batch_size=rows, show_progress=show_progress,
                                  validate_inputs=False, include_full=True)   # (V + 1, N, G)
        preds, full = outputs[:-1], outputs[-1]     # the variants; the unablated model
        if full.dim() == 1:
            full = full.unsqueeze(-1)
        if obs.dim() == 1:
            obs = obs.unsqueeze(-1)
        if full.dim() != 2 or full.shape[0] != n:
            raise ValueError(f"`forward_func` must return predictions (N, G) = ({n}, G), got "
                             f"shape {tuple(full.shape)}.")
        if tuple(obs.shape) != tuple(full.shape):
            raise ValueError(f"`observed` must have the predictions' shape (N, G) = "
                             f"{tuple(full.shape)}, got {tuple(obs.shape)}.")
        genes = _names(gene_names, full.shape[1], "gene_names", "gene")
        obs = obs.to(device=full.device, dtype=torch.float64)
        codes = codes.to(full.device)
        n_groups = len(names)

        ev_gene, ev_head, n_cells = explained_variance(preds, obs, codes, n_groups, min_cells)
        full_ev_gene, full_ev_head, _ = explained_variance(full, obs, codes, n_groups, min_cells)
        tested = int((n_cells >= min_cells).sum())
        if n_permutations is None:
            n_permutations = default_n_permutations(len(variants), max(tested, 1), alpha)
        mse, p_value = permutation_test(preds, obs, codes, n_groups, n_permutations,
                                        random_state=random_state, min_cells=min_cells,
                                        batch_size=permutation_batch_size)
        p_adj = adjust_p_values(p_value)
        skipped = [names[g] for g in range(n_groups) if int(n_cells[g]) < min_cells]
        cpu = lambda t: t.detach().to("cpu", torch.float64)  # noqa: E731
        return HeadAblationResult(
            heads=[(self.layer_names[i], h) for i, h in variants],
            group_names=list(names), gene_names=genes,
            ev_gene=cpu(ev_gene), ev_head=cpu(ev_head), mse=cpu(mse),
            p_value=cpu(p_value), p_adj=cpu(p_adj), n_cells=n_cells.detach().cpu(),
            skipped_groups=skipped, full_ev_gene=cpu(full_ev_gene),
            full_ev_head=cpu(full_ev_head), ablation=ablation, mode=mode,
            n_permutations=int(n_permutations), alpha=alpha,
            extra={"min_cells": min_cells, "random_state": random_state,
                   "layers": list(self.layer_names), "n_heads": list(self.n_heads),
                   "batch_size": rows},
        )
