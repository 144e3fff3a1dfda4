"""Drift between versions: attributions of fixed inputs stored once, compared on later runs.

``--baseline DIR`` keeps two files: ``attributions.npz`` (the attributions of
the gate's fixed inputs under its fixed seeds) and ``baseline.json`` (what
produced them: package, torch and Captum versions, device, dtype, input shape
and hash, the sha256 of the model's state dict, method, target,
``random_state``, ``n_references``, and the sha256 of the ``.npz`` file).
:func:`baseline_check` writes them (``update=True``, ``--update-baseline``)
or compares a new run with them, as the gate's ``"drift"`` check.

Files are written atomically (a temporary file in ``DIR``, then
``os.replace``); the ``.json`` is written last, so a baseline whose metadata
exists is complete.
"""

from __future__ import annotations

import datetime
import hashlib
import io
import json
import math
import os
import platform
import time
import warnings
from importlib import metadata as importlib_metadata
from typing import Any

import numpy as np
import torch
from torch import Tensor

from captum_genomics import __version__
from captum_genomics._utils.files import write_bytes_atomic
from captum_genomics.testing.gate.core import CheckResult, GateContext, SkipCheck

__all__ = [
    "ATTRIBUTIONS_FILE",
    "BASELINE_FORMAT",
    "DRIFT_TOLERANCE",
    "METADATA_FILE",
    "BaselineError",
    "baseline_check",
    "read_baseline",
    "state_dict_sha256",
    "write_baseline",
]

ATTRIBUTIONS_FILE = "attributions.npz"
METADATA_FILE = "baseline.json"
BASELINE_FORMAT = "captum-genomics-baseline"
BASELINE_VERSION = 1

DRIFT_TOLERANCE = {torch.float64: 1e-10, torch.float32: 1e-5}
"""Largest change accepted, relative to the baseline's ``max |attribution|``.

float64: another library version, BLAS kernel, thread count or device may sum
in another order, which moves attributions by ~1e-16 to ~1e-13 relative (the
gate's batch-invariance measurements reach 2e-14; CPU vs CUDA is held to
1e-10); a change in the method's maths moves them by many orders more.
float32: rounding is ~1e-7 relative per operation; 1e-5 is the gate's float32
cross-device bound.
"""

_MUST_MATCH = ("method", "dtype", "input_shape", "inputs_sha256", "model_sha256", "target",
               "random_state", "n_references", "attributions_shape", "explainer_sha256")
_ENVIRONMENT = ("captum_genomics", "torch", "captum", "numpy", "python", "device")


class BaselineError(ValueError):
    """A ``--baseline`` directory that holds no usable baseline (missing, partial or foreign)."""


# ----------------------------------------------------------------------------- hashing
def _tensor_bytes(t: Tensor) -> bytes:
    t = t.detach().cpu()
    if t.is_complex():
        t = t.to(torch.complex128)
    elif t.is_floating_point():
        t = t.to(torch.float64)
    return t.contiguous().numpy().tobytes()


def state_dict_sha256(model: Any) -> str:
    """sha256 of a model's state dict, the same for any dtype cast or device.

    Parameters
    ----------
    model : nn.Module or callable
        Entries are hashed in sorted order of their names: the name, the
        shape and the values (floating tensors as float64, so a float32 model
        and its exact float64 cast hash alike). A callable without
        ``state_dict`` hashes its ``repr``.

    Returns
    -------
    str
        64 hex digits.
    """
    h = hashlib.sha256()
    state = model.state_dict() if hasattr(model, "state_dict") else {"repr": repr(model)}
    for name in sorted(state):
        value = state[name]
        h.update(name.encode())
        if isinstance(value, Tensor):
            h.update(str(tuple(value.shape)).encode())
            h.update(_tensor_bytes(value))
        else:
            h.update(repr(value).encode())
    return h.hexdigest()


def _inputs_sha256(inputs: Any) -> str:
    h = hashlib.sha256()
    for t in (inputs if isinstance(inputs, (tuple, list)) else (inputs,)):
        if isinstance(t, Tensor):
            h.update(str(tuple(t.shape)).encode())
            h.update(_tensor_bytes(t))
    return h.hexdigest()


def _jsonable(value: Any) -> Any:
    if isinstance(value, Tensor):
        return value.detach().cpu().tolist()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (tuple, list)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (int, float, str, bool)) or value is None:
        return value
    return repr(value)


def _version(dist: str) -> str | None:
    try:
        return importlib_metadata.version(dist)
    except importlib_metadata.PackageNotFoundError:
        return None


# ----------------------------------------------------------------------------- attributions
_METHODS = ("ShuffleDeepLiftShap", "FastSHAP", "HeadAblationExplainedVariance")


