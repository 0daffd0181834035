"""Writing files and result folders safely: whole or not at all, one writer at a time, with
the permissions the user's umask gives."""

from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
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
    return 0o666 & ~_umask()


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


#: File that marks a folder as a reddiff output (only such folders are ever replaced).
OUTPUT_MARKER = ".reddiff-output"
_RENAME_EXCHANGE = 2
_held_locks: dict[Path, int] = {}


def check_output_folder(target, *, overwrite: bool = False) -> Path:
    """Check, before any long work, that results can be written to the folder ``target``.

    ``target`` must be absent (its parent is created), an empty folder, or, with
    ``overwrite``, a folder reddiff wrote before (it holds :data:`OUTPUT_MARKER`).

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> check_output_folder(folder / "new") == folder / "new"
    True
    >>> (folder / "notes.txt").write_text("mine")
    4
    >>> check_output_folder(folder, overwrite=True)
    Traceback (most recent call last):
    ...
    reddiff.errors.InputError: ...: holds files reddiff did not write; choose another --out
    """
    target = Path(target)
    if str(target) in ("", "."):
        raise InputError("give an output folder other than the current one", field="out")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise InputError(f"cannot create the output folder: {target.parent} ({err.strerror})",
                         path=target) from err
    if not os.access(target.parent, os.W_OK):
        raise InputError(f"cannot write the output folder: {target.parent} is not writable", path=target)
    if target.exists() and not target.is_dir():
        raise InputError("exists and is not a folder", path=target)
    if target.is_dir() and any(target.iterdir()):
        if not (target / OUTPUT_MARKER).is_file():
            raise InputError("holds files reddiff did not write; choose another --out", path=target)
        if not overwrite:
            raise InputError("holds an earlier result; pass --overwrite (overwrite=True) to replace it",
                             path=target)
    return target


def _lock_path(target: Path) -> Path:
    return target.parent / f".{target.name}.lock"


@contextmanager
def locked_output(target):
    """Hold the lock of output folder ``target`` (re-entrant in one process): a second
    process writing the same folder fails at once instead of racing this one."""
    import fcntl

    target = Path(target).absolute()
    if target in _held_locks:
        yield target
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    path = _lock_path(target)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise InputError("another reddiff run is writing this folder", path=target) from None
    _held_locks[target] = fd
    try:
        _remove_stale_staging(target)
        yield target
    finally:
        del _held_locks[target]
        path.unlink(missing_ok=True)
        os.close(fd)


def _remove_stale_staging(target: Path) -> None:
    """Staging folders of ``target`` left by a killed run (this process holds the lock)."""
    for stale in target.parent.glob(f".{target.name}.staging-*"):
        shutil.rmtree(stale, ignore_errors=True)


@contextmanager
def staged_output(target, *, overwrite: bool = False):
    """Write a result folder as one unit: yield a staging folder beside ``target``, then
    put it in ``target``'s place, or remove it if the block fails.

    Replacing an earlier result swaps the two folders in one step (Linux
    ``renameat2(RENAME_EXCHANGE)``; elsewhere two renames), so a reader, or a run
    interrupted by any signal, sees the old result whole or the new one whole,
    never a mix. Runs under :func:`locked_output`.

    Examples
    --------
    >>> import tempfile
    >>> target = Path(tempfile.mkdtemp()) / "result"
    >>> with staged_output(target) as folder:
    ...     _ = (folder / "a.txt").write_text("new")
    >>> sorted(p.name for p in target.iterdir())
    ['.reddiff-output', 'a.txt']
    """
    target = Path(target)
    with locked_output(target):
        check_output_folder(target, overwrite=overwrite)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.staging-", dir=target.parent))
        try:
            os.chmod(staging, 0o777 & ~_umask())
            yield staging
            (staging / OUTPUT_MARKER).write_text("written by reddiff as one unit\n")
            _put_in_place(staging, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)


def _put_in_place(staging: Path, target: Path) -> None:
    if not target.exists() or not any(target.iterdir()):
        os.replace(staging, target)  # onto an empty folder too
        return
    if _exchange(staging, target):
        return  # staging now holds the old result, removed by the caller
    old = Path(tempfile.mkdtemp(prefix=f".{target.name}.staging-old-", dir=target.parent))
    os.replace(target, old / "result")
    os.replace(staging, target)
    shutil.rmtree(old, ignore_errors=True)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux renameat2); False where the system cannot."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd = -100
    return renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), _RENAME_EXCHANGE) == 0


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
