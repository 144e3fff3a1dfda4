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
``exp(z_ref) = a_ref / s_ref`` (a reference row with a NaN or ``+inf`` makes every
``rho`` of its pair row NaN, as ``exp(z)`` is in torch). The results agree with the
torch version to rounding but not bitwise. ``exp`` is a branch-free polynomial that
LLVM vectorizes (``_exp``, evaluated in float64 and rounded once: measured <= 0.502
ulp in float32, subnormal results included, and <= 1.001 ulp in float64) rather than
torch's; the rearrangements round differently in the last ulp; and the row sums are
accumulated beyond the dtype's precision and rounded once to it, where torch sums in
the dtype in its own (pairwise, vectorized) order: ``s_ref`` of a float32 pair row as
fixed-point int64 (exact integer additions; relative error <= ``2**(2k - 61)``, ``k``
the bit length of the row length rounded up to 32, at most 17, and finite values), the
other sums (``s``, ``s_ref`` of float64 rows, of longer rows or of rows with a NaN or
``inf``, and ``sum_j g_j`` in the backward) in float64 over 32 lanes added by a fixed
tree. Every order depends on the row length only, so the results are the same bits
for any number of threads and any split of the rows. The row maxima (NaN-propagating,
like ``torch.maximum``) are integer maxima of an order-preserving map of the floats'
bits, which LLVM also vectorizes. Compiled
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
from numba import types, uint64
from numba.extending import intrinsic, overload, register_jitable
from torch import Tensor

from captum_genomics.deeplift.kernels import fused_available
from captum_genomics.references._draw import parallel
from captum_genomics.references._kernels import _kernel

__all__ = ["softmax_fused_available", "softmax_multipliers", "softmax_backward"]

#: Lanes of the float64 row sums: rows are padded (or chunked) to multiples of this. The
#: kernels take it as an argument, so that LLVM vectorizes the loops over the lanes rather
#: than unrolling them into scalar code (numba runs no SLP vectorizer); ``_combine`` adds
#: exactly 32 lanes.
_LANES = 32

#: Rows of float32 pairs up to ``2**_FIXED_BITS`` padded elements sum their ``exp`` values
#: as fixed-point integers (``_softmax_forward_rows``); relative error <= 2**(2k - 61).
_FIXED_BITS = 17


@intrinsic
def _bitcast(typingctx, value, like):
    """``value``'s bits as the type of ``like`` (a number or a number class) of the same
    width; an integer wider than that is truncated first."""
    ret = like.instance_type if isinstance(like, types.NumberClass) else like
    if not isinstance(value, types.Number) or not isinstance(ret, types.Number):
        return None
    if value.bitwidth < ret.bitwidth or (value.bitwidth > ret.bitwidth
                                          and not isinstance(value, types.Integer)):
        return None

    def codegen(context, builder, signature, args):
        v = args[0]
        if value.bitwidth > ret.bitwidth:
            v = builder.trunc(v, context.get_value_type(types.Integer.from_bitwidth(ret.bitwidth)))
        return builder.bitcast(v, context.get_value_type(signature.return_type))

    return ret(value, like), codegen


@register_jitable(inline="always")
def _pow2(n):
    # 2.0 ** n for an integer -1022 <= n <= 1023, exactly
    return _bitcast((np.int64(n) + 1023) << 52, np.float64)


# exp(t) = 2**q exp(u), t = q ln2 + u, |u| <= ln2 / 2 (+ rounding of q), with
# exp(u) ~ 1 + (u + u**2 P(u)): P's coefficients minimize the maximum relative error on
# |u| <= ln(2) / 2 + 2e-5 (Remez): 1.0e-10 at degree 7 of the whole polynomial, 7.7e-18 at
# degree 11 (Taylor polynomials need degrees 8 and 13 for as much).
_LOG2E = 1.4426950408889634
_LN2 = 0.6931471805599453
_LN2HI = 6.93147180369123816490e-01  # fdlibm's split of ln2: q * _LN2HI is exact
_LN2LO = 1.90821492927058770002e-10
_P7 = (0.5000000080828253, 0.1666666675643227, 0.041666240614258235, 0.00833328601533167,
       0.0013948587720608854, 0.00019907579239250944)
