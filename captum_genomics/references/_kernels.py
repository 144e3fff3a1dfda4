"""Numba kernels behind the reference generators.

Everything here works on plain numpy arrays; ``shuffle.py`` and ``simple.py``
(through ``_draw.py``) validate arguments, move tensors in and out and run the
kernels on threads. Bases are coded ``0..3`` (A, C, G, T) and ``4`` for an ``N``
(an all-zero one-hot column).

Randomness
----------
Every (example, reference) pair owns an independent stream of a splitmix64
generator (Steele, Lea & Flood 2014, "Fast splittable pseudorandom number
generators"), whose starting state is a hash of ``(seed, stream tag, example
index, reference index)``. The draws of one pair therefore depend on nothing
else: not on the batch the example sits in, the batch size, the number of
references asked for, or the number of threads. Bounded integers use
Lemire's multiply-and-reject method (Lemire 2019, "Fast random integer
generation in an interval"), which is exactly uniform.

Shuffles
--------
``k = 1`` is a Fisher-Yates permutation. ``k >= 2`` follows Kandel, Matias,
Unger & Winkler (1996), "Shuffling biological sequences", Discrete Applied
Mathematics 71: the sequence is an Eulerian path in the multigraph whose
vertices are its (k-1)-mers and whose edges are its k-mers. A uniformly random
arborescence of "last-exit" edges towards the final vertex is drawn with
Wilson's algorithm (Wilson 1996, "Generating random spanning trees more
quickly than the cover time"), the remaining out-edges of every vertex are put
in uniformly random order (Fisher-Yates), and the Eulerian path they define
is walked. Wilson's walk moves along a uniformly chosen out-edge, so each
vertex's tree edge is drawn with probability proportional to its
multiplicity, which is what uniformity over sequences (rather than over
labelled Eulerian paths) requires. By the BEST theorem the draw is uniform
over all sequences with the same k-mer counts and the same first (k-1)-mer.

Performance notes: all indices are below ``2**31``; hot loops avoid calls
that take arrays (numba reference-counts them on every call) and index with
unsigned integers (no negative-index wraparound); four references of one
example are walked in lock-step so that their dependency chains overlap.

Compilation is cached (:func:`_kernel`): a kernel compiles once, 10-20 s in
all on a first call, and later processes load it from numba's cache in well
under a second. The cache lies in the package's ``__pycache__``, else
(a read-only install) in numba's user cache directory, else in a private
temporary directory; ``NUMBA_CACHE_DIR`` overrides all three.
"""

from __future__ import annotations

import os
import tempfile
import warnings

import numba
import numpy as np
from numba import njit


def _private_cache_dir() -> str | None:
    """``<tmp>/captum_genomics-numba-<uid>``, created ``0o700``; None when it
    cannot be made or belongs to someone else (cached code is loaded and run,
    so a directory others can write to is never used)."""
    uid = os.getuid() if hasattr(os, "getuid") else None
    owner = "user" if uid is None else uid
    path = os.path.join(tempfile.gettempdir(), f"captum_genomics-numba-{owner}")
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
        st = os.stat(path)
    except OSError:
        return None
    if uid is not None and (st.st_uid != uid or st.st_mode & 0o022):
        return None
    return path


_UNCACHED_WARNED = False


def _kernel(fn=None, **options):
    """``numba.njit(cache=True, nogil=True)``, never failing for want of a cache.

    numba caches next to the source file or, when the package is read-only,
    in the user cache directory (``~/.cache/numba``), and raises at
    decoration time (here: at import) when neither is writable. Then the
    cache goes to :func:`_private_cache_dir`, and failing that the kernels
    compile in every process, with one warning that says how to fix it.
    ``NUMBA_CACHE_DIR``, when set, is numba's first choice and left alone.
    ``options`` go to ``njit`` as well (``@_kernel(error_model="numpy")``).
    """
    global _UNCACHED_WARNED
    if fn is None:
        return lambda f: _kernel(f, **options)
    try:
        return njit(cache=True, nogil=True, **options)(fn)
    except RuntimeError:  # "cannot cache function ...: no locator available"
        pass
    fallback = _private_cache_dir()
    if fallback is not None:
        saved = numba.config.CACHE_DIR
        numba.config.CACHE_DIR = fallback  # read once, when the locator is chosen
        try:
            return njit(cache=True, nogil=True, **options)(fn)
        except RuntimeError:
            pass
        finally:
            numba.config.CACHE_DIR = saved
    if not _UNCACHED_WARNED:
        _UNCACHED_WARNED = True
        warnings.warn(
            "captum_genomics cannot cache its compiled numba kernels (no writable "
            "__pycache__, user cache or temporary directory), so every process compiles "
            "them again on its first shuffle (10-20 s). Set NUMBA_CACHE_DIR to a writable "
            "directory.",
            RuntimeWarning,
            stacklevel=2,
        )
    return njit(nogil=True, **options)(fn)

