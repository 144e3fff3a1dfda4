"""Reference generators: small callables that attribution methods hold.

Every generator is called as ``generator(inputs, n_references, *,
example_indices=None, random_state=None)`` and returns references shaped
``(N, K, 4, L)``. :func:`resolve_reference_generator` turns what a user
passes (None, a name, a generator, a plain function) into one.
"""

from __future__ import annotations

import inspect
from typing import Callable

from torch import Tensor

from captum_genomics._utils.checks import check_one_hot, check_positive_int
from captum_genomics.references import _draw

# The drawing functions (shuffle.py, simple.py) are imported inside __call__:
# they load numba, which a method given reference tensors never needs.

__all__ = [
    "REFERENCE_NAMES",
    "CallableReferences",
    "DinucleotideShuffle",
    "GCMatchedReferences",
    "KmerShuffle",
    "ReferenceGenerator",
    "UniformReferences",
    "ZeroReferences",
    "resolve_reference_generator",
]


def _check_bound(value, name: str):
    if value is None:
        return None
    if isinstance(value, bool) or not hasattr(value, "__index__"):
        raise ValueError(f"`{name}` must be an integer or None, got {value!r}.")
    return int(value.__index__())


def _fmt_window(start, end) -> str:
    parts = []
    if start is not None:
        parts.append(f"start={start}")
    if end is not None:
        parts.append(f"end={end}")
    return ", ".join(parts)


class ReferenceGenerator:
    """Base class of the reference generators.

    Subclasses implement :meth:`__call__`. A generator holds only its
    settings; randomness comes from the ``random_state`` of each call, so one
    instance can be shared between methods and threads.
    """

    def __call__(
        self,
        inputs: Tensor,
        n_references: int,
        *,
        example_indices=None,
        random_state=None,
    ) -> Tensor:
        """Return references for ``inputs``.

        Parameters
        ----------
        inputs
            One-hot DNA, shape ``(N, 4, L)``.
        n_references
            ``K``, references per example, ``>= 1``.
        example_indices
            Integers, shape ``(N,)``: each example's index in the full data
            set, for seeding. Default ``arange(N)``.
        random_state
            None, an integer seed or a ``numpy.random.Generator``.

        Returns
        -------
        Tensor
            Shape ``(N, K, 4, L)``, dtype and device of ``inputs``.
        """
        raise NotImplementedError

    def check_inputs(self, inputs: Tensor, name: str = "inputs") -> None:
        """Raise a clear error naming ``name`` if ``inputs`` cannot be used.

        Called once on the user's whole batch before any reference is drawn,
        so the message names the user's argument and shape. The built-in
        generators need one-hot DNA ``(N, 4, L)`` (all-zero ``N`` columns
        allowed).

        Raises
        ------
        TypeError, ValueError
            If ``inputs`` is not a real tensor ``(N, 4, L)`` of one-hot columns.
        """
        _draw.check_sequences(inputs, name)
        check_one_hot(inputs, name, dim=1)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class _WindowedGenerator(ReferenceGenerator):
    """A seeded generator that draws only in ``[..., start:end]``.

    Subclasses implement :meth:`_generate`, which receives the inputs,
    ``n_references`` and the keywords ``start``, ``end``, ``random_state``
    and ``example_indices``.
    """

    def __init__(self, start: int | None = None, end: int | None = None):
        self.start = _check_bound(start, "start")
        self.end = _check_bound(end, "end")

    def _generate(self, inputs: Tensor, n_references: int, **kwargs) -> Tensor:
        raise NotImplementedError

    def __call__(self, inputs, n_references, *, example_indices=None, random_state=None):
        return self._generate(inputs, n_references, start=self.start, end=self.end,
                              random_state=random_state, example_indices=example_indices)


class KmerShuffle(_WindowedGenerator):
    """Uniform k-mer-preserving shuffles (:func:`~captum_genomics.references.kmer_shuffle`).

    Parameters
    ----------
    k
        Length of the preserved k-mers, ``>= 1``. Default 2.
    start, end
        Shuffle only ``[..., start:end]``. Default: the whole sequence.

    Raises
    ------
    ValueError
        If ``k`` is not an integer ``>= 1`` or ``start``/``end`` is not an
        integer or None (their range is checked at call time).
    """

    def __init__(self, k: int = 2, start: int | None = None, end: int | None = None):
        self.k = check_positive_int(k, "k")
        super().__init__(start, end)

    def _generate(self, inputs, n_references, **kwargs):
        from captum_genomics.references.shuffle import kmer_shuffle

        return kmer_shuffle(inputs, n_references, self.k, **kwargs)

    def __repr__(self) -> str:
        extra = _fmt_window(self.start, self.end)
        return f"KmerShuffle(k={self.k}{', ' + extra if extra else ''})"


class DinucleotideShuffle(KmerShuffle):
    """Uniform dinucleotide shuffles: :class:`KmerShuffle` with ``k=2``.

    The default reference generator of the package (Altschul & Erickson
    1985; drawn uniformly as in Kandel et al. 1996).

    Parameters
    ----------
    start, end
        Shuffle only ``[..., start:end]``. Default: the whole sequence.
    """

    def __init__(self, start: int | None = None, end: int | None = None):
        super().__init__(2, start, end)

    def __repr__(self) -> str:
        return f"DinucleotideShuffle({_fmt_window(self.start, self.end)})"


class ZeroReferences(ReferenceGenerator):
    """All-zero references (:func:`~captum_genomics.references.zero_references`).

    Deterministic: ``example_indices`` and ``random_state`` are ignored.
    """

    def __call__(self, inputs, n_references, *, example_indices=None, random_state=None):
        from captum_genomics.references.simple import zero_references

        return zero_references(inputs, n_references)


