"""bigWig writing: the midpoint rule against a brute-force loop, read back by both libraries."""

import os

import numpy as np
import pandas as pd
import pytest

from captum_genomics.seq.bigwig import BACKENDS, read_bigwig_intervals, write_bigwig


def _installed(name):
    try:
        __import__(name)
    except ImportError:
        return False
    return True


INSTALLED = [b for b in BACKENDS if _installed(b)]
if not INSTALLED:
    pytest.skip("neither pybigtools nor pyBigWig is installed", allow_module_level=True)


def brute_force_track(chrom_sizes, regions, values):
    """Per-base expected values: each base from the covering region whose centre is
    nearest (base p at p + 0.5, region centre (start + end) / 2); ties go to the region
    earlier in (chromosome order, start) order, then table order; NaN where uncovered."""
    rank = {c: k for k, c in enumerate(chrom_sizes)}
    order = sorted(range(len(regions)),
                   key=lambda i: (rank[regions["chrom"].iloc[i]], regions["start"].iloc[i]))
    track = {c: np.full(n, np.nan, dtype=np.float32) for c, n in chrom_sizes.items()}
    best = {c: np.full(n, np.inf) for c, n in chrom_sizes.items()}
    for i in order:
        chrom, s, e = regions["chrom"].iloc[i], regions["start"].iloc[i], regions["end"].iloc[i]
        for p in range(s, e):
            if not 0 <= p < chrom_sizes[chrom]:
                continue
            distance = abs((2 * p + 1) - (s + e))  # 2 * |(p + 0.5) - (s + e) / 2|
            if distance < best[chrom][p]:
                best[chrom][p] = distance
                track[chrom][p] = values[i, p - s]
    return track


def read_all(path, chrom_sizes, backend=None):
    return {c: read_bigwig_intervals(path, c, 0, n, backend=backend)
            for c, n in chrom_sizes.items()}


def assert_tracks_equal(got, expected):
    assert got.keys() == expected.keys()
    for chrom in expected:
        np.testing.assert_array_equal(got[chrom], expected[chrom], err_msg=chrom)


def random_case(rng, width, n, chrom_sizes, steps):
    rows = []
    for chrom, size in chrom_sizes.items():
        start = int(rng.integers(-width, 5))
        while start < size + 3 and len(rows) < n:
            rows.append((chrom, start, start + width))
            start += int(rng.choice(steps))
    rng.shuffle(rows)  # the writer must sort
    regions = pd.DataFrame(rows, columns=["chrom", "start", "end"])
    values = rng.standard_normal((len(rows), width)).astype(np.float32)
    return regions, values


@pytest.mark.parametrize("backend", INSTALLED)
@pytest.mark.parametrize("width, steps", [
    (10, [3, 4, 5, 7]),           # odd and even steps: ties at half-integer midpoints
    (11, [1, 2, 6, 11, 12, 15]),  # odd width, adjacent and separated regions
    (8, [0, 4, 9]),               # repeated regions (step 0) and gaps
])
def test_midpoint_rule_against_brute_force(tmp_path, backend, width, steps):
    rng = np.random.default_rng(width)
    chrom_sizes = {"chr2": 97, "chr1": 60, "chrEmpty": 30}
    regions, values = random_case(rng, width, 200, {"chr2": 97, "chr1": 60}, steps)
    path = tmp_path / "track.bw"
    assert write_bigwig(path, chrom_sizes, regions, values, backend=backend) == path
    expected = brute_force_track(chrom_sizes, regions, values)
    assert np.isnan(expected.pop("chrEmpty")).all()
    assert_tracks_equal(read_all(path, {"chr2": 97, "chr1": 60}, backend), expected)
    try:  # a chromosome without values: absent (pybigtools) or all NaN (pyBigWig)
        assert np.isnan(read_bigwig_intervals(path, "chrEmpty", 0, 30, backend=backend)).all()
    except ValueError as err:
        assert "no chromosome 'chrEmpty'" in str(err)
    assert sorted(os.listdir(tmp_path)) == ["track.bw"]  # no temporary left behind