# splitmix64 constants
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_U30 = np.uint64(30)
_U27 = np.uint64(27)
_U31 = np.uint64(31)
_U32 = np.uint64(32)
_MASK32 = np.uint64(0xFFFFFFFF)
_TWO32 = np.uint64(1 << 32)
_U2 = np.uint64(2)
_ALL64 = np.uint64(0xFFFFFFFFFFFFFFFF)
_EX_SALT = np.uint64(0xD1B54A32D192ED03)
_REF_SALT = np.uint64(0x8CB92BA72F3D8DD7)
_INV53 = 1.0 / 9007199254740992.0  # 2**-53
_U11 = np.uint64(11)
_U0 = np.uint64(0)
_U1 = np.uint64(1)

#: Stream tags keep the generators' streams apart for the same seed.
TAG_SHUFFLE = 0x5348554646  # "SHUFF"
TAG_GC = 0x4743  # "GC"

#: Largest (k-1) for which vertex ids come from a direct 4**(k-1) table.
_TABLE_MAX = 6


@njit(inline="always")
def _mix64(z):
    z = (z ^ (z >> _U30)) * _M1
    z = (z ^ (z >> _U27)) * _M2
    return z ^ (z >> _U31)


@njit(inline="always")
def _next(state):
    state = state + _GOLDEN
    return state, _mix64(state)


@njit(inline="always")
def _below(state, n):
    """Uniform integer in ``[0, n)`` for ``1 <= n < 2**32`` (Lemire 2019)."""
    un = np.uint64(n)
    state, r = _next(state)
    m = (r >> _U32) * un
    low = m & _MASK32
    if low < un:
        t = (_TWO32 - un) % un
        while low < t:
            state, r = _next(state)
            m = (r >> _U32) * un
            low = m & _MASK32
    return state, np.int64(m >> _U32)


@njit(inline="always")
def _uniform01(state):
    state, r = _next(state)
    return state, np.float64(r >> _U11) * _INV53


@njit(inline="always")
def _example_key(seed, tag, example):
    h = _mix64(seed + _GOLDEN)
    h = _mix64(h ^ (tag * _GOLDEN))
    return _mix64(h ^ ((example + np.uint64(1)) * _EX_SALT))


@njit(inline="always")
def _ref_state(key, reference):
    return _mix64(key ^ ((reference + np.uint64(1)) * _REF_SALT))


@njit(inline="always")
def _copy_row(src, dst):
    # a loop: slice assignment costs seconds of compile time
    for j in range(src.shape[0]):
        dst[j] = src[j]


# --------------------------------------------------------------------------
# Encoding and validation
# --------------------------------------------------------------------------


@_kernel
def encode(x, codes, bad, e0, e1):
    """One-hot ``x[e0:e1]`` ``(N, 4, L)`` -> base codes ``codes[e0:e1]`` ``(N, L)`` uint8.

    ``bad[e]`` is set to the number of columns of example ``e`` that are not
    one-hot (a value other than 0/1, NaN, or a sum above 1). Their codes are
    meaningless. The loop is branch-free so that it vectorizes.
    """
    length = x.shape[2]
    for e in range(e0, e1):
        r0 = x[e, 0]
        r1 = x[e, 1]
        r2 = x[e, 2]
        r3 = x[e, 3]
        ce = codes[e]
        nbad = 0
        for j in range(length):
            a0 = r0[j]
            a1 = r1[j]
            a2 = r2[j]
            a3 = r3[j]
            ok = (
                ((a0 == 0) | (a0 == 1))
                & ((a1 == 0) | (a1 == 1))
                & ((a2 == 0) | (a2 == 1))
                & ((a3 == 0) | (a3 == 1))
            )
            b0 = np.int32(a0 == 1)
            b1 = np.int32(a1 == 1)
            b2 = np.int32(a2 == 1)
            b3 = np.int32(a3 == 1)
            tot = b0 + b1 + b2 + b3
            ok = ok & (tot <= 1)
            nbad += np.int32(not ok)
            ce[j] = np.uint8(4 - 4 * tot + b1 + 2 * b2 + 3 * b3)
        bad[e] = nbad


