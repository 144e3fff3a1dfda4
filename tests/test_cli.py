"""The captum-genomics command line, the CTCF job and its helpers."""

import json

import numpy as np
import pytest
import torch

from captum_genomics import cli
from captum_genomics.seq.datasets import data_path
from captum_genomics.seq.modisco import load_npz, modisco_command
from captum_genomics.workflows import deeplift_ctcf
from captum_genomics.workflows.deeplift_ctcf import chance_overlap, top_windows, windows_overlap

TINY_MODEL = '''
import torch

def build():
    return torch.nn.Sequential(
        torch.nn.Conv1d(4, 3, 5), torch.nn.ReLU(), torch.nn.MaxPool1d(2),
        torch.nn.AdaptiveAvgPool1d(1), torch.nn.Flatten(), torch.nn.Linear(3, 2),
    )

def not_a_model():
    return 3
'''


@pytest.fixture
def user_files(tmp_path):
    """A tiny two-output model file, its weights and a FASTA of 30-bp sequences."""
    model_file = tmp_path / "tiny_model.py"
    model_file.write_text(TINY_MODEL)
    namespace = {}
    exec(TINY_MODEL, namespace)
    torch.manual_seed(0)
    weights = tmp_path / "tiny.pt"
    torch.save(namespace["build"]().state_dict(), weights)
    rng = np.random.default_rng(0)
    seqs = ["".join(rng.choice(list("ACGT"), 30)) for _ in range(5)]
    seqs[1] = seqs[1][:10].lower() + "N" + seqs[1][11:]
    fasta = tmp_path / "seqs.fa"
    fasta.write_text("".join(f">s{i}\n{s}\n" for i, s in enumerate(seqs)))
    return model_file, weights, fasta


def _check_outputs(out, n, length):
    ohe, shap, contrib = (load_npz(out / f) for f in ("ohe.npz", "shap.npz", "contributions.npz"))
    for arr in (ohe, shap, contrib):
        assert arr.shape == (n, 4, length) and arr.dtype == np.float32
    np.testing.assert_allclose(contrib, shap * ohe, atol=1e-6)
    assert set(np.unique(ohe)) <= {0.0, 1.0}
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_sequences"] == n and summary["length"] == length
    lines = (out / "windows.tsv").read_text().splitlines()
    assert len(lines) == n + 1
    return summary


def test_default_job_on_a_few_peaks(tmp_path, capsys):
    out = tmp_path / "out"
    assert cli.main(["deeplift", "--out", str(out), "--n-examples", "3", "--n-references", "4"]) == 0
    summary = _check_outputs(out, 3, 200)
    assert (out / "logo.png").stat().st_size > 0
    assert summary["motif"]["id"] == "MA0139.2"
    assert 0 <= summary["overlap"]["fraction"] <= 1 and 0 < summary["overlap"]["chance"] < 1
    assert "overlap" in summary["controls"]
    assert load_npz(out / "controls_ohe.npz").shape == (3, 4, 200)
    printed = capsys.readouterr().out
    assert "held-out CTCF peaks" in printed and "shuffled controls" in printed
    assert "convergence delta" in printed and "modisco motifs" in printed and "-w 200" in printed


def test_no_arguments_runs_the_default_job(monkeypatch):
    calls = []
    monkeypatch.setattr(deeplift_ctcf, "run_ctcf_job", lambda *a, **k: calls.append((a, k)))
    assert cli.main([]) == 0
    assert str(calls[0][0][0]) == "captum_genomics_out" and calls[0][1]["n_references"] == 20
    assert cli.main(["--n-examples", "2"]) == 0  # options without a subcommand
    assert calls[1][1]["n_examples"] == 2


def test_attribute_on_a_user_model(tmp_path, user_files, capsys):
    model_file, weights, fasta = user_files
    out = tmp_path / "user_out"
    code = cli.main([
        "attribute", "--model", f"{model_file}:build", "--weights", str(weights),
        "--fasta", str(fasta), "--target", "1", "--n-references", "3", "--out", str(out),
        "--motif", str(data_path("MA0139.2.jaspar")),
    ])
    assert code == 0
    summary = _check_outputs(out, 5, 30)
    assert summary["target"] == 1 and summary["overlap"]["n"] == 5
    assert (out / "logo.png").is_file()
    assert "MA0139.2" in capsys.readouterr().out


