"""fastISM: the model's output for single-base edits, recomputing only what an edit changes.

The idea is that of fastISM (Nair, Shrikumar, Schreiber & Kundaje 2022,
"fastISM: performant in silico saturation mutagenesis for convolutional
neural networks", Bioinformatics 38(9):2397-2403): in a convolutional
network a single-base edit changes each position-local layer only inside its
receptive field, so the rest of the layer can be read from the activations of
the unedited sequence, computed once per sequence. tangermeme's
``saturation_mutagenesis(fast=True)`` applies it to a ``torch.export`` graph
by recomputing *windows of values*; this module works on a ``torch.fx`` graph
(a trace takes milliseconds) and propagates *changes*:

* every position-local node ``n`` is carried, for a batch of edits, as its
  change ``D_n = f_n(edited) - f_n(original)`` over a window of ``W_n``
  positions starting at ``s_n(p)``, a function of the edited position ``p``
  only, zero outside the window by construction. Windows are in *extended*
  coordinates: they may reach past either end of the node, where the change
  is kept at 0 (zero padding is linear, so this is exact). Changes are stored
  channels-last, ``(rows, W, C)``, so that windows of the reference
  activations are contiguous blocks;
* the input's change is ``e_new - e_old`` at one position, and a convolution
  of the input is a table look-up: the difference of two weight columns, the
  rank-one update of fastISM;
* a convolution is linear, so its change is the convolution of the input's
  change alone: ``conv(x + D) - conv(x) = conv_nobias(D)``, computed from the
  ``W`` changed input positions (``W * K`` taps per output channel, where a
  window of values needs ``(W + (K - 1) d) * K``);
* batch norm and dropout in eval mode, identity, a scalar or per-channel scale
  and the residual sum of two local nodes are linear too;
* an elementwise nonlinearity ``g`` (ReLU, GELU, exp, ...) and max pooling
  read the reference activations over the window:
  ``D_out = g(ref_in + D_in) - ref_out``;
* the first node that is not position-local (flatten, a linear layer over
  the length, attention, a transposition, a strided convolution, ...) gets the
  full activation, ``ref + D`` written into its window ("splicing"), and the
  rest of the graph runs as usual on the batch of edits. Two readers are
  linear and skip the splice: a global mean or sum over the length
  (``D.sum``), and a ``Linear`` after a flatten, whose change is the product
  of the weight columns of the window with ``D``.

Everything is exact up to floating-point rounding (a change is added to the
reference rather than recomputed from the edited sequence); equality with the
naive loop is tested in ``tests/test_ism.py``. An operation without a rule is
never approximated: it is computed in full on the spliced activations. A model
that cannot be traced raises :class:`FastPathUnsupported` in
:func:`build_fast_ism`, and the caller runs the naive path.
"""

from __future__ import annotations

import inspect
import math
import operator
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, fx, nn

from captum_genomics.ism.edits import EditBatch

__all__ = ["FastISM", "FastPathUnsupported", "build_fast_ism", "MAX_STEP_FACTOR"]


class FastPathUnsupported(Exception):
    """The model cannot run on the fast path; the message says why."""


# ----------------------------------------------------------------------------- op tables
_ACTIVATION_MODULES = (
    nn.ReLU, nn.ReLU6, nn.GELU, nn.Sigmoid, nn.Tanh, nn.ELU, nn.CELU, nn.SELU, nn.LeakyReLU,
    nn.Softplus, nn.SiLU, nn.Mish, nn.Hardtanh, nn.Hardswish, nn.Hardsigmoid, nn.LogSigmoid,
    nn.Softsign, nn.Tanhshrink, nn.Threshold, nn.PReLU, nn.Hardshrink, nn.Softshrink,
)
_IDENTITY_MODULES = (nn.Identity, nn.Dropout, nn.Dropout1d, nn.AlphaDropout,
                     nn.FeatureAlphaDropout)
_RELU = {torch.relu, F.relu, "relu", "relu_"}
_UNARY_FUNCTIONS = {
    torch.relu, F.relu, torch.sigmoid, F.sigmoid, torch.tanh, F.tanh, torch.exp, F.gelu,
    F.silu, F.elu, F.celu, F.selu, F.leaky_relu, F.softplus, F.mish, F.hardtanh, F.relu6,
    F.hardswish, F.hardsigmoid, F.logsigmoid, F.softsign, torch.abs, torch.square,
    torch.log1p, torch.expm1, torch.erf, torch.sin, torch.cos, torch.clamp, torch.clip,
    torch.sqrt, torch.log, torch.rsqrt, torch.special.expit, F.threshold,
}
_UNARY_METHODS = {
    "relu", "relu_", "sigmoid", "sigmoid_", "tanh", "tanh_", "exp", "exp_", "abs", "square",
    "log1p", "expm1", "erf", "sin", "cos", "clamp", "clamp_", "clip", "sqrt", "log", "rsqrt",
}
_IDENTITY_METHODS = {"contiguous", "clone", "detach"}
_ADD = {operator.add, torch.add, "add", operator.iadd, "add_"}
_SUB = {operator.sub, torch.sub, "sub", operator.isub, "sub_"}
_MUL = {operator.mul, torch.mul, "mul", operator.imul, "mul_"}
_DIV = {operator.truediv, torch.div, "div", operator.itruediv, "div_", torch.true_divide}
_NEG = {operator.neg, torch.neg, "neg"}
_BINARY_NONLINEAR = {torch.maximum, torch.minimum, "maximum", "minimum", operator.pow,
                     torch.pow, "pow"}
_NONINPLACE = {operator.iadd: operator.add, operator.isub: operator.sub,
               operator.imul: operator.mul, operator.itruediv: operator.truediv}
_REDUCE_FUNCTIONS = {torch.mean: "mean", torch.sum: "sum"}
_SHAPE_METHODS = {"size", "dim"}
_INPLACE_METHODS = {"relu_", "sigmoid_", "tanh_", "exp_", "clamp_", "add_", "sub_", "mul_",
                    "div_"}


#: The fast path holds windows instead of full activations: a step may hold up to this many
#: times ``batch_size`` edits, as long as its activations stay within a naive batch's.
MAX_STEP_FACTOR = 4

#: Input windows at least this wide run a convolution's change as one batched GEMM
#: per tap accumulating into the output; narrower ones as one GEMM over all taps
#: followed by shifted additions (measured faster on CPU for few rows).
_WIDE = 128

#: Layers with at least this many (input x output) channels run a convolution's
#: change as a direct convolution of the zero-padded change when the output
#: window is at most ``_DIRECT_WASTE`` times the input window (oneDNN's direct
#: convolution reaches about 2.5x the multiply-adds per second of a GEMM there).
_DIRECT_CHANNELS = 128 * 128
_DIRECT_WASTE = 2.5


def _key(node: fx.Node) -> Any:
    return node.target if node.op in ("call_function", "call_method") else None


# ----------------------------------------------------------------------------- plan records
@dataclass
class _Local:
    """A position-local node, carried as its change over a window.

    ``st`` holds the window's start for every edited position (index
    ``pos - start``), in extended coordinates; ``width`` is the window's
    width; ``length``/``channels`` the node's ``L`` and ``C``. ``run(batch)``
    returns the change ``(rows, W, C)``. ``leaks``: the rule can leave nonzero
    values outside ``[0, length)``, which are then zeroed; ``alias``: the rule
    returns its input's tensor (never modified in place); ``macs``:
    multiply-adds per edit.
    """

    channels: int
    length: int
    st: np.ndarray
    width: int
    run: Callable[["_Batch"], Tensor] | None
    leaks: bool
    alias: bool = False
    macs: int = 0
    oob: np.ndarray = field(init=False)

    def __post_init__(self):
        self.st = np.asarray(self.st, dtype=np.int64)
        self.oob = (self.st < 0) | (self.st + self.width > self.length)


