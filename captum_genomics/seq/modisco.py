"""Write attributions in the layout tfmodisco-lite's ``modisco motifs`` reads.

``modisco motifs -s SEQS -a ATTRS`` loads each file with ``np.load`` (taking
``["arr_0"]`` from an ``.npz``), expects channel-first ``(N, 4, L)`` arrays,
cuts a window of ``-w`` bases around the centre (default 400, so pass
``-w L`` for shorter sequences; a longer window is an error) and transposes
to ``(N, L, 4)`` itself. ``-a`` takes *hypothetical* contributions; modisco
projects them onto the sequence internally. (Source followed:
``modiscolite/cli.py`` of jmschrei/tfmodisco-lite.)
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path

import numpy as np
from torch import Tensor

__all__ = ["save_npz", "load_npz", "save_modisco_inputs", "modisco_command"]


def _to_numpy(x) -> np.ndarray:
    if isinstance(x, Tensor):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def save_npz(path: str | os.PathLike, array: Tensor | np.ndarray) -> Path:
    """Save one ``(N, 4, L)`` array as float32 under the key ``arr_0``.

    Parameters
    ----------
    path
        Destination; ``.npz`` is the conventional suffix (numpy appends it if
        missing).
    array
        Tensor or array, shape=(N, 4, L).

    Returns
    -------
    pathlib.Path
        The path written.

    Raises
    ------
    ValueError
        If ``array`` is not 3-dimensional with 4 channels on axis 1.
    """
    arr = _to_numpy(array)
    if arr.ndim != 3 or arr.shape[1] != 4:
        raise ValueError(f"Arrays for modisco must have shape (N, 4, L), got {arr.shape}.")
    path = Path(path)
    np.savez_compressed(path, arr.astype(np.float32))
    return path if path.suffix == ".npz" else path.with_name(path.name + ".npz")


def load_npz(path: str | os.PathLike) -> np.ndarray:
    """Read the ``arr_0`` array of an ``.npz`` file, as modisco does."""
    with np.load(path) as data:
        return data["arr_0"]


def save_modisco_inputs(
    out_dir: str | os.PathLike,
    one_hot: Tensor | np.ndarray,
    hypothetical: Tensor | np.ndarray,
) -> tuple[Path, Path]:
    """Write ``ohe.npz`` (sequences) and ``shap.npz`` (hypothetical contributions).

    Parameters
    ----------
    out_dir
        Folder, created if needed.
    one_hot
        Shape=(N, 4, L), ``ACGT`` one-hot.
    hypothetical
        Shape=(N, 4, L), hypothetical contributions (every base scored).

    Returns
    -------
    (Path, Path)
        The sequence file and the attribution file.

    Raises
    ------
    ValueError
        If the two shapes differ or are not ``(N, 4, L)``.
    """
    one_hot, hypothetical = _to_numpy(one_hot), _to_numpy(hypothetical)
    if one_hot.shape != hypothetical.shape:
        raise ValueError(
            f"`one_hot` {one_hot.shape} and `hypothetical` {hypothetical.shape} "
            "must have the same shape (N, 4, L)."
        )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    return save_npz(out_dir / "ohe.npz", one_hot), save_npz(out_dir / "shap.npz", hypothetical)


def modisco_command(
    ohe_path: str | os.PathLike,
    shap_path: str | os.PathLike,
    length: int,
    max_seqlets: int = 2000,
    output: str | os.PathLike = "modisco_results.h5",
) -> str:
    """The ``modisco motifs`` command line for the written files.

    Parameters
    ----------
    ohe_path, shap_path
        The files from :func:`save_modisco_inputs`.
    length
        Sequence length ``L``; passed as ``-w`` so modisco uses every base.
    max_seqlets
        ``-n``, seqlets per metacluster. Default 2000.
    output
        ``-o``, the results file. Default ``"modisco_results.h5"``.

    Returns
    -------
    str
        A shell-quoted command.
    """
    args = [
        "modisco", "motifs", "-s", str(ohe_path), "-a", str(shap_path),
        "-n", str(max_seqlets), "-w", str(length), "-o", str(output),
    ]
    return shlex.join(args)
