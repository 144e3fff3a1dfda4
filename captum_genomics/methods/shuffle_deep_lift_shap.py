"""``ShuffleDeepLiftShap``: DeepLIFT/SHAP against per-example shuffled references.

Orchestration only: references come from :mod:`captum_genomics.references`
(:class:`~captum_genomics.references.per_example.PerExampleReferences`),
the multipliers from :mod:`captum_genomics.deeplift.engine`, the rules from
:mod:`captum_genomics.deeplift.rules` and hypothetical contributions from
:mod:`captum_genomics.deeplift.contributions`.
"""

from __future__ import annotations

import warnings
from typing import Any, Callable, Literal, Sequence, overload

import torch
from torch import Tensor

from captum_genomics._utils.batching import index_examples
from captum_genomics._utils.captum import GradientAttribution, format_additional_forward_args, log_usage
from captum_genomics._utils.checks import (
    check_eval_mode,
    check_finite,
    check_positive_int,
    check_shape,
    check_tensor,
)
from captum_genomics._utils.devices import module_device, module_dtype
from captum_genomics._utils.targets import make_selector, validate_target
from captum_genomics.deeplift.contributions import pair_hypothetical
from captum_genomics.deeplift.engine import DeepLiftPasses, detached_forward
from captum_genomics.deeplift.layout import wants_channels_last
from captum_genomics.deeplift.rules.base import UnsupportedOperationWarning
from captum_genomics.deeplift.rules.registry import RuleRegistry, default_rules

__all__ = ["ShuffleDeepLiftShap", "ConvergenceDeltaWarning", "UninformativeReferencesWarning"]


class UninformativeReferencesWarning(UserWarning):
    """Every reference of an example equals it: its attributions are zero by construction."""


class ConvergenceDeltaWarning(UserWarning):
    """Some example-reference pair's ``|convergence delta|`` exceeded ``warning_threshold``."""


def _is_one_hot(x: Tensor) -> bool:
    if x.ndim != 3:
        return False
    binary = bool(((x == 0) | (x == 1)).all())
    return binary and bool((x.sum(dim=1) <= 1).all())


def _check_model_dtype(model: Any, xs: tuple) -> None:
    """Inputs must have the dtype of the model's parameters (no silent cast either way)."""
    dtype = module_dtype(model, None)
    if dtype is None:
        return
    for j, x in enumerate(xs):
        if x.dtype != dtype:
            name = "inputs" if len(xs) == 1 else f"inputs[{j}]"
            raise TypeError(
                f"`{name}` has dtype {x.dtype} but the model's parameters are {dtype}; pass "
                f"`{name}.to({dtype})`, or convert the model (e.g. `model.to({x.dtype})`). "
                "float64 gives additivity to ~1e-12; float16/bfloat16 only to ~1e-2."
            )


def _explain_unsplit_args(error: RuntimeError, extra: tuple, n: int) -> None:
    """Raise a clear error if the model failed on a tensor argument with a foreign batch size.

    Captum's rule: a tensor in ``additional_forward_args`` whose first axis is
    ``N`` holds one row per example and is split with the inputs; any other
    value is passed unchanged to every batch. A tensor of another length is
    then the likely cause of a shape error inside the model.
    """
    odd = [(i, tuple(a.shape)) for i, a in enumerate(extra)
           if isinstance(a, Tensor) and a.ndim > 0 and a.shape[0] != n]
    if not odd:
        return
    i, shape = odd[0]
    raise ValueError(
        f"The model failed ({type(error).__name__}: {error}) with "
        f"`additional_forward_args[{i}]` of shape {shape}. Tensors whose first axis is "
        f"N={n} (the number of examples) are split per example and repeated per "
        "reference; others are passed unchanged to every batch. Give it one row per "
        "example, or pass a value that is meant for every example as a non-tensor."
    ) from error


def _check_rules(rules: Any) -> RuleRegistry:
    """Raise ``TypeError`` unless ``rules`` is a :class:`RuleRegistry`; return it."""
    if not isinstance(rules, RuleRegistry):
        raise TypeError(f"`rules` must be a RuleRegistry, got {type(rules).__name__}.")
    return rules


