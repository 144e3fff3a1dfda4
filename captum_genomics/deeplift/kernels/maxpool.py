"""The backward of the exact max-pool rule in one pass (numba).

The max-pool rule (:mod:`captum_genomics.deeplift.rules.maxpool`, tangermeme 1.6's
rule) routes each window's output change ``dy = max(x_W) - max(r_W)`` to the
input argmax (when ``dy >= 0``) or the reference argmax (when ``dy < 0``) and
divides by that position's own input change. Written with torch operations its
backward takes about eight passes over the ``R * n`` pair activations (two
``zeros_like``, three ``scatter_add_``, a comparison, two ``where``, a
subtraction and a division); here each pair row reads its input and reference
once and writes its multipliers once, the window quantities coming from the
pooled values and indices both passes already computed.

Every pool (``max_pool{1,2,3}d``, ``adaptive_max_pool{1,2,3}d``, any kernel,
stride, dilation, padding, ``ceil_mode``) is served by one kernel, because their
indices are flat over the spatial dims: tensors are viewed as
``(rows, channels, S)`` inputs and ``(rows, channels, W)`` pooled outputs.

The float operations are those of the torch version (``_route`` in the rule), in
the same order and in the tensors' dtype, so the results have the same bits:
``top = maximum(y, yr)``, ``cx = top - yr``, ``cr = y - top``; the numerators
accumulate first every ``g * cx`` at the input argmaxes in window order, then
every ``g * cr`` at the reference argmaxes in window order (the order of two
``scatter_add_`` calls), the fallback every ``g`` at the input argmaxes; then
``where(x - r == 0, fallback, numer / (x - r))``. Rows are split over the
package's thread pool (:func:`captum_genomics.references._draw.parallel`);
compilation is cached like the shuffles' kernels. Tensors on other devices, other
dtypes (half precision) and autocast regions take the torch path of the rule.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from captum_genomics.references._draw import parallel
from captum_genomics.references._kernels import _kernel

__all__ = ["maxpool_backward"]


@_kernel(error_model="numpy")
def _maxpool_backward_rows(x, r, y, ix, yr, ir, grad, out, lo, hi):
    # x (n, C, S) example inputs; y, ix (n, C, W) their pooled values and flat argmaxes;
    # r (P, C, S), yr, ir (P, C, W) the references of the P pair rows, row i against
    # example i % n; grad (P, C, W); out (P, C, S). Work items are the (i, c) rows
    # lo..hi of P * C. error_model="numpy": a division by zero gives inf/nan (never
    # taken: the fallback is selected where x - r == 0)
    n = x.shape[0]
    c = x.shape[1]
    s = x.shape[2]
    w = y.shape[2]
    fallback = np.empty_like(x[0, 0])
    for row in range(lo, hi):
        i = row // c
        ch = row - i * c
        e = i % n
        numer = out[i, ch]
        for p in range(s):
            numer[p] = 0
            fallback[p] = 0
        # scatter_add_(ix, g * cx), and the fallback scatter_add_(ix, g)
        for k in range(w):
            g = grad[i, ch, k]
            yv = y[e, ch, k]
            rv = yr[i, ch, k]
            top = yv if (yv >= rv or yv != yv) else rv  # torch.maximum (NaN propagates)
            j = ix[e, ch, k]
            numer[j] += g * (top - rv)
            fallback[j] += g
        # then scatter_add_(ir, g * cr)
        for k in range(w):
            g = grad[i, ch, k]
            yv = y[e, ch, k]
            rv = yr[i, ch, k]
            top = yv if (yv >= rv or yv != yv) else rv
            numer[ir[i, ch, k]] += g * (yv - top)
        for p in range(s):
            d = x[e, ch, p] - r[i, ch, p]
            numer[p] = fallback[p] if d == 0 else numer[p] / d


def maxpool_backward(grad: Tensor, x: Tensor, r: Tensor, y: Tensor, ix: Tensor, yr: Tensor,
                     ir: Tensor) -> Tensor:
    """Multipliers of the max-pool rule's input for every pair row, in one pass.

    Shapes are the flattened ones of the rule: ``C`` covers every axis between the
    rows and the pooled (spatial) axes, ``S`` and ``W`` the spatial positions of the
    input and the output, flat (as the pools' indices are). ``P`` is a multiple of
    ``n``: pair row ``i`` is reference ``i // n`` of example ``i % n``.

    Parameters
    ----------
    grad : Tensor ``(P, C, W)``
        Upstream gradient of the pool's output on every pair row.
    x : Tensor ``(n, C, S)``
        The pool's input on the examples (CPU, float32 or float64).
    r : Tensor ``(P, C, S)``
        Its input on the references of the ``P`` pair rows, reference-major, same dtype.
    y, ix : Tensor ``(n, C, W)``
        The pool of ``x``: values (dtype of ``x``) and flat argmaxes (int64).
    yr, ir : Tensor ``(P, C, W)``
        The pool of ``r``: values and flat argmaxes.

    Returns
    -------
    Tensor ``(P, C, S)``, dtype of ``x``: ``(sum of grad * cx routed to ix + sum of
    grad * cr routed to ir) / (x - r)``, or the max-pool gradient (``grad`` routed
    to ``ix``) where ``x - r == 0``; the same bits as the rule's torch ``_route``.
    """
    dtype = x.dtype
    xa = x.detach().contiguous().numpy()
    ra = r.detach().to(dtype).contiguous().numpy()
    ya = y.detach().to(dtype).contiguous().numpy()
    yra = yr.detach().to(dtype).contiguous().numpy()
    ixa = ix.detach().to(torch.int64).contiguous().numpy()
    ira = ir.detach().to(torch.int64).contiguous().numpy()
    ga = grad.detach().to(dtype).contiguous().numpy()
    out = np.empty_like(ra)
    rows, channels, size = ra.shape
    if out.size == 0 or xa.shape[0] == 0:
        out[...] = 0
        return torch.from_numpy(out)
    parallel(_maxpool_backward_rows, (xa, ra, ya, ixa, yra, ira, ga, out), rows * channels,
             max(size, 1))
    return torch.from_numpy(out)
