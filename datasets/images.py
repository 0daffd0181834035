"""Read an image of any supported format as a float32 array with its unit.

This is the one entry point for "give me the pixels" (prior training, demos,
simulation inputs); the format modules keep the full metadata.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from reddiff.errors import InputError

from ._io import image_stack, input_file, reading, real_float32
from .detect import detect_format

#: ITU-R BT.709 luma weights, used to turn colour rasters into one channel.
LUMA = np.array([0.2125, 0.7154, 0.0721], dtype=np.float32)


@dataclass
class ImageData:
    """Pixels of an image file.

    Attributes
    ----------
    array : numpy.ndarray
        float32, ``(H, W)`` for an image, ``(N, H, W)`` for a volume or stack
        (NIfTI volumes as axial slices, anterior up, patient right on the right).
    unit : str
        ``"HU"`` for CT DICOM, ``BUNIT`` for FITS, a ``units`` attribute for HDF5,
        else ``"a.u."`` (the file's own intensity scale).
    spacing : tuple of float or None
        Pixel spacing in mm per axis of ``array`` where the file says (DICOM, NIfTI).
    modality : str
        ``"CT"``, ``"MR"``, ... from DICOM; ``"sky"`` for FITS; else ``""``.
    path : pathlib.Path
    """

    array: np.ndarray
    unit: str
    spacing: tuple[float, ...] | None
    modality: str
    path: Path


def read_image(path, *, dataset: str | None = None) -> ImageData:
    """Read the pixels of a PNG/TIFF/JPEG, NumPy, DICOM, FITS, NIfTI or HDF5 file.

    Parameters
    ----------
    path : str or os.PathLike
        The file (a folder reads as a DICOM series).
    dataset : str, optional
        HDF5 dataset or ``.npz`` array name; default: the first real-valued 2-D or
        3-D one (in the file's order).

    Returns
    -------
    ImageData

    Notes
    -----
    No intensity rescaling happens except the file's own: DICOM modality LUT
    :math:`v = m s + b`, FITS :math:`v = \\mathrm{BZERO} + \\mathrm{BSCALE}\\,s`,
    NIfTI ``scl_slope``/``scl_inter``. Colour rasters become luma
    :math:`0.2125 R + 0.7154 G + 0.0721 B`; complex arrays their magnitude.

    Examples
    --------
    >>> from pydicom.data import get_testdata_file
    >>> image = read_image(get_testdata_file("CT_small.dcm"))
    >>> image.array.shape, image.unit
    ((128, 128), 'HU')
    """
    path = input_file(path, folder_ok=True)
    fmt = detect_format(path)
    if dataset is not None and fmt not in ("hdf5", "numpy"):
        raise InputError(f"dataset= applies to HDF5 and .npz files, not {fmt}", path=path, field="dataset")
    image = _READERS[fmt](path, dataset)
    array = image_stack(image.array, path=path)
    if not np.isfinite(array).all():
        raise InputError("image has NaN or infinite pixels", path=path)
    image.array = np.ascontiguousarray(array, dtype=np.float32)
    if image.spacing is not None:
        image.spacing = tuple(image.spacing[-array.ndim:])
    return image


def _raster(path: Path, dataset) -> ImageData:
    from PIL import Image, ImageSequence

    with reading(path, "raster image"), Image.open(path) as im:
        frames = [_gray(np.asarray(frame.convert("RGB") if frame.mode in ("P", "PA", "CMYK", "YCbCr", "LAB", "HSV")
                                   else frame), path) for frame in ImageSequence.Iterator(im)]
        array = np.stack(frames) if len(frames) > 1 else frames[0]
    return ImageData(array, "a.u.", None, "", path)


def _gray(array: np.ndarray, path: Path) -> np.ndarray:
    """One channel: luma for RGB(A), the grey channel for grey+alpha."""
    if array.ndim == 3:
        if array.shape[-1] not in (2, 3, 4):
            raise InputError(f"unexpected raster shape {array.shape}", path=path)
        return array[..., 0].astype(np.float32) if array.shape[-1] == 2 else array[..., :3].astype(np.float32) @ LUMA
    return real_float32(array, path=path)


def _numpy(path: Path, dataset) -> ImageData:
    with reading(path, "NumPy file"):
        data = np.load(path, allow_pickle=False)
        if isinstance(data, np.ndarray):
            array = data
        else:
            with data:
                array = data[_pick(path, data.files, dataset, lambda k: data[k])]
        array = real_float32(array, path=path)
    return ImageData(array, "a.u.", None, "", path)


def _hdf5(path: Path, dataset) -> ImageData:
    import h5py

    with reading(path, "HDF5 file"), h5py.File(path, "r") as f:
        names = []
        f.visititems(lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) else None)
        name = _pick(path, names, dataset, lambda k: f[k])
        array = real_float32(f[name][()], path=path, field=name)
        unit = f[name].attrs.get("units", f[name].attrs.get("unit", "a.u."))
    return ImageData(array, unit.decode() if isinstance(unit, bytes) else str(unit), None, "", path)


def _pick(path: Path, names, wanted: str | None, get) -> str:
    """The named array, or the first real numeric 2-D/3-D one."""
    if wanted is not None:
        if wanted not in names:
            raise InputError(f"no dataset {wanted!r}; found {list(names)}", path=path, field="dataset")
        return wanted
    for name in names:
        item = get(name)
        if item.ndim in (2, 3) and item.dtype.kind in "iuf" and min(item.shape) > 0:
            return name
    raise InputError(f"no real-valued 2-D or 3-D array among {list(names)}", path=path)


def _dicom(path: Path, dataset) -> ImageData:
    from .dicom import read_dicom

    volume = read_dicom(path)
    return ImageData(volume.array, volume.unit, volume.spacing, volume.modality, path)


def _fits(path: Path, dataset) -> ImageData:
    from .fits import read_fits

    sky = read_fits(path)
    return ImageData(sky.array, sky.unit, None, "sky", path)


def _nifti(path: Path, dataset) -> ImageData:
    import nibabel as nib

    with reading(path, "NIfTI file"):
        image = nib.as_closest_canonical(nib.load(path))
        array = np.asarray(image.get_fdata(dtype=np.float32))
        zooms = tuple(float(z) for z in image.header.get_zooms()[:3])
    while array.ndim > 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim == 3:  # RAS (x, y, z) -> axial slices (z, y, x), anterior at the top
        return ImageData(array.transpose(2, 1, 0)[:, ::-1, :], "a.u.", zooms[::-1], "", path)
    if array.ndim == 2:
        return ImageData(array.T[::-1, :], "a.u.", zooms[1::-1], "", path)
    raise InputError(f"expected a 2-D or 3-D volume, got shape {array.shape}", path=path)


_READERS = {"raster": _raster, "numpy": _numpy, "hdf5": _hdf5, "dicom": _dicom, "fits": _fits,
            "nifti": _nifti}