def _blocks(n: int, k: int, batch_size: int) -> list[tuple[int, int, int, int]]:
    """Split ``n`` examples x ``k`` references into blocks of at most ``batch_size`` pairs.

    Returns ``(lo, hi, k0, k1)``: examples ``lo..hi-1`` against references
    ``k0..k1-1``. With ``batch_size >= k`` a block holds whole examples;
    otherwise one example's references are split over several blocks.
    """
    if batch_size >= k:
        step = batch_size // k
        return [(lo, min(lo + step, n), 0, k) for lo in range(0, n, step)]
    return [(i, i + 1, k0, min(k0 + batch_size, k)) for i in range(n)
            for k0 in range(0, k, batch_size)]


class ShuffleDeepLiftShap(GradientAttribution):
    r"""DeepLIFT/SHAP with per-example shuffled references, for one-hot sequence models.

    The DeepSHAP estimator of Lundberg & Lee (2017) with the DeepLIFT rescale
    rule (Shrikumar, Greenside & Kundaje 2017), against ``K`` references per
    example, by default dinucleotide shuffles of the example itself as in
    tangermeme's ``deep_lift_shap`` and the DeepSHAP/BPNet workflow. The
    attribution of an example is the mean over its references of the DeepLIFT
    attributions against each one.

    What differs from Captum's ``DeepLiftShap`` and tangermeme's
    ``deep_lift_shap``:

    * rules are applied to torch *operations*, not modules, so functional
      activations (``torch.relu``, ``F.gelu``), reused modules and subclasses
      of ``nn.ReLU`` are all handled, and an op without a rule is reported,
      never silently treated as linear (see :mod:`captum_genomics.deeplift.rules`);
    * the max-pool rule is exact, also for overlapping and dilated windows;
    * each batch runs a gradient-free forward of the references, then one
      forward and one backward of the inputs (no parameter gradients), about
      two thirds of the work of the concatenated-batch approach;
    * several targets share one forward (``targets=[...]``);
    * the references of an example are seeded by ``(random_state, example
      index, reference index)``, so they do not depend on batching;
    * convergence deltas are returned per example-reference pair;
    * it works inside the caller's ``torch.no_grad()`` and
      ``torch.inference_mode()``, with the same bits as with autograd on,
      and leaves both modes as they were.

    Parameters
    ----------
    model : torch.nn.Module or callable
        Maps a batch ``(B, A, L)`` (plus ``additional_forward_args``) to an
        output ``(B,)``, ``(B, T)`` or ``(B, T, ...)`` indexed by ``target``.
        Dropout and batch-norm layers must be in eval mode.
    rules : RuleRegistry, optional
        The rule registry; default :func:`~captum_genomics.deeplift.rules.default_rules`.
        Extend or override it per instance or per call.
    strict : bool
        If True, an operation on input-dependent tensors with no rule raises
        :class:`~captum_genomics.deeplift.rules.UnsupportedOperationError`; otherwise
        it is treated as linear with an
        :class:`~captum_genomics.deeplift.rules.UnsupportedOperationWarning` naming it.
        Default False.
    """

    def __init__(self, model: Callable, rules: RuleRegistry | None = None, strict: bool = False):
        super().__init__(model)
        self.rules = default_rules() if rules is None else _check_rules(rules)
        self.strict = bool(strict)

    def has_convergence_delta(self) -> bool:
        """True: ``attribute`` can return convergence deltas."""
        return True

    @overload
    def attribute(self, inputs: Tensor | tuple[Tensor, ...], references: Any = ...,
                  n_references: int = ..., target: Any = ..., additional_forward_args: Any = ...,
                  batch_size: int = ..., hypothetical: bool = ...,
                  return_multipliers: bool = ...,
                  return_convergence_delta: Literal[False] = ..., **kwargs) -> Any: ...

    @overload
    def attribute(self, inputs: Tensor | tuple[Tensor, ...], references: Any = ...,
                  n_references: int = ..., target: Any = ..., additional_forward_args: Any = ...,
                  batch_size: int = ..., hypothetical: bool = ...,
                  return_multipliers: bool = ...,
                  *, return_convergence_delta: Literal[True], **kwargs) -> tuple[Any, Tensor]: ...

    @log_usage()
    def attribute(
        self,
        inputs: Tensor | tuple[Tensor, ...],
        references: Any = None,
        n_references: int = 20,
        target: Any = None,
        additional_forward_args: Any = None,
        batch_size: int = 64,
        hypothetical: bool = False,
        return_multipliers: bool = False,
        return_convergence_delta: bool = False,
        warning_threshold: float = 1e-3,
        random_state: int | None = None,
        show_progress: bool = False,
        example_indices: Sequence[int] | Tensor | None = None,
        targets: Sequence[Any] | None = None,
        rules: RuleRegistry | None = None,
        strict: bool | None = None,
        strategy: Literal["auto", "batched", "examples", "pairs"] = "auto",
        dtype: torch.dtype | None = None,
    ):
        r"""Attribute the selected output to the inputs.

        Parameters
        ----------
        inputs : Tensor ``(N, A, L)`` or tuple of tensors ``(N, *shape_j)``
            One-hot sequences (channel-first, ACGT order; all-zero columns are
            N) or, for multi-input models, one tensor per model input. Float.
        references : None, str, callable, Tensor ``(N, K, A, L)`` or tuple
            The per-example references. None (default) uses ``n_references``
            dinucleotide shuffles of each example; a string
            (``"dinucleotide"``, ``"shuffle"``, ``"zeros"``, ``"uniform"``,
            ``"gc"``) or a generator from :mod:`captum_genomics.references`
            (e.g. ``KmerShuffle(k=3, start=400, end=600)``) picks another; a
            callable ``f(inputs_chunk, n_references)`` returning
            ``(n, K, A, L)`` is used as is; a tensor (one per input for
            tuples) gives the references explicitly. These are not Captum
            ``baselines``: each example has its own ``K`` references.
        n_references : int
            ``K`` when the references are generated. Default 20.
        target : int, tuple, Tensor ``(N,)``, list of length N, or None
            Captum's ``target``: which output to explain. An ``int`` selects
            ``output[:, target]``, a tuple indexes the non-batch axes, a
            tensor or list gives one target per example, None requires an
            output ``(B,)`` or ``(B, 1)``. Default None.
        additional_forward_args : Any
            Extra model arguments (Captum's convention). A tensor whose first
            axis has size ``N`` is indexed per example-reference pair; other
            values are passed unchanged.
        batch_size : int
            Example-reference pairs per forward/backward. Memory grows with it
            and not with ``N``. Default 64.
        hypothetical : bool
            Return hypothetical contributions ``(N, A, L)`` (the contribution
            each base would have at each position; see
            :func:`~captum_genomics.deeplift.contributions.hypothetical_contributions`)
            instead of contributions of the observed bases. One-hot inputs
            only. Default False.
        return_multipliers : bool
            Return the raw multipliers of every pair, ``(N, K, *shape)``, and
            skip the averaging. Default False.
        return_convergence_delta : bool
            Also return the convergence deltas. Default False.
        warning_threshold : float
            A :class:`ConvergenceDeltaWarning` is raised when any pair's
            ``|delta|`` exceeds it. Default ``1e-3``.
        random_state : int or None
            Seed of generated references; the references of example ``i``
            are seeded by ``(random_state, example_indices[i], k)``. None
            draws fresh ones. Default None.
        show_progress : bool
            Show a tqdm progress bar over batches. Default False.
        example_indices : sequence of int or Tensor ``(N,)``, optional
            Each example's index in the full data set, used for seeding.
            Default ``0..N-1``. Pass ``[i]`` to reproduce example ``i`` alone.
        targets : sequence of targets, optional
            Several targets from one forward pass per batch; each entry is a
            ``target`` as above. Returns a list with one result per target.
            (Captum already gives a *list* ``target`` a per-example meaning,
            hence the separate argument.)
        rules, strict
            Override the instance's rule registry / strictness for this call.
        strategy : {"auto", "batched", "examples", "pairs"}
            How a batch is computed (see
            :class:`~captum_genomics.deeplift.engine.DeepLiftPasses`):
            ``"batched"`` runs the expensive ops once per example and one
            backward over all of the batch's example-reference pairs;
            ``"examples"`` runs each example forward once and backward once per
            reference; ``"pairs"`` gives every pair its own row and one backward.
            ``"auto"`` (default) is ``"batched"``, which falls back to one row
            per pair op by op where an activation is not batch-first. All agree
            up to rounding; ``"examples"`` raises ``ValueError`` on models with
            sequence-first activations.

        dtype : torch.dtype or None
            Run both passes under ``torch.autocast`` with this dtype
            (``torch.bfloat16`` or ``torch.float16``): convolutions and matrix
            products in half precision, everything autocast keeps in float32
            (reductions, norms, softmax) and the multipliers, contributions
            and deltas in the inputs' dtype. Default None (the inputs' dtype
            throughout). On CPUs without native half-precision kernels this is
            slower, and the deltas grow to the half-precision rounding of the
            activations (see ``docs/deep_lift_shap.md``).
        Returns
        -------
        attributions : Tensor or tuple of Tensors
            Shaped like ``inputs`` (tuple in, tuple out), on the inputs'
            device and dtype. For one-hot inputs: the contributions of the
            observed bases (the hypothetical contributions times the input),
            whose sum over ``A`` at each position is DeepLIFT's
            ``sum_a m (x - r)`` averaged over references. At an N position
            (an all-zero column) the contribution is 0; when a reference has a
            base there, its share ``-sum_a m r`` is dropped and the sum of the
            attributions no longer equals the output difference. The
            generated shuffles keep N positions as N, so this only concerns
            user-given references. For other inputs:
            ``mean_k m_k * (x - r_k)``. With ``hypothetical=True``, the
            hypothetical contributions; with ``return_multipliers=True``,
            ``(N, K, *shape)`` multipliers.
        delta : Tensor ``(N, K)``, only with ``return_convergence_delta=True``
            Per example-reference pair:
            ``sum(m * (x - r)) - (f(x) - f(r))`` (Captum's sign). The
            attributions of an example sum to the mean over ``k`` of
            ``f(x) - f(r_k)`` plus the mean of its deltas.

        With ``targets``, a list of the above, one per target.

        Raises
        ------
        ValueError
            Empty or non-finite inputs, references of the wrong shape or with
            ``K = 0``, a target out of range, a model in training mode,
            ``hypothetical`` with non-one-hot inputs, non-one-hot inputs to a
            shuffle.
        UnsupportedOperationError
            Under ``strict=True``, an input-dependent op with no rule.
        """
        strict = self.strict if strict is None else bool(strict)
        registry = _check_rules(self.rules if rules is None else rules)
        is_tuple = isinstance(inputs, (tuple, list))
        xs = tuple(inputs) if is_tuple else (inputs,)
        self._validate_inputs(xs)
        n = xs[0].shape[0]
        check_positive_int(batch_size, "batch_size")
        if isinstance(warning_threshold, bool) or not isinstance(warning_threshold,
                                                                  (int, float)):
            raise TypeError(f"`warning_threshold` must be a number >= 0, got "
                            f"{warning_threshold!r} ({type(warning_threshold).__name__}).")
        if not warning_threshold >= 0:
            raise ValueError(f"`warning_threshold` must be >= 0, got {warning_threshold!r}.")
        check_eval_mode(self.forward_func, "model")
        if dtype not in (None, torch.bfloat16, torch.float16):
            raise ValueError(f"`dtype` must be None, torch.bfloat16 or torch.float16 (the "
                             f"autocast precision), got {dtype!r}.")
        if example_indices is None:
            ex_idx = torch.arange(n)
        else:
            ex_idx = torch.as_tensor(example_indices, dtype=torch.long).reshape(-1)
            if ex_idx.numel() != n:
                raise ValueError(
                    f"`example_indices` must have one entry per example ({n}), got "
                    f"{ex_idx.numel()}."
                )
        one_hot = tuple(_is_one_hot(x) for x in xs)
        if hypothetical and not all(one_hot):
            raise ValueError(
                "`hypothetical=True` needs one-hot inputs (N, A, L) with values 0/1 and at "
                "most one 1 per column; got non-one-hot input(s) at position(s) "
                f"{[j for j, o in enumerate(one_hot) if not o]}."
            )
        target_list = list(targets) if targets is not None else [target]
        if targets is not None and len(target_list) == 0:
            raise ValueError("`targets` must hold at least one target, got an empty sequence.")
        for t in target_list:
            validate_target(t, n, "targets" if targets is not None else "target")
        # imported here: the references package loads numba
        from captum_genomics.references.per_example import PerExampleReferences

        refs = PerExampleReferences(references, xs, n_references, random_state, ex_idx)
        k = refs.k
        extra = format_additional_forward_args(additional_forward_args)
        device = module_device(self.forward_func, xs[0].device)
        _check_model_dtype(self.forward_func, xs)

        passes = DeepLiftPasses(detached_forward(self.forward_func), registry, strict, strategy,
                                channels_last=wants_channels_last(self.forward_func))
        n_t = len(target_list)
        if return_multipliers:
            outs = [[torch.empty((n, k, *x.shape[1:]), dtype=x.dtype, device=x.device)
                     for x in xs] for _ in range(n_t)]
        else:
            outs = [[torch.empty_like(x) for x in xs] for _ in range(n_t)]
        deltas = [torch.empty((n, k), dtype=xs[0].dtype, device=xs[0].device) for _ in range(n_t)]

        blocks = _blocks(n, k, batch_size)
        uninformative = torch.ones(n, dtype=torch.bool)  # every reference equals the example
        if show_progress:
            from tqdm.auto import tqdm

            blocks = tqdm(blocks, desc="ShuffleDeepLiftShap", unit="batch")
        acc: list[list[Tensor]] = []
        for lo, hi, k0, k1 in blocks:
            ex = torch.arange(lo, hi)
            ex_r = ex.repeat(k1 - k0)  # reference-major rows of the reference pass
            x_b = tuple(x[lo:hi].to(device) for x in xs)
            r_b = tuple(r[:, k0:k1].to(device) for r in refs.for_examples(lo, hi))
            selectors = [(make_selector(t, ex, n), make_selector(t, ex_r, n)) for t in target_list]
            try:
                with torch.autocast(device.type, dtype=dtype or torch.bfloat16,
                                    enabled=dtype is not None):
                    mults, y_x, y_r = passes.run(x_b, r_b, selectors,
                                                 index_examples(extra, ex, n, device),
                                                 index_examples(extra, ex_r, n, device))
            except RuntimeError as error:
                _explain_unsplit_args(error, extra, n)
                raise
            if k0 == 0:
                acc = [[None] * len(xs) for _ in range(n_t)]
            diff = tuple(x.unsqueeze(1) - r for x, r in zip(x_b, r_b))
            same = torch.stack([(d.reshape(d.shape[0], d.shape[1], -1) == 0).all(2)
                                for d in diff]).all(0).all(1)  # (examples,) every ref == input
            uninformative[lo:hi] &= same.cpu()
            for t in range(n_t):
                contrib = tuple(m * d for m, d in zip(mults[t], diff))
                total = sum(c.reshape(c.shape[0], c.shape[1], -1).sum(2) for c in contrib)
                deltas[t][lo:hi, k0:k1] = (total - (y_x[t] - y_r[t])).to(deltas[t])
                if return_multipliers:
                    for j, m in enumerate(mults[t]):
                        outs[t][j][lo:hi, k0:k1] = m.to(outs[t][j])
                    continue
                for j in range(len(xs)):
                    values = pair_hypothetical(mults[t][j], r_b[j]) if one_hot[j] else contrib[j]
                    # sum over references one at a time, in order: the result does not
                    # depend on how the references were split into batches
                    for i in range(values.shape[1]):
                        if acc[t][j] is None:
                            acc[t][j] = values[:, 0].clone()
                        else:
                            acc[t][j] += values[:, i]
                    if k1 == k:
                        mean = acc[t][j] / k
                        if one_hot[j] and not hypothetical:
                            mean *= x_b[j]
                        outs[t][j][lo:hi] = mean.to(outs[t][j])
        self._warn(passes, deltas, warning_threshold)
        if uninformative.any():
            bad = uninformative.nonzero().flatten().tolist()
            warnings.warn(
                f"{len(bad)} of {n} examples (first: index {bad[0]}) have references that are "
                "all identical to the example itself (e.g. a low-complexity or too-short "
                "sequence whose every shuffle is itself): their attributions are all zero "
                "because the references carry no information, not because no position matters.",
                UninformativeReferencesWarning,
                stacklevel=3,
            )
        results = []
        for t in range(n_t):
            attr = tuple(outs[t]) if is_tuple else outs[t][0]
            results.append((attr, deltas[t]) if return_convergence_delta else attr)
        return results if targets is not None else results[0]

    @staticmethod
    def _warn(passes, deltas, threshold) -> None:
        for message in passes.unsupported.values():
            warnings.warn(message, UnsupportedOperationWarning, stacklevel=4)
        for d in deltas:
            worst = d.abs().max().item() if d.numel() else 0.0
            if worst > threshold:
                count = int((d.abs() > threshold).sum())
                warnings.warn(
                    f"{count} of {d.numel()} example-reference pairs have |convergence delta| "
                    f"> warning_threshold={threshold:g} (max {worst:.3g}); attributions do not "
                    "sum to the output differences. Check for ops without a rule "
                    "(strict=True raises on them) or for low precision.",
                    ConvergenceDeltaWarning,
                    stacklevel=4,
                )

    @staticmethod
    def _validate_inputs(xs: tuple) -> None:
        if len(xs) == 0:
            raise ValueError("`inputs` must hold at least one tensor, got an empty tuple.")
        n = None
        for j, x in enumerate(xs):
            name = "inputs" if len(xs) == 1 else f"inputs[{j}]"
            check_tensor(x, name)
            if not x.is_floating_point():
                raise TypeError(
                    f"`{name}` must be a floating-point tensor (e.g. one-hot float32), got "
                    f"dtype {x.dtype}."
                )
            if x.ndim < 2:
                raise ValueError(f"`{name}` must have a batch axis and a feature axis, got "
                                 f"shape {tuple(x.shape)}.")
            if x.shape[0] == 0:
                raise ValueError(f"`{name}` is an empty batch (shape {tuple(x.shape)}); need "
                                 "N >= 1 examples.")
            if n is not None and x.shape[0] != n:
                raise ValueError(f"`{name}` has {x.shape[0]} examples but inputs[0] has {n}.")
            n = x.shape[0]
            check_finite(x, name)

    def compute_convergence_delta(
        self,
        attributions: Tensor | tuple[Tensor, ...],
        start_point: Tensor | tuple[Tensor, ...],
        end_point: Tensor | tuple[Tensor, ...],
        target: Any = None,
        additional_forward_args: Any = None,
    ) -> Tensor:
        r"""Per-example convergence delta of averaged attributions.

        Parameters
        ----------
        attributions : Tensor ``(N, *shape)`` or tuple
            Attributions as returned by :meth:`attribute`.
        start_point : Tensor ``(N, K, *shape)`` or ``(N, *shape)``, or tuple
            The references (``K`` per example) or one baseline per example.
        end_point : Tensor ``(N, *shape)`` or tuple
            The inputs.
        target, additional_forward_args
            As in :meth:`attribute`.

        Returns
        -------
        Tensor ``(N,)``
            ``sum(attributions_i) - mean_k (f(x_i) - f(r_ik))``.
        """
        attrs = attributions if isinstance(attributions, tuple) else (attributions,)
        xs = end_point if isinstance(end_point, tuple) else (end_point,)
        rs = start_point if isinstance(start_point, tuple) else (start_point,)
        n = xs[0].shape[0]
        extra = format_additional_forward_args(additional_forward_args)
        rs = tuple(r if r.ndim == x.ndim + 1 else r.unsqueeze(1) for r, x in zip(rs, xs))
        for r, x in zip(rs, xs):
            check_shape(r, "start_point", (n, None, *x.shape[1:]))
        k = rs[0].shape[1]
        ex = torch.arange(n).repeat_interleave(k)
        select = make_selector(target, ex, n)
        with torch.no_grad():
            fx = make_selector(target, torch.arange(n), n)(self.forward_func(*xs, *extra))
            fr = select(self.forward_func(*(r.reshape(n * k, *r.shape[2:]) for r in rs),
                                          *index_examples(extra, ex, n))).reshape(n, k)
        total = sum(a.reshape(n, -1).sum(1) for a in attrs)
        return total - (fx - fr.mean(1)).to(total)