@_kernel
def write_one_hot(seqs, out, one, zero, p0, p1):
    """Write codes ``seqs[p0:p1]`` ``(M, L)`` as one-hot ``out[p0:p1]`` ``(M, 4, L)``.

    Code ``a < 4`` sets row ``a`` to ``one`` and the others to ``zero``; code
    4 (``N``) gives an all-``zero`` column. Compiled once per output dtype;
    the shuffle kernels themselves only ever write uint8 codes.
    """
    length = seqs.shape[1]
    for p in range(p0, p1):
        seq = seqs[p]
        for a in range(4):
            row = out[p, a]
            ua = np.uint8(a)
            for j in range(length):
                row[j] = one if seq[j] == ua else zero


# --------------------------------------------------------------------------
# Vertex ids of (k-1)-mers
# --------------------------------------------------------------------------


@_kernel
def _compact(keys, ids):
    """Number the ``uint64`` ``keys`` densely ``0..nv-1`` into ``ids``; return ``nv``.

    Equal keys get equal ids (an open-addressing hash table that stores and
    compares the keys themselves, so the numbering is exact).
    """
    m = keys.shape[0]
    size = 2
    while size < 2 * m:
        size *= 2
    mask = np.uint64(size - 1)
    slot_key = np.empty(size, np.uint64)
    slot_id = np.full(size, -1, np.int64)
    nv = 0
    for i in range(m):
        key = keys[i]
        h = _mix64(key) & mask
        while True:
            sid = slot_id[h]
            if sid < 0:
                slot_key[h] = key
                slot_id[h] = nv
                ids[i] = nv
                nv += 1
                break
            if slot_key[h] == key:
                ids[i] = sid
                break
            h = (h + _U1) & mask
    return nv


@_kernel
def _packed_keys(s, w):
    """2-bit packed keys of the ``len(s) - w + 1`` windows of length ``w <= 32``."""
    n = s.shape[0]
    m = n - w + 1
    keys = np.empty(m, np.uint64)
    if w >= 32:
        mask = _ALL64
    else:
        mask = (np.uint64(1) << (_U2 * np.uint64(w))) - np.uint64(1)
    key = np.uint64(0)
    for i in range(w - 1):
        key = (key << _U2) | np.uint64(s[i])
    for i in range(m):
        key = ((key << _U2) | np.uint64(s[i + w - 1])) & mask
        keys[i] = key
    return keys


@_kernel
def _window_ids(s, w, ids, table):
    """Dense ids of the windows of length ``w`` of ``s`` into ``ids``; return count.

    For ``w <= _TABLE_MAX`` a direct table of ``4**w`` slots (all -1 on entry,
    restored on exit) numbers windows in order of first appearance; longer
    windows are packed 32 bases at a time into ``uint64`` keys and numbered
    by hashing, and windows over 32 bases combine the ids of their chunks.
    """
    n = s.shape[0]
    m = n - w + 1
    if w <= _TABLE_MAX:
        mask = (1 << (2 * w)) - 1
        key = 0
        for i in range(w - 1):
            key = (key << 2) | np.int64(s[i])
        nv = 0
        for i in range(m):
            key = ((key << 2) | np.int64(s[i + w - 1])) & mask
            t = table[key]
            if t < 0:
                t = nv
                table[key] = t
                nv += 1
            ids[i] = t
        # restore the table
        key = 0
        for i in range(w - 1):
            key = (key << 2) | np.int64(s[i])
        for i in range(m):
            key = ((key << 2) | np.int64(s[i + w - 1])) & mask
            table[key] = -1
        return nv
    # longer windows: ids of 32-base chunks, combined pairwise
    cl = min(w, 32)
    cur = np.empty(n - cl + 1, np.int64)
    nv = _compact(_packed_keys(s, cl), cur)
    while cl < w:
        step = min(32, w - cl)
        nxt = np.empty(n - step + 1, np.int64)
        _compact(_packed_keys(s, step), nxt)
        mm = n - (cl + step) + 1
        comb = np.empty(mm, np.uint64)
        base = np.uint64(n + 1)
        for i in range(mm):
            comb[i] = np.uint64(cur[i]) * base + np.uint64(nxt[i + cl])
        cur = np.empty(mm, np.int64)
        nv = _compact(comb, cur)
        cl += step
    for i in range(m):  # (slice assignment costs seconds of compile time)
        ids[i] = cur[i]
    return nv


