"""Start-up cost: what the entry points import, and numba's cache of the kernels.

Each check runs in a fresh Python process (``sys.modules`` of this one is
full). No timing is asserted; ``benchmarks/startup_latency.py`` measures it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "numba", "scipy", "pandas", "matplotlib", "captum", "sklearn")
KERNELS = ("encode", "example_keys", "build_graphs", "shuffle_pairs", "write_one_hot")


def _python(code: str, tmp_path: Path, **env) -> str:
    """Run ``code`` in a fresh interpreter with this repository first on the path."""
    full_env = dict(os.environ)
    full_env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    full_env.update(env)
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=tmp_path,
                          env=full_env, capture_output=True, text=True, timeout=600,
                          check=False)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc.stdout


def _loaded(tmp_path: Path, code: str) -> set[str]:
    probe = f"\nimport sys, json\nprint(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    out = _python(textwrap.dedent(code) + probe, tmp_path)
    return set(json.loads(out.strip().splitlines()[-1]))


def test_import_package_is_light(tmp_path):
    assert _loaded(tmp_path, "import captum_genomics") == set()


def test_cli_help_imports_nothing_heavy(tmp_path):
    code = """
    import contextlib, io
    from captum_genomics.cli import main
    for argv in (["--help"], ["deeplift", "--help"], ["--version"]):
        with contextlib.redirect_stdout(io.StringIO()):
            try:
                main(argv)
            except SystemExit as exc:
                assert exc.code in (0, None), (argv, exc.code)
    """
    assert _loaded(tmp_path, code) == set()


def test_reference_tensors_do_not_load_numba(tmp_path):
    # a method given its references (or zero/uniform ones) never draws
    code = """
    import torch
    from captum_genomics.references import PerExampleReferences, resolve_reference_generator
    resolve_reference_generator("zeros")
    """
    assert "numba" not in _loaded(tmp_path, code)


_SHUFFLE_STATS = """
import json, torch
from captum_genomics.references import dinucleotide_shuffle, _kernels
x = torch.nn.functional.one_hot(torch.randint(0, 4, (8, 1000)), 4).permute(0, 2, 1).float()
dinucleotide_shuffle(x, 20, random_state=0)
stats = {name: getattr(_kernels, name).stats for name in %r}
print(json.dumps({name: [s.cache_path, sum(s.cache_hits.values()), sum(s.cache_misses.values())]
                  for name, s in stats.items()}))
""".replace("%r", repr(KERNELS))


def test_second_process_loads_compiled_kernels_from_cache(tmp_path):
    # The default cache location (the package's __pycache__, or numba's user
    # cache directory for a read-only install): the first process compiles
    # what is not cached yet, the second one must load everything.
    _python(_SHUFFLE_STATS, tmp_path)
    stats = json.loads(_python(_SHUFFLE_STATS, tmp_path).strip().splitlines()[-1])
    for name, (path, hits, misses) in stats.items():
        assert hits >= 1 and misses == 0, (name, path, hits, misses)


@pytest.mark.skipif(not hasattr(os, "getuid"), reason="POSIX ownership checks")
def test_kernels_cache_in_private_dir_without_writable_locations(tmp_path):
    # a read-only install with a read-only home: numba itself would raise at import
    code = textwrap.dedent("""
    import json
    from numba.core import caching
    for cls in (caching.InTreeCacheLocator, caching.UserWideCacheLocator):
        cls.from_function = classmethod(lambda cls, py_func, py_file: None)
    import numpy as np
    from captum_genomics.references import _kernels
    _kernels.example_keys(np.uint64(1), np.uint64(2), np.arange(3))
    s = _kernels.example_keys.stats
    print(json.dumps([s.cache_path, sum(s.cache_misses.values())]))
    """)
    env = {"TMPDIR": str(tmp_path), "NUMBA_CACHE_DIR": ""}
    path, _ = json.loads(_python(code, tmp_path, **env).strip().splitlines()[-1])
    private = tmp_path / f"captum_genomics-numba-{os.getuid()}"
    assert Path(path).is_relative_to(private)
    assert any(private.rglob("*example_keys*.nbi"))
    # ... and when even that is impossible, the kernels still import, uncached, with a warning
    (private.parent / "blocked").mkdir()
    (private.parent / "blocked" / private.name).write_text("not a directory")
    code = code.replace("import json", "import json, warnings\nwarnings.simplefilter('error')", 1)
    code = code.replace("from captum_genomics.references import _kernels", """
try:
    from captum_genomics.references import _kernels
except RuntimeWarning as w:
    assert "NUMBA_CACHE_DIR" in str(w)
    print(json.dumps(["warned", 0]))
    raise SystemExit(0)""")
    env["TMPDIR"] = str(private.parent / "blocked")
    out = json.loads(_python(code, tmp_path, **env).strip().splitlines()[-1])
    assert out[0] == "warned"
