"""The DeepLIFT engine: multipliers for a block of examples and their references.

The engine intercepts torch operations with a :class:`torch.overrides.TorchFunctionMode`
rather than module hooks, so it sees activations called functionally
(``torch.relu``, ``F.gelu`` inside ``forward``), modules reused several times in
one forward, and user subclasses of ``nn.ReLU`` alike, and it writes nothing
onto the user's modules. For a block of ``n`` examples with ``R`` references
each (``B = n * R`` pairs) it runs

1. a forward of the ``B`` references without an autograd graph, where every
   op that has a rule records what its rule needs (usually the reference
   activation);
2. a forward of the examples with autograd, where every such op is replaced by
   an autograd function that holds the rule's multipliers for all ``R``
   references; an example's own activations are the same against each of its
   references, so the expensive ops (convolutions, dense layers) and the rules'
   arithmetic run on each example once; and
3. the backward: with the default ``"batched"`` layout the input pass holds one
   row per pair (the example repeated) and a single backward of ``B`` rows gives
   every pair's multipliers as batched kernels; with ``"examples"`` the graph
   holds ``n`` rows and is walked backward once per reference.

The usual implementation (Captum, tangermeme) runs forward and backward over
the concatenated ``[inputs; references]`` batch of ``2B`` rows, parameter
gradients included, and throws half of the backward away; this engine does a
forward of ``B`` rows without a graph, the expensive ops of ``n`` rows with one,
and a backward of ``B`` rows that computes input gradients only. The model runs
with detached parameters (``torch.func.functional_call``), so no parameter
gradient is computed or kept.

Ops are matched between the two passes by call order, so the model's
sequence of operations must not depend on the data (it may depend on shapes).

Composite functions without a rule that have a decomposition
(:mod:`captum_genomics.deeplift.decompositions`: ``scaled_dot_product_attention``,
``multi_head_attention_forward``, or a user's
:class:`~captum_genomics.deeplift.decompositions.Decomposition` in the rules) are
run as that decomposition with the mode active, in both passes, so every inner
op gets its own rule. PyTorch's fused inference paths for ``nn.MultiheadAttention``
and ``nn.TransformerEncoderLayer`` (taken when no input requires grad, as in the
reference pass) are switched off during both passes with
``torch.backends.mha.set_fastpath_enabled(False)`` and the user's setting is
restored afterwards, so both passes run the same ops. (``nn.TransformerEncoder``'s
fused path with ``src_key_padding_mask`` returns zeros at padded positions where the
unfused path computes values; a model whose output reads padded positions is
therefore explained as its unfused forward computes it.)
"""

from __future__ import annotations

import warnings
from typing import Any, Callable, Mapping, Sequence

import torch
from torch import Tensor
from torch.overrides import TorchFunctionMode

from captum_genomics._utils.attention import fused_attention_disabled
from captum_genomics._utils.batching import as_input_tuple
from captum_genomics._utils.grad_mode import autograd_enabled, autograd_tensors
from captum_genomics._utils.targets import make_selector, validate_target
from captum_genomics.deeplift.decompositions import DEFAULT_DECOMPOSITIONS, Decomposition
from captum_genomics.deeplift.layout import (
    channels_last_activations,
    view_or_reshape,
    wants_channels_last,
)
from captum_genomics.deeplift.rules.base import (
    PairCursor,
    UnsupportedOperationError,
    UnsupportedOperationWarning,
    attributed_inputs,
    requires_grad,
)
from captum_genomics.deeplift.rules.conv import CONSTANT_OP_NAMES, shared_constant, shared_sum
from captum_genomics.deeplift.rules.ops import BILINEAR_OPS, COMPARISON_OPS, DIVISION_OPS, LINEAR_OPS
from captum_genomics.deeplift.rules.registry import RuleRegistry, default_rules, op_name

__all__ = ["DeepLiftPasses", "PassObserver", "deeplift_multipliers", "detached_forward",
           "fused_attention_disabled", "STRATEGIES"]

#: The engine's strategies (see :class:`DeepLiftPasses`).
STRATEGIES = ("auto", "batched", "examples", "pairs")


