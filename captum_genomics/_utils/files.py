"""Writing files atomically: a temporary name in the target's folder, then ``os.replace``.

A reader never sees a half-written file, and a failed write (disk full, a
kill) leaves any earlier file at the path as it was.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

__all__ = ["write_bytes_atomic"]


def _umask() -> int:
    """The process umask (read by setting and restoring it; there is no getter)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder.

    Parameters
    ----------
    path : str or PathLike
        The file; its folder must exist. An existing file is replaced.
    data : bytes

    Returns
    -------
    Path
        ``path``, with the permissions a plain ``open(path, "wb")`` would
        give it (``0666`` minus the umask).

    Raises
    ------
    FileNotFoundError
        If the folder of ``path`` does not exist.
    IsADirectoryError
        If ``path`` is a folder.
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{os.fspath(path)!r} is a directory; give a file.")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"the folder of {os.fspath(path)!r} does not exist.")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # mkstemp makes the file private (0600); give it the permissions open() would
        os.chmod(tmp, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path