@dataclass
class _Frontier:
    """A non-local node computed from a local node's change without splicing."""

    run: Callable[["_Batch"], Tensor]
    macs: int = 0


@dataclass
class _Plan:
    kind: dict = field(default_factory=dict)  # node -> const|batched|local|frontier|...
    local: dict = field(default_factory=dict)  # node -> _Local
    frontier: dict = field(default_factory=dict)  # node -> _Frontier
    const: dict = field(default_factory=dict)  # node -> value
    reads: dict = field(default_factory=dict)  # node -> [left pad, right pad]
    users: dict = field(default_factory=dict)  # node -> number of users


class _Batch:
    """One batch of edits: positions, per-node changes and spliced activations."""

    def __init__(self, engine: "FastISM", batch: EditBatch):
        self.engine = engine
        self.g, self.e, self.r = batch.n_groups, batch.per_group, batch.n_rows
        self.idx = (batch.pos - engine.start).numpy()
        dev = engine.device
        seq = (batch.seq - engine.chunk_lo).numpy()
        self.seq = torch.from_numpy(seq).to(dev)  # (G,) chunk-relative
        self.row_seq = self.seq.repeat_interleave(self.e)  # (R,)
        cuts = np.flatnonzero(np.diff(seq)) + 1
        self.segments = [(int(seq[lo]), int(lo), int(hi))
                         for lo, hi in zip(np.r_[0, cuts], np.r_[cuts, len(seq)])]
        self.batch = batch
        self.delta: dict = {}
        self.full: dict = {}
        self.env: dict = {}

    def starts(self, st: np.ndarray) -> np.ndarray:
        return st[self.idx]

    def tensor(self, values: np.ndarray) -> Tensor:
        return torch.from_numpy(np.ascontiguousarray(values)).to(self.engine.device)


