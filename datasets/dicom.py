"""DICOM: read a file or a series folder as a volume in physical units; write derived series.

Reading applies the modality LUT (``RescaleSlope``/``RescaleIntercept``), so CT comes
out in Hounsfield units, and sorts a series along the slice normal. Compressed
transfer syntaxes decode when pydicom has a plugin for them (JPEG 2000 through
pylibjpeg-openjpeg, JPEG/RLE through Pillow or pylibjpeg).
"""

from __future__ import annotations

import copy
import datetime
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.pixels import apply_modality_lut
from pydicom.uid import ExplicitVRLittleEndian, PYDICOM_IMPLEMENTATION_UID, generate_uid

from reddiff.errors import InputError
from reddiff.result import Reconstruction, atomic_write

from ._io import input_file, reading

_PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
#: CT values below this (padding outside the scan circle, often -2000 HU or less) become air.
CT_MIN_HU = -1024.0


@dataclass
class DicomVolume:
    """A DICOM image or series in physical units, sorted along the slice normal.

    Attributes
    ----------
    array : numpy.ndarray
        ``(N, H, W)`` float32 pixel values after the modality LUT (HU for CT, with
        padding below :data:`CT_MIN_HU` set to it).
    unit : str
        ``"HU"`` for CT, the ``Units``/``RescaleType`` of the file where given,
        else ``"a.u."``.
    modality : str
        The DICOM ``Modality`` (``"CT"``, ``"MR"``, ...).
    pixel_spacing : (float, float)
        Row and column spacing in mm (centre to centre).
    positions : numpy.ndarray
        ``(N, 3)`` ``ImagePositionPatient`` of each slice (mm, patient coordinates).
    orientation : numpy.ndarray
        ``(6,)`` ``ImageOrientationPatient``: row then column direction cosines.
    headers : list of pydicom.Dataset
        One header per slice, without pixel data (the source of derived series).
    files : list of pathlib.Path
        The file of each slice.
    path : pathlib.Path
        The file or folder that was read.
    """

    array: np.ndarray
    unit: str
    modality: str
    pixel_spacing: tuple[float, float]
    positions: np.ndarray
    orientation: np.ndarray
    headers: list = field(repr=False)
    files: list
    path: Path

    @property
    def normal(self) -> np.ndarray:
        """Unit slice normal, row direction x column direction."""
        return _normal(self.orientation)

    @property
    def slice_locations(self) -> np.ndarray:
        """``(N,)`` position of each slice along :attr:`normal`, in mm."""
        return self.positions @ self.normal

    @property
    def slice_spacing(self) -> float | None:
        """Median distance between neighbouring slices in mm (``SliceThickness`` for one slice)."""
        if len(self.positions) > 1:
            return float(np.median(np.abs(np.diff(self.slice_locations))))
        thickness = self.headers[0].get("SliceThickness")
        return float(thickness) if thickness not in (None, "") else None

    @property
    def spacing(self) -> tuple[float, ...]:
        """``(dz, dy, dx)`` in mm for a volume, ``(dy, dx)`` for a single slice."""
        if len(self.array) > 1 and self.slice_spacing is not None:
            return (self.slice_spacing, *self.pixel_spacing)
        return self.pixel_spacing


def read_dicom(path, *, series_uid: str | None = None) -> DicomVolume:
    """Read a DICOM file or a folder holding one series.

    Parameters
    ----------
    path : str or os.PathLike
        A DICOM file (single- or multi-frame) or a folder of one series' files
        (other files in it are skipped).
    series_uid : str, optional
        Which ``SeriesInstanceUID`` to read when the folder holds several.

    Returns
    -------
    DicomVolume

    Notes
    -----
    Stored values :math:`s` become physical values with the modality LUT,
    :math:`v = m\\,s + b` (``RescaleSlope`` :math:`m`, ``RescaleIntercept`` :math:`b`).
    Slices are sorted by :math:`\\mathbf{p}\\cdot(\\mathbf{r}\\times\\mathbf{c})`, the
    projection of ``ImagePositionPatient`` on the normal of the row and column
    directions, falling back to ``InstanceNumber``. CT values below
    :data:`CT_MIN_HU` (-1024 HU) are padding outside the scanned circle, not tissue,
    and are set to -1024 HU (air).

    Examples
    --------
    >>> from pydicom.data import get_testdata_file
    >>> vol = read_dicom(get_testdata_file("CT_small.dcm"))
    >>> vol.array.shape, vol.unit, vol.pixel_spacing
    ((1, 128, 128), 'HU', (0.661468, 0.661468))
    """
    path = input_file(path, folder_ok=True)
    if path.is_dir():
        files = _series_files(path, series_uid)
    else:
        files = [path]
    slices = [_read_slice(f) for f in files]
    slices.sort(key=_sort_key)
    _check_consistent(slices, path)
    headers = [header for header, _ in slices]
    first = headers[0]
    array = np.concatenate([pixels for _, pixels in slices]).astype(np.float32)
    unit = _unit(first)
    if unit == "HU":
        array = np.maximum(array, np.float32(CT_MIN_HU))
    return DicomVolume(array=array, unit=unit, modality=str(first.get("Modality", "")),
                       pixel_spacing=_pixel_spacing(first, files[0]),
                       positions=np.array([_position(h) for h in headers]),
                       orientation=_orientation(first), headers=headers,
                       files=[Path(h.filename) for h in headers], path=path)