def _skip_reason(context: GateContext) -> str | None:
    """Why no baseline is kept for this run (checked before the directory is read), or None."""
    if context.method not in _METHODS:
        return (f"drift baselines cover the package's methods {list(_METHODS)}; "
                f"{context.method!r} is a peer, whose own versions this check does not track")
    if context.method == "FastSHAP" and (context.options or {}).get("explainer") is None:
        return ("FastSHAP's attributions come from an explainer trained on your cells: pass a "
                "fitted explainer (options['explainer'], a FastSHAP or a file written by "
                "FastSHAP.save) to keep a drift baseline")
    return None


def _attributions(context: GateContext) -> tuple[np.ndarray, str | None, dict]:
    """The method's attributions, the name of their output axis, and extra metadata.

    Raises
    ------
    SkipCheck
        For a method without a drift baseline here (peers; FastSHAP without a
        fitted explainer).
    """
    opts = dict(context.options or {})
    method = context.method
    if method == "ShuffleDeepLiftShap":
        from captum_genomics.methods.shuffle_deep_lift_shap import ShuffleDeepLiftShap

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            attr = ShuffleDeepLiftShap(context.model).attribute(
                context.inputs, n_references=context.n_references, target=context.target,
                additional_forward_args=opts.get("additional_forward_args"),
                random_state=context.random_state)
        if isinstance(attr, tuple):
            if len(attr) != 1:
                raise SkipCheck("drift baselines store one input tensor; this model takes "
                                f"{len(attr)}")
            attr = attr[0]
        return attr.detach().cpu().numpy(), None, {}
    if method == "FastSHAP":
        from captum_genomics.methods.fast_shap import FastSHAP

        explainer = opts["explainer"]
        if isinstance(explainer, (str, os.PathLike)):
            explainer = FastSHAP.load(explainer, context.model)
        attr = explainer.attribute(context.inputs, targets="all")   # (N, G, T)
        return attr.detach().cpu().numpy(), "output", {
            "explainer_sha256": state_dict_sha256(explainer.explainer)}
    if method == "HeadAblationExplainedVariance":
        from captum_genomics.methods.head_ablation import HeadAblationExplainedVariance

        args = opts.get("additional_forward_args")
        result = HeadAblationExplainedVariance(context.model, opts["attention"]).attribute(
            context.inputs, opts["groups"], opts["observed"], additional_forward_args=args,
            n_permutations=int(opts.get("n_permutations", 9)),
            random_state=context.random_state)
        return result.ev_gene.numpy(), "gene", {"heads": _jsonable(result.heads)}
    raise SkipCheck(_skip_reason(context) or f"no drift baseline for {method!r}")


def _metadata(context: GateContext, attr: np.ndarray, extra: dict) -> dict:
    inputs = context.inputs
    shapes = [list(t.shape) for t in (inputs if isinstance(inputs, (tuple, list)) else (inputs,))
              if isinstance(t, Tensor)]
    dtype = context.dtype if context.dtype is not None else getattr(inputs, "dtype", None)
    return {
        "format": BASELINE_FORMAT, "version": BASELINE_VERSION,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "captum_genomics": __version__, "torch": torch.__version__,
        "captum": _version("captum"), "numpy": np.__version__,
        "python": platform.python_version(), "device": str(context.device),
        "dtype": str(dtype).replace("torch.", ""),
        "input_shape": shapes[0] if len(shapes) == 1 else shapes,
        "inputs_sha256": _inputs_sha256(inputs),
        "model_sha256": state_dict_sha256(context.model),
        "method": context.method, "target": _jsonable(context.target),
        "random_state": int(context.random_state),
        "n_references": int(context.n_references) if context.method == "ShuffleDeepLiftShap"
        else None,
        "attributions_shape": list(attr.shape), "explainer_sha256": None, **extra,
    }


# ----------------------------------------------------------------------------- files
def write_baseline(directory: str | os.PathLike, attributions: np.ndarray, metadata: dict) -> None:
    """Write ``attributions.npz`` then ``baseline.json`` into ``directory``, atomically.

    Parameters
    ----------
    directory : str or PathLike
        Created if missing (with parents).
    attributions : ndarray
        Stored under the key ``"attributions"``.
    metadata : dict
        JSON-serializable; ``attributions_sha256`` (of the ``.npz`` bytes) is
        added.
    """
    directory = os.fspath(directory)
    os.makedirs(directory, exist_ok=True)
    buffer = io.BytesIO()
    np.savez(buffer, attributions=attributions)
    data = buffer.getvalue()
    metadata = {**metadata, "attributions_sha256": hashlib.sha256(data).hexdigest()}
    write_bytes_atomic(os.path.join(directory, ATTRIBUTIONS_FILE), data)
    text = json.dumps(metadata, indent=2, sort_keys=True, allow_nan=False) + "\n"
    write_bytes_atomic(os.path.join(directory, METADATA_FILE), text.encode())


