"""``captum-genomics validate``: the gate's sequence and peer suites, the reports, the exit codes.

The models are small and written here: a correct float64 transformer-style
model (convolution, GELU, LayerNorm, hand-written softmax(QK^T)V attention)
that must pass every check, models with an op that has no DeepLIFT rule
(``F.normalize``, ``torch.logsumexp``) that must fail additivity, and
Captum's ``DeepLiftShap`` on the GELU model, which must fail completeness.
Figures are checked against independent computations (Captum run here, plain
forward passes), and the JSON, JUnit XML and table against each other.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import time
import xml.etree.ElementTree as ET

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from captum_genomics import cli
from captum_genomics.references import dinucleotide_shuffle
from captum_genomics.testing.gate import CheckResult, GateReport
from captum_genomics.testing.gate.reports import (
    format_table,
    report_to_dict,
    write_json,
    write_junit_xml,
)
from captum_genomics.workflows.validate import ValidationUsageError, run_validate

LENGTH = 24

MODELS = '''
import math
import torch
import torch.nn as nn
import torch.nn.functional as F


class Transformer(nn.Module):
    """conv -> GELU -> LayerNorm -> one attention head written by hand -> mean -> linear."""

    def __init__(self, channels=8, n_outputs=3):
        super().__init__()
        self.conv = nn.Conv1d(4, channels, 5, padding=2)
        self.act = nn.GELU()
        self.norm = nn.LayerNorm(channels)
        self.q = nn.Linear(channels, channels)
        self.k = nn.Linear(channels, channels)
        self.v = nn.Linear(channels, channels)
        self.head = nn.Linear(channels, n_outputs)

    def forward(self, x):
        h = self.norm(self.act(self.conv(x)).transpose(1, 2))      # (B, L, C)
        q, k, v = self.q(h), self.k(h), self.v(h)
        scores = q @ k.transpose(1, 2) / math.sqrt(q.shape[-1])   # (B, L, L)
        h = h + torch.softmax(scores, dim=-1) @ v
        return self.head(h.mean(dim=1))


class Normalized(nn.Module):
    """F.normalize has no exact DeepLIFT rule."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(4, 6, 5, padding=2)
        self.head = nn.Linear(6, 2)

    def forward(self, x):
        h = F.normalize(torch.relu(self.conv(x)) + 0.1, dim=1)
        return self.head(h.mean(dim=-1))


class LogSumExp(nn.Module):
    """torch.logsumexp has no exact DeepLIFT rule; returns (B,)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(4, 6, 5, padding=2)

    def forward(self, x):
        return torch.logsumexp(self.conv(x), dim=-1).sum(dim=1)


class Flat(nn.Module):
    """Only takes sequences of length 24."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(4 * 24, 2)

    def forward(self, x):
        return self.linear(x.flatten(1))


