"""What a file is, what it holds, and reading it as a measurement (for ``reddiff info``)."""

from __future__ import annotations

from reddiff.errors import InputError

from ._io import input_file, reading
from .detect import detect_format

KINDS = ("fastmri", "sinogram", "result", "fits", "dicom", "image")


def file_kind(path) -> str:
    """What a file holds, one of :data:`KINDS`.

    ``fastmri`` (HDF5 with ``kspace``), ``sinogram`` (reddiff's sinogram layout),
    ``result`` (a reconstruction's NetCDF: ``mean`` and ``std``), ``fits``, ``dicom``,
    or ``image`` (anything else :func:`~reddiff.datasets.read_image` reads).

    Examples
    --------
    >>> from reddiff.datasets import sample_path
    >>> file_kind(sample_path("m13")), file_kind(sample_path("shepp_logan"))
    ('fits', 'image')
    """
    path = input_file(path, folder_ok=True)
    fmt = detect_format(path)
    if fmt == "hdf5":
        return _hdf5_kind(path)
    if fmt == "numpy" and path.suffix.lower() == ".npz":
        import numpy as np

        with reading(path, "NumPy file"), np.load(path, allow_pickle=False) as data:
            return "sinogram" if {"sinogram", "angles"} <= set(data.files) else "image"
    return fmt if fmt in ("fits", "dicom") else "image"


def _hdf5_kind(path) -> str:
    import h5py

    with reading(path, "HDF5 file"), h5py.File(path, "r") as f:
        if "kspace" in f:
            return "fastmri"
        if f.attrs.get("reddiff_format") in ("sinogram", b"sinogram") or {"sinogram", "angles"} <= set(f):
            return "sinogram"
        if {"reconstruction_mean", "reconstruction_std"} <= set(f) or {"mean", "std"} <= set(f):  # or older
            return "result"
    return "image"


def read_measurement(path, **options):
    """Read a measurement file as the right dataclass for its modality.

    Parameters
    ----------
    path : str or os.PathLike
    **options
        Passed to the reader (e.g. ``slices=``, ``acceleration=``, ``seed=`` for fastMRI;
        ``hdu=`` for FITS).

    Returns
    -------
    MRIData, Sinogram or SkyImage
        From :func:`read_fastmri`, :func:`read_sinogram` or :func:`read_fits`.

    Examples
    --------
    >>> from reddiff.datasets import sample_path
    >>> type(read_measurement(sample_path("star_field"))).__name__
    'SkyImage'
    """
    from .fastmri import read_fastmri
    from .fits import read_fits
    from .sinogram import read_sinogram

    kind = file_kind(path)
    readers = {"fastmri": read_fastmri, "sinogram": read_sinogram, "fits": read_fits}
    if kind not in readers:
        raise InputError(f"holds a {kind}, not a measurement (fastMRI k-space, sinogram or FITS); "
                         "make a measurement from an image with the simulate writers", path=path)
    try:
        return readers[kind](path, **options)
    except TypeError as err:  # an option the reader does not take
        raise InputError(f"{err}", path=path, field="options") from err


def describe(path) -> str:
    """A few lines saying what a file holds: kind, shapes, units, geometry, metadata.

    Examples
    --------
    >>> from pydicom.data import get_testdata_file
    >>> print(describe(get_testdata_file("CT_small.dcm")).splitlines()[0])
    DICOM CT: 1 slice of 128x128, HU, pixel spacing 0.661x0.661 mm
    """
    kind = file_kind(path)
    return "\n".join(_DESCRIBE[kind](path))


def _describe_fastmri(path):
    from .fastmri import read_fastmri

    data = read_fastmri(path, slices=0)
    s, c, h, w = data.kspace.shape
    lines = [f"fastMRI {'multi' if data.multicoil else 'single'}-coil k-space: {data.n_slices} slices, "
             f"{c} coil{'s' if c > 1 else ''}, {h}x{w} (readout x phase encode)",
             "fully sampled" if data.mask is None else
             f"undersampled: {int(data.mask.sum())}/{w} lines (x{w / data.mask.sum():.1f})"]
    if data.target is not None:
        lines.append(f"reference {data.target_name}: {data.target.shape[1]}x{data.target.shape[2]}")
    if data.header is not None:
        fov = data.header.encoded_fov_mm
        dy, dx = data.pixel_spacing_mm
        lines.append(f"field of view {fov[0]:g}x{fov[1]:g} mm, pixels {dy:.3g}x{dx:.3g} mm, "
                     f"recon matrix {data.header.crop_shape[0]}x{data.header.crop_shape[1]}")
    lines += [f"{k} = {v}" for k, v in data.attrs.items()]
    return lines


