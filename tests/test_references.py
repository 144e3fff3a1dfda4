"""Tests of captum_genomics.references: k-mer shuffles, simple references, generators.

Counts are checked against a brute-force k-mer count, uniformity against a
brute-force enumeration of every valid shuffle (depth-first search over the
remaining k-mer multiset, independent of the Eulerian-path construction).
"""

from __future__ import annotations

import itertools
from collections import Counter

import numpy as np
import pytest
import scipy.stats
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from captum_genomics.references import (
    REFERENCE_NAMES,
    CallableReferences,
    DinucleotideShuffle,
    GCMatchedReferences,
    KmerShuffle,
    ReferenceGenerator,
    UniformReferences,
    ZeroReferences,
    dinucleotide_shuffle,
    gc_matched_references,
    kmer_shuffle,
    resolve_reference_generator,
    uniform_references,
    zero_references,
)

ALPHABET = "ACGT"


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------


def one_hot(seqs, dtype=torch.float32) -> torch.Tensor:
    """Strings over ACGTN (equal lengths) -> one-hot ``(N, 4, L)``; N -> zeros."""
    if isinstance(seqs, str):
        seqs = [seqs]
    length = len(seqs[0])
    x = torch.zeros(len(seqs), 4, length, dtype=dtype)
    for i, s in enumerate(seqs):
        for j, c in enumerate(s):
            if c != "N":
                x[i, ALPHABET.index(c), j] = 1
    return x


def decode(x) -> str:
    """One-hot ``(4, L)`` -> string over ACGTN."""
    x = torch.as_tensor(x).float()
    idx = x.argmax(0).tolist()
    present = (x.sum(0) > 0).tolist()
    return "".join(ALPHABET[i] if p else "N" for i, p in zip(idx, present))


def decode_all(refs: torch.Tensor) -> list[str]:
    """``(K, 4, L)`` -> K strings (fast, for many draws)."""
    r = refs.float()
    codes = r.argmax(1).numpy().astype(np.uint8)
    codes[(r.sum(1) == 0).numpy()] = 4
    table = np.frombuffer(b"ACGTN", dtype=np.uint8)
    return [row.tobytes().decode() for row in table[codes]]


def kmer_counts(s: str, k: int) -> Counter:
    return Counter(s[i : i + k] for i in range(len(s) - k + 1))


def n_free_runs(s: str):
    """(start, text) of the maximal N-free runs of ``s``."""
    out, i = [], 0
    while i < len(s):
        if s[i] == "N":
            i += 1
            continue
        j = i
        while j < len(s) and s[j] != "N":
            j += 1
        out.append((i, s[i:j]))
        i = j
    return out


def enumerate_shuffles(s: str, k: int) -> list[str]:
    """Every sequence with the k-mer counts and first (k-1)-mer of ``s``."""
    if k == 1:
        return sorted({"".join(p) for p in itertools.permutations(s)})
    out = []

    def dfs(prefix, rem):
        if not rem:
            out.append(prefix)
            return
        tail = prefix[len(prefix) - (k - 1) :]
        for b in ALPHABET:
            km = tail + b
            if rem.get(km, 0):
                rem[km] -= 1
                dfs(prefix + b, {key: v for key, v in rem.items() if v})
                rem[km] += 1

    dfs(s[: k - 1], dict(kmer_counts(s, k)))
    return out


def random_seqs(rng, n, length, p_n=0.0) -> list[str]:
    alphabet = np.array(list(ALPHABET + "N"))
    p = np.array([(1 - p_n) / 4] * 4 + [p_n])
    return ["".join(rng.choice(alphabet, size=length, p=p)) for _ in range(n)]


def assert_valid_shuffle(orig: str, ref: str, k: int, start: int = 0, end: int | None = None):
    """``ref`` keeps outside ``[start, end)``, the N positions, and every run's
    k-mer counts and first (k-1)-mer (hence also its last (k-1)-mer)."""
    end = len(orig) if end is None else end
    assert len(ref) == len(orig)
    assert ref[:start] == orig[:start]
    assert ref[end:] == orig[end:]
    win_o, win_r = orig[start:end], ref[start:end]
    assert [i for i, c in enumerate(win_o) if c == "N"] == [
        i for i, c in enumerate(win_r) if c == "N"
    ]
    for a, run in n_free_runs(win_o):
        got = win_r[a : a + len(run)]
        assert kmer_counts(got, k) == kmer_counts(run, k), (run, got, k)
        if len(run) >= k:
            assert got[: k - 1] == run[: k - 1]
            assert got[len(run) - k + 1 :] == run[len(run) - k + 1 :]
        if len(run) - k + 1 < 2:
            assert got == run


