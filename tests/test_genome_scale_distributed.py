"""Genome-scale runs in other processes: torchrun W=2 (gloo, CPU) gives the W=1 bytes;
Ctrl-C (SIGINT) stops a real run cleanly, saying how to resume.

One ``torchrun --nproc-per-node 2`` launch runs two jobs: a fresh run (the
process group initialised by ``attribute_regions`` from torchrun's
environment) and the resumption of a run that one process left unfinished
(reusing the group the first call initialised). Both must give the files of an
uninterrupted single-process run, byte for byte.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

pytest.importorskip("h5py")
pytest.importorskip("pyfaidx")
dist = pytest.importorskip("torch.distributed")
if not (dist.is_available() and dist.is_gloo_available()):  # pragma: no cover
    pytest.skip("torch.distributed with gloo is not available", allow_module_level=True)

from captum_genomics.genome_scale import OUTPUT_NAMES, attribute_regions  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
KWARGS = dict(width=100, n_references=6, chunk_size=3, batch_size=12)

JOB = textwrap.dedent("""
    import json
    import sys

    import torch
    import torch.distributed as dist
    from torch import nn

    from captum_genomics.genome_scale import attribute_regions

    genome, bed, fresh, partial = sys.argv[1:5]
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv1d(4, 8, 9, padding=4), nn.ReLU(), nn.AvgPool1d(4),
                          nn.Flatten(), nn.Linear(8 * 25, 2)).eval()
    kwargs = dict(width=100, n_references=6, chunk_size=3, batch_size=12)
    first = attribute_regions(model, genome, bed, fresh, **kwargs)  # initialises the group
    assert dist.is_initialized()
    second = attribute_regions(model, genome, bed, partial, **kwargs)  # reuses it
    keys = ("rank", "world_size", "merged", "chunks_computed", "chunks_reused")
    print("RESULT", json.dumps({"first": {k: first[k] for k in keys},
                                "second": {k: second[k] for k in keys}}), flush=True)
    dist.destroy_process_group()
