"""CT sinogram files: reddiff's documented layout, in HDF5/NetCDF-4 or NumPy ``.npz``.

No common raw format exists for CT projection data, so reddiff reads and writes
this one (version 2; version 1 files, one slice without a series, read unchanged).
A file is NetCDF-4 (hence also plain HDF5, readable by h5py, xarray, MATLAB, ...) with:

Datasets
    ``sinogram`` (view, detector) or (slice, view, detector) float32
        The measurement of one slice or of a stack of slices (all with the same views,
        grid and noise), attribute ``units``: ``"counts"`` (photon counts per detector
        bin and view) or ``"1"`` (line integrals :math:`\\int \\mu\\,dl`, dimensionless).
    ``angles`` (view,) float64
        Source/projection angle of each view, attribute ``units = "rad"``.
    ``slice_position`` (slice, xyz) float64, optional
        DICOM ``ImagePositionPatient`` of each slice's image grid (centre of its first
        pixel, mm, patient coordinates LPS+), for a measurement made from a DICOM series;
        one row for a one-slice sinogram.
    ``dicom_header`` (slice,) string, optional
        With ``slice_position``: each source slice's header as DICOM JSON (PS3.18 annex F),
        only the attributes derived series need (:data:`reddiff.datasets.dicom.SERIES_KEYWORDS`:
        patient, study, frame of reference, series, plane), so results can be written back as
        DICOM series without the source files.

Root attributes
    ``reddiff_format = "sinogram"``, ``format_version = 1``
    ``geometry``: ``"parallel"`` or ``"fan"`` (flat detector).
    ``quantity``: ``"counts"`` or ``"line_integral"``.
    ``detector_spacing_mm``: centre-to-centre bin distance (at the detector for fan beam);
    detector bins are centred, bin :math:`j` sits at :math:`(j - (n-1)/2)\\,\\Delta_d`.
    ``pixel_spacing_mm``: pixel size of the image grid to reconstruct on.
    ``image_shape``: ``(H, W)`` of that grid (centred on the rotation axis).
    ``I0``: unattenuated counts per bin and view (required for counts, optional else).
    ``sigma``: noise standard deviation of the line integrals (optional).
    ``source_distance_mm``, ``detector_distance_mm``: source-to-isocentre and
    isocentre-to-detector distances (required for fan beam).
    ``slice_spacing_mm``: distance between neighbouring slices (optional).
    ``image_orientation``: six direction cosines, DICOM ``ImageOrientationPatient`` (with
    ``slice_position``).

A ``.npz`` file holds the same names as arrays (attributes as 0-d arrays, the headers as
a string array). ``slice_position`` and ``image_orientation`` are authoritative: they are
written into the headers when read.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from reddiff.errors import InputError
from reddiff.operators.base import check_memory

from ._io import input_file, reading, write_file

FORMAT_VERSION = 2
GEOMETRIES = ("parallel", "fan")
QUANTITIES = {"counts": "counts", "line_integral": "1"}
_OPTIONAL = ("I0", "sigma", "source_distance_mm", "detector_distance_mm", "slice_spacing_mm")
#: Datasets of the layout (the others are root attributes).
_DATASETS = ("sinogram", "angles", "slice_position", "dicom_header")
#: Fewest unattenuated photons per bin and view a counts file may declare: below one photon
#: (``I0 = 1e-30``, a normalised intensity) the Poisson data term means nothing.
MIN_I0 = 1.0
#: Largest median transmission :math:`I/I_0 = e^{-p}` accepted. An object only attenuates, so the
#: median is at most about 1; Poisson and Gaussian noise put single bins above 1, never the median
#: 50% higher (``I0`` in the wrong unit, or line integrals of the wrong sign).
MAX_MEDIAN_TRANSMISSION = 1.5


@dataclass(eq=False)
class Sinogram:
    """A CT measurement and its acquisition geometry (see the module docstring).

    Attributes
    ----------
    sinogram : numpy.ndarray
        ``(views, detectors)`` float32, counts or line integrals; ``(slices, views, detectors)``
        for a stack of slices.
    angles : numpy.ndarray
        ``(views,)`` float64, radians.
    geometry : {"parallel", "fan"}
    quantity : {"counts", "line_integral"}
    detector_spacing_mm, pixel_spacing_mm : float
    image_shape : (int, int)
    I0, sigma, source_distance_mm, detector_distance_mm, slice_spacing_mm : float or None
    path : pathlib.Path or None
        The file it was read from.
    series : reddiff.datasets.DicomVolume or None
        The DICOM series the slices were measured from, without pixels (one header per
        slice, :func:`reddiff.datasets.dicom.header_only_volume`): where each slice lies,
        and the source of derived DICOM series.

    Notes
    -----
    Data no scanner can produce is refused with :class:`~reddiff.errors.InputError` naming
    the field: a complex or non-numeric array (never silently cast to real), a non-finite
    value, negative counts, a sinogram that is zero everywhere, ``I0`` below
    :data:`MIN_I0` photons, and a median transmission
    :math:`\\operatorname{median}(I / I_0)` or :math:`\\operatorname{median}(e^{-p})` above
    :data:`MAX_MEDIAN_TRANSMISSION`. Single counts above ``I0`` and single negative line
    integrals are normal noise and accepted.
    """

    sinogram: np.ndarray
    angles: np.ndarray
    geometry: str
    quantity: str
    detector_spacing_mm: float
    pixel_spacing_mm: float
    image_shape: tuple[int, int]
    I0: float | None = None
    sigma: float | None = None
    source_distance_mm: float | None = None
    detector_distance_mm: float | None = None
    slice_spacing_mm: float | None = None
    path: Path | None = None
    series: object = None

    def __post_init__(self):
        self.sinogram = _real_array(self.sinogram, np.float32, "sinogram", self.path)
        self.angles = _real_array(self.angles, np.float64, "angles", self.path)
        self.image_shape = tuple(int(n) for n in self.image_shape)
        _validate(self)

    @property
    def attrs(self) -> dict:
        """The root attributes of the file layout."""
        attrs = {"reddiff_format": "sinogram", "format_version": FORMAT_VERSION,
                 "geometry": self.geometry, "quantity": self.quantity,
                 "detector_spacing_mm": self.detector_spacing_mm,
                 "pixel_spacing_mm": self.pixel_spacing_mm,
                 "image_shape": np.asarray(self.image_shape, dtype=np.int64)}
        attrs.update({k: getattr(self, k) for k in _OPTIONAL if getattr(self, k) is not None})
        if self.series is not None:
            attrs["image_orientation"] = np.asarray(self.series.orientation, dtype=np.float64)
        return attrs

    @property
    def n_slices(self) -> int:
        """How many slices the sinogram holds (1 for a ``(views, detectors)`` one)."""
        return self.sinogram.shape[0] if self.sinogram.ndim == 3 else 1

    def series_arrays(self) -> dict:
        """``slice_position`` and ``dicom_header`` of the layout (empty without a series)."""
        if self.series is None:
            return {}
        from .dicom import header_json

        return {"slice_position": np.asarray(self.series.positions, dtype=np.float64),
                "dicom_header": np.array([header_json(h) for h in self.series.headers], dtype=object)}


def write_sinogram(sinogram: Sinogram, path) -> Path:
    """Write a :class:`Sinogram` atomically: NetCDF-4/HDF5, or NumPy for a ``.npz`` name.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> s = Sinogram(np.ones((4, 6), np.float32), np.linspace(0, np.pi, 4, endpoint=False),
    ...              "parallel", "line_integral", 1.0, 1.0, (6, 6))
    >>> out = write_sinogram(s, os.path.join(tempfile.mkdtemp(), "s.nc"))
    >>> back = read_sinogram(out)
    >>> back.geometry, back.image_shape, bool((back.sinogram == s.sinogram).all())
    ('parallel', (6, 6), True)
    """
    path = Path(path)
    series = sinogram.series_arrays()
    if path.suffix.lower() == ".npz":
        arrays = {"sinogram": sinogram.sinogram, "angles": sinogram.angles,
                  **{k: np.asarray(v) for k, v in sinogram.attrs.items()},
                  **{k: v.astype(str) if v.dtype == object else v for k, v in series.items()}}

        def write(tmp):
            with open(tmp, "wb") as f:
                np.savez(f, **arrays)
    else:
        import xarray as xr

        dims = ("slice", "view", "detector")[-sinogram.sinogram.ndim:]
        ds = xr.Dataset({"sinogram": (dims, sinogram.sinogram), "angles": (("view",), sinogram.angles)},
                        attrs=sinogram.attrs)
        ds["sinogram"].attrs["units"] = QUANTITIES[sinogram.quantity]
        ds["angles"].attrs["units"] = "rad"
        if series:
            ds["slice_position"] = (("slice", "xyz"), series["slice_position"], {"units": "mm"})
            ds["dicom_header"] = (("slice",), series["dicom_header"])

        def write(tmp):
            ds.to_netcdf(tmp, engine="h5netcdf")
    return write_file(path, write)


def read_sinogram(path, *, slice_index: int | None = None) -> Sinogram:
    """Read a sinogram file in the layout of this module (HDF5/NetCDF-4 or ``.npz``).

    Parameters
    ----------
    path : str or os.PathLike
    slice_index : int, optional
        Read only this slice (of an HDF5 file, only its data are read): a
        ``(views, detectors)`` sinogram whose ``series`` holds that slice's header.
        Default: the whole file.

    Returns
    -------
    Sinogram

    Notes
    -----
    A missing required field, a wrong shape (``angles`` must have one entry per
    sinogram row), a complex or non-numeric array, a non-finite value or data no
    scanner can produce raise :class:`~reddiff.errors.InputError` naming the field
    (see :class:`Sinogram` for the physical checks).

    Examples
    --------
    See :func:`write_sinogram`.
    """
    path = input_file(path)
    from .detect import detect_format

    fmt = detect_format(path)
    if fmt not in ("hdf5", "numpy"):
        raise InputError(f"a sinogram file is HDF5/NetCDF or .npz, this is {fmt}", path=path)
    with reading(path, "sinogram file"):
        fields = _read_npz(path, slice_index) if fmt == "numpy" else _read_hdf5(path, slice_index)
    if _text(fields.get("reddiff_format", "sinogram")) != "sinogram":
        raise InputError(f"not a sinogram file (reddiff_format={fields['reddiff_format']!r})",
                         path=path, field="reddiff_format")
    if "format_version" in fields and _scalar(fields["format_version"], "format_version", path) > FORMAT_VERSION:
        raise InputError(f"format version {_text(fields['format_version'])} is newer than this reddiff reads "
                         f"({FORMAT_VERSION}); update reddiff", path=path, field="format_version")
    missing = [k for k in ("sinogram", "angles", "geometry", "quantity", "detector_spacing_mm",
                           "pixel_spacing_mm", "image_shape") if k not in fields]
    if missing:
        raise InputError(f"missing {', '.join(missing)} (see reddiff.datasets.sinogram)",
                         path=path, field=missing[0])
    return Sinogram(sinogram=fields["sinogram"], angles=fields["angles"],
                    geometry=_text(fields["geometry"]), quantity=_text(fields["quantity"]),
                    detector_spacing_mm=_scalar(fields["detector_spacing_mm"], "detector_spacing_mm", path),
                    pixel_spacing_mm=_scalar(fields["pixel_spacing_mm"], "pixel_spacing_mm", path),
                    image_shape=_shape(fields["image_shape"], path),
                    **{k: _scalar(fields[k], k, path) for k in _OPTIONAL if k in fields}, path=path,
                    series=_series(fields, path))


def count_slices(path) -> int:
    """How many slices a sinogram file holds, from its shape alone (no data are read).

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> s = Sinogram(np.ones((2, 4, 6), np.float32), np.linspace(0, np.pi, 4, endpoint=False),
    ...              "parallel", "line_integral", 1.0, 1.0, (6, 6))
    >>> count_slices(write_sinogram(s, os.path.join(tempfile.mkdtemp(), "s.h5")))
    2
    """
    path = input_file(path)
    from .detect import detect_format

    with reading(path, "sinogram file"):
        if detect_format(path) == "hdf5":
            import h5py

            with h5py.File(path, "r") as f:
                shape = f["sinogram"].shape if isinstance(f.get("sinogram"), h5py.Dataset) else None
        else:
            with np.load(path, allow_pickle=False) as data:
                shape = data["sinogram"].shape if "sinogram" in getattr(data, "files", ()) else None
    if shape is None or len(shape) not in (2, 3):
        raise InputError("no (views, detectors) or (slices, views, detectors) sinogram dataset", path=path,
                         field="sinogram")
    return int(shape[0]) if len(shape) == 3 else 1


def _read_hdf5(path: Path, slice_index: int | None) -> dict:
    import h5py

    with h5py.File(path, "r") as f:
        fields = {k: v for k, v in f.attrs.items()}
        for name in _DATASETS:
            if name in f:
                if not isinstance(f[name], h5py.Dataset):
                    raise InputError("expected a dataset", path=path, field=name)
                fields[name] = f[name]
        if slice_index is not None:
            _pick_slice(fields, slice_index, path)
        for name in _DATASETS:
            if isinstance(fields.get(name), h5py.Dataset):
                data = fields[name]
                check_memory(2 * 8 * data.size, f"a {name} of shape {data.shape}", field=name, path=path)
                fields[name] = data[()]
    return fields


def _read_npz(path: Path, slice_index: int | None) -> dict:
    with np.load(path, allow_pickle=False) as data:
        if isinstance(data, np.ndarray):
            raise InputError("a .npy holds one array; a sinogram needs a .npz with named fields", path=path)
        fields = {k: data[k] for k in data.files}
    if slice_index is not None:
        _pick_slice(fields, slice_index, path)
    return fields


def _pick_slice(fields: dict, k, path) -> None:
    """Keep slice ``k`` of the datasets in ``fields`` (arrays or h5py datasets, only that slice is read)."""
    sinogram = fields.get("sinogram")
    if sinogram is None:
        return
    n = sinogram.shape[0] if sinogram.ndim == 3 else 1
    if not (isinstance(k, (int, np.integer)) and 0 <= k < n):
        raise InputError(f"slice {k!r} is out of range: the file holds {n} slice(s)", path=path, field="slices")
    if sinogram.ndim == 3:
        check_memory(2 * 8 * int(np.prod(sinogram.shape[1:])), "a sinogram slice", field="sinogram", path=path)
        fields["sinogram"] = np.asarray(sinogram[k])
    for name in ("slice_position", "dicom_header"):
        if name in fields and len(fields[name].shape) >= 1 and fields[name].shape[0] == n:
            fields[name] = np.asarray(fields[name][k:k + 1])


def _series(fields: dict, path):
    """The header-only DICOM series of ``slice_position``/``dicom_header``, or None."""
    if "dicom_header" not in fields and "slice_position" not in fields:
        return None
    if "dicom_header" not in fields or "slice_position" not in fields or "image_orientation" not in fields:
        raise InputError("a series needs slice_position, dicom_header and image_orientation together",
                         path=path, field="dicom_header")
    from .dicom import header_only_volume

    positions = np.asarray(fields["slice_position"], dtype=np.float64)
    orientation = np.asarray(fields["image_orientation"], dtype=np.float64).ravel()
    headers = np.asarray(fields["dicom_header"]).ravel()
    if positions.shape != (len(headers), 3) or orientation.shape != (6,) or not np.isfinite(positions).all() \
            or not np.isfinite(orientation).all():
        raise InputError(f"expected (slices, 3) finite positions and 6 finite direction cosines for "
                         f"{len(headers)} header(s), got {positions.shape} and {orientation.shape}",
                         path=path, field="slice_position")
    return header_only_volume(list(headers), positions=positions, orientation=orientation, path=path)


def _text(value) -> str:
    value = np.asarray(value)
    value = value.item() if value.size == 1 else value
    return value.decode() if isinstance(value, bytes) else str(value)


def _scalar(value, name: str, path) -> float:
    try:
        return float(np.asarray(value, dtype=np.float64).item())
    except (TypeError, ValueError) as err:
        raise InputError(f"expected a number, got {value!r}", path=path, field=name) from err


def _shape(value, path) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in np.asarray(value).ravel())
    except (TypeError, ValueError, OverflowError) as err:
        raise InputError(f"expected two integers (H, W), got {value!r}", path=path, field="image_shape") from err
    return h, w


def _real_array(value, dtype, name: str, path) -> np.ndarray:
    """``value`` as a real ``dtype`` array; complex (never cast to its real part) or
    non-numeric data is an error naming the field."""
    array = np.asarray(value)
    if np.iscomplexobj(array):
        raise InputError(f"is complex ({array.dtype}); expected real values (counts or line integrals "
                         "for the sinogram, radians for the angles)", path=path, field=name)
    if array.dtype.kind not in "biuf":
        raise InputError(f"expected numbers, got dtype {array.dtype}", path=path, field=name)
    return array.astype(dtype)


def _validate(s: Sinogram) -> None:
    if s.sinogram.ndim not in (2, 3) or min(s.sinogram.shape) < 1:
        raise InputError(f"expected (views, detectors) or (slices, views, detectors), got shape {s.sinogram.shape}",
                         path=s.path, field="sinogram")
    if s.angles.shape != s.sinogram.shape[-2:-1]:
        raise InputError(f"expected one angle per view ({s.sinogram.shape[-2]}), got shape {s.angles.shape}",
                         path=s.path, field="angles")
    for name in ("sinogram", "angles"):
        if not np.isfinite(getattr(s, name)).all():
            raise InputError("has NaN or infinite values", path=s.path, field=name)
    if s.geometry not in GEOMETRIES:
        raise InputError(f"expected one of {GEOMETRIES}, got {s.geometry!r}", path=s.path, field="geometry")
    if s.quantity not in QUANTITIES:
        raise InputError(f"expected one of {tuple(QUANTITIES)}, got {s.quantity!r}", path=s.path, field="quantity")
    if min(s.image_shape) < 1:
        raise InputError(f"expected positive sizes, got {s.image_shape}", path=s.path, field="image_shape")
    required = ["detector_spacing_mm", "pixel_spacing_mm"]
    required += ["I0"] if s.quantity == "counts" else []
    required += ["source_distance_mm", "detector_distance_mm"] if s.geometry == "fan" else []
    for name in required:
        value = getattr(s, name)
        if value is None or not (np.isfinite(value) and value > 0):
            raise InputError(f"expected a positive number, got {value!r}", path=s.path, field=name)
    for name in _OPTIONAL:
        value = getattr(s, name)
        if value is not None and not (np.isfinite(value) and value >= 0):
            raise InputError(f"expected a non-negative number, got {value!r}", path=s.path, field=name)
    if s.quantity == "counts" and s.sinogram.min() < 0:
        raise InputError("counts must be non-negative", path=s.path, field="sinogram")
    if s.quantity == "counts" and s.I0 < MIN_I0:
        raise InputError(f"I0 = {s.I0:g} is below {MIN_I0:g} photon per detector bin and view; I0 is the "
                         "unattenuated photon count, in the unit of the counts", path=s.path, field="I0")
    if s.slice_spacing_mm is not None and not s.slice_spacing_mm > 0:
        raise InputError(f"expected a positive number, got {s.slice_spacing_mm!r}", path=s.path,
                         field="slice_spacing_mm")
    stack = s.sinogram if s.sinogram.ndim == 3 else s.sinogram[None]
    for k, sinogram in enumerate(stack):
        _check_physical(s, sinogram, f"slice {k}: " if len(stack) > 1 else "")
    if s.series is not None:
        _check_series(s)


def _check_physical(s: Sinogram, sinogram: np.ndarray, where: str) -> None:
    """Refuse what no scanner measures (see the Notes of :class:`Sinogram`); ``where`` names the slice."""
    what = "counts" if s.quantity == "counts" else "line integrals"
    if not sinogram.any():
        raise InputError(f"{where}all {what} are zero: an empty or unwritten measurement", path=s.path,
                         field="sinogram")
    median = float(np.median(sinogram))
    if s.quantity == "counts" and median > MAX_MEDIAN_TRANSMISSION * s.I0:
        raise InputError(f"{where}median count {median:.4g} is {median / s.I0:.3g} x I0 = {s.I0:.4g}; counts cannot "
                         f"exceed the unattenuated I0 beyond noise (median over {MAX_MEDIAN_TRANSMISSION:g} x I0): "
                         "check I0 and the counts' unit", path=s.path, field="sinogram")
    if s.quantity == "line_integral" and median < -np.log(MAX_MEDIAN_TRANSMISSION):
        raise InputError(f"{where}median line integral is {median:.4g}, below -ln {MAX_MEDIAN_TRANSMISSION:g}; line "
                         "integrals -log(I/I0) are non-negative up to noise: check the sign",
                         path=s.path, field="sinogram")


def _check_series(s: Sinogram) -> None:
    """The series has one header per slice and the image grid's size and pixel spacing."""
    series = s.series
    if len(series.headers) != s.n_slices or len(series.positions) != s.n_slices:
        raise InputError(f"{len(series.headers)} slice header(s) for {s.n_slices} slice(s)", path=s.path,
                         field="dicom_header")
    if tuple(series.grid_shape) != tuple(s.image_shape):
        raise InputError(f"the series' slices are {series.grid_shape} pixels, the image grid {s.image_shape}",
                         path=s.path, field="image_shape")
    if not np.allclose(series.pixel_spacing, s.pixel_spacing_mm, rtol=1e-3):
        raise InputError(f"the series' pixel spacing is {series.pixel_spacing} mm, the image grid's "
                         f"{s.pixel_spacing_mm:g} mm", path=s.path, field="pixel_spacing_mm")
