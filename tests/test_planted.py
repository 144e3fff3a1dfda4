"""The planted-motif task (Koo & Ploenzke 2021): data generator, ground truth, shipped CNNs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from captum_genomics.seq.io import one_hot_decode
from captum_genomics.seq.planted import (
    CORE_IDS,
    DISTRACTOR_IDS,
    GroundTruth,
    load_planted_motifs,
    make_planted_dataset,
)
from captum_genomics.zoo.planted import (
    PlantedMotifCNN,
    load_planted_metadata,
    load_planted_model,
    planted_data_for,
    train_planted_model,
)

ACTIVATIONS = ["relu", "exponential"]


@pytest.fixture(scope="module")
def data():
    return make_planted_dataset(60, length=120, random_state=3)


def test_motif_pool():
    core, distractors = load_planted_motifs()
    assert [m.id for m in core] == list(CORE_IDS)
    assert [m.id for m in distractors] == list(DISTRACTOR_IDS)
    assert [m.name for m in core] == ["SP1", "GABPA", "CEBPB", "MAX", "YY1"]
    assert core[3].counts[:, 0].tolist() == [39, 6876, 0, 0]  # MAX MA0058.4, column 1


def test_deterministic(data):
    again = make_planted_dataset(60, length=120, random_state=3)
    assert torch.equal(data.one_hot, again.one_hot)
    assert torch.equal(data.labels, again.labels)
    assert torch.equal(data.ground_truth.mask, again.ground_truth.mask)
    assert torch.equal(data.ground_truth.pwm, again.ground_truth.pwm)
    assert data.sites.equals(again.sites)
    other = make_planted_dataset(60, length=120, random_state=4)
    assert not torch.equal(data.one_hot, other.one_hot)


def test_shapes_and_labels(data):
    assert data.one_hot.shape == (60, 4, 120) and data.one_hot.dtype == torch.float32
    assert torch.all(data.one_hot.sum(1) == 1)
    assert data.labels.dtype == torch.float32 and int(data.labels.sum()) == 30
    counts = data.sites.groupby("example").size()
    assert counts.index.tolist() == list(range(60))
    assert counts.between(3, 5).all()
    positive = data.labels.numpy().astype(bool)
    assert (data.sites["core"] == positive[data.sites["example"]]).all()
    assert set(data.sites.loc[data.sites["core"], "id"]) <= set(CORE_IDS)
    assert set(data.sites.loc[~data.sites["core"], "id"]) <= set(DISTRACTOR_IDS)


def test_planted_bases_match_sites(data):
    seqs = one_hot_decode(data.one_hot)
    widths = {m.id: m.width for pool in load_planted_motifs() for m in pool}
    for row in data.sites.itertuples():
        assert row.end - row.start == widths[row.id]
        assert seqs[row.example][row.start:row.end] == row.sequence


def test_no_overlaps(data):
    for _, group in data.sites.groupby("example"):
        cover = np.zeros(120, dtype=int)
        for row in group.itertuples():
            cover[row.start:row.end] += 1
        assert cover.max() == 1


def test_ground_truth_independent(data):
    """Mask and centred PWM rebuilt from `sites` and the JASPAR counts by a plain loop."""
    motifs = {m.id: m for pool in load_planted_motifs() for m in pool}
    mask = np.zeros((60, 120), dtype=bool)
    pwm = np.zeros((60, 4, 120))
    for row in data.sites.itertuples():
        if not (row.core and data.labels[row.example] == 1):
            continue
        counts = motifs[row.id].counts
        if row.strand == "-":
            counts = counts[::-1, ::-1]  # reverse complement in ACGT order
        for j in range(counts.shape[1]):
            mask[row.example, row.start + j] = True
            for b in range(4):
                pwm[row.example, b, row.start + j] = counts[b, j] / counts[:, j].sum() - 0.25
    gt = data.ground_truth
    assert gt.mask.dtype == torch.bool and torch.equal(gt.mask, torch.from_numpy(mask))
    np.testing.assert_allclose(gt.pwm.double().numpy(), pwm, atol=1e-6)
    negatives = data.labels == 0
    assert not gt.mask[negatives].any() and not gt.pwm[negatives].any()
    assert gt.mask[~negatives].sum(1).gt(0).all()


def test_sampled_bases_follow_pwm():
    """Planted + strand MAX instances: base frequencies match the column probabilities."""
    max_motif = load_planted_motifs()[0][3]
    d = make_planted_dataset(400, length=60, core=[max_motif], positive_fraction=1.0,
                             random_state=0)
    freq = np.zeros((4, max_motif.width))
    for row in d.sites.itertuples():
        seq = row.sequence if row.strand == "+" else row.sequence[::-1].translate(
            str.maketrans("ACGT", "TGCA"))
        for j, base in enumerate(seq):
            freq["ACGT".index(base), j] += 1
    freq /= len(d.sites)
    probs = max_motif.counts / max_motif.counts.sum(0)
    assert np.abs(freq - probs).max() < 0.05


def test_subset(data):
    idx = [5, 0, 7]
    sub = data.subset(idx)
    assert torch.equal(sub.one_hot, data.one_hot[idx])
    assert torch.equal(sub.ground_truth.mask, data.ground_truth.mask[idx])
    assert torch.equal(sub.ground_truth.pwm, data.ground_truth.pwm[idx])
    assert sorted(sub.sites["example"].unique()) == [0, 1, 2]
    first = data.sites[data.sites["example"] == 5].reset_index(drop=True)
    assert first["start"].tolist() == sub.sites.loc[sub.sites["example"] == 0, "start"].tolist()
    assert data.ground_truth.subset(2).mask.shape == (1, 120)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(n=0), "`n`"),
        (dict(n=2.5), "`n`"),
        (dict(n=5, length=0), "`length`"),
        (dict(n=5, n_motifs=(0, 2)), "`n_motifs`"),
        (dict(n=5, n_motifs=(4, 3)), "`n_motifs`"),
        (dict(n=5, n_motifs=3), "`n_motifs`"),
        (dict(n=5, positive_fraction=1.5), "`positive_fraction`"),
        (dict(n=5, length=40, n_motifs=(3, 5)), "do not fit"),
    ],
)
def test_bad_inputs(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_planted_dataset(**kwargs)


def test_bad_random_state_and_pool():
    with pytest.raises(TypeError, match="`random_state`"):
        make_planted_dataset(5, random_state=None)
    with pytest.raises(TypeError, match="`core`"):
        make_planted_dataset(5, core="SP1")


def test_ground_truth_validation():
    with pytest.raises(ValueError, match="`pwm`"):
        GroundTruth(mask=torch.zeros(2, 10, dtype=torch.bool), pwm=torch.zeros(2, 4, 9))
    with pytest.raises(TypeError, match="`mask`"):
        GroundTruth(mask=torch.zeros(2, 10), pwm=torch.zeros(2, 4, 10))
    with pytest.raises(ValueError, match="`mask`"):
        GroundTruth(mask=torch.zeros(10, dtype=torch.bool), pwm=torch.zeros(2, 4, 10))


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_shipped_model_auroc(activation):
    model = load_planted_model(activation)
    assert isinstance(model, PlantedMotifCNN) and not model.training
    meta = load_planted_metadata(activation)
    test = planted_data_for(activation)
    assert len(test) == meta["data"]["splits"]["test"]["n"]
    with torch.no_grad():
        scores = model(test.one_hot)[:, 0].double().numpy()
    auroc = roc_auc_score(test.labels.numpy(), scores)
    assert abs(auroc - meta["metrics"]["test_auroc"]) < 1e-6
    assert auroc > 0.9


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_deeplift_convergence(activation, data):
    from captum_genomics import ShuffleDeepLiftShap

    model = load_planted_model(activation)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = make_planted_dataset(3, random_state=1).one_hot.double()
    model64 = PlantedMotifCNN(**load_planted_metadata(activation)["architecture"])
    model64.load_state_dict(model.state_dict())
    model64 = model64.double().eval()
    attr, delta = ShuffleDeepLiftShap(model64).attribute(
        x, target=0, n_references=4, random_state=0, return_convergence_delta=True
    )
    assert attr.shape == x.shape
    assert delta.abs().max() < 1e-8
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_training_deterministic():
    kwargs = dict(n_train=300, n_valid=100, n_test=100, max_epochs=1)
    m1, r1 = train_planted_model("exponential", 7, **kwargs)
    state = torch.get_rng_state()
    m2, r2 = train_planted_model("exponential", 7, **kwargs)
    assert torch.equal(state, torch.get_rng_state())  # caller's RNG untouched
    s1, s2 = m1.state_dict(), m2.state_dict()
    assert s1.keys() == s2.keys() and all(torch.equal(s1[k], s2[k]) for k in s1)
    assert r1["test_auroc"] == r2["test_auroc"] and not m1.training
    m3, _ = train_planted_model("exponential", 8, **kwargs)
    assert not torch.equal(m3.state_dict()["conv1.weight"], s1["conv1.weight"])


def test_bad_activation():
    with pytest.raises(ValueError, match="`activation`"):
        PlantedMotifCNN("tanh")
    with pytest.raises(ValueError, match="`activation`"):
        load_planted_model("sigmoid")