""")


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv1d(4, 8, 9, padding=4), nn.ReLU(), nn.AvgPool1d(4),
                         nn.Flatten(), nn.Linear(8 * 25, 2)).eval()


def _write_inputs(root: Path) -> tuple[Path, Path]:
    rng = np.random.default_rng(0)
    genome = root / "genome.fa"
    with open(genome, "w") as handle:
        for chrom, size in (("chr1", 2500), ("chr2", 1200)):
            seq = "".join(rng.choice(list("ACGTacgtN"), size,
                                     p=[.22, .22, .22, .22, .025, .025, .025, .025, .02]))
            handle.write(f">{chrom}\n" + "\n".join(seq[i:i + 60]
                                                   for i in range(0, size, 60)) + "\n")
    bed = root / "peaks.bed"
    with open(bed, "w") as handle:
        for i in range(17):
            chrom, size = ("chr1", 2500) if i % 2 else ("chr2", 1200)
            start = int(rng.integers(0, size - 30))
            handle.write(f"{chrom}\t{start}\t{start + 30}\n")  # 3 columns: names generated
    return genome, bed


def _hashes(out: Path) -> dict[str, str]:
    return {name: hashlib.sha256((out / name).read_bytes()).hexdigest()
            for name in OUTPUT_NAMES}


def _manifest(out: Path) -> dict:
    data = json.loads((out / "manifest.json").read_text())
    data.pop("chunks_kept", None)
    data.pop("inputs", None)
    return data


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_torchrun_two_ranks_gloo_byte_identical_to_one_process(tmp_path):
    genome, bed = _write_inputs(tmp_path)
    single = tmp_path / "single"
    attribute_regions(_model(), genome, bed, single, keep_chunks=True, **KWARGS)
    reference = _hashes(single)

    partial = tmp_path / "partial"  # a single-process run killed with chunks 1, 2, 4 missing
    shutil.copytree(single, partial)
    manifest = json.loads((partial / "manifest.json").read_text())
    manifest["chunks"] = [c for c in manifest["chunks"] if c["index"] not in (1, 2, 4)]
    manifest.update(complete=False, outputs={})
    manifest.pop("chunks_kept")
    manifest.pop("max_abs_delta")
    (partial / "manifest.json").write_text(json.dumps(manifest))
    for name in OUTPUT_NAMES:
        (partial / name).unlink()
    for index in (1, 2):
        (partial / "chunks" / f"chunk_{index:06d}.npz").unlink()

    job = tmp_path / "job.py"
    job.write_text(JOB)
    fresh = tmp_path / "fresh"
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               MASTER_ADDR="127.0.0.1", OMP_NUM_THREADS="1")
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
               "--master-addr", "127.0.0.1", "--master-port", str(_free_port()),
               str(job), str(genome), str(bed), str(fresh), str(partial)]
    try:
        result = subprocess.run(command, capture_output=True, text=True, env=env,
                                timeout=240)
    except subprocess.TimeoutExpired:  # pragma: no cover - a hung rendezvous
        pytest.skip("torchrun with gloo did not finish in 240 s (rendezvous hung?)")
    output = result.stdout + result.stderr
    if result.returncode != 0:
        if any(s in output for s in ("Gloo", "gloo", "rendezvous", "EADDRINUSE",
                                     "Connection refused", "DistNetworkError")) \
                and "captum_genomics" not in output:  # pragma: no cover
            pytest.skip(f"gloo could not start: {output[-500:]}")
        ranks = "\n".join(line for line in output.splitlines() if line.startswith("[rank"))
        pytest.fail(f"torchrun failed ({result.returncode}):\n{ranks[-6000:] or output[-4000:]}")
    results = [json.loads(line.split("RESULT ", 1)[1]) for line in result.stdout.splitlines()
               if line.startswith("RESULT ")]
    assert len(results) == 2
    by_rank = {r["first"]["rank"]: r for r in results}
    assert by_rank[0]["first"]["merged"] and not by_rank[1]["first"]["merged"]
    assert all(r["first"]["world_size"] == 2 for r in results)
    # 6 chunks: rank 0 takes 0, 2, 4 and rank 1 takes 1, 3, 5
    assert [by_rank[r]["first"]["chunks_computed"] for r in (0, 1)] == [3, 3]
    # resumed: rank 0 recomputes 2 and 4 (chunk 2's file is gone), rank 1 recomputes 1
    assert [by_rank[r]["second"]["chunks_computed"] for r in (0, 1)] == [2, 1]
    assert [by_rank[r]["second"]["chunks_reused"] for r in (0, 1)] == [1, 2]
    assert _hashes(fresh) == reference
    assert _hashes(partial) == reference
    assert _manifest(fresh) == _manifest(single)
    assert not list(fresh.glob("chunks/manifest_rank_*")) and not (fresh / "chunks").exists()


SIGINT_JOB = textwrap.dedent("""
    import sys
    import torch
    from torch import nn
    import captum_genomics.references.per_example  # noqa: F401  (numba, before "ready")
    from captum_genomics.workflows.genome_scale import run_genome_job

    out, genome, bed = sys.argv[1:4]
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv1d(4, 8, 9, padding=4), nn.ReLU(), nn.AvgPool1d(4),
                          nn.Flatten(), nn.Linear(8 * 25, 2)).eval()
    print("ready", flush=True)
    run_genome_job(out, model, bed, genome, 100, n_references=6, chunk_size=1, batch_size=12)
""")


def test_sigint_stops_cleanly_and_says_how_to_resume(tmp_path):
    genome, bed = _write_inputs(tmp_path)
    job = tmp_path / "sigint_job.py"
    job.write_text(SIGINT_JOB)
    out = tmp_path / "run"
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen([sys.executable, str(job), str(out), str(genome), str(bed)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    assert proc.stdout.readline().strip() == "ready"
    deadline = time.time() + 30
    while time.time() < deadline:  # wait until a chunk is recorded
        try:
            if json.loads((out / "manifest.json").read_text())["chunks"]:
                break
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode != 0
    assert "Run the same command again" in stderr and "resume" in stderr
    assert "Traceback" not in stderr or "RunInterrupted" in stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert 1 <= len(manifest["chunks"]) < 17 and not manifest["complete"]
    from captum_genomics.workflows.genome_scale import run_genome_job

    summary = run_genome_job(out, _model(), bed, genome, 100,
                             n_references=6, chunk_size=1, batch_size=12)
    assert "resuming the run" in summary["report"]
    assert summary["chunks_reused"] == len(manifest["chunks"]) and summary["merged"]