# --------------------------------------------------------------------------
# k-mer counts, windows, N
# --------------------------------------------------------------------------


@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_kmer_counts_preserved(k):
    rng = np.random.default_rng(k)
    seqs = random_seqs(rng, 5, 60)
    x = one_hot(seqs)
    refs = kmer_shuffle(x, 8, k=k, random_state=0)
    assert refs.shape == (5, 8, 4, 60)
    assert refs.dtype == x.dtype
    assert torch.all(refs.sum(2) == 1)
    changed = 0
    for i, s in enumerate(seqs):
        for r in range(8):
            ref = decode(refs[i, r])
            assert_valid_shuffle(s, ref, k)
            changed += ref != s
    assert changed > 30  # shuffles actually shuffle


@pytest.mark.parametrize("k", [8, 35])
def test_long_k_paths(k):
    # k = 8 uses the sorted 2-bit keys, k = 35 also combines 32-mer ids
    x_ = "ACAAAAA" if k == 8 else "ACGTTGCAACGTACGATCGATCGTAGCTAGCTAG"
    s = x_ + "C" + x_ + "G" + x_ + "TT" + x_
    refs = kmer_shuffle(one_hot([s, s[::-1]]), 30, k=k, random_state=1)
    outs = set()
    for i, seq in enumerate([s, s[::-1]]):
        for r in range(30):
            ref = decode(refs[i, r])
            assert_valid_shuffle(seq, ref, k)
            outs.add(ref)
    assert len(outs) > 2


def test_dinucleotide_keeps_first_and_last_base():
    rng = np.random.default_rng(0)
    seqs = random_seqs(rng, 4, 40)
    refs = dinucleotide_shuffle(one_hot(seqs), 10, random_state=3)
    for i, s in enumerate(seqs):
        for r in range(10):
            ref = decode(refs[i, r])
            assert ref[0] == s[0] and ref[-1] == s[-1]
            assert kmer_counts(ref, 2) == kmer_counts(s, 2)


def test_dinucleotide_shuffle_is_kmer_shuffle_k2():
    x = one_hot(random_seqs(np.random.default_rng(1), 3, 50))
    assert torch.equal(
        dinucleotide_shuffle(x, 5, random_state=7), kmer_shuffle(x, 5, 2, random_state=7)
    )
    with pytest.raises(TypeError, match="k=2"):
        dinucleotide_shuffle(x, 5, k=3)


@pytest.mark.parametrize(("start", "end"), [(10, 40), (-30, None), (None, 25), (5, -5), (20, 20)])
def test_window_leaves_outside_untouched(start, end):
    rng = np.random.default_rng(2)
    seqs = random_seqs(rng, 3, 50)
    refs = kmer_shuffle(one_hot(seqs), 6, k=2, start=start, end=end, random_state=0)
    s0, e0, _ = slice(start, end).indices(50)
    for i, s in enumerate(seqs):
        for r in range(6):
            assert_valid_shuffle(s, decode(refs[i, r]), 2, s0, e0)


@pytest.mark.parametrize("k", [1, 2, 3])
def test_n_columns_stay_and_runs_shuffle_independently(k):
    seqs = ["ACGTTGCANNACGGTACCATNGATTACAGATTACAN", "NNNNACGTACGTACGGTTTGCAAAGNCATNNNNNNN"]
    refs = kmer_shuffle(one_hot(seqs), 20, k=k, random_state=5)
    for i, s in enumerate(seqs):
        for r in range(20):
            ref = decode(refs[i, r])
            assert_valid_shuffle(s, ref, k)
            assert torch.all(refs[i, r][:, [j for j, c in enumerate(s) if c == "N"]] == 0)


