"""CT sinogram files: reddiff's documented layout, in HDF5/NetCDF-4 or NumPy ``.npz``.

No common raw format exists for CT projection data, so reddiff reads and writes
this one (version 1). A file is NetCDF-4 (hence also plain HDF5, readable by h5py,
xarray, MATLAB, ...) with:

Datasets
    ``sinogram`` (view, detector) float32
        The measurement, attribute ``units``: ``"counts"`` (photon counts per detector
        bin and view) or ``"1"`` (line integrals :math:`\\int \\mu\\,dl`, dimensionless).
    ``angles`` (view,) float64
        Source/projection angle of each view, attribute ``units = "rad"``.

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

A ``.npz`` file holds the same names as arrays (attributes as 0-d arrays).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from reddiff.errors import InputError
from reddiff.operators.base import check_memory

from ._io import input_file, reading, write_file

FORMAT_VERSION = 1
GEOMETRIES = ("parallel", "fan")
QUANTITIES = {"counts": "counts", "line_integral": "1"}
_OPTIONAL = ("I0", "sigma", "source_distance_mm", "detector_distance_mm")
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
        ``(views, detectors)`` float32, counts or line integrals.
    angles : numpy.ndarray
        ``(views,)`` float64, radians.
    geometry : {"parallel", "fan"}
    quantity : {"counts", "line_integral"}
    detector_spacing_mm, pixel_spacing_mm : float
    image_shape : (int, int)
    I0, sigma, source_distance_mm, detector_distance_mm : float or None
    path : pathlib.Path or None
        The file it was read from.

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
    path: Path | None = None

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
        return attrs


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
    if path.suffix.lower() == ".npz":
        arrays = {"sinogram": sinogram.sinogram, "angles": sinogram.angles,
                  **{k: np.asarray(v) for k, v in sinogram.attrs.items()}}

        def write(tmp):
            with open(tmp, "wb") as f:
                np.savez(f, **arrays)
    else:
        import xarray as xr

        ds = xr.Dataset({"sinogram": (("view", "detector"), sinogram.sinogram),
                         "angles": (("view",), sinogram.angles)}, attrs=sinogram.attrs)
        ds["sinogram"].attrs["units"] = QUANTITIES[sinogram.quantity]
        ds["angles"].attrs["units"] = "rad"

        def write(tmp):
            ds.to_netcdf(tmp, engine="h5netcdf")
    return write_file(path, write)


def read_sinogram(path) -> Sinogram:
    """Read a sinogram file in the layout of this module (HDF5/NetCDF-4 or ``.npz``).

    Parameters
    ----------
    path : str or os.PathLike

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
        fields = _read_npz(path) if fmt == "numpy" else _read_hdf5(path)
    if fields.get("reddiff_format", "sinogram") != "sinogram":
        raise InputError(f"not a sinogram file (reddiff_format={fields['reddiff_format']!r})",
                         path=path, field="reddiff_format")
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
                    **{k: _scalar(fields[k], k, path) for k in _OPTIONAL if k in fields}, path=path)


def _read_hdf5(path: Path) -> dict:
    import h5py

    with h5py.File(path, "r") as f:
        fields = {k: v for k, v in f.attrs.items()}
        for name in ("sinogram", "angles"):
            if name in f:
                if not isinstance(f[name], h5py.Dataset):
                    raise InputError("expected a dataset", path=path, field=name)
                check_memory(2 * 8 * f[name].size, f"a {name} of shape {f[name].shape}", field=name, path=path)
                fields[name] = f[name][()]
    return fields


def _read_npz(path: Path) -> dict:
    with np.load(path, allow_pickle=False) as data:
        if isinstance(data, np.ndarray):
            raise InputError("a .npy holds one array; a sinogram needs a .npz with named fields", path=path)
        return {k: data[k] for k in data.files}


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
    if s.sinogram.ndim != 2 or min(s.sinogram.shape) < 1:
        raise InputError(f"expected (views, detectors), got shape {s.sinogram.shape}", path=s.path, field="sinogram")
    if s.angles.shape != s.sinogram.shape[:1]:
        raise InputError(f"expected one angle per view ({s.sinogram.shape[0]}), got shape {s.angles.shape}",
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
    _check_physical(s)


def _check_physical(s: Sinogram) -> None:
    """Refuse what no scanner measures (see the Notes of :class:`Sinogram`)."""
    what = "counts" if s.quantity == "counts" else "line integrals"
    if not s.sinogram.any():
        raise InputError(f"all {what} are zero: an empty or unwritten measurement", path=s.path, field="sinogram")
    if s.quantity == "counts" and s.I0 < MIN_I0:
        raise InputError(f"I0 = {s.I0:g} is below {MIN_I0:g} photon per detector bin and view; I0 is the "
                         "unattenuated photon count, in the unit of the counts", path=s.path, field="I0")
    median = float(np.median(s.sinogram))
    if s.quantity == "counts" and median > MAX_MEDIAN_TRANSMISSION * s.I0:
        raise InputError(f"median count {median:.4g} is {median / s.I0:.3g} x I0 = {s.I0:.4g}; counts cannot "
                         f"exceed the unattenuated I0 beyond noise (median over {MAX_MEDIAN_TRANSMISSION:g} x I0): "
                         "check I0 and the counts' unit", path=s.path, field="sinogram")
    if s.quantity == "line_integral" and median < -np.log(MAX_MEDIAN_TRANSMISSION):
        raise InputError(f"median line integral is {median:.4g}, below -ln {MAX_MEDIAN_TRANSMISSION:g}; line "
                         "integrals -log(I/I0) are non-negative up to noise: check the sign",
                         path=s.path, field="sinogram")
