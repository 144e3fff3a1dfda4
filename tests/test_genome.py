"""BED reading, genome access and one-hot fetching, checked against plain-Python slicing."""

import ast
import gzip
import os
import pickle
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

pytest.importorskip("pyfaidx")

from captum_genomics.seq.datasets import (  # noqa: E402
    DEMO_GENOME_FILE,
    data_path,
    demo_genome_path,
    demo_regions,
)
from captum_genomics.seq.genome import (  # noqa: E402
    Genome,
    fetch_one_hot,
    open_genome,
    read_bed,
    region_seed_index,
    region_seed_indices,
    resize_regions,
)
from captum_genomics.seq.io import one_hot_encode  # noqa: E402

# --------------------------------------------------------------------------- helpers


def plain_fasta(path) -> dict:
    """Sequences of a FASTA file read with plain Python, case kept."""
    records, name = {}, None
    for line in Path(path).read_text().splitlines():
        if line.startswith(">"):
            name = line[1:].split()[0]
            records[name] = []
        elif line.strip():
            records[name].append(line.strip())
    return {k: "".join(v) for k, v in records.items()}


def hand_slice(seqs: dict, chrom: str, start: int, end: int) -> str:
    """``chrom:[start, end)`` by hand: 'N' off either end, upper case."""
    seq = seqs[chrom]
    return "".join(seq[p].upper() if 0 <= p < len(seq) else "N" for p in range(start, end))


@pytest.fixture
def genome_fa(tmp_path):
    """A three-record FASTA wrapped at 60 columns, with lower case and Ns."""
    rng = np.random.default_rng(7)
    seqs = {}
    text = []
    for name, length in (("chr1", 503), ("chr2", 120), ("chrM", 61)):
        s = "".join(rng.choice(list("ACGTacgtN"), size=length))
        seqs[name] = s
        text.append(f">{name} some description\n")
        text += [s[i:i + 60] + "\n" for i in range(0, length, 60)]
    path = tmp_path / "genome.fa"
    path.write_text("".join(text))
    return path


# --------------------------------------------------------------------------- read_bed

GOOD_BED = textwrap.dedent("""\
    # a comment
    track name=peaks description="test"
    browser position chr1:1-100

    chr1\t10\t20
    chr2\t0\t5\tpeakA
    chr1\t7\t7\t.\t0\t+
    chrM\t3\t60\tpeakB\t500\t-\t1.5\t2.0\t-1\t30
    """)


def expected_good_table():
    return pd.DataFrame({
        "chrom": pd.Series(["chr1", "chr2", "chr1", "chrM"], dtype=object),
        "start": np.array([10, 0, 7, 3], dtype=np.int64),
        "end": np.array([20, 5, 7, 60], dtype=np.int64),
        "name": pd.Series(["chr1:10-20", "peakA", "chr1:7-7", "peakB"], dtype=object),
        "line": np.array([5, 6, 7, 8], dtype=np.int64),
    })


@pytest.mark.parametrize("compress", [False, True])
def test_read_bed_good(tmp_path, compress):
    path = tmp_path / ("peaks.bed.gz" if compress else "peaks.bed")
    data = GOOD_BED.encode()
    path.write_bytes(gzip.compress(data) if compress else data)
    table = read_bed(path)
    pd.testing.assert_frame_equal(table, expected_good_table())
    assert table.attrs["path"] == os.fspath(path)


def test_read_bed_crlf_and_spaces(tmp_path):
    path = tmp_path / "win.bed"
    path.write_bytes(b"chr1 10 20\r\nchr2\t0\t5\tx y\r\n")
    table = read_bed(path)
    assert table["chrom"].tolist() == ["chr1", "chr2"]
    assert table["name"].tolist() == ["chr1:10-20", "x y"]
    assert table["end"].tolist() == [20, 5]


BAD_BEDS = {
    "two_columns": ("chr1\t1\t5\nchr1\t10\n", 2, "at least 3 columns"),
    "one_column": ("# header\nchr1\n", 2, "at least 3 columns"),
    "float_start": ("chr1\t1.5\t5\n", 1, "non-negative integer"),
    "word_end": ("chr1\t1\t5\nchr1\t1\tten\n", 2, "non-negative integer"),
    "start_after_end": ("chr1\t1\t5\n\nchr1\t9\t5\n", 3, "start 9 > end 5"),
    "negative_start": ("chr1\t-3\t5\n", 1, "negative"),
}


