"""``captum-genomics compare`` and ``run_compare_job``: files, refusals, one-line errors."""

import json

import numpy as np
import pandas as pd
import pytest
import torch

from captum_genomics import cli
from captum_genomics.seq.io import random_one_hot
from captum_genomics.workflows.compare_study import output_files, run_compare_job

pytestmark = [pytest.mark.usefixtures("one_thread"),
              pytest.mark.filterwarnings("ignore:Input Tensor")]

TINY = '''
import torch


def build():
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv1d(4, 3, 5), torch.nn.ReLU(), torch.nn.MaxPool1d(2),
        torch.nn.AdaptiveAvgPool1d(1), torch.nn.Flatten(), torch.nn.Linear(3, 2))
'''

MEME = """MEME version 5

ALPHABET= ACGT

MOTIF T1 toy
letter-probability matrix: alength= 4 w= 4 nsites= 20
 0.9 0.03 0.03 0.04
 0.03 0.9 0.03 0.04
 0.03 0.03 0.9 0.04
 0.04 0.03 0.03 0.9
"""


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("compare")
    (root / "models.py").write_text(TINY)
    rng = np.random.default_rng(0)
    seqs = ["".join(rng.choice(list("ACGT"), 40)) for _ in range(5)]
    (root / "seqs.fa").write_text("".join(f">s{i}\n{s}\n" for i, s in enumerate(seqs)))
    (root / "uneven.fa").write_text(">a\nACGTACGTAC\n>b\nACGTAC\n")
    (root / "motif.meme").write_text(MEME)
    (root / "bad.meme").write_text("MOTIF X\nletter-probability matrix: w= 2\n0.1 0.2\n")
    return root


def _run(argv, capsys):
    try:
        code = cli.main(argv)
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def test_user_model_with_planted_motifs_writes_every_file(files, tmp_path, capsys):
    out = tmp_path / "out"
    code, stdout, err = _run(["compare", "--model", f"{files / 'models.py'}:build", "--fasta",
                              str(files / "seqs.fa"), "--motifs", str(files / "motif.meme"),
                              "--plant", "--target", "1", "--methods",
                              "saliency,saliency_corrected,deeplift_shap", "--n-references", "3",
                              "--out", str(out)], capsys)
    assert code == 0, err
    assert "model model:" in stdout and "deeplift_shap" in stdout
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["files"]) <= set(output_files(["model"]))
    for name in ("model_comparison.csv", "model_report.html", "model_logos.png",
                 "summary.csv", "model_randomization.csv"):
        assert (out / name).is_file(), name
    frame = pd.read_csv(out / "model_comparison.csv")
    assert {"auroc", "aupr", "pwm_cosine", "seconds", "convergence_delta"} <= set(frame.metric)
    table = pd.read_csv(out / "summary.csv")
    assert list(table["method"]) == ["saliency", "saliency_corrected", "deeplift_shap"]
    assert table.loc[table.method == "deeplift_shap", "convergence_delta_max"].iloc[0] < 1e-4
    html = (out / "model_report.html").read_text()
    assert "data:image/png;base64," in html and "http://" not in html
    # a second run refuses, naming --overwrite; with it, it replaces
    code, _, err = _run(["compare", "--model", f"{files / 'models.py'}:build", "--fasta",
                         str(files / "seqs.fa"), "--methods", "saliency", "--out", str(out),
                         "--no-plot", "--no-randomization", "--target", "0"], capsys)
    assert code == 2 and "--overwrite" in err and len(err.strip().splitlines()) == 1


def test_scored_against_motif_matches_without_planting(files, tmp_path, capsys):
    out = tmp_path / "scan"
    code, stdout, err = _run(["compare", "--model", f"{files / 'models.py'}:build", "--fasta",
                              str(files / "seqs.fa"), "--motifs", str(files / "motif.meme"),
                              "--min-relative-score", "0.6", "--methods", "saliency,ism",
                              "--target", "0", "--no-plot", "--no-randomization",
                              "--out", str(out)], capsys)
    assert code == 0, err
    assert "match(es) of motif.meme" in stdout


