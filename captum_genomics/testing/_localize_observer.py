"""One pair's record for :mod:`captum_genomics.testing.localize`: the engine observer.

:class:`_PairObserver` is the :class:`~captum_genomics.deeplift.engine.PassObserver` that
hands each op views of its input-dependent arguments, hooks the op outputs, keeps both
passes' values and names the caller of each op (module path or ``file:line``).
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import Tensor
from torch.utils._pytree import tree_flatten, tree_unflatten

import captum_genomics
from captum_genomics.deeplift.engine import PassObserver
from captum_genomics.deeplift.rules.base import requires_grad
from captum_genomics.deeplift.rules.ops import COMPARISON_OPS, LINEAR_OPS
from captum_genomics.deeplift.rules.registry import RuleRegistry, op_name


_TORCH_DIR = os.path.dirname(torch.__file__) + os.sep
_NN_MODULES_DIR = os.path.join(_TORCH_DIR, "nn", "modules") + os.sep
_PKG_DIR = os.path.dirname(captum_genomics.__file__) + os.sep
#: Frames of the engine and of this module, skipped when naming a caller.
_MACHINERY = tuple(os.path.join(_PKG_DIR, d) + os.sep
                   for d in ("deeplift", "_utils", "methods")) + (os.path.abspath(__file__),
                   os.path.join(os.path.dirname(os.path.abspath(__file__)), "localize.py"))
_INPLACE_DUNDERS = frozenset((
    "__iadd__", "__isub__", "__imul__", "__itruediv__", "__ifloordiv__", "__imod__", "__ipow__",
    "__imatmul__", "__iand__", "__ior__", "__ixor__", "__ilshift__", "__irshift__", "__setitem__"))
_TO_PYTHON = frozenset(("bool", "item", "float", "int", "index", "tolist", "nonzero"))
_ATTRIBUTES = frozenset(("get", "set"))
_NOT_UNRULED = LINEAR_OPS | _ATTRIBUTES | COMPARISON_OPS | _TO_PYTHON
_NOTES = {
    "unseen": ("`{}` was never seen by the engine (a custom torch.autograd.Function or an op "
               "outside torch's function overrides); its gradient was used"),
    "unruled": "no rule: treated as linear (its gradient at the input)",
    "differs": ("constant argument(s) {} differ between the input and reference passes (a mask "
                "or branch built from the data?)"),
    "compare": "compares input-dependent values; masks built from it are constants to DeepLIFT",
    "python": "reads an input-dependent value into Python (a branch?)",
}


@dataclass
class _Node:
    """One version of an input-dependent tensor."""

    delta: Tensor  # input-pass value minus reference-pass value, float64
    grad: Tensor | None = None  # the multiplier that reached it (a hook)
    pulled: Tensor | None = None  # what its viewed consumers pulled back
    direct: list[int] = field(default_factory=list)  # rows consuming it without a view


@dataclass
class _Row:
    op: str
    caller: str
    module: str
    rule: str | None
    notes: list[str] = field(default_factory=list)
    outputs: list[tuple] = field(default_factory=list)  # node keys
    viewed: list[tuple[tuple, list]] = field(default_factory=list)  # (key, [grad])
    direct: list[tuple] = field(default_factory=list)  # node keys


def _tensors(obj: Any) -> list[Tensor]:
    return [t for t in tree_flatten(obj)[0] if isinstance(t, Tensor)]


def _snapshot(obj: Any) -> list:
    return [t.detach().clone() if isinstance(t, Tensor) else t for t in tree_flatten(obj)[0]]


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, Tensor) or isinstance(b, Tensor):
        return (isinstance(a, Tensor) and isinstance(b, Tensor) and a.shape == b.shape
                and bool(torch.equal(a.detach(), b.detach())))
    try:
        return bool(a == b)
    except Exception:  # noqa: BLE001 - objects without a plain equality count as equal
        return True


def _dot(g: Tensor | None, d: Tensor) -> float:
    return 0.0 if g is None else float((g.detach().to(torch.float64) * d).sum())


def _file_line(frame) -> str:
    return f"{os.path.basename(frame.f_code.co_filename)}:{frame.f_lineno}"


def _caller(module_path: str | None) -> str:
    """The module path of a built-in module's forward, else ``file.py:LINE`` of user code."""
    frame = sys._getframe(2)
    in_module = False
    while frame is not None:
        name = os.path.abspath(frame.f_code.co_filename)
        if name.startswith(_MACHINERY) or name in _MACHINERY:
            pass
        elif name.startswith(_TORCH_DIR):
            in_module = in_module or (name.startswith(_NN_MODULES_DIR)
                                      and not name.endswith("module.py"))
        else:
            if in_module and module_path is not None:
                return module_path or "<root>"
            return _file_line(frame)
        frame = frame.f_back
    return module_path or "<root>"


