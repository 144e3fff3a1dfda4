"""The interface every DeepLIFT rule implements.

A rule replaces the gradient of one nonlinear operation with DeepLIFT
multipliers. Rules see the operation twice, in the two passes the engine in
:mod:`captum_genomics.deeplift.engine` runs for every batch of example-reference pairs:

1. the **reference pass** (no autograd graph) over ``R * n`` references,
   ordered reference-major (row ``k * n + e`` is reference ``k`` of example
   ``e``), where :meth:`Rule.record` keeps what the rule needs from the
   reference activations (``state``), and
2. the **input pass** (with autograd) over the ``n`` examples only, where
   :meth:`Rule.apply` computes the operation on the inputs and attaches a
   backward that uses ``state``. The engine then runs one backward per
   reference ``k`` through this one graph, setting ``pairs.k`` before each;
   a rule's backward multiplies by its multipliers for reference ``pairs.k``.

Both passes see the same operations in the same order, so the ``i``-th
recorded state belongs to the ``i``-th call in the input pass. Rules hold no
per-call state themselves and write nothing onto the user's modules.

An operation on input-dependent tensors that no rule covers is reported with
:class:`UnsupportedOperationWarning`, or :class:`UnsupportedOperationError`
under ``strict=True`` (and when a rule meets a call it cannot handle).
"""

from __future__ import annotations

import contextlib
import contextvars
import weakref
from typing import Any, Callable, Iterator

import torch
from torch import Tensor

from captum_genomics.deeplift.layout import empty_rows, repeat_rows

__all__ = [
    "Rule",
    "PairCursor",
    "out_of_place",
    "strip_inplace",
    "requires_grad",
    "UnsupportedOperationError",
    "UnsupportedOperationWarning",
]


class UnsupportedOperationError(NotImplementedError):
    """An operation on input-dependent tensors has no DeepLIFT rule (raised under ``strict=True``)."""


class UnsupportedOperationWarning(UserWarning):
    """An operation on input-dependent tensors has no DeepLIFT rule and was treated as linear."""