# --------------------------------------------------------------------------
# k-mer shuffles
# --------------------------------------------------------------------------

# columns of ``runs``
_R_START, _R_LEN, _R_NV, _R_V0, _R_ROOT, _R_VOFF, _R_EOFF = 0, 1, 2, 3, 4, 5, 6


@_kernel
def build_graphs(codes, start, end, k, runs, n_runs, voffs, vbase, etgt, e0, e1):
    """Per example, split ``[start, end)`` into N-free runs and build their graphs.

    For ``k = 1`` only runs of length >= 2 are recorded. For ``k >= 2`` a run
    of ``n`` bases with at least two k-mers gets its de Bruijn multigraph:
    ``nv`` vertices (its distinct (k-1)-mers), the start vertex ``v0`` and
    final vertex ``root``; ``voffs[e, voff + v] .. voffs[e, voff + v + 1]``
    is the slice of ``etgt[e]`` holding the targets of ``v``'s out-edges and
    ``vbase[e, voff + v]`` the last base of ``v``.
    """
    w = k - 1
    tsize = 1 << (2 * min(max(w, 1), _TABLE_MAX))
    table = np.full(tsize, -1, np.int64)
    ids = np.empty(max(end - start, 1), np.int64)
    for e in range(e0, e1):
        ce = codes[e]
        re = runs[e]
        vo = voffs[e]
        vbe = vbase[e]
        ete = etgt[e]
        nr = 0
        voff = 0
        eoff = 0
        j = start
        while j < end:
            if ce[j] == 4:
                j += 1
                continue
            a = j
            while j < end and ce[j] != 4:
                j += 1
            n = j - a
            if k == 1:
                if n >= 2:
                    re[nr, _R_START] = a
                    re[nr, _R_LEN] = n
                    nr += 1
                continue
            ne = n - k + 1
            if ne < 2:
                continue
            s = ce[a:j]
            m = ne + 1
            nv = _window_ids(s, w, ids, table)
            for v in range(nv + 1):
                vo[voff + v] = 0
            for i in range(m):
                vbe[voff + ids[i]] = s[i + w - 1]
            for i in range(ne):
                vo[voff + ids[i] + 1] += 1
            acc = eoff
            for v in range(nv + 1):
                acc += vo[voff + v]
                vo[voff + v] = acc
            # vo[voff + v] is now the start of v's slice; filling advances it
            for i in range(ne):
                src = voff + ids[i]
                pos = vo[src]
                ete[pos] = ids[i + 1]
                vo[src] = pos + 1
            # ... to the end of v's slice, so shift back by one vertex
            for v in range(nv, 0, -1):
                vo[voff + v] = vo[voff + v - 1]
            vo[voff] = eoff
            re[nr, _R_START] = a
            re[nr, _R_LEN] = n
            re[nr, _R_NV] = nv
            re[nr, _R_V0] = ids[0]
            re[nr, _R_ROOT] = ids[m - 1]
            re[nr, _R_VOFF] = voff
            re[nr, _R_EOFF] = eoff
            nr += 1
            voff += nv + 1
            eoff += ne
        n_runs[e] = nr




@njit(inline="always")
def _lemire(state, x, un):
    """Uniform ``uint64`` in ``[0, un)`` from the 32 random bits ``x``
    (Lemire 2019); on rejection, fresh bits are drawn from ``state``."""
    m = x * un
    low = m & _MASK32
    if low < un:
        t = (_TWO32 - un) % un
        while low < t:
            state = state + _GOLDEN
            m = (_mix64(state) >> _U32) * un
            low = m & _MASK32
    return state, m >> _U32