_P11 = (0.500000000000001, 0.16666666666666674, 0.04166666666652204, 0.008333333333322212,
        0.0013888888947805932, 0.00019841269886579496, 2.4801487342936326e-05,
        2.7557242349694497e-06, 2.763264937983338e-07, 2.5110044990188876e-08)
_A2, _A3, _A4, _A5, _A6, _A7 = _P7
_B2, _B3, _B4, _B5, _B6, _B7, _B8, _B9, _B10, _B11 = _P11


def _exp(t):
    """``exp(t)`` of a float32 or float64 scalar, branch-free (so that a loop of them
    vectorizes; numba's ``math.exp`` is a libm call per element): see the overload."""


@overload(_exp)
def _exp_impl(t):
    if t == types.float32:
        # all in float64 (exact reduction, polynomial error 1.0e-10), rounded once to
        # float32 by the conversion, subnormal results and overflow to inf included
        # (2**q, -150 <= q <= 129, is a normal float64): <= 0.502 ulp
        def impl(t):
            tc = np.float64(t)
            tc = tc if tc > -104.0 else -104.0  # NaN -> -104, then restored below
            tc = tc if tc < 89.0 else 89.0
            q = np.floor(tc * _LOG2E + 0.5)
            u = tc - q * _LN2
            p = 1.0 + (u + (u * u) * (_A2 + u * (_A3 + u * (_A4 + u * (_A5 + u * (
                _A6 + u * _A7))))))
            v = np.float32(p * _pow2(q))
            return v if t == t else t

        return impl
    if t == types.float64:
        # Cody-Waite reduction; 2**q as two factors 2**q1 * 2**q2 so that subnormal
        # results round once and overflow gives inf: <= 1.001 ulp
        def impl(t):
            tc = t if t > -746.0 else -746.0
            tc = tc if tc < 710.0 else 710.0
            q = np.floor(tc * _LOG2E + 0.5)
            u = (tc - q * _LN2HI) - q * _LN2LO
            p = 1.0 + (u + (u * u) * (_B2 + u * (_B3 + u * (_B4 + u * (_B5 + u * (
                _B6 + u * (_B7 + u * (_B8 + u * (_B9 + u * (_B10 + u * _B11))))))))))
            q1 = np.floor(q * 0.5)
            v = p * _pow2(q1) * _pow2(q - q1)
            return v if t == t else t

        return impl


def _key(v):
    """An integer of ``v``'s width whose order is ``v``'s (float32/float64), NaN (either
    sign) above all."""


@overload(_key)
def _key_impl(v):
    if v == types.float32:
        # int32 throughout (numba widens int32 arithmetic to int64, which halves the lanes)
        mag, top, sh = np.int32(0x7FFFFFFF), np.int32(0x7F800000), np.int32(31)

        def impl(v):
            b = _bitcast(v, np.int32)
            key = np.int32(b ^ ((b >> sh) & mag))  # negatives: larger magnitude, smaller key
            return mag if (b & mag) > top else key

        return impl
    if v == types.float64:
        def impl(v):
            b = _bitcast(v, np.int64)
            key = b ^ ((b >> 63) & 0x7FFFFFFFFFFFFFFF)
            return 0x7FFFFFFFFFFFFFFF if (b & 0x7FFFFFFFFFFFFFFF) > 0x7FF0000000000000 else key

        return impl


def _unkey(key, like):
    """The float (the type of ``like``) whose ``_key`` is ``key`` (a NaN for NaN's)."""


@overload(_unkey)
def _unkey_impl(key, like):
    if like == types.float32:
        def impl(key, like):
            k = np.int64(key)
            return _bitcast(k ^ ((k >> 31) & 0x7FFFFFFF), np.float32)

        return impl
    if like == types.float64:
        def impl(key, like):
            return _bitcast(key ^ ((key >> 63) & 0x7FFFFFFFFFFFFFFF), np.float64)

        return impl


