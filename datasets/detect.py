"""Tell a file's format from its first bytes (and, failing that, its name).

Formats: ``"dicom"`` (a file, or a folder holding a series), ``"fits"``, ``"hdf5"``
(including NetCDF-4, fastMRI and reddiff sinogram files), ``"nifti"``, ``"numpy"``
(``.npy``/``.npz``), ``"raster"`` (PNG, TIFF, JPEG, BMP, GIF).
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

from reddiff.errors import InputError

from ._io import input_file

FORMATS = ("dicom", "fits", "hdf5", "nifti", "numpy", "raster")

_MAGIC = (
    (b"\x89HDF\r\n\x1a\n", "hdf5"),
    (b"SIMPLE  =", "fits"),
    (b"\x93NUMPY", "numpy"),
    (b"\x89PNG\r\n\x1a\n", "raster"),
    (b"II*\x00", "raster"),
    (b"MM\x00*", "raster"),
    (b"\xff\xd8\xff", "raster"),
    (b"GIF8", "raster"),
    (b"BM", "raster"),
)
_SUFFIXES = {
    ".dcm": "dicom", ".dicom": "dicom", ".ima": "dicom",
    ".fits": "fits", ".fit": "fits", ".fts": "fits", ".fz": "fits",
    ".h5": "hdf5", ".hdf5": "hdf5", ".hdf": "hdf5", ".nc": "hdf5",
    ".nii": "nifti", ".mgz": "nifti", ".img": "nifti", ".hdr": "nifti",
    ".npy": "numpy", ".npz": "numpy",
    ".png": "raster", ".tif": "raster", ".tiff": "raster", ".jpg": "raster",
    ".jpeg": "raster", ".bmp": "raster", ".gif": "raster",
}


def detect_format(path) -> str:
    """The format of a file or folder, one of :data:`FORMATS`.

    Parameters
    ----------
    path : str or os.PathLike
        A file, or a folder of DICOM files.

    Returns
    -------
    str
        The format name.

    Notes
    -----
    The first bytes decide where they are distinctive (HDF5 signature, ``SIMPLE  =``
    for FITS, ``DICM`` at byte 128 for DICOM, the NumPy, PNG, TIFF, JPEG, GIF and BMP
    signatures, ``n+1``/``ni1`` at byte 344 for NIfTI-1); gzip files are looked into;
    otherwise the name's suffix decides. A folder is a DICOM series.

    Examples
    --------
    >>> from pydicom.data import get_testdata_file
    >>> detect_format(get_testdata_file("CT_small.dcm"))
    'dicom'
    """
    path = input_file(path, folder_ok=True)
    if path.is_dir():
        return "dicom"
    head = _head(path)
    found = _from_bytes(head)
    if found is None and head[:2] == b"\x1f\x8b":
        found = _from_bytes(_gunzipped_head(path))
    if found is None:
        suffixes = [s.lower() for s in path.suffixes]
        if suffixes and suffixes[-1] == ".gz":
            suffixes = suffixes[:-1]
        found = _SUFFIXES.get(suffixes[-1] if suffixes else "")
    if found is None:
        raise InputError(f"unknown file format (expected one of {', '.join(FORMATS)})", path=path)
    return found


def _head(path: Path, n: int = 512) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read(n)
    except OSError as err:
        raise InputError(f"cannot read ({err.strerror})", path=path) from err


def _gunzipped_head(path: Path, n: int = 512) -> bytes:
    try:
        with gzip.open(path, "rb") as f:
            return f.read(n)
    except (OSError, EOFError, zlib.error):  # not really gzip, or truncated: fall back to the suffix
        return b""


def _from_bytes(head: bytes) -> str | None:
    if head[128:132] == b"DICM":
        return "dicom"
    if head[344:348] in (b"n+1\x00", b"ni1\x00") or head[4:8] in (b"n+2\x00", b"ni2\x00"):
        return "nifti"
    if head[:4] == b"PK\x03\x04":
        return "numpy"  # .npz is a zip of .npy files
    for magic, name in _MAGIC:
        if head.startswith(magic):
            return name
    return None