def _series_files(folder: Path, series_uid: str | None) -> list[Path]:
    """The files of one series in ``folder`` (headers only are read here)."""
    series: dict[str, list[Path]] = {}
    for candidate in sorted(p for p in folder.iterdir() if p.is_file()):
        try:
            header = pydicom.dcmread(candidate, stop_before_pixels=True)
        except Exception:  # noqa: BLE001 - any unreadable file is simply not part of the series
            continue
        series.setdefault(str(header.get("SeriesInstanceUID", "")), []).append(candidate)
    if not series:
        raise InputError("no DICOM files in folder", path=folder)
    if series_uid is not None:
        if series_uid not in series:
            raise InputError(f"no series {series_uid!r}; found {sorted(series)}", path=folder,
                             field="SeriesInstanceUID")
        return series[series_uid]
    if len(series) > 1:
        raise InputError(f"folder holds {len(series)} series {sorted(series)}: pass series_uid=",
                         path=folder, field="SeriesInstanceUID")
    return next(iter(series.values()))


def _read_slice(file: Path) -> tuple[Dataset, np.ndarray]:
    """One file's header (pixel data removed) and its ``(frames, H, W)`` physical values."""
    with reading(file, "DICOM file"):
        ds = pydicom.dcmread(file)
    if not any(k in ds for k in _PIXEL_KEYWORDS):
        raise InputError("no pixel data (not an image)", path=file, field="PixelData")
    if int(ds.get("SamplesPerPixel", 1)) != 1:
        raise InputError(f"expected a grayscale image, got SamplesPerPixel={ds.SamplesPerPixel}",
                         path=file, field="SamplesPerPixel")
    with reading(file, "DICOM pixel data", field="PixelData"):
        pixels = apply_modality_lut(ds.pixel_array, ds).astype(np.float32)
    if pixels.ndim == 2:
        pixels = pixels[None]
    if pixels.ndim != 3 or not np.isfinite(pixels).all():
        raise InputError(f"expected finite (frames, rows, columns) pixels, got shape {pixels.shape}",
                         path=file, field="PixelData")
    for keyword in _PIXEL_KEYWORDS:
        if keyword in ds:
            delattr(ds, keyword)
    return ds, pixels


def _sort_key(item) -> tuple:
    header = item[0]
    if "ImagePositionPatient" in header and "ImageOrientationPatient" in header:
        return (0, float(_position(header) @ _normal(_orientation(header))))
    return (1, int(header.get("InstanceNumber") or 0))


def _check_consistent(slices, path: Path) -> None:
    shapes = {pixels.shape[1:] for _, pixels in slices}
    if len(shapes) > 1:
        raise InputError(f"slices differ in size: {sorted(shapes)}", path=path, field="Rows/Columns")
    if len(slices) > 1:
        orientations = np.array([_orientation(h) for h, _ in slices])
        if np.abs(orientations - orientations[0]).max() > 1e-3:
            raise InputError("slices differ in orientation", path=path, field="ImageOrientationPatient")


def _unit(header: Dataset) -> str:
    for keyword in ("Units", "RescaleType"):
        value = str(header.get(keyword, "") or "").strip()
        if value and value.upper() not in ("US", "UNSPECIFIED"):
            return value
    return "HU" if header.get("Modality") == "CT" else "a.u."


def _pixel_spacing(header: Dataset, file: Path) -> tuple[float, float]:
    spacing = header.get("PixelSpacing") or header.get("ImagerPixelSpacing") or (1.0, 1.0)
    try:
        dy, dx = (float(v) for v in spacing)
    except (TypeError, ValueError) as err:
        raise InputError(f"expected two numbers, got {spacing!r}", path=file, field="PixelSpacing") from err
    if not (dy > 0 and dx > 0):
        raise InputError(f"expected positive spacing, got {spacing!r}", path=file, field="PixelSpacing")
    return dy, dx


def _position(header: Dataset) -> np.ndarray:
    return _floats(header, "ImagePositionPatient", (0.0, 0.0, 0.0))


def _orientation(header: Dataset) -> np.ndarray:
    return _floats(header, "ImageOrientationPatient", (1.0, 0.0, 0.0, 0.0, 1.0, 0.0))


def _floats(header: Dataset, keyword: str, default) -> np.ndarray:
    value = header.get(keyword) or default
    try:
        out = np.array([float(v) for v in value])
    except (TypeError, ValueError) as err:
        raise InputError(f"expected numbers, got {value!r}", path=header.filename, field=keyword) from err
    if out.shape != np.shape(default) or not np.isfinite(out).all():
        raise InputError(f"expected {len(default)} finite numbers, got {value!r}",
                         path=header.filename, field=keyword)
    return out


def _normal(orientation: np.ndarray) -> np.ndarray:
    n = np.cross(orientation[:3], orientation[3:])
    norm = np.linalg.norm(n)
    return n / norm if norm > 0 else np.array([0.0, 0.0, 1.0])
