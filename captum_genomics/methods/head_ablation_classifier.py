"""``HeadAblationClassifierEffect``: how much each attention head matters to a classifier, per group.

Head importance by ablation (Michel et al. 2019, "Are Sixteen Heads Really
Better than One?", NeurIPS: the drop of a metric when one head is masked;
Voita et al. 2019, ACL): remove one head (or keep only one), run the
classifier, and measure within each group of examples (e.g. CTCF peaks and
shuffled sequences, or cell types) the drop of the target logit, of the
probability of the true class and of the accuracy, with a paired sign-flip
test per (head, group) and Benjamini-Hochberg correction per metric.

The classifier counterpart of
:class:`~captum_genomics.methods.head_ablation.HeadAblationExplainedVariance`,
which needs a model that predicts ``observed``. Orchestration only: layers and
heads are resolved as there (module paths), all variants and the unablated
model run in one batched :func:`~captum_genomics.heads.ablated_forward`, and
the statistics are :mod:`captum_genomics.stats.classifier_effects`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from captum_genomics._utils.batching import as_forward_args, as_input_tuple
from captum_genomics._utils.captum import log_usage
from captum_genomics._utils.checks import check_eval_mode, check_positive_int
from captum_genomics._utils.targets import resolve_output_target
from captum_genomics.heads import (
    check_ablation_options,
    HeadAblationClassifierResult,
    HeadAdapterRegistry,
    ablated_forward,
    default_batch_size,
    keep_masks,
)
from captum_genomics.methods.head_ablation import _HeadAblationMethod
from captum_genomics.stats.classifier_effects import (
    METRICS,
    _check_alternative,
    classifier_effects,
)
from captum_genomics.stats.explained_variance import check_group_sizes
from captum_genomics.stats.multiple_testing import check_alpha
from captum_genomics.stats.permutation import default_n_permutations

__all__ = ["HeadAblationClassifierEffect"]


def _as_labels(labels: Any, n: int) -> Tensor:
    """``labels`` as a CPU int64 tensor ``(N,)``; clear errors for one-hot, floats, shapes."""
    if isinstance(labels, Tensor):
        x = labels.detach().cpu()
    else:
        arr = np.asarray(labels)
        if arr.dtype.kind not in "biu":
            raise TypeError(
                f"`labels` must hold integer class indices (N,), got {type(labels).__name__} "
                f"of dtype {arr.dtype}."
            )
        x = torch.from_numpy(np.array(arr, dtype=np.int64))
    if x.is_floating_point() or x.is_complex():
        raise TypeError(
            f"`labels` must hold integer class indices (N,), got dtype {x.dtype}; cast with "
            "`.long()` if the values are whole numbers."
        )
    if x.dim() == 2 and x.shape[0] == n and x.shape[1] > 1:
        raise ValueError(
            f"`labels` must be class indices of shape (N,) = ({n},), got {tuple(x.shape)} "
            "(one-hot rows?); pass `labels.argmax(1)`."
        )
    if x.dim() == 2 and x.shape[1] == 1:
        x = x[:, 0]
    if tuple(x.shape) != (n,):
        raise ValueError(f"`labels` must have shape (N,) = ({n},), one class per example, got "
                         f"{tuple(x.shape)}.")
    x = x.to(torch.int64)
    if n and int(x.min()) < 0:
        raise ValueError(f"`labels` must be class indices >= 0, got {int(x.min())}.")
    return x


def _resolve_target(target: Any, n: int, n_outputs: int) -> Tensor | None:
    """``None`` (the true class) or one class per example, a CPU int64 tensor ``(N,)``."""
    if target is None:
        return None
    if n_outputs == 1:
        if isinstance(target, bool):
            raise TypeError(f"`target` must be an int, a tensor or a list, got a bool "
                            f"({target!r}).")
        values = torch.as_tensor(target).reshape(-1) if isinstance(target, (int, list, Tensor)) \
            else None
        if values is None or values.is_floating_point() or values.dtype == torch.bool:
            raise TypeError(
                "`target` of a binary-logit model must be a class, 0 or 1 (an int, or one per "
                f"example as a tensor or list), got {target!r}."
            )
        if values.numel() and (int(values.min()) < 0 or int(values.max()) > 1):
            raise ValueError(
                "`target` of a binary-logit model names a class, 0 (logit -z) or 1 (logit z), "
                f"got values in [{int(values.min())}, {int(values.max())}]."
            )
        if values.numel() not in (1, n):
            raise ValueError(f"`target` must be one class or one per example ({n}), got "
                             f"{values.numel()} values.")
        return values.to(torch.int64).expand(n).clone() if values.numel() == 1 else \
            values.to(torch.int64)
    t = resolve_output_target(target, n, n_outputs, "target")
    return torch.full((n,), t, dtype=torch.int64) if isinstance(t, int) else t


class HeadAblationClassifierEffect(_HeadAblationMethod):
    r"""Per (head, group): drop of target logit, true-class probability and accuracy, tested.

    For each tested head ``(layer, h)`` a *variant* of the classifier removes
    head ``h`` (``ablation="remove"``, the default) or keeps only head ``h``
    of its layer (``"keep"``); ablated heads are replaced by zero or by their
    mean over a reference set (``mode``). For every example ``i`` the full and
    the ablated model's logits give three metrics
    (:func:`~captum_genomics.stats.classifier_effects.classifier_metrics`):

    - ``target_logit``: the logit of the target class (default: the true
      class); for a single binary logit ``z``, ``z`` for class 1 and ``-z``
      for class 0;
    - ``true_class_probability``: ``softmax(z)[y]``, or ``sigmoid(+-z)``;
    - ``accuracy``: 1 if ``argmax(z) == y`` (binary: ``(z > 0) == y``), else 0.

    Per (metric, variant, group ``g``)::

        effect = mean_{i in g} (metric_full(i) - metric_ablated(i))

    the drop of the group's mean metric when the head is ablated (negative:
    ablation raises it), with ``full_value`` and ``ablated_value`` beside it.
    Its p-value is a paired sign-flip test of the per-example differences
    within the group (null: ablation does not change the metric on the
    group's examples, so each difference is as likely positive as negative;
    exact over all ``2**n`` flips when ``2**n <= n_permutations``; see
    :func:`~captum_genomics.stats.classifier_effects.sign_flip_test`), and
    q-values are Benjamini-Hochberg adjusted over all (variant, group) tests
    of the same metric. For accuracy this is the exact McNemar (sign) test of
    the examples whose correctness the ablation changes.

    Why ``"remove"`` by default: the drop when one head is removed is the
    importance of Michel et al. (2019); with ``"keep"`` every variant removes
    all but one head of its layer, so nearly every head shows a large drop
    and the smallest drop marks the head that carries most on its own.

    Parameters
    ----------
    forward_func : nn.Module
        The classifier; ``forward_func(*inputs, *additional_forward_args)``
        returns logits ``(N, C)`` (``C >= 2``, softmax classes) or one binary
        logit per example, ``(N,)`` or ``(N, 1)``. A plain callable works if
        the layers can be named (see ``layers``).
    layers : str, nn.Module, HeadAdapter, list of them, or dict
        As for :class:`~captum_genomics.methods.head_ablation.HeadAblationExplainedVariance`:
        dotted names from ``forward_func.named_modules()``, the modules, ready
        adapters, or a dict of name/module -> adapter factory. Heads are
        labelled by module path: the ``nn.TransformerEncoderLayer``
        ``"encoder.layers.0"`` gives heads ``("encoder.layers.0.self_attn", h)``.
    adapters : HeadAdapterRegistry, optional
        Default :func:`~captum_genomics.heads.default_head_adapters`
        (``nn.MultiheadAttention``, ``nn.TransformerEncoderLayer``).

    Attributes
    ----------
    layer_adapters : list of HeadAdapter
    layer_names : list of str
        The module path of each layer's heads.
    n_heads : list of int

    Raises
    ------
    UnsupportedAttentionError
        (a ``TypeError``) If a layer has no registered adapter.
    ValueError
        If a layer name is not a submodule of the model, a module is not part
        of it, or a layer is given twice.
    """

    def __init__(self, forward_func: Any, layers: Any,
                 adapters: HeadAdapterRegistry | None = None) -> None:
        super().__init__(forward_func, layers, adapters)

    @log_usage()
    def attribute(
        self,
        inputs: Any,
        labels: Any,
        groups: Any,
        target: Any = None,
        additional_forward_args: Any = None,
        heads: Sequence[tuple[str, int]] | None = None,
        ablation: str = "remove",
        mode: str = "zero",
        reference_inputs: Any = None,
        n_permutations: int | None = None,
        alpha: float = 0.05,
        alternative: str = "two-sided",
        random_state: int | None = 0,
        batch_size: int | None = None,
        group_names: Sequence[Any] | None = None,
        show_progress: bool = False,
        reference_forward_args: Any = None,
        min_examples: int = 2,
        permutation_batch_size: int | None = None,
    ) -> HeadAblationClassifierResult:
        r"""Effect of ablating every tested head on the classifier, per group, with p-values.

        One batched :func:`~captum_genomics.heads.ablated_forward` loop runs
        the unablated model (``N`` rows) and all ``V`` variants (``V * N``
        rows) in chunks of ``batch_size`` rows, with PyTorch's fused
        attention path off (restored afterwards); then the metrics, the
        sign-flip tests and the BH adjustment run vectorized over metrics,
        variants and groups.

        Parameters
        ----------
        inputs : Tensor ``(N, ...)`` or tuple of tensors with first axis N
            One row per example (e.g. one-hot DNA ``(N, 4, L)``); finite.
        labels : array-like ``(N,)`` of int
            The true class of each example, in ``[0, C)`` (``{0, 1}`` for a
            binary logit). A tensor, numpy array or list; not one-hot.
        groups : array-like, length N
            One group label per example (e.g. ``"peak"``/``"shuffle"``, cell
            types): strings, integers, a pandas ``Categorical``/``Series`` or
            a 1-D tensor; see ``group_names``. Groups may coincide with the
            classes.
        target : int, tensor ``(N,)`` or list, optional
            Captum's target: the class whose logit drop is reported, one for
            all examples or one per example. Default None: each example's
            true class. For a binary logit ``z`` a class 0 or 1 (logit ``-z``
            or ``z``), not an output column. The probability and accuracy
            always refer to ``labels``.
        additional_forward_args : optional
            Captum's extra forward arguments; tensors have first axis N.
        heads : list of (layer_name, head_index), optional
            The heads to test (the layer's module path, or the name given in
            ``layers``). Default None: every head of every layer.
        ablation : {"remove", "keep"}
            Remove the one head, or keep it and ablate the other heads of its
            layer. Default ``"remove"``.
        mode : {"zero", "mean"}
            Replace ablated heads by zero or by their mean over
            ``reference_inputs``. Default ``"zero"``.
        reference_inputs : Tensor or tuple, optional
            Required for ``mode="mean"`` (e.g. ``inputs`` themselves).
        n_permutations : int, optional
            Random sign vectors per group; groups with ``2**n <=
            n_permutations`` are enumerated exactly instead. Default None:
            ``ceil(V * n_tested_groups / alpha)`` (so that a Bonferroni-level
            p-value is resolvable).
        alpha : float
            Significance level in (0, 1), for the default permutation count
            and the ``significant`` column. Default 0.05.
        alternative : {"two-sided", "greater", "less"}
            ``"greater"``: the metric drops under ablation (``effect > 0``);
            ``"less"``: it rises. Default ``"two-sided"``.
        random_state : int or None
            Seed of the sign flips; the same seed gives the same p-values
            whatever ``batch_size``. Default 0.
        batch_size : int, optional
            Rows, (variant, example) pairs, per model call. Default None:
            :func:`~captum_genomics.heads.default_batch_size`.
        group_names : sequence, optional
            With integer ``groups``: the name of each code. Default None.
        show_progress : bool
            A tqdm bar over the model calls. Default False.
        reference_forward_args : optional
            Extra forward arguments for ``reference_inputs``.
        min_examples : int
            Groups with fewer examples are skipped (NaN, listed in
            ``skipped_groups``). Default 2.
        permutation_batch_size : int, optional
            Sign vectors scored per batch (memory; results do not depend on
            it). Default: automatic.

        Returns
        -------
        HeadAblationClassifierResult
            ``effect``, ``p_value``, ``q_value``, ``ablated_value`` ``(3, V,
            n_groups)``, ``full_value`` ``(3, n_groups)``, ``n``, ``exact``;
            ``to_frame()`` gives the tidy table (``layer, head, group, metric,
            n, full_value, ablated_value, effect, p_value, q_value,
            significant, exact``), ``pivot(metric, value)`` a head x group
            table.

        Raises
        ------
        ValueError
            ``labels`` or ``groups`` of the wrong length, one-hot ``labels``,
            classes out of range, a target out of range, NaN/Inf inputs,
            ``alpha`` outside (0, 1), an unknown ``ablation``, ``mode`` or
            ``alternative``, ``mode="mean"`` without ``reference_inputs``, a
            head out of range, model outputs that are not ``(N, C)``/``(N,)``
            logits, the model in training mode with active dropout.
        TypeError
            Non-tensor inputs, non-integer ``labels`` or ``target``, a model
            that does not return a tensor.
        """
        alpha = check_alpha(alpha)
        alternative = _check_alternative(alternative)
        check_ablation_options(ablation, mode, reference_inputs)
        if n_permutations is not None:
            check_positive_int(n_permutations, "n_permutations")
        check_positive_int(min_examples, "min_examples")
        if batch_size is not None:
            check_positive_int(batch_size, "batch_size")
        if permutation_batch_size is not None:
            check_positive_int(permutation_batch_size, "permutation_batch_size")
        inputs_t = as_input_tuple(inputs, "inputs")
        n = inputs_t[0].shape[0]
        args = as_forward_args(additional_forward_args, n, "additional_forward_args")
        rows = default_batch_size(inputs_t, args) if batch_size is None else batch_size
        codes, names = self._groups(groups, n, group_names)
        check_group_sizes(codes, names, min_examples, "groups", "min_examples")
        y = _as_labels(labels, n)
        variants = self._variants(heads)
        keep = keep_masks(self.n_heads, variants, ablation)
        check_eval_mode(self.forward_func, "forward_func")
        for a in self.layer_adapters:
            a.check()

        outputs = ablated_forward(self.forward_func, self.layer_adapters, keep, inputs_t, args,
                                  mode=mode, reference_inputs=reference_inputs,
                                  reference_forward_args=reference_forward_args,
                                  batch_size=rows, show_progress=show_progress,
                                  validate_inputs=False, include_full=True)   # (V + 1, N, C)
        if outputs.dim() == 2:
            outputs = outputs.unsqueeze(-1)
        if outputs.dim() != 3 or not outputs.is_floating_point():
            raise ValueError(
                f"`forward_func` must return logits (N, C), or one binary logit per example "
                f"(N,) or (N, 1); got shape {tuple(outputs.shape[1:])} of dtype "
                f"{outputs.dtype} for N = {n}."
            )
        preds, full = outputs[:-1], outputs[-1]
        c = full.shape[1]
        n_classes = 2 if c == 1 else c
        if n and int(y.max()) >= n_classes:
            kind = "a binary logit: classes 0 and 1" if c == 1 else f"{c} classes"
            raise ValueError(
                f"`labels` must be classes in [0, {n_classes}) for a model with {kind}, got "
                f"a maximum of {int(y.max())}."
            )
        t = _resolve_target(target, n, c)
        n_groups = len(names)
        tested = int((torch.bincount(codes, minlength=n_groups) >= min_examples).sum())
        if n_permutations is None:
            n_permutations = default_n_permutations(len(variants), max(tested, 1), alpha)
        eff = classifier_effects(full, preds, y, codes.to(full.device), n_groups,
                                 n_permutations, target=t, random_state=random_state,
                                 min_examples=min_examples, alternative=alternative,
                                 batch_size=permutation_batch_size)
        skipped = [names[g] for g in range(n_groups) if int(eff.n[g]) < min_examples]

        def cpu(x: Tensor) -> Tensor:
            return x.detach().to("cpu", torch.float64)

        return HeadAblationClassifierResult(
            heads=[(self.layer_names[i], h) for i, h in variants],
            group_names=list(names), metrics=METRICS,
            effect=cpu(eff.effect), p_value=cpu(eff.p_value), q_value=cpu(eff.q_value),
            full_value=cpu(eff.full_value), ablated_value=cpu(eff.ablated_value),
            n=eff.n.detach().cpu(), exact=eff.exact.detach().cpu(), skipped_groups=skipped,
            ablation=ablation, mode=mode, n_permutations=int(n_permutations), alpha=alpha,
            alternative=alternative,
            extra={"random_state": random_state, "min_examples": min_examples,
                   "binary": c == 1, "n_classes": n_classes,
                   "target": "true class" if target is None else "given",
                   "layers": list(self.layer_names), "n_heads": list(self.n_heads),
                   "batch_size": rows},
        )
