"""``HeadAblationExplainedVariance``: which attention heads explain which genes, per cell type.

The method of AMICI (Hong et al. 2025, "AMICI: attention mechanism
interpretation of cell-cell interactions"), implemented from its definition
for any PyTorch attention: keep one head (ablating the other heads of its
layer) or remove one head, predict every cell's expression, and measure
within each group of cells (cell type) how much of each gene's variance the
prediction still explains, with a within-group permutation test and
Benjamini-Hochberg correction.

Explained variance needs a model whose outputs estimate ``observed``; a
classifier's logits against 0/1 labels, or ``observed`` that is the model's
own output, are refused with a ``ValueError`` that points to
:class:`~captum_genomics.methods.head_ablation_classifier.HeadAblationClassifierEffect`
(:func:`check_observed_estimates`).

Orchestration only. The heads are reached through
:mod:`captum_genomics.heads` (one batched :func:`~captum_genomics.heads.ablated_forward`
for all variants and the unablated model); the statistics are
:mod:`captum_genomics.stats` (:mod:`~captum_genomics.stats.explained_variance`,
:mod:`~captum_genomics.stats.permutation`,
:mod:`~captum_genomics.stats.multiple_testing`).
"""

from __future__ import annotations

import functools
import inspect
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
    check_ablation_options,
    HeadAblationResult,
    HeadAdapter,
    HeadAdapterRegistry,
    ablated_forward,
    default_batch_size,
    default_head_adapters,
    keep_masks,
)
from captum_genomics.stats.explained_variance import (
    check_group_sizes,
    encode_groups,
    explained_variance,
)
from captum_genomics.stats.multiple_testing import adjust_p_values, check_alpha
from captum_genomics.stats.permutation import default_n_permutations, permutation_test

__all__ = ["HeadAblationExplainedVariance", "check_observed_estimates"]

OWN_OUTPUT_RTOL = 1e-5
"""``observed`` within this relative distance of the model's outputs is the model's own output.

See :func:`check_observed_estimates`: ``max |outputs - observed| <= OWN_OUTPUT_RTOL *
max |observed|``. Float32 rounding between batch sizes is ~1e-7 relative; no
model of measured data matches it this closely on every entry.
"""

_CLASSIFIER_HINT = (
    "HeadAblationExplainedVariance is for models whose outputs estimate `observed` (e.g. "
    "predicted expression); for a classifier use HeadAblationClassifierEffect "
    "(captum_genomics.HeadAblationClassifierEffect), which reports per head and group the "
    "drop of the target logit, of the true-class probability and of the accuracy, with a "
    "paired sign-flip test. Pass check_observed=False to skip this check."
)


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


def check_observed_estimates(outputs: Tensor, observed: Tensor) -> None:
    """Raise ``ValueError`` unless the model's outputs can be estimates of ``observed``.

    Explained variance compares predictions with what they predict; two ways
    of calling it on a classifier give numbers without meaning, and are refused:

    1. **Labels against scores.** Every entry of ``observed`` is 0 or 1
       (binary labels, or one-hot rows), and some output lies outside
       ``[0, 1]``: the outputs are logits or scores, not estimates of a 0/1
       quantity (EV is then NaN wherever the labels are constant within a
       group, e.g. groups that are the classes, and otherwise dominated by the
       logits' scale). Outputs within ``[0, 1]`` (probabilities) pass: EV of
       probabilities against 0/1 labels is a Brier skill score.
    2. **The model's own outputs.** ``max |outputs - observed| <=
       OWN_OUTPUT_RTOL * max |observed|`` (with ``observed`` not all zero):
       ``observed`` was computed by the model, so every kept head "explains"
       it and tests significant at the smallest p-value.

    Not used as a rule: "the full model explains <= 0 of the variance in
    every group". A regression model on data it cannot predict (a null model,
    or a model that predicts only the group means) has that too, and its EVs
    and p-values are valid (non-significant).

    Parameters
    ----------
    outputs : Tensor, shape=(N, G)
        The unablated model's outputs.
    observed : Tensor, shape=(N, G)
        What they should estimate.

    Raises
    ------
    ValueError
        Under rule 1 or 2; the message names the rule, the figures, and points
        to :class:`~captum_genomics.methods.head_ablation_classifier.HeadAblationClassifierEffect`.
    """
    obs = observed.detach()
    out = outputs.detach().to(device=obs.device, dtype=torch.float64)
    obs = obs.to(torch.float64)
    if obs.numel() == 0:
        return
    if bool(((obs == 0) | (obs == 1)).all()):
        lo, hi = float(out.min()), float(out.max())
        if lo < 0.0 or hi > 1.0:
            raise ValueError(
                f"`observed` holds only 0 and 1 (class labels, binary or one-hot), but the "
                f"model's outputs range over [{lo:.4g}, {hi:.4g}], outside [0, 1]: they are "
                "logits or scores, not estimates of `observed`, and explained variances of "
                "them are meaningless. " + _CLASSIFIER_HINT
            )
    scale = float(obs.abs().max())
    gap = float((out - obs).abs().max())
    if scale > 0.0 and gap <= OWN_OUTPUT_RTOL * scale:
        raise ValueError(
            f"`observed` is the model's own output (max |outputs - observed| = {gap:.3g} <= "
            f"{OWN_OUTPUT_RTOL:g} x max |observed| = {scale:.3g}): every head would explain it "
            "and test significant. `observed` must be the data the model predicts (e.g. "
            "measured expression), not its predictions. " + _CLASSIFIER_HINT
        )