class ThreeD(nn.Module):
    """Returns (B, 2, L): not (B,) or (B, T)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(4, 2, 3, padding=1)

    def forward(self, x):
        return self.conv(x)


def _seeded(cls):
    def build():
        torch.manual_seed(0)
        return cls().double()
    return build


transformer = _seeded(Transformer)
normalized = _seeded(Normalized)
logsumexp = _seeded(LogSumExp)
flat = _seeded(Flat)
three_d = _seeded(ThreeD)
'''


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("models") / "user_models.py"
    path.write_text(MODELS)
    return path


def _validate(argv, capsys):
    status = cli.main(["validate", *argv])
    return status, capsys.readouterr()


def _table_figures(text: str) -> dict[str, tuple[str, str, str]]:
    """check -> (figure, bound, verdict) as printed."""
    rows = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.split("|")]
        if len(cells) == 5 and cells[0] not in ("check",) and not line.startswith(" "):
            rows[cells[0]] = (cells[1], cells[2], cells[3])
    return rows


def _printed(value) -> str:
    """How the table prints a JSON figure (3 significant digits)."""
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    return "0" if value == 0 else f"{value:.3g}"


@pytest.fixture(scope="module")
def transformer_run(model_file, tmp_path_factory):
    """One gate run on the correct transformer, with both reports."""
    out = tmp_path_factory.mktemp("reports")
    json_path, junit_path = out / "gate.json", out / "gate.xml"
    argv = ["validate", "--model", f"{model_file}:transformer", "--input-length", str(LENGTH),
            "--n-examples", "3", "--n-references", "3", "--json", str(json_path),
            "--junit-xml", str(junit_path)]
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        status = cli.main(argv)
    return status, buffer.getvalue(), json_path, junit_path


def test_correct_transformer_passes_every_check(transformer_run):
    status, table, json_path, _ = transformer_run
    assert status == 0, table
    data = json.loads(json_path.read_text())
    names = [c["name"] for c in data["checks"]]
    assert names == ["additivity", "completeness", "batch_invariance", "determinism",
                     "agreement_tangermeme", "agreement_captum", "model_unchanged",
                     "model_unchanged_on_error", "device_agreement", "no_leaked_hooks"]
    verdicts = {c["name"]: c["verdict"] for c in data["checks"]}
    # every check that ran passed; the peers lack rules for GELU / the products, so
    # the agreement checks are skipped with the peer's own delta in the reason
    assert all(v in ("pass", "skip") for v in verdicts.values()), verdicts
    for name in ("additivity", "completeness", "batch_invariance", "determinism",
                 "model_unchanged", "model_unchanged_on_error", "no_leaked_hooks"):
        assert verdicts[name] == "pass", name
    checks = {c["name"]: c for c in data["checks"]}
    assert checks["additivity"]["figure"] < 1e-12
    assert checks["agreement_captum"]["verdict"] == "skip"
    assert "not additive" in checks["agreement_captum"]["reason"]
    # the relative invariance bound: 1e-12 * (1 + max|attr|)
    scale = checks["batch_invariance"]["details"]["max_abs_attribution"]
    assert checks["batch_invariance"]["bound"] == pytest.approx(1e-12 * (1 + scale))
    meta = data["metadata"]
    assert meta["input_shape"] == [3, 4, LENGTH] and meta["dtype"] == "float64"
    assert len(meta["model_sha256"]) == 64 and meta["torch"] == torch.__version__


def test_completeness_figure_against_plain_forwards(model_file, transformer_run):
    """The completeness figure is max |sum(attr) - (f(x) - mean f(r))|, recomputed here."""
    from captum_genomics import ShuffleDeepLiftShap
    from captum_genomics._utils.models import load_user_model
    from captum_genomics.workflows.validate import _random_one_hot

    _, _, json_path, _ = transformer_run
    figure = {c["name"]: c for c in json.loads(json_path.read_text())["checks"]}
    model = load_user_model(f"{model_file}:transformer").double()
    x = _random_one_hot(3, LENGTH, 0)
    refs = dinucleotide_shuffle(x, 3, random_state=0)
    attr = ShuffleDeepLiftShap(model).attribute(x, references=refs, target=0)
    with torch.no_grad():
        fx = model(x)[:, 0]
        fr = model(refs.reshape(9, 4, LENGTH))[:, 0].reshape(3, 3)
    expected = float((attr.sum((1, 2)) - (fx - fr.mean(1))).abs().max())
    assert figure["completeness"]["figure"] == pytest.approx(expected, abs=1e-15)


def test_json_junit_and_table_carry_the_same_figures(transformer_run):
    _, table, json_path, junit_path = transformer_run
    data = json.loads(json_path.read_text())
    printed = _table_figures(table)
    root = ET.parse(junit_path).getroot()
    cases = root.findall("./testsuite/testcase")
    assert [c.get("name") for c in cases] == [c["name"] for c in data["checks"]]
    suite = root.find("testsuite")
    assert int(suite.get("tests")) == len(data["checks"])
    assert int(suite.get("skipped")) == sum(c["verdict"] == "skip" for c in data["checks"])
    for check, case in zip(data["checks"], cases):
        assert printed[check["name"]][0] == _printed(check["figure"])
        assert printed[check["name"]][1] == _printed(check["bound"])
        assert printed[check["name"]][2] == check["verdict"]
        props = {p.get("name"): p.get("value") for p in case.findall("./properties/property")}
        figure = float(props["figure"])
        if check["figure"] is None:
            assert math.isnan(figure) and case.find("skipped") is not None
        else:
            assert figure == check["figure"]
        assert float(props["bound"]) == check["bound"]
        assert props["verdict"] == check["verdict"]


@pytest.mark.filterwarnings("ignore")  # the direct call below warns about the missing rule
@pytest.mark.parametrize("name", ["normalized", "logsumexp"])
def test_op_without_rule_fails_additivity(name, model_file, tmp_path, capsys):
    json_path = tmp_path / "gate.json"
    status, out = _validate(["--model", f"{model_file}:{name}", "--input-length", str(LENGTH),
                             "--n-examples", "2", "--n-references", "2",
                             "--json", str(json_path)], capsys)
    assert status == 1, out.out
    checks = {c["name"]: c for c in json.loads(json_path.read_text())["checks"]}
    assert checks["additivity"]["verdict"] == "FAIL"
    assert checks["additivity"]["figure"] > 1e-6
    assert "FAIL" in _table_figures(out.out)["additivity"][2]
    # the figure is the method's own max |delta|, recomputed here
    from captum_genomics import ShuffleDeepLiftShap
    from captum_genomics._utils.models import load_user_model
    from captum_genomics.workflows.validate import _random_one_hot

    model = load_user_model(f"{model_file}:{name}").double()
    x = _random_one_hot(2, LENGTH, 0)
    refs = dinucleotide_shuffle(x, 2, random_state=0)
    target = None if name == "logsumexp" else 0
    _, delta = ShuffleDeepLiftShap(model).attribute(x, references=refs, target=target,
                                                    return_convergence_delta=True)
    assert checks["additivity"]["figure"] == pytest.approx(float(delta.abs().max()), rel=1e-9)


def test_failed_additivity_names_the_op(model_file, tmp_path, capsys):
    pytest.importorskip("captum_genomics.testing.localize")
    json_path = tmp_path / "gate.json"
    status, out = _validate(["--model", f"{model_file}:normalized", "--input-length",
                             str(LENGTH), "--n-examples", "2", "--n-references", "2",
                             "--json", str(json_path)], capsys)
    assert status == 1
    additivity = json.loads(json_path.read_text())["checks"][0]
    culprits = additivity["details"]["culprits"]
    assert culprits and "normalize" in culprits[0]["op"]
    assert "culprit: " in out.out and "normalize" in out.out


@pytest.mark.filterwarnings("ignore")  # Captum warns about its hooks
def test_captum_deep_lift_shap_fails_completeness_on_gelu(model_file, tmp_path, capsys):
    from captum.attr import DeepLiftShap

    from captum_genomics._utils.models import load_user_model
    from captum_genomics.workflows.validate import _random_one_hot

    json_path = tmp_path / "peer.json"
    status, out = _validate(["--model", f"{model_file}:transformer", "--method",
                             "captum:DeepLiftShap", "--input-length", str(LENGTH),
                             "--n-examples", "2", "--n-references", "3",
                             "--json", str(json_path)], capsys)
    assert status == 1, out.out
    (check,) = json.loads(json_path.read_text())["checks"]
    assert check["name"] == "completeness" and check["verdict"] == "FAIL"
    assert check["figure"] > 1e3 * check["bound"]
    # independently: Captum on the same references, one example at a time
    model = load_user_model(f"{model_file}:transformer").double()
    x = _random_one_hot(2, LENGTH, 0)
    refs = dinucleotide_shuffle(x, 3, random_state=0)
    worst = 0.0
    for i in range(2):
        attr = DeepLiftShap(model).attribute(x[i:i + 1], baselines=refs[i], target=0)
        with torch.no_grad():
            want = model(x[i:i + 1])[0, 0] - model(refs[i])[:, 0].mean()
        worst = max(worst, float((attr.sum() - want).abs().detach()))
    assert check["figure"] == pytest.approx(worst, rel=1e-9)


def test_peers_pass_where_they_have_rules(tmp_path, capsys):
    """conv -> ReLU -> linear: every DeepLIFT peer is exact; IG within its relative bound."""
    path = tmp_path / "relu_model.py"
    path.write_text("import torch, torch.nn as nn\n"
                    "def build():\n"
                    "    torch.manual_seed(1)\n"
                    "    return nn.Sequential(nn.Conv1d(4, 6, 5), nn.ReLU(), nn.Flatten(),\n"
                    "                         nn.Linear(6 * 20, 2)).double()\n")
    for method in ("captum:DeepLift", "tangermeme:deep_lift_shap", "captum:DeepLiftShap"):
        json_path = tmp_path / "peer.json"
        status, out = _validate(["--model", f"{path}:build", "--method", method,
                                 "--input-length", str(LENGTH), "--n-examples", "2",
                                 "--n-references", "2", "--json", str(json_path)], capsys)
        assert status == 0, (method, out.out)
        (check,) = json.loads(json_path.read_text())["checks"]
        assert check["figure"] < 1e-12, method


def test_integrated_gradients_on_tabular_inputs(tmp_path, capsys):
    """A linear model: IG's gradient is constant, so completeness holds up to the weights.

    Captum casts its quadrature weights to float32 (``step_sizes ... .float()``); they
    sum to 1 - 6e-8, so even here the relative error is ~1e-8, not ~1e-16.
    """
    import numpy as np

    path = tmp_path / "linear.py"
    path.write_text("import torch, torch.nn as nn\n"
                    "def build():\n"
                    "    torch.manual_seed(2)\n"
                    "    return nn.Linear(6, 2)\n")
    inputs = tmp_path / "cells.npy"
    np.save(inputs, np.random.default_rng(0).random((5, 6)))
    json_path = tmp_path / "ig.json"
    status, out = _validate(["--model", f"{path}:build", "--method",
                             "captum:IntegratedGradients", "--inputs", str(inputs),
                             "--target", "1", "--json", str(json_path)], capsys)
    assert status == 0, out.out
    (check,) = json.loads(json_path.read_text())["checks"]
    assert check["name"] == "completeness_zero_baseline"
    assert check["details"]["relative_error"] < 1e-7
    # bound: 5% of the largest |f(x) - f(0)|, computed here from the weights
    x = torch.from_numpy(np.load(inputs))
    from captum_genomics._utils.models import load_user_model

    w = load_user_model(f"{path}:build").weight.detach().double()[1]
    assert check["bound"] == pytest.approx(0.05 * float((x @ w).abs().max()) + 1e-10)


def test_tuple_target_for_outputs_with_two_axes(model_file):
    """--target T,P explains output[:, T, P] of a (B, T, P) model; tangermeme needs an int."""
    report = run_validate(f"{model_file}:three_d", input_length=LENGTH, target="1,5",
                          n_examples=2, n_references=2, verbose=False)
    checks = {r.name: r for r in report.results}
    assert report.passed, [(r.name, r.figure, r.details) for r in report.failed]
    assert checks["additivity"].figure < 1e-12
    assert checks["agreement_tangermeme"].skipped
    assert checks["model_unchanged_on_error"].details["target"] == (2, 0)  # out of range
    with pytest.raises(ValidationUsageError, match="out of range"):
        run_validate(f"{model_file}:three_d", input_length=LENGTH, target="1,24", verbose=False)


def test_baseline_written_then_compared(model_file, tmp_path, capsys):
    common = ["--model", f"{model_file}:transformer", "--input-length", str(LENGTH),
              "--n-examples", "2", "--n-references", "2", "--baseline", str(tmp_path / "bl")]
    with pytest.raises(SystemExit) as exc:  # no baseline yet
        cli.main(["validate", *common])
    assert exc.value.code == 2 and "--update-baseline" in capsys.readouterr().err
    status, out = _validate([*common, "--update-baseline"], capsys)
    assert status == 0 and _table_figures(out.out)["drift"][2] == "pass"
    json_path = tmp_path / "again.json"
    status, out = _validate([*common, "--json", str(json_path)], capsys)
    assert status == 0, out.out
    drift = json.loads(json_path.read_text())["checks"][-1]
    assert drift["name"] == "drift" and drift["figure"] == 0.0


@pytest.mark.parametrize("argv, message", [
    (["--model", "no_colon_here", "--input-length", "24"], "--model must look like"),
    (["--model", "{file}:transformer", "--weights", "{missing}", "--input-length", "24"],
     "--weights: no such file"),
    (["--model", "{file}:flat", "--input-length", "30"], "failed"),
    (["--model", "{file}:three_d", "--input-length", "24"], "expected (1,) or (1, T)"),
    (["--model", "{file}:transformer", "--input-length", "24", "--method", "Nope"],
     "--method 'Nope' is not known"),
    (["--model", "{file}:transformer", "--input-length", "24", "--target", "7"],
     "out of range"),
    (["--model", "{file}:transformer", "--inputs", "{missing}"], "--inputs: no such file"),
    (["--model", "{file}:transformer"], "--input-length"),
    (["--model", "{file}:transformer", "--input-length", "24", "--update-baseline"],
     "--update-baseline needs --baseline"),
])
def test_usage_errors_exit_2_with_one_line(argv, message, model_file, tmp_path, capsys):
    argv = [a.format(file=model_file, missing=tmp_path / "missing.bin") for a in argv]
    with pytest.raises(SystemExit) as exc:
        cli.main(["validate", *argv])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if "error:" in line]
    assert len(errors) == 1 and message in errors[0], err


def test_cuda_unavailable_is_a_usage_error(model_file, monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SystemExit) as exc:
        cli.main(["validate", "--model", f"{model_file}:transformer", "--input-length", "24",
                  "--device", "cuda"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "--device cuda" in err.splitlines()[-1] and "Traceback" not in err


def test_fasta_inputs_are_the_first_examples(model_file, tmp_path):
    fasta = tmp_path / "seqs.fa"
    seqs = ["ACGT" * 6, "TTGCA" * 4 + "ACGA", "GGGCCCAAATTT" * 2]
    fasta.write_text("".join(f">s{i}\n{s}\n" for i, s in enumerate(seqs)))
    report = run_validate(f"{model_file}:transformer", inputs=fasta, n_examples=2,
                          n_references=2, method="captum:DeepLift", verbose=False)
    assert report.metadata["input_shape"] == [2, 4, LENGTH]
    bad = tmp_path / "bad.fa"
    bad.write_text(">a\nACGT\n>b\nACG\n")
    with pytest.raises(ValidationUsageError, match="same length"):
        run_validate(f"{model_file}:transformer", inputs=bad, verbose=False)


def _report(results, seconds=1.5) -> GateReport:
    return GateReport("ShuffleDeepLiftShap", "m.py:build", list(results),
                      {"seconds": seconds, "device": "cpu"})


def test_reports_of_failed_and_skipped_checks(tmp_path):
    culprit = {"index": 7, "op": "normalize", "caller": "model.py:12", "rule": None,
               "violation": 0.25}
    report = _report([
        CheckResult("additivity", 0.3, 1e-10, False, 0.5, "exact", {"culprits": [culprit]}),
        CheckResult("agreement_captum", math.nan, 1e-10, None, 0.1, "Captum is not additive"),
        CheckResult("determinism", math.inf, 0.0, False, 0.2, "bitwise",
                    {"problem": "seed ignored"}),
        CheckResult("batch_invariance", 0.0, 1e-12, True, 0.3, "relative"),
    ])
    table = format_table(report)
    lines = table.splitlines()
    row = lines.index(next(line for line in lines if line.startswith("additivity")))
    assert "culprit: op #7 normalize at model.py:12 (no rule)" in lines[row + 1]
    assert "skipped: Captum is not additive" in table and "problem: seed ignored" in table
    assert lines[-1].startswith("FAILED: 1 passed, 2 failed, 1 skipped")

    path = tmp_path / "r.json"
    write_json(report, path)
    write_json(report, path)  # a CI job overwrites its report: replaced atomically
    data = json.loads(path.read_text())
    assert [c["figure"] for c in data["checks"]] == [0.3, None, "inf", 0.0]
    assert data["passed"] is False and data["checks"][1]["passed"] is None
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind

    xml_path = tmp_path / "r.xml"
    write_junit_xml(report, xml_path)
    suite = ET.parse(xml_path).getroot().find("testsuite")
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == ["additivity", "agreement_captum", "determinism",
                                               "batch_invariance"]
    assert suite.get("failures") == "2" and suite.get("skipped") == "1"
    assert cases[0].find("failure") is not None and "normalize" in cases[0].find("failure").text
    assert cases[1].find("skipped").get("message") == "Captum is not additive"
    assert cases[3].find("failure") is None and cases[3].find("skipped") is None
    with pytest.raises(FileNotFoundError):
        write_json(report, tmp_path / "no" / "such" / "r.json")


_figures = st.one_of(st.floats(allow_nan=True, allow_infinity=True),
                     st.floats(0, 1e3, allow_nan=False))


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(_figures, st.floats(0, 1, allow_nan=False),
                          st.sampled_from([True, False, None])), min_size=1, max_size=6))
def test_reports_round_trip(tmp_path_factory, rows):
    results = [CheckResult(f"check_{i}", f, b, p, 0.01 * i, "why")
               for i, (f, b, p) in enumerate(rows)]
    report = _report(results)
    folder = tmp_path_factory.mktemp("rt")
    write_json(report, folder / "r.json")
    write_junit_xml(report, folder / "r.xml")
    data = json.loads((folder / "r.json").read_text())
    cases = ET.parse(folder / "r.xml").getroot().findall("./testsuite/testcase")
    assert len(cases) == len(results) == len(data["checks"])
    for r, check, case in zip(results, data["checks"], cases):
        if math.isnan(r.figure):
            assert check["figure"] is None
        elif math.isinf(r.figure):
            assert check["figure"] == ("inf" if r.figure > 0 else "-inf")
        else:
            assert check["figure"] == r.figure
        props = {p.get("name"): p.get("value") for p in case.findall("./properties/property")}
        value = float(props["figure"])
        assert (math.isnan(value) and math.isnan(r.figure)) or value == r.figure
        assert (case.find("failure") is not None) == (r.passed is False)
        assert (case.find("skipped") is not None) == (r.passed is None)
    assert data == report_to_dict(report)
    assert len(format_table(report).splitlines()) >= len(results) + 3


@pytest.mark.slow
def test_default_gate_on_bpnet_within_budget(capsys):
    """The default gate on the shipped BPNet-like model, L=1000: under 60 s on 2 cores."""
    start = time.perf_counter()
    status, out = _validate(["--model", "captum_genomics.zoo.bpnet:BPNetLike",
                             "--input-length", "1000"], capsys)
    seconds = time.perf_counter() - start
    print(out.out, f"\n{seconds:.1f} s")
    assert status == 0, out.out
    assert seconds < 60


def test_device_agreement_compares_with_a_cpu_copy():
    """The CUDA check's comparison, run CPU against CPU: identical pairs give 0."""
    import torch.nn as nn

    from captum_genomics import ShuffleDeepLiftShap
    from captum_genomics.references import dinucleotide_shuffle
    from captum_genomics.testing.gate.sequence import device_agreement

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv1d(4, 3, 5), nn.ReLU(), nn.Flatten(),
                          nn.Linear(3 * 12, 2)).double().eval()
    g = torch.Generator().manual_seed(0)
    x = torch.nn.functional.one_hot(torch.randint(0, 4, (3, 16), generator=g), 4)
    x = x.transpose(1, 2).double()
    refs = dinucleotide_shuffle(x, 2, random_state=0).double()
    figure, details = device_agreement(ShuffleDeepLiftShap(model), x, refs, 1, model)
    assert figure == 0.0 and details["max_abs_difference"] == 0.0
    other = nn.Sequential(nn.Conv1d(4, 3, 5), nn.ReLU(), nn.Flatten(),
                          nn.Linear(36, 2)).double().eval()      # other weights: must differ
    figure, _ = device_agreement(ShuffleDeepLiftShap(other), x, refs, 1, model)
    assert figure > 1e-6