def test_midpoint_rule_by_hand(tmp_path):
    # centres 5.0 and 8.0, midpoint 6.5: bases 0..5 (at 0.5..5.5) are nearer the first;
    # base 6 (at 6.5) is equally near both and goes to the left region; 7.. to the second.
    regions = pd.DataFrame({"chrom": ["c", "c"], "start": [0, 3], "end": [10, 13]})
    values = np.stack([np.full(10, 1.0), np.full(10, 2.0)]).astype(np.float32)
    path = tmp_path / "t.bw"
    write_bigwig(path, {"c": 12}, regions, values)
    got = read_bigwig_intervals(path, "c", 0, 12)
    np.testing.assert_array_equal(got, [1] * 7 + [2] * 5)  # base 12 is off the chromosome
    # a tie: centres 5 and 6, base 5 (at 5.5) is equally near both -> the left region
    regions = pd.DataFrame({"chrom": ["c", "c"], "start": [1, 0], "end": [11, 10]})
    write_bigwig(path, {"c": 20}, regions, values, overwrite=True)
    got = read_bigwig_intervals(path, "c", 0, 12)
    np.testing.assert_array_equal(got[:11], [2] * 6 + [1] * 5)
    assert np.isnan(got[11])


def test_demo_layout(tmp_path):
    """The demo's 1000-bp windows every 500 bp: each window contributes its middle half."""
    from captum_genomics.seq.datasets import demo_regions

    regions = demo_regions()
    values = np.repeat(np.arange(len(regions), dtype=np.float32)[:, None], 1000, axis=1)
    path = tmp_path / "demo.bw"
    write_bigwig(path, {"chr17": 40000}, regions, values)
    got = read_bigwig_intervals(path, "chr17", 0, 40000)
    expected = brute_force_track({"chr17": 40000}, regions, values)["chr17"]
    np.testing.assert_array_equal(got, expected)
    assert got[0] == 0 and got[750] == 1 and got[749] == 0 and got[39999] == len(regions) - 1


@pytest.mark.skipif(len(INSTALLED) < 2, reason="needs both pybigtools and pyBigWig")
@pytest.mark.parametrize("writer", BACKENDS)
def test_readable_by_the_other_library(tmp_path, writer):
    rng = np.random.default_rng(1)
    chrom_sizes = {"chrA": 150, "chrB": 80}
    regions, values = random_case(rng, 12, 60, chrom_sizes, [5, 6, 13])
    path = tmp_path / f"{writer}.bw"
    write_bigwig(path, chrom_sizes, regions, values, backend=writer)
    reader = [b for b in BACKENDS if b != writer][0]
    expected = brute_force_track(chrom_sizes, regions, values)
    assert_tracks_equal(read_all(path, chrom_sizes, reader), expected)
    if reader == "pyBigWig":
        import pyBigWig

        bw = pyBigWig.open(os.fspath(path))
        assert bw.isBigWig() and bw.chroms() == chrom_sizes
        bw.close()


def test_deterministic_bytes(tmp_path):
    rng = np.random.default_rng(2)
    chrom_sizes = {"c1": 300}
    regions, values = random_case(rng, 20, 40, chrom_sizes, [7, 10])
    a, b = tmp_path / "a.bw", tmp_path / "b.bw"
    write_bigwig(a, chrom_sizes, regions, values)
    write_bigwig(b, chrom_sizes, regions.iloc[::-1], values[::-1])
    assert a.read_bytes() == b.read_bytes()


def test_overwrite(tmp_path):
    regions = pd.DataFrame({"chrom": ["c"], "start": [0], "end": [3]})
    path = tmp_path / "x.bw"
    path.write_bytes(b"keep")
    with pytest.raises(FileExistsError, match="x.bw.*overwrite=True"):
        write_bigwig(path, {"c": 5}, regions, np.ones((1, 3), np.float32))
    assert path.read_bytes() == b"keep"
    write_bigwig(path, {"c": 5}, regions, np.ones((1, 3), np.float32), overwrite=True)
    np.testing.assert_array_equal(read_bigwig_intervals(path, "c", 0, 4), [1, 1, 1, np.nan])
    assert sorted(os.listdir(tmp_path)) == ["x.bw"]