@register_jitable(inline="always")
def _row_max(a, i, d, copy):
    # max_j a[i, j] (j < d), NaN if any is NaN (the order-independent max of _key, a
    # reduction LLVM vectorizes, where a float max with NaN propagation stays serial);
    # copies the row into copy[:d] on the way
    best = _key(a[i, 0])
    for j in range(d):
        v = a[i, j]
        copy[j] = v
        best = max(best, _key(v))
    return _unkey(best, a[i, 0])


@register_jitable(inline="always")
def _combine(acc):
    # acc[0] + ... + acc[31] in a fixed order (a tree)
    for k in range(16):
        acc[k] += acc[k + 16]
    for k in range(8):
        acc[k] += acc[k + 8]
    for k in range(4):
        acc[k] += acc[k + 4]
    return (acc[0] + acc[2]) + (acc[1] + acc[3])


@register_jitable(inline="always")
def _lane_sum(e2, acc):
    # sum of e2 (nch, 32) in float64: 32 lanes over the rows of e2, then _combine; the
    # order depends on nch only
    nch, w = e2.shape
    for k in range(w):
        acc[k] = e2[0, k]
    for ch in range(1, nch):
        for k in range(w):
            acc[k] += e2[ch, k]
    return _combine(acc)


@_kernel(error_model="numpy")
def _vexp(src, dst, n):
    # dst[:n] = exp(src[:n]) (float32 or float64, vectorized)
    for j in range(n):
        dst[j] = _exp(src[j])


@_kernel(error_model="numpy")
def _example_rows(x, lanes, cx, ex, sx, yx, lo, hi):
    # per example row (pair-independent): cx = max_j x_j (NaN-propagating), ex = exp(x - cx),
    # sx = sum_j ex_j (float64 lanes, rounded once), yx = ex / sx = softmax(x); ex, yx
    # (G, dp) padded to dp, a multiple of lanes, ex's padding 0 (the exp of -inf)
    d = x.shape[1]
    dp = ex.shape[1]
    nch = dp // lanes
    t = np.empty(dp, x.dtype)
    for j in range(d, dp):
        t[j] = -np.inf
    acc = np.empty(lanes, np.float64)
    sums = np.empty(1, x.dtype)
    for e in range(lo, hi):
        c = _row_max(x, e, d, t)
        cx[e] = c
        row = ex[e]
        for j in range(dp):
            row[j] = _exp(t[j] - c)
        sums[0] = _lane_sum(row.reshape((nch, lanes)), acc)
        s = sums[0]
        sx[e] = s
        for j in range(d):
            yx[e, j] = ex[e, j] / s


@_kernel(error_model="numpy")
def _softmax_forward_rows(x, r, cx, ex, sx, yx, eps, consts, lanes, log, m_out, rho_out,
                          lo, hi):
    # x (G, D) example rows with their _example_rows statistics cx, ex, sx, yx (ex, yx
    # padded); r (P, D) reference rows of the P = R * G pairs, reference-major, pair row i
    # against example row i % G; m_out, rho_out (P, D) (rho_out unused when `log`).
    # consts = [1, 1e-30] in the dtype. One exp per reference element: with the shared
    # shift c = max(cx, cr), exp(x - c) = ex * exp(cx - c) (one exp per row), and the
    # softmaxes are exp(z) = ex / sx and exp(z_ref) = a_ref / s_ref.
    # s_ref: float32 rows with a finite c (so every a_ref is in [0, 1]) add
    # int64(a_ref * 2**sh) (exact integer sums, vectorized in the exp loop), with 2**sh
    # the power of two that puts the largest a_ref (exp(cr - c)) just below 2**(61 - kb):
    # the truncations cost at most dp * 2**-sh, a relative error <= 2**(2 kb - 61) of
    # s_ref (kb = bit length of dp <= _FIXED_BITS). Other rows (float64; NaN or inf) sum
    # in float64 lanes.
    g_rows = x.shape[0]
    d = x.shape[1]
    dp = ex.shape[1]
    nch = dp // lanes
    kb = 0
    while (1 << kb) <= dp:
        kb += 1
    fixed = x.itemsize == 4 and kb <= _FIXED_BITS
    one = consts[0]
    tiny = consts[1]
    t_r = np.empty(dp, x.dtype)
    for j in range(d, dp):
        t_r[j] = -np.inf
    e2 = np.empty((nch, lanes), x.dtype)
    e_r = e2.reshape(dp)
    acc = np.empty(lanes, np.float64)
    sums = np.empty(2, x.dtype)
    for i in range(lo, hi):
        e = i % g_rows
        cr = _row_max(r, i, d, t_r)
        c = cx[e]
        c = cr if (cr > c or cr != cr) else c  # torch.maximum: NaN-propagating
        if fixed and abs(c) < np.inf:
            top = (cr - c) * _LOG2E  # log2 of the largest a_ref, <= 0 (or -inf)
            sh = 61 - kb - (math.floor(top) if top > -200.0 else -200)
            up = _pow2(sh)
            isum = 0
            for j in range(dp):
                v = _exp(t_r[j] - c)
                e_r[j] = v
                isum += np.int64(np.float64(v) * up)
            sums[1] = np.float64(isum) * _pow2(-sh)
        else:
            for j in range(dp):
                e_r[j] = _exp(t_r[j] - c)
            sums[1] = _lane_sum(e2, acc)
        scale = math.exp(cx[e] - c)
        sums[0] = sx[e] * scale
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
        if log:
            continue
        if abs(c) < np.inf:
            for j in range(d):
                y = yx[e, j]
                dz = (x[e, j] - c - big_l) - (r[i, j] - c - big_lr)
                rho = (y - e_r[j] / sr) / dz
                rho_out[i, j] = rho if abs(dz) >= eps else y
        else:  # exp(z) = exp(x - c - L) is NaN (not ex / sx): so is rho, as in torch
            for j in range(d):
                rho_out[i, j] = c - c