def _apply_site() -> tuple[str, str] | None:
    """``(Function class name, file.py:LINE of .apply)`` inside a custom Function's forward."""
    frame = sys._getframe(2)
    while frame is not None and not (frame.f_code.co_name == "apply" and frame.f_code.co_filename
                                     .endswith(os.path.join("torch", "autograd", "function.py"))):
        frame = frame.f_back
    cls = None if frame is None else frame.f_locals.get("cls")
    return None if cls is None or frame.f_back is None else (cls.__name__, _file_line(frame.f_back))


class _ModuleTracker:
    """Temporary forward hooks: the path of the innermost running module, and module outputs."""

    def __init__(self):
        self.stack: list[str] = []
        self.observer: Any = None
        self.reference = True
        self.handles: list = []

    def install(self, model: Any) -> None:
        if isinstance(model, torch.nn.Module):
            for name, module in model.named_modules():
                self.handles.append(module.register_forward_pre_hook(self._enter(name)))
                self.handles.append(module.register_forward_hook(self._leave, always_call=True))

    def _enter(self, name: str) -> Callable:
        def hook(module, args):
            if not self.stack:  # the root: the reference pass runs without autograd
                self.reference = not torch.is_grad_enabled()
            self.stack.append(name)
        return hook

    def _leave(self, module, args, output):
        obs = self.observer
        if obs is not None and output is not None:
            obs.quiet = True
            try:
                if self.reference:
                    obs.reference_module(output)
                else:
                    obs.module_output(output)
            finally:
                obs.quiet = False
        if self.stack:
            self.stack.pop()

    def path(self) -> str | None:
        return self.stack[-1] if self.stack else None

    def remove(self) -> None:
        while self.handles:
            self.handles.pop().remove()