@pytest.mark.parametrize("case", sorted(BAD_BEDS))
def test_read_bed_bad(tmp_path, case):
    text, line, words = BAD_BEDS[case]
    path = tmp_path / f"{case}.bed"
    path.write_text(text)
    with pytest.raises(ValueError, match=f"{case}.bed") as info:
        read_bed(path)
    assert f"line {line}" in str(info.value)
    assert words in str(info.value)


@pytest.mark.parametrize("text", ["", "# only a comment\ntrack name=x\n\n"])
def test_read_bed_empty(tmp_path, text):
    path = tmp_path / "empty.bed"
    path.write_text(text)
    with pytest.raises(ValueError, match="empty.bed.*no regions"):
        read_bed(path)


def test_read_bed_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.bed"):
        read_bed(tmp_path / "nope.bed")


# --------------------------------------------------------------------------- resize


def test_resize_regions():
    bed = pd.DataFrame({"chrom": ["a", "a", "b"], "start": [10, 0, 100],
                        "end": [21, 4, 100], "name": ["x", "y", "z"]})
    bed.attrs["path"] = "f.bed"
    out = resize_regions(bed, 6)
    mids = [(10 + 21) // 2, (0 + 4) // 2, 100]
    assert out["start"].tolist() == [m - 3 for m in mids]
    assert out["end"].tolist() == [m + 3 for m in mids]
    assert out["name"].tolist() == ["x", "y", "z"]
    assert out.attrs["path"] == "f.bed"
    assert bed["start"].tolist() == [10, 0, 100]  # input untouched
    odd = resize_regions(bed, 5)
    assert (odd["end"] - odd["start"]).tolist() == [5, 5, 5]
    assert odd["start"].tolist() == [m - 2 for m in mids]
    with pytest.raises(ValueError, match="width"):
        resize_regions(bed, 0)
    with pytest.raises(TypeError, match="width"):
        resize_regions(bed, 2.5)


# --------------------------------------------------------------------------- open_genome


def test_open_genome_builds_index(genome_fa):
    fai = Path(str(genome_fa) + ".fai")
    assert not fai.exists()
    with open_genome(genome_fa) as genome:
        assert isinstance(genome, Genome)
        assert genome.chrom_sizes == {"chr1": 503, "chr2": 120, "chrM": 61}
    # the samtools .fai, computed by hand: name, length, offset, bases/line, bytes/line
    text = genome_fa.read_text()
    rows = []
    for name, length in (("chr1", 503), ("chr2", 120), ("chrM", 61)):
        header = text.index(f">{name} ")
        offset = text.index("\n", header) + 1
        rows.append(f"{name}\t{length}\t{offset}\t60\t61")
    assert fai.read_text().splitlines() == rows
    assert [p.name for p in genome_fa.parent.iterdir()] != []
    assert not [p for p in genome_fa.parent.iterdir() if p.name.endswith(".tmp")]


def test_open_genome_rebuilds_stale_index(genome_fa):
    fai = Path(str(genome_fa) + ".fai")
    fai.write_text("chr1\t5\t6\t60\t61\n")
    os.utime(fai, (1, 1))  # older than the FASTA
    with open_genome(genome_fa) as genome:
        assert genome.chrom_sizes["chr1"] == 503


def test_open_genome_index_path(genome_fa, tmp_path):
    other = tmp_path / "elsewhere"
    other.mkdir()
    with open_genome(genome_fa, index_path=other / "g.fai") as genome:
        assert genome.index_path == other / "g.fai"
        assert genome.chrom_sizes["chr2"] == 120
    assert (other / "g.fai").is_file()
    assert not Path(str(genome_fa) + ".fai").exists()


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0,
                    reason="root writes to read-only folders")
def test_open_genome_read_only_folder(genome_fa):
    folder = genome_fa.parent
    folder.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        with pytest.raises(PermissionError, match="not writable.*index_path"):
            open_genome(genome_fa)
    finally:
        folder.chmod(stat.S_IRWXU)


def test_open_genome_unwritable_folder_explained(genome_fa, monkeypatch):
    import captum_genomics.seq.genome as genome_module

    monkeypatch.setattr(genome_module.os, "access", lambda *args: False)
    with pytest.raises(PermissionError, match="genome.fa.*not writable.*samtools faidx"):
        open_genome(genome_fa)
    assert not Path(str(genome_fa) + ".fai").exists()


