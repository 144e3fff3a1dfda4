"""Where additivity breaks: each op's share of DeepLIFT's convergence delta.

For an op ``o`` with inputs ``x_o`` and output ``y_o``, ``m_y`` is the
multiplier of the explained output with respect to ``y_o`` (what the engine's
modified backward delivers there) and ``P_o(m_y)`` its pullback through the
op's rule (what the backward sends on to the op's inputs). With ``D`` = input
pass minus reference pass, the op's local violation on one example-reference
pair is ``v_o = <m_y, D y_o> - sum_inputs <P_o(m_y), D x_o>``: ~0 for an
exact rule or a linear op, nonzero for an op the engine linearises (no rule:
its gradient at the input). Every intermediate tensor's ``<m, D>`` appears
once as an output and once, split over its consumers, as an input, so the
shares telescope to ``sum_o v_o = (f(x) - f(r)) - sum m_x (x - r) = -delta``
(Captum's sign: ``delta = sum m (x - r) - (f(x) - f(r))``). Captum and
tangermeme report only the total.

:func:`localize_additivity` runs the engine of ``ShuffleDeepLiftShap`` once per
pair with a :class:`~captum_genomics.deeplift.engine.PassObserver` that hands
each op a view of each input-dependent argument (a hook on the view catches
that op's pullback), hooks the op outputs and keeps both passes' values.
Gradient that reaches a tensor other than through a view (an in-place op, or
an autograd node the engine never saw: a custom ``torch.autograd.Function``)
is the tensor's multiplier minus what its viewed consumers took, charged to
that consumer, so the shares still sum to ``-delta``.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence

import torch
from torch import Tensor

from captum_genomics._utils.batching import as_input_tuple, index_examples
from captum_genomics._utils.captum import format_additional_forward_args
from captum_genomics._utils.checks import check_eval_mode, check_shape, check_tensor
from captum_genomics._utils.devices import module_device
from captum_genomics._utils.targets import make_selector, validate_target
from captum_genomics.deeplift.engine import DeepLiftPasses, detached_forward
from captum_genomics.deeplift.rules.registry import RuleRegistry, default_rules

from captum_genomics.testing._localize_observer import _ModuleTracker, _PairObserver

__all__ = ["OpViolation", "LocalizationResult", "localize_additivity", "format_violations"]

@dataclass(frozen=True)
class OpViolation:
    """One op of the forward and its share of the convergence delta.

    Attributes
    ----------
    index : int
        Position among the listed ops in forward order (last axis of
        :attr:`LocalizationResult.per_pair_shares`).
    op : str
        Registry name (``"relu"``, ``"normalize"``, ``"mul"``), or for an autograd
        node the engine never saw its name without ``Backward`` (a custom
        ``torch.autograd.Function``'s class name).
    caller : str
        The module path whose built-in ``forward`` ran the op (``"body.3"``), or
        ``"file.py:LINE"`` of the call in user code (functional call, ``.apply``).
    rule : str or None
        Class name of the registry's rule for the op, or None: no rule, treated
        as linear (its gradient at the input).
    violation : float
        ``max`` over example-reference pairs of ``|v_o|``.
    module : str
        The innermost module whose ``forward`` ran (``""``: the root).
    note : str
        Why the op may break additivity (no rule, a constant argument that
        differs between the passes, a value read into Python, an unseen node).
    """

    index: int
    op: str
    caller: str
    rule: str | None
    violation: float
    module: str = ""
    note: str = ""


@dataclass(frozen=True, eq=False)
class LocalizationResult:
    """What :func:`localize_additivity` returns; iterating yields :attr:`rows`.

    Attributes
    ----------
    rows : tuple of OpViolation
        Every listed op, largest ``violation`` first (ties in forward order).
    ops : tuple of OpViolation
        The same rows in forward order (``ops[i].index == i``).
    per_pair_shares : Tensor ``(N, K, n_ops)`` float64
        Signed ``v_o`` per example-reference pair; ``sum(-1) == -delta``.
    delta : Tensor ``(N, K)`` float64
        The convergence delta of each pair, Captum's sign:
        ``sum(m * (x - r)) - (f(x) - f(r))``.
    unaccounted : Tensor ``(N, K)`` float64
        ``-delta - per_pair_shares.sum(-1)``: rounding, or gradient that
        reached a tensor from a consumer that was never seen (~0).
    """

    rows: tuple[OpViolation, ...]
    ops: tuple[OpViolation, ...]
    per_pair_shares: Tensor
    delta: Tensor
    unaccounted: Tensor = field(repr=False)

    def __iter__(self) -> Iterator[OpViolation]:
        return iter(self.rows)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i):
        return self.rows[i]

    @property
    def culprit(self) -> OpViolation | None:
        """The op with the largest violation (None when no op was listed)."""
        return self.rows[0] if self.rows else None

    def to_dicts(self, top: int | None = None) -> list[dict]:
        """The rows (the first ``top``) as JSON-serializable dicts."""
        return [dataclasses.asdict(r) for r in (self.rows if top is None else self.rows[:top])]

    def __str__(self) -> str:
        return format_violations(self)


# ------------------------------------------------------------------------- public

def _references(references: Any, xs: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
    rs = tuple(references) if isinstance(references, (tuple, list)) else (references,)
    if len(rs) != len(xs):
        raise ValueError(f"`references` must hold one tensor per input ({len(xs)}), got {len(rs)}.")
    out = []
    for j, (r, x) in enumerate(zip(rs, xs)):
        name = "references" if len(rs) == 1 else f"references[{j}]"
        check_tensor(r, name)
        r = r.unsqueeze(1) if r.ndim == x.ndim else r
        check_shape(r, name, (x.shape[0], out[0].shape[1] if out else None, *x.shape[1:]))
        if r.shape[1] == 0:
            raise ValueError(f"`{name}` holds no references (K = 0); need K >= 1.")
        out.append(r)
    return tuple(out)


def localize_additivity(
    model: Callable,
    inputs: Tensor | Sequence[Tensor],
    references: Tensor | Sequence[Tensor],
    target: Any = None,
    additional_forward_args: Any = None,
    rules: RuleRegistry | None = None,
) -> LocalizationResult:
    """Each op's share of the convergence delta of :class:`~captum_genomics.ShuffleDeepLiftShap`.

    Runs the engine (:class:`~captum_genomics.deeplift.engine.DeepLiftPasses`)
    once per example-reference pair with an observer (module docstring:
    ``v_o = <m_y, D y_o> - sum <P_o(m_y), D x_o>``, summing to ``-delta``).
    Callers' modules come from forward hooks installed for the call and always
    removed; the model and the inputs come back unchanged.

    Parameters
    ----------
    model : nn.Module or callable
        Maps inputs ``(B, ...)`` to outputs ``(B, T)`` (or ``(B,)``), in eval mode.
    inputs : Tensor ``(N, 4, L)`` or tuple of Tensor ``(N, *shape_j)``
        Floating point; float64 gives the exact telescoping (``~1e-16``).
    references : Tensor ``(N, K, 4, L)`` or tuple of Tensor ``(N, K, *shape_j)``
        ``K`` references per example, as in ``ShuffleDeepLiftShap``; ``(N, 4, L)``
        is taken as ``K = 1``.
    target : Captum target, optional
        The explained output: None for ``(B,)`` outputs, an int (``output[:, t]``),
        a tuple, or one per example (tensor ``(N,)`` or list). Default None.
    additional_forward_args : optional
        Extra model arguments; tensors with ``N`` rows are indexed per example.
    rules : RuleRegistry, optional
        Default :func:`~captum_genomics.deeplift.rules.default_rules`.

    Returns
    -------
    LocalizationResult
        Iterating yields :class:`OpViolation` rows, largest violation first
        (``result[0]`` is the culprit). Every op with an input-dependent argument
        or output is listed, and autograd nodes the engine never saw;
        ``per_pair_shares`` ``(N, K, n_ops)`` sums to ``-delta`` ``(N, K)``.

    Raises
    ------
    TypeError
        Non-tensor or integer inputs/references, ``rules`` not a ``RuleRegistry``.
    ValueError
        Mismatched shapes, a model in training mode, a malformed target.
    RuntimeError
        The model runs different ops on the inputs and on the references, or
        for different examples (the message names the first such op).

    Notes
    -----
    One reference forward, one input forward and one backward per pair, keeping
    both passes' activations of a pair: a diagnostic, not a production path.
    DeepLIFT (Shrikumar et al. 2017) as in :mod:`captum_genomics.deeplift`.
    """
    registry = default_rules() if rules is None else rules
    if not isinstance(registry, RuleRegistry):
        raise TypeError(f"`rules` must be a captum_genomics.deeplift.rules.RuleRegistry, got "
                        f"{type(rules).__name__}.")
    xs = as_input_tuple(inputs, "inputs")
    for j, x in enumerate(xs):
        if not x.is_floating_point():
            raise TypeError(f"`inputs` must be floating point, got dtype {x.dtype} at {j}.")
    rs = _references(references, xs)
    n, k = xs[0].shape[0], rs[0].shape[1]
    validate_target(target, n)
    check_eval_mode(model, "model")
    extra = format_additional_forward_args(additional_forward_args)
    device = module_device(model, xs[0].device)
    forward = detached_forward(model)
    shares = torch.zeros(n, k, 0, dtype=torch.float64)
    deltas = torch.zeros(n, k, dtype=torch.float64)
    first: _PairObserver | None = None
    tracker = _ModuleTracker()
    try:
        tracker.install(model)
        for e in range(n):
            rows = torch.tensor([e])
            select = make_selector(target, rows, n)
            args = index_examples(extra, rows, n, device)
            x_e = tuple(x[e:e + 1].to(device) for x in xs)
            for kk in range(k):
                r_ek = tuple(r[e:e + 1, kk].to(device) for r in rs)
                obs = _PairObserver(registry, tracker, x_e, r_ek)
                tracker.observer = obs
                passes = DeepLiftPasses(forward, registry, False, "examples", obs)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    (mults,), (yx,), (yr,) = passes.run(
                        x_e, tuple(r.unsqueeze(1) for r in r_ek), [(select, select)], args, args)
                total = sum(float((m[:, 0].double() * (x - r).double()).sum())
                            for m, x, r in zip(mults, x_e, r_ek))
                deltas[e, kk] = total - float((yx - yr).double().sum())
                if first is None:
                    first = obs
                    shares = torch.zeros(n, k, len(obs.rows), dtype=torch.float64)
                elif obs.signature() != first.signature():
                    raise RuntimeError(_differs(first.signature(), obs.signature(), e, kk))
                shares[e, kk] = torch.tensor(obs.shares(), dtype=torch.float64)
    finally:
        tracker.observer = None
        tracker.remove()
    worst = shares.abs().amax((0, 1)) if shares.numel() else torch.zeros(shares.shape[-1])
    ops = tuple(OpViolation(i, row.op, row.caller, row.rule, float(worst[i]), row.module,
                            "; ".join(row.notes))
                for i, row in enumerate(first.rows if first is not None else []))
    ranked = tuple(sorted(ops, key=lambda r: (-(math.inf if math.isnan(r.violation)
                                                 else r.violation), r.index)))
    return LocalizationResult(ranked, ops, shares, deltas, -deltas - shares.sum(-1))


def _differs(a: list, b: list, e: int, kk: int) -> str:
    i = next((i for i, (u, v) in enumerate(zip(a, b)) if u != v), min(len(a), len(b)))
    got = b[i] if i < len(b) else ("the end", "")
    want = a[i] if i < len(a) else ("the end", "")
    return (f"The model runs different ops for different examples: op #{i} is `{got[0]}` "
            f"({got[1]}) for example {e}, reference {kk}, but `{want[0]}` ({want[1]}) for the "
            "first pair. DeepLIFT needs a sequence of operations that does not depend on the data.")


def format_violations(rows: LocalizationResult | Sequence[OpViolation], top: int = 10) -> str:
    """A small text table of the largest op violations.

    Parameters
    ----------
    rows : LocalizationResult or sequence of OpViolation
        Rows sorted largest first (as :func:`localize_additivity` returns them).
    top : int
        How many rows to show. Default 10.

    Returns
    -------
    str
        One header line and one line per row (rank, op index, op, caller, rule,
        violation, note), then how many rows were left out.
    """
    rows = list(rows)
    shown = rows[:max(int(top), 0)]
    table = [("#", "index", "op", "caller", "rule", "violation", "note")]
    for rank, r in enumerate(shown, 1):
        table.append((str(rank), str(r.index), r.op, r.caller, r.rule or "-",
                      f"{r.violation:.3g}", r.note))
    widths = [max(len(line[c]) for line in table) for c in range(6)]
    lines = ["  ".join(cell.ljust(w) if c in (2, 3, 4) else cell.rjust(w)
                       for c, (cell, w) in enumerate(zip(line[:6], widths))) + "  " + line[6]
             for line in table]
    if len(rows) > len(shown):
        lines.append(f"... {len(rows) - len(shown)} more op(s) below {shown[-1].violation:.3g}"
                     if shown else f"... {len(rows)} op(s)")
    return "\n".join(line.rstrip() for line in lines)