def read_baseline(directory: str | os.PathLike) -> tuple[np.ndarray, dict]:
    """Read a baseline written by :func:`write_baseline`.

    Returns
    -------
    attributions : ndarray
    metadata : dict

    Raises
    ------
    BaselineError
        If ``directory`` holds no ``baseline.json`` (run once with
        ``--update-baseline``), or the files are not a baseline of this
        format, or the ``.npz`` is missing or does not match its recorded
        sha256.
    """
    directory = os.fspath(directory)
    meta_path = os.path.join(directory, METADATA_FILE)
    if not os.path.isfile(meta_path):
        raise BaselineError(
            f"--baseline {directory} holds no baseline; run once with --update-baseline")
    try:
        with open(meta_path, encoding="utf-8") as f:
            meta = json.load(f)
    except (OSError, ValueError) as err:
        raise BaselineError(f"--baseline {directory}: {METADATA_FILE} is not readable JSON "
                            f"({err}); rewrite it with --update-baseline") from err
    if not isinstance(meta, dict) or meta.get("format") != BASELINE_FORMAT:
        raise BaselineError(f"--baseline {directory}: {METADATA_FILE} is not a captum-genomics "
                            "baseline (no 'format': 'captum-genomics-baseline')")
    if int(meta.get("version", 0)) > BASELINE_VERSION:
        raise BaselineError(f"--baseline {directory} was written by a newer captum-genomics "
                            f"(format version {meta.get('version')} > {BASELINE_VERSION})")
    npz_path = os.path.join(directory, ATTRIBUTIONS_FILE)
    try:
        with open(npz_path, "rb") as f:
            data = f.read()
    except OSError as err:
        raise BaselineError(f"--baseline {directory}: {ATTRIBUTIONS_FILE} is missing or "
                            f"unreadable ({err}); rewrite it with --update-baseline") from err
    if hashlib.sha256(data).hexdigest() != meta.get("attributions_sha256"):
        raise BaselineError(f"--baseline {directory}: {ATTRIBUTIONS_FILE} does not match the "
                            f"sha256 recorded in {METADATA_FILE} (a partial or edited baseline); "
                            "rewrite it with --update-baseline")
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        return npz["attributions"], meta


# ----------------------------------------------------------------------------- comparison
def _changes(new: np.ndarray, old: np.ndarray) -> np.ndarray:
    """``|new - old|`` in float64, 0 where both are NaN and inf where only one is."""
    new, old = new.astype(np.float64), old.astype(np.float64)
    both = np.isnan(new) & np.isnan(old)
    diff = np.abs(new - old)
    diff[both] = 0.0
    diff[np.isnan(diff)] = math.inf
    return diff


def _compare(attr: np.ndarray, stored: np.ndarray, axis_name: str | None, target: Any) -> dict:
    diff = _changes(attr, stored)
    details: dict[str, Any] = {"largest_change": float(diff.max()) if diff.size else 0.0}
    if diff.size:
        worst = np.unravel_index(int(np.argmax(diff)), diff.shape)
        details["largest_change_at"] = [int(i) for i in worst]
        per_example = diff.reshape(diff.shape[0], -1).max(axis=1)
        details["largest_change_per_example"] = [float(v) for v in per_example[:100]]
    if axis_name is not None and diff.ndim >= 2:
        per = diff.reshape(-1, diff.shape[-1]).max(axis=0)
        details[f"largest_change_per_{axis_name}"] = {str(i): float(v) for i, v in enumerate(per)}
    else:
        details["largest_change_per_target"] = {json.dumps(_jsonable(target)):
                                                details["largest_change"]}
    return details


def _mismatches(meta: dict, stored: dict) -> list[str]:
    out = []
    for key in _MUST_MATCH:
        if meta.get(key) == stored.get(key):
            continue
        if key == "model_sha256":
            out.append(
                f"the model's weights differ from the baseline's (state-dict sha256 "
                f"{str(stored.get(key))[:12]}... -> {str(meta.get(key))[:12]}...): this is drift "
                "of your own making, not the package's; rerun with --update-baseline if the new "
                "weights are intended")
        elif key == "inputs_sha256":
            out.append("the inputs differ from the baseline's (another --inputs file or input "
                       "length): the attributions are not comparable")
        else:
            out.append(f"{key} differs: baseline {stored.get(key)!r}, this run {meta.get(key)!r}")
    return out


