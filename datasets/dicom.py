"""DICOM: read a file or a series folder as a volume in physical units; write derived series.

Reading applies the modality LUT (``RescaleSlope``/``RescaleIntercept``), so CT comes
out in Hounsfield units, and sorts a series along the slice normal. An enhanced
multi-frame image (Enhanced CT/MR, their Legacy Converted forms, a Parametric Map) is read
frame by frame through its functional groups (:func:`frame_headers`), its frames slices
of the volume. Compressed
transfer syntaxes decode when pydicom has a plugin for them (JPEG 2000 through
pylibjpeg-openjpeg, JPEG/RLE through Pillow or pylibjpeg).

A series' geometry travels without its pixels: :func:`header_json` keeps the attributes
derived series need (:data:`SERIES_KEYWORDS`) as DICOM JSON, :func:`header_only_volume`
rebuilds a :class:`DicomVolume` from them (a measurement file simulated from a series
carries them), and :func:`write_dicom_series` writes one derived series per product:
the mean with an instance per slice, the std as a Parametric Map (:func:`std_map`) with a
frame per slice.
"""

from __future__ import annotations

import copy
import datetime
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.pixels import apply_modality_lut
from pydicom.uid import ExplicitVRLittleEndian, PYDICOM_IMPLEMENTATION_UID, generate_uid

from reddiff.errors import InputError
from reddiff.result import Reconstruction

from ._io import input_file, reading, write_file

_PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
#: CT values below this (padding outside the scan circle, often -2000 HU or less) become air.
CT_MIN_HU = -1024.0


@dataclass
class DicomVolume:
    """A DICOM image or series in physical units, sorted along the slice normal.

    Attributes
    ----------
    array : numpy.ndarray or None
        ``(N, H, W)`` float32 pixel values after the modality LUT (HU for CT, with
        padding below :data:`CT_MIN_HU` set to it); None for a header-only volume, the
        geometry of a series whose pixels are not at hand (:func:`header_only_volume`).
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
        The file of each slice (for a header-only volume, the file the headers were read from).
    path : pathlib.Path
        The file or folder that was read.
    """

    array: np.ndarray | None
    unit: str
    modality: str
    pixel_spacing: tuple[float, float]
    positions: np.ndarray
    orientation: np.ndarray
    headers: list = field(repr=False)
    files: list
    path: Path

    @property
    def grid_shape(self) -> tuple[int, int]:
        """``(rows, columns)`` of the slices (from the headers when there are no pixels)."""
        if self.array is not None:
            return tuple(int(n) for n in self.array.shape[1:])
        return int(self.headers[0].Rows), int(self.headers[0].Columns)

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
        if len(self.positions) > 1 and self.slice_spacing is not None:
            return (self.slice_spacing, *self.pixel_spacing)
        return self.pixel_spacing