def test_open_genome_gzip_not_bgzf(genome_fa, tmp_path):
    path = tmp_path / "genome.fa.gz"
    path.write_bytes(gzip.compress(genome_fa.read_bytes()))
    with pytest.raises(ValueError, match="genome.fa.gz.*not BGZF") as info:
        open_genome(path)
    assert "bgzip" in str(info.value)
    # also when the name hides the compression
    hidden = tmp_path / "hidden.fa"
    hidden.write_bytes(path.read_bytes())
    with pytest.raises(ValueError, match="bgzip"):
        open_genome(hidden)


def test_open_genome_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="absent.fa"):
        open_genome(tmp_path / "absent.fa")


@pytest.mark.parametrize("text, words", [
    (">a\nACGTACGT\nAC\nACGTACGT\n", "cannot be indexed"),
    ("ACGT\n>a\nACGT\n", "cannot be indexed"),
    ("", "cannot be indexed"),
])
def test_open_genome_unindexable(tmp_path, text, words):
    path = tmp_path / "bad.fa"
    path.write_text(text)
    with pytest.raises(ValueError, match=f"bad.fa.*{words}"):
        open_genome(path)
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_open_genome_duplicate_names(tmp_path):
    path = tmp_path / "dup.fa"
    path.write_text(">a\nACGT\n>a\nTTTT\n")
    with pytest.raises(ValueError, match="dup.fa"):
        open_genome(path)


def test_genome_pickles(genome_fa):
    with open_genome(genome_fa) as genome:
        again = pickle.loads(pickle.dumps(genome))
        assert again.chrom_sizes == genome.chrom_sizes
        assert again.fetch("chr2", 3, 40) == genome.fetch("chr2", 3, 40)
        again.close()


# --------------------------------------------------------------------------- fetch_one_hot


def test_fetch_one_hot_against_hand_slicing(genome_fa):
    seqs = plain_fasta(genome_fa)
    assert any(c.islower() for c in seqs["chr1"])
    rng = np.random.default_rng(3)
    width = 70
    rows = []
    for chrom, size in (("chr1", 503), ("chr2", 120), ("chrM", 61)):
        for start in rng.integers(-90, size + 20, size=6).tolist() + [-width, size]:
            rows.append((chrom, start, start + width))
    regions = pd.DataFrame(rows, columns=["chrom", "start", "end"])
    regions["name"] = [f"r{i}" for i in range(len(rows))]
    regions["line"] = np.arange(1, len(rows) + 1)
    with open_genome(genome_fa) as genome:
        one_hot, report = fetch_one_hot(genome, regions)
        assert genome.fetch("chr1", 0, 10) == seqs["chr1"][:10].upper()
    expected = one_hot_encode([hand_slice(seqs, c, s, e) for c, s, e in rows])
    assert one_hot.dtype == torch.float32 and one_hot.shape == (len(rows), 4, width)
    assert torch.equal(one_hot, expected)
    # padding: all-zero columns exactly at the padded positions, and the report lists them
    sizes = {"chr1": 503, "chr2": 120, "chrM": 61}
    padded = {}
    for i, (c, s, e) in enumerate(rows):
        off = [p - s for p in range(s, e) if not 0 <= p < sizes[c]]
        assert torch.all(one_hot[i, :, off] == 0)
        if off:
            padded[i] = (sum(p < 0 for p in range(s, e)), sum(p >= sizes[c] for p in range(s, e)))
    assert report["n_regions"] == len(rows) and report["width"] == width
    assert report["n_padded"] == len(padded)
    assert {r["index"]: (r["left"], r["right"]) for r in report["padded"]} == padded
    for r in report["padded"]:
        assert r["name"] == f"r{r['index']}" and r["line"] == r["index"] + 1
        assert r["bases_padded"] == r["left"] + r["right"]


def test_fetch_one_hot_lower_case_is_upper(tmp_path):
    path = tmp_path / "case.fa"
    path.write_text(">s\nacgtNACGTn\n")
    regions = pd.DataFrame({"chrom": ["s"], "start": [0], "end": [10]})
    one_hot, report = fetch_one_hot(path, regions)
    assert torch.equal(one_hot, one_hot_encode(["ACGTNACGTN"]))
    assert report["padded"] == []


def test_fetch_one_hot_missing_chromosome(genome_fa, tmp_path):
    bed = tmp_path / "peaks.bed"
    bed.write_text("chr1\t0\t10\n# note\nchrX\t5\t15\n")
    regions = read_bed(bed)
    with open_genome(genome_fa) as genome:
        with pytest.raises(ValueError, match=r"peaks.bed.*line 3.*'chrX'.*genome.fa"):
            fetch_one_hot(genome, regions)