@_kernel
def _fisher_yates(state, arr, o, c):
    """Uniformly permute ``arr[o:o + c]`` in place; return the new state.

    Each 64-bit output of the generator serves two swaps (its two 32-bit
    halves, each turned into an index by Lemire's exact method).
    """
    uo = np.uint64(o)
    i = np.uint64(c)
    while i > _U1:
        state = state + _GOLDEN
        r = _mix64(state)
        state, j = _lemire(state, r >> _U32, i)
        i = i - _U1
        t = arr[uo + i]
        arr[uo + i] = arr[uo + j]
        arr[uo + j] = t
        if i > _U1:
            state, j = _lemire(state, r & _MASK32, i)
            i = i - _U1
            t = arr[uo + i]
            arr[uo + i] = arr[uo + j]
            arr[uo + j] = t
    return state


@_kernel
def _prepare_lane(state, tgl, ptrl, edges, off, nv, root, nxt, intree):
    """Order a run's out-edges for one reference; return the new state.

    ``edges`` (the targets, grouped by source vertex as given by ``off``) are
    copied into ``tgl``. Wilson's algorithm draws an arborescence towards
    ``root`` in which the edge out of ``v`` is chosen with probability
    proportional to its multiplicity (a random walk over out-edges;
    self-loops are erased). Each chosen last-exit edge is moved to the end of
    its vertex's slice, the other out-edges are put in uniformly random
    order, and ``ptrl[v]`` is set to the start of ``v``'s slice.
    """
    for i in range(edges.shape[0]):
        tgl[i] = edges[i]
    for v in range(nv):
        intree[v] = False
    intree[root] = True
    for i in range(nv):
        u = i
        while not intree[u]:
            o = off[u]
            state, r = _below(state, off[u + 1] - o)
            nxt[u] = o + r
            u = tgl[o + r]
        u = i
        while not intree[u]:
            intree[u] = True
            u = tgl[nxt[u]]
    for v in range(nv):
        o = off[v]
        last = off[v + 1] - 1
        ptrl[v] = o
        if v == root:
            c = last + 1 - o
        else:
            t = tgl[nxt[v]]
            tgl[nxt[v]] = tgl[last]
            tgl[last] = t
            c = last - o
        if c >= 2:
            state = _fisher_yates(state, tgl, o, c)
    return state


#: References of one example walked in lock-step, so that the CPU overlaps
#: their dependency chains (load pointer -> load next vertex).
_LANES = 4


