"""PWM log-odds and scanning (captum_genomics.seq.motifs), checked by brute force."""

import numpy as np
import pytest
import torch

from captum_genomics.seq.datasets import load_ctcf_motif
from captum_genomics.seq.io import one_hot_encode
from captum_genomics.seq.motifs import Motif, load_jaspar, log_odds, scan, scan_best_match

COMPLEMENT = {"A": "T", "C": "G", "G": "C", "T": "A"}


def revcomp(s):
    return "".join(COMPLEMENT[c] for c in reversed(s))


def brute_force_scores(seq, pwm):
    """Score every window of both strands with explicit loops."""
    w = pwm.shape[1]
    fwd, rev = [], []
    for i in range(len(seq) - w + 1):
        site = seq[i : i + w]
        fwd.append(sum(pwm["ACGT".index(c), j] for j, c in enumerate(site)))
        rc = revcomp(site)
        rev.append(sum(pwm["ACGT".index(c), j] for j, c in enumerate(rc)))
    return np.array([fwd, rev])


def test_log_odds_closed_form():
    counts = np.array([[3, 0], [1, 0], [0, 4], [0, 0]], dtype=float)
    lo = log_odds(counts, pseudocount=1.0)
    np.testing.assert_allclose(lo[:, 0], np.log2((counts[:, 0] + 0.25) / 5 / 0.25))
    bg = [0.3, 0.2, 0.2, 0.3]
    lo = log_odds(counts, pseudocount=2.0, background=bg)
    expected = np.log2((counts[:, 1] + 2 * np.array(bg)) / 6 / np.array(bg))
    np.testing.assert_allclose(lo[:, 1], expected)
    with pytest.raises(ValueError, match="background"):
        log_odds(counts, background=[0.5, 0.5, 0.5, 0.5])
    with pytest.raises(ValueError, match=r"\(4, W\)"):
        log_odds(np.ones((3, 2)))


def test_vendored_ctcf_matrix():
    motif = load_ctcf_motif()
    assert (motif.id, motif.name, motif.width) == ("MA0139.2", "CTCF", 15)
    assert motif.counts[:, 0].tolist() == [281, 49, 449, 134]  # A, C, G, T
    assert "JASPAR 2024" in motif.citation and "17512414" in motif.citation


def test_load_jaspar_several_motifs_and_errors(tmp_path):
    path = tmp_path / "m.jaspar"
    path.write_text(
        ">M1\tONE\nA [1 2]\nC [3 4]\nG [5 6]\nT [7 8]\n\n"
        ">M2 TWO\nT 1 0 0\nG 0 1 0\nC 0 0 1\nA 2 2 2\n"
    )
    m1, m2 = load_jaspar(path)
    assert (m1.id, m1.name, m1.width) == ("M1", "ONE", 2)
    assert m1.counts.tolist() == [[1, 2], [3, 4], [5, 6], [7, 8]]
    assert m2.counts[0].tolist() == [2, 2, 2] and m2.counts[3].tolist() == [1, 0, 0]
    bad = tmp_path / "bad.jaspar"
    bad.write_text(">M\nA [1]\nC [1]\nG [1]\n")
    with pytest.raises(ValueError, match="lacks row"):
        load_jaspar(bad)
    bad.write_text("hello\n")
    with pytest.raises(ValueError, match="not JASPAR"):
        load_jaspar(bad)
    with pytest.raises(ValueError, match=r"\(4, W\)"):
        Motif("x", "x", np.ones((4,)))


def test_scan_matches_brute_force():
    motif = load_ctcf_motif()
    pwm = motif.log_odds()
    rng = np.random.default_rng(1)
    seqs = ["".join(rng.choice(list("ACGT"), 40)) for _ in range(5)]
    got = scan(one_hot_encode(seqs), motif)
    assert got.shape == (5, 2, 40 - 15 + 1) and got.dtype == torch.float64
    for n, s in enumerate(seqs):
        np.testing.assert_allclose(got[n].numpy(), brute_force_scores(s, pwm), atol=1e-10)