def test_failed_write_leaves_nothing(tmp_path):
    regions = pd.DataFrame({"chrom": ["c", "c"], "start": [0, 10], "end": [4, 14],
                            "line": [3, 9]})
    values = np.ones((2, 4), np.float32)
    values[1, 2] = np.nan
    path = tmp_path / "nan.bw"
    with pytest.raises(ValueError, match="line 9.*non-finite"):
        write_bigwig(path, {"c": 20}, regions, values)
    assert os.listdir(tmp_path) == []


def test_lazy_values(tmp_path):
    h5py = pytest.importorskip("h5py")
    rng = np.random.default_rng(4)
    chrom_sizes = {"c": 5000}
    regions, values = random_case(rng, 30, 2500, chrom_sizes, [10, 20])
    regions = regions.sort_values("start", kind="stable")
    values = values[regions.index.to_numpy()]
    regions = regions.reset_index(drop=True)
    with h5py.File(tmp_path / "v.h5", "w") as f:
        f.create_dataset("v", data=values, chunks=(64, 30))
    with h5py.File(tmp_path / "v.h5", "r") as f:
        write_bigwig(tmp_path / "l.bw", chrom_sizes, regions, f["v"])
    write_bigwig(tmp_path / "m.bw", chrom_sizes, regions, values)
    assert (tmp_path / "l.bw").read_bytes() == (tmp_path / "m.bw").read_bytes()
    # rows out of table order (an unsorted BED) from a memory map
    order = np.random.default_rng(5).permutation(len(regions))
    np.save(tmp_path / "v.npy", values[order])
    mapped = np.load(tmp_path / "v.npy", mmap_mode="r")
    write_bigwig(tmp_path / "u.bw", chrom_sizes, regions.iloc[order], mapped)
    assert (tmp_path / "u.bw").read_bytes() == (tmp_path / "m.bw").read_bytes()


@pytest.mark.parametrize("regions, values, error, words", [
    (pd.DataFrame({"chrom": ["c"], "start": [0], "end": [4]}), np.ones((2, 4)),
     ValueError, "shape"),
    (pd.DataFrame({"chrom": ["c"], "start": [0], "end": [5], "line": [7]}), np.ones((1, 4)),
     ValueError, "line 7 is 5 bp"),
    (pd.DataFrame({"chrom": ["chrZ"], "start": [0], "end": [4]}), np.ones((1, 4)),
     ValueError, "'chrZ' is not in `chrom_sizes`"),
    (pd.DataFrame({"chrom": [], "start": [], "end": []}), np.ones((0, 4)),
     ValueError, "empty"),
    (pd.DataFrame({"chrom": ["c"], "start": [0]}), np.ones((1, 4)),
     ValueError, "lacks the column"),
    ([("c", 0, 4)], np.ones((1, 4)), TypeError, "DataFrame"),
])
def test_bad_inputs(tmp_path, regions, values, error, words):
    with pytest.raises(error, match=words):
        write_bigwig(tmp_path / "bad.bw", {"c": 10}, regions, values)
    assert os.listdir(tmp_path) == []


def test_bad_chrom_sizes_and_folder(tmp_path):
    regions = pd.DataFrame({"chrom": ["c"], "start": [0], "end": [4]})
    with pytest.raises(ValueError, match="chrom_sizes"):
        write_bigwig(tmp_path / "a.bw", {"c": 0}, regions, np.ones((1, 4)))
    with pytest.raises(FileNotFoundError, match="nofolder"):
        write_bigwig(tmp_path / "nofolder" / "a.bw", {"c": 9}, regions, np.ones((1, 4)))
    with pytest.raises(ValueError, match="backend"):
        write_bigwig(tmp_path / "a.bw", {"c": 9}, regions, np.ones((1, 4)), backend="x")