@_kernel
def shuffle_pairs(codes, k, runs, n_runs, voffs, vbase, etgt, keys, out, p0, p1):
    """Shuffle the (example, reference) pairs ``p0 <= p < p1`` into ``out``.

    ``out`` is ``(N, K, L)`` uint8 base codes; pair ``p`` is example
    ``p // K``, reference ``p % K``. ``keys[e]`` is the example's hash (see
    :func:`example_keys`). Each reference keeps its own random stream, so the
    result does not depend on how pairs are grouped or split.
    """
    n_refs = out.shape[1]
    width = max(etgt.shape[1], 1)
    vw = max(voffs.shape[1], 1)
    tg = np.empty((_LANES, width), np.int32)
    ptr = np.empty((_LANES, vw), np.uint32)
    off = np.empty(vw, np.int32)
    vb = np.empty(vw, np.uint8)
    nxt = np.empty(vw, np.int64)
    intree = np.empty(vw, np.bool_)
    states = np.empty(_LANES, np.uint64)
    one32 = np.uint32(1)
    t0, t1, t2, t3 = tg[0], tg[1], tg[2], tg[3]
    w0, w1, w2, w3 = ptr[0], ptr[1], ptr[2], ptr[3]
    p = p0
    while p < p1:
        e = p // n_refs
        r0 = p - e * n_refs
        g = min(_LANES, n_refs - r0, p1 - p)
        seq = out[e, r0 : r0 + g]
        for lane in range(g):
            states[lane] = _ref_state(keys[e], np.uint64(r0 + lane))
            _copy_row(codes[e], seq[lane])
        for ri in range(n_runs[e]):
            a = runs[e, ri, _R_START]
            n = runs[e, ri, _R_LEN]
            if k == 1:
                for lane in range(g):
                    states[lane] = _fisher_yates(states[lane], seq[lane], a, n)
                continue
            nv = runs[e, ri, _R_NV]
            root = runs[e, ri, _R_ROOT]
            voff = runs[e, ri, _R_VOFF]
            eoff = runs[e, ri, _R_EOFF]
            ne = n - k + 1
            for v in range(nv + 1):
                off[v] = voffs[e, voff + v] - eoff
            for v in range(nv):
                vb[v] = vbase[e, voff + v]
            for lane in range(g):
                states[lane] = _prepare_lane(
                    states[lane], tg[lane], ptr[lane], etgt[e, eoff : eoff + ne],
                    off, nv, root, nxt, intree,
                )
            # Walk the Eulerian path: from each vertex take its next out-edge
            # in the drawn order, writing the last base of each new vertex.
            v0 = np.uint64(runs[e, ri, _R_V0])
            first = a + k - 1
            if g == _LANES:
                q0, q1, q2, q3 = seq[0], seq[1], seq[2], seq[3]
                c0 = c1 = c2 = c3 = v0
                for pos in range(first, first + ne):
                    j = w0[c0]
                    w0[c0] = j + one32
                    c0 = np.uint64(t0[j])
                    q0[pos] = vb[c0]
                    j = w1[c1]
                    w1[c1] = j + one32
                    c1 = np.uint64(t1[j])
                    q1[pos] = vb[c1]
                    j = w2[c2]
                    w2[c2] = j + one32
                    c2 = np.uint64(t2[j])
                    q2[pos] = vb[c2]
                    j = w3[c3]
                    w3[c3] = j + one32
                    c3 = np.uint64(t3[j])
                    q3[pos] = vb[c3]
            else:
                for lane in range(g):
                    c0 = v0
                    tl = tg[lane]
                    wl = ptr[lane]
                    ql = seq[lane]
                    for pos in range(first, first + ne):
                        j = wl[c0]
                        wl[c0] = j + one32
                        c0 = np.uint64(tl[j])
                        ql[pos] = vb[c0]
        p += g


@_kernel
def example_keys(seed, tag, example_indices):
    """Per-example hashes of ``(seed, tag, example index)`` as ``uint64``."""
    n = example_indices.shape[0]
    keys = np.empty(n, np.uint64)
    for i in range(n):
        keys[i] = _example_key(seed, tag, np.uint64(example_indices[i]))
    return keys


# --------------------------------------------------------------------------
# GC-matched iid sequences
# --------------------------------------------------------------------------


@_kernel
def gc_fractions(codes, start, end):
    """GC fraction ``(#C + #G) / (#A + #C + #G + #T)`` of ``codes[:, start:end]``
    per example (``float64``; 0.5 where the window holds no base)."""
    n_ex = codes.shape[0]
    gc = np.empty(n_ex, np.float64)
    for e in range(n_ex):
        n_at = 0
        n_gc = 0
        for j in range(start, end):
            b = codes[e, j]
            if b == 1 or b == 2:
                n_gc += 1
            elif b != 4:
                n_at += 1
        gc[e] = 0.5 if n_at + n_gc == 0 else n_gc / (n_at + n_gc)
    return gc


@_kernel
def gc_pairs(codes, start, end, gc, keys, out, p0, p1):
    """Draw iid bases in ``[start, end)`` for the pairs ``p0 <= p < p1``.

    ``out`` is ``(N, K, L)`` uint8 base codes. Example ``e`` draws A, C, G, T
    with probabilities ``(1 - gc[e]) / 2``, ``gc[e] / 2``, ``gc[e] / 2``,
    ``(1 - gc[e]) / 2`` from a 53-bit uniform; ``N`` positions and positions
    outside the window are copied.
    """
    n_refs = out.shape[1]
    for p in range(p0, p1):
        e = p // n_refs
        r = p - e * n_refs
        t0 = (1.0 - gc[e]) / 2.0
        t1 = t0 + gc[e] / 2.0
        t2 = t1 + gc[e] / 2.0
        state = _ref_state(keys[e], np.uint64(r))
        seq = out[e, r]
        _copy_row(codes[e], seq)
        for j in range(start, end):
            if seq[j] == 4:
                continue
            state, u = _uniform01(state)
            if u < t0:
                seq[j] = 0
            elif u < t1:
                seq[j] = 1
            elif u < t2:
                seq[j] = 2
            else:
                seq[j] = 3