def test_all_n_and_tiny_inputs():
    x = one_hot(["NNNN", "ANNA"])
    assert torch.equal(kmer_shuffle(x, 3, random_state=0), x[:, None].expand(2, 3, 4, 4))
    assert kmer_shuffle(torch.zeros(0, 4, 10), 3).shape == (0, 3, 4, 10)
    assert kmer_shuffle(torch.zeros(2, 4, 0), 3).shape == (2, 3, 4, 0)
    one = one_hot("ACG")
    assert torch.equal(kmer_shuffle(one, 2, k=3, random_state=0)[0, 0], one[0])


@pytest.mark.parametrize(
    "dtype", [torch.float64, torch.float16, torch.bfloat16, torch.int8, torch.int64, torch.bool]
)
def test_dtypes(dtype):
    seqs = random_seqs(np.random.default_rng(3), 2, 30, p_n=0.1)
    x32 = one_hot(seqs)
    x = x32.to(dtype)
    refs = kmer_shuffle(x, 4, random_state=11)
    assert refs.dtype == dtype and refs.device == x.device
    assert torch.equal(refs.float(), kmer_shuffle(x32, 4, random_state=11))


def test_input_not_modified_and_noncontiguous():
    x = one_hot(random_seqs(np.random.default_rng(4), 3, 40))
    before = x.clone()
    kmer_shuffle(x, 5, random_state=0)
    gc_matched_references(x, 5, random_state=0)
    uniform_references(x, 2)
    assert torch.equal(x, before)
    xt = x.transpose(0, 2).contiguous().transpose(0, 2)  # same values, other strides
    assert not xt.is_contiguous()
    assert torch.equal(kmer_shuffle(xt, 5, random_state=0), kmer_shuffle(x, 5, random_state=0))


# --------------------------------------------------------------------------
# seeding
# --------------------------------------------------------------------------


@pytest.mark.parametrize("fn", [kmer_shuffle, gc_matched_references])
def test_seeding_contract(fn):
    x = one_hot(random_seqs(np.random.default_rng(5), 6, 80, p_n=0.05))
    a = fn(x, 7, random_state=123)
    assert torch.equal(a, fn(x, 7, random_state=123))  # bit-identical
    assert not torch.equal(a, fn(x, 7, random_state=124))  # other seed, other refs
    assert not torch.equal(fn(x, 7), fn(x, 7))  # None: fresh entropy
    # batch invariance: example i alone with its index == inside the batch
    for i in (0, 3, 5):
        alone = fn(x[i : i + 1], 7, random_state=123, example_indices=[i])
        assert torch.equal(alone[0], a[i])
    # a sub-batch with its indices, in another order
    idx = torch.tensor([4, 1, 2])
    assert torch.equal(fn(x[idx], 7, random_state=123, example_indices=idx), a[idx])
    # prefix property: reference r does not depend on n_references > r
    assert torch.equal(fn(x, 3, random_state=123), a[:, :3])
    assert torch.equal(fn(x, 20, random_state=123)[:, :7], a)
    # the same sequence at another index gets other references
    b = fn(x[:1], 7, random_state=123, example_indices=[99])
    assert not torch.equal(b[0], a[0])
    # a numpy Generator is accepted (one seed is drawn from it)
    g1, g2 = np.random.default_rng(0), np.random.default_rng(0)
    assert torch.equal(fn(x, 2, random_state=g1), fn(x, 2, random_state=g2))


@pytest.mark.parametrize("threads", [3, 7])  # split by examples (9 >= 2 * 3) / by pairs
@pytest.mark.parametrize("fn", [kmer_shuffle, gc_matched_references])
def test_thread_split_does_not_change_output(monkeypatch, threads, fn):
    from captum_genomics.references import _draw, shuffle

    x = one_hot(random_seqs(np.random.default_rng(6), 9, 300, p_n=0.02))
    ref = fn(x, 13, random_state=9)
    monkeypatch.setattr(_draw, "MIN_POSITIONS_PER_THREAD", 1)
    monkeypatch.setattr(_draw, "n_threads", lambda: threads)
    assert torch.equal(fn(x, 13, random_state=9), ref)
    monkeypatch.setattr(shuffle, "_BLOCK_POSITIONS", 700)  # several example blocks
    assert torch.equal(fn(x, 13, random_state=9), ref)