@_kernel(error_model="numpy")
def _softmax_backward_rows(grad, m, rho, use_rho, lanes, out, lo, hi):
    # grad, m, rho, out (P, D): out = g - m * sum_j g_j with g = grad * rho (use_rho) or
    # grad; the row sum in float64 lanes (then _combine), rounded once to the dtype. Rows
    # of D >= lanes go in chunks of `lanes` (the last one overlapping the one before, its
    # repeated elements adding 0 to the lanes); unsigned indices: no wraparound selects
    d = grad.shape[1]
    w = lanes if d >= lanes else d
    nch = (d + w - 1) // w
    uw = uint64(w)
    acc = np.empty(lanes, np.float64)
    work = np.empty(1, grad.dtype)
    for i in range(lo, hi):
        for k in range(uint64(lanes)):
            acc[k] = 0.0
        for ch in range(nch):
            j0 = uint64(min(ch * lanes, d - w))
            new = uint64(ch * lanes)  # elements before it are in the lanes already
            if use_rho:
                for k in range(uw):
                    j = j0 + k
                    g = grad[i, j] * rho[i, j]
                    acc[k] += g if j >= new else 0.0
            else:
                for k in range(uw):
                    j = j0 + k
                    g = grad[i, j]
                    acc[k] += g if j >= new else 0.0
        work[0] = _combine(acc)
        t = work[0]
        for ch in range(nch):
            j0 = uint64(min(ch * lanes, d - w))
            if use_rho:
                for k in range(uw):
                    j = j0 + k
                    out[i, j] = grad[i, j] * rho[i, j] - m[i, j] * t
            else:
                for k in range(uw):
                    j = j0 + k
                    out[i, j] = grad[i, j] - m[i, j] * t


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
    g = xa.shape[0]
    dp = -(-d // _LANES) * _LANES
    cx, sx = np.empty(g, xa.dtype), np.empty(g, xa.dtype)
    ex, yx = np.empty((g, dp), xa.dtype), np.empty((g, dp), xa.dtype)
    parallel(_example_rows, (xa, _LANES, cx, ex, sx, yx), g, max(d, 1) * 2)
    parallel(_softmax_forward_rows,
             (xa, ra, cx, ex, sx, yx, xa.dtype.type(eps), consts, _LANES, bool(log), m, rho),
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
    parallel(_softmax_backward_rows, (ga, ma, pa, rho is not None, _LANES, out), ga.shape[0],
             max(d, 1))
    return torch.from_numpy(out).reshape(moved).movedim(-1, dim)