def _any_requires_grad(obj: Any) -> bool:
    if isinstance(obj, Tensor):
        return requires_grad(obj)
    if isinstance(obj, (tuple, list)):
        return any(_any_requires_grad(o) for o in obj)
    if isinstance(obj, dict):
        return any(_any_requires_grad(o) for o in obj.values())
    return False


_NOT_BATCH_FIRST = (
    "strategy='examples' needs every activation with a rule to have the examples on its "
    "first axis, but this model has some on another axis (e.g. "
    "nn.TransformerEncoderLayer(batch_first=False) sees (T, N, E)). Use strategy='auto', "
    "'batched' or 'pairs'.")


def _example_axis_first(state: Any, rows: int) -> bool:
    """False if a recorded tensor holds the ``rows`` reference rows on an axis other than 0."""
    if isinstance(state, (tuple, list)):
        return all(_example_axis_first(s, rows) for s in state)
    if isinstance(state, Tensor) and state.ndim > 1 and state.shape[0] != rows:
        return rows not in state.shape[1:]
    return True


#: Linear ops the batched layout computes once per example (rules.conv.shared_sum).
_SUMS = frozenset(("add", "sub", "rsub"))


def _misaligned(state: Any, args: tuple, pairs: PairCursor) -> bool:
    """In the "examples" layout: a rule recorded ``R * n`` reference rows on axis 0 but its
    input here does not have the ``n`` examples there (a sequence-first layer whose length
    happens to be ``R * n``), so the two cannot be aligned."""
    first = state[0] if isinstance(state, (tuple, list)) and state else state
    x = args[0] if args else None
    return (isinstance(first, Tensor) and first.ndim > 0 and isinstance(x, Tensor)
            and x.ndim > 0 and first.shape[0] == pairs.n_examples * pairs.n_references
            and x.shape[0] != pairs.n_examples)


def _count_requires_grad(args: Sequence) -> int:
    return sum(1 for a in args if requires_grad(a))


def _decomposition(rule: Any, name: str,
                   decompositions: Mapping[str, Decomposition]) -> Decomposition | None:
    """The decomposition to run for op ``name``: a registered one, else a default when no rule."""
    if isinstance(rule, Decomposition):
        return rule
    return decompositions.get(name) if rule is None else None


#: Ops (normalized names) and tensor properties that read a tensor's metadata only, never
#: its values: a pending tile (:meth:`~captum_genomics.deeplift.rules.base.PairCursor.fill`)
#: passes through them unwritten. Any other op without a rule writes the tiles it reads
#: first (``.T``, ``.data``, views, ``__bool__``, printing: everything else).
_METADATA = frozenset((
    "size", "dim", "numel", "nelement", "stride", "storage_offset", "is_contiguous",
    "element_size", "is_floating_point", "is_complex", "is_signed", "get_device", "len",
    "data_ptr", "requires_grad",
))
_METADATA_PROPERTIES = frozenset((
    "shape", "dtype", "device", "ndim", "layout", "requires_grad", "is_leaf", "grad_fn",
    "is_cuda", "is_cpu", "is_meta", "is_sparse", "is_quantized", "is_mkldnn", "itemsize",
    "nbytes", "names", "output_nr", "_version", "is_nested", "is_sparse_csr", "is_xpu",
    "is_mps", "is_xla", "is_vulkan", "is_ipu", "is_maia",
))

#: Dropouts: the identity (their input itself) outside training or at ``p = 0``.
_DROPOUTS = frozenset(("dropout", "dropout1d", "dropout2d", "dropout3d", "alpha_dropout",
                       "feature_alpha_dropout"))


def _dropout_is_identity(args: tuple, kwargs: dict) -> bool:
    """Whether a dropout call (``(input, p, training, inplace)``) returns its input as is."""
    p = args[1] if len(args) > 1 else kwargs.get("p", 0.5)
    training = args[2] if len(args) > 2 else kwargs.get("training", True)
    return isinstance(p, (int, float)) and (not training or p == 0)


def _reads_values(func: Callable, name: str, args: tuple, kwargs: dict) -> bool:
    """Whether op ``func`` (registry name ``name``) called on ``args``/``kwargs`` may read
    the values of its tensors (not a metadata read, nor a dropout that returns its input)."""
    if name == "get":  # a property: Tensor.shape.__get__ and the like
        owner = getattr(func, "__self__", None)
        return getattr(owner, "__name__", None) not in _METADATA_PROPERTIES
    if name in _DROPOUTS:
        return not _dropout_is_identity(args, kwargs)
    return name not in _METADATA