HEADS_MODEL = '''
import torch
import torch.nn as nn


class Neighbours(nn.Module):
    def __init__(self, genes=6, types=3, embed=8, heads=2):
        super().__init__()
        torch.manual_seed(0)
        self.encode = nn.Linear(genes, embed)
        self.query = nn.Embedding(types, embed)
        self.attention = nn.MultiheadAttention(embed, heads, batch_first=True)
        self.decode = nn.Linear(embed, genes)

    def forward(self, neighbours, cell_type):
        kv = torch.tanh(self.encode(neighbours))
        out, _ = self.attention(self.query(cell_type).unsqueeze(1), kv, kv)
        return self.decode(out.squeeze(1))


def build():
    return Neighbours().eval()
'''


def test_head_ablation_from_the_command_line(tmp_path):
    import numpy as np

    (tmp_path / "attn.py").write_text(HEADS_MODEL)
    rng = np.random.default_rng(0)
    groups = rng.integers(0, 3, 40)
    np.save(tmp_path / "nb.npy", rng.normal(size=(40, 5, 6)))
    np.save(tmp_path / "groups.npy", groups)
    np.save(tmp_path / "obs.npy", rng.normal(size=(40, 6)))
    np.savez(tmp_path / "fa.npz", groups)
    common = ["validate", "--model", f"{tmp_path / 'attn.py'}:build",
              "--inputs", str(tmp_path / "nb.npy"), "--attention", "attention",
              "--groups", str(tmp_path / "groups.npy"), "--observed", str(tmp_path / "obs.npy")]
    out = tmp_path / "heads.json"
    with contextlib.redirect_stdout(io.StringIO()):
        status = cli.main([*common, "--forward-args", str(tmp_path / "fa.npz"),
                           "--json", str(out)])
    assert status == 0
    checks = {c["name"]: c for c in json.loads(out.read_text())["checks"]}
    assert checks["brute_force_agreement"]["verdict"] == "pass"
    assert checks["brute_force_agreement"]["figure"] <= 1e-10
    with pytest.raises(SystemExit) as err, contextlib.redirect_stderr(io.StringIO()):
        cli.main(common[:-2])                                   # --observed missing
    assert err.value.code == 2
