"""The run manifest of a genome-scale attribution run (``manifest.json``).

The manifest is the record of a run in its output folder: the arguments that
decide the numbers, the versions, the model's hash, the region table's hash
and the list of **complete** chunks, each with the sha256 of its file. It is
rewritten atomically after every chunk, so after a kill it lists exactly the
chunks whose files were fully written. A resumed run compares its own
manifest with the one on disk (:func:`check_resumable`) and refuses to mix
results made with other arguments, another model or other regions.

Nothing in the manifest depends on the wall clock, the host or the number of
processes: two runs with the same arguments write the same manifest.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = ["MANIFEST_NAME", "FORMAT", "FORMAT_VERSION", "model_hash", "regions_hash",
           "chrom_sizes_hash", "file_sha256", "library_versions", "new_manifest",
           "read_manifest", "write_manifest", "check_resumable"]

MANIFEST_NAME = "manifest.json"
"""The manifest's file name in the output folder."""

FORMAT = "captum-genomics genome-scale attribution run"
FORMAT_VERSION = 1

#: Versions that must match for a run to be resumed (they can change the numbers).
CHECKED_VERSIONS = ("torch", "captum_genomics")


def model_hash(model: Any) -> str:
    """sha256 over the model's class name and its ``state_dict`` in key order.

    Each entry contributes its key, dtype, shape and the raw bytes of the
    tensor (on the CPU, contiguous), so any change of a weight, a buffer or
    the architecture changes the hash.

    Parameters
    ----------
    model : torch.nn.Module
        A module, or any object with ``state_dict()``; a plain callable
        hashes its qualified name only.

    Returns
    -------
    str
        64 hex digits.
    """
    import torch

    digest = hashlib.sha256()
    cls = type(model)
    digest.update(f"{cls.__module__}.{cls.__qualname__}\n".encode())
    state = model.state_dict() if hasattr(model, "state_dict") else {}
    for key, value in state.items():
        if not isinstance(value, torch.Tensor):
            digest.update(f"{key}\t{value!r}\n".encode())
            continue
        tensor = value.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{key}\t{tensor.dtype}\t{tuple(value.shape)}\n".encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def regions_hash(regions) -> str:
    """sha256 of the region table's ``chrom``, ``start``, ``end``, ``name`` in order."""
    digest = hashlib.sha256()
    for chrom, start, end, name in zip(regions["chrom"], regions["start"], regions["end"],
                                       regions["name"]):
        digest.update(f"{chrom}\t{int(start)}\t{int(end)}\t{name}\n".encode())
    return digest.hexdigest()


def chrom_sizes_hash(chrom_sizes: Mapping[str, int]) -> str:
    """sha256 of the genome's chromosome names and lengths (in their order)."""
    text = "".join(f"{c}\t{int(n)}\n" for c, n in chrom_sizes.items())
    return hashlib.sha256(text.encode()).hexdigest()


