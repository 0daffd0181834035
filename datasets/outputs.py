"""Write a result in every form its input calls for: NetCDF always, DICOM or FITS
next to a DICOM or FITS source, and a PNG figure."""

from __future__ import annotations

import os
from pathlib import Path

from reddiff.errors import InputError
from reddiff.result import Reconstruction

from ._io import write_file, writing
from .dicom import DicomVolume, write_dicom
from .fits import SkyImage, write_fits


#: Output formats that need a source of one kind, and what to give when it is missing.
SOURCE_FORMATS = {"dicom": (DicomVolume, "DICOM output needs a DICOM source: pass the original slice as the reference"),
                  "fits": (SkyImage, "FITS output needs a FITS measurement or reference")}


def check_source_formats(source, formats) -> None:
    """Refuse formats that need a source ``source`` is not (DICOM beside a DICOM source, FITS beside a FITS one).

    Examples
    --------
    >>> check_source_formats(None, ("netcdf", "dicom"))
    Traceback (most recent call last):
    ...
    reddiff.errors.InputError: [format] DICOM output needs a DICOM source: pass the original slice as the reference
    """
    for name, (kind, message) in SOURCE_FORMATS.items():
        if name in formats and not isinstance(source, kind):
            raise InputError(message, field="format")


def source_for_formats(source, formats):
    """``source`` if one of ``formats`` is written beside it, else None (NetCDF and figures only).

    Examples
    --------
    >>> source_for_formats(None, ("netcdf", "png")) is None
    True
    """
    return source if any(name in formats and isinstance(source, kind)
                         for name, (kind, _) in SOURCE_FORMATS.items()) else None


def write_result(reconstruction: Reconstruction, out_dir, *, source=None, stem: str = "reconstruction",
                 figure: bool = True, slice_index: int = 0, truth=None) -> dict[str, Path]:
    """Write ``{stem}.nc``, plus DICOM/FITS for such a source, plus ``{stem}.png``.

    Parameters
    ----------
    reconstruction : Reconstruction
    out_dir : str or os.PathLike
        An existing, writable folder.
    source : DicomVolume, SkyImage, MRIData or Sinogram, optional
        What the measurement was read from; a DICOM source adds the derived series
        ``{stem}_mean.dcm``/``{stem}_std.dcm``, a FITS source ``{stem}.fits``.
    stem : str
        File name stem.
    figure : bool
        Also write the uncertainty figure (:func:`reddiff.figures.uncertainty_figure`).
    slice_index : int
        The DICOM slice reconstructed.
    truth : array-like, optional
        Ground truth for the figure's error panels (simulations).

    Returns
    -------
    dict
        ``{"netcdf": path, "dicom_mean": ..., "dicom_std": ..., "fits": ..., "png": ...}``
        for the files written.

    Notes
    -----
    Every file is written atomically (temporary file, then rename); if any writer
    fails, the files already written by this call are removed, so a failure leaves
    no partial output.

    Examples
    --------
    >>> import tempfile, torch
    >>> rec = Reconstruction.from_samples(torch.rand(3, 1, 8, 8))
    >>> sorted(write_result(rec, tempfile.mkdtemp(), figure=False))
    ['netcdf']
    """
    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        raise InputError("output folder does not exist", path=out_dir)
    if not os.access(out_dir, os.W_OK):
        raise InputError("output folder is not writable", path=out_dir)
    written: dict[str, Path] = {}
    try:
        with writing(out_dir / f"{stem}.nc"):
            written["netcdf"] = reconstruction.to_netcdf(out_dir / f"{stem}.nc")
        if isinstance(source, DicomVolume):
            for name, path in write_dicom(reconstruction, source, out_dir, slice_index=slice_index,
                                          stem=stem).items():
                written[f"dicom_{name}"] = path
        if isinstance(source, SkyImage):
            written["fits"] = write_fits(reconstruction, out_dir / f"{stem}.fits", reference=source)
        if figure:
            from reddiff.figures import uncertainty_figure

            path = out_dir / f"{stem}.png"
            write_file(path, lambda tmp: uncertainty_figure(reconstruction, truth=truth)
                       .savefig(tmp, format="png", dpi=110))
            written["png"] = path
    except BaseException:
        for path in written.values():
            path.unlink(missing_ok=True)
        raise
    return written