def test_fetch_one_hot_unequal_widths(genome_fa):
    regions = pd.DataFrame({"chrom": ["chr1", "chr1"], "start": [0, 0], "end": [10, 11]})
    with pytest.raises(ValueError, match="resize_regions"):
        fetch_one_hot(genome_fa, regions)


# --------------------------------------------------------------------------- demo genome


def test_demo_genome_matches_shipped_file():
    shipped = data_path(DEMO_GENOME_FILE)
    seqs = plain_fasta(shipped)
    assert list(seqs) == ["chr17"] and len(seqs["chr17"]) == 40000
    regions = demo_regions()
    assert len(regions) == 79
    assert regions["start"].tolist() == list(range(0, 39001, 500))
    assert (regions["end"] - regions["start"]).eq(1000).all()
    assert regions["name"].iloc[3] == "chr17:1500-2500"
    path = demo_genome_path()
    assert path.read_bytes() == shipped.read_bytes()
    assert path.parent != shipped.parent  # the index is never written into the package
    resized = resize_regions(regions.iloc[[0, 40, 78]], 1100)
    with open_genome(path) as genome:
        one_hot, report = fetch_one_hot(genome, resized)
    expected = one_hot_encode(
        [hand_slice(seqs, "chr17", s, e) for s, e in zip(resized["start"], resized["end"])]
    )
    assert torch.equal(one_hot, expected)
    assert [(r["line"], r["left"], r["right"]) for r in report["padded"]] == [
        (1, 50, 0), (79, 0, 50)]
    assert not Path(str(shipped) + ".fai").exists()
    assert demo_genome_path() == path


def test_demo_genome_provenance():
    import hashlib

    from captum_genomics.seq.datasets import DEMO_GENOME_SHA256

    shipped = data_path(DEMO_GENOME_FILE)
    assert hashlib.sha256(shipped.read_bytes()).hexdigest() == DEMO_GENOME_SHA256
    notice = data_path("NOTICE.md").read_text()
    assert f"`{DEMO_GENOME_FILE}`" in notice and DEMO_GENOME_SHA256 in notice
    assert "python-pyfaidx-examples" in notice and "PeerJ PrePrints" in notice
    assert "BSD-3-clause" in data_path("LICENSE-pyfaidx.txt").read_text()


def test_demo_regions_arguments():
    assert len(demo_regions(width=40000, step=1)) == 1
    assert demo_regions(width=10, step=20)["start"].iloc[:3].tolist() == [0, 20, 40]
    with pytest.raises(ValueError, match="width"):
        demo_regions(width=40001)
    with pytest.raises(ValueError, match="step"):
        demo_regions(step=0)


# --------------------------------------------------------------------------- seeds


def test_region_seed_index_is_stable_across_processes():
    cases = [(7, "chr1", 1000, 2000, "peak_1"), (0, "chrX", 0, 1, "é"), (2**40, "c", -5, 5, "")]
    here = [region_seed_index(*args) for args in cases]
    code = ("from captum_genomics.seq.genome import region_seed_index; "
            f"print([region_seed_index(*a) for a in {cases!r}])")
    env = dict(os.environ, PYTHONHASHSEED="12345")  # Python's own hash() would change
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, check=True, cwd=Path(__file__).resolve().parents[1])
    assert ast.literal_eval(out.stdout.strip()) == here
    assert all(0 <= v < 2**62 for v in here)


def test_region_seed_index_differs():
    base = (0, "chr1", 100, 200, "a")
    variants = [(1, "chr1", 100, 200, "a"), (0, "chr2", 100, 200, "a"),
                (0, "chr1", 101, 200, "a"), (0, "chr1", 100, 201, "a"),
                (0, "chr1", 100, 200, "b")]
    values = {region_seed_index(*v) for v in [base] + variants}
    assert len(values) == 6
    assert region_seed_index(0, "chr1", np.int64(100), np.int64(200), "a") == \
        region_seed_index(*base)
    regions = pd.DataFrame({"chrom": ["chr1", "chr2"], "start": [100, 5], "end": [200, 9],
                            "name": ["a", "b"]})
    seeds = region_seed_indices(0, regions)
    assert seeds.dtype == torch.int64
    assert seeds.tolist() == [region_seed_index(*base), region_seed_index(0, "chr2", 5, 9, "b")]
    with pytest.raises(TypeError, match="random_state"):
        region_seed_index(1.5, "chr1", 1, 2, "a")
