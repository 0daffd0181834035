"""Writing files safely: whole or not at all, with the permissions the user's umask gives."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from .errors import InputError


def default_file_mode() -> int:
    """The mode a newly created file gets here: ``0o666`` less the process umask.

    Examples
    --------
    >>> old = os.umask(0o022)
    >>> oct(default_file_mode())
    '0o644'
    >>> _ = os.umask(old)
    """
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def atomic_write(path, write) -> Path:
    """Call ``write(tmp_path)`` then rename the temporary file onto ``path``.

    Nothing is left at ``path`` (nor a stray temporary file) if ``write`` fails, and
    the file gets the usual permissions (umask), not the private ones of a temporary file.

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> atomic_write(folder / "a.txt", lambda tmp: Path(tmp).write_text("hi")).read_text()
    'hi'
    >>> sorted(p.name for p in folder.iterdir())
    ['a.txt']
    """
    path = Path(path)
    if not path.parent.is_dir():
        raise InputError("output folder does not exist", path=path.parent)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, default_file_mode())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