def read_dicom(path, *, series_uid: str | None = None) -> DicomVolume:
    """Read a DICOM file or a folder holding one series.

    Parameters
    ----------
    path : str or os.PathLike
        A DICOM file (single- or multi-frame; an enhanced image's frames become slices, each
        with the pixel measures, plane position and orientation and rescale of its
        functional groups) or a folder of one series' files (other files in it are skipped).
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
    and are set to -1024 HU (air). In an enhanced image :math:`m, b` and the geometry are
    each frame's (its Per-frame Functional Groups item, else the Shared one); a Parametric
    Map's values are its Real World Value Mapping's :math:`v = m\\,s + b`, in its unit.

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
    slices = [item for f in files for item in _read_slices(f)]
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
        listed = "; ".join(f"{uid or '(none)'}: {_names(files)}" for uid, files in sorted(series.items()))
        raise InputError(f"folder holds {len(series)} series ({listed}): keep one series per folder, or pass "
                         "series_uid=", path=folder, field="SeriesInstanceUID")
    return next(iter(series.values()))


def _names(files, most: int = 3) -> str:
    """File names for a message: the first ``most``, then how many more."""
    names = [Path(f).name for f in files]
    return ", ".join(names[:most]) + (f" and {len(names) - most} more" if len(names) > most else "")


def _read_slices(file: Path) -> list[tuple[Dataset, np.ndarray]]:
    """One file's slices: ``(header, (frames, H, W) physical values)``, one per frame of an
    enhanced multi-frame image (:func:`frame_headers`), else the file's header (pixel data
    removed) with all its frames."""
    with reading(file, "DICOM file"):
        ds = pydicom.dcmread(file)
        for _ in ds.iterall():  # pydicom decodes elements lazily: a corrupt one fails here, not at a later use
            pass
    if not any(k in ds for k in _PIXEL_KEYWORDS):
        raise InputError("no pixel data (not an image)", path=file, field="PixelData")
    if int(ds.get("SamplesPerPixel", 1)) != 1:
        raise InputError(f"expected a grayscale image, got SamplesPerPixel={ds.SamplesPerPixel}",
                         path=file, field="SamplesPerPixel")
    with reading(file, "DICOM pixel data", field="PixelData"):
        stored = ds.pixel_array
    enhanced = _is_enhanced(ds)
    headers = frame_headers(ds) if enhanced else [ds]
    if enhanced:
        stored = stored.reshape(len(headers), *stored.shape[-2:])
    with reading(file, "DICOM pixel data", field="PixelData"):
        pixels = [_physical(stored[k], h) for k, h in enumerate(headers)] if enhanced else [_physical(stored, ds)]
    out = []
    for header, values in zip(headers, pixels):
        values = values[None] if values.ndim == 2 else values
        if values.ndim != 3 or not np.isfinite(values).all():
            raise InputError(f"expected finite (frames, rows, columns) pixels, got shape {values.shape}",
                             path=file, field="PixelData")
        out.append((header, values))
    for keyword in _PIXEL_KEYWORDS:
        if keyword in ds:
            delattr(ds, keyword)
    return out


#: Functional groups of an enhanced multi-frame image (Enhanced CT, Enhanced MR, Parametric
#: Map, ...) and the attributes each frame's header takes from its macro's item.
FRAME_GROUPS = {"PixelMeasuresSequence": ("PixelSpacing", "SliceThickness", "SpacingBetweenSlices"),
                "PlanePositionSequence": ("ImagePositionPatient",),
                "PlaneOrientationSequence": ("ImageOrientationPatient",),
                "PixelValueTransformationSequence": ("RescaleSlope", "RescaleIntercept", "RescaleType"),
                "FrameVOILUTSequence": ("WindowCenter", "WindowWidth")}
#: Functional group attributes a frame's header takes whole (not through a macro item).
FRAME_ELEMENTS = ("RealWorldValueMappingSequence",)
_FUNCTIONAL_GROUPS = ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence")
_UNASSIGNED = ("UnassignedPerFrameConvertedAttributesSequence", "UnassignedSharedConvertedAttributesSequence")
PARAMETRIC_MAP = "1.2.840.10008.5.1.4.1.1.30"


def _is_enhanced(ds: Dataset) -> bool:
    return any(keyword in ds for keyword in _FUNCTIONAL_GROUPS)


def frame_headers(ds: Dataset) -> list[Dataset]:
    """One classic header per frame of an enhanced multi-frame image.

    Parameters
    ----------
    ds : pydicom.Dataset
        An image with the Multi-frame Functional Groups (``SharedFunctionalGroupsSequence``,
        ``PerFrameFunctionalGroupsSequence``).

    Returns
    -------
    list of pydicom.Dataset
        ``NumberOfFrames`` headers: the image's top-level attributes (without pixel data,
        functional groups and ``NumberOfFrames``) plus the frame's ``PixelSpacing``,
        ``SliceThickness``, ``ImagePositionPatient``, ``ImageOrientationPatient``,
        ``RescaleSlope``/``RescaleIntercept``/``RescaleType``, window and
        ``RealWorldValueMappingSequence`` (:data:`FRAME_GROUPS`, :data:`FRAME_ELEMENTS`), and
        for a legacy converted image the classic attributes its Unassigned Converted
        Attributes sequences keep (``ScanningSequence``, ``EchoTime``, ...).

    Notes
    -----
    A functional group in a frame's item of ``PerFrameFunctionalGroupsSequence`` overrides
    the same group in ``SharedFunctionalGroupsSequence`` (PS3.3 C.7.6.16). Every header keeps
    the image's ``SOPInstanceUID``: derived images reference the multi-frame instance.

    Examples
    --------
    >>> ds = Dataset()
    >>> ds.NumberOfFrames = 2
    >>> shared, measures = Dataset(), Dataset()
    >>> measures.PixelSpacing = [0.5, 0.5]
    >>> shared.PixelMeasuresSequence = [measures]
    >>> ds.SharedFunctionalGroupsSequence = [shared]
    >>> [[float(v) for v in h.PixelSpacing] for h in frame_headers(ds)]
    [[0.5, 0.5], [0.5, 0.5]]
    """
    shared_items = ds.get("SharedFunctionalGroupsSequence") or [Dataset()]
    shared = shared_items[0]
    per_frame = list(ds.get("PerFrameFunctionalGroupsSequence") or [])
    count = int(ds.get("NumberOfFrames") or len(per_frame) or 1)
    if per_frame and len(per_frame) != count:
        raise InputError(f"has {len(per_frame)} items for NumberOfFrames={count}",
                         path=getattr(ds, "filename", None), field="PerFrameFunctionalGroupsSequence")
    base = Dataset()
    for element in ds:
        if element.keyword not in (*_FUNCTIONAL_GROUPS, *_PIXEL_KEYWORDS, "NumberOfFrames"):
            base.add(copy.deepcopy(element))
    headers = []
    for k in range(count):
        header = copy.deepcopy(base)
        groups = per_frame[k] if per_frame else Dataset()
        for group, keywords in FRAME_GROUPS.items():
            item = _group_item(groups, shared, group)
            for keyword in keywords:
                if item is not None and keyword in item:
                    header[keyword] = copy.deepcopy(item[keyword])
        for keyword in FRAME_ELEMENTS:
            source = groups if keyword in groups else shared
            if keyword in source:
                header[keyword] = copy.deepcopy(source[keyword])
        for group in _UNASSIGNED:  # a legacy converted image's classic attributes (ScanningSequence, ...)
            item = _group_item(groups, shared, group)
            for element in item or ():
                if element.tag not in header and element.keyword != "DataSetTrailingPadding":
                    header.add(copy.deepcopy(element))
        header.filename = getattr(ds, "filename", None)
        headers.append(header)
    return headers


def _group_item(groups: Dataset, shared: Dataset, group: str) -> Dataset | None:
    """The one item of functional group ``group`` for a frame: its own, else the shared one."""
    for source in (groups, shared):
        items = source.get(group)
        if items:
            return items[0]
    return None


def _physical(stored: np.ndarray, header: Dataset) -> np.ndarray:
    """Physical values of stored pixels: a Parametric Map's Real World Value Mapping (slope
    and intercept), else the modality LUT."""
    mapping = _value_map(header)
    if mapping is not None and "RealWorldValueSlope" in mapping:
        return (stored * float(mapping.RealWorldValueSlope) +
                float(mapping.get("RealWorldValueIntercept") or 0.0)).astype(np.float32)
    return apply_modality_lut(stored, header).astype(np.float32)


def _value_map(header: Dataset) -> Dataset | None:
    """The first ``RealWorldValueMappingSequence`` item of a Parametric Map frame, else None."""
    if str(header.get("SOPClassUID", "")) != PARAMETRIC_MAP:
        return None
    items = header.get("RealWorldValueMappingSequence") or []
    return items[0] if items else None


def _sort_key(item) -> tuple:
    header = item[0]
    if "ImagePositionPatient" in header and "ImageOrientationPatient" in header:
        return (0, float(_position(header) @ _normal(_orientation(header))))
    return (1, int(header.get("InstanceNumber") or 0))


def _check_consistent(slices, path: Path) -> None:
    """Every slice has the first one's size, orientation and pixel spacing; the error names
    the first file that differs."""
    first, first_pixels = slices[0]
    first_file = Path(getattr(first, "filename", None) or path)
    for header, pixels in slices[1:]:
        file = Path(getattr(header, "filename", None) or path)
        if pixels.shape[1:] != first_pixels.shape[1:]:
            raise InputError(f"slice of size {pixels.shape[1:]} in a series of {first_pixels.shape[1:]} "
                             f"({first_file.name}): slices differ in size", path=file, field="Rows/Columns")
        if np.abs(_orientation(header) - _orientation(first)).max() > 1e-3:
            raise InputError(f"orientation {_orientation(header).round(4).tolist()} differs from "
                             f"{_orientation(first).round(4).tolist()} of {first_file.name}: slices differ in "
                             "orientation", path=file, field="ImageOrientationPatient")
        if not np.allclose(_pixel_spacing(header, file), _pixel_spacing(first, first_file), rtol=1e-4):
            raise InputError(f"pixel spacing {_pixel_spacing(header, file)} differs from "
                             f"{_pixel_spacing(first, first_file)} of {first_file.name}", path=file,
                             field="PixelSpacing")


def check_slice_spacing(volume: DicomVolume, *, rtol: float = 0.01, atol_mm: float = 0.01) -> float:
    r"""The slice spacing of a series whose slices are evenly spaced along its normal, in mm.

    Parameters
    ----------
    volume : DicomVolume
        Sorted along its normal (as :func:`read_dicom` returns it).
    rtol, atol_mm : float
        Tolerance on each gap, relative to the spacing and in mm.

    Returns
    -------
    float
        The spacing :math:`\Delta z`: the gap :math:`z_{k+1} - z_k` between neighbouring
        slices (:math:`z_k = \mathbf{p}_k\cdot\mathbf{n}`) that most gaps share (the
        smallest such on a tie), for one slice its ``SliceThickness``, else 1.

    Notes
    -----
    A volume (NIfTI affine, a derived series' positions) has one slice spacing: a gap off
    :math:`\Delta z` by more than :math:`\mathrm{atol} + \mathrm{rtol}\,\Delta z` (a
    missing or an extra slice) or two slices at one position (a duplicate) is an
    :class:`~reddiff.errors.InputError` naming the file after that gap.

    Examples
    --------
    >>> from pydicom.data import get_testdata_file
    >>> check_slice_spacing(read_dicom(get_testdata_file("CT_small.dcm")))
    5.0
    """
    if len(volume.positions) < 2:
        return volume.slice_spacing or 1.0
    gaps = np.diff(volume.slice_locations)
    near = np.abs(gaps[:, None] - gaps[None, :]) <= atol_mm + rtol * np.abs(gaps[None, :])
    shared = near.sum(0)
    reference = gaps[np.lexsort((gaps, -shared))[0]]  # most shared, then smallest
    spacing = float(np.median(gaps[np.abs(gaps - reference) <= atol_mm + rtol * abs(reference)]))
    for k, gap in enumerate(gaps):
        if gap <= atol_mm:
            raise InputError(f"is at the same position as {volume.files[k].name} (a duplicate slice?)",
                             path=volume.files[k + 1], field="ImagePositionPatient")
        if abs(gap - spacing) > atol_mm + rtol * spacing:
            raise InputError(f"is {gap:.4g} mm from {volume.files[k].name}, the other slices of the series "
                             f"{spacing:.4g} mm apart (a missing or an extra slice?): a volume needs even spacing",
                             path=volume.files[k + 1], field="ImagePositionPatient")
    return spacing


def _unit(header: Dataset) -> str:
    mapping = _value_map(header)
    if mapping is not None and mapping.get("MeasurementUnitsCodeSequence"):
        code = mapping.MeasurementUnitsCodeSequence[0]
        units = {value: name for name, (value, _) in UCUM.items()}
        return units.get(str(code.get("CodeValue", "")), str(code.get("CodeValue", "")) or "a.u.")
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
        raise InputError(f"expected numbers, got {value!r}", path=getattr(header, "filename", None),
                         field=keyword) from err
    if out.shape != np.shape(default) or not np.isfinite(out).all():
        raise InputError(f"expected {len(default)} finite numbers, got {value!r}",
                         path=getattr(header, "filename", None), field=keyword)
    return out


def _normal(orientation: np.ndarray) -> np.ndarray:
    n = np.cross(orientation[:3], orientation[3:])
    norm = np.linalg.norm(n)
    return n / norm if norm > 0 else np.array([0.0, 0.0, 1.0])


#: Header attributes copied from the source slice into derived images.
COPIED = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "PatientAge",
          "StudyInstanceUID", "StudyDate", "StudyTime", "StudyID", "AccessionNumber",
          "ReferringPhysicianName", "StudyDescription", "FrameOfReferenceUID",
          "PositionReferenceIndicator", "Modality", "Manufacturer", "BodyPartExamined", "Laterality",
          "SliceThickness", "SliceLocation", "InstanceNumber", "AcquisitionNumber",
          "PatientPosition", "KVP", "ScanningSequence", "SequenceVariant", "ScanOptions",
          "MRAcquisitionType", "EchoTime", "RepetitionTime", "EchoTrainLength", "InversionTime",
          "MagneticFieldStrength")

#: Type 2 attributes (present, possibly empty) of the modules derived images carry, by
#: ``Modality`` ("" for every image): written empty when the source lacks them, as
#: dciodvfy requires (``Laterality`` is Type 2C: empty, unknown, where the source does not
#: say, as an enhanced source says it per frame).
TYPE2 = {"": ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
              "ReferringPhysicianName", "StudyID", "AccessionNumber", "Manufacturer",
              "PositionReferenceIndicator", "SliceThickness", "InstanceNumber", "Laterality"),
         "CT": ("KVP", "AcquisitionNumber"),
         "MR": ("ScanOptions", "MRAcquisitionType", "EchoTime", "EchoTrainLength")}

#: UCUM codes of the units derived images are written in (``RealWorldValueMappingSequence``).
UCUM = {"HU": ("[hnsf'U]", "Hounsfield unit"), "a.u.": ("[arb'U]", "arbitrary unit")}

#: What each derived image is: ``ImageType`` value 4, and the words of its descriptions.
PRODUCTS = {"mean": ("MEAN", "posterior mean"), "std": ("STD", "standard deviation")}


def write_dicom(reconstruction: Reconstruction, reference: DicomVolume, out_dir, *,
                slice_index: int = 0, stem: str | None = None) -> dict[str, Path]:
    """Write a result's mean and std as two derived DICOM series next to their source.

    Parameters
    ----------
    reconstruction : Reconstruction
        A 2-D result in the reference's units (HU for CT; ``1/mm`` is converted).
    reference : DicomVolume
        The volume the measurement came from (patient, study, frame of reference).
    out_dir : str or os.PathLike
        Existing folder; files ``{stem}_mean.dcm`` and ``{stem}_std.dcm`` go there.
    slice_index : int
        Which slice of ``reference`` the result reconstructs (its geometry is reused).
    stem : str, optional
        File name stem; default: the source file's.

    Returns
    -------
    dict
        ``{"mean": path, "std": path}``.

    Notes
    -----
    The mean is a derived image of the source's own class (the classic one for an enhanced
    source, :data:`CLASSIC`): a new ``SeriesInstanceUID`` and ``SOPInstanceUID``, ``ImageType``
    ``DERIVED\\SECONDARY\\<source's value 3>\\MEAN``, a ``SeriesDescription`` saying what it
    is and in which unit, a ``SourceImageSequence`` pointing at the source slice, the
    source's patient, study and frame of reference (new UIDs where it has none), and the
    same plane: the field of view's corner is kept, so a result on a different grid gets
    spacing :math:`\\Delta' = \\Delta\\,N/N'`. The std is a Parametric Map
    (:func:`std_map`), which no viewer shows as anatomy.
    The Type 2 attributes of its IOD (:data:`TYPE2`) are present, empty where the source
    has none. Complex results store the magnitude of the mean and
    :math:`\\sqrt{\\sigma_{re}^2 + \\sigma_{im}^2}`.

    The mean's values are 16-bit integers. Where the source's IOD has a Modality LUT (CT,
    or a source slice with ``RescaleSlope``), it has ``RescaleSlope``
    :math:`m = (v_{max} - v_{min})/65535` and ``RescaleIntercept`` :math:`v_{min}`
    (quantisation error at most :math:`m/2`). The MR image IOD has no Modality LUT: there
    the mean is stored as :math:`v = m\\,s` and the factor :math:`m` is given by its
    ``RealWorldValueMappingSequence`` (with its UCUM unit and the label ``MEAN``);
    :func:`read_dicom` returns the stored :math:`s`. The std map's values are 32-bit floats,
    exact.

    Examples
    --------
    >>> import tempfile, torch
    >>> from pydicom.data import get_testdata_file
    >>> ref = read_dicom(get_testdata_file("CT_small.dcm"))
    >>> rec = Reconstruction.from_samples(torch.from_numpy(ref.array[None]).repeat(2, 1, 1, 1), units="HU")
    >>> out = write_dicom(rec, ref, tempfile.mkdtemp())
    >>> read_dicom(out["mean"]).array.shape
    (1, 128, 128)
    """
    if not 0 <= slice_index < len(reference.headers):
        raise InputError(f"slice_index must be in [0, {len(reference.headers)}), got {slice_index}",
                         field="slice_index")
    stem = stem or reference.files[slice_index].stem
    out_dir = Path(out_dir)
    images = _derived_values(reconstruction, reference.unit)
    identity = _identity(reference.headers[slice_index])
    pixels = _quantised({"mean": images["mean"]}, modality_lut=_has_modality_lut(reference.headers[slice_index]))
    mean = _derived_dataset(images["mean"], reference, slice_index, "mean", 1, reconstruction, pixels["mean"],
                            identity=identity)
    std = std_map(images["std"][None], reference, [slice_index], means=[mean], identity=identity)
    written: list[Path] = []
    try:
        for name, ds in (("mean", mean), ("std", std)):
            target = out_dir / f"{stem}_{name}.dcm"
            written.append(write_file(target, lambda tmp, ds=ds: ds.save_as(tmp, enforce_file_format=True)))
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        raise
    return dict(zip(images, written))


def write_dicom_series(volume: Reconstruction, series: DicomVolume, out_dir, *,
                       stem: str = "reconstruction") -> dict[str, Path]:
    r"""Write a reconstructed volume as two derived DICOM series, mean and std, one instance per slice.

    Parameters
    ----------
    volume : Reconstruction
        ``(slice, channel, y, x)`` result (:meth:`Reconstruction.stack`), in the series' units
        (HU for CT; ``1/mm`` is converted).
    series : DicomVolume
        One header per slice of ``volume``, in its order (pixels not needed: a
        :func:`header_only_volume` will do).
    out_dir : str or os.PathLike
        Existing folder; the series go into the new folders ``{stem}_mean`` and ``{stem}_std``,
        as ``0001.dcm``, ``0002.dcm``, ... in slice order.
    stem : str
        Folder name stem.

    Returns
    -------
    dict
        ``{"mean": folder, "std": folder}``.

    Notes
    -----
    Each mean instance is written as :func:`write_dicom` writes one image (derived from its
    source slice, same plane, field of view and units), and the instances share one new
    ``SeriesInstanceUID``, count ``InstanceNumber`` 1 to :math:`N` along the slice normal,
    and have ``SliceLocation`` :math:`\mathbf{p}_k\cdot\mathbf{n}` (the position of
    instance :math:`k` along the normal :math:`\mathbf{n}`, so the locations step by the
    slice spacing). The std is one multi-frame Parametric Map, ``{stem}_std/0001.dcm``,
    with a frame per slice (:func:`std_map`; frames in the order highdicom sorts them,
    each with its ``PlanePositionSequence`` and a reference to its source slice). Both
    keep the source's ``FrameOfReferenceUID`` (one new UID shared by both where the
    source has none). A failure removes both folders.

    Examples
    --------
    >>> import tempfile, torch
    >>> from pydicom.data import get_testdata_file
    >>> ref = read_dicom(get_testdata_file("CT_small.dcm"))
    >>> one = Reconstruction.from_samples(torch.from_numpy(ref.array[None]).repeat(2, 1, 1, 1), units="HU")
    >>> out = write_dicom_series(Reconstruction.stack([one]), ref, tempfile.mkdtemp())
    >>> sorted(p.name for p in out["mean"].iterdir()), sorted(p.name for p in out["std"].iterdir())
    (['0001.dcm'], ['0001.dcm'])
    """
    ds = volume.dataset
    if "slice" not in ds.dims or ds.sizes["slice"] != len(series.headers):
        raise InputError(f"expected a volume of {len(series.headers)} slices (one per header), got dimensions "
                         f"{dict(ds.sizes)}", field="slice")
    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        raise InputError("output folder does not exist", path=out_dir)
    uid = generate_uid()
    identity = _identity(series.headers[0])
    folders = {name: out_dir / f"{stem}_{name}" for name in PRODUCTS}
    try:
        for folder in folders.values():
            folder.mkdir()
        means, stds = [], []
        for k in range(ds.sizes["slice"]):
            part = Reconstruction(ds.isel(slice=k))
            images = _derived_values(part, series.unit)
            pixels = _quantised({"mean": images["mean"]}, modality_lut=_has_modality_lut(series.headers[k]))
            image = _derived_dataset(images["mean"], series, k, "mean", 1, part, pixels["mean"], series_uid=uid,
                                     identity=identity)
            image.InstanceNumber = k + 1
            image.SliceLocation = round(float(np.asarray(image.ImagePositionPatient, float) @ series.normal), 6)
            image.FrameOfReferenceUID = identity["FrameOfReferenceUID"]
            write_file(folders["mean"] / f"{k + 1:04d}.dcm",
                       lambda tmp, image=image: image.save_as(tmp, enforce_file_format=True))
            means.append(image)
            stds.append(images["std"])
        std = std_map(np.stack(stds), series, list(range(len(stds))), means=means, identity=identity)
        write_file(folders["std"] / "0001.dcm", lambda tmp: std.save_as(tmp, enforce_file_format=True))
    except BaseException:
        for folder in folders.values():
            shutil.rmtree(folder, ignore_errors=True)
        raise
    return folders


def series_affine(series: DicomVolume, shape, *, slice_spacing: float | None = None) -> np.ndarray:
    r"""The NIfTI affine (RAS+, mm) of a volume on a ``shape`` grid over the slices of ``series``.

    Parameters
    ----------
    series : DicomVolume
        One header per slice of the volume, in its order, evenly spaced (:func:`check_slice_spacing`).
    shape : (int, int)
        ``(rows, columns)`` of the volume's slices (the field of view is the series', corner kept).
    slice_spacing : float, optional
        Slice spacing in mm for a one-slice series (default its ``SliceThickness``, else 1).

    Returns
    -------
    numpy.ndarray
        ``(4, 4)``, mapping NIfTI voxel :math:`(i, j, k)` = (column, row, slice), as
        :func:`reddiff.datasets.write_nifti` stores an array, to RAS+ millimetres.

    Notes
    -----
    DICOM patient coordinates are LPS+: the centre of pixel (row :math:`j`, column
    :math:`i`) of slice :math:`k` lies at
    :math:`\mathbf{p}_0 + i\,\Delta x\,\mathbf{r} + j\,\Delta y\,\mathbf{c} + k\,\mathbf{s}`
    (``ImagePositionPatient`` :math:`\mathbf{p}_0` of the first slice on the volume's grid,
    row and column directions :math:`\mathbf{r}, \mathbf{c}`, slice step
    :math:`\mathbf{s} = (\mathbf{p}_{N-1} - \mathbf{p}_0)/(N-1)`, or :math:`\Delta z\,\mathbf{n}`
    for one slice); NIfTI's RAS+ flips the first two axes, :math:`A = \mathrm{diag}(-1, -1, 1)`.

    Examples
    --------
    >>> from pydicom.data import get_testdata_file
    >>> affine = series_affine(read_dicom(get_testdata_file("CT_small.dcm")), (128, 128))
    >>> affine[:3, :3].round(4).tolist()
    [[-0.6615, 0.0, 0.0], [0.0, -0.6615, 0.0], [0.0, 0.0, 5.0]]
    """
    (dy, dx), first = slice_grid(series, shape, slice_index=0)
    if len(series.positions) > 1:
        check_slice_spacing(series)
        step = (series.positions[-1] - series.positions[0]) / (len(series.positions) - 1)
    else:
        step = (slice_spacing or series.slice_spacing or 1.0) * series.normal
    lps = np.eye(4)
    lps[:3, 0], lps[:3, 1], lps[:3, 2] = dx * series.orientation[:3], dy * series.orientation[3:], step
    lps[:3, 3] = first
    return np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps


#: Attributes of each source slice kept beside a measurement made from a series (see
#: :func:`header_json`): those derived images copy or read (:data:`COPIED`, :data:`TYPE2`),
#: the slice's geometry and identity, and what tells its unit.
SERIES_KEYWORDS = tuple(dict.fromkeys(
    COPIED + tuple(k for keys in TYPE2.values() for k in keys) +
    ("SpecificCharacterSet", "SOPClassUID", "SOPInstanceUID", "SeriesInstanceUID", "SeriesNumber", "ImageType",
     "Rows", "Columns", "PixelSpacing", "ImagePositionPatient", "ImageOrientationPatient", "SpacingBetweenSlices",
     "RescaleSlope", "RescaleIntercept", "RescaleType", "Units")))


def header_json(header: Dataset) -> str:
    """The attributes of ``header`` that derived series need (:data:`SERIES_KEYWORDS`), as DICOM JSON.

    DICOM JSON is the standard's own text form (PS3.18 annex F), readable by any DICOM
    toolkit; pixel data and everything else of the header are left out.

    Examples
    --------
    >>> from pydicom.data import get_testdata_file
    >>> text = header_json(read_dicom(get_testdata_file("CT_small.dcm")).headers[0])
    >>> header_only_volume([text]).headers[0].Modality
    'CT'
    """
    kept = Dataset()
    for keyword in SERIES_KEYWORDS:
        if keyword in header:
            kept[keyword] = copy.deepcopy(header[keyword])
    return kept.to_json()


def header_only_volume(headers, *, positions=None, orientation=None, path=None) -> DicomVolume:
    """A :class:`DicomVolume` without pixels from :func:`header_json` texts, one per slice in order.

    Parameters
    ----------
    headers : sequence of str
        DICOM JSON of each slice.
    positions : array-like, optional
        ``(N, 3)`` ``ImagePositionPatient`` in mm; given, they replace the headers' own
        (and are written into them).
    orientation : array-like, optional
        ``(6,)`` ``ImageOrientationPatient``, likewise.
    path : str or os.PathLike, optional
        The file the headers were read from (named in errors; the volume's ``files`` and ``path``).

    Returns
    -------
    DicomVolume
        ``array`` is None; ``grid_shape`` comes from ``Rows``/``Columns``.

    Examples
    --------
    See :func:`header_json`.
    """
    path = Path(path) if path is not None else None
    datasets = []
    for k, text in enumerate(headers):
        try:
            datasets.append(Dataset.from_json(text.decode() if isinstance(text, bytes) else str(text)))
        except Exception as err:  # noqa: BLE001 - pydicom raises many types on bad JSON
            raise InputError(f"slice {k}: not a DICOM JSON header ({type(err).__name__}: {err})", path=path,
                             field="dicom_header") from err
    if not datasets:
        raise InputError("no slice headers", path=path, field="dicom_header")
    for k, ds in enumerate(datasets):
        if "Rows" not in ds or "Columns" not in ds:
            raise InputError(f"slice {k}: the header has no Rows/Columns", path=path, field="dicom_header")
        if positions is not None:
            ds.ImagePositionPatient = [float(v) for v in np.asarray(positions, dtype=np.float64)[k]]
        if orientation is not None:
            ds.ImageOrientationPatient = [float(v) for v in np.asarray(orientation, dtype=np.float64)]
    first = datasets[0]
    return DicomVolume(array=None, unit=_unit(first), modality=str(first.get("Modality", "")),
                       pixel_spacing=_pixel_spacing(first, path), positions=np.array([_position(h) for h in datasets]),
                       orientation=_orientation(first), headers=datasets, files=[path] * len(datasets), path=path)


def join_slices(volumes) -> DicomVolume:
    """The slices of several :class:`DicomVolume` (of one series, in order) as one, without pixels.

    Examples
    --------
    >>> from pydicom.data import get_testdata_file
    >>> one = read_dicom(get_testdata_file("CT_small.dcm"))
    >>> join_slices([one, one]).positions.shape
    (2, 3)
    """
    volumes = list(volumes)
    if not volumes:
        raise InputError("no slices to join", field="slices")
    first = volumes[0]
    for volume in volumes[1:]:
        if np.abs(volume.orientation - first.orientation).max() > 1e-3 or volume.grid_shape != first.grid_shape:
            raise InputError("slices of different orientation or size are not one volume", path=volume.path,
                             field="ImageOrientationPatient")
    return DicomVolume(array=None, unit=first.unit, modality=first.modality, pixel_spacing=first.pixel_spacing,
                       positions=np.concatenate([v.positions for v in volumes]), orientation=first.orientation,
                       headers=[h for v in volumes for h in v.headers], files=[f for v in volumes for f in v.files],
                       path=first.path)


#: Classic storage classes that single-frame derived images of an enhanced (multi-frame
#: functional group) source are written as: Enhanced and Legacy Converted Enhanced CT and MR.
CLASSIC = {"1.2.840.10008.5.1.4.1.1.2.1": "1.2.840.10008.5.1.4.1.1.2",
           "1.2.840.10008.5.1.4.1.1.2.2": "1.2.840.10008.5.1.4.1.1.2",
           "1.2.840.10008.5.1.4.1.1.4.1": "1.2.840.10008.5.1.4.1.1.4",
           "1.2.840.10008.5.1.4.1.1.4.4": "1.2.840.10008.5.1.4.1.1.4"}

#: What a std map's values are: SNOMED CT "Standard Deviation" (the code DICOM CID 7464 lists).
STD_QUANTITY = ("386136009", "SCT", "Standard Deviation")

#: Patient and study attributes highdicom reads from a Parametric Map's source image (Type 2
#: in the source's IOD; written empty where a source lacks them).
_MAP_SOURCE_KEYWORDS = ("PatientID", "PatientName", "PatientBirthDate", "PatientSex", "AccessionNumber",
                        "StudyID", "StudyDate", "StudyTime", "ReferringPhysicianName")


def _identity(source: Dataset) -> dict[str, str]:
    """The study and frame of reference UIDs derived images of ``source`` share: its own, or
    new ones where it has none (so the mean and the std map still share them)."""
    return {keyword: str(source.get(keyword) or generate_uid())
            for keyword in ("StudyInstanceUID", "FrameOfReferenceUID")}


def std_map(values: np.ndarray, reference: DicomVolume, slice_indices, *, means, identity: dict | None = None,
            series_uid: str | None = None) -> Dataset:
    r"""A standard deviation map as a DICOM Parametric Map, a frame per slice.

    Parameters
    ----------
    values : numpy.ndarray
        ``(N, H, W)`` standard deviations in ``reference.unit`` (finite).
    reference : DicomVolume
        The source the measurement came from (patient, study, geometry).
    slice_indices : sequence of int
        The slice of ``reference`` each frame lies in (``N`` of them).
    means : sequence of pydicom.Dataset
        The derived mean image of each slice: the source referenced where a source slice
        cannot be (no ``SOPClassUID``/``SOPInstanceUID``), or where the source slices are not
        of one series.
    identity : dict, optional
        ``StudyInstanceUID`` and ``FrameOfReferenceUID`` to use where the source has none.
    series_uid : str, optional
        ``SeriesInstanceUID`` (default new).

    Returns
    -------
    highdicom.pm.ParametricMap
        Parametric Map Storage (``Modality`` ``OT``, ``ImageType``
        ``DERIVED\PRIMARY\VOLUME\QUANTITY``), 32-bit float pixels equal to ``values``.

    Notes
    -----
    Its ``RealWorldValueMappingSequence`` (label ``STD``) maps the stored values to themselves
    (:math:`v = 1\cdot s + 0`) in the reference's unit (UCUM ``[hnsf'U]`` for HU,
    ``[arb'U]`` for arbitrary units), with the quantity SNOMED CT 386136009 "Standard
    Deviation" (:data:`STD_QUANTITY`), so a viewer can neither take it for anatomy nor for
    attenuation. Each frame has the plane, field of view and grid of its slice (as
    :func:`slice_grid` gives) and a ``DerivationImageSequence`` item referencing its source
    slice. The source is the DICOM slice the measurement was made or simulated from (a
    sinogram simulated from a series carries those headers, :func:`header_only_volume`); a
    source slice without SOP Class and Instance UIDs cannot be referenced, and there the map
    references the derived mean instead. The reconstruction's settings and seeds are not in
    the map (its IOD has no Image Comments): they are in the NetCDF result.

    Examples
    --------
    >>> from pydicom.data import get_testdata_file
    >>> ref = read_dicom(get_testdata_file("CT_small.dcm"))
    >>> pm = std_map(np.full((1, 64, 64), 3.0), ref, [0], means=[None])
    >>> pm.SOPClassUID.name, float(pm.pixel_array.max())
    ('Parametric Map Storage', 3.0)
    """
    import highdicom as hd
    from pydicom.sr.coding import Code

    values = np.asarray(values, dtype=np.float32)
    indices = [int(k) for k in slice_indices]
    if values.ndim != 3 or len(values) != len(indices) or not np.isfinite(values).all():
        raise InputError(f"expected finite (slices, rows, columns) std values, one slice per index, got shape "
                         f"{values.shape} for {len(indices)} slices", field="std")
    identity = identity or _identity(reference.headers[indices[0]])
    sources = _map_sources(reference, indices, means, identity)
    source = reference.headers[indices[0]]
    unit = reference.unit
    (dy, dx), _ = slice_grid(reference, values.shape[1:], slice_index=indices[0])
    positions = [slice_grid(reference, values.shape[1:], slice_index=k)[1] for k in indices]
    lo, hi = float(values.min()), float(values.max())
    code, meaning = UCUM.get(unit, (unit, unit))
    mapping = hd.pm.RealWorldValueMapping(
        lut_label="STD", lut_explanation=f"RED-Diff standard deviation in {unit}"[:64],
        unit=Code(code, "UCUM", meaning), value_range=(lo, hi), slope=1.0, intercept=0.0,
        quantity_definition=Code(*STD_QUANTITY))
    width = hi - lo if hi > lo else max(abs(hi), 1.0)
    window = hd.VOILUTTransformation(window_center=(lo + hi) / 2, window_width=width,
                                     voi_lut_function="LINEAR_EXACT")
    description = f"RED-Diff standard deviation in {unit} (uncertainty, not anatomy)"[:64]
    pm = hd.pm.ParametricMap(
        sources, values, series_uid or generate_uid(), int(source.get("SeriesNumber") or 0) + 2000,
        generate_uid(), 1, manufacturer="reddiff", manufacturer_model_name="RED-Diff",
        software_versions=_version(), device_serial_number="none",
        contains_recognizable_visual_features=str(source.get("RecognizableVisualFeatures", "")) == "YES",
        real_world_value_mappings=[mapping], voi_lut_transformations=[window], content_label="STD",
        content_description=description, series_description=description,
        pixel_measures=hd.PixelMeasuresSequence(pixel_spacing=(dy, dx), slice_thickness=_thickness(reference,
                                                                                                   indices[0])),
        plane_orientation=hd.PlaneOrientationSequence("PATIENT", [float(v) for v in reference.orientation]),
        plane_positions=[hd.PlanePositionSequence("PATIENT", [float(v) for v in p]) for p in positions])
    pm.Laterality = source.get("Laterality") or None  # General Series, Type 2C
    _restore_classes(pm, {str(h.SOPInstanceUID): str(h.SOPClassUID) for h in reference.headers
                          if str(h.get("SOPClassUID", "")) in CLASSIC})
    return pm


def _map_sources(reference: DicomVolume, indices, means, identity: dict) -> list[Dataset]:
    """The source images of a std map (:func:`std_map`), one per SOP instance, ready for
    highdicom: the source slices, or the derived means where those cannot be referenced or
    are not of one series (highdicom's condition)."""
    headers = [reference.headers[k] for k in indices]
    referable = all(h.get("SOPClassUID") and h.get("SOPInstanceUID") for h in headers)
    if all(m is not None for m in means) and not (referable and _one_series(headers)):
        headers = list(means)
    elif not referable:
        raise InputError("the source slice has no SOPClassUID/SOPInstanceUID to reference", path=reference.path,
                         field="SOPInstanceUID")
    return list({str(h.SOPInstanceUID): _map_source(h, identity, reference) for h in headers}.values())


def _one_series(headers) -> bool:
    return len({tuple(str(h.get(k, "")) for k in ("StudyInstanceUID", "SeriesInstanceUID", "Rows", "Columns",
                                                   "FrameOfReferenceUID")) for h in headers}) <= 1


def _map_source(header: Dataset, identity: dict, reference: DicomVolume) -> Dataset:
    """A copy of ``header`` with what highdicom reads from a source image present (empty
    patient/study attributes, the shared study and frame of reference UIDs where it has
    none, the pixel spacing), a frame of an enhanced image posing as a classic image (its
    class is put back in the references, :func:`_restore_classes`)."""
    source = copy.deepcopy(header)
    for keyword in _MAP_SOURCE_KEYWORDS:
        if keyword not in source:
            setattr(source, keyword, None)
    for keyword, uid in identity.items():
        if not source.get(keyword):
            setattr(source, keyword, uid)
    if not source.get("SeriesInstanceUID"):
        source.SeriesInstanceUID = generate_uid()
    source.PixelSpacing = [float(v) for v in reference.pixel_spacing]
    source.SliceThickness = source.get("SliceThickness") or None
    source.SOPClassUID = CLASSIC.get(str(source.SOPClassUID), source.SOPClassUID)
    return source


def _restore_classes(ds: Dataset, classes: dict[str, str]) -> None:
    """Set ``ReferencedSOPClassUID`` of every reference in ``ds`` to an instance in ``classes``
    (SOP Instance UID -> class) to that class."""
    for element in ds:
        if element.VR != "SQ":
            continue
        for item in element.value:
            uid = str(item.get("ReferencedSOPInstanceUID", ""))
            if uid in classes and "ReferencedSOPClassUID" in item:
                item.ReferencedSOPClassUID = classes[uid]
            _restore_classes(item, classes)


def _thickness(reference: DicomVolume, slice_index: int) -> float | None:
    """Slice thickness in mm: the source slice's ``SliceThickness``, else the slice spacing."""
    value = reference.headers[slice_index].get("SliceThickness")
    try:
        return float(value) if value not in (None, "") and float(value) > 0 else reference.slice_spacing
    except (TypeError, ValueError):
        return reference.slice_spacing


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"reddiff {version('reddiff')}"
    except PackageNotFoundError:
        return "reddiff"


def _derived_values(reconstruction: Reconstruction, unit: str) -> dict[str, np.ndarray]:
    ds = reconstruction.dataset
    mean, std = ds["mean"].values.astype(np.float64), ds["std"].values.astype(np.float64)
    mean = mean[0] if len(mean) == 1 else np.sqrt((mean ** 2).sum(0))
    std = np.sqrt((std ** 2).sum(0))
    rec_unit = ds["mean"].attrs.get("units", "")
    if unit == "HU" and rec_unit == "1/mm":
        from reddiff.operators.ct import MU_WATER, mu_to_hu

        mean, std = np.asarray(mu_to_hu(mean)), std * 1000.0 / MU_WATER
    elif rec_unit not in ("", unit):
        raise InputError(f"result is in {rec_unit!r}, the DICOM source in {unit!r}", field="units")
    if not (np.isfinite(mean).all() and np.isfinite(std).all()):
        raise InputError("result has NaN or infinite pixels", field="mean/std")
    return {"mean": mean, "std": std}


def _derived_dataset(values: np.ndarray, reference: DicomVolume, slice_index: int, name: str,
                     number: int, reconstruction: Reconstruction, pixels, *, series_uid: str | None = None,
                     identity: dict | None = None) -> Dataset:
    source = reference.headers[slice_index]
    ds = Dataset()
    for keyword in COPIED:
        if keyword in source:
            setattr(ds, keyword, copy.deepcopy(source[keyword].value))
    for keyword, uid in (identity or {}).items():
        if not ds.get(keyword):
            setattr(ds, keyword, uid)
    for keyword in TYPE2[""] + TYPE2.get(str(source.get("Modality", "")), ()):
        if keyword not in ds:
            setattr(ds, keyword, None)
    code, words = PRODUCTS[name]
    unit = reference.unit
    source_class = str(source.get("SOPClassUID", "1.2.840.10008.5.1.4.1.1.7"))
    ds.SOPClassUID = CLASSIC.get(source_class, source_class)
    ds.SOPInstanceUID = generate_uid()
    ds.SeriesInstanceUID = series_uid or generate_uid()
    ds.SeriesNumber = int(source.get("SeriesNumber") or 0) + 1000 * number
    ds.SeriesDescription = (f"RED-Diff {words} in {unit}" +
                            (" (uncertainty, not anatomy)" if name == "std" else ""))[:64]
    ds.ImageType = ["DERIVED", "SECONDARY", _image_type_3(source), code]
    ds.DerivationDescription = (f"RED-Diff {words} over "
                                f"{reconstruction.dataset.attrs.get('n_samples', '?')} samples, in {unit}")
    ds.ImageComments = json.dumps({"config": reconstruction.config, "seeds": reconstruction.seeds})[:10240]
    now = datetime.datetime.now()
    ds.ContentDate, ds.ContentTime = now.strftime("%Y%m%d"), now.strftime("%H%M%S")
    item = Dataset()
    item.ReferencedSOPClassUID = source_class
    item.ReferencedSOPInstanceUID = source.get("SOPInstanceUID", "")
    ds.SourceImageSequence = [item]
    _set_geometry(ds, reference, slice_index, values.shape)
    _set_pixels(ds, *pixels, unit=unit, name=name, modality_lut=_has_modality_lut(source))
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    return ds


def _image_type_3(source: Dataset) -> str:
    """``ImageType`` value 3 of the source (the plane: ``AXIAL`` for CT), else ``OTHER``."""
    values = source.get("ImageType") or []
    values = [values] if isinstance(values, str) else list(values)
    return str(values[2]) if len(values) > 2 and str(values[2]) else "OTHER"


def _has_modality_lut(source: Dataset) -> bool:
    """Whether derived images of ``source`` carry ``RescaleSlope``/``RescaleIntercept``: CT
    (Type 1 there) or a source that has them; the MR image IOD has no Modality LUT."""
    return source.get("Modality") == "CT" or "RescaleSlope" in source


def _quantised(images: dict[str, np.ndarray], *, modality_lut: bool) -> dict[str, tuple]:
    """Each image as ``(stored, slope, intercept)``: 16-bit integers :math:`s` with
    :math:`v \\approx m\\,s + b`. With a Modality LUT each image spans its own range
    (:math:`b = v_{min}`, unsigned); without, all share one slope and :math:`b = 0`
    (signed if any value is negative)."""
    if modality_lut:
        out = {}
        for name, values in images.items():
            lo, hi = float(values.min()), float(values.max())
            slope = (hi - lo) / 65535.0 if hi > lo else 1.0
            out[name] = (np.clip(np.rint((values - lo) / slope), 0, 65535).astype(np.uint16), slope, lo)
        return out
    signed = any(float(values.min()) < 0 for values in images.values())
    top = 32767 if signed else 65535
    peak = max(float(np.abs(values).max()) for values in images.values())
    slope = peak / top if peak > 0 else 1.0
    dtype = np.int16 if signed else np.uint16
    return {name: (np.clip(np.rint(values / slope), -top if signed else 0, top).astype(dtype), slope, 0.0)
            for name, values in images.items()}


def slice_grid(volume: DicomVolume, shape, *, slice_index: int = 0) -> tuple[tuple[float, float], np.ndarray]:
    """Pixel spacing ``(dy, dx)`` and position of pixel ``(0, 0)`` for a ``shape`` grid
    covering the same field of view as slice ``slice_index`` (corner kept fixed)."""
    source = volume.headers[slice_index]
    rows, cols = volume.grid_shape
    (dy, dx), orientation = volume.pixel_spacing, _orientation(source)
    new_dy, new_dx = dy * rows / shape[0], dx * cols / shape[1]
    row_dir, col_dir = orientation[:3], orientation[3:]  # along a row (x), down a column (y)
    corner = volume.positions[slice_index] - 0.5 * (dx * row_dir + dy * col_dir)
    return (new_dy, new_dx), corner + 0.5 * (new_dx * row_dir + new_dy * col_dir)


def _set_geometry(ds: Dataset, reference: DicomVolume, slice_index: int, shape) -> None:
    """Same plane and field of view as the source slice, on the result's grid."""
    (dy, dx), position = slice_grid(reference, shape, slice_index=slice_index)
    ds.ImagePositionPatient = [round(float(v), 6) for v in position]
    ds.ImageOrientationPatient = [float(v) for v in reference.orientation]
    ds.PixelSpacing = [round(dy, 8), round(dx, 8)]


def _set_pixels(ds: Dataset, stored: np.ndarray, slope: float, intercept: float, *, unit: str, name: str,
                modality_lut: bool) -> None:
    """Pixel data and how to read it: the Modality LUT if the IOD has one, a Real World Value
    Mapping always, and a window over the displayed values."""
    ds.Rows, ds.Columns = stored.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
    ds.PixelRepresentation = 1 if stored.dtype == np.int16 else 0
    shown = stored.astype(np.float64)
    if modality_lut:
        ds.RescaleSlope, ds.RescaleIntercept = f"{slope:.10g}"[:16], f"{intercept:.10g}"[:16]
        ds.RescaleType = unit if unit != "a.u." and name == "mean" else "US"
        slope, intercept = float(ds.RescaleSlope), float(ds.RescaleIntercept)  # as written, rounded
        shown = shown * slope + intercept
    ds.RealWorldValueMappingSequence = [_value_mapping(stored, slope, intercept, unit, name)]
    lo, hi = float(shown.min()), float(shown.max())
    ds.WindowCenter, ds.WindowWidth = f"{(lo + hi) / 2:.6g}", f"{max(hi - lo, 1.0):.6g}"
    ds.PixelData = stored.tobytes()


def _value_mapping(stored: np.ndarray, slope: float, intercept: float, unit: str, name: str) -> Dataset:
    """A ``RealWorldValueMappingSequence`` item: :math:`v = m\\,s + b` in ``unit``, labelled ``MEAN``/``STD``."""
    code, words = PRODUCTS[name]
    item = Dataset()
    if stored.dtype == np.int16:
        item.RealWorldValueFirstValueMapped, item.RealWorldValueLastValueMapped = -32768, 32767
    else:
        item.RealWorldValueFirstValueMapped, item.RealWorldValueLastValueMapped = 0, 65535
    item.RealWorldValueSlope, item.RealWorldValueIntercept = float(slope), float(intercept)
    item.LUTLabel = code
    item.LUTExplanation = f"RED-Diff {words} in {unit}"[:64]
    units = Dataset()
    units.CodeValue, units.CodeMeaning = UCUM.get(unit, (unit, unit))
    units.CodingSchemeDesignator = "UCUM"
    item.MeasurementUnitsCodeSequence = [units]
    return item