@pytest.mark.parametrize("strand", [1, -1])
def test_scan_best_match_finds_planted_motif(strand):
    motif = load_ctcf_motif()
    consensus = "".join("ACGT"[i] for i in motif.counts.argmax(axis=0))
    site = consensus if strand == 1 else revcomp(consensus)
    rng = np.random.default_rng(2)
    positions = [0, 7, 50, 85]  # 85 = last possible start for L=100
    seqs = []
    for p in positions:
        s = "".join(rng.choice(list("ACGT"), 100))
        seqs.append(s[:p] + site + s[p + 15 :])
    pos, strands, scores = scan_best_match(one_hot_encode(seqs), motif)
    assert pos.tolist() == positions
    assert strands.tolist() == [strand] * len(positions)
    best = motif.log_odds().max(axis=0).sum()  # the consensus scores the maximum
    np.testing.assert_allclose(scores.numpy(), best)
    assert pos.dtype == torch.int64 and strands.dtype == torch.int64


def test_scan_best_match_agrees_with_brute_force_argmax():
    motif = load_ctcf_motif()
    pwm = motif.log_odds()
    rng = np.random.default_rng(3)
    seqs = ["".join(rng.choice(list("ACGT"), 60)) for _ in range(20)]
    pos, strands, scores = scan_best_match(one_hot_encode(seqs), motif)
    for n, s in enumerate(seqs):
        bf = brute_force_scores(s, pwm)
        k = int(np.argmax(bf.reshape(-1)))
        assert (pos[n].item(), strands[n].item()) == (k % bf.shape[1], 1 if k < bf.shape[1] else -1)
        assert scores[n].item() == pytest.approx(bf.max())


def test_n_columns_score_zero_and_short_sequences_error():
    pwm = np.ones((4, 3))
    x = one_hot_encode(["ANNA"])
    got = scan(x, pwm)
    assert got[0, 0].tolist() == [1.0, 1.0]
    with pytest.raises(ValueError, match="shorter than the motif"):
        scan(one_hot_encode(["AC"]), pwm)


MEME_TEXT = """MEME version 5

ALPHABET= ACGT

Background letter frequencies
A 0.25 C 0.25 G 0.25 T 0.25

MOTIF M1 FIRST
letter-probability matrix: alength= 4 w= 3 nsites= 10 E= 0
 0.1 0.2 0.3 0.4
 1.0 0.0 0.0 0.0

 0.25 0.25 0.25 0.25

MOTIF M2
letter-probability matrix: alength= 4 w= 2
 0.1 0.2 0.3 0.4
 0.0 0.0 0.0 1.0
"""


def test_load_meme_reads_probabilities_as_counts(tmp_path):
    from captum_genomics.seq.motifs import load_meme, load_motifs

    path = tmp_path / "m.meme"
    path.write_text(MEME_TEXT)
    motifs = load_meme(path)
    assert [(m.id, m.name, m.width) for m in motifs] == [("M1", "FIRST", 3), ("M2", "M2", 2)]
    expected = 10 * np.array([[0.1, 0.2, 0.3, 0.4], [1, 0, 0, 0], [0.25] * 4]).T
    np.testing.assert_allclose(motifs[0].counts, expected)
    np.testing.assert_allclose(motifs[1].counts, 20 * np.array([[0.1, 0.2, 0.3, 0.4],
                                                                [0, 0, 0, 1]]).T)
    # load_motifs tells MEME from JASPAR by content
    assert [m.id for m in load_motifs(path)] == ["M1", "M2"]
    assert load_motifs(load_ctcf_motif_path())[0].id == "MA0139.2"


def load_ctcf_motif_path():
    from captum_genomics.seq.datasets import data_path

    return data_path("MA0139.2.jaspar")


@pytest.mark.parametrize("text, match", [
    ("MOTIF A\nletter-probability matrix: w= 2\n0.1 0.2 0.3\n0.2 0.2 0.3 0.3\n", "line 3"),
    ("MOTIF A\nletter-probability matrix: w= 3\n0.1 0.2 0.3 0.4\n", "w= 3"),
    ("ALPHABET= ACDEFGHIKLMNPQRSTVWY\nMOTIF A\n", "DNA"),
    ("letter-probability matrix: w= 1\n0.25 0.25 0.25 0.25\n", "before any MOTIF"),
    ("MOTIF A\nletter-probability matrix: alength= 4\n", "w="),
    ("nothing here\n", "holds no MEME motif"),
])
def test_load_meme_bad_files_name_file_and_line(tmp_path, text, match):
    from captum_genomics.seq.motifs import load_meme

    path = tmp_path / "bad.meme"
    path.write_text(text)
    with pytest.raises(ValueError, match=match) as info:
        load_meme(path)
    assert "bad.meme" in str(info.value)