def _call(func: Callable, name: str, args: tuple, kwargs: dict) -> Any:
    """Run an op that has no rule; ``view`` also on channels-last activations
    (:func:`captum_genomics.deeplift.layout.view_or_reshape`)."""
    if name == "view":
        return view_or_reshape(func, args, kwargs)
    return func(*args, **kwargs)


class PassObserver:
    """An optional hook around every op the engine intercepts (off by default).

    Diagnostics (:mod:`captum_genomics.testing.localize`) subclass it to see
    each op of both passes. ``run(func, args, kwargs)`` is what the engine
    would have done with the op (apply its rule, or run it and check that it
    is linear); an observer must call it exactly once per op and return its
    result, and may pass equivalent arguments (e.g. views of the same
    tensors). Both methods run inside the engine's ``TorchFunctionMode``
    handler, so torch calls they make are not intercepted. The defaults pass
    every op through unchanged.
    """

    def reference_op(self, func: Callable, args: tuple, kwargs: dict,
                     run: Callable[[Callable, tuple, dict], Any]) -> Any:
        """An op of the reference pass (no autograd graph, ``R * n`` rows)."""
        return run(func, args, kwargs)

    def input_op(self, func: Callable, args: tuple, kwargs: dict,
                 run: Callable[[Callable, tuple, dict], Any]) -> Any:
        """An op of the input pass (with autograd)."""
        return run(func, args, kwargs)


class _RecordMode(TorchFunctionMode):
    """Reference pass: run ops normally and record rule states in call order."""

    def __init__(self, registry: RuleRegistry, observer: PassObserver | None = None,
                 decompositions: Mapping[str, Decomposition] = DEFAULT_DECOMPOSITIONS):
        super().__init__()
        self.registry = registry
        self.records: list[tuple[str, Any]] = []
        self.observer = observer
        self.decompositions = decompositions

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = op_name(func)  # once per op: the name and rule are resolved here only
        rule = self.registry.get(name)
        decomposition = _decomposition(rule, name, self.decompositions)
        if decomposition is not None:
            with self:  # the handler runs with this mode popped: re-enter it for the inner ops
                return decomposition(*args, **kwargs)
        if self.observer is not None:
            return self.observer.reference_op(
                func, args, kwargs, lambda f, a, k: self._run(f, a, k, name, rule))
        return self._run(func, args, kwargs, name, rule)

    def _run(self, func, args, kwargs, name, rule):
        if rule is None:
            return _call(func, name, args, kwargs)
        out, state = rule.reference(func, args, kwargs)
        self.records.append((name, state))
        return out