def _looks_like_labels(observed: Tensor) -> bool:
    """Integer-valued ``(N,)`` or ``(N, 1)`` values: class indices rather than values."""
    if observed.numel() == 0 or observed.dim() > 2 or (
            observed.dim() == 2 and observed.shape[1] != 1):
        return False
    x = observed.to(torch.float64)
    return bool((x == x.round()).all()) and float(x.min()) >= 0


def _owner_modules(forward_func: Any) -> list[nn.Module]:
    """The nn.Modules whose submodule paths name the layers of ``forward_func``.

    ``forward_func`` itself if it is a module; the module of a bound method
    (``model.forward``) or of a ``functools.partial`` of one; otherwise, for a
    Python function (e.g. ``lambda x: model(x)``), the modules among the free
    variables and globals it refers to (:func:`inspect.getclosurevars`), less
    those that are submodules of another. Empty if none is found.
    """
    func = forward_func
    for _ in range(16):
        if isinstance(func, nn.Module):
            return [func]
        if isinstance(func, functools.partial):
            func = func.func
            continue
        owner = getattr(func, "__self__", None)
        if isinstance(owner, nn.Module):
            return [owner]
        break
    if not inspect.isfunction(func):
        return []
    try:
        refs = inspect.getclosurevars(func)
    except (TypeError, ValueError):  # pragma: no cover - builtins, odd callables
        return []
    found: dict[int, nn.Module] = {}
    for value in (*refs.nonlocals.values(), *refs.globals.values()):
        if isinstance(value, nn.Module):
            found.setdefault(id(value), value)
    inner = {id(sub) for m in found.values() for sub in m.modules() if sub is not m}
    return [m for i, m in found.items() if i not in inner]


