"""The rescale rule in one pass (numba).

The rescale rule's multiplier ``where(|x - r| < eps, f'(x), (f(x) - f(r)) / (x - r))``
takes eight passes over the ``R * n`` pair activations when written with torch
operations (subtractions, a division, ``abs``, a comparison, ``any``, ``where``)
and one here: each element is read once and its multiplier written once, with
the same float operations in the same order as the torch version (so the same
bits). For ReLU the kernel needs only ``x`` and ``r`` and runs inside the
backward (:func:`relu_backward`, nothing stored but the inputs); for any other
elementwise function it takes ``f(x)``, ``f'(x)`` (of the ``n`` examples) and
``f(r)`` (recorded in the reference pass) and returns the multipliers
(:func:`secant_multipliers`).
Rows are split over the package's thread pool
(:func:`captum_genomics.references._draw.parallel`); compilation is cached like
the shuffles' kernels. Tensors on other devices, other dtypes (half precision)
and other activations take the torch path in
:mod:`captum_genomics.deeplift.rules.rescale`.
"""

from __future__ import annotations

import numpy as np
from torch import Tensor

from captum_genomics.deeplift.layout import as_rows, from_rows, row_order
from captum_genomics.references._draw import parallel
from captum_genomics.references._kernels import _kernel

__all__ = ["relu_backward", "secant_multipliers"]


@_kernel(error_model="numpy")
def _relu_backward_rows(x, r, grad, eps, consts, out, lo, hi):
    # x (n, M) inputs; r (P, M) references of the P = R * n pairs, row i against example
    # i % n; grad, out (P, M): out = grad * where(|x - r| < eps, relu'(x), secant), with
    # the torch rule's float operations in its order. Branch-free inner loop (selects), so
    # LLVM vectorizes it; error_model="numpy": a division by zero gives inf/nan (never
    # taken: |d| < eps there)
    n = x.shape[0]
    m = x.shape[1]
    zero = consts[0]
    one = consts[1]
    for i in range(lo, hi):
        e = i % n
        for j in range(m):
            xv = x[e, j]
            rv = r[i, j]
            d = xv - rv
            a = xv if xv > zero else zero
            b = rv if rv > zero else zero
            secant = (a - b) / d
            slope = zero if xv <= zero else one
            out[i, j] = grad[i, j] * (slope if abs(d) < eps else secant)


@_kernel(error_model="numpy")
def _secant_rows(x, yx, slope, r, yr, eps, out, lo, hi):
    # x, yx, slope (n, M): inputs, f(inputs), f'(inputs); r, yr (P, M): references and
    # f(references) of the P = R * n pairs, row i against example i % n; out (P, M)
    n = x.shape[0]
    m = x.shape[1]
    for i in range(lo, hi):
        e = i % n
        for j in range(m):
            d = x[e, j] - r[i, j]
            secant = (yx[e, j] - yr[i, j]) / d
            out[i, j] = slope[e, j] if abs(d) < eps else secant


def secant_multipliers(x: Tensor, yx: Tensor, slope: Tensor, r: Tensor, yr: Tensor,
                       eps: float) -> Tensor:
    """Rescale multipliers of an elementwise ``f`` for every example-reference pair, in one pass.

    Parameters
    ----------
    x, yx, slope : Tensor ``(n, *shape)``
        The inputs of ``f`` on the examples, ``f(x)`` and ``f'(x)`` (CPU, float32 or
        float64, one dtype).
    r, yr : Tensor ``(R, n, *shape)``
        The inputs of ``f`` on the references (reference-major) and ``f(r)``.
    eps : float
        Below ``|x - r| < eps`` the derivative ``f'(x)`` replaces the secant.

    Returns
    -------
    Tensor ``(R, n, *shape)``: ``(f(x) - f(r)) / (x - r)``, or ``f'(x)`` where
    ``|x - r| < eps``; the same bits as the torch version in
    :class:`~captum_genomics.deeplift.rules.rescale.Rescale`.
    """
    refs = r.flatten(0, 1)
    order = row_order(refs)  # every operand is read in the references' memory order
    xa, ya, sa = (as_rows(t, order) for t in (x, yx, slope.to(x.dtype)))
    ra, yra = as_rows(refs, order), as_rows(yr.flatten(0, 1).to(x.dtype), order)
    out = np.empty_like(ra)
    parallel(_secant_rows, (xa, ya, sa, ra, yra, xa.dtype.type(eps), out), ra.shape[0],
             max(xa.shape[1], 1))
    return from_rows(out, refs.shape, order).reshape(r.shape)


def relu_backward(grad: Tensor, x: Tensor, r: Tensor, eps: float) -> Tensor:
    """``grad`` times ReLU's rescale multipliers of every pair, in one pass.

    Parameters
    ----------
    grad : Tensor ``(R * n, *shape)``
        Upstream gradient of every pair row (reference-major), or ``(n, *shape)`` of
        the rows of one reference when ``r`` holds only that reference.
    x : Tensor ``(n, *shape)``
        Inputs of the ReLU on the examples.
    r : Tensor ``(R, n, *shape)``
        Its inputs on the references.
    eps : float
        Below ``|x - r| < eps`` the derivative ``1[x > 0]`` replaces the secant
        ``(relu(x) - relu(r)) / (x - r)``.

    Returns
    -------
    Tensor shaped like ``grad``: the multipliers of the ReLU's input, the same bits as the
    torch version of the rule (``grad * ratio``).
    """
    refs = r.flatten(0, 1)
    order = row_order(refs)  # every operand is read in the references' memory order
    xa, ra = as_rows(x, order), as_rows(refs, order)
    ga = as_rows(grad.to(x.dtype).reshape(refs.shape), order)
    out = np.empty_like(ra)
    consts = np.array([0, 1], dtype=xa.dtype)
    parallel(_relu_backward_rows, (xa, ra, ga, xa.dtype.type(eps), consts, out), ra.shape[0],
             max(xa.shape[1], 1))
    return from_rows(out, refs.shape, order).reshape(grad.shape)
