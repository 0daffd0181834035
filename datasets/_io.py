"""Shared helpers for the file readers: input checks and error translation.

Every reader opens its input read-only and turns whatever the third-party parser
raises on a damaged file into one :class:`reddiff.errors.InputError` naming the file.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import numpy as np

from reddiff.errors import InputError, ReddiffError
from reddiff.files import atomic_write


def input_file(path, *, folder_ok: bool = False) -> Path:
    """``path`` as a :class:`~pathlib.Path`, checked to exist (as a file, or a folder if allowed)."""
    try:
        path = Path(path)
    except TypeError as err:
        raise InputError(f"expected a file path, got {type(path).__name__}") from err
    if path.is_file() or (folder_ok and path.is_dir()):
        return path
    if path.is_dir():
        raise InputError("is a folder, expected a file", path=path)
    raise InputError("no such file" + (" or folder" if folder_ok else ""), path=path)


@contextmanager
def reading(path, what: str, *, field: str | None = None):
    """Turn any parser failure inside the block into an :class:`InputError`.

    reddiff's own errors pass through unchanged. Third-party parsers (h5py, pydicom,
    astropy, Pillow, nibabel, NumPy) raise many unrelated types on a truncated or
    corrupt file, so anything else is caught here, at the file boundary only.
    """
    try:
        yield
    except ReddiffError:
        raise
    except Exception as err:  # noqa: BLE001 - boundary with foreign parsers, see docstring
        raise InputError(f"not a readable {what} ({type(err).__name__}: {err})",
                         path=path, field=field) from err


def real_float32(array, *, path=None, field: str | None = None) -> np.ndarray:
    """A numeric array as float32 (magnitude for complex data); other dtypes are an error."""
    array = np.asarray(array)
    if array.dtype == bool:
        return array.astype(np.float32)
    if np.iscomplexobj(array):
        return np.abs(array).astype(np.float32)
    if not np.issubdtype(array.dtype, np.number):
        raise InputError(f"expected numeric pixel data, got dtype {array.dtype}", path=path, field=field)
    return array.astype(np.float32)


def image_stack(array: np.ndarray, *, path=None, field: str | None = None) -> np.ndarray:
    """Drop singleton axes beyond two and check the result is ``(H, W)`` or ``(N, H, W)``."""
    while array.ndim > 2 and 1 in array.shape[:-2]:
        array = array.squeeze(axis=array.shape[:-2].index(1))
    if array.ndim not in (2, 3) or min(array.shape) < 1:
        raise InputError(f"expected a 2-D image or a 3-D stack, got shape {array.shape}",
                         path=path, field=field)
    return array


def write_file(path, write) -> Path:
    """:func:`reddiff.files.atomic_write`, with OS failures reported by :func:`writing`."""
    with writing(path):
        return atomic_write(path, write)


@contextmanager
def writing(path):
    """Report an OS failure while writing ``path`` (permissions, full disk, a file where
    the folder should be) as an :class:`InputError` naming it."""
    try:
        yield
    except OSError as err:
        raise InputError(f"cannot write ({err.strerror or err})", path=path) from err
