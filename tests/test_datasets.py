"""The vendored data and the shipped CTCF model."""

from pathlib import Path

import numpy as np
import pytest
import torch

from captum_genomics.seq.datasets import data_path, load_ctcf_peaks
from captum_genomics.zoo import CTCFNet, ctcf_split, load_ctcf_metadata, load_ctcf_model
from captum_genomics.zoo import ctcf as ctcf_module
from captum_genomics.zoo.ctcf import WEIGHTS_FILE, auroc


@pytest.fixture(scope="module")
def peaks():
    return load_ctcf_peaks()


def test_ctcf_peaks(peaks):
    assert peaks.one_hot.shape == (500, 4, 200) and peaks.one_hot.dtype == torch.float32
    assert len(peaks.names) == len(peaks.sequences) == 500
    assert peaks.names[0] == "chr11:190037-190237"
    assert torch.all(peaks.one_hot.sum(dim=1) == 1)  # no N in this set
    soft = [i for i, s in enumerate(peaks.sequences) if any(c.islower() for c in s)]
    assert len(soft) == 110  # soft-masked sequences are encoded, not dropped


def test_data_files_and_notice():
    notice = data_path("NOTICE.md").read_text()
    assert "MIT" in notice and "CC BY 4.0" in notice and "17512414" in notice
    assert data_path("LICENSE-gimmemotifs.txt").is_file()
    with pytest.raises(FileNotFoundError, match="shipped files"):
        data_path("nope.txt")


def test_split_is_fixed_and_disjoint():
    split = ctcf_split()
    assert [len(split[k]) for k in ("train", "validation", "test")] == [400, 50, 50]
    union = np.concatenate(list(split.values()))
    assert np.array_equal(np.sort(union), np.arange(500))


def test_model_is_small_eval_and_deeplift_friendly():
    model = load_ctcf_model()
    assert isinstance(model, CTCFNet) and not model.training
    assert Path(ctcf_module.__file__).with_name(WEIGHTS_FILE).stat().st_size < 200_000
    allowed = (torch.nn.Conv1d, torch.nn.ReLU, torch.nn.MaxPool1d, torch.nn.AdaptiveAvgPool1d,
               torch.nn.Flatten, torch.nn.Dropout, torch.nn.Linear, CTCFNet)
    assert all(isinstance(m, allowed) for m in model.modules())
    assert model(torch.zeros(2, 4, 200)).shape == (2, 1)


def test_auroc_matches_pairwise_definition():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 60)
    scores = np.round(rng.normal(size=60), 1)  # rounding creates ties
    pos, neg = scores[labels == 1], scores[labels == 0]
    pairwise = np.mean((pos[:, None] > neg[None]) + 0.5 * (pos[:, None] == neg[None]))
    assert auroc(labels, scores) == pytest.approx(pairwise)
    with pytest.raises(ValueError, match="one positive"):
        auroc([1, 1], [0.1, 0.2])


def test_model_separates_held_out_peaks_from_shuffles(peaks):
    from captum_genomics.references import dinucleotide_shuffle

    test = torch.from_numpy(ctcf_split()["test"])
    x = peaks.one_hot[test]
    neg = dinucleotide_shuffle(x, n_references=4, random_state=12345).reshape(-1, 4, 200)
    model = load_ctcf_model()
    with torch.no_grad():
        scores = torch.cat([model(x), model(neg.to(x.dtype))])[:, 0].numpy()
    labels = np.r_[np.ones(len(x)), np.zeros(len(neg))]
    value = auroc(labels, scores)
    assert value > 0.8
    recorded = load_ctcf_metadata()["metrics"]["test_auroc"]
    assert abs(value - recorded) < 0.1