class _HeadAblationMethod(PerturbationAttribution):
    """Shared by the head-ablation methods: layers to adapters, heads to variants, groups.

    Layers are named by their module path in the model (``model.named_modules()``);
    a plain callable's layers are named by the path in the module it calls
    (:func:`_owner_modules`). Never by class name alone.
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
        self._aliases: dict[str, int] = {}
        self.layer_adapters = self._resolve_layers(layers)
        self.layer_names = [a.name for a in self.layer_adapters]
        self.n_heads = [int(a.n_heads) for a in self.layer_adapters]
        for i, name in enumerate(self.layer_names):
            self._aliases[name] = i

    # ------------------------------------------------------------------ layers
    def _module_names(self) -> tuple[dict[int, str], dict[str, nn.Module]] | None:
        """``(id(module) -> path, path -> module)`` over the owner module(s), or None."""
        owners = _owner_modules(self.forward_func)
        if not owners:
            return None
        names: dict[int, str] = {}
        for owner in owners:
            for n, m in owner.named_modules():
                names.setdefault(id(m), n)
        modules = dict(owners[0].named_modules()) if len(owners) == 1 else {}
        return names, modules

    def _resolve_layers(self, layers: Any) -> list[HeadAdapter]:
        if isinstance(layers, dict):
            items = list(layers.items())
        elif isinstance(layers, (list, tuple)):
            items = [(layer, None) for layer in layers]
        else:
            items = [(layers, None)]
        if not items:
            raise ValueError("`layers` is empty; name at least one attention layer.")
        resolved = self._module_names()
        names, modules = resolved if resolved is not None else (None, {})
        out: list[HeadAdapter] = []
        given: list[str | None] = []
        for layer, factory in items:
            if isinstance(layer, HeadAdapter):
                if factory is not None:
                    raise ValueError(f"Layer {layer.name!r} is already a HeadAdapter; map it to "
                                     "None, not to a factory.")
                if names is not None and id(layer.module) not in names:
                    raise ValueError(f"The module of adapter {layer.name!r} is not part of "
                                     "`forward_func`.")
                out.append(layer)
                given.append(None)
                continue
            if isinstance(layer, str):
                if not modules:
                    raise TypeError(
                        f"Layer {layer!r} is a name, but `forward_func` is not an nn.Module "
                        "(nor a bound method, partial or function of exactly one); pass the "
                        "module (or a HeadAdapter) instead."
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
                    raise ValueError(
                        f"`layers`: cannot name the {type(layer).__name__} module by its path: "
                        "`forward_func` is not an nn.Module, and no nn.Module holding the layer "
                        "was found (a bound method, functools.partial, or the free variables "
                        "and globals of a function). Heads are labelled by module path, not by "
                        "class name: pass the model as `forward_func`, or a HeadAdapter that "
                        "names the layer, e.g. MultiheadAttentionAdapter(module, "
                        "'encoder.layers.0.self_attn')."
                    )
                if id(layer) not in names:
                    raise ValueError(
                        f"`layers`: the {type(layer).__name__} module given is not part of "
                        "the model (`forward_func.named_modules()`)."
                    )
                name = names[id(layer)]
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
            given.append(name)
        seen: set[int] = set()
        for a in out:
            if id(a.module) in seen:
                raise ValueError(f"`layers` names layer {a.name!r} more than once.")
            seen.add(id(a.module))
        # The path the user gave (e.g. "encoder.layers.0") also names the adapter's heads
        # (labelled "encoder.layers.0.self_attn"), unless it is another adapter's label.
        labels = {a.name for a in out}
        for i, name in enumerate(given):
            if name is not None and name not in labels:
                self._aliases.setdefault(name, i)
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
            if layer not in self._aliases:
                raise ValueError(f"`heads`: layer {layer!r} is not one of the layers "
                                 f"{self.layer_names}.")
            i = self._aliases[layer]
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



class HeadAblationExplainedVariance(_HeadAblationMethod):
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
        adapters. Heads are labelled by module path: an
        ``nn.TransformerEncoderLayer`` named ``"encoder.layers.0"`` gives
        heads ``("encoder.layers.0.self_attn", h)`` (either name works in
        ``heads``); with a plain callable, the path in the module it calls
        (a bound method, ``functools.partial``, or a function's free
        variables and globals), else a ``ValueError`` (pass a
        :class:`~captum_genomics.heads.HeadAdapter` that names the layer). A dict maps a name or module to an adapter factory
        ``factory(module, name) -> HeadAdapter`` for that layer (e.g.
        ``{"blocks.0.attn.proj": partial(OutputProjectionAdapter, n_heads=4)}``),
        or to None for the registry's adapter. Variants are ordered layer by
        layer in this order.
    adapters : HeadAdapterRegistry, optional
        Where adapters for the layers are looked up. Default
        :func:`~captum_genomics.heads.default_head_adapters`
        (``torch.nn.MultiheadAttention``, ``torch.nn.TransformerEncoderLayer``).

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
        part of it (or, for a plain callable, no module holding it is found),
        or a layer is given twice.
    """

    def __init__(self, forward_func: Any, layers: Any,
                 adapters: HeadAdapterRegistry | None = None) -> None:
        super().__init__(forward_func, layers, adapters)

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
        check_observed: bool = True,
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
        check_observed : bool, keyword-only
            Refuse a model whose outputs cannot be estimates of ``observed``
            (:func:`check_observed_estimates`): ``observed`` of 0/1 labels with
            outputs outside ``[0, 1]`` (a classifier's logits), or ``observed``
            equal to the model's own outputs. Default True; False skips the
            check (e.g. to measure on purpose how much of the full model's
            output each head reproduces).
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
            predictions (class indices against ``(N, C)`` logits are named
            as such), ``observed`` that the outputs cannot estimate (0/1
            labels against logits, or the model's own outputs; see
            ``check_observed``), the model in training mode with active
            dropout.
        TypeError
            Non-tensor inputs; a model that does not return a tensor; both
            ``progress`` and ``show_progress`` given with different values; a
            non-bool ``check_observed``.
        """
        show_progress = renamed_keyword("progress", progress, "show_progress", show_progress,
                                        False, "HeadAblationExplainedVariance.attribute",
                                        stacklevel=4)
        alpha = check_alpha(alpha)
        if not isinstance(check_observed, bool):
            raise TypeError(f"`check_observed` must be a bool, got {check_observed!r}.")
        check_ablation_options(ablation, mode, reference_inputs)
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
        check_group_sizes(codes, names, min_cells, "groups", "min_cells")
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
        labels_like = _looks_like_labels(obs)
        if obs.dim() == 1:
            obs = obs.unsqueeze(-1)
        if full.dim() != 2 or full.shape[0] != n:
            raise ValueError(f"`forward_func` must return predictions (N, G) = ({n}, G), got "
                             f"shape {tuple(full.shape)}.")
        if tuple(obs.shape) != tuple(full.shape):
            hint = ""
            if labels_like and full.shape[1] > 1 and obs.shape[0] == n:
                hint = (" `observed` looks like class indices and the model returns one "
                        f"output per class ({full.shape[1]}): " + _CLASSIFIER_HINT)
            raise ValueError(f"`observed` must have the predictions' shape (N, G) = "
                             f"{tuple(full.shape)}, got {tuple(obs.shape)}." + hint)
        if check_observed:
            check_observed_estimates(full, obs)
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
