"""``captum-genomics scan``: the CTCF CNN along the demo genome, checked independently."""

import numpy as np
import pandas as pd
import pytest
import torch

from captum_genomics import cli
from captum_genomics.seq.datasets import demo_genome_path, load_ctcf_motif
from captum_genomics.seq.io import one_hot_encode, read_fasta
from captum_genomics.seq.motifs import scan
from captum_genomics.zoo.ctcf import load_ctcf_model

pytestmark = pytest.mark.usefixtures("one_thread")


def test_scan_lists_top_windows_with_their_ctcf_matches(tmp_path, capsys):
    out = tmp_path / "scan"
    assert cli.main(["scan", "--step", "1000", "--n-references", "2", "--top-k", "3",
                     "--out", str(out)]) == 0
    stdout = capsys.readouterr().out
    assert "scanned 40 windows of 200 bp (step 1000)" in stdout
    for name in ("attributions.h5", "ohe.npz", "shap.npz", "regions.tsv", "contributions.bw",
                 "manifest.json", "top_windows.tsv"):
        assert (out / name).is_file(), name
    top = pd.read_csv(out / "top_windows.tsv", sep="\t")
    assert len(top) == 3 and top.logit.is_monotonic_decreasing
    # independent: slice the FASTA text by hand, run the model, scan both strands
    _, (genome,) = read_fasta(demo_genome_path())
    model, motif = load_ctcf_model(), load_ctcf_motif()
    lo = motif.log_odds()
    s_min, s_max = lo.min(0).sum(), lo.max(0).sum()
    for row in top.itertuples():
        x = one_hot_encode([genome[row.start:row.start + 200]])
        with torch.no_grad():
            assert model(x)[0, 0].item() == pytest.approx(row.logit, abs=1e-5)
        best = float(scan(x, motif).max())
        assert (best - s_min) / (s_max - s_min) == pytest.approx(row.ctcf_relative_score,
                                                                  abs=1e-9)
    all_logits = []
    for start in range(0, 40000 - 200 + 1, 1000):
        with torch.no_grad():
            all_logits.append(model(one_hot_encode([genome[start:start + 200]]))[0, 0].item())
    assert np.sort(all_logits)[::-1][:3] == pytest.approx(top.logit.to_numpy(), abs=1e-5)
