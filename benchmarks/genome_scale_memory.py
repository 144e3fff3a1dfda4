"""Peak memory of a genome-scale run at 1k, 10k and 50k regions: it must stay flat.

Each size runs in its own subprocess (``resource.getrusage(RUSAGE_SELF).ru_maxrss``
is the process's peak resident set): a tiny CNN (width 200, 2 references) on
random 200 bp windows of a synthetic 12 Mb genome written to a temporary
folder, ``chunk_size=256``, ``batch_size=128``, through
:func:`captum_genomics.genome_scale.attribute_regions` (chunks, merge into
HDF5, npz, TSV and bigWig). Writes
``benchmarks/results/genome_scale_memory_cpu2.json``.

Run: ``python benchmarks/genome_scale_memory.py [--sizes 1000 10000 50000]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent

CHILD = textwrap.dedent("""
    import json, resource, sys, time
    import torch
    from torch import nn
    from captum_genomics.genome_scale import attribute_regions
    from captum_genomics.seq.genome import open_genome

    genome, bed, out, threads = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv1d(4, 16, 11, padding=5), nn.ReLU(), nn.MaxPool1d(4),
                          nn.Conv1d(16, 16, 5, padding=2), nn.ReLU(),
                          nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Linear(16, 1)).eval()
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    with open_genome(genome) as g:
        s = attribute_regions(model, g, bed, out, width=200, n_references=2,
                              chunk_size=256, batch_size=128)
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print("RESULT " + json.dumps({"peak_rss_mib": peak / 1024, "rss_before_run_mib": base / 1024,
                                  "seconds": seconds,
                                  "regions_per_second": s["regions_per_second"],
                                  "n_regions": s["n_regions"]}))
""")


def _cpu_model() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _write_inputs(root: Path, n_max: int) -> tuple[Path, dict[int, Path]]:
    import numpy as np

    rng = np.random.default_rng(0)
    sizes = {f"chr{i}": 3_000_000 for i in range(1, 5)}
    genome = root / "synthetic.fa"
    with open(genome, "w") as handle:
        for chrom, size in sizes.items():
            seq = rng.choice(np.frombuffer(b"ACGTacgt", dtype="S1"), size).tobytes().decode()
            handle.write(f">{chrom}\n")
            handle.writelines(seq[i:i + 80] + "\n" for i in range(0, size, 80))
    chroms = rng.choice(list(sizes), n_max)
    starts = rng.integers(0, 3_000_000 - 300, n_max)
    beds = {}
    for n in (1_000, 10_000, 50_000, n_max):
        bed = root / f"regions_{n}.bed"
        with open(bed, "w") as handle:
            handle.writelines(f"{c}\t{s}\t{s + 200}\tr{i}\n"
                              for i, (c, s) in enumerate(zip(chroms[:n], starts[:n])))
        beds[n] = bed
    return genome, beds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000, 50_000])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path,
                        default=HERE / "results" / "genome_scale_memory_cpu2.json")
    args = parser.parse_args()
    import torch

    results = []
    with tempfile.TemporaryDirectory(prefix="genome_scale_memory_") as tmp:
        root = Path(tmp)
        genome, beds = _write_inputs(root, max(args.sizes))
        env = dict(os.environ,
                   PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
        for n in args.sizes:
            bed = beds.get(n)
            if bed is None:
                raise SystemExit(f"--sizes: {n} is not one of 1000, 10000, 50000 or the largest")
            out = root / f"out_{n}"
            proc = subprocess.run([sys.executable, "-c", CHILD, str(genome), str(bed), str(out),
                                   str(args.threads)], capture_output=True, text=True, env=env)
            if proc.returncode != 0:
                raise SystemExit(f"run with {n} regions failed:\n{proc.stderr[-3000:]}")
            line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT "))
            row = json.loads(line[len("RESULT "):])
            row["output_mib"] = sum(p.stat().st_size for p in out.iterdir()) / 2**20
            results.append(row)
            print(f"{n:>7} regions: peak RSS {row['peak_rss_mib']:.0f} MiB (before the run "
                  f"{row['rss_before_run_mib']:.0f} MiB), {row['seconds']:.0f} s, "
                  f"{row['regions_per_second']:.0f} regions/s, outputs "
                  f"{row['output_mib']:.0f} MiB", flush=True)
    report = {
        "benchmark": "genome_scale_memory",
        "what": "peak RSS of attribute_regions (chunks + streamed merge) by number of regions",
        "cpu_model": _cpu_model(), "cpu_count": os.cpu_count(), "torch_threads": args.threads,
        "torch": torch.__version__, "python": platform.python_version(),
        "model": "Conv1d(4,16,11)-ReLU-MaxPool(4)-Conv1d(16,16,5)-ReLU-GAP-Linear(16,1)",
        "width": 200, "n_references": 2, "chunk_size": 256, "batch_size": 128,
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp_out = args.out.with_name(f".{args.out.name}.tmp")
    tmp_out.write_text(json.dumps(report, indent=1) + "\n")
    os.replace(tmp_out, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
