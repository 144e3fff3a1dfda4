"""Start-up latency: imports, ``captum-genomics --help`` and the first shuffle call.

Every figure comes from fresh Python processes (``--repeats`` of each, the
cases interleaved round by round so that a busy machine slows them alike);
the JSON holds every sample and the medians.

- ``import``: ``python -c "import captum_genomics"``, whole process.
- ``import_ShuffleDeepLiftShap``: ``from captum_genomics import ShuffleDeepLiftShap``.
- ``cli_help``: what the ``captum-genomics --help`` console script runs.
- ``shuffle_cold`` / ``shuffle_warm``: in one process, the first and the
  second ``dinucleotide_shuffle`` of ``(8, 4, 1000)`` float32 one-hot with 20
  references; cold runs with an empty numba cache, warm with the cache that a
  cold run left. The cache is a fresh ``NUMBA_CACHE_DIR`` per round, so the
  package's own ``__pycache__`` is neither used nor touched.

Usage::

    python benchmarks/startup_latency.py --label after
    python benchmarks/startup_latency.py --label before --root /old/checkout --label after --root .

Each ``--root`` is the folder holding the ``captum_genomics`` package to time
(default: this repository), one per ``--label``; several pairs are measured
round by round, interleaved. Results are merged into ``--out`` under the labels.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "benchmarks" / "results" / "startup_latency_cpu2.json"

_SHUFFLE = """
import json, time
t0 = time.perf_counter()
import torch
from captum_genomics.references import dinucleotide_shuffle
t1 = time.perf_counter()
g = torch.Generator().manual_seed(0)
x = torch.nn.functional.one_hot(torch.randint(0, 4, (8, 1000), generator=g), 4)
x = x.permute(0, 2, 1).float().contiguous()
t2 = time.perf_counter()
dinucleotide_shuffle(x, 20, random_state=0)
t3 = time.perf_counter()
dinucleotide_shuffle(x, 20, random_state=0)
t4 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "first_call_s": t3 - t2, "second_call_s": t4 - t3}))
"""

_CASES = {
    "import": "import captum_genomics",
    "import_ShuffleDeepLiftShap": "from captum_genomics import ShuffleDeepLiftShap",
    "cli_help": (
        "import sys\nfrom captum_genomics.cli import main\n"
        "sys.argv = ['captum-genomics', '--help']\nsys.exit(main())"
    ),
}


def _env(root: Path, cache_dir: str | None) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(root), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.pop("NUMBA_CACHE_DIR", None)
    if cache_dir is not None:
        env["NUMBA_CACHE_DIR"] = cache_dir
    return env


def _run(code: str, root: Path, cache_dir: str | None, cwd: str) -> tuple[float, str]:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code], env=_env(root, cache_dir), cwd=cwd,
                          capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark process failed:\n{code}\n{proc.stderr[-3000:]}")
    return wall, proc.stdout


def _machine() -> dict:
    cpu = platform.processor() or "unknown"
    fields: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key == "model name":
                cpu = value.strip()
            elif key in ("cpu family", "model", "stepping", "flags") and key not in fields:
                fields[key] = value.strip()
            elif not line.strip() and cpu != "unknown":
                break
    except OSError:
        pass
    flags = set(fields.pop("flags", "").split())
    names = {"cpu family": "cpu_family", "model": "cpu_model_number", "stepping": "cpu_stepping"}
    info = {"cpu_model": cpu, **{names[k]: v for k, v in fields.items()},
            "cpu_avx2": "avx2" in flags, "cpu_avx512f": "avx512f" in flags,
            "cpu_count": os.cpu_count(), "python": platform.python_version(),
            "platform": platform.platform()}
    probe = ("import json, torch, numba, numpy\nprint(json.dumps({'torch': torch.__version__, "
             "'torch_threads': torch.get_num_threads(), 'numba': numba.__version__, "
             "'numba_threads': numba.get_num_threads(), 'numpy': numpy.__version__}))")
    info.update(json.loads(subprocess.run([sys.executable, "-c", probe], capture_output=True,
                                          text=True, check=True).stdout))
    if hasattr(os, "getloadavg"):
        info["loadavg_at_start"] = [round(v, 2) for v in os.getloadavg()]
    return info


def measure(roots: dict[str, Path], repeats: int) -> dict:
    """Medians and samples per label, the labels' rounds interleaved."""
    states = {label: _measure_state() for label in roots}
    with tempfile.TemporaryDirectory() as cwd:
        probe = "import captum_genomics, sys; print(captum_genomics.__file__)"
        imported = {label: _run(probe, root, None, cwd)[1].strip() for label, root in roots.items()}
        for _ in range(repeats):
            for label, root in roots.items():
                _round(root, cwd, states[label])
    return {
        label: {
            "package": imported[label],
            "repeats": repeats,
            "median_s": {k: round(statistics.median(v), 4) for k, v in samples.items()},
            "samples_s": {k: [round(x, 4) for x in v] for k, v in samples.items()},
        }
        for label, samples in states.items()
    }


def _measure_state() -> dict[str, list[float]]:
    samples: dict[str, list[float]] = {name: [] for name in _CASES}
    for key in ("shuffle_cold", "shuffle_warm"):
        for field in ("process_s", "import_s", "first_call_s", "second_call_s"):
            samples[f"{key}.{field}"] = []
    return samples


def _round(root: Path, cwd: str, samples: dict[str, list[float]]) -> None:
    """One fresh process per case, appended to ``samples``."""
    for name, code in _CASES.items():
        samples[name].append(_run(code, root, None, cwd)[0])
    with tempfile.TemporaryDirectory() as cache:
        for key in ("shuffle_cold", "shuffle_warm"):  # the warm run reuses the cache
            wall, out = _run(_SHUFFLE, root, cache, cwd)
            samples[f"{key}.process_s"].append(wall)
            for field, value in json.loads(out.strip().splitlines()[-1]).items():
                samples[f"{key}.{field}"].append(value)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--label", action="append", required=True,
                        help="column of the JSON: before, after, ... (repeatable)")
    parser.add_argument("--root", type=Path, action="append",
                        help="folder holding the captum_genomics package to time, one per "
                             "--label (default: this repo)")
    parser.add_argument("--repeats", type=int, default=5, help="fresh processes per case (default 5)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON file to merge into")
    args = parser.parse_args(argv)
    roots = args.root or [REPO]
    if len(roots) != len(args.label):
        parser.error("give one --root per --label (or none, for one label and this repo)")
    machine = _machine()
    results = measure({lb: r.resolve() for lb, r in zip(args.label, roots)}, args.repeats)
    data = json.loads(args.out.read_text()) if args.out.exists() else {}
    data["description"] = __doc__.split("\n\n")[0] + " Seconds; medians of fresh processes."
    stamp = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    for label, result in results.items():
        data[label] = {"machine": machine, "recorded": stamp,
                       "interleaved_with": [lb for lb in results if lb != label], **result}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(data, indent=2) + "\n")
    print(json.dumps({label: r["median_s"] for label, r in results.items()}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