def baseline_check(context: GateContext, directory: str | os.PathLike,
                   update: bool) -> CheckResult:
    """The gate's ``"drift"`` check: write a baseline, or compare this run with the stored one.

    Parameters
    ----------
    context : GateContext
        The run: ``method`` picks the attributions (``ShuffleDeepLiftShap``:
        ``attribute(inputs, n_references=context.n_references, target,
        random_state=context.random_state)``; ``FastSHAP``: the fitted
        explainer in ``options["explainer"]`` (a ``FastSHAP`` or a file of
        ``FastSHAP.save``), ``targets="all"``, ``(N, G, T)``;
        ``HeadAblationExplainedVariance``: ``ev_gene`` ``(V, groups, G)``).
        Peers and FastSHAP without an explainer are skipped with the reason,
        before ``directory`` is read or written.
    directory : str or PathLike
        The ``--baseline`` directory.
    update : bool
        True (``--update-baseline``): (re)write the baseline (the directory
        is created) and pass; the replaced baseline's metadata, if any, is in
        ``details["replaced"]``. False: compare with the stored baseline.

    Returns
    -------
    CheckResult
        Named ``"drift"``. Figure: the largest absolute change of an
        attribution (NaN positions must agree; a NaN appearing or vanishing
        counts as ``inf``); bound: :data:`DRIFT_TOLERANCE` of the dtype times
        the baseline's ``max |attribution|`` (the tolerance itself when that
        is 0). ``details`` gives the largest change per example and per
        output (target, FastSHAP output or gene) and the versions that
        changed. The check fails, whatever the figure, when the metadata
        differ (model weights, inputs, method, target, seeds, dtype, shapes);
        ``details["mismatches"]`` says which.

    Raises
    ------
    BaselineError
        With ``update=False``, if ``directory`` holds no baseline (``"--baseline
        DIR holds no baseline; run once with --update-baseline"``) or a broken
        one.
    """
    start = time.perf_counter()
    dtype = context.dtype if context.dtype is not None else getattr(context.inputs, "dtype", None)
    rtol = DRIFT_TOLERANCE.get(dtype, 1e-5)
    reason = (f"a version change may round differently ({rtol:g} of max |attribution| in "
              f"{str(dtype).replace('torch.', '')}); a change of the method moves more")

    def result(figure, bound, passed, why, details):
        return CheckResult("drift", figure, bound, passed, time.perf_counter() - start, why,
                           details)

    skip = _skip_reason(context)
    if skip is not None:
        return result(math.nan, rtol, None, skip, {})
    stored = None if update else read_baseline(directory)

    try:
        attr, axis_name, extra = _attributions(context)
    except SkipCheck as skip:
        return result(math.nan, rtol, None, str(skip), {})
    except Exception as err:  # noqa: BLE001 - a failed check, never a crash of the gate
        return result(math.inf, rtol, False, reason, {"error": f"{type(err).__name__}: {err}"})
    meta = _metadata(context, attr, extra)

    if update:
        details: dict[str, Any] = {"written": os.fspath(directory)}
        previous = os.path.join(os.fspath(directory), METADATA_FILE)
        if os.path.isfile(previous):
            try:
                with open(previous, encoding="utf-8") as f:
                    old = json.load(f)
                details["replaced"] = {k: old.get(k) for k in
                                       ("created", "captum_genomics", "torch", "model_sha256")}
            except (OSError, ValueError):
                details["replaced"] = "an unreadable baseline.json"
        write_baseline(directory, attr, meta)
        return result(0.0, rtol * _scale(attr), True, "baseline written (--update-baseline); "
                      + reason, details)

    old_attr, old_meta = stored
    scale = _scale(old_attr)
    bound = rtol * scale
    mismatches = _mismatches(meta, old_meta)
    details = {"baseline": os.fspath(directory), "bound_scale": scale,
               "baseline_created": old_meta.get("created")}
    changed_env = {k: [old_meta.get(k), meta.get(k)] for k in _ENVIRONMENT
                   if old_meta.get(k) != meta.get(k)}
    if changed_env:
        details["environment_changed"] = changed_env
    if attr.shape == old_attr.shape:
        details.update(_compare(attr, old_attr, axis_name, context.target))
        figure = details["largest_change"]
    else:
        figure = math.inf
    if mismatches:
        details["mismatches"] = mismatches
        return result(figure, bound, False, "; ".join(mismatches), details)
    return result(figure, bound, bool(figure <= bound), reason, details)


def _scale(attr: np.ndarray) -> float:
    finite = np.abs(attr[np.isfinite(attr)]) if attr.size else np.zeros(0)
    scale = float(finite.max()) if finite.size else 0.0
    return scale if scale > 0 else 1.0
