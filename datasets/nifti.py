"""NIfTI volumes of results, the format neuroimaging tools open first (via nibabel)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from reddiff.errors import InputError

from ._io import write_file


def write_nifti(volume, path, *, spacing_mm=(1.0, 1.0, 1.0), affine=None, description: str = "") -> Path:
    r"""Write a ``(slices, H, W)`` volume as a NIfTI-1 file (``.nii`` or ``.nii.gz``), atomically.

    Parameters
    ----------
    volume : array-like
        ``(slices, H, W)`` (or ``(H, W)``) real values.
    path : str or os.PathLike
    spacing_mm : (float, float, float)
        ``(dz, dy, dx)``: slice spacing and pixel spacing in mm.
    affine : array-like, optional
        ``(4, 4)`` voxel-to-RAS+ affine in mm, where the volume lies in patient coordinates
        (:func:`reddiff.datasets.volume_affine`); it replaces the centred one of
        ``spacing_mm`` and is stored as the scanner-anatomical sform and qform.
    description : str
        Stored in the header's ``descrip`` field (80 characters at most).

    Returns
    -------
    pathlib.Path

    Notes
    -----
    Array index :math:`(k, i, j)` (slice, row, column) is stored as NIfTI voxel
    :math:`(j, i, k)` with the affine :math:`\mathrm{diag}(\Delta x, \Delta y, \Delta z, 1)`,
    the volume centred on the origin (or with ``affine``), and ``xyzt_units`` millimetres.

    Examples
    --------
    >>> import tempfile, os, nibabel as nib
    >>> path = write_nifti(np.zeros((3, 4, 5)), os.path.join(tempfile.mkdtemp(), "v.nii.gz"),
    ...                    spacing_mm=(2.0, 0.5, 0.5))
    >>> image = nib.load(path)
    >>> image.shape, [float(v) for v in image.header.get_zooms()]
    ((5, 4, 3), [0.5, 0.5, 2.0])
    """
    import nibabel as nib

    array = np.asarray(volume, dtype=np.float32)
    if array.ndim == 2:
        array = array[None]
    if array.ndim != 3 or not np.isfinite(array).all():
        raise InputError(f"expected a finite (slices, H, W) volume, got shape {array.shape}", path=path)
    dz, dy, dx = (float(s) for s in spacing_mm)
    data = np.ascontiguousarray(array.transpose(2, 1, 0))  # (x, y, z)
    if affine is None:
        placed = np.diag([dx, dy, dz, 1.0])
        placed[:3, 3] = -(np.array(data.shape) - 1) / 2 * np.array([dx, dy, dz])
        image = nib.Nifti1Image(data, placed)
    else:
        placed = np.asarray(affine, dtype=np.float64)
        if placed.shape != (4, 4) or not np.isfinite(placed).all() or abs(np.linalg.det(placed[:3, :3])) == 0:
            raise InputError(f"expected a finite invertible (4, 4) affine, got {placed.tolist()}", path=path,
                             field="affine")
        image = nib.Nifti1Image(data, placed)
        image.set_sform(placed, code="scanner")
        image.set_qform(placed, code="scanner")
    image.header.set_xyzt_units("mm")
    image.header["descrip"] = description.encode()[:79]
    suffix = ".nii.gz" if str(path).endswith(".nii.gz") else ".nii"

    def write(tmp):  # nibabel picks the format and compression from the name
        named = Path(str(tmp) + suffix)
        nib.save(image, named)
        named.replace(tmp)

    return write_file(path, write)