@pytest.mark.parametrize("extra, fragments", [
    (["--methods", "saliency,nope"], ["--methods", "nope", "known:"]),
    (["--methods", ","], ["--methods", "at least one"]),
    (["--plant"], ["--plant needs --motifs"]),
    (["--motifs", "{root}/bad.meme"], ["--motifs", "bad.meme", "4 probabilities"]),
    (["--fasta", "{root}/uneven.fa"], ["--fasta", "same length"]),
    (["--fasta", "{root}/missing.fa"], ["--fasta", "no such file"]),
    (["--target", "5"], ["out of range"]),
])
def test_user_errors_are_one_line_and_write_nothing(files, tmp_path, capsys, extra, fragments):
    out = tmp_path / "never"
    argv = ["compare", "--model", f"{files / 'models.py'}:build", "--fasta",
            str(files / "seqs.fa"), "--methods", "saliency", "--no-randomization",
            "--out", str(out)]
    for i, a in enumerate(extra):
        extra[i] = a.replace("{root}", str(files))
    if "--fasta" in extra:
        k = argv.index("--fasta")
        del argv[k:k + 2]
    if "--methods" in extra:
        k = argv.index("--methods")
        del argv[k:k + 2]
    code, _, err = _run([*argv, *extra], capsys)
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    for fragment in fragments:
        assert fragment in err, (fragment, err)
    assert not out.exists()


def test_model_without_fasta_is_refused(files, capsys):
    code, _, err = _run(["compare", "--model", f"{files / 'models.py'}:build"], capsys)
    assert code == 2 and "--model goes with --fasta or --bed/--genome" in err


def test_bed_regions_from_the_demo_genome(files, tmp_path, capsys):
    from captum_genomics.seq.datasets import demo_genome_path

    bed = tmp_path / "r.bed"
    bed.write_text("chr17\t100\t160\tfirst\nchr17\t5000\t5040\nchr17\t39990\t40010\tedge\n")
    out = tmp_path / "bed"
    code, stdout, err = _run(["compare", "--model", f"{files / 'models.py'}:build", "--bed",
                              str(bed), "--genome", str(demo_genome_path()), "--width", "40",
                              "--methods", "saliency,deeplift_shap", "--n-references", "2",
                              "--target", "0", "--no-plot", "--no-randomization",
                              "--out", str(out)], capsys)
    assert code == 0, err
    assert "3 regions of r.bed (40 bp from" in stdout and "1 padded with N" in stdout
    code, _, err = _run(["compare", "--model", f"{files / 'models.py'}:build", "--bed",
                         str(bed), "--genome", str(demo_genome_path()), "--out",
                         str(tmp_path / "x")], capsys)
    assert code == 2 and "--bed, --genome and --width go together" in err
    for extra, fragment in ((["--genome", str(tmp_path / "no.fa")], "--genome: no such file"),
                            (["--bed", str(tmp_path / "no.bed")], "--bed: no such file")):
        argv = ["compare", "--model", f"{files / 'models.py'}:build", "--bed", str(bed),
                "--genome", str(demo_genome_path()), "--width", "40", "--out",
                str(tmp_path / "y")]
        k = argv.index(extra[0])
        argv[k + 1] = extra[1]
        code, _, err = _run(argv, capsys)
        assert code == 2 and fragment in err and len(err.strip().splitlines()) == 1, err


def test_default_planted_job_runs_both_shipped_models(tmp_path, capsys):
    out = tmp_path / "planted"
    code, stdout, err = _run(["compare", "--n-examples", "3", "--methods",
                              "deeplift_shap,saliency", "--n-references", "3", "--no-plot",
                              "--out", str(out)], capsys)
    assert code == 0, err
    assert "model relu:" in stdout and "model exponential:" in stdout
    table = pd.read_csv(out / "summary.csv")
    assert set(table.model) == {"relu", "exponential"}
    assert table.auroc.between(0, 1).all()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_examples"] == 3 and "planted" in summary["sequences"]


def test_job_keeps_earlier_models_when_a_later_one_fails(tmp_path):
    x = random_one_hot(3, 30, torch.Generator().manual_seed(0)).float()
    torch.manual_seed(0)
    good = torch.nn.Sequential(torch.nn.Conv1d(4, 2, 3), torch.nn.Flatten(),
                               torch.nn.Linear(56, 1)).eval()

    class Broken(torch.nn.Module):
        def forward(self, x):
            raise RuntimeError("boom")

    with pytest.warns(UserWarning, match="'broken' failed"):
        summary = run_compare_job(tmp_path / "o", models={"good": good, "broken": Broken()},
                                  inputs=x, methods=["saliency"], randomization=False,
                                  plot=False, verbose=False)
    assert list(summary["models"]) == ["good"] and "boom" in summary["notes"][0]
    assert (tmp_path / "o" / "good_summary.csv").is_file()
    with pytest.raises(RuntimeError, match="boom"):  # first model fails: nothing written
        run_compare_job(tmp_path / "p", models={"broken": Broken()}, inputs=x,
                        methods=["saliency"], randomization=False, plot=False, verbose=False)
    assert not (tmp_path / "p").exists()
    with pytest.raises(ValueError, match="`models`"):
        run_compare_job(tmp_path / "q", models={"a/b": good}, inputs=x, verbose=False)