class UniformReferences(ReferenceGenerator):
    """0.25 per base, zero at ``N`` positions
    (:func:`~captum_genomics.references.uniform_references`).

    Deterministic: ``example_indices`` and ``random_state`` are ignored.
    """

    def __call__(self, inputs, n_references, *, example_indices=None, random_state=None):
        from captum_genomics.references.simple import uniform_references

        return uniform_references(inputs, n_references)


class GCMatchedReferences(_WindowedGenerator):
    """iid sequences with each example's GC content
    (:func:`~captum_genomics.references.gc_matched_references`).

    Parameters
    ----------
    start, end
        Randomize (and measure GC) only in ``[..., start:end]``. Default: all.
    """

    def _generate(self, inputs, n_references, **kwargs):
        from captum_genomics.references.simple import gc_matched_references

        return gc_matched_references(inputs, n_references, **kwargs)

    def __repr__(self) -> str:
        return f"GCMatchedReferences({_fmt_window(self.start, self.end)})"


class CallableReferences(ReferenceGenerator):
    """Wrap a user function ``fn(inputs, n_references, ...)`` as a generator.

    ``example_indices`` and ``random_state`` are passed as keywords only if
    ``fn``'s signature accepts them (by name or through ``**kwargs``). The
    result is checked to be a tensor of shape ``(N, K, 4, L)`` on the
    device of ``inputs``.

    Parameters
    ----------
    fn
        The user's callable.

    Raises
    ------
    TypeError
        At call time, if ``fn`` does not return a tensor.
    ValueError
        At call time, if the returned tensor has the wrong shape or device.
    """

    def __init__(self, fn: Callable):
        if not callable(fn):
            raise TypeError(f"`fn` must be callable, got {type(fn).__name__}.")
        self.fn = fn
        self._passes = _accepted_keywords(fn, ("example_indices", "random_state"))

    def check_inputs(self, inputs: Tensor, name: str = "inputs") -> None:
        """Only the shape ``(N, 4, L)``: the user's function decides what values it accepts."""
        _draw.check_sequences(inputs, name)

    def __call__(self, inputs, n_references, *, example_indices=None, random_state=None):
        given = {"example_indices": example_indices, "random_state": random_state}
        kwargs = {key: given[key] for key in self._passes}
        refs = self.fn(inputs, n_references, **kwargs)
        name = _callable_name(self.fn)
        if not isinstance(refs, Tensor):
            raise TypeError(
                f"reference generator {name} must return a torch.Tensor, got "
                f"{type(refs).__name__}."
            )
        expected = (int(inputs.shape[0]), int(n_references), 4, int(inputs.shape[-1]))
        if tuple(refs.shape) != expected:
            raise ValueError(
                f"reference generator {name} returned shape {tuple(refs.shape)}; "
                f"expected (N, K, 4, L) = {expected} for inputs of shape "
                f"{tuple(inputs.shape)} and n_references={n_references}."
            )
        if refs.device != inputs.device:
            raise ValueError(
                f"reference generator {name} returned references on {refs.device}, "
                f"but the inputs are on {inputs.device}; return them on the inputs' device."
            )
        return refs

    def __repr__(self) -> str:
        return f"CallableReferences({_callable_name(self.fn)})"


def _callable_name(fn) -> str:
    return getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn)


def _accepted_keywords(fn, names) -> tuple[str, ...]:
    """The ``names`` that ``fn`` accepts as keyword arguments."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return ()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return tuple(names)
    ok = {
        p.name
        for p in params
        if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    }
    return tuple(n for n in names if n in ok)


#: Names accepted by :func:`resolve_reference_generator`.
REFERENCE_NAMES = {
    "dinucleotide": DinucleotideShuffle,
    "shuffle": lambda: KmerShuffle(k=1),
    "zeros": ZeroReferences,
    "uniform": UniformReferences,
    "gc": GCMatchedReferences,
}


def resolve_reference_generator(spec=None, name: str = "references") -> ReferenceGenerator:
    """Turn a user's reference specification into a :class:`ReferenceGenerator`.

    Parameters
    ----------
    spec
        - None (default): :class:`DinucleotideShuffle` ``()``;
        - a name: ``"dinucleotide"`` (:class:`DinucleotideShuffle`),
          ``"shuffle"`` (:class:`KmerShuffle` with ``k=1``, a plain
          permutation), ``"zeros"`` (:class:`ZeroReferences`), ``"uniform"``
          (:class:`UniformReferences`), ``"gc"`` (:class:`GCMatchedReferences`);
        - a :class:`ReferenceGenerator`: returned as is;
        - any other callable ``fn(inputs, n_references[, example_indices=...,
          random_state=...])``: wrapped in :class:`CallableReferences`.
    name
        The argument name used in error messages. Default ``"references"``.

    Returns
    -------
    ReferenceGenerator

    Raises
    ------
    ValueError
        For an unknown name (the message lists the accepted names).
    TypeError
        For anything else that is not callable (e.g. a tensor).
    """
    if spec is None:
        return DinucleotideShuffle()
    if isinstance(spec, ReferenceGenerator):
        return spec
    if isinstance(spec, str):
        factory = REFERENCE_NAMES.get(spec)
        if factory is None:
            raise ValueError(
                f"`{name}`: unknown reference generator {spec!r}; accepted names are "
                f"{sorted(REFERENCE_NAMES)}, or pass a ReferenceGenerator or a "
                "callable fn(inputs, n_references) -> (N, K, 4, L)."
            )
        return factory()
    if callable(spec):
        return CallableReferences(spec)
    raise TypeError(
        f"`{name}` must be None, one of {sorted(REFERENCE_NAMES)}, a "
        f"ReferenceGenerator or a callable fn(inputs, n_references) -> (N, K, 4, L); "
        f"got {type(spec).__name__}."
    )
