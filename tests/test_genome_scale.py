"""Genome-scale runs (captum_genomics.genome_scale): values, chunking, manifest, resumption.

Checked against independent computations: one ShuffleDeepLiftShap call on all
regions read from the FASTA by a plain parser here; sha256 of the state dict
computed here; byte-identical outputs for every chunking, and after real runs
killed with SIGKILL at random moments.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

h5py = pytest.importorskip("h5py")
pytest.importorskip("pyfaidx")

from captum_genomics.genome_scale import OUTPUT_NAMES, RunInterrupted, attribute_regions  # noqa: E402
from captum_genomics.genome_scale import manifest as mf  # noqa: E402
from captum_genomics.methods import ShuffleDeepLiftShap  # noqa: E402
from captum_genomics.seq.genome import region_seed_index  # noqa: E402
from captum_genomics.seq.io import one_hot_encode  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
WIDTH = 100
CHROMS = {"chr1": 3000, "chr2": 1700}


def _tiny_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv1d(4, 8, 9, padding=4), nn.ReLU(), nn.AvgPool1d(4),
                         nn.Flatten(), nn.Linear(8 * WIDTH // 4, 2)).eval()


def _write_genome(path: Path, seed: int = 0) -> dict[str, str]:
    rng = np.random.default_rng(seed)
    seqs = {}
    for chrom, size in CHROMS.items():
        s = rng.choice(list("ACGTacgtN"), size,
                       p=[.22, .22, .22, .22, .025, .025, .025, .025, .02])
        seqs[chrom] = "".join(s)
    with open(path, "w") as handle:
        for chrom, s in seqs.items():
            handle.write(f">{chrom} test\n")
            handle.writelines(s[i:i + 70] + "\n" for i in range(0, len(s), 70))
    return seqs


def _write_bed(path: Path, n: int, seed: int = 1) -> None:
    rng = np.random.default_rng(seed)
    with open(path, "w") as handle:
        handle.write("# regions\n")
        for i in range(n):
            chrom = "chr1" if i % 3 else "chr2"
            start = int(rng.integers(-40, CHROMS[chrom] - 20))  # some run off either end
            start = max(start, 0)
            end = min(start + int(rng.integers(1, 60)), CHROMS[chrom])
            handle.write(f"{chrom}\t{start}\t{end}\tpeak{i}\n")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("genome_scale")
    seqs = _write_genome(root / "genome.fa")
    _write_bed(root / "peaks.bed", 23)
    return {"root": root, "genome": root / "genome.fa", "bed": root / "peaks.bed",
            "seqs": seqs}


def _hashes(out: Path) -> dict[str, str]:
    return {name: hashlib.sha256((out / name).read_bytes()).hexdigest()
            for name in OUTPUT_NAMES}


def _fetch_plain(seqs: dict[str, str], chrom: str, start: int, end: int) -> str:
    """Sequence of [start, end) with N off the chromosome ends (the independent reader)."""
    s = seqs[chrom].upper()
    left = "N" * max(0, -start)
    right = "N" * max(0, end - len(s))
    return left + s[max(start, 0):min(end, len(s))] + right


def _regions(bed: Path) -> list[tuple[str, int, int, str]]:
    rows = []
    for line in bed.read_text().splitlines():
        if line.startswith("#"):
            continue
        chrom, start, end, name = line.split("\t")
        mid = (int(start) + int(end)) // 2
        rows.append((chrom, mid - WIDTH // 2, mid - WIDTH // 2 + WIDTH, name))
    return rows


def test_chunked_run_equals_one_call_on_all_regions(data, tmp_path):
    model = _tiny_model()
    out = tmp_path / "run"
    summary = attribute_regions(model, data["genome"], data["bed"], out, width=WIDTH,
                                n_references=5, random_state=3, chunk_size=7, batch_size=16)
    assert summary["merged"] and summary["n_regions"] == 23 and summary["n_chunks"] == 4
    rows = _regions(data["bed"])
    x = one_hot_encode([_fetch_plain(data["seqs"], c, s, e) for c, s, e, _ in rows])
    seeds = torch.tensor([region_seed_index(3, c, s, e, n) for c, s, e, n in rows])
    explainer = ShuffleDeepLiftShap(model)
    kwargs = dict(n_references=5, target=0, random_state=3, example_indices=seeds)
    hyp, delta = explainer.attribute(x, hypothetical=True, return_convergence_delta=True,
                                     **kwargs)
    contrib = explainer.attribute(x, **kwargs)
    with h5py.File(out / "attributions.h5", "r") as h5:
        np.testing.assert_array_equal(h5["one_hot"][()], x.numpy())
        np.testing.assert_allclose(h5["hypothetical"][()], hyp.numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(h5["contributions"][()], contrib.numpy(), rtol=1e-5,
                                   atol=1e-6)
        np.testing.assert_allclose(h5["delta"][()], delta.numpy(), atol=1e-5)
        assert [c.decode() for c in h5["regions/chrom"][()]] == [r[0] for r in rows]
        np.testing.assert_array_equal(h5["regions/start"][()], [r[1] for r in rows])
        np.testing.assert_allclose(h5["regions/delta_max_abs"][()],
                                   delta.abs().max(1).values.numpy(), atol=1e-6)
    with np.load(out / "ohe.npz") as ohe, np.load(out / "shap.npz") as shap:
        np.testing.assert_array_equal(ohe["arr_0"], x.numpy())
        np.testing.assert_allclose(shap["arr_0"], hyp.numpy(), rtol=1e-5, atol=1e-6)
    table = pd.read_csv(out / "regions.tsv", sep="\t")
    assert table["name"].tolist() == [r[3] for r in rows]
    expected_pad = [max(0, -s) + max(0, e - CHROMS[c]) for c, s, e, _ in rows]
    assert table["padded_bases"].tolist() == expected_pad and sum(expected_pad) > 0
    assert summary["n_padded"] == sum(p > 0 for p in expected_pad)
    # the bigWig holds the observed-base contributions of a region that overlaps no other
    from captum_genomics.seq.bigwig import read_bigwig_intervals

    starts = np.array([r[1] for r in rows])
    for i, (c, s, e, _) in enumerate(rows):
        others = [j for j, r in enumerate(rows) if j != i and r[0] == c
                  and abs(starts[j] - s) < WIDTH]
        if not others and s >= 0 and e <= CHROMS[c]:
            track = read_bigwig_intervals(out / "contributions.bw", c, s, e)
            np.testing.assert_allclose(track, contrib[i].sum(0).numpy(), rtol=1e-5, atol=1e-6)
            break
    else:  # pragma: no cover - the fixture always has one
        pytest.fail("no isolated region to check the bigWig against")


def test_outputs_byte_identical_for_any_chunk_size(data, tmp_path):
    model = _tiny_model()
    hashes = []
    for chunk_size in (3, 7, 1000):
        out = tmp_path / f"c{chunk_size}"
        attribute_regions(model, data["genome"], data["bed"], out, width=WIDTH,
                          n_references=4, chunk_size=chunk_size, batch_size=16)
        hashes.append(_hashes(out))
        assert not (out / "chunks").exists()  # removed after the merge by default
    assert hashes[0] == hashes[1] == hashes[2]


def test_manifest_records_arguments_versions_model_and_complete_chunks(data, tmp_path):
    model = _tiny_model()
    out = tmp_path / "run"
    attribute_regions(model, data["genome"], data["bed"], out, width=WIDTH, n_references=3,
                      chunk_size=10, random_state=5, keep_chunks=True)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["complete"] is True
    assert manifest["arguments"] == {
        "method": "ShuffleDeepLiftShap", "references": "dinucleotide shuffles",
        "width": WIDTH, "target": 0, "n_references": 3, "random_state": 5,
        "batch_size": 64, "chunk_size": 10}
    assert manifest["versions"]["torch"] == torch.__version__
    assert set(manifest["versions"]) >= {"torch", "captum", "captum_genomics"}
    digest = hashlib.sha256(b"torch.nn.modules.container.Sequential\n")
    for key, value in model.state_dict().items():
        digest.update(f"{key}\t{value.dtype}\t{tuple(value.shape)}\n".encode())
        digest.update(value.numpy().tobytes())
    assert manifest["model"]["sha256"] == digest.hexdigest()
    assert [(c["index"], c["first"], c["last"]) for c in manifest["chunks"]] == [
        (0, 0, 9), (1, 10, 19), (2, 20, 22)]
    for chunk in manifest["chunks"]:
        body = (out / chunk["file"]).read_bytes()
        assert hashlib.sha256(body).hexdigest() == chunk["sha256"]
    for name, sha in manifest["outputs"].items():
        assert hashlib.sha256((out / name).read_bytes()).hexdigest() == sha


def _drop_chunks(out: Path, drop: set[int]) -> None:
    """Make ``out`` look like a run killed with only some chunks recorded."""
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["chunks"] = [c for c in manifest["chunks"] if c["index"] not in drop]
    manifest.update(complete=False, outputs={})
    (out / "manifest.json").write_text(json.dumps(manifest))
    for name in OUTPUT_NAMES:
        (out / name).unlink()


def test_resume_computes_only_missing_or_damaged_chunks(data, tmp_path):
    model = _tiny_model()
    out = tmp_path / "run"
    kwargs = dict(width=WIDTH, n_references=3, chunk_size=5, keep_chunks=True)
    attribute_regions(model, data["genome"], data["bed"], out, **kwargs)
    reference = _hashes(out)
    _drop_chunks(out, {1, 3})
    (out / "chunks" / "chunk_000000.npz").write_bytes(b"damaged")  # sha256 no longer matches
    summary = attribute_regions(model, data["genome"], data["bed"], out, **kwargs)
    assert summary["chunks_computed"] == 3 and summary["chunks_reused"] == 2
    assert _hashes(out) == reference
    again = attribute_regions(model, data["genome"], data["bed"], out, **kwargs)
    assert again["already_complete"] and again["chunks_computed"] == 0


def test_resume_with_other_settings_refuses(data, tmp_path):
    out = tmp_path / "run"
    base = dict(width=WIDTH, n_references=3, random_state=0, chunk_size=5)
    attribute_regions(_tiny_model(), data["genome"], data["bed"], out, **base)
    _drop_chunks(out, {2})
    other_bed = tmp_path / "other.bed"
    _write_bed(other_bed, 12, seed=7)
    cases = [
        ({"n_references": 4}, "argument n_references: earlier 3, now 4"),
        ({"random_state": 1}, "argument random_state: earlier 0, now 1"),
        ({"width": 80}, "argument width: earlier 100, now 80"),
        ({"chunk_size": 6}, "argument chunk_size: earlier 5, now 6"),
        ({"model": _tiny_model(seed=1)}, "model weights"),
        ({"bed": other_bed}, "regions: earlier 23 regions, now 12"),
    ]
    for change, expected in cases:
        kwargs = dict(base, **{k: v for k, v in change.items() if k not in ("model", "bed")})
        with pytest.raises(ValueError, match="never mixed") as err:
            attribute_regions(change.get("model", _tiny_model()), data["genome"],
                              change.get("bed", data["bed"]), out, **kwargs)
        assert expected in str(err.value) and "overwrite=True" in str(err.value), change
    # the refused calls changed nothing; overwrite=True starts over with the new settings
    assert json.loads((out / "manifest.json").read_text())["arguments"]["n_references"] == 3
    summary = attribute_regions(_tiny_model(seed=1), data["genome"], data["bed"], out,
                                **dict(base, overwrite=True))
    assert summary["chunks_reused"] == 0 and summary["merged"]


def test_bad_inputs(data, tmp_path):
    model = _tiny_model()
    bed = tmp_path / "missing.bed"
    bed.write_text("chr1\t10\t20\nchrX\t5\t30\n")
    with pytest.raises(ValueError, match=r"line 2.*'chrX' is not in the genome"):
        attribute_regions(model, data["genome"], bed, tmp_path / "a", width=WIDTH)
    assert not (tmp_path / "a").exists()
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "ohe.npz").write_bytes(b"x")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        attribute_regions(model, data["genome"], data["bed"], foreign, width=WIDTH)
    out = tmp_path / "done"
    attribute_regions(model, data["genome"], data["bed"], out, width=WIDTH, n_references=2)
    with pytest.raises(FileExistsError, match="resume=True"):
        attribute_regions(model, data["genome"], data["bed"], out, width=WIDTH,
                          n_references=2, resume=False)
    for name, value, error in (("chunk_size", 0, ValueError), ("n_references", 1.5, TypeError),
                               ("batch_size", -1, ValueError), ("width", True, TypeError)):
        with pytest.raises(error, match=f"`{name}`"):
            attribute_regions(model, data["genome"], data["bed"], tmp_path / "b",
                              **{"width": WIDTH, name: value})
    with pytest.raises(ValueError, match="not the manifest"):
        bad = tmp_path / "bad"
        bad.mkdir()
        (bad / "manifest.json").write_text("{}")
        attribute_regions(model, data["genome"], data["bed"], bad, width=WIDTH)


def test_check_resumable_names_every_difference():
    old = mf.new_manifest({"n_references": 20, "width": 1000}, model_sha256="a" * 64,
                          model_class="M", regions_sha256="r", n_regions=5,
                          chrom_sizes_sha256="g", n_chunks=1)
    new = mf.new_manifest({"n_references": 10, "width": 1000}, model_sha256="b" * 64,
                          model_class="M", regions_sha256="r", n_regions=5,
                          chrom_sizes_sha256="h", n_chunks=1)
    mf.check_resumable(old, old)
    with pytest.raises(ValueError) as err:
        mf.check_resumable(old, new, where="out_dir 'x'")
    text = str(err.value)
    assert "out_dir 'x'" in text and "n_references: earlier 20, now 10" in text
    assert "model weights" in text and "genome" in text and "width" not in text


def test_model_hash_depends_on_weights_not_on_identity():
    a, b, c = _tiny_model(0), _tiny_model(0), _tiny_model(1)
    assert mf.model_hash(a) == mf.model_hash(b) != mf.model_hash(c)


# --------------------------------------------------------------- real runs in subprocesses

JOB = textwrap.dedent("""
    import sys
    import torch
    from torch import nn
    from captum_genomics.workflows.genome_scale import run_genome_job

    out, genome, bed, chunk_size = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv1d(4, 8, 9, padding=4), nn.ReLU(), nn.AvgPool1d(4),
                          nn.Flatten(), nn.Linear(8 * 25, 2)).eval()
    import captum_genomics.references.per_example  # noqa: F401  (numba: imported before "ready")
    print("ready", flush=True)
    run_genome_job(out, model, bed, genome, 100, n_references=6, chunk_size=chunk_size,
                   batch_size=12)