def test_attribute_without_motif_prints_no_overlap(tmp_path, user_files, capsys):
    model_file, weights, fasta = user_files
    out = tmp_path / "o"
    cli.main(["attribute", "--model", f"{model_file}:build", "--weights", str(weights),
              "--fasta", str(fasta), "--n-references", "2", "--out", str(out), "--no-plot"])
    summary = _check_outputs(out, 5, 30)
    assert "overlap" not in summary and not (out / "logo.png").exists()
    assert "overlaps" not in capsys.readouterr().out


def _error(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    assert exc.value.code == 2
    return capsys.readouterr().err


def test_unequal_fasta_lengths_error(tmp_path, user_files, capsys):
    model_file, weights, _ = user_files
    fasta = tmp_path / "ragged.fa"
    fasta.write_text(">a\nACGTACGTAC\n>b\nACGTACGTACGT\n")
    err = _error(["attribute", "--model", f"{model_file}:build", "--weights", str(weights),
                  "--fasta", str(fasta), "--out", str(tmp_path / "x")], capsys)
    assert "same length" in err and "'b' has 12 bp" in err


@pytest.mark.parametrize(
    "spec, message",
    [
        ("no_colon_here", "must look like"),
        ("x:", "must look like"),
        ("captum_genomics_no_such_module:build", "cannot import"),
        ("{file}:missing", "no callable 'missing'"),
        ("{file}:not_a_model", "expected a torch.nn.Module"),
        ("/no/such/file.py:build", "no such Python file"),
    ],
)
def test_bad_model_spec(spec, message, tmp_path, user_files, capsys):
    model_file, _, fasta = user_files
    err = _error(["attribute", "--model", spec.format(file=model_file), "--fasta", str(fasta),
                  "--out", str(tmp_path / "x")], capsys)
    assert message in err


def test_bad_weights_and_target(tmp_path, user_files, capsys):
    model_file, _, fasta = user_files
    other = tmp_path / "other.pt"
    torch.save({"w": torch.zeros(1)}, other)
    err = _error(["attribute", "--model", f"{model_file}:build", "--weights", str(other),
                  "--fasta", str(fasta)], capsys)
    assert "do not fit the model" in err
    err = _error(["attribute", "--model", f"{model_file}:build", "--fasta", str(fasta),
                  "--target", "5"], capsys)
    assert "out of range" in err
    err = _error(["deeplift", "--n-references", "0"], capsys)
    assert "positive integer" in err


def test_top_windows_brute_force():
    rng = np.random.default_rng(0)
    contrib = torch.from_numpy(rng.normal(size=(6, 4, 40)))
    starts, sums = top_windows(contrib, 7)
    per_pos = contrib.sum(1).numpy()
    for n in range(6):
        bf = [per_pos[n, i : i + 7].sum() for i in range(40 - 7 + 1)]
        assert starts[n] == int(np.argmax(bf)) and sums[n] == pytest.approx(max(bf))


def test_overlap_and_chance_by_enumeration():
    length, w_win, w_mot = 50, 7, 5
    for p in (0, 3, 20, 45):
        hits = [bool(windows_overlap([s], w_win, [p], w_mot)[0]) for s in range(length - w_win + 1)]
        brute = np.mean(hits)
        direct = np.mean([len(set(range(s, s + w_win)) & set(range(p, p + w_mot))) > 0
                          for s in range(length - w_win + 1)])
        assert brute == direct
        assert chance_overlap([p], w_mot, w_win, length)[0] == pytest.approx(brute)


def test_modisco_command_is_shell_ready(tmp_path):
    cmd = modisco_command(tmp_path / "a b" / "ohe.npz", tmp_path / "shap.npz", 200)
    assert cmd.startswith("modisco motifs -s '") and "-w 200" in cmd


def test_missing_plot_libraries_skip_the_logo(tmp_path, user_files, monkeypatch, capsys):
    from captum_genomics.seq import plot

    def missing():
        raise ImportError("Plotting needs matplotlib and logomaker")

    monkeypatch.setattr(plot, "_import_plotting", missing)
    model_file, weights, fasta = user_files
    out = tmp_path / "o"
    assert cli.main(["attribute", "--model", f"{model_file}:build", "--weights", str(weights),
                     "--fasta", str(fasta), "--n-references", "2", "--out", str(out)]) == 0
    assert not (out / "logo.png").exists() and (out / "shap.npz").exists()
    assert "logo.png skipped" in capsys.readouterr().out