class _ApplyMode(TorchFunctionMode):
    """Input pass: replace ruled ops by their DeepLIFT autograd functions."""

    def __init__(self, registry: RuleRegistry, records: list, strict: bool, unsupported: dict,
                 pairs: PairCursor, observer: PassObserver | None = None,
                 decompositions: Mapping[str, Decomposition] = DEFAULT_DECOMPOSITIONS):
        super().__init__()
        self.decompositions = decompositions
        self.pairs = pairs
        self.registry = registry
        self.records = records
        self.position = 0
        self.strict = strict
        self.unsupported = unsupported
        self.observer = observer

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = op_name(func)
        rule = self.registry.get(name)
        decomposition = _decomposition(rule, name, self.decompositions)
        if decomposition is not None:
            with self:
                return decomposition(*args, **kwargs)
        if self.observer is not None:
            return self.observer.input_op(
                func, args, kwargs, lambda f, a, k: self._run(f, a, k, name, rule))
        return self._run(func, args, kwargs, name, rule)

    def _run(self, func, args, kwargs, name, rule):
        lazy = self.pairs.lazy
        if rule is None:
            if self.pairs.batched and name in _SUMS:
                out = shared_sum(func, args, kwargs, self.pairs)
                if out is not None:
                    return out
            if self.pairs.batched and name in CONSTANT_OP_NAMES:
                out = shared_constant(func, args, kwargs, self.pairs)
                if out is not None:
                    return out
            if lazy and _reads_values(func, name, args, kwargs):
                self.pairs.fill_in((args, kwargs))
            out = _call(func, name, args, kwargs)
            self._check_linear(func, name, args, kwargs, out)
            return out
        if self.position >= len(self.records) or self.records[self.position][0] != name:
            expected = (self.records[self.position][0] if self.position < len(self.records)
                        else "the end of the forward")
            raise RuntimeError(
                f"The model's operations differ between the reference pass and the input "
                f"pass: op #{self.position} is `{name}` on the inputs but `{expected}` on "
                "the references. DeepLIFT needs a forward whose sequence of operations "
                "does not depend on the data."
            )
        state = self.records[self.position][1]
        pairs = self.pairs
        if pairs.n_references > 1 and not pairs.batched and _misaligned(state, args, pairs):
            raise ValueError(_NOT_BATCH_FIRST)
        self.records[self.position] = (name, None)  # free the reference activation early
        self.position += 1
        if lazy and not rule.reads_examples_only:
            self.pairs.fill_in((args, kwargs))
        return rule.apply(func, args, kwargs, state, self.pairs)

    def _check_linear(self, func, name, args, kwargs, out) -> None:
        nonlinear = False
        if name in BILINEAR_OPS:
            nonlinear = _count_requires_grad(args) + _count_requires_grad(
                list(kwargs.values())) >= 2
        elif name in DIVISION_OPS:
            nonlinear = len(args) > 1 and requires_grad(args[1])
        elif name in COMPARISON_OPS:
            nonlinear = _any_requires_grad(args) or _any_requires_grad(kwargs)
        elif name not in LINEAR_OPS:
            nonlinear = _any_requires_grad(out) and (
                _any_requires_grad(args) or _any_requires_grad(kwargs))
        if not nonlinear:
            return
        what = getattr(func, "__qualname__", name)
        if name in COMPARISON_OPS:
            detail = ("compares input-dependent tensors; a mask built from it (a hand-written "
                      "ReLU such as `h * (h > 0)`) makes the ops that use it piecewise")
        else:
            detail = "acts on input-dependent tensors"
        if self.strict:
            raise UnsupportedOperationError(
                f"No DeepLIFT rule for `{name}` ({what}), which {detail} (strict=True). "
                + _register_hint(name)
            )
        self.unsupported[name] = (
            f"No DeepLIFT rule for `{name}` ({what}), which {detail}; it is being treated "
            "as linear, so attributions may not be additive. " + _register_hint(name)
            + " Pass strict=True to raise instead."
        )


def _register_hint(name: str) -> str:
    """How to give op ``name`` a rule: elementwise, or composite (a decomposition)."""
    return (
        f"If `{name}` is elementwise, register the rescale rule: "
        f"`rules=default_rules().with_rules({{{name!r}: Rescale()}})`; if it is a composite op "
        "(several ops inside, like an attention kernel), register a decomposition that "
        "computes it from ops that have rules: "
        f"`rules=default_rules().with_rules({{{name!r}: Decomposition(fn)}})` "
        "(captum_genomics.deeplift.rules.Rescale, captum_genomics.deeplift.Decomposition; "
        "docs/deep_lift_shap.md, section 7)."
    )


def detached_forward(model: Callable) -> Callable:
    """A forward function that runs ``model`` with detached parameters.

    For an ``nn.Module`` this calls ``torch.func.functional_call`` with
    ``{name: param.detach()}``, so no parameter gradient is computed or kept
    and the module itself is left as it was (``functional_call`` restores the
    parameters even when the forward raises). Other callables are returned
    unchanged.
    """
    if not isinstance(model, torch.nn.Module):
        return model
    # one entry per tensor: functional_call ties the other names of a shared module to it
    params = {n: p.detach() for n, p in model.named_parameters()}
    # a model built under torch.inference_mode() holds inference tensors, which autograd
    # cannot save: use ordinary copies of them (the module keeps its own)
    params.update({n: b for n, b in model.named_buffers() if b.is_inference()})
    params = {n: autograd_tensors(p) for n, p in params.items()}
    if not params:
        return model

    def forward(*args):
        return torch.func.functional_call(model, params, args, strict=False, tie_weights=True)

    return forward


