"""The exact softmax / log-softmax rule's multipliers in one pass per row (numba).

The rule in :mod:`captum_genomics.deeplift.rules.softmax` (the decomposition
tangermeme 1.6 uses for ``nn.Softmax``) needs, for every example-reference pair
and every row along the softmax axis (length ``D``),

* ``c = max(max_j x_j, max_j r_j)``, ``a = exp(x - c)``, ``a_ref = exp(r - c)``,
* ``s = sum_j a_j``, ``s_ref = sum_j a_ref_j``, ``L = log s``, ``L_ref = log s_ref``,
* ``m_a = secant(a - a_ref, x - r; fallback a, eps)``,
* ``m_L = secant(L - L_ref, s - s_ref; fallback 1 / s, eps * max(|s|, 1e-30))``,
* ``m_xl = m_L * m_a`` and, for softmax (not log-softmax),
  ``z = x - c - L``, ``z_ref = r - c - L_ref``, ``y = exp(z)``, ``y_ref = exp(z_ref)``,
  ``rho = secant(y - y_ref, z - z_ref; fallback y, eps)``,

where ``secant(num, den; fallback, t)`` is ``num / den`` unless ``not |den| >= t``
(a NaN denominator, e.g. a position masked with ``-inf`` in both passes, takes the
fallback, ``exp(-inf) = 0``). Written with torch operations that is about 25 full
passes over the ``(R, n, ..., D)`` pair activations (attention scores, in a
transformer); here every row of a pair is read from memory once (its ``exp``
values kept in a row-sized scratch buffer) and ``m_xl`` and ``rho`` are written
once. The backward, ``g - m_xl * sum_j g_j`` with ``g = grad * rho``, is one pass
per row as well.

Numerics: the torch version's formulas in the tensors' dtype (float32 or
float64), rearranged so that each reference element costs one ``exp``: the
example's own ``exp(x - max x)``, its sum and its softmax are computed once per
example row and rescaled by ``exp(max x - c)`` for each pair, and
``exp(z_ref) = a_ref / s_ref``. The results agree with the torch version to
rounding but not bitwise: ``exp`` is a vectorizable polynomial (``_vexp``: <= 0.51
ulp in float32, <= 1 ulp in float64) rather than torch's, the rearrangements
round differently in the last ulp, and the row sums ``s``, ``s_ref`` (and
``sum_j g_j`` in the backward) are accumulated in float64 and rounded once to the
dtype, where torch sums in the dtype in its own (pairwise, vectorized) order. Compiled
with ``error_model="numpy"`` and without ``fastmath``, so ``inf``/``NaN`` follow
IEEE rules as in torch. Compilation is cached like the shuffles' kernels
(:func:`captum_genomics.references._kernels._kernel`) and rows are split over the
package's thread pool (:func:`captum_genomics.references._draw.parallel`).
Tensors on other devices, other dtypes (half precision) and autocast regions
take the torch path of the rule.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from captum_genomics.deeplift.kernels import fused_available
from captum_genomics.references._draw import parallel
from captum_genomics.references._kernels import _kernel

__all__ = ["softmax_fused_available", "softmax_multipliers", "softmax_backward"]


@_kernel(error_model="numpy")
def _vexp(src, dst, n, k, ib1, ib2, fb1, fb2, bias, shift):
    # dst[:n] = exp(src[:n]) in two branch-free loops that LLVM vectorizes (numba's
    # math.exp is a libm call per element): Cody-Waite reduction t = q ln2 + u, |u| <= ln2/2,
    # exp(u) by its Taylor polynomial of degree 13 (Horner), times 2**q built from the
    # exponent bits of two factors 2**q1 * 2**q2 (so that subnormal results round once).
    # Arguments below k[5] give 0, above k[6] inf, NaN gives NaN. fb1, fb2 are ib1, ib2
    # viewed as floats; k and (bias, shift) come from _exp_constants.
    zero = k[0]
    half = k[1]
    log2e = k[2]
    ln2hi = k[3]
    ln2lo = k[4]
    lo = k[5]
    hi = k[6]
    inf = k[7]
    c0 = k[8]
    c1 = k[9]
    c2 = k[10]
    c3 = k[11]
    c4 = k[12]
    c5 = k[13]
    c6 = k[14]
    c7 = k[15]
    c8 = k[16]
    c9 = k[17]
    c10 = k[18]
    c11 = k[19]
    c12 = k[20]
    c13 = k[21]
    for j in range(n):
        t = src[j]
        tc = t if t > lo else lo
        tc = tc if tc < hi else hi
        q = math.floor(tc * log2e + half)
        u = (tc - q * ln2hi) - q * ln2lo
        dst[j] = (((((((((((((c13 * u + c12) * u + c11) * u + c10) * u + c9) * u + c8) * u
                         + c7) * u + c6) * u + c5) * u + c4) * u + c3) * u + c2) * u + c1) * u
                  + c0)
        q1 = math.floor(q * half)
        ib1[j] = (int(q1) + bias) << shift
        ib2[j] = (int(q - q1) + bias) << shift
    for j in range(n):
        t = src[j]
        v = dst[j] * fb1[j] * fb2[j]
        v = zero if t < lo else v
        v = inf if t > hi else v
        dst[j] = v if t == t else t


def _exp_constants(dtype: np.dtype) -> tuple[np.ndarray, np.ndarray]:
    """``(k, bits)`` for :func:`_vexp` in ``dtype`` (float32 or float64): k = [0, 1/2,
    log2(e), ln2 high and low parts (Cody-Waite: fdlibm's for float64, Cephes' for
    float32), the clamps, inf, 1/0!, ..., 1/13!]; bits = [exponent bias, mantissa bits]
    in the same-width integer type."""
    if np.dtype(dtype) == np.float32:
        base = [0.0, 0.5, 1 / math.log(2), 0.693359375, -2.12194440e-4, -104.0, 89.0, np.inf]
        bits = np.array([127, 23], dtype=np.int32)
    else:
        base = [0.0, 0.5, 1 / math.log(2), 6.93147180369123816490e-01,
                1.90821492927058770002e-10, -746.0, 710.0, np.inf]
        bits = np.array([1023, 52], dtype=np.int64)
    coef = [1 / math.factorial(i) for i in range(14)]
    return np.array(base + coef, dtype=dtype), bits


@_kernel(error_model="numpy")
def _example_rows(x, k, bits, cx, ex, sx, yx, lo, hi):
    # per example row (pair-independent): cx = max_j x_j (NaN-propagating), ex = exp(x - cx),
    # sx = sum_j ex_j (accumulated in float64, rounded once), yx = ex / sx = softmax(x)
    d = x.shape[1]
    bias = bits[0]
    shift = bits[1]
    t = np.empty(d, x.dtype)
    ib1 = np.empty(d, bits.dtype)
    ib2 = np.empty(d, bits.dtype)
    fb1 = ib1.view(x.dtype)
    fb2 = ib2.view(x.dtype)
    sums = np.empty(1, x.dtype)
    for e in range(lo, hi):
        c = x[e, 0]
        for j in range(d):
            v = x[e, j]
            if v > c or v != v:
                c = v
        cx[e] = c
        for j in range(d):
            t[j] = x[e, j] - c
        _vexp(t, ex[e], d, k, ib1, ib2, fb1, fb2, bias, shift)
        acc = 0.0
        for j in range(d):
            acc += ex[e, j]
        sums[0] = acc
        sx[e] = sums[0]
        for j in range(d):
            yx[e, j] = ex[e, j] / sums[0]


@_kernel(error_model="numpy")
def _softmax_forward_rows(x, r, cx, ex, sx, yx, eps, consts, k, bits, log, m_out, rho_out,
                          lo, hi):
    # x (G, D) example rows with their _example_rows statistics cx, ex, sx, yx; r (P, D)
    # reference rows of the P = R * G pairs, reference-major, pair row i against example row
    # i % G; m_out, rho_out (P, D) (rho_out unused when `log`). consts = [1, 1e-30] in the
    # dtype; k, bits: _vexp's. One exp per reference element: with the shared shift
    # c = max(cx, cr), exp(x - c) = ex * exp(cx - c) (one exp per row), and the softmaxes
    # are exp(z) = ex / sx and exp(z_ref) = a_ref / s_ref.
    g_rows = x.shape[0]
    d = x.shape[1]
    one = consts[0]
    tiny = consts[1]
    bias = bits[0]
    shift = bits[1]
    t_r = np.empty(d, x.dtype)
    e_r = np.empty(d, x.dtype)
    sums = np.empty(2, x.dtype)
    ib1 = np.empty(d, bits.dtype)
    ib2 = np.empty(d, bits.dtype)
    fb1 = ib1.view(x.dtype)
    fb2 = ib2.view(x.dtype)
    for i in range(lo, hi):
        e = i % g_rows
        c = cx[e]
        for j in range(d):  # c = max(amax(x), amax(r)), NaN-propagating like torch.maximum
            v = r[i, j]
            if v > c or v != v:
                c = v
        for j in range(d):
            t_r[j] = r[i, j] - c
        _vexp(t_r, e_r, d, k, ib1, ib2, fb1, fb2, bias, shift)
        scale = math.exp(cx[e] - c)
        acc_r = 0.0
        for j in range(d):
            acc_r += e_r[j]
        sums[0] = sx[e] * scale
        sums[1] = acc_r
        s = sums[0]
        sr = sums[1]
        big_l = math.log(s)
        big_lr = math.log(sr)
        ds = s - sr
        thr = eps * abs(s)
        thr = tiny if thr < tiny else thr  # clamp_min (a NaN stays NaN)
        m_l = (big_l - big_lr) / ds
        m_l = m_l if abs(ds) >= thr else one / s
        for j in range(d):
            a = ex[e, j] * scale
            dx = x[e, j] - r[i, j]
            m_a = (a - e_r[j]) / dx
            m_a = m_a if abs(dx) >= eps else a
            m_out[i, j] = m_l * m_a
        if not log:
            for j in range(d):
                y = yx[e, j]
                dz = (x[e, j] - c - big_l) - (r[i, j] - c - big_lr)
                rho = (y - e_r[j] / sr) / dz
                rho_out[i, j] = rho if abs(dz) >= eps else y


@_kernel(error_model="numpy")
def _softmax_backward_rows(grad, m, rho, use_rho, out, lo, hi):
    # grad, m, rho, out (P, D): out = g - m * sum_j g_j with g = grad * rho (use_rho) or
    # grad; the row sum accumulated in float64 and rounded once to the dtype
    d = grad.shape[1]
    work = np.empty(1, grad.dtype)
    for i in range(lo, hi):
        acc = 0.0
        if use_rho:
            for j in range(d):
                g = grad[i, j] * rho[i, j]
                out[i, j] = g
                acc += g
        else:
            for j in range(d):
                g = grad[i, j]
                out[i, j] = g
                acc += g
        work[0] = acc
        t = work[0]
        for j in range(d):
            out[i, j] = out[i, j] - m[i, j] * t


def softmax_fused_available(x: Tensor, r: Tensor) -> bool:
    """Whether the fused kernels apply: CPU float32/float64 tensors of one dtype, outside
    autocast (:func:`captum_genomics.deeplift.kernels.fused_available`), with ``r`` shaped
    ``(R, *x.shape)`` and something to compute."""
    return (fused_available(x, r) and r.ndim == x.ndim + 1
            and tuple(r.shape[1:]) == tuple(x.shape) and x.ndim >= 1 and r.numel() > 0)


def _rows(t: Tensor, dim: int) -> Tensor:
    """``t`` with axis ``dim`` moved last, contiguous (a copy only when it is not so)."""
    return t.detach().movedim(dim, -1).contiguous()


def softmax_multipliers(x: Tensor, r: Tensor, dim: int, eps: float,
                        log: bool) -> tuple[Tensor, Tensor | None]:
    """The softmax rule's multipliers ``m_xl`` and ``rho`` of every pair, one pass per row.

    Parameters
    ----------
    x : Tensor ``(n, ...)``
        Inputs of the softmax on the examples (CPU, float32 or float64).
    r : Tensor ``(R, n, ...)``
        Its inputs on the references, reference-major (``r[k]`` against ``x``); same
        dtype.
    dim : int
        The softmax axis of ``x`` (``dim + 1`` in ``r``), not 0.
    eps : float
        Threshold of the secants, as in :class:`~captum_genomics.deeplift.rules.softmax.Softmax`.
    log : bool
        True for ``log_softmax``: ``rho`` is not computed.

    Returns
    -------
    (m_xl, rho) : Tensors ``(R, n, ...)``, dtype of ``x``
        ``m_xl = m_L * m_a`` and ``rho`` (None when ``log``), as in the module
        docstring, in the axis order of ``r``: views of contiguous tensors whose softmax
        axis is last (no copy when it already is). Only the outputs (and, when ``dim``
        is not the last axis, a reordered copy of ``r``) are full-size.
    """
    dim = dim % x.ndim
    xa = _rows(x, dim)
    ra = _rows(r, dim + 1)
    moved = ra.shape
    d = moved[-1]
    xa = xa.reshape(-1, d).numpy()
    ra = ra.reshape(-1, d).numpy()
    m = np.empty_like(ra)
    rho = m if log else np.empty_like(ra)
    consts = np.array([1, 1e-30], dtype=xa.dtype)
    k, bits = _exp_constants(xa.dtype)
    g = xa.shape[0]
    cx, sx = np.empty(g, xa.dtype), np.empty(g, xa.dtype)
    ex, yx = np.empty_like(xa), np.empty_like(xa)
    parallel(_example_rows, (xa, k, bits, cx, ex, sx, yx), g, max(d, 1) * 2)
    parallel(_softmax_forward_rows,
             (xa, ra, cx, ex, sx, yx, xa.dtype.type(eps), consts, k, bits, bool(log), m, rho),
             ra.shape[0], max(d, 1) * (2 if log else 3))

    def back(arr):
        return torch.from_numpy(arr).reshape(moved).movedim(-1, dim + 1)

    return back(m), (None if log else back(rho))


def softmax_backward(grad: Tensor, m_xl: Tensor, rho: Tensor | None, dim: int) -> Tensor:
    """The softmax rule's backward ``g - m_xl * g.sum(dim, keepdim=True)``,
    ``g = grad * rho`` (``grad`` when ``rho`` is None), in one pass per row.

    Parameters
    ----------
    grad : Tensor ``(B, ...)``
        Upstream gradient of the input pass's rows (CPU; cast to the dtype of ``m_xl``).
    m_xl, rho : Tensor ``(B, ...)``
        The multipliers the running backward needs
        (:meth:`~captum_genomics.deeplift.rules.base.PairCursor.select` of the outputs of
        :func:`softmax_multipliers`); float32 or float64. ``rho`` None for log-softmax.
    dim : int
        The softmax axis.

    Returns
    -------
    Tensor shaped like ``grad``, dtype of ``m_xl``: the multipliers of the softmax's
    input (a view with the softmax axis in place; contiguous when ``dim`` is last).
    """
    dim = dim % grad.ndim
    ma = _rows(m_xl, dim)
    moved = ma.shape
    d = moved[-1]
    ga = _rows(grad.to(m_xl.dtype), dim).reshape(-1, d).numpy()
    ma = ma.reshape(-1, d).numpy()
    pa = ga if rho is None else _rows(rho, dim).reshape(-1, d).numpy()
    out = np.empty_like(ga)
    parallel(_softmax_backward_rows, (ga, ma, pa, rho is not None, out), ga.shape[0],
             max(d, 1))
    return torch.from_numpy(out).reshape(moved).movedim(-1, dim)
