"""The validation job: run the correctness gate of one attribution method on a user's model.

What :func:`run_validate` does, in order:

1. loads the model (``MODULE_OR_FILE:NAME`` and a weights file, with
   :func:`captum_genomics._utils.models.load_user_model`) and hashes its
   state dict;
2. builds the inputs: the first ``n_examples`` records of a FASTA file
   (one-hot), a ``.npy`` array (one-hot ``(N, 4, L)`` or tabular ``(N, G)``),
   or random one-hot sequences of ``input_length`` drawn from ``random_state``;
3. moves the model and inputs to ``device`` and ``dtype`` and checks that the
   model maps ``(1, 4, L)`` to ``(1,)`` or ``(1, T)`` (``(1, G)`` for tabular
   inputs) and that ``target`` exists;
4. runs the method's suite (:func:`captum_genomics.testing.gate.run_gate`)
   and, with ``baseline``, the drift check against a stored baseline;
5. prints the table and writes the JSON and JUnit XML reports.

``captum-genomics validate`` calls it; every problem with the user's
arguments raises :class:`ValidationUsageError` (exit status 2 there), a
failing check only makes ``report.passed`` False (exit status 1).
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from captum_genomics import __version__
from captum_genomics._utils.models import ModelSpecError, load_user_model
from captum_genomics._utils.outputs import check_output_folder
from captum_genomics.testing.gate import GateContext, GateReport, run_gate
from captum_genomics.testing.gate.baseline import (
    ATTRIBUTIONS_FILE,
    METADATA_FILE,
    BaselineError,
    baseline_check,
    read_baseline,
    state_dict_sha256,
)
from captum_genomics.testing.gate.core import SUITES
from captum_genomics.testing.gate.reports import (
    format_table,
    write_json,
    write_junit_xml,
)

__all__ = ["DEFAULT_METHOD", "ValidationUsageError", "is_validate_report", "known_methods",
           "parse_target", "run_validate"]

#: The method checked when ``method`` is None: the package's method for one-hot sequences.
DEFAULT_METHOD = "ShuffleDeepLiftShap"

_DTYPES = {"float64": torch.float64, "float32": torch.float32}
_TABULAR_SUFFIXES = (".npy", ".h5ad")


class ValidationUsageError(ValueError):
    """A problem with the arguments of :func:`run_validate`; the message says what to fix.

    Bad model specs, missing files, models of the wrong shape, unknown
    methods, an unavailable device and a missing drift baseline all raise it
    (the original error is its ``__cause__``).
    """


def known_methods() -> list[str]:
    """The methods with a registered suite, sorted."""
    from captum_genomics.testing.gate import suites  # noqa: F401 - registers the suites

    return sorted(SUITES)


def _positive(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValidationUsageError(f"{name} must be a positive integer, got {value!r}.")
    return int(value)


def _dtype(dtype: str | torch.dtype) -> torch.dtype:
    if isinstance(dtype, torch.dtype) and dtype in _DTYPES.values():
        return dtype
    if dtype in _DTYPES:
        return _DTYPES[dtype]
    raise ValidationUsageError(f"--dtype must be one of {list(_DTYPES)}, got {dtype!r}.")


def _device(device: str | torch.device) -> torch.device:
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValidationUsageError(f"--device must be 'cpu' or 'cuda', got {device!r}.") from err
    if dev.type not in ("cpu", "cuda"):
        raise ValidationUsageError(f"--device must be 'cpu' or 'cuda', got {device!r}.")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValidationUsageError("--device cuda: CUDA is not available here "
                                       "(torch.cuda.is_available() is False); use --device cpu.")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValidationUsageError(f"--device {device}: this machine has "
                                       f"{torch.cuda.device_count()} CUDA device(s).")
    return dev


_REPORT_KEYS = {"method", "model", "passed", "metadata", "checks"}
_JUNIT_MARK = '<testsuites name="captum-genomics validate"'


def is_validate_report(path: str | os.PathLike) -> bool:
    """Whether ``path`` holds a report written by ``captum-genomics validate``.

    Parameters
    ----------
    path : str or PathLike

    Returns
    -------
    bool
        True for a JSON report (an object with the keys ``method``, ``model``,
        ``passed``, ``metadata`` and ``checks``) or a JUnit XML report (root
        ``<testsuites name="captum-genomics validate">``) of at most 64 MiB;
        False for anything else, a missing or unreadable file included.
    """
    try:
        with open(path, "rb") as handle:
            data = handle.read(64 << 20)
            if handle.read(1):
                return False
    except OSError:
        return False
    text = data.decode("utf-8", errors="replace")
    if text.lstrip().startswith("<"):
        return _JUNIT_MARK in text[:1000]
    try:
        parsed = json.loads(text)
    except ValueError:
        return False
    return isinstance(parsed, dict) and _REPORT_KEYS <= set(parsed)


def _report_folder(path, option: str, overwrite: bool = False) -> None:
    """Check a report path before the suite runs (see :func:`run_validate`)."""
    if path is None:
        return
    path = Path(path)
    if path.is_dir():
        raise ValidationUsageError(f"{option}: {os.fspath(path)!r} is a folder; give a file.")
    if not path.parent.is_dir():
        raise ValidationUsageError(f"{option}: the folder of {os.fspath(path)!r} does not exist.")
    try:
        fd, probe = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".probe", dir=path.parent)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise ValidationUsageError(f"{option}: cannot write in the folder of "
                                   f"{os.fspath(path)!r}: {err.strerror or err}.") from None
    if os.path.lexists(path) and not overwrite and not is_validate_report(path):
        raise ValidationUsageError(
            f"{option}: {os.fspath(path)!r} exists and is not a report of captum-genomics "
            "validate; give --overwrite to replace it, or choose another file.")


def _random_one_hot(n: int, length: int, random_state: int) -> Tensor:
    from captum_genomics.seq.io import random_one_hot

    return random_one_hot(n, length, torch.Generator().manual_seed(int(random_state)))


def _read_fasta_inputs(path: Path, n_examples: int) -> Tensor:
    from captum_genomics.seq.io import one_hot_encode, read_fasta

    try:
        names, seqs = read_fasta(path)
        names, seqs = names[:n_examples], seqs[:n_examples]
        return one_hot_encode(seqs, dtype=torch.float64)
    except (ValueError, OSError, UnicodeDecodeError) as err:
        raise ValidationUsageError(f"--inputs: {err}") from err


def _read_array_inputs(path: Path, n_examples: int) -> Tensor:
    try:
        if path.suffix == ".h5ad":
            import anndata

            matrix = anndata.read_h5ad(path).X[:n_examples]
            array = matrix.toarray() if hasattr(matrix, "toarray") else np.asarray(matrix)
        else:
            array = np.load(path, allow_pickle=False)[:n_examples]
    except ImportError as err:
        raise ValidationUsageError('--inputs .h5ad needs anndata: pip install '
                                   '"captum-genomics[sc]".') from err
    except (ValueError, OSError) as err:
        raise ValidationUsageError(f"--inputs: cannot read {os.fspath(path)!r}: {err}") from err
    if array.dtype.kind not in "biuf" or array.ndim not in (2, 3):
        raise ValidationUsageError(f"--inputs: expected a numeric array (N, G) or one-hot "
                                   f"(N, 4, L), got dtype {array.dtype} shape {array.shape}.")
    return torch.from_numpy(np.ascontiguousarray(array)).to(torch.float64)


def _load_inputs(inputs, input_length, n_examples: int, random_state: int,
                 method: str) -> tuple[Tensor, str]:
    """The inputs in float64 on the CPU, and where they came from."""
    from captum_genomics.testing.gate.peers import PEERS

    if inputs is None and method not in (DEFAULT_METHOD, *PEERS):
        raise ValidationUsageError(f"--method {method} takes tabular inputs: give --inputs "
                                   "FILE (.npy (N, G) or .h5ad).")
    if inputs is None:
        if input_length is None:
            raise ValidationUsageError("give --input-length L (random one-hot sequences) or "
                                       "--inputs FILE (FASTA, .npy or .h5ad).")
        length = _positive(input_length, "--input-length")
        return (_random_one_hot(n_examples, length, random_state),
                f"{n_examples} random one-hot sequences (random_state={random_state})")
    if isinstance(inputs, (Tensor, np.ndarray)):
        x = torch.as_tensor(inputs)[:n_examples].detach().to("cpu", torch.float64)
        source = "tensor"
    else:
        path = Path(inputs)
        if not path.is_file():
            raise ValidationUsageError(f"--inputs: no such file {os.fspath(path)!r}.")
        if path.suffix.lower() in _TABULAR_SUFFIXES:
            x = _read_array_inputs(path, n_examples)
        else:
            x = _read_fasta_inputs(path, n_examples)
        source = os.fspath(path)
    if x.ndim == 3 and x.shape[1] != 4 and method != "HeadAblationExplainedVariance":
        raise ValidationUsageError(f"--inputs: one-hot sequences must be (N, 4, L), got "
                                   f"{tuple(x.shape)}.")
    if x.ndim == 3 and input_length is not None and x.shape[2] != input_length:
        raise ValidationUsageError(f"--inputs holds sequences of length {x.shape[2]} but "
                                   f"--input-length is {input_length}.")
    if x.shape[0] == 0:
        raise ValidationUsageError("--inputs holds no examples.")
    bad = ~torch.isfinite(x)
    if bool(bad.any()):
        first = tuple(int(i) for i in bad.nonzero()[0].tolist())
        raise ValidationUsageError(f"--inputs: {source!r} holds {int(bad.sum())} NaN or "
                                   f"infinite value(s) (first at index {first}); remove or "
                                   "impute them first.")
    return x, source


def parse_target(target: Any) -> int | tuple[int, ...] | None:
    """A ``--target`` as given: None, an int, a tuple of ints, or their text.

    ``"none"`` -> None, ``"3"`` -> 3, ``"0,500"`` -> ``(0, 500)`` (for outputs
    ``(B, T, P)``).

    Raises
    ------
    ValidationUsageError
        For anything else.
    """
    if target is None or (isinstance(target, int) and not isinstance(target, bool)):
        return target
    if isinstance(target, tuple) and target and all(
            isinstance(t, int) and not isinstance(t, bool) for t in target):
        return target
    if isinstance(target, str):
        text = target.strip().lower()
        if text == "none":
            return None
        try:
            parts = tuple(int(p) for p in text.split(","))
        except ValueError:
            parts = ()
        if parts:
            return parts[0] if len(parts) == 1 else parts
    raise ValidationUsageError(f"--target must be an output index, 'T,P' for outputs "
                               f"(B, T, P), or 'none'; got {target!r}.")


def _check_model(model, x: Tensor, target) -> Any:
    """Check one forward on ``x[:1]``; return the resolved target (0 for ``(B, T)``)."""
    expected = "(B, 4, L) one-hot DNA" if x.ndim == 3 else f"(B, {x.shape[1]}) features"
    try:
        with torch.no_grad():
            out = model(x[:1])
    except Exception as err:
        first = str(err).splitlines()[0] if str(err) else ""
        raise ValidationUsageError(
            f"--model: calling it on inputs of shape {tuple(x[:1].shape)} failed "
            f"({type(err).__name__}: {first}); it must take {expected}.") from err
    indexed = len(target) if isinstance(target, tuple) else 1
    if (not isinstance(out, Tensor) or out.ndim < 1 or out.shape[0] != 1
            or out.ndim > 2 and out.ndim != 1 + indexed):
        shape = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
        raise ValidationUsageError(
            f"--model returns {shape} for inputs of shape {tuple(x[:1].shape)}; expected "
            "(1,) or (1, T): one value per example, or one per output (for (1, T, P), give "
            "--target T,P).")
    if out.ndim == 1:
        if target is not None:
            raise ValidationUsageError(f"--target {target!r}: the model returns (B,), which has "
                                       "no output axis; leave --target out (or 'none').")
        return None
    if target is None:
        if out.ndim > 2:
            raise ValidationUsageError(f"--target: the model returns {tuple(out.shape)}; give "
                                       "one index per output axis, e.g. --target 0,0.")
        return 0
    sizes = out.shape[1:]
    indices = target if isinstance(target, tuple) else (target,)
    if len(indices) != len(sizes) or not all(-n <= t < n for t, n in zip(indices, sizes)):
        raise ValidationUsageError(f"--target {target!r} is out of range: the model's outputs "
                                   f"have shape {tuple(sizes)} per example.")
    return target


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def run_validate(
    model_spec: str,
    weights: str | os.PathLike | None = None,
    method: str | None = None,
    input_length: int | None = None,
    inputs: str | os.PathLike | Tensor | None = None,
    target: int | tuple[int, ...] | str | None = None,
    device: str | torch.device = "cpu",
    dtype: str | torch.dtype = "float64",
    json_path: str | os.PathLike | None = None,
    junit_path: str | os.PathLike | None = None,
    baseline: str | os.PathLike | None = None,
    update_baseline: bool = False,
    random_state: int = 0,
    n_examples: int = 4,
    n_references: int = 4,
    options: dict | None = None,
    verbose: bool = True,
    overwrite: bool = False,
) -> GateReport:
    """Run the correctness gate of ``method`` on the user's model and report every check.

    Parameters
    ----------
    model_spec : str
        ``"package.module:name"`` or ``"path/to/file.py:name"``: an
        ``nn.Module`` or a factory called with no arguments
        (:func:`~captum_genomics._utils.models.load_user_model`).
    weights : str or PathLike, optional
        A state dict (or a checkpoint dict holding one) saved with
        ``torch.save``, loaded with ``weights_only=True``. Default None.
    method : str, optional
        The method under test: ``"ShuffleDeepLiftShap"`` (default), a peer
        (``"captum:DeepLiftShap"``, ``"captum:DeepLift"``,
        ``"captum:IntegratedGradients"``, ``"tangermeme:deep_lift_shap"``,
        ``"shap:DeepExplainer"``) or any other method with a registered suite
        (:func:`known_methods`).
    input_length : int, optional
        ``L`` of random one-hot inputs ``(n_examples, 4, L)`` drawn from
        ``random_state`` (uniform bases). Required unless ``inputs`` is given.
    inputs : str, PathLike or Tensor, optional
        A FASTA file (optionally gzipped; sequences of one length, all-zero
        columns for ``N``), a ``.npy`` array (one-hot ``(N, 4, L)`` or tabular
        ``(N, G)``), an ``.h5ad`` file (its ``X``, tabular; needs anndata) or
        a tensor. The first ``n_examples`` examples are used.
    target : int, tuple of int, str or None
        The output explained: an index of ``(B, T)``, a tuple for ``(B, T,
        P)``, or their text (``"3"``, ``"0,500"``, ``"none"``). Default None:
        ``0`` for a model returning ``(B, T)``, None for ``(B,)``.
    device : {"cpu", "cuda"} or torch.device
        Where the model and inputs run. Default ``"cpu"``.
    dtype : {"float64", "float32"} or torch.dtype
        The model and inputs are cast to it. Default ``"float64"`` (where
        additivity is held to ``1e-10``; ``1e-4`` in float32).
    json_path, junit_path : str or PathLike, optional
        Where to write the JSON and JUnit XML reports
        (:mod:`captum_genomics.testing.gate.reports`), atomically. Checked
        before the suite runs: the folder must exist and be writable, and an
        existing file at the path is replaced only when it is an earlier
        report of this command (:func:`is_validate_report`; a CI job writes
        its report to the same path on every run) or ``overwrite`` is True.
        Default None: not written.
    baseline : str or PathLike, optional
        A folder of stored attributions: compare against them (the
        ``"drift"`` check of :mod:`captum_genomics.testing.gate.baseline`).
        Default None.
    update_baseline : bool
        Write (or rewrite) the baseline instead of comparing. Needs
        ``baseline``. Default False.
    random_state : int
        Seeds the random inputs and every random choice of the checks
        (references, seeds compared). Default 0.
    n_examples : int
        Examples checked. Default 4.
    n_references : int
        References per example. Default 4.
    options : dict, optional
        Suite-specific options (:attr:`GateContext.options`), e.g. the
        attention layers, groups and observed values the
        ``HeadAblationExplainedVariance`` suite needs, or ``x_train`` for
        ``FastSHAP``. Default None.
    verbose : bool
        Print the table (:func:`~captum_genomics.testing.gate.reports.format_table`).
        Default True.
    overwrite : bool
        Replace an existing file at ``json_path`` or ``junit_path`` that is
        not a report of this command. Default False. (The baseline folder is
        rewritten only with ``update_baseline``, its own permission.)

    Returns
    -------
    GateReport
        ``report.passed`` is False when a check failed. ``report.metadata``:
        ``package``, ``torch``, ``captum`` (and ``tangermeme``, ``shap``)
        versions, ``python``, ``platform``, ``device``, ``dtype``,
        ``input_shape``, ``inputs`` (their source), ``target``,
        ``random_state``, ``n_references``, ``model_sha256``
        (:func:`~captum_genomics.testing.gate.baseline.state_dict_sha256`, the
        same for any dtype and device), ``seconds`` (the suite) and
        ``total_seconds`` (the job).

    Raises
    ------
    ValidationUsageError
        A bad model spec or weights file, a missing input file, a model that
        does not map ``(1, 4, L)`` to ``(1,)`` / ``(1, T)``, an out-of-range
        target, an unknown method, ``--device cuda`` without CUDA, a report
        folder that does not exist or is not writable, a report path holding
        a file that is not a report (without ``overwrite``), the same path for
        both reports, a baseline folder that cannot be written (with
        ``update_baseline``), ``update_baseline`` without ``baseline``,
        a missing or broken baseline without ``update_baseline``
        (:class:`~captum_genomics.testing.gate.baseline.BaselineError` is its
        cause), inputs or options the method's suite cannot take.

    Notes
    -----
    The checks and their bounds are listed in
    :mod:`captum_genomics.testing.gate.sequence` and
    :mod:`captum_genomics.testing.gate.peers`.
    """
    start = time.perf_counter()
    method = DEFAULT_METHOD if method is None else method
    methods = known_methods()
    if method not in methods:
        raise ValidationUsageError(f"--method {method!r} is not known; expected one of "
                                   f"{methods}.")
    torch_dtype, torch_device = _dtype(dtype), _device(device)
    n_examples = _positive(n_examples, "--n-examples")
    n_references = _positive(n_references, "--n-references")
    if update_baseline and baseline is None:
        raise ValidationUsageError("--update-baseline needs --baseline DIR.")
    _report_folder(json_path, "--json", overwrite)
    _report_folder(junit_path, "--junit-xml", overwrite)
    if (json_path is not None and junit_path is not None
            and os.path.abspath(json_path) == os.path.abspath(junit_path)):
        raise ValidationUsageError(f"--json and --junit-xml name the same file "
                                   f"{os.fspath(json_path)!r}; give two paths.")
    if baseline is not None and update_baseline:
        try:  # fail before the suite runs, not after
            check_output_folder(baseline, [ATTRIBUTIONS_FILE, METADATA_FILE], overwrite=True,
                                option="--baseline", manifest=METADATA_FILE)
        except OSError as err:
            raise ValidationUsageError(str(err)) from err
    if baseline is not None and not update_baseline:
        try:  # fail before the suite runs, not after
            read_baseline(baseline)
        except BaselineError as err:
            raise ValidationUsageError(str(err)) from err
    try:
        model = load_user_model(model_spec, weights)
    except ModelSpecError as err:
        raise ValidationUsageError(str(err)) from err
    model_hash = state_dict_sha256(model)
    x, source = _load_inputs(inputs, input_length, n_examples, random_state, method)
    model = model.to(device=torch_device, dtype=torch_dtype).eval()
    x = x.to(device=torch_device, dtype=torch_dtype)
    if method == "HeadAblationExplainedVariance":
        target = None  # the suite checks the whole output (N, genes), called with its options
    else:
        target = _check_model(model, x, parse_target(target))

    context = GateContext(model=model, method=method, inputs=x, target=target,
                          device=torch_device, dtype=torch_dtype, random_state=random_state,
                          n_references=n_references, options=dict(options or {}))
    try:  # a suite raises ValueError only for inputs or options it cannot take
        report = run_gate(context, model_name=model_spec)
    except ValueError as err:
        raise ValidationUsageError(f"--method {method}: {err}") from err
    if baseline is not None:
        try:
            report.results.append(baseline_check(context, baseline, update_baseline))
        except BaselineError as err:
            raise ValidationUsageError(str(err)) from err
    report.metadata.update({
        "package": __version__, "torch": torch.__version__, "captum": _version("captum"),
        "tangermeme": _version("tangermeme"), "shap": _version("shap"),
        "python": platform.python_version(), "platform": platform.platform(),
        "device": str(torch_device), "dtype": str(torch_dtype).replace("torch.", ""),
        "input_shape": list(x.shape), "inputs": source, "target": target,
        "random_state": random_state, "n_references": n_references,
        "model_sha256": model_hash, "threads": torch.get_num_threads(),
        "total_seconds": round(time.perf_counter() - start, 3),
    })
    if json_path is not None:
        write_json(report, json_path)
    if junit_path is not None:
        write_junit_xml(report, junit_path)
    if verbose:
        print(format_table(report))
    return report
