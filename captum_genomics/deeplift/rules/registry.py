"""The rule registry: which DeepLIFT rule handles which torch operation.

Operations are matched by name, so one entry covers every way of calling an
op: ``torch.relu``, ``torch.nn.functional.relu``, ``Tensor.relu``, the in-place
``relu_`` and the ``nn.ReLU`` module (and any user subclass of it, which calls
the same function). Registries are immutable values: :meth:`RuleRegistry.with_rules`
and :meth:`RuleRegistry.without` return new registries, so extending or
overriding rules for one call never changes another call, and there is no
global state.

Operations that are neither in the registry nor known to be linear (see
``LINEAR_OPS`` in :mod:`captum_genomics.deeplift.rules.ops`) are reported when
they act on input-dependent tensors: a warning that names them, or
:class:`~captum_genomics.deeplift.rules.base.UnsupportedOperationError` under
``strict=True``. They are never silently treated as linear.
"""

from __future__ import annotations

from typing import Callable, Iterable, Iterator, Mapping, Union

from captum_genomics.deeplift.rules.base import Rule
from captum_genomics.deeplift.rules.conv import (
    Conv1dInputGradient,
    SharedBatchNorm,
    SharedLinear,
)
from captum_genomics.deeplift.rules.glu import GLU
from captum_genomics.deeplift.rules.maxpool import MaxPool, MaxReduce
from captum_genomics.deeplift.rules.normalization import Normalization
from captum_genomics.deeplift.rules.ops import ALIASES, ELEMENTWISE_OPS, normalize_op_name
from captum_genomics.deeplift.rules.product import Product
from captum_genomics.deeplift.rules.rescale import Rescale
from captum_genomics.deeplift.rules.softmax import Softmax

__all__ = [
    "ALIASES",
    "normalize_op_name",
    "RuleRegistry",
    "default_rules",
    "op_name",
]


def op_name(func: Callable) -> str:
    """The registry name of a torch function.

    ``__name__`` without leading/trailing underscores, with aliases resolved:
    ``torch.relu``, ``F.relu``, ``Tensor.relu`` and ``Tensor.relu_`` all map to
    ``"relu"``; ``torch.special.expit`` maps to ``"sigmoid"``;
    ``Tensor.__getitem__`` maps to ``"getitem"``.
    """
    name = getattr(func, "__name__", None) or type(func).__name__
    return normalize_op_name(name)


Key = Union[str, Callable]


class RuleRegistry(Mapping[str, Rule]):
    """An immutable mapping from op name to :class:`~captum_genomics.deeplift.rules.Rule`.

    Parameters
    ----------
    rules
        Mapping from an op name (``"gelu"``) or a torch function
        (``torch.nn.functional.gelu``; its name is used) to a rule.

    Examples
    --------
    >>> from captum_genomics.deeplift.rules import default_rules, Rescale
    >>> rules = default_rules().with_rules({"my_activation": Rescale()})
    >>> "gelu" in default_rules().without("gelu")
    False
    """

    def __init__(self, rules: Mapping[Key, Rule] | None = None):
        table: dict[str, Rule] = {}
        for key, rule in (rules or {}).items():
            if not isinstance(rule, Rule):
                raise TypeError(
                    f"`rules[{key!r}]` must be a captum_genomics.deeplift.rules.Rule, got "
                    f"{type(rule).__name__}."
                )
            table[normalize_op_name(key) if isinstance(key, str) else op_name(key)] = rule
        self._rules = table

    def __getitem__(self, name: str) -> Rule:
        return self._rules[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._rules)

    def __len__(self) -> int:
        return len(self._rules)

    def lookup(self, func: Callable) -> Rule | None:
        """The rule for ``func`` (matched by :func:`op_name`), or None."""
        return self._rules.get(op_name(func))

    def with_rules(self, rules: Mapping[Key, Rule]) -> "RuleRegistry":
        """A new registry with ``rules`` added; an existing name is overridden."""
        merged: dict[Key, Rule] = dict(self._rules)
        merged.update(RuleRegistry(rules)._rules)
        return RuleRegistry(merged)

    def without(self, *names: Key) -> "RuleRegistry":
        """A new registry without the given op names (or functions)."""
        drop = {normalize_op_name(n) if isinstance(n, str) else op_name(n) for n in names}
        return RuleRegistry({k: v for k, v in self._rules.items() if k not in drop})

    def __repr__(self) -> str:
        return f"RuleRegistry({len(self)} ops)"


def default_rules(eps: float = 1e-6) -> RuleRegistry:
    """A fresh registry with every built-in rule.

    Parameters
    ----------
    eps
        The secant threshold passed to the rescale, softmax and GLU rules.
        Default ``1e-6`` (tangermeme's).

    Returns
    -------
    RuleRegistry
        Rescale for ``ELEMENTWISE_OPS``; the exact max-pool rule for
        ``max_pool{1,2,3}d`` and ``adaptive_max_pool{1,2,3}d``; the max-over-axis
        rule for ``max``/``amax``; exact softmax, log-softmax, LayerNorm,
        RMSNorm and GLU rules; the midpoint product rule for ``mul``,
        ``matmul``, ``mm`` and ``bmm`` of two input-dependent tensors; and a
        faster input-gradient for stride-1 ``conv1d``, and convolutions, dense layers
        and eval-mode batch norm computed once per example (linear ops; see
        :mod:`captum_genomics.deeplift.rules.conv`).
    """
    rescale = Rescale(eps)
    rules: dict[Key, Rule] = {name: rescale for name in ELEMENTWISE_OPS}
    pool = MaxPool()
    for name in ("max_pool1d", "max_pool2d", "max_pool3d", "adaptive_max_pool1d",
                 "adaptive_max_pool2d", "adaptive_max_pool3d", "max_pool1d_with_indices",
                 "max_pool2d_with_indices", "max_pool3d_with_indices",
                 "adaptive_max_pool1d_with_indices", "adaptive_max_pool2d_with_indices"):
        rules[name] = pool
    rules["max"] = rules["amax"] = MaxReduce()
    rules["softmax"] = Softmax(log=False, eps=eps)
    rules["log_softmax"] = Softmax(log=True, eps=eps)
    rules["layer_norm"] = Normalization(center=True)
    rules["rms_norm"] = Normalization(center=False)
    rules["glu"] = GLU(eps)
    product = Product()
    for name in ("mul", "matmul", "mm", "bmm"):
        rules[name] = product
    rules["conv1d"] = Conv1dInputGradient()
    rules["batch_norm"] = SharedBatchNorm()
    shared = SharedLinear()
    for name in ("conv2d", "conv3d", "linear"):
        rules[name] = shared
    return RuleRegistry(rules)


def iter_rule_names(registry: RuleRegistry) -> Iterable[str]:
    """Sorted op names of ``registry`` (for docs and error messages)."""
    return sorted(registry)