# --------------------------------------------------------------------------
# uniformity
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seq", "k"),
    [
        ("AACGT", 1),  # 60 permutations
        ("AACAGATAC", 2),  # 24
        ("ACGACTAGCA", 2),  # 30
        ("ACCCACGATGATG", 2),  # 27; tangermeme issue #27 reaches only 9
        ("ACACCACAACAAC", 3),  # 24
        ("ACAAAAACACAAAAAGACAAAAATACAAAAAGAACAAAAA", 8),  # 24, sorted-key ids
        ("GGCCGAAGNATAAAAT", 2),  # N-separated runs: 6 x 4, independent and uniform
    ],
)
def test_uniform_over_all_valid_shuffles(seq, k):
    runs = n_free_runs(seq)
    support = [""]
    pos = 0
    for a, run in runs:  # product over runs, N's in place
        options = enumerate_shuffles(run, k) if len(run) - k + 1 >= 2 else [run]
        support = [p + "N" * (a - pos) + o for p in support for o in options]
        pos = a + len(run)
    support = {p + "N" * (len(seq) - pos) for p in support}
    n_draws = max(3000, 60 * len(support))
    refs = kmer_shuffle(one_hot(seq), n_draws, k=k, random_state=2024)
    counts = Counter(decode_all(refs[0]))
    assert set(counts) == support  # every valid shuffle reached, nothing else
    observed = np.array([counts[s] for s in sorted(support)])
    p = scipy.stats.chisquare(observed).pvalue
    assert p > 1e-3, (p, len(support), observed)


# --------------------------------------------------------------------------
# property test
# --------------------------------------------------------------------------


@st.composite
def shuffle_cases(draw):
    n = draw(st.integers(1, 3))
    length = draw(st.integers(0, 40))
    seqs = [
        "".join(draw(st.lists(st.sampled_from("ACGTN" if draw(st.booleans()) else "ACGT"),
                              min_size=length, max_size=length)))
        for _ in range(n)
    ]
    k = draw(st.integers(1, 5))
    start = draw(st.one_of(st.none(), st.integers(-length, length)))
    end = draw(st.one_of(st.none(), st.integers(-length, length)))
    s0, e0, _ = slice(start, end).indices(length)
    if s0 > e0:
        start, end = end, start
    seed = draw(st.integers(0, 2**64 - 1))
    return seqs, k, start, end, seed


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(shuffle_cases())
def test_property_random_inputs(case):
    seqs, k, start, end, seed = case
    length = len(seqs[0])
    x = one_hot(seqs) if length else torch.zeros(len(seqs), 4, 0)
    before = x.clone()
    refs = kmer_shuffle(x, 3, k=k, start=start, end=end, random_state=seed)
    assert torch.equal(x, before)
    assert refs.shape == (len(seqs), 3, 4, length)
    s0, e0, _ = slice(start, end).indices(length)
    for i, s in enumerate(seqs):
        for r in range(3):
            assert_valid_shuffle(s, decode(refs[i, r]) if length else "", k, s0, e0)


# --------------------------------------------------------------------------
# bad input
# --------------------------------------------------------------------------

GOOD = one_hot(["ACGTACGTAC", "TTGCAACGTA"])


def _bad(**changes):
    kw = dict(sequences=GOOD, n_references=2, k=2, random_state=0)
    kw.update(changes)
    seqs = kw.pop("sequences")
    return lambda: kmer_shuffle(seqs, **kw)


def _with(value, idx=(0, 1, 3)):
    x = GOOD.clone()
    x[idx] = value
    return x


