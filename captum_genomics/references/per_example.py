"""Per-example references for a method that attributes a batch in blocks of examples.

An attribution method takes ``references`` from the user as tensors (``K``
references per example, one tensor per input) or as a generator
specification (see :func:`~captum_genomics.references.resolve_reference_generator`).
:class:`PerExampleReferences` validates either once and hands out the
references of any range of examples: slices of the tensors, or references
generated for those examples only (seeded per example, so they do not depend
on the range), the last range kept for the next blocks of the same examples.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from captum_genomics._utils.checks import check_finite, check_positive_int
from captum_genomics.references.generators import resolve_reference_generator

__all__ = ["PerExampleReferences"]


class PerExampleReferences:
    """Per-example references for a range of examples, from tensors or a generator.

    Parameters
    ----------
    references : Tensor ``(N, K, *shape_j)``, tuple of them, or a generator specification
        Tensors: one per input (a tuple, or a single tensor for one input),
        ``K >= 1`` references per example, the same ``K`` for every input;
        floating values must be finite. Anything else (None, a name, a
        :class:`~captum_genomics.references.ReferenceGenerator`, a callable,
        or a tuple of these with one entry per input) is resolved with
        :func:`~captum_genomics.references.resolve_reference_generator`; a
        single specification serves every input.
    inputs : tuple of Tensor ``(N, *shape_j)``
        The examples (references are generated from them).
    n_references : int
        ``K`` when the references are generated, ``>= 1``; ignored for tensors.
    random_state : None, int or numpy Generator
        Passed to the generators.
    example_indices : Tensor ``(N,)`` of int64
        Each example's index in the full data set, passed to the generators
        for seeding.

    Attributes
    ----------
    k : int
        ``K``, references per example.
    tensors : tuple of Tensor or None
        The given references; None when they are generated.
    generators : tuple of ReferenceGenerator or None
        One per input; None when the references are given as tensors.

    Raises
    ------
    ValueError
        If the number of tensors (or specifications) is not the number of
        inputs, a tensor is not ``(N, K, *input.shape[1:])``, ``K = 0``, the
        tensors disagree on ``K``, a tensor holds NaN or Inf, or
        ``n_references`` is not an integer ``>= 1`` (generated references).
    TypeError
        For a specification that is neither a tensor, a known name nor callable.
    """

    def __init__(self, references: Any, inputs: tuple[Tensor, ...], n_references: int,
                 random_state: Any, example_indices: Tensor):
        self.inputs = inputs
        self.random_state = random_state
        self.example_indices = example_indices
        n = inputs[0].shape[0]
        given = references
        if isinstance(given, Tensor) or (
            isinstance(given, (tuple, list)) and given and all(isinstance(r, Tensor) for r in given)
        ):
            tensors = (given,) if isinstance(given, Tensor) else tuple(given)
            if len(tensors) != len(inputs):
                raise ValueError(
                    f"`references` must hold one tensor per input ({len(inputs)}), got "
                    f"{len(tensors)}."
                )
            k = None
            for j, (ref, x) in enumerate(zip(tensors, inputs)):
                name = "references" if len(inputs) == 1 else f"references[{j}]"
                if ref.ndim != x.ndim + 1 or ref.shape[0] != n or ref.shape[2:] != x.shape[1:]:
                    shape = (n, "K", *x.shape[1:])
                    raise ValueError(
                        f"`{name}` must have shape (N, K, *input.shape[1:]) = "
                        f"({', '.join(map(str, shape))}), got {tuple(ref.shape)}."
                    )
                if ref.shape[1] == 0:
                    raise ValueError(f"`{name}` has K = 0 references per example; need K >= 1.")
                if ref.dtype != x.dtype:
                    label = "inputs" if len(inputs) == 1 else f"inputs[{j}]"
                    raise TypeError(
                        f"`{name}` has dtype {ref.dtype} but `{label}` has dtype {x.dtype}; "
                        f"pass references of the inputs' dtype (`{name}.to({x.dtype})`)."
                    )
                if k is not None and ref.shape[1] != k:
                    raise ValueError(
                        f"`references` tensors disagree on K: {k} vs {ref.shape[1]} ({name})."
                    )
                k = ref.shape[1]
                check_finite(ref, name)
            self.tensors, self.generators, self.k = tensors, None, int(k)
        else:
            check_positive_int(n_references, "n_references")
            specs = tuple(given) if isinstance(given, (tuple, list)) else (given,) * len(inputs)
            if len(specs) != len(inputs):
                raise ValueError(
                    f"`references` must hold one entry per input ({len(inputs)}), got "
                    f"{len(specs)}."
                )
            self.tensors = None
            self.generators = tuple(resolve_reference_generator(s) for s in specs)
            for j, (gen, x) in enumerate(zip(self.generators, inputs)):
                check = getattr(gen, "check_inputs", None)
                if check is not None:  # on the whole batch, named as the user named it
                    check(x, "inputs" if len(inputs) == 1 else f"inputs[{j}]")
            self.k = int(n_references)
        self._cache: tuple[int, int, tuple[Tensor, ...]] | None = None

    def for_examples(self, lo: int, hi: int) -> tuple[Tensor, ...]:
        """References of examples ``lo..hi-1``: tuple of ``(hi - lo, K, *shape)``.

        Generated references are cast to the input's dtype and kept, so a
        later call for a sub-range of the same examples slices them instead
        of generating again.
        """
        if self.tensors is not None:
            return tuple(r[lo:hi] for r in self.tensors)
        if self._cache is not None and self._cache[0] <= lo and hi <= self._cache[1]:
            c_lo = self._cache[0]
            return tuple(r[lo - c_lo:hi - c_lo] for r in self._cache[2])
        refs = []
        for j, (gen, x) in enumerate(zip(self.generators, self.inputs)):
            try:
                out = gen(x[lo:hi], self.k, example_indices=self.example_indices[lo:hi],
                          random_state=self.random_state)
            except (ValueError, TypeError) as error:
                # the generator names its own argument; the user passed it as `inputs`
                message = str(error)
                if "`sequences`" not in message:
                    raise
                label = "inputs" if len(self.inputs) == 1 else f"inputs[{j}]"
                what = getattr(gen, "__name__", type(gen).__name__)
                raise type(error)(
                    message.replace("`sequences`", f"`{label}`")
                    + f" (the references are generated from `{label}` by {what})"
                ) from error
            refs.append(out.to(x.dtype))
        self._cache = (lo, hi, tuple(refs))
        return self._cache[2]