def _describe_sinogram(path):
    from .sinogram import read_sinogram

    s = read_sinogram(path)
    views, detectors = s.sinogram.shape[-2:]
    slices = f"{s.n_slices} slices of " if s.sinogram.ndim == 3 else ""
    lines = [f"CT sinogram ({s.geometry} beam, {s.quantity}): {slices}{views} views x "
             f"{detectors} detectors of {s.detector_spacing_mm:g} mm",
             f"angles {s.angles.min():.3g} to {s.angles.max():.3g} rad",
             f"image grid {s.image_shape[0]}x{s.image_shape[1]} of {s.pixel_spacing_mm:g} mm"]
    if s.slice_spacing_mm is not None:
        lines.append(f"slice spacing {s.slice_spacing_mm:g} mm")
    if s.series is not None:
        lines.append(f"from DICOM series {s.series.headers[0].get('SeriesInstanceUID', '?')} "
                     f"({s.series.modality}, first slice at {s.series.positions[0].round(3).tolist()} mm)")
    lines += [f"{k} = {getattr(s, k):g}" for k in ("I0", "sigma", "source_distance_mm", "detector_distance_mm")
              if getattr(s, k) is not None]
    return lines


def _describe_fits(path):
    from .fits import read_fits

    sky = read_fits(path)
    shape = "x".join(str(n) for n in sky.array.shape)
    lines = [f"FITS image (HDU {sky.hdu}): {shape}, {sky.unit}",
             f"blank/NaN pixels: {int((~sky.valid).sum())}",
             f"WCS: {' '.join(sky.wcs.wcs.ctype)}" if sky.wcs is not None else "WCS: none"]
    lines += [f"{name} = {value:g}" for name, value in
              (("gain", sky.gain), ("read noise", sky.read_noise), ("exposure", sky.exposure)) if value is not None]
    for key in ("TELESCOP", "INSTRUME", "OBJECT", "FILTER", "DATE-OBS"):
        if key in sky.header:
            lines.append(f"{key} = {_card_text(sky.header, key)}")
    return lines


def _card_text(header, key: str) -> str:
    """A header card's value as text, or a note that the card cannot be parsed (a damaged file)."""
    from astropy.io.fits.verify import VerifyError

    try:
        return str(header[key])
    except (VerifyError, ValueError):
        return "(unparsable card)"


def _describe_dicom(path):
    from .dicom import read_dicom

    vol = read_dicom(path)
    n, h, w = vol.array.shape
    dy, dx = vol.pixel_spacing
    first = vol.headers[0]
    lines = [f"DICOM {vol.modality}: {n} slice{'s' if n > 1 else ''} of {h}x{w}, {vol.unit}, "
             f"pixel spacing {dy:.3g}x{dx:.3g} mm",
             f"values {vol.array.min():g} to {vol.array.max():g}"]
    if n > 1:
        lines.append(f"slice spacing {vol.slice_spacing:.3g} mm")
    lines += [f"{k} = {first.get(k)}" for k in ("SeriesDescription", "BodyPartExamined", "SeriesInstanceUID")
              if first.get(k)]
    lines.append(f"transfer syntax: {first.file_meta.TransferSyntaxUID.name}" if "TransferSyntaxUID"
                 in getattr(first, "file_meta", {}) else "transfer syntax: unknown")
    return lines


def _describe_result(path):
    from reddiff.result import Reconstruction

    ds = Reconstruction.from_netcdf(path).dataset
    return [f"reddiff result: {', '.join(ds.data_vars)}",
            f"image {ds.sizes['y']}x{ds.sizes['x']}, channels {list(ds['channel'].values)}, "
            f"units {ds['mean'].attrs.get('units', '')!r}, coordinates in {ds['x'].attrs.get('units', '')}",
            f"samples: {ds.attrs.get('n_samples', '?')}"]


def _describe_image(path):
    from .images import read_image

    image = read_image(path)
    shape = "x".join(str(n) for n in image.array.shape)
    return [f"image ({detect_format(path)}): {shape}, {image.unit}, "
            f"values {image.array.min():g} to {image.array.max():g}"]


_DESCRIBE = {"fastmri": _describe_fastmri, "sinogram": _describe_sinogram, "fits": _describe_fits,
             "dicom": _describe_dicom, "result": _describe_result, "image": _describe_image}
