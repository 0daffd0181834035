"""Attach a source file's physical geometry to a result (mm coordinates or a WCS)."""

from __future__ import annotations

import numpy as np

from reddiff.errors import InputError
from reddiff.result import Reconstruction, with_coords, with_wcs

from .dicom import DicomVolume, join_slices, series_affine, slice_grid
from .fastmri import MRIData
from .fits import SkyImage
from .sinogram import Sinogram


def with_geometry(reconstruction: Reconstruction, source, *, slice_index: int = 0) -> Reconstruction:
    """A copy of ``reconstruction`` carrying the physical geometry of ``source``.

    Parameters
    ----------
    reconstruction : Reconstruction
        A 2-D result; its grid may differ from the source's (the field of view is kept).
    source : DicomVolume, MRIData, SkyImage or Sinogram
        What the measurement was read from.
    slice_index : int
        The DICOM slice the result reconstructs.

    Returns
    -------
    Reconstruction
        ``y``/``x`` in mm for medical sources; a WCS (``attrs["wcs_header"]``, ``ra``/``dec``)
        for sky images; ``attrs["source_file"]`` names the source (provenance).

    Notes
    -----
    DICOM: pixel centres in the slice plane, :math:`x_j = \\mathbf{p}_0\\cdot\\mathbf{r} + j\\,\\Delta x`,
    :math:`y_i = \\mathbf{p}_0\\cdot\\mathbf{c} + i\\,\\Delta y` (``ImagePositionPatient``
    :math:`\\mathbf{p}_0`, row/column directions :math:`\\mathbf{r}, \\mathbf{c}`).
    fastMRI and sinograms: centred grids, :math:`x_j = (j - (W-1)/2)\\,\\Delta x`, with
    :math:`\\Delta` = field of view / size of the result (fastMRI: the field of view of the
    image grid, :attr:`MRIData.image_shape`, not of an oversampled readout); a sinogram
    measured from a DICOM series (``Sinogram.series``) gets that series' plane, as a DICOM source.

    Examples
    --------
    >>> import torch
    >>> from pydicom.data import get_testdata_file
    >>> from reddiff.datasets import read_dicom
    >>> ct = read_dicom(get_testdata_file("CT_small.dcm"))
    >>> rec = Reconstruction.from_samples(torch.zeros(2, 1, 64, 64))
    >>> rec = with_geometry(rec, ct)
    >>> round(float(rec.dataset["x"][1] - rec.dataset["x"][0]), 6)
    1.322936
    """
    located = _located(reconstruction, source, slice_index)
    if getattr(source, "path", None) is not None:
        located.dataset.attrs["source_file"] = str(source.path)
    return located


def _located(reconstruction: Reconstruction, source, slice_index: int) -> Reconstruction:
    shape = (reconstruction.dataset.sizes["y"], reconstruction.dataset.sizes["x"])
    if isinstance(source, Sinogram) and source.series is not None:
        source = source.series
    if isinstance(source, DicomVolume):
        spacing, position = slice_grid(source, shape, slice_index=slice_index)
        origin = (position @ source.orientation[3:], position @ source.orientation[:3])
        return with_coords(reconstruction, spacing=spacing, origin=origin)
    if isinstance(source, SkyImage):
        if source.wcs is None:
            raise InputError("the FITS image has no celestial WCS", path=source.path, field="WCS")
        if source.array.shape[-2:] != shape:
            raise InputError(f"result shape {shape} differs from the image's {source.array.shape[-2:]}",
                             path=source.path, field="shape")
        return with_wcs(reconstruction, source.wcs)
    if isinstance(source, MRIData):
        if source.header is None:
            raise InputError("the file has no ismrmrd_header (no field of view)", path=source.path,
                             field="ismrmrd_header")
        fov = np.multiply(source.pixel_spacing_mm, source.image_shape)  # the recon crop's, not the k-space grid's
        return _centred(reconstruction, fov, shape)
    if isinstance(source, Sinogram):
        return _centred(reconstruction, np.multiply(source.pixel_spacing_mm, source.image_shape), shape)
    raise InputError(f"expected a DicomVolume, MRIData, SkyImage or Sinogram, got {type(source).__name__}",
                     field="source")


def _centred(reconstruction: Reconstruction, fov, shape) -> Reconstruction:
    spacing = (fov[0] / shape[0], fov[1] / shape[1])
    origin = (-(shape[0] - 1) / 2 * spacing[0], -(shape[1] - 1) / 2 * spacing[1])
    return with_coords(reconstruction, spacing=spacing, origin=origin)


def slice_spacing_mm(source) -> float:
    """The distance between slices of ``source`` in mm: the slab thickness of a fastMRI
    header (encoded field of view along z), a DICOM series' slice spacing, a sinogram
    file's ``slice_spacing_mm`` (else its series'), else 1.

    Examples
    --------
    >>> slice_spacing_mm(None)
    1.0
    """
    if isinstance(source, MRIData) and source.header is not None:
        return float(source.header.encoded_fov_mm[2]) or 1.0
    if isinstance(source, Sinogram):
        if source.slice_spacing_mm:
            return float(source.slice_spacing_mm)
        source = source.series
    if isinstance(source, DicomVolume) and source.slice_spacing:
        return float(source.slice_spacing)
    return 1.0


def dicom_reference(source) -> DicomVolume | None:
    """The DICOM geometry and headers results of ``source`` are written back with: a
    :class:`DicomVolume` itself, a sinogram's ``series``, else None.

    Examples
    --------
    >>> dicom_reference(None) is None
    True
    """
    if isinstance(source, DicomVolume):
        return source
    if isinstance(source, Sinogram):
        return source.series
    return None


def volume_affine(sources, shape) -> np.ndarray | None:
    """The NIfTI affine (RAS+, mm) of a volume whose slices have these sources, where they lie
    in patient coordinates (each has a :func:`dicom_reference`); None otherwise.

    Parameters
    ----------
    sources : sequence
        The source of each slice of the volume, in order (one-slice DICOM references, e.g.
        the sinogram slices of a series).
    shape : (int, int)
        ``(rows, columns)`` of the volume's slices.

    Returns
    -------
    numpy.ndarray or None
        ``(4, 4)``, see :func:`reddiff.datasets.dicom.series_affine`.

    Examples
    --------
    >>> from pydicom.data import get_testdata_file
    >>> from reddiff.datasets import read_dicom
    >>> volume_affine([read_dicom(get_testdata_file("CT_small.dcm"))], (128, 128))[2, 2]
    np.float64(5.0)
    >>> volume_affine([None], (4, 4)) is None
    True
    """
    references = [dicom_reference(source) for source in sources]
    if not references or any(reference is None for reference in references):
        return None
    return series_affine(join_slices(references), shape, slice_spacing=slice_spacing_mm(sources[0]))