def file_sha256(path: str | os.PathLike, block: int = 1 << 20) -> str:
    """sha256 of a file's bytes, read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while True:
            data = handle.read(block)
            if not data:
                break
            digest.update(data)
    return digest.hexdigest()


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def library_versions() -> dict[str, str | None]:
    """Versions of the libraries that make or write the numbers."""
    import numpy
    import torch

    from captum_genomics import __version__

    return {"captum_genomics": __version__, "torch": torch.__version__,
            "captum": _version("captum"), "numpy": numpy.__version__,
            "h5py": _version("h5py")}


def new_manifest(arguments: Mapping[str, Any], *, model_sha256: str, model_class: str,
                 regions_sha256: str, n_regions: int, chrom_sizes_sha256: str,
                 n_chunks: int, inputs: Mapping[str, Any] | None = None) -> dict:
    """A manifest with no chunk done yet.

    Parameters
    ----------
    arguments : mapping
        The arguments that decide the numbers (all must match to resume).
    model_sha256, model_class : str
        From :func:`model_hash` and the model's class.
    regions_sha256 : str
        From :func:`regions_hash` of the (resized) regions.
    n_regions, n_chunks : int
    chrom_sizes_sha256 : str
        From :func:`chrom_sizes_hash` of the genome.
    inputs : mapping, optional
        Informative only (paths of the BED and genome; not checked on resume).
    """
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "arguments": dict(arguments),
        "model": {"class": model_class, "sha256": model_sha256},
        "regions": {"n_regions": int(n_regions), "sha256": regions_sha256},
        "genome": {"chrom_sizes_sha256": chrom_sizes_sha256},
        "inputs": dict(inputs or {}),
        "versions": library_versions(),
        "n_chunks": int(n_chunks),
        "chunks": [],
        "complete": False,
        "outputs": {},
    }


def read_manifest(path: str | os.PathLike) -> dict:
    """Read a manifest.

    Raises
    ------
    ValueError
        If the file is not JSON or not a manifest of this format (naming the file).
    """
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except json.JSONDecodeError as err:
        raise ValueError(f"{os.fspath(path)!r} is not a valid manifest: line {err.lineno}: "
                         f"{err.msg}. Delete it (and the chunks/ folder beside it) to start "
                         "over.") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValueError(f"{os.fspath(path)!r} is not the manifest of a captum-genomics "
                         f"genome-scale run (expected \"format\": {FORMAT!r}).")
    if data.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{os.fspath(path)!r} has format_version "
                         f"{data.get('format_version')!r}; this version of captum-genomics "
                         f"reads {FORMAT_VERSION}. Start over in another folder.")
    return data


def write_manifest(path: str | os.PathLike, manifest: Mapping[str, Any]) -> Path:
    """Write ``manifest`` atomically (sorted keys, the chunk list in index order)."""
    from captum_genomics._utils.files import write_bytes_atomic

    data = dict(manifest)
    data["chunks"] = sorted(data.get("chunks", []), key=lambda c: c["index"])
    text = json.dumps(data, indent=1, sort_keys=True) + "\n"
    return write_bytes_atomic(path, text.encode("utf-8"))


def _short(value: Any) -> str:
    text = json.dumps(value, sort_keys=True) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 40 else text[:16] + "..." + text[-8:]


def check_resumable(existing: Mapping[str, Any], new: Mapping[str, Any],
                    where: str = "out_dir") -> None:
    """Refuse to continue the run ``existing`` with settings that make other numbers.

    Compares the arguments (each by name), the model class and hash, the
    region table (count and hash), the genome's chromosome sizes and the
    versions of torch and captum-genomics.

    Parameters
    ----------
    existing : mapping
        The manifest found in the output folder.
    new : mapping
        The manifest this run would write (:func:`new_manifest`).
    where : str
        How to name the folder in the message. Default ``"out_dir"``.

    Raises
    ------
    ValueError
        Naming every difference (``name: earlier X, now Y``) and what to do.
    """
    diffs: list[str] = []
    old_args, new_args = existing.get("arguments", {}), new.get("arguments", {})
    for key in sorted(set(old_args) | set(new_args)):
        if old_args.get(key) != new_args.get(key):
            diffs.append(f"argument {key}: earlier {_short(old_args.get(key))}, "
                         f"now {_short(new_args.get(key))}")
    old_model, new_model = existing.get("model", {}), new.get("model", {})
    if old_model.get("class") != new_model.get("class"):
        diffs.append(f"model class: earlier {old_model.get('class')}, "
                     f"now {new_model.get('class')}")
    elif old_model.get("sha256") != new_model.get("sha256"):
        diffs.append(f"model weights (sha256 of the state_dict): earlier "
                     f"{str(old_model.get('sha256'))[:12]}..., now "
                     f"{str(new_model.get('sha256'))[:12]}...")
    old_reg, new_reg = existing.get("regions", {}), new.get("regions", {})
    if old_reg.get("n_regions") != new_reg.get("n_regions"):
        diffs.append(f"regions: earlier {old_reg.get('n_regions')} regions, "
                     f"now {new_reg.get('n_regions')}")
    elif old_reg.get("sha256") != new_reg.get("sha256"):
        diffs.append("regions: same count but different coordinates or names "
                     "(sha256 of the region table differs)")
    if existing.get("genome", {}) != new.get("genome", {}):
        diffs.append("genome: different chromosome names or lengths")
    old_v, new_v = existing.get("versions", {}), new.get("versions", {})
    for name in CHECKED_VERSIONS:
        if old_v.get(name) != new_v.get(name):
            diffs.append(f"{name} version: earlier {old_v.get(name)}, now {new_v.get(name)}")
    if diffs:
        raise ValueError(
            f"{where} holds a run made with other settings, and results of different runs "
            f"are never mixed: {'; '.join(diffs)}. Rerun with the earlier settings to "
            "resume it, or start over with overwrite=True (--overwrite) or another folder.")