class DeepLiftPasses:
    """Runs the reference and input passes for one block of examples and references.

    Parameters
    ----------
    forward
        The model's forward, ideally from :func:`detached_forward`.
    registry
        The rules to apply.
    strict
        Raise :class:`UnsupportedOperationError` (instead of warning) on an
        op with no rule that acts nonlinearly on input-dependent tensors.
    strategy
        How the input pass lays out a block of ``n`` examples with ``R``
        references each (all give the same multipliers up to floating-point
        rounding, and each is batch invariant):

        * ``"batched"``: every pair gets its own row, ``R`` repeats of each
          example, so one backward covers all ``R * n`` pairs as batched kernels;
          convolutions, dense layers and the rules' own arithmetic run on the
          ``n`` distinct examples only and repeat their outputs (see
          :class:`~captum_genomics.deeplift.rules.base.PairCursor`). Work: a
          forward of the ``R * n`` references without a graph, a forward of the
          ``n`` examples through the expensive ops, one backward of ``R * n``
          rows computing input gradients only.
        * ``"examples"`` (the default of the engine, for callers that step
          through references): the ``n`` examples run forward once and the graph
          is walked backward once per reference, at batch ``n``.
        * ``"pairs"``: every pair gets its own row and nothing is shared (a
          forward of ``R * n`` rows with a graph).
        * ``"auto"``: ``"batched"``.

        In the batched layout an op shares its work between the references of
        an example only where its input holds the pair rows on axis 0 (checked
        per call, :meth:`~captum_genomics.deeplift.rules.base.PairCursor.dedupable`);
        elsewhere (a sequence-first layer's ``(T, N, E)``) it runs on every row,
        as in ``"pairs"``. ``"examples"`` raises ``ValueError`` on such models.
    observer
        A :class:`PassObserver` called around every intercepted op of both
        passes, for diagnostics. Default None (no observer; the passes run
        exactly as without one). It sees the inner ops of a decomposition,
        not the decomposed op itself.
    decompositions
        Mapping from op name to
        :class:`~captum_genomics.deeplift.decompositions.Decomposition`, run
        for ops that have no rule in ``registry``. Default
        :data:`~captum_genomics.deeplift.decompositions.DEFAULT_DECOMPOSITIONS`
        (scaled dot-product and multi-head attention); pass ``{}`` to turn
        them off. A ``Decomposition`` registered in ``registry`` itself always
        applies.
    channels_last
        Run float32 ``conv1d`` on CPU over channels-last activations
        (:mod:`captum_genomics.deeplift.layout`; callers pass
        :func:`~captum_genomics.deeplift.layout.wants_channels_last` of the model).
        Same results up to float32 rounding. Default False.

    Attributes
    ----------
    last_strategy : str
        The layout the last block ran with (``"auto"`` resolved).
    unsupported : dict[str, str]
        Op names without a rule that were met (and treated as linear), with
        their messages; the caller turns them into one warning each.
    """

    def __init__(self, forward: Callable, registry: RuleRegistry, strict: bool = False,
                 strategy: str = "examples", observer: PassObserver | None = None,
                 decompositions: Mapping[str, Decomposition] = DEFAULT_DECOMPOSITIONS,
                 channels_last: bool = False):
        if strategy not in STRATEGIES:
            raise ValueError(
                f"`strategy` must be one of {', '.join(map(repr, STRATEGIES))}, got "
                f"{strategy!r}.")
        self.forward = forward
        self.registry = registry
        self.strict = strict
        self.strategy = strategy
        self.observer = observer
        self.decompositions = decompositions
        self.unsupported: dict[str, str] = {}
        self.last_strategy = ""
        self.channels_last = bool(channels_last)

    def run(
        self,
        inputs: tuple[Tensor, ...],
        references: tuple[Tensor, ...],
        selectors: Sequence[tuple[Callable[[Tensor], Tensor], Callable[[Tensor], Tensor]]],
        input_args: tuple = (),
        reference_args: tuple = (),
    ) -> tuple[list[tuple[Tensor, ...]], list[Tensor], list[Tensor]]:
        """Multipliers of every selected output for every example-reference pair of a block.

        The block is ``n`` examples times ``R`` references. The references run
        through the model once (``R * n`` rows, no autograd graph), the
        examples once (``n`` rows, with a graph), and the graph is walked
        backward once per reference and target.

        Parameters
        ----------
        inputs
            Tuple of tensors ``(n, *shape_j)``, one per model input.
        references
            Tuple of tensors ``(n, R, *shape_j)``.
        selectors
            One pair of functions per target: the first maps the model output
            on the ``n`` examples to ``(n,)``, the second maps the output on
            the ``R * n`` references (reference-major: row ``k * n + e``) to
            ``(R * n,)``.
        input_args, reference_args
            Extra positional model arguments for the two passes (``n`` and
            ``R * n`` rows where they are per example).

        Returns
        -------
        multipliers : list (per target) of tuples of ``(n, R, *shape_j)`` tensors
        outputs : list (per target) of ``(n, R)`` selected outputs on the inputs (the
            same for every reference with ``strategy="examples"``)
        reference_outputs : list (per target) of ``(n, R)`` selected outputs on the references
        """
        with autograd_enabled():  # also inside the caller's no_grad / inference_mode
            inputs, references, input_args, reference_args = autograd_tensors(
                (inputs, references, input_args, reference_args))
            with channels_last_activations(self.channels_last):
                return self._run(inputs, references, selectors, input_args, reference_args)

    def _run(self, inputs, references, selectors, input_args, reference_args):
        n, r = inputs[0].shape[0], references[0].shape[1]
        flat = tuple(ref.transpose(0, 1).reshape(r * n, *ref.shape[2:]) for ref in references)
        record = _RecordMode(self.registry, self.observer, self.decompositions)
        with torch.no_grad(), fused_attention_disabled(), record:
            out_r = self.forward(*flat, *reference_args)
        ref_outputs = [sel_r(out_r).detach().reshape(r, n).T for _, sel_r in selectors]
        del out_r, flat

        strategy = "batched" if self.strategy == "auto" else self.strategy
        if strategy == "examples" and r > 1 and not all(
                _example_axis_first(st, r * n) for _, st in record.records):
            raise ValueError(_NOT_BATCH_FIRST)
        if strategy == "examples" or (strategy == "pairs" and r == 1):
            xs = tuple(x.detach().requires_grad_(True) for x in inputs)
            pairs, args, select = PairCursor(n, r), input_args, [s for s, _ in selectors]
        else:
            # every pair gets its own row: inputs repeated reference-major, one backward
            xs = tuple(x.unsqueeze(0).expand(r, *x.shape).reshape(r * n, *x.shape[1:])
                       .detach().requires_grad_(True) for x in inputs)
            # lazy tiles (PairCursor.fill) unless an observer looks at every op's tensors
            pairs = PairCursor(n, r, batched=True, lazy=self.observer is None) \
                if strategy == "batched" else PairCursor(r * n, 1)
            args, select = reference_args, [s for _, s in selectors]
        per_pair = strategy == "batched" or (strategy == "pairs" and r > 1)
        self.last_strategy = strategy
        apply = _ApplyMode(self.registry, record.records, self.strict, self.unsupported, pairs,
                           self.observer, self.decompositions)
        with torch.enable_grad():
            with attributed_inputs(xs), fused_attention_disabled(), apply:
                out_x = self.forward(*xs, *args)
            pairs.fill_all()  # what the forward returned or kept: every row written
            if apply.position != len(record.records):
                raise RuntimeError(
                    f"The model ran {len(record.records)} ruled ops on the references but "
                    f"{apply.position} on the inputs; DeepLIFT needs a forward whose "
                    "sequence of operations does not depend on the data."
                )
            selected = [sel(out_x) for sel in select]
        del out_x
        multipliers, outputs = [], []
        n_backward = 1 if per_pair else pairs.n_references
        pairs.n_backward = n_backward * len(selected)  # rules may keep multipliers for reuse
        for t, y in enumerate(selected):
            per_k: list[tuple[Tensor, ...]] = []
            for k in range(n_backward):
                pairs.k = k
                if not y.requires_grad:
                    per_k.append(tuple(torch.zeros_like(x) for x in xs))
                    continue
                last = t == len(selected) - 1 and k == n_backward - 1
                grads = torch.autograd.grad(y.sum(), xs, retain_graph=not last,
                                            allow_unused=True)
                per_k.append(tuple(torch.zeros_like(x) if g is None else g
                                   for x, g in zip(xs, grads)))
            if per_pair:
                multipliers.append(tuple(
                    g.reshape(r, n, *g.shape[1:]).transpose(0, 1) for g in per_k[0]))
                outputs.append(y.detach().reshape(r, n).T)
            else:
                multipliers.append(tuple(torch.stack([g[j] for g in per_k], 1)
                                         for j in range(len(xs))))
                outputs.append(y.detach().unsqueeze(1).expand(n, r))
        return multipliers, outputs, ref_outputs