class _PairObserver(PassObserver):
    """Records one example-reference pair's passes (see the module docstring)."""

    def __init__(self, registry: RuleRegistry, modules: _ModuleTracker,
                 inputs: tuple[Tensor, ...], references: tuple[Tensor, ...]):
        self.registry = registry
        self.modules = modules
        self.inputs, self.references = inputs, references
        self.quiet = False
        self.ref_events: list[tuple[str, list, list]] = []
        self.ref_module_events: list[list] = []
        self.event = 0
        self.module_event = 0
        self.nodes: dict[tuple, _Node] = {}
        self.constants: set[tuple] = set()
        self.rows: list[_Row] = []
        self.hidden: dict[int, int] = {}  # id(autograd node) -> row
        self.apply_sites: dict[str, str] = {}
        self._alive: list[Any] = []  # keeps autograd nodes (and their ids) alive

    # ------------------------------------------------------------ reference pass
    def reference_op(self, func, args, kwargs, run):
        if self.quiet:
            return run(func, args, kwargs)
        leaves = _snapshot((args, kwargs))  # before the op: in-place ops change their target
        out = run(func, args, kwargs)
        target = self._inplace_target(func, args, kwargs)
        outs = [target] if target is not None else _tensors(out)
        self.ref_events.append((op_name(func), leaves, [t.detach().clone() for t in outs]))
        return out

    def reference_module(self, output: Any) -> None:
        self.ref_module_events.append([t.detach().clone() for t in _tensors(output)])

    # ---------------------------------------------------------------- input pass
    def input_op(self, func, args, kwargs, run):
        if self.quiet:
            return run(func, args, kwargs)
        i, name = self.event, op_name(func)
        self.event += 1
        if i >= len(self.ref_events) or self.ref_events[i][0] != name:
            other = self.ref_events[i][0] if i < len(self.ref_events) else "the end of the forward"
            raise RuntimeError(
                f"The model's operations differ between the reference pass and the input pass: "
                f"op #{i} is `{name}` ({_caller(self.modules.path())}) on the inputs but "
                f"`{other}` on the references. Its sequence of operations depends on the data "
                "(a Python branch on a tensor value?), which DeepLIFT cannot follow.")
        if not torch.is_grad_enabled():
            site = _apply_site()
            if site is not None:
                self.apply_sites[site[0]] = site[1]
            return run(func, args, kwargs)
        leaves, spec = tree_flatten((args, kwargs))
        ref_leaves = self.ref_events[i][1]
        dependent = [j for j, t in enumerate(leaves) if requires_grad(t)]
        if not dependent:
            out = run(func, args, kwargs)
            self.constants.update(self._key(t) for t in _tensors(out) if requires_grad(t))
            return out
        rule = self.registry.lookup(func)
        module = self.modules.path()
        row = _Row(name, _caller(module), module or "",
                   None if rule is None else type(rule).__name__)
        target = self._inplace_target(func, args, kwargs)
        attribute = name in _ATTRIBUTES
        views: dict[int, Tensor] = {}
        new = list(leaves)
        for j in dependent:
            t = leaves[j]
            key = self._known(t, ref_leaves[j] if j < len(ref_leaves) else None, row)
            if key is None:
                continue
            if attribute or t is target:
                if key not in row.direct:
                    row.direct.append(key)
                continue
            if id(t) not in views:
                view = t.view_as(t)
                holder: list = [None]
                view.register_hook(self._catch_pullback(key, holder))
                views[id(t)] = view
                row.viewed.append((key, holder))
            new[j] = views[id(t)]
        differs = [j for j, t in enumerate(leaves) if j not in dependent and j < len(ref_leaves)
                   and not _same(t, ref_leaves[j])]
        a2, k2 = tree_unflatten(new, spec)
        out = run(func, a2, k2)
        outs = [target] if target is not None else _tensors(out)
        for j, t in enumerate(outs):
            if not requires_grad(t) or t.grad_fn is None:
                continue
            key = self._key(t)
            if key in self.nodes or key in self.constants:
                continue
            refs = self.ref_events[i][2]
            self._add_node(key, t, refs[j] if j < len(refs) else None)
            row.outputs.append(key)
        if attribute and not row.outputs:
            return out  # a shape or dtype read: not an op of the graph
        self._annotate(row, name, rule, differs, target is not None)
        for key in row.direct:
            self.nodes[key].direct.append(len(self.rows))
        self.rows.append(row)
        return out

    def module_output(self, output: Any) -> None:
        """Input pass: a module's outputs; a tensor no op produced comes from an unseen node."""
        m = self.module_event
        self.module_event += 1
        if not torch.is_grad_enabled():
            return
        refs = self.ref_module_events[m] if m < len(self.ref_module_events) else []
        for j, t in enumerate(_tensors(output)):
            if requires_grad(t):
                self._known(t, refs[j] if j < len(refs) else None, None)

    # ------------------------------------------------------------------- helpers
    def _inplace_target(self, func, args, kwargs) -> Tensor | None:
        if self.registry.lookup(func) is not None:
            return None  # rules run in-place calls out of place
        raw = getattr(func, "__name__", "")
        out = kwargs.get("out")
        if isinstance(out, Tensor):
            return out
        inplace = (raw in _INPLACE_DUNDERS or (raw.endswith("_") and not raw.endswith("__"))
                   or kwargs.get("inplace") is True)
        return args[0] if inplace and args and isinstance(args[0], Tensor) else None

    def _key(self, t: Tensor) -> tuple:
        edge = torch.autograd.graph.get_gradient_edge(t)
        self._alive.append(edge.node)
        return id(edge.node), edge.output_nr

    def _add_node(self, key: tuple, t: Tensor, reference: Any) -> None:
        if not isinstance(reference, Tensor) or reference.shape != t.shape:
            raise RuntimeError(
                f"A tensor of shape {tuple(t.shape)} on the inputs is "
                f"{'missing' if reference is None else tuple(reference.shape)} on the references; "
                "the two passes must run the same operations on tensors of the same shapes.")
        x64 = t.detach().to(torch.float64)
        r64 = reference.to(t.device, torch.float64)
        # equal values (masked -inf in both passes included) differ by exactly 0, not NaN
        delta = torch.where(x64 == r64, torch.zeros_like(x64), x64 - r64)
        node = _Node(delta)
        self.nodes[key] = node

        def catch(grad, node=node):
            node.grad = grad.detach().clone()

        t.register_hook(catch)

    def _catch_pullback(self, key: tuple, holder: list) -> Callable:
        def catch(grad):
            grad = grad.detach().clone()
            holder[0] = grad
            node = self.nodes[key]
            node.pulled = grad if node.pulled is None else node.pulled + grad
        return catch

    def _known(self, t: Tensor, reference: Any, consumer: _Row | None) -> tuple | None:
        """The node of a dependent tensor; registers inputs and nodes the engine never saw."""
        key = self._key(t)
        if key in self.constants:
            return None
        if key in self.nodes:
            return key
        if t.grad_fn is None:  # an attributed input
            self._add_node(key, t, reference if reference is not None else self._reference_of(t))
            return key
        node = t.grad_fn
        if id(node) in self.hidden:
            index = self.hidden[id(node)]
        else:
            frontier = self._frontier(node)
            if not frontier:
                self.constants.add(key)
                return None
            kind = type(node).__name__
            op = re.sub(r"Backward\d*$", "", kind) or kind
            module = self.modules.path()
            caller = self.apply_sites.get(op) or (
                consumer.caller if consumer is not None else (module or "?"))
            row = _Row(op, caller, module or "", None, [_NOTES["unseen"].format(kind)])
            index = len(self.rows)
            self.hidden[id(node)] = index
            for k in frontier:
                row.direct.append(k)
                self.nodes[k].direct.append(index)
            self.rows.append(row)
        self._add_node(key, t, reference)
        self.rows[index].outputs.append(key)
        return key

    def _frontier(self, start) -> list[tuple]:
        found, seen, stack = [], {id(start)}, [start]
        while stack:
            node = stack.pop()
            for nxt, nr in node.next_functions:
                if nxt is None:
                    continue
                self._alive.append(nxt)
                key = (id(nxt), nr)
                variable = getattr(nxt, "variable", None)
                if key not in self.nodes and isinstance(variable, Tensor) \
                        and requires_grad(variable):
                    self._add_node(key, variable, self._reference_of(variable))
                if key in self.nodes:
                    if key not in found:
                        found.append(key)
                elif id(nxt) not in seen:
                    seen.add(id(nxt))
                    stack.append(nxt)
        return found

    def _reference_of(self, leaf: Tensor) -> Tensor | None:
        for x, r in zip(self.inputs, self.references):
            if x.shape == leaf.shape and torch.equal(x.to(leaf.device), leaf.detach()):
                return r
        return None

    @staticmethod
    def _annotate(row: _Row, name: str, rule, differs: list, inplace: bool) -> None:
        unruled = rule is None and name not in _NOT_UNRULED
        notes = [(unruled, _NOTES["unruled"]), (bool(differs), _NOTES["differs"].format(differs)),
                 (name in COMPARISON_OPS, _NOTES["compare"]),
                 (name in _TO_PYTHON, _NOTES["python"]), (inplace, "in-place")]
        row.notes.extend(text for cond, text in notes if cond)

    # ------------------------------------------------------------------- shares
    def shares(self) -> list[float]:
        """``v_o`` of every row, after the engine's backward."""
        residual: dict[tuple[int, tuple], Tensor] = {}
        for key, node in self.nodes.items():
            if node.direct:  # what reached the tensor other than through its consumers' views
                rest = torch.zeros_like(node.delta)
                for g, sign in ((node.grad, 1.0), (node.pulled, -1.0)):
                    rest = rest if g is None else rest + sign * g.to(torch.float64)
                residual[(node.direct[0], key)] = rest
        values = []
        for r, row in enumerate(self.rows):
            v = sum(_dot(self.nodes[k].grad, self.nodes[k].delta) for k in row.outputs)
            v -= sum(_dot(h[0], self.nodes[k].delta) for k, h in row.viewed)
            v -= sum(_dot(residual.get((r, k)), self.nodes[k].delta) for k in row.direct)
            values.append(float(v))
        return values

    def signature(self) -> list[tuple[str, str]]:
        return [(row.op, row.caller) for row in self.rows]