""")


def _job(tmp_path: Path) -> Path:
    path = tmp_path / "job.py"
    path.write_text(JOB)
    return path


def _start(job: Path, out: Path, data, chunk_size: int) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.Popen(
        [sys.executable, str(job), str(out), str(data["genome"]), str(data["bed"]),
         str(chunk_size)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _job_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv1d(4, 8, 9, padding=4), nn.ReLU(), nn.AvgPool1d(4),
                         nn.Flatten(), nn.Linear(8 * 25, 2)).eval()


def test_sigkill_at_random_moments_then_resume_is_byte_identical(data, tmp_path):
    job = _job(tmp_path)
    clean = tmp_path / "clean"  # uninterrupted, in this process (other thread count)
    t0 = time.perf_counter()
    attribute_regions(_job_model(), data["genome"], data["bed"], clean, width=100,
                      n_references=6, chunk_size=2, batch_size=12)
    run_seconds = time.perf_counter() - t0
    reference = _hashes(clean)

    out = tmp_path / "killed"
    rng = random.Random(15)
    kills = 0
    for attempt in range(10):
        proc = _start(job, out, data, 2)
        assert proc.stdout.readline().strip() == "ready"
        if kills < 3:
            time.sleep(rng.uniform(0.0, run_seconds))
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
                proc.communicate()
                kills += 1
                continue
        stdout, stderr = proc.communicate(timeout=60)
        if proc.returncode == 0:
            break
        pytest.fail(f"run {attempt} failed: {stderr}")
    assert kills >= 2 and "wrote attributions.h5" in stdout
    assert _hashes(out) == reference
    left = [p.name for p in out.rglob("*") if p.name.startswith(".")]
    assert not left, f"temporary files left behind: {left}"


def test_run_interrupted_is_a_keyboard_interrupt():
    assert issubclass(RunInterrupted, KeyboardInterrupt)


def test_module_entry_point_runs_the_cli():
    result = subprocess.run([sys.executable, "-m", "captum_genomics", "--version"],
                            capture_output=True, text=True, cwd=REPO, timeout=60)
    assert result.returncode == 0 and "captum-genomics" in result.stdout
