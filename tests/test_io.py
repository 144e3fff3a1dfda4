"""FASTA reading and one-hot encoding/decoding (captum_genomics.seq.io)."""

import gzip

import numpy as np
import pytest
import torch

from captum_genomics.seq.io import ALPHABET, one_hot_decode, one_hot_encode, read_fasta


def _brute_force_encode(seqs):
    """Independent per-character encoding."""
    out = np.zeros((len(seqs), 4, len(seqs[0])), dtype=np.float32)
    for n, s in enumerate(seqs):
        for i, ch in enumerate(s):
            if ch.upper() in "ACGT":
                out[n, "ACGT".index(ch.upper()), i] = 1
    return out


def test_acgt_is_the_identity_in_channel_order():
    x = one_hot_encode(["ACGT"])
    assert ALPHABET == "ACGT"
    assert x.shape == (1, 4, 4) and x.dtype == torch.float32
    assert torch.equal(x[0], torch.eye(4))


def test_roundtrip_random_sequences():
    rng = np.random.default_rng(0)
    seqs = ["".join(rng.choice(list("ACGT"), 57)) for _ in range(9)]
    x = one_hot_encode(seqs, dtype=torch.float64)
    assert x.dtype == torch.float64
    np.testing.assert_array_equal(x.numpy(), _brute_force_encode(seqs))
    assert one_hot_decode(x) == seqs
    assert one_hot_decode(x.numpy()) == seqs


def test_lowercase_encodes_as_its_base_and_others_as_zero_columns():
    seqs = ["acgtNACGT-rY", "ACGTNacgtnAC"]
    x = one_hot_encode(seqs)
    np.testing.assert_array_equal(x.numpy(), _brute_force_encode(seqs))
    assert torch.equal(x[0, :, :4], x[0, :, 5:9])  # lowercase == uppercase
    assert x[0, :, 4].sum() == 0 and x[0, :, 9:].sum() == 0  # N, '-', IUPAC codes
    assert one_hot_decode(x) == ["ACGTNACGTNNN", "ACGTNACGTNAC"]
    assert one_hot_decode(x, unknown="-")[0] == "ACGT-ACGT---"


def test_non_ascii_characters_become_zero_columns():
    x = one_hot_encode(["AéT"])
    assert x.shape == (1, 4, 3) and x[0, :, 1].sum() == 0


def test_unequal_lengths_raise_a_clear_error():
    with pytest.raises(ValueError, match="same length.*sequence 2 has length 3"):
        one_hot_encode(["ACGT", "ACGT", "ACG"])


def test_bad_inputs():
    with pytest.raises(TypeError, match="single string"):
        one_hot_encode("ACGT")
    with pytest.raises(ValueError, match="empty"):
        one_hot_encode([])
    with pytest.raises(TypeError, match=r"sequences\[1\]"):
        one_hot_encode(["A", 1])
    with pytest.raises(ValueError, match=r"\(N, 4, L\)"):
        one_hot_decode(torch.zeros(4, 10))
    bad = one_hot_encode(["ACGT"])
    bad[0, :, 2] = torch.tensor([1.0, 1.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="position 2"):
        one_hot_decode(bad)


FASTA = ">seq one\nACGT\nacgt\n\n>seq2\nNNNNACGT\n;comment\n"


@pytest.mark.parametrize("compressed", [False, True])
def test_read_fasta(tmp_path, compressed):
    path = tmp_path / ("x.fa.gz" if compressed else "x.fa")
    if compressed:
        with gzip.open(path, "wt") as handle:
            handle.write(FASTA)
    else:
        path.write_text(FASTA)
    names, seqs = read_fasta(path)
    assert names == ["seq one", "seq2"]
    assert seqs == ["ACGTacgt", "NNNNACGT"]


def test_read_fasta_errors(tmp_path):
    bad = tmp_path / "bad.fa"
    bad.write_text("ACGT\n>x\nACGT\n")
    with pytest.raises(ValueError, match="before the first '>'"):
        read_fasta(bad)
    empty = tmp_path / "empty.fa"
    empty.write_text("\n")
    with pytest.raises(ValueError, match="no FASTA records"):
        read_fasta(empty)
    with pytest.raises(FileNotFoundError):
        read_fasta(tmp_path / "missing.fa")