def deeplift_multipliers(
    model: Callable,
    inputs: Tensor | tuple[Tensor, ...],
    references: Tensor | tuple[Tensor, ...],
    target: Callable[[Tensor], Tensor] | int | None = None,
    additional_forward_args: tuple = (),
    rules: RuleRegistry | None = None,
    strict: bool = False,
) -> tuple[Tensor | tuple[Tensor, ...], Tensor]:
    """DeepLIFT multipliers of one batch of aligned example-reference pairs.

    A functional entry point for users and tests; :class:`ShuffleDeepLiftShap`
    adds references, batching and averaging on top.

    Parameters
    ----------
    model
        ``nn.Module`` or callable mapping ``(B, ...)`` inputs to outputs.
    inputs, references
        Tensors (or tuples of tensors) shaped ``(B, ...)``, pair ``b`` of the
        inputs against pair ``b`` of the references.
    target
        A callable mapping the output to ``(B,)``, or a Captum ``target``
        (selected by :func:`captum_genomics._utils.targets.make_selector`):
        ``int`` to select ``output[:, target]``, a tuple indexing the
        non-batch axes, a tensor ``(B,)`` or list of length ``B`` with one
        target per pair, or None (default) for an output shaped ``(B,)`` or
        ``(B, 1)``.
    additional_forward_args
        Extra positional arguments for the model, used in both passes.
    rules
        Rule registry; default :func:`~captum_genomics.deeplift.rules.default_rules`.
    strict
        Raise instead of warn on an op with no rule.

    Returns
    -------
    multipliers
        Shaped like ``inputs``.
    convergence_delta : Tensor ``(B,)``
        ``sum(multipliers * (inputs - references)) - (f(inputs) - f(references))``.

    Raises
    ------
    TypeError, ValueError
        For a malformed ``target`` or one that does not select one scalar per
        pair from the model output.
    UnsupportedOperationError
        Under ``strict=True``, an input-dependent op with no rule.
    """
    single = isinstance(inputs, Tensor)
    xs = as_input_tuple(inputs, "inputs")
    rs = as_input_tuple(references, "references")
    if len(rs) != len(xs):
        raise ValueError(f"`references` must hold one tensor per input ({len(xs)}), got "
                         f"{len(rs)}.")
    for j, (x, r) in enumerate(zip(xs, rs)):
        xn, rn = ("inputs", "references") if single else (f"inputs[{j}]", f"references[{j}]")
        if not x.is_floating_point():
            raise TypeError(f"`{xn}` must be a floating-point tensor, got dtype {x.dtype}.")
        if r.shape != x.shape or r.dtype != x.dtype:
            raise ValueError(
                f"`{rn}` must match `{xn}` (one reference per example): shape "
                f"{tuple(x.shape)} and dtype {x.dtype}; got shape {tuple(r.shape)} and dtype "
                f"{r.dtype}."
            )
    if callable(target):
        select = target
    else:
        n = xs[0].shape[0]
        validate_target(target, n)
        select = make_selector(target, torch.arange(n), n)

    passes = DeepLiftPasses(detached_forward(model), rules or default_rules(), strict,
                            channels_last=wants_channels_last(model))
    extra = tuple(additional_forward_args)
    (mults,), (yx,), (yr,) = passes.run(xs, tuple(r.unsqueeze(1) for r in rs),
                                        [(select, select)], extra, extra)
    mults, yx, yr = tuple(m[:, 0] for m in mults), yx[:, 0], yr[:, 0]
    for message in passes.unsupported.values():
        warnings.warn(message, UnsupportedOperationWarning, stacklevel=2)
    total = sum(((m * (x - r)).reshape(len(x), -1).sum(1) for m, x, r in zip(mults, xs, rs)))
    delta = total - (yx - yr)
    return (mults[0] if single else mults), delta