class PairCursor:
    """How the input pass's rows map to example-reference pairs, and which pair a backward is for.

    The engine runs the input pass in one of three layouts (its ``strategy``):

    * ``"examples"``: ``n`` rows, one per example; the graph is walked backward
      once per reference, and ``k`` says which;
    * ``"pairs"``: ``R * n`` rows, one per pair, built as such (``n_references``
      is 1 here: every row is its own "example");
    * ``"batched"`` (``batched=True``): ``R * n`` rows, one per pair, reference-major,
      where rows ``k * n + e`` repeat example ``e`` for every ``k``. A rule computes
      its forward on the ``n`` distinct rows only (:meth:`examples`), repeats the
      result (:meth:`tile`), and one backward covers every pair at once
      (:meth:`select` hands it the multipliers of all references).

    Rules are written once for all three: forward on ``examples(x)`` against
    ``split(reference)`` (``(R, n, ...)``), output ``tile(y)``, backward with
    ``select(m)`` of every ``(R, n, ...)`` multiplier.

    Attributes
    ----------
    n_examples : int
        ``n``, the distinct examples in the input pass.
    n_references : int
        ``R``, the references per example in this batch.
    k : int
        The reference whose multipliers the running backward computes
        (``"examples"`` layout only).
    batched : bool
        Whether the input pass holds every pair as its own, repeated row.
    """

    #: Tests set this: the unwritten rows of a lazy tile hold NaN (-1 for integers)
    #: until :meth:`fill`, so that reading one cannot go unnoticed.
    poison_pending = False

    def __init__(self, n_examples: int, n_references: int, batched: bool = False,
                 lazy: bool = False):
        self.n_examples = int(n_examples)
        self.n_references = int(n_references)
        self.k = 0
        self.batched = bool(batched)
        #: backward passes the engine runs through the input pass's graph (targets times,
        #: in the "examples" layout, references): above 1 a rule may keep multipliers it
        #: computes in its backward for the next pass
        self.n_backward = 1
        self.lazy = bool(lazy) and self.batched and self.n_references > 1
        self._pending: dict[int, weakref.ref] = {}
        self._tiles: dict[int, tuple[weakref.ref, int]] = {}

    @property
    def n_rows(self) -> int:
        """Rows of the input pass: ``R * n`` when batched, else ``n``."""
        return self.n_examples * (self.n_references if self.batched else 1)

    def split(self, t: Tensor) -> Tensor:
        """View a reference-pass tensor ``(R * n, ...)`` as ``(R, n, ...)``.

        With one reference per backward (the engine's ``"pairs"`` strategy) both
        passes have the same shapes, so the tensor is only given a leading axis of
        size 1, wherever its examples lie (a sequence-first ``(T, n, E)`` works).
        """
        if self.n_references == 1:
            return t.unsqueeze(0)
        return t.reshape(self.n_references, self.n_examples, *t.shape[1:])

    def examples(self, x: Tensor) -> Tensor:
        """The ``n`` distinct example rows ``x[:n]`` of an input-pass tensor (batched layout);
        ``x`` itself in the others."""
        return x[:self.n_examples] if self.batched and self.n_references > 1 else x

    def tile(self, y: Tensor) -> Tensor:
        """Repeat ``y`` ``(n, ...)`` to ``(R * n, ...)`` reference-major (batched layout, a
        copy stored like ``y``, e.g. channels-last: ops run on repeated rows as on any
        dense tensor, so their results do not depend on the batch's layout); ``y`` itself
        in the others."""
        if not self.batched or self.n_references == 1:
            return y
        if not self.lazy:
            out = repeat_rows(y, self.n_references)
            self._tiles[id(out)] = (weakref.ref(out), out._version)
            return out
        # rows n.. are written only when something reads them (see `fill`)
        out = empty_rows(y, self.n_references)
        with torch.no_grad():
            out[:self.n_examples].copy_(y)
            if PairCursor.poison_pending:  # tests: a read of an unwritten row shows
                out[self.n_examples:].fill_(float("nan") if out.is_floating_point() else -1)
        self._pending[id(out)] = weakref.ref(out)
        return out

    def is_pending(self, t: Any) -> bool:
        """Whether ``t`` is a tile of this cursor whose repeated rows are not written yet."""
        ref = self._pending.get(id(t))
        return ref is not None and ref() is t

    def fill(self, t: Any) -> None:
        """Write the repeated rows of a pending tile (``lazy`` cursors; a no-op otherwise).

        With ``lazy=True`` :meth:`tile` writes only the ``n`` example rows of its
        ``(R * n, ...)`` output: the rules that share work (convolutions, dense layers,
        activations, sums) read nothing else. The engine calls ``fill`` on every
        tensor an op reads before that op runs, unless the op's rule reads the
        example rows only (``Rule.reads_examples_only``), and on every tile still
        alive after the forward, so no other code ever sees an unwritten row. The
        rows are written through ``t.data``: they were never read, so no saved tensor
        changes, and ``t``'s version counter stays as it was.
        """
        ref = self._pending.pop(id(t), None)
        if ref is None or ref() is not t:
            return
        n, r = self.n_examples, self.n_references
        with torch.no_grad():
            data = t.data
            blocks = data.view(r, n, *data.shape[1:])
            blocks[1:].copy_(blocks[0].unsqueeze(0).expand(r - 1, *blocks.shape[1:]))
        self._tiles[id(t)] = (weakref.ref(t), t._version)

    def fill_in(self, obj: Any) -> None:
        """:meth:`fill` every tensor in ``obj`` (nested tuples, lists, dicts)."""
        if not self._pending:
            return
        stack = [obj]
        while stack:
            o = stack.pop()
            if isinstance(o, Tensor):
                self.fill(o)
            elif isinstance(o, (tuple, list)):
                stack.extend(o)
            elif isinstance(o, dict):
                stack.extend(o.values())

    def fill_all(self) -> None:
        """:meth:`fill` every pending tile still alive (the end of the input pass)."""
        for ref in list(self._pending.values()):
            t = ref()
            if t is not None:
                self.fill(t)
        self._pending.clear()

    def select(self, m: Tensor) -> Tensor:
        """The multipliers ``m`` ``(R, n, ...)`` the running backward needs: all of them as
        ``(R * n, ...)`` (batched layout), else those of reference ``k``, ``m[k]``.

        A tensor with a leading axis of size 1 (shared by every reference) is
        repeated in the batched layout.
        """
        if not self.batched:
            return m[self.k] if m.shape[0] > 1 else m[0]
        if m.shape[0] == 1:
            m = m.expand(self.n_references, *m.shape[1:])
        return m.reshape(self.n_references * m.shape[1], *m.shape[2:])

    def dedupable(self, x: Any) -> bool:
        """True in the batched layout when ``x`` holds the ``R * n`` pair rows on axis 0, so
        that ``examples(x)`` is its distinct rows.

        Besides the shape, the second and the last block of ``n`` rows are compared
        with rows ``0..n-1`` (``2/R`` of the tensor; equal up to rounding): a tensor
        whose first axis only happens to have ``R * n`` entries (a sequence axis) is
        left whole.
        """
        if not (self.batched and isinstance(x, Tensor) and x.ndim > 0
                and x.shape[0] == self.n_examples * self.n_references):
            return False
        n = self.n_examples
        if self.n_references == 1 or self.is_pending(x):
            return True
        known = self._tiles.get(id(x))  # a tile of this cursor, unchanged since
        if known is not None and known[0]() is x and known[1] == x._version:
            return True
        a = x[:n].detach()
        blocks = (x[n:2 * n].detach(), x[-n:].detach())  # the second and the last block
        if all(bool(torch.equal(a, b)) for b in blocks):
            return True
        if not a.is_floating_point():
            return False
        scale = float(a.abs().nan_to_num(0.0, 0.0, 0.0).max())  # -inf masks: finite scale
        return all(bool(torch.allclose(a, b, rtol=1e-5, atol=1e-6 * scale + 1e-30,
                                       equal_nan=True)) for b in blocks)

    def constant(self, value: Any, ndim: int) -> Any:
        """A constant argument of an op whose input is ``examples(x)``: its example rows
        when it is a tensor of ``ndim`` axes with the pair rows on axis 0 (a per-example
        value repeated per reference), else ``value`` unchanged."""
        if isinstance(value, Tensor) and value.ndim == ndim and self.dedupable(value):
            return self.examples(value)
        return value

    def layout(self, x: Any, *others: Any) -> "PairCursor":
        """The cursor for an op on input-pass tensors ``x`` (and ``others``, the op's
        other input-dependent operands): this one, or, in the batched layout when one of
        them does not hold the pair rows on axis 0 (see :meth:`dedupable`), one that
        treats every row as its own pair (the ``"pairs"`` layout). That one reads every
        row, so the pending tiles among them are written first (:meth:`fill`)."""
        if not self.batched or all(self.dedupable(t) for t in (x,) + others):
            return self
        self.fill_in((x,) + others)
        return PairCursor(self.n_rows, 1)


