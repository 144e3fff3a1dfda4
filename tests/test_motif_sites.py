"""Ground truth from motif scans and from planting (captum_genomics.seq.motif_sites)."""

import numpy as np
import pytest
import torch

from captum_genomics.seq.datasets import load_ctcf_motif
from captum_genomics.seq.io import one_hot_encode, random_one_hot
from captum_genomics.seq.motif_sites import motif_ground_truth, plant_motifs
from captum_genomics.seq.motifs import Motif

COMP = {"A": "T", "C": "G", "G": "C", "T": "A"}


def _background(n=6, length=80, seed=0):
    return random_one_hot(n, length, torch.Generator().manual_seed(seed))


def _relative(seq: str, motif: Motif) -> float:
    """Brute-force relative score of one site on the + strand."""
    lo = motif.log_odds()
    s = sum(lo["ACGT".index(b), j] for j, b in enumerate(seq))
    return (s - lo.min(0).sum()) / (lo.max(0).sum() - lo.min(0).sum())


def test_consensus_site_is_found_with_score_one_on_both_strands():
    motif = load_ctcf_motif()
    consensus = "".join("ACGT"[i] for i in motif.counts.argmax(0))
    rc = "".join(COMP[b] for b in reversed(consensus))
    rng = np.random.default_rng(1)
    bg = ["".join(rng.choice(list("ACGT"), 60)) for _ in range(2)]
    seqs = [bg[0][:10] + consensus + bg[0][25:], bg[1][:30] + rc + bg[1][45:]]
    truth, sites = motif_ground_truth(one_hot_encode(seqs), motif, best_only=True)
    assert sites[["example", "start", "end", "strand"]].values.tolist() == [
        [0, 10, 25, "+"], [1, 30, 45, "-"]]
    np.testing.assert_allclose(sites["relative_score"], 1.0)
    assert truth.mask[0].nonzero().flatten().tolist() == list(range(10, 25))
    centred = motif.counts / motif.counts.sum(0) - 0.25
    np.testing.assert_allclose(truth.pwm[0, :, 10:25].numpy(), centred, atol=1e-6)
    np.testing.assert_allclose(truth.pwm[1, :, 30:45].numpy(), centred[::-1, ::-1], atol=1e-6)


def test_threshold_keeps_exactly_the_sites_a_brute_force_scan_keeps():
    motif = Motif("toy", "T1", np.array([[8, 0, 1], [0, 8, 1], [1, 1, 6], [1, 1, 2]], float))
    x = _background(4, 40, seed=3)
    truth, sites = motif_ground_truth(x, motif, min_relative_score=0.7)
    seqs = ["".join("ACGT"[i] for i in row.argmax(0)) for row in x]
    expected = set()
    for i, s in enumerate(seqs):
        for p in range(len(s) - 2):
            site = s[p:p + 3]
            if _relative(site, motif) >= 0.7:
                expected.add((i, p, "+"))
            if _relative("".join(COMP[b] for b in reversed(site)), motif) >= 0.7:
                expected.add((i, p, "-"))
    got = set(map(tuple, sites[["example", "start", "strand"]].values.tolist()))
    assert got == expected and len(expected) > 0
    for (i, p, _) in expected:
        assert bool(truth.mask[i, p:p + 3].all())
    assert int(truth.mask.sum()) == len({(i, q) for i, p, _ in expected for q in range(p, p + 3)})


def test_plant_motifs_writes_sampled_instances_where_the_table_says():
    motif = load_ctcf_motif()
    toy = Motif("toy", "T1", np.array([[8, 0, 1], [0, 8, 1], [1, 1, 6], [1, 1, 2]], float))
    x = _background(5, 60, seed=2)
    before = x.clone()
    planted, truth, sites = plant_motifs(x, [motif, toy], random_state=4)
    assert torch.equal(x, before)  # input unchanged
    assert len(sites) == 10 and set(sites["id"]) == {"MA0139.2", "T1"}
    expect_mask = torch.zeros_like(truth.mask)
    for row in sites.itertuples():
        seq = "".join("ACGT"[i] for i in planted[row.example, :, row.start:row.end].argmax(0))
        assert seq == row.sequence
        expect_mask[row.example, row.start:row.end] = True
        m = motif if row.id == "MA0139.2" else toy
        centred = m.counts / m.counts.sum(0) - 0.25
        if row.strand == "-":
            centred = centred[::-1, ::-1]
        np.testing.assert_allclose(truth.pwm[row.example, :, row.start:row.end].numpy(),
                                   centred, atol=1e-6)
    assert torch.equal(truth.mask, expect_mask)
    assert int(truth.mask.sum()) == 5 * (15 + 3)  # no overlaps
    assert torch.equal(planted[~truth.mask.unsqueeze(1).expand_as(planted)],
                       x[~truth.mask.unsqueeze(1).expand_as(x)])
    again = plant_motifs(x, [motif, toy], random_state=4)
    assert torch.equal(again[0], planted) and again[2].equals(sites)


@pytest.mark.parametrize("call, match", [
    (lambda x, m: plant_motifs(x[:, :3], m), "one_hot"),
    (lambda x, m: plant_motifs(x[:, :, :10], m), "longer than the sequences"),
    (lambda x, m: plant_motifs(x, []), "motifs"),
    (lambda x, m: motif_ground_truth(x, m, min_relative_score=0), "min_relative_score"),
    (lambda x, m: motif_ground_truth(x * 2, m), "one_hot"),
])
def test_bad_input_names_the_argument(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call(_background(2, 40), load_ctcf_motif())
