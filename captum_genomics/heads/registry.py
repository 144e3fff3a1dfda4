"""A registry mapping attention module types to head adapters.

Immutable: :meth:`HeadAdapterRegistry.with_adapter` returns a new registry,
so registering an adapter for your own module never changes global state::

    from functools import partial
    from captum_genomics.heads import HeadAxisAdapter, default_head_adapters

    registry = default_head_adapters().with_adapter(
        MyAttention, partial(HeadAxisAdapter, n_heads=8))

:func:`default_head_adapters` knows ``torch.nn.MultiheadAttention`` and
``torch.nn.TransformerEncoderLayer`` (its ``self_attn``, labelled
``"<layer path>.self_attn"``); modules with a head axis or out-projections
called as modules are too generic to recognise by type, so they are chosen
explicitly, per layer
(``layers={"blocks.0.attn.proj": partial(OutputProjectionAdapter, n_heads=4)}``
in :class:`~captum_genomics.methods.HeadAblationExplainedVariance`) or per
type through :meth:`~HeadAdapterRegistry.with_adapter`.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any, Callable, Iterator, Mapping

from torch import nn

from captum_genomics.heads.adapters import (
    HeadAdapter,
    MultiheadAttentionAdapter,
    TransformerEncoderLayerAdapter,
    UnsupportedAttentionError,
)

__all__ = ["AdapterFactory", "HeadAdapterRegistry", "default_head_adapters"]

AdapterFactory = Callable[..., HeadAdapter]
"""``factory(module, name, **options) -> HeadAdapter``: an adapter class or a partial of one."""


class HeadAdapterRegistry:
    """Immutable map from module types to head-adapter factories.

    Lookup walks the module's class hierarchy (``type(module).__mro__``), so
    an adapter registered for a class also serves its subclasses unless a
    subclass has its own.

    Parameters
    ----------
    adapters : mapping of type -> factory, optional
        ``factory(module, name, **options)`` returns a :class:`HeadAdapter`.
        Default: empty.

    Raises
    ------
    TypeError
        If a key is not a subclass of ``nn.Module`` or a factory is not
        callable.
    """

    def __init__(self, adapters: Mapping[type, AdapterFactory] | None = None) -> None:
        table = dict(adapters or {})
        for module_type, factory in table.items():
            _check_entry(module_type, factory)
        self._adapters: Mapping[type, AdapterFactory] = MappingProxyType(table)

    def with_adapter(self, module_type: type, factory: AdapterFactory) -> "HeadAdapterRegistry":
        """A new registry with ``factory`` registered for ``module_type`` (replacing any).

        Parameters
        ----------
        module_type : type
            A subclass of ``torch.nn.Module``.
        factory : callable
            ``factory(module, name, **options) -> HeadAdapter``, e.g. a
            :class:`HeadAdapter` subclass or ``functools.partial`` of one.

        Returns
        -------
        HeadAdapterRegistry
            ``self`` is unchanged.
        """
        _check_entry(module_type, factory)
        return HeadAdapterRegistry({**self._adapters, module_type: factory})

    def factory_for(self, module: nn.Module) -> AdapterFactory | None:
        """The factory registered for ``type(module)`` or its nearest base, or None."""
        for cls in type(module).__mro__:
            if cls in self._adapters:
                return self._adapters[cls]
        return None

    def adapter_for(self, module: nn.Module, name: str, **options: Any) -> HeadAdapter:
        """The head adapter for ``module``.

        Parameters
        ----------
        module : nn.Module
        name : str
            The layer's dotted name (for messages and results).
        **options
            Passed to the factory.

        Returns
        -------
        HeadAdapter

        Raises
        ------
        UnsupportedAttentionError
            If no adapter is registered for the module's type (or a base). The
            message names the layer, its type, the registered types, and how
            to register one.
        TypeError
            If the factory does not return a :class:`HeadAdapter`.
        """
        factory = self.factory_for(module)
        if factory is None:
            known = ", ".join(t.__name__ for t in self._adapters) or "none"
            kind = type(module).__name__
            raise UnsupportedAttentionError(
                f"Layer {name!r} is a {kind}, which is not an attention module with a head "
                f"adapter (registered: {known}). Name an adapter for this layer, e.g. "
                f"layers={{{name!r}: partial(HeadAxisAdapter, n_heads=H)}} for a module whose "
                "output has a head axis, or partial(OutputProjectionAdapter, n_heads=H) for a "
                "Linear out-projection; or register one for the type: "
                f"default_head_adapters().with_adapter({kind}, factory)."
            )
        adapter = factory(module, name, **options)
        if not isinstance(adapter, HeadAdapter):
            raise TypeError(
                f"The adapter factory for {type(module).__name__} returned a "
                f"{type(adapter).__name__}, expected a HeadAdapter."
            )
        return adapter

    def __contains__(self, module_type: object) -> bool:
        return module_type in self._adapters

    def __iter__(self) -> Iterator[type]:
        return iter(self._adapters)

    def __len__(self) -> int:
        return len(self._adapters)

    def __repr__(self) -> str:
        items = ", ".join(f"{t.__name__}: {getattr(f, '__name__', repr(f))}"
                          for t, f in self._adapters.items())
        return f"HeadAdapterRegistry({{{items}}})"


def _check_entry(module_type: Any, factory: Any) -> None:
    if not (isinstance(module_type, type) and issubclass(module_type, nn.Module)):
        raise TypeError(
            f"`module_type` must be a subclass of torch.nn.Module, got {module_type!r}."
        )
    if not callable(factory):
        raise TypeError(
            f"`factory` for {module_type.__name__} must be callable "
            f"(module, name, **options) -> HeadAdapter, got {type(factory).__name__}."
        )


def default_head_adapters() -> HeadAdapterRegistry:
    """The built-in registry of attention modules and their head adapters.

    ``torch.nn.MultiheadAttention`` -> :class:`MultiheadAttentionAdapter`;
    ``torch.nn.TransformerEncoderLayer`` -> :class:`TransformerEncoderLayerAdapter`
    (the heads of its ``self_attn``, named ``"<layer path>.self_attn"``).

    Returns
    -------
    HeadAdapterRegistry
        A fresh (immutable) registry; extend it with ``with_adapter``.
    """
    return HeadAdapterRegistry({nn.MultiheadAttention: MultiheadAttentionAdapter,
                                nn.TransformerEncoderLayer: TransformerEncoderLayerAdapter})