@pytest.mark.parametrize(
    ("call", "exc", "match"),
    [
        (_bad(sequences=GOOD.numpy()), TypeError, "`sequences`"),
        (_bad(sequences=GOOD[0]), ValueError, r"`sequences` must have shape \(\?, 4, \?\)"),
        (_bad(sequences=GOOD[:, :3]), ValueError, r"`sequences` must have shape"),
        (_bad(sequences=_with(0.5)), ValueError, "`sequences` must be one-hot"),
        (_bad(sequences=_with(1.0, (0, 0, 3))), ValueError, "`sequences` must be one-hot"),
        (_bad(sequences=_with(float("nan"))), ValueError, "`sequences` contains .*NaN"),
        (_bad(sequences=_with(float("inf"))), ValueError, "`sequences` contains .*Inf"),
        (_bad(sequences=GOOD.to(torch.complex64)), ValueError, "`sequences` must be real"),
        (_bad(k=0), ValueError, "`k` must be an integer >= 1"),
        (_bad(k=2.0), ValueError, "`k`"),
        (_bad(n_references=0), ValueError, "`n_references` must be an integer >= 1"),
        (_bad(start=11), ValueError, r"`start` must be in \[-10, 10\]"),
        (_bad(start=-11), ValueError, "`start`"),
        (_bad(end=12), ValueError, r"`end` must be in \[-10, 10\]"),
        (_bad(start=1.5), ValueError, "`start` must be an integer"),
        (_bad(start=6, end=3), ValueError, "`start` .* must not come after `end`"),
        (_bad(example_indices=[0]), ValueError, r"`example_indices` must have shape \(2,\)"),
        (_bad(example_indices=[[0, 1]]), ValueError, "`example_indices` must have shape"),
        (_bad(example_indices=[0, -1]), ValueError, "`example_indices` must be non-negative"),
        (_bad(example_indices=[0.0, 1.0]), ValueError, "`example_indices` must hold integers"),
        (_bad(random_state="seed"), TypeError, "`random_state`"),
        (_bad(random_state=-1), ValueError, "`random_state`"),
    ],
)
def test_bad_input_messages(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


@pytest.mark.parametrize(
    "fn",
    [
        lambda x: zero_references(x, 2),
        lambda x: uniform_references(x, 2),
        lambda x: gc_matched_references(x, 2),
        lambda x: dinucleotide_shuffle(x, 2),
    ],
)
def test_bad_input_all_functions(fn):
    with pytest.raises(ValueError, match="`sequences` must be one-hot"):
        fn(_with(2.0))
    with pytest.raises(ValueError, match="`sequences` must have shape"):
        fn(GOOD[:, :2])


def test_bad_n_references_simple():
    for fn in (zero_references, uniform_references, gc_matched_references):
        with pytest.raises(ValueError, match="`n_references`"):
            fn(GOOD, 0)


# --------------------------------------------------------------------------
# simple references
# --------------------------------------------------------------------------


def test_zero_references():
    x = one_hot(["ACGNT", "NNACG"]).double()
    z = zero_references(x, 3)
    assert z.shape == (2, 3, 4, 5) and z.dtype == torch.float64
    assert torch.count_nonzero(z) == 0


def test_uniform_references():
    x = one_hot(["ACGNT", "NNACG"])
    u = uniform_references(x, 2)
    assert u.shape == (2, 2, 4, 5) and u.dtype == torch.float32
    expected = torch.tensor([[1, 1, 1, 0, 1], [0, 0, 1, 1, 1]], dtype=torch.float32) * 0.25
    assert torch.equal(u, expected[:, None, None, :].expand(2, 2, 4, 5))
    with pytest.raises(ValueError, match="floating dtype"):
        uniform_references(x.to(torch.int8))


def test_gc_matched_references():
    rng = np.random.default_rng(7)
    gc_rich = "".join(rng.choice(list("GGGCCCCA"), size=2000))
    at_rich = "".join(rng.choice(list("AAATTTTG"), size=1000)) + "N" * 1000
    x = one_hot([gc_rich, at_rich])
    refs = gc_matched_references(x, 10, random_state=0)
    assert refs.shape == (2, 10, 4, 2000)
    assert torch.all(refs[1, :, :, 1000:] == 0)  # N stays N
    assert torch.all(refs[:, :, :, :1000].sum(2) == 1)
    for i, (s, length) in enumerate([(gc_rich, 2000), (at_rich, 1000)]):
        gc = sum(c in "CG" for c in s) / length
        freq = refs[i, :, :, :length].float().mean(dim=(0, 2))  # A, C, G, T
        expected = torch.tensor([(1 - gc) / 2, gc / 2, gc / 2, (1 - gc) / 2])
        assert torch.allclose(freq, expected, atol=0.01), (freq, expected)
    # window: only [start, end) is redrawn
    w = gc_matched_references(x, 4, start=100, end=200, random_state=1)
    assert torch.equal(w[:, :, :, :100], x[:, None, :, :100].expand(2, 4, 4, 100))
    assert torch.equal(w[:, :, :, 200:], x[:, None, :, 200:].expand(2, 4, 4, 1800))
    assert not torch.equal(w[:, :, :, 100:200], x[:, None, :, 100:200].expand(2, 4, 4, 100))


# --------------------------------------------------------------------------
# generators
# --------------------------------------------------------------------------


def test_resolve_reference_generator_names():
    assert repr(resolve_reference_generator(None)) == "DinucleotideShuffle()"
    assert isinstance(resolve_reference_generator("dinucleotide"), DinucleotideShuffle)
    shuffle = resolve_reference_generator("shuffle")
    assert isinstance(shuffle, KmerShuffle) and shuffle.k == 1
    assert isinstance(resolve_reference_generator("zeros"), ZeroReferences)
    assert isinstance(resolve_reference_generator("uniform"), UniformReferences)
    assert isinstance(resolve_reference_generator("gc"), GCMatchedReferences)
    gen = KmerShuffle(3, start=2, end=-2)
    assert resolve_reference_generator(gen) is gen
    assert repr(gen) == "KmerShuffle(k=3, start=2, end=-2)"
    assert repr(DinucleotideShuffle(end=5)) == "DinucleotideShuffle(end=5)"
    assert repr(GCMatchedReferences()) == "GCMatchedReferences()"
    assert set(REFERENCE_NAMES) == {"dinucleotide", "shuffle", "zeros", "uniform", "gc"}


def test_resolve_reference_generator_errors():
    with pytest.raises(ValueError, match="accepted names are .*dinucleotide"):
        resolve_reference_generator("dinuc")
    with pytest.raises(TypeError, match="`references` must be None, one of"):
        resolve_reference_generator(torch.zeros(1, 4, 3))
    with pytest.raises(ValueError, match="`k`"):
        KmerShuffle(k=0)
    with pytest.raises(ValueError, match="`start`"):
        DinucleotideShuffle(start="3")


def test_generators_match_functions():
    x = one_hot(random_seqs(np.random.default_rng(8), 3, 40, p_n=0.05))
    idx = torch.tensor([5, 6, 7])
    kw = dict(example_indices=idx, random_state=3)
    assert torch.equal(
        KmerShuffle(3, start=4)(x, 5, **kw), kmer_shuffle(x, 5, 3, start=4, **kw)
    )
    assert torch.equal(DinucleotideShuffle()(x, 5, **kw), dinucleotide_shuffle(x, 5, **kw))
    assert torch.equal(
        GCMatchedReferences(end=20)(x, 5, **kw), gc_matched_references(x, 5, end=20, **kw)
    )
    assert torch.equal(ZeroReferences()(x, 2, **kw), zero_references(x, 2))
    assert torch.equal(UniformReferences()(x, 2, **kw), uniform_references(x, 2))
    for gen in (KmerShuffle(), ZeroReferences(), GCMatchedReferences()):
        assert isinstance(gen, ReferenceGenerator)


def test_callable_references():
    x = one_hot(["ACGTA", "CCGTA"])
    seen = {}

    def plain(inputs, n):
        return torch.zeros(inputs.shape[0], n, 4, inputs.shape[-1])

    def seeded(inputs, n, *, example_indices=None, random_state=None):
        seen.update(example_indices=example_indices, random_state=random_state)
        return kmer_shuffle(inputs, n, example_indices=example_indices, random_state=random_state)

    def kwargs_only(inputs, n, **kwargs):
        seen.update(kwargs)
        return plain(inputs, n)

    gen = resolve_reference_generator(plain)
    assert isinstance(gen, CallableReferences) and "plain" in repr(gen)
    assert gen(x, 3, example_indices=[1, 2], random_state=4).shape == (2, 3, 4, 5)
    out = resolve_reference_generator(seeded)(x, 3, example_indices=[1, 2], random_state=4)
    assert seen == {"example_indices": [1, 2], "random_state": 4}
    assert torch.equal(out, kmer_shuffle(x, 3, example_indices=[1, 2], random_state=4))
    seen.clear()
    resolve_reference_generator(kwargs_only)(x, 2, random_state=8)
    assert seen == {"example_indices": None, "random_state": 8}

    with pytest.raises(ValueError, match=r"returned shape \(2, 4, 5\); expected"):
        resolve_reference_generator(lambda inp, n: inp)(x, 3)
    with pytest.raises(TypeError, match="must return a torch.Tensor"):
        resolve_reference_generator(lambda inp, n: inp.numpy())(x, 3)
