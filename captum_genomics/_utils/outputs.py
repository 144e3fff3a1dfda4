"""A job's output folder: checked before the job runs, written in one step when it ends.

Every job that writes a folder of results (``captum-genomics deeplift``,
``attribute``, ``fastshap``, ``heads`` and their Python functions) goes through
:class:`OutputFolder`:

1. **Before any computation** the folder is checked
   (:func:`check_output_folder`): it must not be a file, it must be creatable
   (or exist) and writable (a temporary file is created and removed there),
   and it must not hold the results of an earlier run (its ``summary.json``,
   or any file the job writes) unless ``overwrite`` is given. Unrelated
   files of the user are allowed and never touched.
2. **While the job runs** every file is written into a hidden staging folder
   inside the output folder (``.captum-genomics-staging-XXXXXXXX``, so the
   same filesystem and ``os.replace`` is a rename).
3. **When the job succeeds** the files are moved into place with
   :func:`os.replace`, ``summary.json`` (the manifest) last; with
   ``overwrite`` the earlier run's ``summary.json`` is removed first and the
   files it lists that the new run does not write are removed, so the folder
   never mixes two runs. A folder with ``summary.json`` holds one complete run.
4. **When the job fails** (an exception, Ctrl-C) the staging folder is
   removed, and folders created for the job are removed again when empty:
   the output folder is left exactly as it was.

A run killed outright (``SIGKILL``, power loss) cannot clean up: it leaves
its hidden staging folder and no file under a final name.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import TracebackType

__all__ = ["MANIFEST", "STAGING_PREFIX", "OutputFolder", "check_output_folder",
           "stage_summary", "finish_report",
           "manifest_files"]

MANIFEST = "summary.json"
"""The file that marks a complete run and lists its files (key ``"files"``)."""

STAGING_PREFIX = ".captum-genomics-staging-"
"""Name prefix of the hidden folder a running job writes into."""


def _plain_name(name: str) -> bool:
    """True for a file name without folders, not hidden, not ``.``/``..``."""
    return (bool(name) and name == os.path.basename(name) and "\\" not in name
            and not name.startswith("."))


def manifest_files(folder: str | os.PathLike, manifest: str = MANIFEST) -> list[str]:
    """The files an earlier run's manifest lists, as plain names present in ``folder``.

    Parameters
    ----------
    folder : str or PathLike
    manifest : str
        Its file name. Default ``"summary.json"``.

    Returns
    -------
    list of str
        The entries of the manifest's ``"files"`` list that are plain file
        names (no folder part, not hidden) naming a file (or link) in
        ``folder``, manifest included when present; ``[]`` when there is no
        manifest or it is not a JSON object with such a list (a foreign or
        damaged ``summary.json``: only the names the job itself writes are then
        replaced).
    """
    folder = Path(folder)
    path = folder / manifest
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        return []
    listed = data.get("files") if isinstance(data, dict) else None
    if not isinstance(listed, list):
        return []
    names = [n for n in listed if isinstance(n, str) and _plain_name(n)]
    return [n for n in dict.fromkeys(names)
            if os.path.isfile(folder / n) or os.path.islink(folder / n)]


def _earlier_run(folder: Path, names: Iterable[str], manifest: str) -> list[str]:
    """Files in ``folder`` that belong to an earlier run: the job's names and the manifest's."""
    found = [n for n in names if os.path.lexists(folder / n)]
    for n in manifest_files(folder, manifest):
        if n not in found:
            found.append(n)
    return found


def _probe_writable(folder: Path) -> None:
    """Create and remove a temporary file in ``folder``; OSError when that fails."""
    fd, tmp = tempfile.mkstemp(prefix=STAGING_PREFIX, suffix=".probe", dir=folder)
    os.close(fd)
    os.unlink(tmp)


def _nearest_existing(path: Path) -> Path:
    """``path`` or its closest ancestor that exists (as anything)."""
    current = path
    while not os.path.lexists(current):
        parent = current.parent
        if parent == current:  # pragma: no cover - the root always exists
            break
        current = parent
    return current


def check_output_folder(
    path: str | os.PathLike,
    names: Sequence[str],
    overwrite: bool = False,
    *,
    option: str = "out_dir",
    overwrite_option: str = "overwrite=True",
    manifest: str = MANIFEST,
) -> list[str]:
    """Check, before a job runs, that it may write ``names`` into the folder ``path``.

    Nothing is created or changed (a temporary probe file is created and
    removed again).

    Parameters
    ----------
    path : str or PathLike
        The output folder; it need not exist yet (it is created with its
        parents by :class:`OutputFolder`).
    names : sequence of str
        Every file the job may write (plain names).
    overwrite : bool
        Allow a folder that holds an earlier run's results. Default False.
    option : str
        How the user named the folder, for the messages. Default ``"out_dir"``
        (the CLI passes ``"--out"``).
    overwrite_option : str
        How the user allows overwriting, for the messages. Default
        ``"overwrite=True"`` (the CLI passes ``"--overwrite"``).
    manifest : str
        The manifest's file name. Default ``"summary.json"``.

    Returns
    -------
    list of str
        The files of an earlier run in the folder (what ``overwrite``
        replaces or removes); ``[]`` for a new or unrelated folder.

    Raises
    ------
    NotADirectoryError
        If ``path``, or a folder above it, is a file.
    PermissionError
        If the folder (or the existing folder it would be created in) is not
        writable.
    FileExistsError
        If the folder holds an earlier run's results and ``overwrite`` is False.
    OSError
        Other failures of the probe (e.g. a read-only filesystem), with the
        path in the message.
    """
    folder = Path(path)
    shown = repr(os.fspath(folder))
    if os.path.lexists(folder) and not folder.is_dir():
        raise NotADirectoryError(f"{option} {shown} is a file, not a folder; give a folder "
                                 "(it is created when missing).")
    target = folder if folder.is_dir() else _nearest_existing(folder)
    if not target.is_dir():
        raise NotADirectoryError(f"{option} {shown} cannot be created: "
                                 f"{os.fspath(target)!r} is a file, not a folder.")
    try:
        _probe_writable(target)
    except OSError as err:
        where = (f"{option} {shown} is not writable" if target == folder else
                 f"{option} {shown} cannot be created in {os.fspath(target)!r}")
        reason = err.strerror or str(err)
        if isinstance(err, PermissionError) or err.errno in (errno.EACCES, errno.EPERM):
            raise PermissionError(f"{where}: {reason}.") from None
        raise OSError(err.errno, f"{where}: {reason}.") from None
    if target != folder:
        return []
    earlier = _earlier_run(folder, names, manifest)
    if earlier and not overwrite:
        shown_files = ", ".join(earlier[:5]) + (f" and {len(earlier) - 5} more"
                                                if len(earlier) > 5 else "")
        raise FileExistsError(
            f"{option} {shown} already holds the results of an earlier run ({shown_files}); "
            f"give {overwrite_option} to replace them, or choose another folder.")
    return earlier


class OutputFolder:
    """Stage a job's files in a hidden folder and move them into place when it succeeds.

    Use it as a context manager around the whole job (see the module
    docstring for the rules)::

        with OutputFolder(out_dir, ["table.csv", "summary.json"]) as out:
            ...                                   # the computation
            table.to_csv(out.staged("table.csv"))
            write_summary(out.staged("summary.json"))
        # here the files are in out_dir, summary.json written last

    Parameters
    ----------
    path : str or PathLike
        The output folder; created with its parents when missing.
    names : sequence of str
        Every file the job may write (plain names). Only these can be staged.
    overwrite : bool
        Replace an earlier run's results in the folder. Default False.
    option, overwrite_option : str
        How the user named the folder and the permission to overwrite, for
        the messages (see :func:`check_output_folder`). Defaults ``"out_dir"``
        and ``"overwrite=True"``.
    manifest : str
        The file written last; an earlier run's copy lists that run's files
        under ``"files"``. Default ``"summary.json"``.

    Attributes
    ----------
    path : Path
        The output folder.
    removed : list of str
        After a successful run with ``overwrite``: the earlier run's files that
        were removed (those the new run did not replace).

    Raises
    ------
    ValueError
        If ``names`` holds a name with a folder part or a hidden name, or
        does not include ``manifest``.
    """

    def __init__(self, path: str | os.PathLike, names: Sequence[str], overwrite: bool = False,
                 *, option: str = "out_dir", overwrite_option: str = "overwrite=True",
                 manifest: str = MANIFEST) -> None:
        names = list(names)
        bad = [n for n in names if not isinstance(n, str) or not _plain_name(n)]
        if bad:
            raise ValueError(f"`names` must be plain file names, got {bad!r}.")
        if manifest not in names:
            raise ValueError(f"`names` must include the manifest {manifest!r}.")
        self.path = Path(path)
        self.names = names
        self.overwrite = bool(overwrite)
        self.option = option
        self.overwrite_option = overwrite_option
        self.manifest = manifest
        self.removed: list[str] = []
        self._staging: Path | None = None
        self._created: list[Path] = []

    @property
    def staging(self) -> Path:
        """The hidden folder the job writes into (only inside the ``with`` block)."""
        if self._staging is None:
            raise RuntimeError("the output folder is staged only inside its `with` block.")
        return self._staging

    def staged(self, name: str) -> Path:
        """Where the job writes ``name`` now (in the staging folder).

        Raises
        ------
        ValueError
            If ``name`` is not one of the folder's ``names``.
        RuntimeError
            Outside the ``with`` block.
        """
        if name not in self.names:
            raise ValueError(f"{name!r} is not one of this job's files {self.names}.")
        return self.staging / name

    def final(self, name: str) -> Path:
        """Where ``name`` will be once the job has succeeded (for messages and summaries)."""
        return self.path / name

    def __enter__(self) -> OutputFolder:
        check_output_folder(self.path, self.names, self.overwrite, option=self.option,
                            overwrite_option=self.overwrite_option, manifest=self.manifest)
        missing = []
        current = self.path
        while not os.path.lexists(current):
            missing.append(current)
            if current.parent == current:  # pragma: no cover
                break
            current = current.parent
        try:
            for folder in reversed(missing):
                folder.mkdir()
                self._created.append(folder)
            self._staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=self.path))
        except BaseException:
            self._remove_created()
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> bool:
        if exc_type is not None:
            self._discard()
            return False
        try:
            self._commit()
        except BaseException:
            self._discard()
            raise
        return False

    def _commit(self) -> None:
        staging = self.staging
        written = [n for n in self.names if os.path.lexists(staging / n)]
        extra = sorted(set(os.listdir(staging)) - set(written))
        if extra:  # a library wrote a name it was not given (e.g. numpy adding .npz)
            raise RuntimeError(f"unexpected files in the staging folder: {extra}")
        earlier = _earlier_run(self.path, self.names, self.manifest)
        if earlier and not self.overwrite:  # written meanwhile by another process
            raise FileExistsError(
                f"{self.option} {os.fspath(self.path)!r} received the results of another run "
                f"while this one ran ({', '.join(earlier[:5])}); nothing was written. Give "
                f"{self.overwrite_option} to replace them.")
        stale = [n for n in earlier if n not in written]
        old_manifest = self.path / self.manifest
        if os.path.lexists(old_manifest):  # the earlier run is no longer complete
            os.unlink(old_manifest)
        for name in written:
            if name != self.manifest:
                os.replace(staging / name, self.path / name)
        for name in stale:
            if name != self.manifest:
                try:
                    os.unlink(self.path / name)
                except FileNotFoundError:
                    pass
        self.removed = [n for n in stale if n != self.manifest]
        if self.manifest in written:
            os.replace(staging / self.manifest, self.path / self.manifest)
        os.rmdir(staging)
        self._staging = None

    def _discard(self) -> None:
        if self._staging is not None:
            shutil.rmtree(self._staging, ignore_errors=True)
            self._staging = None
        self._remove_created()

    def _remove_created(self) -> None:
        for folder in reversed(self._created):
            try:
                folder.rmdir()
            except OSError:  # not empty: someone else wrote there meanwhile
                break
        self._created = []


def stage_summary(out: "OutputFolder", summary: dict, files: list[str], t_start: float) -> None:
    """Finish a job's ``summary.json`` in ``out``'s staging folder (it is moved in last).

    Appends ``"summary.json"`` to ``files``, stores ``files`` and the seconds
    since ``t_start`` (``time.perf_counter()``) in ``summary`` and writes it.
    """
    import time

    files.append(MANIFEST)
    summary["files"] = files
    summary["seconds"] = round(time.perf_counter() - t_start, 2)
    with open(out.staged(MANIFEST), "w", encoding="utf-8") as fh:
        json.dump(summary, fh, indent=1, default=str)
        fh.write("\n")


def finish_report(out: "OutputFolder", out_dir: str | os.PathLike, summary: dict,
                  lines: list[str], verbose: bool) -> dict:
    """After the files are in place: the closing report lines, printed when ``verbose``.

    Returns ``summary`` with ``"report"`` set (the lines joined).
    """
    lines.append(f"wrote {', '.join(summary['files'])} to {os.fspath(out_dir)}/ in "
                 f"{summary['seconds']:.1f} s")
    if out.removed:
        lines.append(f"removed the earlier run's {', '.join(out.removed)}")
    summary["report"] = "\n".join(lines)
    if verbose:
        print(summary["report"])
    return summary

