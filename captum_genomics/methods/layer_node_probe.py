"""``LayerNodeProbe``: held-out importance of a layer's named nodes for each class.

The node importance of DCell (Ma et al. 2018, "Using deep learning to model
the hierarchical structure and function of a cell", Nat Methods 15:290) and
NetworkVI (Arnoldt et al. 2024/2025: ``get_go_gene_importances``,
``get_perturbation_go_gene_importances``): a node is a group of a layer's
units (the units of one Gene Ontology term in a GO-structured layer), and its
importance for a class is the AUROC of a logistic-regression probe on the
node's activations, one class against the rest. NetworkVI scores the probe on
the cells it was fitted on, without CI, null or multiple-testing correction,
and wider nodes score higher. Here (:mod:`captum_genomics.stats.probes`):

- stratified K-fold probes, **out-of-fold AUROC**, a stratified bootstrap CI,
  a label-permutation p-value that refits every probe (``(1 + b) / (1 + B)``,
  Phipson & Smyth 2010) and Benjamini-Hochberg q-values over all (node,
  class) tests (1995); beside each node, width-matched random nodes and the
  same probe on an untrained copy of the model (:meth:`LayerNodeProbe.attribute`);
- parent versus children as a held-out AUROC difference with a paired CI
  (:meth:`LayerNodeProbe.parent_vs_children`);
- node conductance and node ablation through Captum's ``LayerConductance``
  and ``LayerFeatureAblation``, summed per node (:meth:`LayerNodeProbe.conductance`,
  :meth:`LayerNodeProbe.ablation`);
- gene perturbations scored by the probes fitted once on unperturbed cells
  (:meth:`LayerNodeProbe.perturbation`).

Orchestration only: a forward hook reads the layer (removed in ``finally``),
the statistics are :mod:`captum_genomics.stats.probes` and
:mod:`captum_genomics.stats.probe_results`.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from captum.attr import LayerAttribution, LayerConductance, LayerFeatureAblation
from torch import Tensor, nn

from captum_genomics._utils.batching import as_forward_args, as_input_tuple, index_examples
from captum_genomics._utils.captum import log_usage
from captum_genomics._utils.checks import check_eval_mode, check_positive_int
from captum_genomics.stats.probe_results import (
    NodeComparisonResult,
    NodePerturbationResult,
    NodeProbeResult,
    check_probes,
    compare_parent_children,
    perturbation_effects,
    probe_nodes,
)
from captum_genomics.stats.probes import node_index, probe_entropy

__all__ = ["LayerNodeProbe", "NodeAttributionResult"]

VALUES = ("zero", "mean")
"""Perturbation values of :meth:`LayerNodeProbe.perturbation`."""

_DEFAULT_ROWS = 4096


class NodeAttributionResult:
    """Per-node sums of a Captum layer attribution, per output target.

    Attributes
    ----------
    method : str
        ``"conductance"``, ``"ablation"`` (joint: each node ablated as a
        whole) or ``"unit_ablation"`` (each unit ablated alone, summed).
    node_names : list of str
    widths : numpy.ndarray, shape=(n_nodes,), int64
    targets : list of int
        The output columns attributed (Captum's ``target``, one call each).
    attributions : Tensor, shape=(T, N, n_nodes), float64
        ``attributions[t, i, j]``: node ``j``'s attribution for example ``i``
        and target ``targets[t]``.
    labels : list of str or None
        The class of each example, if given, for the per-class means.
    """

    def __init__(self, method: str, node_names: list[str], widths: np.ndarray,
                 targets: list[int], attributions: Tensor, labels: list[str] | None) -> None:
        self.method, self.node_names, self.widths = method, node_names, widths
        self.targets, self.attributions, self.labels = targets, attributions, labels

    def to_frame(self):
        """Mean and mean absolute node attribution per (node, target, cells).

        Returns
        -------
        pandas.DataFrame
            Columns ``node, width, target, cells, n_cells, mean, mean_abs``;
            ``cells`` is ``"all"``, and with ``labels`` also each class.
        """
        import pandas as pd

        a = self.attributions.numpy()  # (T, N, J)
        groups = [("all", np.ones(a.shape[1], dtype=bool))]
        if self.labels is not None:
            lab = np.asarray(self.labels, dtype=object)
            groups += [(g, lab == g) for g in sorted(set(self.labels))]
        rows = []
        for t, target in enumerate(self.targets):
            for name, sel in groups:
                mean, mean_abs = a[t, sel].mean(0), np.abs(a[t, sel]).mean(0)
                for j, node in enumerate(self.node_names):
                    rows.append((node, int(self.widths[j]), target, name, int(sel.sum()),
                                 float(mean[j]), float(mean_abs[j])))
        return pd.DataFrame(rows, columns=["node", "width", "target", "cells", "n_cells",
                                           "mean", "mean_abs"])


def _owner(forward_func: Any) -> nn.Module | None:
    if isinstance(forward_func, nn.Module):
        return forward_func
    owner = getattr(forward_func, "__self__", None)
    return owner if isinstance(owner, nn.Module) else None


class LayerNodeProbe(LayerAttribution):
    r"""Held-out importance of named nodes of a layer for each class, with statistics.

    A *node* is a named group of the layer's output units (trailing axes
    flattened in C order): a ``slice``, unit indices, or a boolean mask over
    the units (in a NetworkVI-style GO-structured layer, the units of one GO
    term). For every (node, class one-vs-rest) :meth:`attribute` reports the
    out-of-fold AUROC of a logistic-regression probe with its bootstrap CI, a
    permutation p-value and BH q-value, the in-sample AUROC that NetworkVI
    reports, width-matched random nodes and an untrained copy of the model.

    Parameters
    ----------
    forward_func : nn.Module or callable
        The model; ``forward_func(*inputs, *additional_forward_args)``.
    layer : nn.Module or str
        The layer whose output units form the nodes: the module, or its
        dotted name in ``forward_func.named_modules()``. It must run once per
        forward call.
    device_ids : list of int, optional
        Captum's ``DataParallel`` device list (passed to Captum's layer methods).

    Attributes
    ----------
    layer : nn.Module
    layer_name : str or None
        The layer's path in the model (None for a plain callable).

    Raises
    ------
    ValueError
        If ``layer`` is a name that is not a submodule of ``forward_func``, or
        a module that is not part of it.
    TypeError
        If ``layer`` is neither a module nor a name.
    """

    def __init__(self, forward_func: Any, layer: Any, device_ids: list[int] | None = None
                 ) -> None:
        owner = _owner(forward_func)
        names = {id(m): n for n, m in owner.named_modules()} if owner is not None else None
        if isinstance(layer, str):
            if owner is None:
                raise ValueError(f"`layer` {layer!r} is a name, but `forward_func` is not an "
                                 "nn.Module to look it up in; pass the module itself.")
            modules = dict(owner.named_modules())
            if layer not in modules:
                shown = [n for n in modules if n][:8]
                raise ValueError(f"`layer` {layer!r} is not a submodule of `forward_func`; "
                                 f"submodules include {shown}.")
            module, path = modules[layer], layer
        elif isinstance(layer, nn.Module):
            if names is not None and id(layer) not in names:
                raise ValueError("`layer` is not a submodule of `forward_func`.")
            module, path = layer, (names or {}).get(id(layer))
        else:
            raise TypeError(f"`layer` must be an nn.Module or its dotted name, got "
                            f"{type(layer).__name__}.")
        super().__init__(forward_func, module, device_ids)
        self.layer_name = path

    # ------------------------------------------------------------------ forward passes
    def _forward(self, model: Any, layer: nn.Module, inputs: tuple[Tensor, ...], args: tuple,
                 batch_size: int | None, to_input: bool, outputs: bool = False
                 ) -> tuple[Tensor, Tensor | None, tuple[int, ...]]:
        """Layer activations ``(N, U)`` float64 CPU (and model outputs), batch by batch."""
        n = inputs[0].shape[0]
        step = batch_size or _DEFAULT_ROWS
        seen: list[Tensor] = []

        def hook(module, inp, out):
            value = inp[0] if to_input else out
            if not isinstance(value, Tensor):
                raise TypeError(
                    f"`layer` ({type(module).__name__}) returns {type(value).__name__}, not a "
                    "tensor; choose a layer whose output is one tensor (batch first).")
            seen.append(value.detach())

        acts, outs, shape = [], [], ()
        handle = layer.register_forward_hook(hook)
        try:
            with torch.no_grad():
                for start in range(0, n, step):
                    rows = torch.arange(start, min(n, start + step))
                    seen.clear()
                    out = model(*index_examples(inputs, rows), *index_examples(args, rows, n))
                    if len(seen) != 1:
                        raise ValueError(
                            f"`layer` ran {len(seen)} times in one forward call; its units must "
                            "be computed once per example (a shared module cannot be probed).")
                    value = seen[0]
                    if value.dim() < 2 or value.shape[0] != len(rows):
                        raise ValueError(
                            f"`layer` output must be batch first (N, ...), got shape "
                            f"{tuple(value.shape)} for {len(rows)} examples.")
                    shape = tuple(value.shape[1:])
                    acts.append(value.reshape(len(rows), -1).to("cpu", torch.float64))
                    if outputs:
                        if not isinstance(out, Tensor):
                            raise TypeError(f"`forward_func` must return a tensor, got "
                                            f"{type(out).__name__}.")
                        outs.append(out.detach().to("cpu", torch.float64))
        finally:
            handle.remove()
        return torch.cat(acts), (torch.cat(outs) if outputs else None), shape

    def _untrained(self, untrained: Any, entropy: int) -> tuple[Any, nn.Module] | None:
        """``(model, layer)`` of the untrained copy, or None."""
        if untrained is None:
            return None
        owner = _owner(self.forward_func)
        if isinstance(untrained, str):
            if untrained != "reinit":
                raise ValueError(f"`untrained` must be None, 'reinit' or an nn.Module, got "
                                 f"{untrained!r}.")
            if owner is None or owner is not self.forward_func or self.layer_name is None:
                raise ValueError("`untrained='reinit'` needs `forward_func` to be an nn.Module "
                                 "that contains `layer`; pass an untrained model as "
                                 "`untrained=` instead.")
            model = copy.deepcopy(owner)
            bare = [n or type(m).__name__ for n, m in model.named_modules()
                    if any(True for _ in m.parameters(recurse=False))
                    and not callable(getattr(m, "reset_parameters", None))]
            if bare:
                raise ValueError(
                    f"`untrained='reinit'` cannot re-initialize submodule(s) {bare[:5]}: they "
                    "hold parameters but have no reset_parameters(); pass an untrained copy of "
                    "the model as `untrained=`.")
            seed = int(np.random.SeedSequence(entropy, spawn_key=(4,)).generate_state(
                1, dtype=np.uint64)[0] >> 1)
            with torch.random.fork_rng(devices=[]), torch.no_grad():
                torch.manual_seed(seed)
                for m in model.modules():
                    if callable(getattr(m, "reset_parameters", None)):
                        m.reset_parameters()
        elif isinstance(untrained, nn.Module):
            model = untrained
        else:
            raise TypeError(f"`untrained` must be None, 'reinit' or an nn.Module, got "
                            f"{type(untrained).__name__}.")
        if self.layer_name is None:
            raise ValueError("`untrained` needs the layer's name in `forward_func` to find it in "
                             "the untrained model; build LayerNodeProbe from an nn.Module.")
        layers = dict(model.named_modules())
        if self.layer_name not in layers:
            raise ValueError(f"`untrained` has no submodule {self.layer_name!r} (the layer's "
                             "name in `forward_func`); it must have the same structure.")
        return model, layers[self.layer_name]

    # ------------------------------------------------------------------ probes
    @log_usage()
    def attribute(
        self,
        inputs: Any,
        labels: Any,
        nodes: Mapping[str, Any],
        additional_forward_args: Any = None,
        n_folds: int = 5,
        C: float = 1.0,
        n_permutations: int = 99,
        n_bootstrap: int = 1000,
        confidence: float = 0.95,
        alpha: float = 0.05,
        n_random: int = 20,
        untrained: Any = None,
        random_state: int | None = 0,
        class_names: Sequence[Any] | None = None,
        batch_size: int | None = None,
        show_progress: bool = False,
        attribute_to_layer_input: bool = False,
        max_iter: int = 100,
    ) -> NodeProbeResult:
        r"""Out-of-fold AUROC of every (node, class), with CI, p/q-values and controls.

        One forward pass (in chunks of ``batch_size`` examples) records the
        layer; then :func:`~captum_genomics.stats.probe_results.probe_nodes`:
        for each node and class (one against the rest) a logistic-regression
        probe (standardized features, L2, ``C``) is fitted on ``n_folds - 1``
        stratified folds and scores the held-out fold, and

        - ``auroc_oof``: AUROC of the pooled out-of-fold scores, with a
          percentile CI over ``n_bootstrap`` class-stratified resamples of the
          cells (``ci_low``, ``ci_high``);
        - ``p_value``: ``(1 + #{b: AUROC_b >= AUROC}) / (1 + n_permutations)``
          where ``AUROC_b`` refits all probes on permuted labels with their own
          stratified folds (floor ``1 / (1 + n_permutations)``: 0.01 at 99;
          raise it when many tests must pass BH); ``q_value``: BH over all
          (node, class) tests (``scipy.stats.false_discovery_control``);
        - ``auroc_in_sample``: the probe fitted and scored on all cells, as
          NetworkVI reports it (optimistic; grows with node width);
        - ``random_node_mean``/``random_node_q95``/``random_node_p``:
          ``n_random`` random sets of the layer's units of the node's width;
        - ``untrained_auroc``: the node on an untrained copy (``untrained``).

        Parameters
        ----------
        inputs : Tensor ``(N, ...)`` or tuple of tensors with first axis N
            E.g. expression ``(cells, genes)``; finite.
        labels : array-like, length N
            The class of each cell: strings, integers, a pandas
            ``Categorical``/``Series`` or a 1-D tensor. At least two classes,
            each with at least ``n_folds`` cells.
        nodes : Mapping[str, slice | Sequence[int] | bool mask]
            Node name -> its units among the layer's ``U`` output units
            (:func:`~captum_genomics.stats.probes.node_index`). Nodes may
            overlap.
        additional_forward_args : optional
            Captum's extra forward arguments; tensors have first axis N.
        n_folds : int
            Stratified folds, at least 2. Default 5.
        C : float
            Inverse L2 strength of the probes (scikit-learn's ``C``). Default 1.0.
        n_permutations : int
            Label permutations, ``>= 0`` (0: no p-values). Default 99.
        n_bootstrap : int
            Resamples for the CIs. Default 1000.
        confidence : float
            CI level in (0, 1). Default 0.95.
        alpha : float
            Level of the ``significant`` column (``q <= alpha``). Default 0.05.
        n_random : int
            Random width-matched nodes per width, ``>= 0``. Default 20.
        untrained : None, "reinit" or nn.Module
            ``"reinit"``: a deep copy of ``forward_func`` with every
            submodule's ``reset_parameters()`` called under a seed from
            ``random_state`` (torch's global RNG is left as it was); a module:
            an untrained model of the same structure. Default None (column NaN).
        random_state : int or None
            Seed of folds, permutations, resamples, random nodes and the
            re-initialization. Default 0.
        class_names : sequence, optional
            With integer ``labels``: the name of each code. Default None.
        batch_size : int, optional
            Examples per forward call. Default None: 4096.
        show_progress : bool
            A tqdm bar over the nodes. Default False.
        attribute_to_layer_input : bool
            Use the layer's input instead of its output (Captum's flag).
            Default False.
        max_iter : int
            Newton steps per probe. Default 100.

        Returns
        -------
        NodeProbeResult
            ``to_frame()``: one row per (node, class) with ``node, width,
            class, n_cells, auroc_oof, ci_low, ci_high, p_value, q_value,
            significant, auroc_in_sample, random_node_mean, random_node_q95,
            random_node_p, untrained_auroc``; ``ranking(class_)``,
            ``top_nodes(class_, k)``; ``probes`` for :meth:`perturbation` and
            :meth:`parent_vs_children`.

        Raises
        ------
        ValueError
            ``labels`` of the wrong length or with one class, a class with
            fewer cells than ``n_folds``, a node out of range, NaN/Inf inputs
            or activations, ``alpha``/``confidence`` outside (0, 1), a model in
            training mode with active dropout, a layer that runs more than
            once per forward.
        TypeError
            ``nodes`` not a mapping, non-tensor inputs, a layer whose output
            is not a tensor.
        """
        inputs_t = as_input_tuple(inputs, "inputs")
        n = inputs_t[0].shape[0]
        args = as_forward_args(additional_forward_args, n, "additional_forward_args")
        if batch_size is not None:
            check_positive_int(batch_size, "batch_size")
        check_eval_mode(self.forward_func, "forward_func")
        entropy = probe_entropy(random_state)
        twin = self._untrained(untrained, entropy)
        acts, _, _ = self._forward(self.forward_func, self.layer, inputs_t, args, batch_size,
                                   attribute_to_layer_input)
        untrained_acts = None
        if twin is not None:
            untrained_acts, _, _ = self._forward(twin[0], twin[1], inputs_t, args, batch_size,
                                                 attribute_to_layer_input)
        _check_finite_activations(acts, "layer")
        result = probe_nodes(acts, labels, nodes, n_folds=n_folds, C=C,
                             n_permutations=n_permutations, n_bootstrap=n_bootstrap,
                             confidence=confidence, alpha=alpha, n_random=n_random,
                             untrained_activations=untrained_acts, random_state=entropy,
                             class_names=class_names, max_iter=max_iter,
                             show_progress=show_progress)
        result.settings.update({"random_state": random_state, "layer": self.layer_name,
                                "attribute_to_layer_input": attribute_to_layer_input,
                                "untrained": None if untrained is None else
                                ("reinit" if isinstance(untrained, str) else "given")})
        return result

    def parent_vs_children(self, probes: NodeProbeResult,
                           parents: Mapping[str, Sequence[str]]) -> NodeComparisonResult:
        """Does a node add over its children? Held-out AUROC difference with a paired CI.

        See :func:`~captum_genomics.stats.probe_results.compare_parent_children`:
        per parent and class, the out-of-fold AUROC of the parent's probe minus
        that of a probe on the union of its children's units (same folds), with
        the percentile interval of the difference over the same stratified
        resamples (DCell and NetworkVI use a ratio of in-sample scores).

        Parameters
        ----------
        probes : NodeProbeResult
            The result of :meth:`attribute`, whose nodes include every parent
            and child.
        parents : Mapping[str, Sequence[str]]
            Parent node -> its child nodes.

        Returns
        -------
        NodeComparisonResult
            ``to_frame()``: ``parent, children, n_children, parent_width,
            children_width, class, auroc_parent, auroc_children, difference,
            ci_low, ci_high, excludes_zero``.

        Raises
        ------
        ValueError
            ``probes`` is None (not fitted), ``parents`` names an unknown node
            or a parent without children.
        """
        return compare_parent_children(check_probes(probes), parents)

    def perturbation(
        self,
        inputs: Any,
        genes: Any,
        probes: NodeProbeResult,
        additional_forward_args: Any = None,
        value: str = "zero",
        gene_names: Sequence[str] | None = None,
        output_classes: bool | None = None,
        batch_size: int | None = None,
    ) -> NodePerturbationResult:
        """Set genes to zero or their mean in held-out cells; score with the fitted probes.

        The genes (columns of ``inputs``, or of ``inputs[0]`` for a tuple) are
        set, in every cell, to 0 (``value="zero"``) or to their mean over the
        cells of the other folds (``"mean"``: each held-out fold gets the mean
        of its own training folds); each cell's layer activations are then
        scored by the probes of its own held-out fold, fitted once on the
        unperturbed training folds (NetworkVI's perturbation importance, held
        out). Reported per (node, class): the out-of-fold AUROC before and
        after, and the probe's mean probability of the class over its cells;
        per class, the model's own softmax probability over the class's cells
        when its output has one logit per class. Every change has a paired
        bootstrap CI over the stratified resamples of ``probes``.

        Parameters
        ----------
        inputs : Tensor ``(N, G)`` or tuple with such a first tensor
            The same cells, in the same order, as in :meth:`attribute`.
        genes : int, str, or a sequence of them
            Column indices, or names in ``gene_names``.
        probes : NodeProbeResult
            The result of :meth:`attribute` on these inputs.
        additional_forward_args : optional
            As in :meth:`attribute`.
        value : {"zero", "mean"}
            Default ``"zero"``.
        gene_names : sequence of str, optional
            The name of each of the ``G`` columns, to give ``genes`` by name.
        output_classes : bool, optional
            Also report the model's class probabilities (softmax of its
            ``(N, n_classes)`` output, columns in class order). Default None:
            when the output has that shape.
        batch_size : int, optional
            Examples per forward call. Default None: 4096.

        Returns
        -------
        NodePerturbationResult
            ``to_frame()`` per (node, class), ``output_frame()`` per class.

        Raises
        ------
        ValueError
            ``probes`` is None (not fitted); ``inputs`` not the cells of the
            fit; a gene out of range or not in ``gene_names``; an unknown
            ``value``; NaN inputs; ``output_classes=True`` for a model whose
            output is not ``(N, n_classes)``.
        """
        res = check_probes(probes)
        fit = res.probes
        if value not in VALUES:
            raise ValueError(f"`value` must be one of {VALUES}, got {value!r}.")
        inputs_t = as_input_tuple(inputs, "inputs")
        x = inputs_t[0]
        n = x.shape[0]
        if n != len(fit.codes):
            raise ValueError(f"`inputs` must be the {len(fit.codes)} cells the probes were fitted "
                             f"on, got {n}.")
        if x.dim() != 2:
            raise ValueError(f"`inputs` must be (cells, genes) to perturb genes, got shape "
                             f"{tuple(x.shape)}.")
        args = as_forward_args(additional_forward_args, n, "additional_forward_args")
        cols = _gene_columns(genes, x.shape[1], gene_names)
        check_eval_mode(self.forward_func, "forward_func")
        to_input = bool(res.settings.get("attribute_to_layer_input", False))
        perturbed = x.detach().clone()
        col_t = torch.as_tensor(cols, device=x.device)
        if value == "zero":
            perturbed[:, col_t] = 0
        else:
            folds = torch.as_tensor(fit.folds, device=x.device)
            for k in range(fit.n_folds):
                held = folds == k
                mean = x[~held][:, col_t].mean(0)
                rows = held.nonzero().reshape(-1)
                perturbed[rows.unsqueeze(1), col_t.unsqueeze(0)] = mean.to(x.dtype)
        acts0, out0, _ = self._forward(self.forward_func, self.layer, inputs_t, args, batch_size,
                                       to_input, outputs=True)
        if acts0.shape != fit.activations.shape or not np.allclose(
                acts0.numpy(), fit.activations, rtol=1e-5, atol=1e-8):
            raise ValueError("`inputs` are not the cells the probes were fitted on: the layer's "
                             "activations differ from those of `probes`.")
        acts1, out1, _ = self._forward(self.forward_func, self.layer,
                                       (perturbed, *inputs_t[1:]), args, batch_size, to_input,
                                       outputs=True)
        _check_finite_activations(acts1, "layer")
        n_classes = fit.n_classes
        fits_classes = out0.dim() == 2 and out0.shape[1] == n_classes
        if output_classes and not fits_classes:
            raise ValueError(f"`output_classes=True` needs model outputs (N, {n_classes}) (one "
                             f"logit per class), got {tuple(out0.shape)}.")
        use = fits_classes if output_classes is None else bool(output_classes)
        q0 = torch.softmax(out0, -1).numpy() if use else None
        q1 = torch.softmax(out1, -1).numpy() if use else None
        names = [gene_names[c] for c in cols] if gene_names is not None else [str(c) for c in cols]
        return perturbation_effects(res, acts1.numpy(), names, value, q0, q1)

    # ------------------------------------------------------------------ Captum layer methods
    def _targets(self, inputs_t: tuple[Tensor, ...], args: tuple, targets: Any) -> list[int]:
        with torch.no_grad():
            out = self.forward_func(*index_examples(inputs_t, torch.arange(1)),
                                    *index_examples(args, torch.arange(1), inputs_t[0].shape[0]))
        if not isinstance(out, Tensor) or out.dim() != 2:
            raise ValueError(f"`forward_func` must return (N, outputs) for per-target node "
                             f"attributions, got {getattr(out, 'shape', type(out).__name__)}.")
        n_out = out.shape[1]
        if targets is None:
            return list(range(n_out))
        items = [targets] if isinstance(targets, (int, np.integer)) else list(targets)
        for t in items:
            if isinstance(t, bool) or not isinstance(t, (int, np.integer)) or not (
                    0 <= int(t) < n_out):
                raise ValueError(f"`targets` must be output columns in [0, {n_out}), got {t!r}.")
        return [int(t) for t in items]

    def _node_matrix(self, nodes: Any, n_units: int) -> tuple[list[str], list[np.ndarray], Tensor]:
        names, index = node_index(nodes, n_units, "nodes")
        m = torch.zeros(n_units, len(index), dtype=torch.float64)
        for j, idx in enumerate(index):
            m[torch.from_numpy(idx), j] = 1.0
        return names, index, m

    def _per_node(self, method: str, inputs: Any, nodes: Any, targets: Any, args_in: Any,
                  labels: Any, batch_size: int | None, to_input: bool,
                  call) -> NodeAttributionResult:
        inputs_t = as_input_tuple(inputs, "inputs")
        n = inputs_t[0].shape[0]
        args = as_forward_args(args_in, n, "additional_forward_args")
        if batch_size is not None:
            check_positive_int(batch_size, "batch_size")
        check_eval_mode(self.forward_func, "forward_func")
        lab = None
        if labels is not None:
            from captum_genomics.stats.explained_variance import encode_groups

            codes, cnames = encode_groups(labels, n, "labels")
            lab = [cnames[int(c)] for c in codes]
        ts = self._targets(inputs_t, args, targets)
        _, _, shape = self._forward(self.forward_func, self.layer,
                                    index_examples(inputs_t, torch.arange(1)),
                                    index_examples(args, torch.arange(1), n), 1, to_input)
        n_units = int(np.prod(shape))
        names, index, m = self._node_matrix(nodes, n_units)
        step = batch_size or _DEFAULT_ROWS
        out = torch.empty(len(ts), n, len(index), dtype=torch.float64)
        for start in range(0, n, step):
            rows = torch.arange(start, min(n, start + step))
            xb = index_examples(inputs_t, rows)
            ab = index_examples(args, rows, n)
            for t, target in enumerate(ts):
                out[t, rows] = call(xb, ab, target, shape, index, m, rows)
        return NodeAttributionResult(method, names, np.array([len(i) for i in index]), ts, out,
                                     lab)

    def conductance(
        self,
        inputs: Any,
        nodes: Mapping[str, Any],
        targets: Any = None,
        additional_forward_args: Any = None,
        baselines: Any = None,
        n_steps: int = 50,
        method: str = "gausslegendre",
        internal_batch_size: int | None = None,
        labels: Any = None,
        batch_size: int | None = None,
        attribute_to_layer_input: bool = False,
    ) -> NodeAttributionResult:
        """Node conductance: Captum's ``LayerConductance`` of the layer, summed over each node.

        Conductance (Dhamdhere et al. 2019) is additive over units, so a
        node's conductance is the sum of its units' and the nodes of a
        partition of the layer sum to the integrated-gradients total.

        Parameters
        ----------
        inputs : Tensor or tuple
        nodes : Mapping[str, slice | Sequence[int] | bool mask]
        targets : int or sequence of int, optional
            Output columns, one Captum call each. Default None: every column.
        additional_forward_args : optional
        baselines : optional
            Captum's input baselines (default zeros); a tensor with ``N`` rows
            is split with the batches.
        n_steps, method, internal_batch_size
            Captum's integration settings.
        labels : array-like, length N, optional
            Per-example classes, for per-class means in ``to_frame()``.
        batch_size : int, optional
            Examples per Captum call. Default None: 4096.
        attribute_to_layer_input : bool
            Captum's flag. Default False.

        Returns
        -------
        NodeAttributionResult
            ``attributions`` ``(T, N, n_nodes)``.

        Raises
        ------
        ValueError
            A node out of range, a target out of range, ``labels`` of the
            wrong length, NaN inputs.
        """
        lc = LayerConductance(self.forward_func, self.layer, self.device_ids)
        n_all = as_input_tuple(inputs, "inputs")[0].shape[0]

        def call(xb, ab, target, shape, index, m, rows):
            base = baselines
            if isinstance(base, Tensor) and base.dim() and base.shape[0] == n_all:
                base = base[rows.to(base.device)]
            attr = lc.attribute(xb if len(xb) > 1 else xb[0], baselines=base, target=target,
                                additional_forward_args=ab or None, n_steps=n_steps,
                                method=method, internal_batch_size=internal_batch_size,
                                attribute_to_layer_input=attribute_to_layer_input)
            return attr.detach().reshape(len(rows), -1).to("cpu", torch.float64) @ m

        return self._per_node("conductance", inputs, nodes, targets, additional_forward_args,
                              labels, batch_size, attribute_to_layer_input, call)

    def ablation(
        self,
        inputs: Any,
        nodes: Mapping[str, Any],
        targets: Any = None,
        additional_forward_args: Any = None,
        layer_baselines: Any = None,
        joint: bool = True,
        perturbations_per_eval: int = 1,
        labels: Any = None,
        batch_size: int | None = None,
        attribute_to_layer_input: bool = False,
    ) -> NodeAttributionResult:
        """Node ablation through Captum's ``LayerFeatureAblation``: output drop per node.

        ``joint=True`` (default): each node's units are replaced together by
        ``layer_baselines`` (Captum's ``layer_mask`` groups them; overlapping
        nodes go to separate calls), the node's value is ``f(x) -
        f(x with the node ablated)``. ``joint=False``: each unit is ablated
        alone and the unit effects are summed over the node (ignores
        interactions between the node's units).

        Parameters
        ----------
        inputs : Tensor or tuple
        nodes : Mapping[str, slice | Sequence[int] | bool mask]
        targets : int or sequence of int, optional
            Output columns. Default None: every column.
        additional_forward_args : optional
        layer_baselines : None, number, Tensor or "mean"
            Captum's replacement values (default 0); ``"mean"``: each unit's
            mean over ``inputs``.
        joint : bool
            Ablate each node as a whole. Default True.
        perturbations_per_eval : int
            Captum's setting. Default 1.
        labels : array-like, optional
            Per-example classes, for per-class means in ``to_frame()``.
        batch_size : int, optional
            Examples per Captum call. Default None: 4096.
        attribute_to_layer_input : bool
            Captum's flag. Default False.

        Returns
        -------
        NodeAttributionResult
            ``method`` is ``"ablation"`` or ``"unit_ablation"``.

        Raises
        ------
        ValueError
            A node or target out of range, an unknown ``layer_baselines``
            string, ``labels`` of the wrong length, NaN inputs.
        """
        lfa = LayerFeatureAblation(self.forward_func, self.layer, self.device_ids)
        base = layer_baselines
        if isinstance(base, str):
            if base != "mean":
                raise ValueError(f"`layer_baselines` must be None, a number, a tensor or "
                                 f"'mean', got {base!r}.")
            inputs_t = as_input_tuple(inputs, "inputs")
            args = as_forward_args(additional_forward_args, inputs_t[0].shape[0])
            acts, _, shape = self._forward(self.forward_func, self.layer, inputs_t, args,
                                           batch_size, attribute_to_layer_input)
            base = acts.mean(0).reshape(1, *shape)
            dev = inputs_t[0].device
            base = base.to(dev, inputs_t[0].dtype if inputs_t[0].is_floating_point() else
                           torch.float32)

        def call(xb, ab, target, shape, index, m, rows):
            kwargs = dict(layer_baselines=base, target=target, additional_forward_args=ab or None,
                          perturbations_per_eval=perturbations_per_eval,
                          attribute_to_layer_input=attribute_to_layer_input)
            x_in = xb if len(xb) > 1 else xb[0]
            n_units = m.shape[0]
            if not joint:
                attr = lfa.attribute(x_in, **kwargs)
                return attr.detach().reshape(len(rows), -1).to("cpu", torch.float64) @ m
            result = torch.empty(len(rows), len(index), dtype=torch.float64)
            for group in _disjoint_groups(index):
                mask = torch.full((n_units,), len(group), dtype=torch.int64)
                for g, j in enumerate(group):
                    mask[torch.from_numpy(index[j])] = g
                layer_mask = mask.reshape(1, *shape).to(xb[0].device)
                attr = lfa.attribute(x_in, layer_mask=layer_mask, **kwargs)
                flat = attr.detach().reshape(len(rows), -1).to("cpu", torch.float64)
                for j in group:
                    result[:, j] = flat[:, int(index[j][0])]
            return result

        return self._per_node("ablation" if joint else "unit_ablation", inputs, nodes, targets,
                              additional_forward_args, labels, batch_size,
                              attribute_to_layer_input, call)


def _disjoint_groups(index: list[np.ndarray]) -> list[list[int]]:
    """Greedy partition of the nodes into groups of pairwise disjoint nodes (node order kept)."""
    groups: list[tuple[list[int], set[int]]] = []
    for j, idx in enumerate(index):
        units = set(idx.tolist())
        for members, used in groups:
            if not used & units:
                members.append(j)
                used |= units
                break
        else:
            groups.append(([j], units))
    return [g for g, _ in groups]


def _check_finite_activations(acts: Tensor, name: str) -> None:
    bad = ~torch.isfinite(acts)
    if bool(bad.any()):
        first = tuple(int(i) for i in bad.nonzero()[0].tolist())
        raise ValueError(f"The activations of `{name}` contain {int(bad.sum())} non-finite "
                         f"value(s) (NaN/Inf), first at (cell, unit) {first}.")


def _gene_columns(genes: Any, n_genes: int, gene_names: Sequence[str] | None) -> list[int]:
    """Column indices of ``genes`` (ints, or names in ``gene_names``), in the order given."""
    items = [genes] if isinstance(genes, (str, int, np.integer)) else list(genes) \
        if hasattr(genes, "__iter__") else None
    if items is None or not items:
        raise ValueError(f"`genes` must be a gene (index or name) or a non-empty sequence of "
                         f"them, got {genes!r}.")
    names = None
    if gene_names is not None:
        names = [str(g) for g in gene_names]
        if len(names) != n_genes:
            raise ValueError(f"`gene_names` must name the {n_genes} columns of `inputs`, got "
                             f"{len(names)} names.")
    cols: list[int] = []
    for g in items:
        if isinstance(g, str):
            if names is None:
                raise ValueError(f"`genes` gives the name {g!r}; pass `gene_names` to look it "
                                 "up.")
            if g not in names:
                raise ValueError(f"`genes`: {g!r} is not in `gene_names` ({n_genes} genes).")
            cols.append(names.index(g))
        elif isinstance(g, (int, np.integer)) and not isinstance(g, bool):
            if not 0 <= int(g) < n_genes:
                raise ValueError(f"`genes`: index {int(g)} is out of range for {n_genes} genes.")
            cols.append(int(g))
        else:
            raise ValueError(f"`genes` must hold gene indices or names, got {g!r}.")
    if len(set(cols)) != len(cols):
        raise ValueError("`genes` lists a gene more than once.")
    return cols