# ----------------------------------------------------------------------------- the engine
class FastISM:
    """The model's output on single-base edits of its input, via a traced graph.

    Build with :func:`build_fast_ism`. :meth:`set_sequences` computes the
    reference activations of a range of sequences, :meth:`forward` the
    model's output for an :class:`~captum_genomics.ism.edits.EditBatch` of
    them, as the model would return it for the edited sequences.

    Attributes
    ----------
    naive_macs, fast_macs : int
        Estimated multiply-adds per edited sequence of the convolutions and
        linear layers, in a full forward and on the fast path.
    n_local : int
        Position-local nodes (the input included).
    step_factor : int
        A step may hold ``step_factor * batch_size`` edits (see
        :meth:`_step_factor`).
    """

    def __init__(self, model: nn.Module, gm: fx.GraphModule, n_bases: int, length: int,
                 start: int, end: int, extra: tuple, n: int, device: torch.device,
                 dtype: torch.dtype, shapes: dict):
        self.model, self.gm, self.n = model, gm, n
        self.a, self.length, self.start, self.end = n_bases, length, start, end
        self.extra = extra
        self.device, self.dtype = device, dtype
        self.shapes = shapes
        self.nodes = list(gm.graph.nodes)
        self.placeholders = [n for n in self.nodes if n.op == "placeholder"]
        self.x_node = self.placeholders[0]
        self.plan = _Plan()
        self.chunk_lo = 0
        self.refs: dict = {}
        self.refs_cl: dict = {}
        self._work: dict = {}
        self._cache: dict = {}
        self.naive_macs = 0
        self._classify()
        self.fast_macs = sum(i.macs for i in self.plan.local.values()) + sum(
            f.macs for f in self.plan.frontier.values()) + self._tail_macs
        self.n_local = len(self.plan.local)
        self.step_factor = self._step_factor()

    def _step_factor(self) -> int:
        """How many times ``batch_size`` edits one step of the fast path may hold.

        A step holds windows of the local nodes (changes, reference windows,
        work buffers: about 3 window-sized tensors each) and full activations
        of the nodes after the splice; a naive batch holds full activations of
        every node. The factor keeps a step's activations within those of a
        naive batch of ``batch_size`` (at most :data:`MAX_STEP_FACTOR`).
        """
        plan = self.plan
        naive = fast = 0
        for n, shape in self.shapes.items():
            size = math.prod(shape[1:]) if len(shape) > 1 else 1
            kind = plan.kind.get(n)
            if kind == "const":
                continue
            naive += size
            if kind == "local":
                rec = plan.local[n]
                fast += 3 * rec.width * rec.channels
                if n in self._ref_needed and n not in plan.reads:
                    fast += size  # spliced
            elif kind in ("global", "frontier", "batched", "shape"):
                fast += size
        return int(max(1, min(MAX_STEP_FACTOR, naive // max(fast, 1))))

    # ------------------------------------------------------------------ helpers
    def _shape(self, node) -> tuple | None:
        return self.shapes.get(node)

    def _module(self, node) -> nn.Module:
        return self.gm.get_submodule(node.target)

    def _call(self, node, args, kwargs):
        if node.op == "call_module":
            return self._module(node)(*args, **kwargs)
        if node.op == "call_function":
            return node.target(*args, **kwargs)
        if node.op == "call_method":
            return getattr(args[0], node.target)(*args[1:], **kwargs)
        obj = self.gm
        for part in node.target.split("."):
            obj = getattr(obj, part)
        return obj

    def _buffer(self, key, shape: tuple, zero: bool = False) -> Tensor:
        """A reusable work tensor: fresh large allocations cost more than the arithmetic."""
        need = math.prod(shape)
        buf = self._work.get(key)
        if buf is None or buf.numel() < need:
            buf = torch.empty(max(need, 1), dtype=self.dtype, device=self.device)
            self._work[key] = buf
        out = buf[:need].view(shape)
        return out.zero_() if zero else out

    def _exclusive(self, node) -> bool:
        """The node's change may be modified in place by its (single) reader."""
        rec = self.plan.local[node]
        return not rec.alias and self.plan.users.get(node, 0) == 1 and node is not self.x_node

    def _channel_vector(self, value, channels: int):
        """A constant as a scalar or a ``(C,)`` vector for channels-last changes, or None."""
        if isinstance(value, bool) or not isinstance(value, (int, float, Tensor)):
            return None
        if not isinstance(value, Tensor) or value.numel() == 1:
            return value if not isinstance(value, Tensor) else value.reshape(())
        if value.dim() > 3 or value.shape[-1] != 1 or value.numel() != channels or (
                value.dim() >= 2 and value.shape[-2] != channels):
            return None
        return value.reshape(channels)

    # ------------------------------------------------------------------ classification
    def _classify(self) -> None:
        plan = self.plan
        users = {n: list(n.users) for n in self.nodes}
        plan.users = {n: len(u) for n, u in users.items()}
        for n in self.nodes:
            inplace = (n.op == "call_module" and getattr(self._module(n), "inplace", False)) or \
                n.kwargs.get("inplace") is True or (
                    n.op == "call_method" and n.target in _INPLACE_METHODS) or (
                    n.op == "call_function" and n.target in _NONINPLACE)
            src = n.args[0] if n.args else None
            if inplace and isinstance(src, fx.Node) and len(users[src]) > 1:
                raise FastPathUnsupported(
                    f"in-place operation {n.name!r} on a value that is read again")
        for i, n in enumerate(self.placeholders):
            if i == 0:
                st = np.arange(self.start, self.end)
                plan.kind[n] = "local"
                plan.local[n] = _Local(self.a, self.length, st, 1, self._run_input, False)
            elif i - 1 < len(self.extra) and _per_example(self.extra[i - 1], self.n):
                plan.kind[n] = "batched"
            elif i - 1 < len(self.extra):
                plan.kind[n] = "const"
                plan.const[n] = self.extra[i - 1]
            elif n.args:
                plan.kind[n] = "const"
                plan.const[n] = n.args[0]
            else:
                raise FastPathUnsupported(f"the model's argument {n.target!r} has no value")
        tail_macs = 0
        for n in self.nodes:
            if n.op in ("placeholder", "output"):
                continue
            inputs = n.all_input_nodes
            kinds = [plan.kind[i] for i in inputs]
            if all(k == "const" for k in kinds):
                plan.kind[n] = "const"
                get = plan.const.__getitem__
                with torch.no_grad():
                    plan.const[n] = self._call(n, fx.node.map_arg(n.args, get),
                                               fx.node.map_arg(n.kwargs, get))
                continue
            macs = self._macs(n)
            self.naive_macs += macs
            if all(k in ("const", "batched") for k in kinds):
                plan.kind[n] = "batched"
                continue
            if self._is_shape_query(n):
                plan.kind[n] = "shape"
                continue
            local_in = [i for i in inputs if plan.kind[i] == "local"]
            rec = None
            if local_in and all(plan.kind[i] in ("const", "local") for i in inputs):
                rec = self._local_rule(n, local_in)
            if rec is not None:
                plan.kind[n] = "local"
                plan.local[n] = rec
                continue
            fr = self._frontier_rule(n, users)
            if fr is not None:
                plan.kind[n] = "frontier"
                plan.frontier[n] = fr
                continue
            plan.kind[n] = "global"
            tail_macs += macs
        self._tail_macs = tail_macs
        self.output_node = [n for n in self.nodes if n.op == "output"][0]
        if len(plan.local) <= 1:
            raise FastPathUnsupported("no position-local layer reads the input")
        self.tail = [n for n in self.nodes if plan.kind.get(n) in ("global", "batched", "shape",
                                                                   "frontier")]
        # the input's change is needed unless only convolution tables read the input
        self._x_change_read = any(
            not (u.op == "call_module" and type(self._module(u)) is nn.Conv1d
                 and plan.kind.get(u) == "local") and plan.kind.get(u) == "local"
            or plan.kind.get(u) == "frontier" for u in self.x_node.users)
        # the local nodes whose reference is read: windows, or a splice for the tail
        self._ref_needed = set(plan.reads) | {
            i for n in self.tail + [self.output_node] if plan.kind.get(n) != "frontier"
            for i in n.all_input_nodes if plan.kind[i] == "local"}

    def _macs(self, n) -> int:
        """Multiply-adds per example of a node (convolutions, linear layers; a rough guess
        from the parameter count for other modules with parameters)."""
        shape = self._shape(n)
        if n.op != "call_module" or shape is None:
            return 0
        m = self._module(n)
        if isinstance(m, nn.Conv1d) and len(shape) == 3:
            return m.out_channels * m.in_channels // m.groups * m.kernel_size[0] * shape[2]
        if isinstance(m, nn.Linear):
            return m.in_features * m.out_features * max(1, math.prod(shape[1:-1]))
        params = sum(p.numel() for p in m.parameters())
        if params == 0 or len(shape) < 2:
            return 0
        return params * max(1, math.prod(shape[1:]) // shape[-1])

    def _register_read(self, node, st: np.ndarray, width: int, length: int) -> None:
        pads = self.plan.reads.setdefault(node, [0, 0])
        pads[0] = max(pads[0], int(max(0, -st.min())))
        pads[1] = max(pads[1], int(max(0, (st + width).max() - length)))

    # ------------------------------------------------------------------ shape queries
    def _is_shape_query(self, n) -> bool:
        if not n.args or not isinstance(n.args[0], fx.Node) or \
                self.plan.kind[n.args[0]] != "local":
            return False
        if n.op == "call_method":
            return n.target in _SHAPE_METHODS
        return n.op == "call_function" and n.target is getattr and len(n.args) == 2 and \
            n.args[1] in ("shape", "ndim", "dtype", "device")

    def _eval_shape(self, n, b: int, get):
        shape = torch.Size((b,) + tuple(self._shape(n.args[0])[1:]))
        if n.op == "call_method":
            if n.target == "dim":
                return len(shape)
            rest = fx.node.map_arg(n.args[1:], get)
            dim = rest[0] if rest else n.kwargs.get("dim")
            return shape if dim is None else shape[dim]
        attr = n.args[1]
        if attr == "shape":
            return shape
        if attr == "ndim":
            return len(shape)
        return self.dtype if attr == "dtype" else self.device

    # ------------------------------------------------------------------ local rules
    def _local_rule(self, n, local_in) -> _Local | None:
        shape = self._shape(n)
        if shape is None or len(shape) != 3 or shape[0] != 2:
            return None
        src = local_in[0]
        info = self.plan.local[src]
        key = _key(n)
        if n.op == "call_module":
            m = self._module(n)
            t = type(m)
            if t is nn.Conv1d:
                return self._conv_rule(n, src, lambda m=m: m.weight, m.weight.shape,
                                       m.stride[0], m.padding, m.dilation[0], m.groups,
                                       m.padding_mode, shape)
            if t in _ACTIVATION_MODULES:
                return self._elementwise_rule(n, src, shape, relu=t is nn.ReLU)
            if t in _IDENTITY_MODULES:
                return self._linear_rule(n, src, shape, None)
            if t is nn.BatchNorm1d:
                if m.training or m.running_var is None or shape[1] != info.channels:
                    return None

                def bn_scale(m=m):
                    scale = torch.rsqrt(m.running_var + m.eps)
                    return scale * m.weight if m.weight is not None else scale

                return self._linear_rule(n, src, shape, bn_scale)
            if t in (nn.MaxPool1d, nn.AvgPool1d):
                k, s = _single(m.kernel_size), _single(m.stride)
                if _single(m.padding) != 0 or _single(getattr(m, "dilation", 1)) != 1 or \
                        m.ceil_mode or s > k or getattr(m, "return_indices", False) or \
                        getattr(m, "divisor_override", None):
                    return None
                return self._pool_rule(n, src, k, s, t is nn.MaxPool1d, shape)
            return None
        if n.op == "call_function" and key in (F.conv1d, torch.conv1d):
            bound = _bind("conv1d", n)
            if bound is None or bound["input"] is not src or len(local_in) != 1:
                return None
            w = bound["weight"]
            if not isinstance(w, fx.Node) or self.plan.kind[w] != "const" or \
                    not isinstance(self.plan.const[w], Tensor):
                return None
            weight = self.plan.const[w]
            return self._conv_rule(n, src, lambda: weight, weight.shape,
                                   _single(bound["stride"]), bound["padding"],
                                   _single(bound["dilation"]), bound["groups"], "zeros", shape)
        if n.op == "call_function" and key in (F.max_pool1d, torch.max_pool1d, F.avg_pool1d,
                                               torch.avg_pool1d):
            is_max = key in (F.max_pool1d, torch.max_pool1d)
            bound = _bind("max_pool1d" if is_max else "avg_pool1d", n)
            if bound is None or bound["input"] is not src:
                return None
            k = _single(bound["kernel_size"])
            s = bound["stride"]
            s = k if s is None or s == [] or s == () else _single(s)
            if _single(bound["padding"]) != 0 or _single(bound.get("dilation", 1)) != 1 \
                    or bound["ceil_mode"] or bound.get("return_indices", False) \
                    or s > k or bound.get("divisor_override") is not None:
                return None
            return self._pool_rule(n, src, k, s, is_max, shape)
        if n.op == "call_method" and key in _IDENTITY_METHODS:
            return self._linear_rule(n, src, shape, None)
        if n.op == "call_function" and key is F.dropout:
            bound = _bind("dropout", n)
            if bound is None or bound["training"] is not False:
                return None
            return self._linear_rule(n, src, shape, None)
        if key in _NEG and len(n.args) == 1:
            return self._linear_rule(n, src, shape, lambda: -1.0)
        if key in _ADD | _SUB | _MUL | _DIV | _BINARY_NONLINEAR and len(n.args) == 2 and \
                not n.kwargs:
            return self._binary_rule(n, _NONINPLACE.get(key, key), shape)
        if (n.op == "call_function" and key in _UNARY_FUNCTIONS) or (
                n.op == "call_method" and key in _UNARY_METHODS):
            values = [a for a in _flat_args(n) if isinstance(a, fx.Node)]
            if values != [src] or n.args[0] is not src:
                return None
            relu = key in _RELU and len(n.args) == 1 and not n.kwargs
            return self._elementwise_rule(n, src, shape, relu=relu)
        if n.op == "call_function" and key is F.pad:
            return self._pad_rule(n, src, shape)
        if n.op == "call_function" and key is operator.getitem:
            return self._getitem_rule(n, src, shape)
        return None

    def _conv_rule(self, n, src, weight_of, wshape, stride, padding, dilation, groups,
                   padding_mode, shape) -> _Local | None:
        info = self.plan.local[src]
        if stride != 1 or padding_mode != "zeros" or len(wshape) != 3:
            return None
        out_c, c_per_group, k = wshape
        span = dilation * (k - 1)
        if padding == "same":
            left, right = span // 2, span - span // 2
        elif padding == "valid":
            left = right = 0
        else:
            left = right = _single(padding)
        if shape[1] != out_c or info.channels != c_per_group * groups or \
                shape[2] != info.length + left + right - span:
            return None
        st = info.st + left - span
        width = info.width + span
        macs = out_c * c_per_group * k * info.width
        engine = self
        if src is self.x_node:  # the rank-one update: a look-up of weight-column differences
            def run_input(batch: _Batch, n=n) -> Tensor:
                table = engine._cached((n, "table"), weight_of(), lambda w: _edit_table(
                    w, engine.a, dilation, groups))
                eb = batch.batch
                index = eb.new.reshape(-1) * (engine.a + 1) + eb.old.repeat_interleave(batch.e)
                out = engine._buffer((n, "out"), (batch.r, width * out_c))
                torch.index_select(table, 0, index.to(engine.device), out=out)
                return out.view(batch.r, width, out_c)

            return _Local(out_c, shape[2], st, width, run_input, True, macs=out_c * width)

        if groups != 1:
            def run(batch: _Batch, n=n, src=src) -> Tensor:
                wt = engine._cached((n, "convT"), weight_of(), lambda w: w.reshape(
                    groups, out_c // groups, c_per_group, k).transpose(1, 2).reshape(
                    c_per_group * groups, out_c // groups, k).flip(-1).contiguous())
                d = batch.delta[src].transpose(1, 2)
                out = F.conv_transpose1d(d.contiguous(), wt, dilation=dilation, groups=groups)
                buf = engine._buffer((n, "out"), (batch.r, width, out_c))
                return buf.copy_(out.transpose(1, 2))
        elif c_per_group * out_c >= _DIRECT_CHANNELS and width <= _DIRECT_WASTE * info.width:
            def run(batch: _Batch, n=n, src=src) -> Tensor:
                # wide layers, narrow windows: a direct convolution of the zero-padded change
                # (some multiply-adds on zeros, but the fastest kernel on CPU)
                d = batch.delta[src].transpose(1, 2)
                out = F.conv1d(d, weight_of().to(d.dtype), padding=span, dilation=dilation)
                buf = engine._buffer((n, "out"), (batch.r, width, out_c))
                return buf.copy_(out.transpose(1, 2))
        elif info.width >= _WIDE:
            def run(batch: _Batch, n=n, src=src) -> Tensor:
                # wide windows: each tap's GEMM accumulates into its shifted output rows
                taps = engine._cached((n, "taps"), weight_of(), lambda w: w.permute(
                    2, 1, 0).contiguous())  # (K, C, O)
                d = batch.delta[src]
                w_in = d.shape[1]
                out = engine._buffer((n, "out"), (batch.r, width, out_c), zero=True)
                for t in range(k):
                    s = (k - 1 - t) * dilation
                    out[:, s:s + w_in].baddbmm_(d, taps[t].expand(batch.r, -1, -1))
                return out
        else:
            def run(batch: _Batch, n=n, src=src) -> Tensor:
                # one GEMM over all taps, then each tap's rows added at its shift
                wcat = engine._cached((n, "taps"), weight_of(), lambda w: w.permute(
                    1, 2, 0).reshape(c_per_group, k * out_c).contiguous())
                d = batch.delta[src]
                w_in = d.shape[1]
                prod = engine._buffer((n, "taps"), (batch.r * w_in, k * out_c))
                torch.mm(d.reshape(-1, d.shape[2]), wcat, out=prod)
                prod = prod.view(batch.r, w_in, k, out_c)
                out = engine._buffer((n, "out"), (batch.r, width, out_c), zero=True)
                for t in range(k):
                    s = (k - 1 - t) * dilation
                    out[:, s:s + w_in].add_(prod[:, :, t])
                return out

        return _Local(out_c, shape[2], st, width, run, True, macs=macs)

    def _cached(self, key, weight: Tensor, make: Callable[[Tensor], Tensor]) -> Tensor:
        """A tensor derived from a parameter, rebuilt when the parameter changes."""
        stamp = (id(weight), weight._version, self.dtype)
        hit = self._cache.get(key)
        if hit is None or hit[0] != stamp:
            with torch.no_grad():
                hit = (stamp, make(weight.detach()).to(self.dtype))
            self._cache[key] = hit
        return hit[1]

    def _linear_rule(self, n, src, shape, scale_of) -> _Local | None:
        """``D_out = D * scale``: identity (``scale_of`` None), a scalar or per-channel scale."""
        info = self.plan.local[src]
        if tuple(shape) != tuple(self._shape(src)):
            return None
        engine = self
        if scale_of is None:
            def run(batch: _Batch, src=src) -> Tensor:
                return batch.delta[src]

            return _Local(shape[1], shape[2], info.st, info.width, run, False, alias=True)

        def run(batch: _Batch, n=n, src=src) -> Tensor:
            d = batch.delta[src]
            scale = scale_of()
            scale = scale.to(d) if isinstance(scale, Tensor) else scale
            if engine._exclusive(src):
                return d.mul_(scale)
            return torch.mul(d, scale, out=engine._buffer((n, "out"), tuple(d.shape)))

        return _Local(shape[1], shape[2], info.st, info.width, run, False)

    def _elementwise_rule(self, n, src, shape, relu: bool = False) -> _Local | None:
        info = self.plan.local[src]
        if tuple(self._shape(src)) != tuple(shape):
            return None
        self._register_read(src, info.st, info.width, info.length)
        self._register_read(n, info.st, info.width, shape[2])
        engine = self
        width = info.width

        def run(batch: _Batch, n=n, src=src) -> Tensor:
            d = batch.delta[src]
            g, e = batch.g, batch.e
            ref_in = engine._window(batch, src, info.st, width, "in")
            d4 = d.view(g, e, width, -1)
            if engine._exclusive(src):
                v = d4.add_(ref_in.unsqueeze(1)).view(d.shape)
            else:
                v = torch.add(d4, ref_in.unsqueeze(1), out=engine._buffer(
                    (n, "out"), tuple(d4.shape))).view(d.shape)
            if relu:
                out = v.relu_()
            else:
                vt = v.transpose(1, 2)  # (R, C, W) as the model sees it

                def value(a):
                    return vt if a is src else engine.plan.const[a]

                args = fx.node.map_arg(n.args, value)
                kwargs = fx.node.map_arg(n.kwargs, value)
                if n.op == "call_method" and n.target.endswith("_"):
                    out = getattr(vt, n.target[:-1])(*args[1:], **kwargs)
                else:
                    out = engine._call(n, args, kwargs)
                out = out.transpose(1, 2)
                if not out.is_contiguous():
                    out = out.contiguous()
            ref_out = engine._window(batch, n, info.st, width, "out")
            out.view(g, e, width, -1).sub_(ref_out.unsqueeze(1))
            return out

        return _Local(shape[1], shape[2], info.st, width, run, True)

    def _binary_rule(self, n, key, shape) -> _Local | None:
        a, b = n.args
        a_local = isinstance(a, fx.Node) and self.plan.kind[a] == "local"
        b_local = isinstance(b, fx.Node) and self.plan.kind[b] == "local"
        if a_local and b_local:
            return self._local_pair_rule(n, key, a, b, shape)
        src, other = (a, b) if a_local else (b, a)
        value = self.plan.const.get(other) if isinstance(other, fx.Node) else other
        info = self.plan.local[src]
        if tuple(self._shape(src)) != tuple(shape):
            return None
        if key in _ADD or (key in _SUB and a_local):  # a constant cancels in the change
            return self._linear_rule(n, src, shape, None)
        if key in _SUB:
            return self._linear_rule(n, src, shape, lambda: -1.0)
        vec = self._channel_vector(value, info.channels)
        if vec is None:
            return None
        if key in _MUL:
            return self._linear_rule(n, src, shape, lambda: vec)
        if key in _DIV and a_local:
            return self._linear_rule(n, src, shape, lambda: 1.0 / vec)
        return self._elementwise_rule(n, src, shape)

    def _local_pair_rule(self, n, key, a, b, shape) -> _Local | None:
        ia, ib = self.plan.local[a], self.plan.local[b]
        if tuple(self._shape(a)) != tuple(shape) or tuple(self._shape(b)) != tuple(shape):
            return None
        st = np.minimum(ia.st, ib.st)
        width = int((np.maximum(ia.st + ia.width, ib.st + ib.width) - st).max())
        off_a, off_b = ia.st - st, ib.st - st
        linear = key in _ADD or key in _SUB
        engine = self
        if not linear:
            for node in (a, b, n):
                self._register_read(node, st, width, shape[2])

        def run(batch: _Batch, n=n) -> Tensor:
            da, db = batch.delta[a], batch.delta[b]
            sign = -1.0 if key in _SUB else 1.0
            if linear:
                if a is b:
                    return torch.mul(da, 1.0 + sign, out=engine._buffer((n, "out"),
                                                                        tuple(da.shape)))
                oa, ob = batch.starts(off_a), batch.starts(off_b)
                if da.shape[1] == width and engine._exclusive(a) and (oa == 0).all():
                    return _place_add(batch, da, db, ob, sign)
                if db.shape[1] == width and engine._exclusive(b) and (ob == 0).all() \
                        and sign > 0:
                    return _place_add(batch, db, da, oa, 1.0)
                out = engine._buffer((n, "out"), (batch.r, width, shape[1]), zero=True)
                _place_add(batch, out, da, oa, 1.0)
                return _place_add(batch, out, db, ob, sign)
            values = []
            for node, d, off in ((a, da, off_a), (b, db, off_b)):
                v = engine._window(batch, node, st, width, "pair").unsqueeze(1).repeat(
                    1, batch.e, 1, 1).view(batch.r, width, -1)
                values.append(_place_add(batch, v, d, batch.starts(off), 1.0).transpose(1, 2))
            fn = key if callable(key) else (lambda p, q: getattr(p, key.rstrip("_"))(q))
            out = fn(*values).transpose(1, 2).contiguous()
            ref_out = engine._window(batch, n, st, width, "out")
            out.view(batch.g, batch.e, width, -1).sub_(ref_out.unsqueeze(1))
            return out

        return _Local(shape[1], shape[2], st, width, run, not linear)

    def _pool_rule(self, n, src, k, s, is_max, shape) -> _Local | None:
        info = self.plan.local[src]
        if shape[1] != info.channels or shape[2] != (info.length - k) // s + 1:
            return None
        st_out = -np.floor_divide(-(info.st - k + 1), s)
        width = int((np.floor_divide(info.st + info.width - 1, s) + 1 - st_out).max())
        in_start = st_out * s
        in_width = (width - 1) * s + k
        offset = info.st - in_start
        if (offset < 0).any() or (offset + info.width > in_width).any():
            return None
        engine = self
        if is_max:
            self._register_read(src, in_start, in_width, info.length)
            self._register_read(n, st_out, width, shape[2])
        span = (width - 1) * s + 1

        def run(batch: _Batch, n=n, src=src) -> Tensor:
            d = batch.delta[src]
            c = d.shape[2]
            if is_max:
                ref = engine._window(batch, src, in_start, in_width, "in")
                v = engine._buffer((n, "v"), (batch.g, batch.e, in_width, c))
                v.copy_(ref.unsqueeze(1))
                v = v.view(batch.r, in_width, c)
            else:
                v = engine._buffer((n, "v"), (batch.r, in_width, c), zero=True)
            _place_add(batch, v, d, batch.starts(offset), 1.0)
            out = engine._buffer((n, "out"), (batch.r, width, c))
            out.copy_(v[:, 0:span:s])
            for i in range(1, k):
                if is_max:
                    torch.maximum(out, v[:, i:i + span:s], out=out)
                else:
                    out.add_(v[:, i:i + span:s])
            if not is_max:
                return out.div_(k)
            ref_out = engine._window(batch, n, st_out, width, "out")
            out.view(batch.g, batch.e, width, c).sub_(ref_out.unsqueeze(1))
            return out

        return _Local(shape[1], shape[2], st_out, width, run, True)

    def _pad_rule(self, n, src, shape) -> _Local | None:
        bound = _bind("pad", n)
        if bound is None or bound["input"] is not src or bound["mode"] != "constant":
            return None
        pad = bound["pad"]
        if not isinstance(pad, (tuple, list)) or len(pad) != 2 or not all(
                isinstance(p, int) for p in pad):
            return None
        info = self.plan.local[src]
        if shape[2] != info.length + pad[0] + pad[1] or shape[1] != info.channels:
            return None

        def run(batch: _Batch, src=src) -> Tensor:
            return batch.delta[src]

        return _Local(shape[1], shape[2], info.st + pad[0], info.width, run, min(pad) < 0,
                      alias=True)

    def _getitem_rule(self, n, src, shape) -> _Local | None:
        index = n.args[1]
        if not isinstance(index, tuple):
            index = (index,)
        if any(isinstance(i, fx.Node) for i in index):
            return None
        if Ellipsis in index:
            j = index.index(Ellipsis)
            index = index[:j] + (slice(None),) * (3 - len(index) + 1) + index[j + 1:]
        index = index + (slice(None),) * (3 - len(index))
        if len(index) != 3 or not all(isinstance(i, slice) for i in index):
            return None
        full = slice(None)
        info = self.plan.local[src]
        if index[0] != full:
            return None
        if index[2] == full:  # a channel slice
            c0, c1, step = index[1].indices(info.channels)
            if step != 1 or shape[1] != c1 - c0 or shape[2] != info.length:
                return None

            def run_channels(batch: _Batch, src=src) -> Tensor:
                return batch.delta[src][:, :, c0:c1].contiguous()

            return _Local(shape[1], shape[2], info.st, info.width, run_channels, False)
        if index[1] != full:
            return None
        lo, hi, step = index[2].indices(info.length)
        if step != 1 or shape[2] != hi - lo or shape[1] != info.channels:
            return None

        def run(batch: _Batch, src=src) -> Tensor:
            return batch.delta[src]

        return _Local(shape[1], shape[2], info.st - lo, info.width, run, True, alias=True)

    # ------------------------------------------------------------------ frontier rules
    def _frontier_rule(self, n, users) -> _Frontier | None:
        key = _key(n)
        if n.op == "call_module" and type(self._module(n)) is nn.Linear:
            return self._dense_rule(n, users)
        local_in = [i for i in n.all_input_nodes if self.plan.kind[i] == "local"]
        if len(local_in) != 1 or any(self.plan.kind[i] not in ("local", "const")
                                     for i in n.all_input_nodes):
            return None
        src = local_in[0]
        info = self.plan.local[src]
        shape = self._shape(src)
        if shape is None or len(shape) != 3 or n.args[:1] != (src,):
            return None
        reduce, keepdim = None, False
        if n.op == "call_module" and type(self._module(n)) is nn.AdaptiveAvgPool1d and \
                _single(self._module(n).output_size) == 1:
            reduce, keepdim = "mean", True
        elif (n.op == "call_method" and key in ("mean", "sum")) or (
                n.op == "call_function" and key in _REDUCE_FUNCTIONS):
            name = key if isinstance(key, str) else _REDUCE_FUNCTIONS[key]
            dims = n.args[1] if len(n.args) > 1 else n.kwargs.get("dim")
            keepdim = n.args[2] if len(n.args) > 2 else n.kwargs.get("keepdim", False)
            if isinstance(dims, (tuple, list)) and len(dims) == 1:
                dims = dims[0]
            if not set(n.kwargs) - {"dim", "keepdim"} and dims in (-1, 2) and \
                    isinstance(keepdim, bool):
                reduce = name
        if reduce is None:
            return None
        length = info.length
        engine = self

        def run(batch: _Batch, n=n, src=src) -> Tensor:
            change = batch.delta[src].sum(1)  # (R, C)
            if reduce == "mean":
                change = change.div_(length)
            if keepdim:
                change = change.unsqueeze(-1)
            return change.add_(engine.refs[n].index_select(0, batch.row_seq))

        return _Frontier(run, info.channels * info.width)

    def _dense_rule(self, n, users) -> _Frontier | None:
        """A ``Linear`` after a flatten of a local node (a dense layer over the length)."""
        if len(n.args) != 1 or n.kwargs:
            return None
        flat, chain = n.args[0], []
        while isinstance(flat, fx.Node) and self.plan.kind.get(flat) == "global" and \
                len(users[flat]) == 1 and flat.op == "call_module" and \
                type(self._module(flat)) in _IDENTITY_MODULES:
            chain.append(flat)
            flat = flat.args[0]
        if not isinstance(flat, fx.Node) or not flat.args or len(users[flat]) != 1:
            return None
        src = flat.args[0]
        if not isinstance(src, fx.Node) or self.plan.kind.get(src) != "local" or \
                not self._is_flatten(flat, src):
            return None
        info = self.plan.local[src]
        m = self._module(n)
        c, length, width = info.channels, info.length, info.width
        if m.in_features != c * length:
            return None
        for f in chain + [flat]:
            self.plan.kind[f] = "fused"
        pads = (int(max(0, -info.st.min())), int(max(0, (info.st + width).max() - length)))
        engine = self
        out_f = m.out_features

        def run(batch: _Batch, n=n, src=src, m=m) -> Tensor:
            d = batch.delta[src]
            # (L + pads, C, O): the weight columns of a window are one contiguous block
            wp = engine._cached((n, "dense"), m.weight, lambda w: F.pad(
                w.view(out_f, c, length), pads).permute(2, 1, 0).contiguous())
            st = batch.starts(info.st) + pads[0]
            out = torch.empty(batch.r, out_f, dtype=d.dtype, device=d.device)
            flat_d = d.view(batch.r, width * c)
            cuts = np.flatnonzero(np.diff(st)) + 1  # positions sharing a window start
            e = batch.e
            for lo, hi in zip(np.r_[0, cuts], np.r_[cuts, len(st)]):
                s = int(st[lo])
                torch.mm(flat_d[lo * e:hi * e], wp[s:s + width].view(width * c, out_f),
                         out=out[lo * e:hi * e])
            return out.add_(engine.refs[n].index_select(0, batch.row_seq))

        return _Frontier(run, out_f * c * width)

    def _is_flatten(self, flat, src) -> bool:
        if flat.op == "call_module":
            m = self._module(flat)
            return type(m) is nn.Flatten and m.start_dim == 1 and m.end_dim in (-1, 2) and \
                flat.args[0] is src
        if flat.args[:1] != (src,):
            return False
        if (flat.op == "call_function" and flat.target is torch.flatten) or (
                flat.op == "call_method" and flat.target == "flatten"):
            start = flat.args[1] if len(flat.args) > 1 else flat.kwargs.get("start_dim", 0)
            end = flat.args[2] if len(flat.args) > 2 else flat.kwargs.get("end_dim", -1)
            return start == 1 and end in (-1, 2)
        if flat.op == "call_method" and flat.target in ("view", "reshape"):
            sizes = flat.args[1:]
            if len(sizes) == 1 and isinstance(sizes[0], (tuple, list)):
                sizes = tuple(sizes[0])
            if len(sizes) != 2 or sizes[1] != -1:
                return False
            b = sizes[0]
            return isinstance(b, fx.Node) and self._is_batch_query(b)
        return False

    def _is_batch_query(self, b) -> bool:
        if b.op == "call_method" and b.target == "size":
            return (len(b.args) > 1 and b.args[1] == 0) or b.kwargs.get("dim") == 0
        if b.op == "call_function" and b.target is operator.getitem and b.args[1] == 0:
            s = b.args[0]
            return isinstance(s, fx.Node) and (
                (s.op == "call_function" and s.target is getattr and s.args[1] == "shape")
                or (s.op == "call_method" and s.target == "size" and len(s.args) == 1))
        return False

    # ------------------------------------------------------------------ reference pass
    def set_sequences(self, x: Tensor, lo: int, extra_rows: tuple) -> None:
        """Compute and keep the reference activations of sequences ``lo..lo+len(x)-1``.

        Parameters
        ----------
        x : Tensor ``(n, A, L)``
            The unedited sequences, on the model's device and dtype.
        lo : int
            The index of ``x[0]`` among the call's inputs.
        extra_rows : tuple
            ``additional_forward_args`` for these sequences (per-example
            tensors already indexed).
        """
        plan = self.plan
        self.chunk_lo = lo
        self.refs, self.refs_cl = {}, {}
        env = {}
        keep = set(plan.local) | set(plan.frontier)
        with torch.no_grad():
            for n in self.nodes:
                if n.op == "output":
                    break
                if plan.kind.get(n) == "const":
                    env[n] = plan.const[n]
                    continue
                if n.op == "placeholder":
                    env[n] = x if n is self.x_node else extra_rows[self.placeholders.index(n) - 1]
                else:
                    get = env.__getitem__
                    env[n] = self._call(n, fx.node.map_arg(n.args, get),
                                        fx.node.map_arg(n.kwargs, get))
                if n in keep:  # copied: a later in-place op must not change it
                    self.refs[n] = env[n].clone() if n is not self.x_node else x
            for n in plan.local:
                if n not in self._ref_needed or (n is self.x_node and n not in plan.reads):
                    continue
                left, right = plan.reads.get(n, (0, 0))
                # channels-last, padded: a window is one contiguous block
                self.refs_cl[n] = F.pad(self.refs[n], (left, right)).transpose(1, 2).contiguous()

    def _window(self, batch: _Batch, node, st: np.ndarray, width: int, tag) -> Tensor:
        """Reference values of ``node`` over ``[st, st + width)``: ``(G, W, C)`` channels-last."""
        left = self.plan.reads[node][0]
        ref = self.refs_cl[node]
        lp, c = ref.shape[1], ref.shape[2]
        starts = batch.tensor(batch.starts(st) + left)
        out = self._buffer((node, "window", tag), (batch.g, width, c))
        for s, lo, hi in batch.segments:
            view = ref[s].as_strided((lp - width + 1, width, c), (c, c, 1))
            torch.index_select(view, 0, starts[lo:hi], out=out[lo:hi])
        return out

    # ------------------------------------------------------------------ forward
    def _run_input(self, batch: _Batch) -> Tensor:
        eb = batch.batch
        d = torch.zeros(batch.r, 1, self.a + 1, dtype=self.dtype, device=self.device)
        rows = torch.arange(batch.r, device=self.device)
        d[rows, 0, eb.new.reshape(-1).to(self.device)] = 1
        d[rows, 0, eb.old.repeat_interleave(batch.e).to(self.device)] -= 1
        return d[:, :, :self.a].contiguous()

    def _mask(self, batch: _Batch, node, d: Tensor) -> Tensor:
        """Zero a change outside ``[0, L)`` where the window reaches past an end."""
        rec = self.plan.local[node]
        if not rec.leaks or not rec.oob[batch.idx].any():
            return d
        if rec.alias:
            d = d.clone()
        st = batch.starts(rec.st)
        d4 = d.view(batch.g, batch.e, rec.width, d.shape[2])
        for g in np.flatnonzero(rec.oob[batch.idx]):
            lo, hi = -int(st[g]), rec.length - int(st[g])
            if lo > 0:
                d4[g, :, :min(lo, rec.width)] = 0
            if hi < rec.width:
                d4[g, :, max(hi, 0):] = 0
        return d

    def _splice(self, batch: _Batch, node) -> Tensor:
        """The full activation ``(R, C, L)`` of a local node: reference plus change."""
        if node in batch.full:
            return batch.full[node]
        if node is self.x_node:
            out = self._edited(batch)
            batch.full[node] = out
            return out
        rec = self.plan.local[node]
        left = self.plan.reads.get(node, (0, 0))[0]
        base = self.refs_cl[node][:, left:left + rec.length]
        out = base.index_select(0, batch.row_seq)  # (R, L, C)
        d4 = batch.delta[node].view(batch.g, batch.e, rec.width, -1)
        out4 = out.view(batch.g, batch.e, rec.length, -1)
        for g, s in enumerate(batch.starts(rec.st).tolist()):
            lo, hi = max(s, 0), min(s + rec.width, rec.length)
            if lo < hi:
                out4[g, :, lo:hi] += d4[g, :, lo - s:hi - s]
        out = out.transpose(1, 2)
        batch.full[node] = out
        return out

    def _edited(self, batch: _Batch) -> Tensor:
        x = self.refs[self.x_node]
        rows = batch.row_seq
        out = x.index_select(0, rows)
        eb = batch.batch
        r = torch.arange(batch.r, device=self.device)
        pos = eb.pos.repeat_interleave(batch.e).to(self.device)
        out[r, :, pos] = 0
        out[r, eb.new.reshape(-1).to(self.device), pos] = 1
        return out

    def forward(self, eb: EditBatch) -> Any:
        """The model's output for the edited sequences of ``eb`` (``G * E`` rows).

        The sequences of ``eb`` must lie in the range given to
        :meth:`set_sequences`.
        """
        plan = self.plan
        batch = _Batch(self, eb)
        with torch.no_grad():
            for n, rec in plan.local.items():
                if n is self.x_node and not self._x_change_read:
                    continue  # only read through the table of a convolution
                batch.delta[n] = self._mask(batch, n, rec.run(batch))
            env = batch.env

            def get(a):
                kind = plan.kind[a]
                if kind == "const":
                    return plan.const[a]
                if kind == "local":
                    return self._splice(batch, a)
                return env[a]

            for n in self.tail:
                kind = plan.kind[n]
                if kind == "shape":
                    env[n] = self._eval_shape(n, batch.r, get)
                elif kind == "frontier":
                    env[n] = plan.frontier[n].run(batch)
                elif n.op == "placeholder":
                    value = self.extra[self.placeholders.index(n) - 1]
                    env[n] = value.index_select(0, batch.batch.row_seq().to(value.device))
                else:
                    env[n] = self._call(n, fx.node.map_arg(n.args, get),
                                        fx.node.map_arg(n.kwargs, get))
            return fx.node.map_arg(self.output_node.args[0], get)


# ----------------------------------------------------------------------------- helpers
def _edit_table(w: Tensor, a: int, dilation: int, groups: int) -> Tensor:
    """``T[new * (A + 1) + old]``: a convolution's change for each single-base edit.

    ``(A * (A + 1), W * O)``, channels-last, for an input window of one
    position (``old = A`` is an ``N``): the difference of two weight columns,
    laid out at the output positions the edit reaches.
    """
    out_c, c_per_group, k = w.shape
    width = dilation * (k - 1) + 1
    cols = w.new_zeros(a + 1, width, out_c)  # cols[base, j, o]: output j gets W[o, base, t]
    full = w.new_zeros(out_c, a, k)
    per = out_c // groups
    for g in range(groups):
        full[g * per:(g + 1) * per, g * c_per_group:(g + 1) * c_per_group] = \
            w[g * per:(g + 1) * per]
    for t in range(k):
        cols[:a, (k - 1 - t) * dilation] = full[:, :, t].t()
    table = cols[:a, None] - cols[None, :]  # (A, A + 1, W, O)
    return table.reshape(a * (a + 1), width * out_c).contiguous()


def _place_add(batch: _Batch, out: Tensor, d: Tensor, offsets: np.ndarray,
               sign: float) -> Tensor:
    """``out[r, o_r:o_r + w] += sign * d[r]`` with one offset per position (group)."""
    w = d.shape[1]
    if (offsets == offsets[0]).all():
        o = int(offsets[0])
        target = out[:, o:o + w]
        target.add_(d) if sign > 0 else target.sub_(d)
        return out
    out4 = out.view(batch.g, batch.e, out.shape[1], -1)
    d4 = d.view(batch.g, batch.e, w, -1)
    for g, o in enumerate(offsets.tolist()):
        target = out4[g, :, o:o + w]
        target.add_(d4[g]) if sign > 0 else target.sub_(d4[g])
    return out


def _single(v) -> int:
    if isinstance(v, (tuple, list)):
        if len(v) != 1:
            raise FastPathUnsupported(f"expected one value for a 1-d layer, got {v!r}")
        return int(v[0])
    return v if isinstance(v, str) else int(v)


def _flat_args(n: fx.Node) -> list:
    out = []
    fx.node.map_aggregate((n.args, n.kwargs), out.append)
    return out


_SIGNATURES = {
    "conv1d": (("input", "weight", "bias", "stride", "padding", "dilation", "groups"),
               (None, 1, 0, 1, 1)),
    "max_pool1d": (("input", "kernel_size", "stride", "padding", "dilation", "ceil_mode",
                    "return_indices"), (None, 0, 1, False, False)),
    "avg_pool1d": (("input", "kernel_size", "stride", "padding", "ceil_mode",
                    "count_include_pad", "divisor_override"), (None, 0, False, True, None)),
    "pad": (("input", "pad", "mode", "value"), ("constant", None)),
    "dropout": (("input", "p", "training", "inplace"), (0.5, True, False)),
}


def _bind(name: str, n: fx.Node) -> dict | None:
    """The arguments of a call of the torch function ``name`` by name, defaults filled in.

    None when the call does not fit the signature (torch's C functions have
    no ``inspect`` signature, hence the table).
    """
    names, defaults = _SIGNATURES[name]
    required = len(names) - len(defaults)
    if len(n.args) > len(names):
        return None
    bound = dict(zip(names, n.args))
    for k, v in n.kwargs.items():
        if k not in names or k in bound:
            return None
        bound[k] = v
    for k, v in zip(names[required:], defaults):
        bound.setdefault(k, v)
    if any(k not in bound for k in names[:required]):
        return None
    return bound


def _per_example(value, n: int) -> bool:
    return isinstance(value, Tensor) and value.dim() > 0 and value.shape[0] == n


def _forward_params(model) -> list[inspect.Parameter] | None:
    try:
        params = list(inspect.signature(model.forward).parameters.values())
    except (TypeError, ValueError):
        return None
    if any(p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in params):
        return None
    return params


def _has_hooks(model: nn.Module) -> bool:
    glob = nn.modules.module
    if glob._global_forward_hooks or glob._global_forward_pre_hooks:
        return True
    return any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())


def build_fast_ism(model: Callable, x_example: Tensor, extra: tuple, n: int, start: int,
                   end: int) -> FastISM:
    """Trace ``model`` and plan the fast path for edits of ``[start, end)``.

    Parameters
    ----------
    model : nn.Module
        The model, in eval mode. Other callables are not traced.
    x_example : Tensor ``(1, A, L)``
        One input sequence, on the model's device and dtype (it gives the
        shapes).
    extra : tuple
        ``additional_forward_args``: tensors whose first axis is ``n`` hold
        one row per example (indexed per edit), other values are passed
        unchanged (Captum's rule) and fixed in the trace.
    n : int
        ``N``, the number of examples of the call.
    start, end : int
        The edited positions.

    Returns
    -------
    FastISM

    Raises
    ------
    FastPathUnsupported
        The model is not an ``nn.Module``, has forward hooks, cannot be traced
        by ``torch.fx``, updates a value in place that is read again, or has no
        position-local layer at its input; the message gives the reason.
    """
    if not isinstance(model, nn.Module):
        raise FastPathUnsupported("the forward function is not an nn.Module")
    if _has_hooks(model):
        raise FastPathUnsupported("the model has forward hooks")
    params = _forward_params(model)
    if not params:
        raise FastPathUnsupported("the model's forward takes *args or **kwargs")
    if len(extra) > len(params) - 1:
        raise FastPathUnsupported("more additional_forward_args than the model takes")
    concrete = {}
    for i, p in enumerate(params[1:]):
        if i < len(extra):
            if not _per_example(extra[i], n):
                concrete[p.name] = extra[i]
        elif p.default is not p.empty:
            concrete[p.name] = p.default
        else:
            raise FastPathUnsupported(f"the model's argument {p.name!r} is not given")
    try:
        gm = fx.symbolic_trace(model, concrete_args=concrete or None)
    except Exception as error:  # noqa: BLE001 - any tracing failure means the naive path
        first = str(error).strip().split("\n")[0][:200]
        raise FastPathUnsupported(f"torch.fx cannot trace the model ({type(error).__name__}: "
                                  f"{first})") from None
    shapes = _shapes(gm, x_example, extra, n)
    return FastISM(model, gm, x_example.shape[1], x_example.shape[2], start, end, extra, n,
                   x_example.device, x_example.dtype, shapes)


def _shapes(gm: fx.GraphModule, x_example: Tensor, extra: tuple, n_examples: int) -> dict:
    """The shape of every tensor node on a batch of two copies of ``x_example``."""
    x2 = x_example.expand(2, -1, -1).contiguous()
    rows = torch.zeros(2, dtype=torch.long)
    env, shapes = {}, {}
    placeholders = [n for n in gm.graph.nodes if n.op == "placeholder"]
    with torch.no_grad():
        for n in gm.graph.nodes:
            if n.op == "output":
                break
            if n.op == "placeholder":
                i = placeholders.index(n)
                if i == 0:
                    env[n] = x2
                elif i - 1 < len(extra):
                    v = extra[i - 1]
                    env[n] = v.index_select(0, rows.to(v.device)) if _per_example(
                        v, n_examples) else v
                else:
                    env[n] = n.args[0] if n.args else None
            else:
                args = fx.node.map_arg(n.args, env.__getitem__)
                kwargs = fx.node.map_arg(n.kwargs, env.__getitem__)
                try:
                    if n.op == "call_module":
                        env[n] = gm.get_submodule(n.target)(*args, **kwargs)
                    elif n.op == "call_function":
                        env[n] = n.target(*args, **kwargs)
                    elif n.op == "call_method":
                        env[n] = getattr(args[0], n.target)(*args[1:], **kwargs)
                    else:
                        obj = gm
                        for part in n.target.split("."):
                            obj = getattr(obj, part)
                        env[n] = obj
                except Exception as error:  # noqa: BLE001
                    raise FastPathUnsupported(
                        f"the traced model failed at {n.name!r} ({type(error).__name__})"
                    ) from None
            if isinstance(env[n], Tensor):
                shapes[n] = tuple(env[n].shape)
    return shapes
