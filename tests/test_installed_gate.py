"""The gate as a new user gets it: a regular (non-editable) install, run from outside the repo.

Builds the wheel once, installs it with ``--no-deps`` into a fresh virtual
environment whose dependencies come from this one (a ``.pth`` line; the
checkout itself is not importable there), and from a temporary directory runs
``captum-genomics validate`` on user-written models and ``pytest --pyargs
captum_genomics.testing --cg-model ...``. Slow (a wheel build and several gate
runs): ``pytest -m slow tests/test_installed_gate.py``.
"""

from __future__ import annotations

import json
import os
import site
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]

TRANSFORMER = '''
import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    """Conv stem, GELU, LayerNorm, single-head attention written out, pooling."""

    def __init__(self, d=8):
        super().__init__()
        self.stem = nn.Conv1d(4, d, 5, padding=2)
        self.norm = nn.LayerNorm(d)
        self.q, self.k, self.v = nn.Linear(d, d), nn.Linear(d, d), nn.Linear(d, d)
        self.out = nn.Linear(d, 2)

    def forward(self, x):
        h = F.gelu(self.stem(x)).transpose(1, 2)          # (B, L, d)
        h = self.norm(h)
        att = torch.softmax(self.q(h) @ self.k(h).transpose(1, 2) / 8 ** 0.5, dim=-1)
        h = h + att @ self.v(h)
        return self.out(h.mean(1))


def build():
    torch.manual_seed(0)
    return Block().eval()


class Normalized(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.out = nn.Conv1d(4, 6, 5), nn.Linear(6, 2)

    def forward(self, x):
        h = F.normalize(torch.relu(self.conv(x)), dim=1)   # no DeepLIFT rule
        return self.out(h.mean(-1))


def build_unsupported():
    torch.manual_seed(0)
    return Normalized().eval()
'''


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """``(python, captum-genomics, workdir)`` of a fresh venv holding the built wheel."""
    root = tmp_path_factory.mktemp("installed")
    wheels = root / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                    "--no-build-isolation", "-w", str(wheels), str(REPO)], check=True)
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    purelib = subprocess.run([str(python), "-c",
                              "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             check=True, capture_output=True, text=True).stdout.strip()
    # the dependencies (torch, captum, ...) of this environment, after the new venv's own
    deps = sorted({sysconfig.get_paths()["purelib"], *site.getsitepackages()})
    Path(purelib, "zz_dependencies.pth").write_text("\n".join(deps) + "\n")
    wheel = next(wheels.glob("captum_genomics-*.whl"))
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", str(wheel)],
                   check=True)
    work = root / "work"
    work.mkdir()
    (work / "usermodels.py").write_text(TRANSFORMER)
    return python, venv / "bin" / "captum-genomics", work


def _run(args, cwd, env_extra=None):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
    env.update(env_extra or {})
    return subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True,
                          env=env, timeout=900)


def test_the_package_comes_from_the_wheel(installed):
    python, _, work = installed
    out = _run([python, "-c", "import captum_genomics, sys; print(captum_genomics.__file__)"],
               work)
    assert out.returncode == 0, out.stderr
    assert str(REPO) not in out.stdout and "site-packages" in out.stdout


def test_validate_passes_on_a_transformer_style_model(installed):
    _, cli, work = installed
    out = _run([cli, "validate", "--model", "usermodels.py:build", "--input-length", "32",
                "--json", "gate.json", "--junit-xml", "gate.xml"], work)
    assert out.returncode == 0, out.stdout + out.stderr
    report = json.loads((work / "gate.json").read_text())
    assert all(c["verdict"] in ("pass", "skip") for c in report["checks"])
    assert (work / "gate.xml").read_text().startswith("<?xml")


def test_validate_fails_and_names_the_op_without_a_rule(installed):
    _, cli, work = installed
    out = _run([cli, "validate", "--model", "usermodels.py:build_unsupported",
                "--input-length", "32", "--json", "bad.json"], work)
    assert out.returncode == 1, out.stdout + out.stderr
    report = json.loads((work / "bad.json").read_text())
    additivity = next(c for c in report["checks"] if c["name"] == "additivity")
    assert additivity["verdict"] == "FAIL"
    assert additivity["details"]["culprits"][0]["op"] == "normalize"
    assert "normalize" in out.stdout


def test_validate_reports_captums_deepliftshap_failing_on_gelu(installed):
    _, cli, work = installed
    out = _run([cli, "validate", "--model", "usermodels.py:build", "--input-length", "32",
                "--method", "captum:DeepLiftShap"], work)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "completeness" in out.stdout


def test_usage_errors_exit_2_with_one_line(installed):
    _, cli, work = installed
    out = _run([cli, "validate", "--model", "nowhere.py:build", "--input-length", "32"], work)
    assert out.returncode == 2
    errors = [line for line in out.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and "no such Python file" in errors[0]
    assert "Traceback" not in out.stderr


def test_pytest_pyargs_runs_the_suite_on_the_user_model(installed):
    python, _, work = installed
    out = _run([python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--pyargs",
                "captum_genomics.testing", "--cg-model", "usermodels.py:build",
                "--cg-input-length", "32"], work)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert " passed" in out.stdout