def out_of_place(func: Callable) -> Callable | None:
    """The out-of-place function of a method that writes into its first argument
    (``Tensor.relu_`` -> ``Tensor.relu``, ``torch.sigmoid_``, ``Tensor.mul_``, and ``+=``,
    ``*=``, which torch dispatches as ``add_``, ``mul_``), or None for any other call."""
    raw = getattr(func, "__name__", "")
    if raw.endswith("_") and not raw.startswith("__"):
        plain = getattr(Tensor, raw[:-1], None)
        return plain if callable(plain) else None
    return None


def strip_inplace(kwargs: dict) -> dict:
    """Return ``kwargs`` with ``inplace`` forced to False (a copy; the input is unchanged)."""
    if kwargs.get("inplace"):
        kwargs = dict(kwargs)
        kwargs["inplace"] = False
    return kwargs


class Rule:
    """Base class of a DeepLIFT rule for one torch operation.

    Subclasses implement :meth:`record` and :meth:`apply`. The default
    :meth:`reference` runs the operation out of place and returns
    ``(output, record(...))``.

    Rules must be stateless across calls: anything a call needs travels in the
    ``state`` returned by :meth:`record`.
    """

    #: Human-readable name of the rule, used in ``repr`` and messages.
    name = "rule"

    #: True for rules whose :meth:`apply` reads only ``pairs.examples(x)`` of a tensor in
    #: the batched layout, or calls ``pairs.fill(x)`` before reading more (see
    #: :meth:`PairCursor.fill`); the engine fills every argument of the other rules first.
    reads_examples_only = False

    def reference(self, func: Callable, args: tuple, kwargs: dict) -> tuple[Any, Any]:
        """Run ``func`` in the reference pass; return ``(output, state)``."""
        kwargs = strip_inplace(kwargs)
        out = func(*args, **kwargs)
        return out, self.record(args, kwargs, out)

    def record(self, args: tuple, kwargs: dict, output: Any) -> Any:
        """What to keep from the reference pass (default: the first argument)."""
        return args[0] if args else None

    def apply(self, func: Callable, args: tuple, kwargs: dict, state: Any,
              pairs: "PairCursor") -> Any:
        """Run ``func`` on the ``n`` inputs with the rule's multipliers as its backward.

        ``state`` comes from the reference pass over ``R * n`` rows (see
        :meth:`PairCursor.split`); the backward must return the multipliers for
        reference ``pairs.k``.
        """
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


_INPUT_IDS: contextvars.ContextVar[frozenset] = contextvars.ContextVar(
    "captum_genomics_input_ids", default=frozenset())


@contextlib.contextmanager
def attributed_inputs(tensors) -> Iterator[None]:
    """Mark ``tensors`` as the attributed inputs of the current input pass."""
    token = _INPUT_IDS.set(frozenset(id(t) for t in tensors))
    try:
        yield
    finally:
        _INPUT_IDS.reset(token)


def requires_grad(x: Any) -> bool:
    """True when ``x`` is a tensor that depends on the attributed inputs.

    That is a tensor in the autograd graph of the input pass: a non-leaf that
    requires grad, or one of the attributed inputs themselves. Parameters
    (leaves) are constants even when they require grad, so models given as
    closures over modules work too.
    """
    return isinstance(x, Tensor) and x.requires_grad and (
        x.grad_fn is not None or id(x) in _INPUT_IDS.get())
