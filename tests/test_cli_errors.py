"""Every subcommand against bad inputs, refused output folders, Ctrl-C and bugs.

For each case: the exit status (2 usage, 130 interrupt, 70 internal error), exactly
one line on stderr without a traceback, the message naming the option or path, and
no file left under a final name (the output folder is unchanged after a refused or
failed run). The traceback shows only with ``--debug``.
"""

import gzip
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from captum_genomics import cli
from captum_genomics._utils.outputs import (
    STAGING_PREFIX,
    OutputFolder,
    check_output_folder,
)

pytestmark = pytest.mark.usefixtures("one_thread")

TINY_MODEL = '''
import torch
import torch.nn.functional as F


def build():
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv1d(4, 3, 5), torch.nn.ReLU(), torch.nn.MaxPool1d(2),
        torch.nn.AdaptiveAvgPool1d(1), torch.nn.Flatten(), torch.nn.Linear(3, 2),
    )


class Normalized(torch.nn.Module):
    """F.normalize has no exact DeepLIFT rule: attributions are not additive."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv1d(4, 6, 5, padding=2)
        self.head = torch.nn.Linear(6, 2)

    def forward(self, x):
        h = F.normalize(torch.relu(self.conv(x)) + 0.1, dim=1)
        return self.head(h.mean(dim=-1))


def classifier():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))


def attention():
    from captum_genomics.zoo.pbmc_attention import NeighbourAttentionModel

    torch.manual_seed(0)
    return NeighbourAttentionModel(n_genes=6, n_types=3, d_model=4, n_heads=2)
'''


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Model file, FASTA files good and bad, AnnData files good and with NaN."""
    root = tmp_path_factory.mktemp("inputs")
    f = {"root": root, "model": root / "models.py"}
    f["model"].write_text(TINY_MODEL)
    rng = np.random.default_rng(0)
    seqs = ["".join(rng.choice(list("ACGT"), 30)) for _ in range(4)]
    f["fasta"] = root / "seqs.fa"
    f["fasta"].write_text("".join(f">s{i}\n{s}\n" for i, s in enumerate(seqs)))
    f["empty"] = root / "empty.fa"
    f["empty"].write_text(">only\n")
    data = gzip.compress(f["fasta"].read_bytes() * 40)
    f["truncated"] = root / "cut.fa.gz"
    f["truncated"].write_bytes(data[: len(data) // 2])
    f["binary"] = root / "weights.fa"
    f["binary"].write_bytes(bytes(range(256)) * 4)
    f["missing"] = root / "no_such_file.fa"
    f["a_file"] = root / "a_file.txt"
    f["a_file"].write_text("not a folder\n")
    try:
        import anndata
        import scipy.sparse
    except ImportError:
        return f
    n = 60
    x = rng.random((n, 6)).astype(np.float32)
    types = np.array(["a", "b", "c"])[np.arange(n) % 3]
    for name, values in (("cells", x), ("nan_cells", x.copy())):
        if name == "nan_cells":
            values[7, 2] = np.nan
        adata = anndata.AnnData(X=values)
        adata.var_names = [f"g{i}" for i in range(6)]
        adata.obs["ct"] = types
        adata.obsp["distances"] = scipy.sparse.csr_matrix(np.ones((n, n)) - np.eye(n))
        f[name] = root / f"{name}.h5ad"
        adata.write_h5ad(f[name])
    np.save(root / "nan.npy", np.where(np.eye(5, 6) > 0, np.nan, 1.0))
    f["nan_npy"] = root / "nan.npy"
    return f


def _argv(command, f, out, *extra):
    """A fast run of ``command`` writing into ``out``, with ``extra`` options."""
    model = f"{f['model']}"
    base = {
        "deeplift": ["deeplift", "--n-examples", "2", "--n-references", "2", "--no-plot"],
        "attribute": ["attribute", "--model", f"{model}:build", "--fasta", str(f["fasta"]),
                      "--n-references", "2", "--no-plot"],
        "fastshap": ["fastshap", "--h5ad", str(f.get("cells", f["missing"])), "--model",
                     f"{model}:classifier", "--label-key", "ct", "--max-epochs", "1",
                     "--n-samples", "2", "--top-k", "2", "--no-plot"],
        "heads": ["heads", "--h5ad", str(f.get("cells", f["missing"])), "--model",
                  f"{model}:attention", "--label-key", "ct", "--n-permutations", "5",
                  "--no-plot"],
    }[command]
    return [*base, "--out", str(out), *extra]


def _run(argv, capsys):
    """``cli.main(argv)``: (exit status, stdout, stderr)."""
    try:
        code = cli.main(argv)
    except SystemExit as exc:
        code = exc.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err, err
    assert len(lines) == 1, err
    return lines[0]


def _snapshot(path: Path):
    """Every file and folder under ``path`` (hidden ones included) with its content hash."""
    if not os.path.lexists(path):
        return None
    if path.is_file():
        return hashlib.sha256(path.read_bytes()).hexdigest()
    found = {}
    for dirpath, dirnames, filenames in os.walk(path):
        for name in dirnames:
            found[os.path.relpath(os.path.join(dirpath, name), path)] = "dir"
        for name in filenames:
            full = os.path.join(dirpath, name)
            found[os.path.relpath(full, path)] = hashlib.sha256(
                Path(full).read_bytes()).hexdigest()
    return found


def _needs_sc(command):
    if command in ("fastshap", "heads"):
        pytest.importorskip("anndata")
        pytest.importorskip("scipy")


# --------------------------------------------------------------------------- the table
# (id, argv, message fragments); {x} are filled from the `files` fixture, {out} is a fresh
# folder under tmp_path; every case must exit 2 with one line naming the option or path.
USAGE_CASES = [
    ("attribute-empty-record", ["attribute", "--model", "{model}:build", "--fasta", "{empty}"],
     ["--fasta", "empty.fa", "'only'", "no sequence"]),
    ("attribute-truncated-gz", ["attribute", "--model", "{model}:build", "--fasta",
                                "{truncated}"], ["--fasta", "cut.fa.gz", "damaged gzip"]),
    ("attribute-binary", ["attribute", "--model", "{model}:build", "--fasta", "{binary}"],
     ["--fasta", "weights.fa", "binary"]),
    ("attribute-missing-fasta", ["attribute", "--model", "{model}:build", "--fasta",
                                 "{missing}"], ["--fasta", "no such file", "no_such_file.fa"]),
    ("attribute-missing-weights", ["attribute", "--model", "{model}:build", "--weights",
                                   "{missing}", "--fasta", "{fasta}"],
     ["--weights", "no_such_file.fa"]),
    ("validate-empty-record", ["validate", "--model", "{model}:build", "--inputs", "{empty}"],
     ["--inputs", "empty.fa", "no sequence"]),
    ("validate-truncated-gz", ["validate", "--model", "{model}:build", "--inputs",
                               "{truncated}"], ["--inputs", "cut.fa.gz", "damaged gzip"]),
    ("validate-binary", ["validate", "--model", "{model}:build", "--inputs", "{binary}"],
     ["--inputs", "weights.fa", "binary"]),
    ("validate-missing", ["validate", "--model", "{model}:build", "--inputs", "{missing}"],
     ["--inputs", "no such file"]),
    ("validate-nan-npy", ["validate", "--model", "{model}:classifier", "--method",
                          "captum:IntegratedGradients", "--inputs", "{nan_npy}"],
     ["--inputs", "nan.npy", "4 NaN", "(0, 0)"]),  # the first 4 examples are used
    ("fastshap-missing-h5ad", ["fastshap", "--h5ad", "{missing}", "--model", "m:f",
                               "--label-key", "ct"], ["--h5ad", "no such file"]),
    ("heads-missing-h5ad", ["heads", "--h5ad", "{missing}", "--model", "m:f", "--label-key",
                            "ct"], ["--h5ad", "no such file"]),
    ("fastshap-nan-h5ad", ["fastshap", "--h5ad", "{nan_cells}", "--model", "{model}:classifier",
                           "--label-key", "ct"], ["--h5ad", "nan_cells.h5ad", "1 NaN",
                                                  "cell 7, gene 2"]),
    ("heads-nan-h5ad", ["heads", "--h5ad", "{nan_cells}", "--model", "{model}:attention",
                        "--label-key", "ct"],
     ["--h5ad", "nan_cells.h5ad", "1 NaN", "cell 7, gene 2"]),
]
for _command in ("deeplift", "attribute", "fastshap", "heads", "validate"):
    _required = {"attribute": ["--model", "{model}:build", "--fasta", "{fasta}"],
                 "validate": ["--model", "{model}:build", "--input-length", "20"]}
    for _value in ("-1", "abc", str(2**64)):
        USAGE_CASES.append((f"{_command}-random-state{_value[:4]}",
                            [_command, *_required.get(_command, []), "--random-state", _value],
                            ["--random-state", repr(_value), "[0, 2**64)"]))
    if _command != "validate":
        USAGE_CASES.append((f"{_command}-out-is-a-file",
                            [_command, *_required.get(_command, []), "--out", "{a_file}"],
                            ["--out", "a_file.txt", "is a file"]))
        USAGE_CASES.append((f"{_command}-out-under-a-file",
                            [_command, *_required.get(_command, []), "--out", "{a_file}/sub"],
                            ["--out", "a_file.txt", "cannot be created"]))
USAGE_CASES += [
    ("validate-json-is-a-folder", ["validate", "--model", "{model}:build", "--input-length",
                                   "20", "--json", "{root}"], ["--json", "is a folder"]),
    ("validate-json-foreign-file", ["validate", "--model", "{model}:build", "--input-length",
                                    "20", "--json", "{fasta}"],
     ["--json", "seqs.fa", "not a report", "--overwrite"]),
    ("validate-same-report-paths", ["validate", "--model", "{model}:build", "--input-length",
                                    "20", "--json", "{root}/r.out", "--junit-xml",
                                    "{root}/r.out"], ["--json and --junit-xml", "r.out"]),
    ("validate-baseline-under-a-file", ["validate", "--model", "{model}:build",
                                        "--input-length", "20", "--baseline", "{a_file}/bl",
                                        "--update-baseline"], ["--baseline", "a_file.txt"]),
    ("unknown-subcommand", ["nope"], ["invalid choice", "'nope'"]),
]


@pytest.mark.parametrize("argv, fragments", [c[1:] for c in USAGE_CASES],
                         ids=[c[0] for c in USAGE_CASES])
def test_usage_errors_are_one_line_with_status_2(argv, fragments, files, tmp_path, capsys):
    if any("{nan_cells}" in a or "{cells}" in a for a in argv) or argv[0] in ("fastshap",
                                                                               "heads"):
        _needs_sc(argv[0])
    out = tmp_path / "out"
    argv = [a.format(out=out, **{k: v for k, v in files.items()}) for a in argv]
    if "--out" not in argv and argv[0] in ("deeplift", "attribute", "fastshap", "heads"):
        argv += ["--out", str(out)]
    before = _snapshot(files["root"])
    code, _, err = _run(argv, capsys)
    assert code == cli.EXIT_USAGE, (code, err)
    line = _one_line(err)
    assert line.startswith("captum-genomics") and ": error: " in line
    for fragment in fragments:
        assert fragment in line, (fragment, line)
    assert not os.path.lexists(out), "a refused run created its output folder"
    assert _snapshot(files["root"]) == before, "a refused run changed the input folder"


def test_non_writable_out_is_found_before_the_job(files, tmp_path, capsys, monkeypatch):
    """A folder the user cannot write to (as root, where chmod restricts nothing, a
    read-only probe stands in for it)."""
    from captum_genomics.workflows import deeplift_ctcf

    locked = tmp_path / "locked"
    locked.mkdir()
    started = []
    monkeypatch.setattr(deeplift_ctcf, "attribute_sequences",
                        lambda *a, **k: started.append(1))
    if os.geteuid() == 0:
        from captum_genomics._utils import outputs

        def probe(folder):
            if Path(folder) == locked:
                raise PermissionError(13, "Permission denied")
        monkeypatch.setattr(outputs, "_probe_writable", probe)
    else:
        locked.chmod(0o500)
    try:
        for out in (locked, locked / "new" / "deeper"):
            code, _, err = _run(_argv("attribute", files, out), capsys)
            assert code == cli.EXIT_USAGE
            line = _one_line(err)
            assert "--out" in line and os.fspath(locked) in line
            assert ("not writable" in line) == (out == locked)
            assert "Permission denied" in line
        assert not started, "the attribution started before --out was checked"
        assert list(locked.iterdir()) == []
    finally:
        locked.chmod(0o700)


@pytest.mark.parametrize("command", ["deeplift", "attribute", "fastshap", "heads"])
def test_earlier_run_refused_then_replaced_with_overwrite(command, files, tmp_path, capsys):
    _needs_sc(command)
    out = tmp_path / "out"
    out.mkdir()
    (out / "my_notes.txt").write_text("the user's own file\n")
    # an earlier run: a summary.json listing a file this run does not write
    (out / "old_extra.png").write_bytes(b"stale")
    (out / "summary.json").write_text(json.dumps({"files": ["old_extra.png", "summary.json",
                                                            "../my_notes.txt"]}))
    before = _snapshot(out)
    code, _, err = _run(_argv(command, files, out), capsys)
    assert code == cli.EXIT_USAGE
    line = _one_line(err)
    assert f"--out {os.fspath(out)!r} already holds the results of an earlier run" in line
    assert "old_extra.png" in line and "--overwrite" in line
    assert _snapshot(out) == before

    code, stdout, err = _run(_argv(command, files, out, "--overwrite"), capsys)
    assert code == 0, err
    assert not (out / "old_extra.png").exists(), "a stale file of the earlier run was kept"
    assert (out / "my_notes.txt").read_text() == "the user's own file\n"
    summary = json.loads((out / "summary.json").read_text())
    assert sorted(os.listdir(out)) == sorted([*summary["files"], "my_notes.txt"])
    assert "removed the earlier run's old_extra.png" in stdout
    # a second run without --overwrite is refused again: the folder now holds a run
    code, _, err = _run(_argv(command, files, out), capsys)
    assert code == cli.EXIT_USAGE and "already holds" in _one_line(err)


def test_unrelated_files_are_fine(files, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "README").write_text("mine")
    code, _, err = _run(_argv("attribute", files, out), capsys)
    assert code == 0, err
    assert (out / "README").read_text() == "mine" and (out / "summary.json").is_file()


# --------------------------------------------------------------------------- interrupts, bugs
def _patch_midway(command, monkeypatch, exc):
    """Make ``command`` raise ``exc`` after its first output files are staged."""
    if command in ("deeplift", "attribute"):
        from captum_genomics.workflows import deeplift_ctcf

        monkeypatch.setattr(deeplift_ctcf, "_write_table", _raiser(exc))
    elif command == "fastshap":
        monkeypatch.setattr(np, "savez_compressed", _raiser(exc))  # after the two CSVs
    else:
        from captum_genomics.workflows import head_ablation_pbmc

        monkeypatch.setattr(head_ablation_pbmc, "format_head_table", _raiser(exc))


def _raiser(exc):
    def boom(*args, **kwargs):
        raise exc
    return boom


def _staged_files(out: Path) -> list[str]:
    return [p.name for p in out.glob(f"{STAGING_PREFIX}*/*")]


@pytest.mark.parametrize("command", ["deeplift", "attribute", "fastshap", "heads"])
def test_interrupt_exits_130_and_leaves_nothing(command, files, tmp_path, capsys,
                                                monkeypatch):
    _needs_sc(command)
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    before = _snapshot(out)
    seen = []
    original = OutputFolder._discard

    def spy(self):
        seen.extend(_staged_files(self.path))
        original(self)
    monkeypatch.setattr(OutputFolder, "_discard", spy)
    _patch_midway(command, monkeypatch, KeyboardInterrupt())
    code, _, err = _run(_argv(command, files, out), capsys)
    assert code == cli.EXIT_INTERRUPTED
    assert "interrupted" in _one_line(err)
    assert seen, "the interrupt came before any file was staged: the test proves nothing"
    assert _snapshot(out) == before
    fresh = tmp_path / "fresh" / "out"
    code, _, _ = _run(_argv(command, files, fresh), capsys)
    assert code == cli.EXIT_INTERRUPTED and not (tmp_path / "fresh").exists()


@pytest.mark.parametrize("command", ["deeplift", "attribute", "fastshap", "heads", "validate"])
def test_bug_is_one_line_exit_70_traceback_with_debug(command, files, tmp_path, capsys,
                                                      monkeypatch):
    _needs_sc(command)
    out = tmp_path / "out"
    if command == "validate":
        from captum_genomics.workflows import validate

        monkeypatch.setattr(validate, "run_gate", _raiser(RuntimeError("boom\nsecond line")))
        argv = ["validate", "--model", f"{files['model']}:build", "--input-length", "20",
                "--json", str(tmp_path / "gate.json")]
    else:
        _patch_midway(command, monkeypatch, RuntimeError("boom\nsecond line"))
        argv = _argv(command, files, out)
    code, _, err = _run(argv, capsys)
    assert code == cli.EXIT_INTERNAL
    line = _one_line(err)
    assert "internal error: RuntimeError: boom second line" in line
    assert "bug" in line and "--debug" in line
    assert not out.exists() and not (tmp_path / "gate.json").exists()
    with pytest.raises(RuntimeError, match="boom"):
        cli.main([*argv, "--debug"])
    assert not out.exists() and not (tmp_path / "gate.json").exists()


def test_debug_raises_instead_of_one_line(files, tmp_path, capsys):
    with pytest.raises(cli.CLIError, match="no sequence"):
        cli.main(["attribute", "--model", f"{files['model']}:build", "--fasta",
                  str(files["empty"]), "--out", str(tmp_path / "o"), "--debug"])
    out = tmp_path / "earlier"
    out.mkdir()
    (out / "summary.json").write_text("{}")
    with pytest.raises(FileExistsError, match="--overwrite"):
        cli.main(["deeplift", "--out", str(out), "--debug"])
    assert capsys.readouterr().err == ""


def test_killed_while_writing_leaves_no_final_files(files, tmp_path, capsys, monkeypatch):
    """An exception between two files (here: the plot after the arrays) leaves nothing."""
    from captum_genomics.seq import plot

    out = tmp_path / "out"
    staged = []

    def fail_after_arrays(*args, **kwargs):
        staged.extend(_staged_files(out))
        raise OSError(28, "No space left on device", str(out / "logo.png"))
    monkeypatch.setattr(plot, "save_attribution_figure", fail_after_arrays)
    argv = [a for a in _argv("attribute", files, out) if a != "--no-plot"]
    code, _, err = _run(argv, capsys)
    assert code == cli.EXIT_USAGE
    assert "No space left on device" in _one_line(err)
    assert {"ohe.npz", "shap.npz", "contributions.npz", "windows.tsv"} <= set(staged)
    assert not out.exists()


def test_validate_interrupt_and_report_files(files, tmp_path, capsys, monkeypatch):
    """Ctrl-C writes no report; a foreign file at --json is kept unless --overwrite; an
    earlier report at the same path is replaced (a CI job's every run). The suite itself
    is replaced by a one-check stand-in (test_validate.py runs the real ones)."""
    from captum_genomics.testing.gate import CheckResult, GateReport
    from captum_genomics.workflows import validate

    report = tmp_path / "gate.json"
    argv = ["validate", "--model", f"{files['model']}:build", "--input-length", "20",
            "--json", str(report)]
    monkeypatch.setattr(validate, "run_gate", _raiser(KeyboardInterrupt()))
    code, _, err = _run(argv, capsys)
    assert code == cli.EXIT_INTERRUPTED and "interrupted" in _one_line(err)
    assert list(tmp_path.iterdir()) == []

    def one_check(context, model_name):
        return GateReport(context.method, model_name,
                          [CheckResult("stand_in", 0.0, 1.0, True, 0.0, "", {})])
    monkeypatch.setattr(validate, "run_gate", one_check)
    report.write_text("my notes\n")
    code, _, err = _run(argv, capsys)
    assert code == cli.EXIT_USAGE and "--overwrite" in _one_line(err)
    assert report.read_text() == "my notes\n"
    code, _, err = _run([*argv, "--overwrite"], capsys)
    assert code == 0, err
    assert validate.is_validate_report(report)
    assert json.loads(report.read_text())["metadata"]["random_state"] == 0
    code, _, err = _run([*argv, "--random-state", "1"], capsys)   # no --overwrite needed
    assert code == 0, err
    assert json.loads(report.read_text())["metadata"]["random_state"] == 1
    junit = tmp_path / "gate.xml"
    code, _, err = _run([*argv, "--junit-xml", str(junit)], capsys)
    assert code == 0 and validate.is_validate_report(junit)
    code, _, err = _run([*argv, "--junit-xml", str(junit)], capsys)
    assert code == 0, err


# --------------------------------------------------------------------------- summary lines
def test_fasta_composition_and_all_n_records(files, tmp_path, capsys):
    fasta = tmp_path / "junk.fa"
    fasta.write_text(">allN\n" + "N" * 30 + "\n>iupac\nACGTRYACGTACGTTTGACNNACGTAGCAT\n"
                     ">lower\nacgtttacgtacgtttgacggacgtagcat\n>soft_n\nnnnnnnnnnnacgtacgtacgtacgtacgt\n")
    out = tmp_path / "out"
    code, stdout, err = _run(["attribute", "--model", f"{files['model']}:build", "--fasta",
                              str(fasta), "--n-references", "3", "--no-plot", "--out",
                              str(out)], capsys)
    assert code == 0, err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["composition"] == {
        "n_records": 4, "n_all_n": 1, "n_records_with_n": 3, "n_non_acgt": 30 + 4 + 10,
        "n_other": 2, "other_characters": {"R": 1, "Y": 1}}
    assert ("input: 44 non-ACGT characters in 3 of 4 sequences of junk.fa, encoded as N "
            "(all-zero columns); 2 of them IUPAC codes or other characters ('R' x1, 'Y' x1); "
            "1 of them all N, kept with zero contributions") in stdout
    contributions = np.load(out / "contributions.npz")["arr_0"]
    assert contributions.shape == (4, 4, 30) and not contributions[0].any()
    assert "UninformativeReferencesWarning" in _one_line(err)   # one line, not two

    allN = tmp_path / "allN.fa"
    allN.write_text(">a\nNNNNNNNN\n>b\nnnnnnnnn\n")
    code, _, err = _run(["attribute", "--model", f"{files['model']}:build", "--fasta",
                         str(allN), "--out", str(tmp_path / "o2")], capsys)
    assert code == cli.EXIT_USAGE
    assert "--fasta: all 2 record(s) used from" in _one_line(err) and "all N" in err
    assert not (tmp_path / "o2").exists()


def test_clean_input_has_no_composition_line(files, tmp_path, capsys):
    out = tmp_path / "out"
    code, stdout, _ = _run(_argv("attribute", files, out), capsys)
    assert code == 0 and "non-ACGT" not in stdout
    comp = json.loads((out / "summary.json").read_text())["composition"]
    assert comp["n_non_acgt"] == 0 and comp["n_all_n"] == 0
    assert "additivity: all 8 example-reference pairs have |delta| <= 0.001" in stdout


def test_strict_exits_1_on_non_additive_pairs(files, tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["attribute", "--model", f"{files['model']}:Normalized", "--fasta",
            str(files["fasta"]), "--n-references", "3", "--no-plot", "--out", str(out)]
    code, stdout, err = _run(argv, capsys)
    assert code == 0   # without --strict: reported, not an error
    summary = json.loads((out / "summary.json").read_text())
    n_bad = summary["n_nonadditive_pairs"]
    assert summary["n_pairs"] == 12 and n_bad > 0
    # recount from the method itself
    from captum_genomics import ShuffleDeepLiftShap
    from captum_genomics._utils.models import load_user_model
    from captum_genomics.seq.io import one_hot_encode, read_fasta

    model = load_user_model(f"{files['model']}:Normalized")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, delta = ShuffleDeepLiftShap(model).attribute(
            one_hot_encode(read_fasta(files["fasta"])[1]), n_references=3, random_state=0,
            target=0, hypothetical=True, return_convergence_delta=True)
    assert n_bad == int((delta.abs() > 1e-3).sum())
    assert f"additivity: {n_bad} of 12 (sequences of seqs.fa) example-reference pairs are " \
           "not additive (|delta| > 0.001)" in stdout
    code, _, err = _run([*argv, "--strict", "--overwrite"], capsys)
    assert code == cli.EXIT_FAILED
    strict = [line for line in err.splitlines() if "--strict" in line]
    expected = (f"captum-genomics attribute: --strict: {n_bad} of 12 example-reference "
                f"pairs are not additive (|delta| > 0.001); the files are in "
                f"{os.fspath(out)}/.")
    assert strict == [expected]
    assert (out / "summary.json").is_file()
    # --strict on an additive model: exit 0
    code, _, _ = _run([*_argv("attribute", files, tmp_path / "ok"), "--strict"], capsys)
    assert code == 0


def test_fastshap_help_shows_a_single_percent_sign(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["fastshap", "--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    assert "95% CIs" in text and "%%" not in text
    for command in ("deeplift", "attribute", "heads", "validate"):
        with pytest.raises(SystemExit):
            cli.main([command, "--help"])
        text = capsys.readouterr().out
        assert "%%" not in text and "--debug" in text
        assert ("--overwrite" in text)


# --------------------------------------------------------------------------- the folder itself
def test_output_folder_moves_the_manifest_last(tmp_path, monkeypatch):
    order = []
    real = os.replace

    def spy(src, dst):
        order.append(Path(dst).name)
        real(src, dst)
    monkeypatch.setattr(os, "replace", spy)
    with OutputFolder(tmp_path / "o", ["a.txt", "summary.json", "b.txt"]) as out:
        for name in ("summary.json", "b.txt", "a.txt"):
            out.staged(name).write_text(name)
        assert not (tmp_path / "o" / "a.txt").exists()
    assert order[-1] == "summary.json" and sorted(order) == ["a.txt", "b.txt", "summary.json"]
    assert sorted(os.listdir(tmp_path / "o")) == ["a.txt", "b.txt", "summary.json"]
    mode = (tmp_path / "o" / "a.txt").stat().st_mode & 0o777
    umask = os.umask(0)
    os.umask(umask)
    assert mode == 0o666 & ~umask


def test_output_folder_refuses_and_protects(tmp_path):
    (tmp_path / "summary.json").write_text("not json")
    with pytest.raises(FileExistsError, match="out_dir .* overwrite=True"):
        check_output_folder(tmp_path, ["x.csv", "summary.json"])
    # a foreign manifest listing paths outside the folder removes nothing outside it
    outside = tmp_path.parent / f"{tmp_path.name}_outside.txt"
    outside.write_text("precious")
    (tmp_path / "summary.json").write_text(json.dumps({"files": [os.fspath(outside),
                                                                 "../" + outside.name,
                                                                 ".hidden"]}))
    (tmp_path / ".hidden").write_text("h")
    with OutputFolder(tmp_path, ["x.csv", "summary.json"], overwrite=True) as out:
        out.staged("x.csv").write_text("1")
        out.staged("summary.json").write_text("{}")
        with pytest.raises(ValueError, match="not one of this job's files"):
            out.staged("other.csv")
    assert outside.read_text() == "precious" and (tmp_path / ".hidden").exists()
    assert out.removed == []
    with pytest.raises(ValueError, match="manifest"):
        OutputFolder(tmp_path, ["x.csv"])


# --------------------------------------------------------------------------- real processes
def _cli_process(*args, **kwargs):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(cli.__file__).parents[1]),
                                                        os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen([sys.executable, *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, **kwargs)


def test_real_process_usage_error_has_no_traceback(files, tmp_path):
    proc = _cli_process("-m", "captum_genomics.cli", "attribute", "--model",
                        f"{files['model']}:build", "--fasta", str(files["truncated"]),
                        "--out", str(tmp_path / "o"))
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 2
    assert _one_line(err).startswith("captum-genomics attribute: error: --fasta: ")
    assert not (tmp_path / "o").exists()


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT to a child process")
def test_real_ctrl_c_exits_130_and_cleans_up(files, tmp_path):
    out = tmp_path / "out"
    marker = tmp_path / "attributing"
    script = (
        "import sys, time\n"
        "from captum_genomics import cli\n"
        "from captum_genomics.workflows import deeplift_ctcf\n"
        "def slow(*a, **k):\n"
        f"    open({os.fspath(marker)!r}, 'w').close()\n"
        "    time.sleep(60)\n"
        "deeplift_ctcf.attribute_sequences = slow\n"
        f"sys.exit(cli.main(['attribute', '--model', {files['model'].as_posix() + ':build'!r},"
        f" '--fasta', {os.fspath(files['fasta'])!r}, '--out', {os.fspath(out)!r}]))\n")
    proc = _cli_process("-c", script)
    deadline = time.monotonic() + 120
    while not marker.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert [p.name[:len(STAGING_PREFIX)] for p in out.iterdir()] == [STAGING_PREFIX]
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert "interrupted" in _one_line(err)
    assert not out.exists()
