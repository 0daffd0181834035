"""Write a result in every form its input calls for: NetCDF always, DICOM or FITS
next to a DICOM or FITS source, and a PNG figure; a volume (several slices) as a DICOM
series per product or a FITS cube beside such sources."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from reddiff.errors import InputError
from reddiff.result import Reconstruction

from ._io import write_file, writing
from .dicom import join_slices, write_dicom, write_dicom_series
from .fits import SkyImage, write_fits, write_fits_cube
from .geometry import dicom_reference


def _fits_reference(source):
    return source if isinstance(source, SkyImage) else None


#: Output formats that need a source of one kind: how to find it in a source, and what to
#: say when it is missing, for one slice and for a volume.
SOURCE_FORMATS = {
    "dicom": (dicom_reference, "DICOM output needs a DICOM source: pass the original slice as the reference",
              "DICOM output of a volume needs the DICOM series it was measured from, which this measurement "
              "does not carry (a measurement simulated from a DICOM series folder does)"),
    "fits": (_fits_reference, "FITS output needs a FITS measurement or reference",
             "FITS output of a volume needs a FITS cube measurement"),
}


def check_source_formats(source, formats, *, volume: bool = False) -> None:
    """Refuse formats that need a source ``source`` is not (DICOM beside a DICOM source or a
    measurement that carries its DICOM geometry, FITS beside a FITS one).

    ``volume`` says the result has several slices (the message then says what a volume needs).

    Examples
    --------
    >>> check_source_formats(None, ("netcdf", "dicom"))
    Traceback (most recent call last):
    ...
    reddiff.errors.InputError: [format] DICOM output needs a DICOM source: pass the original slice as the reference
    """
    for name, (find, message, volume_message) in SOURCE_FORMATS.items():
        if name in formats and find(source) is None:
            raise InputError(volume_message if volume else message, field="format")


def source_for_formats(source, formats):
    """``source`` if one of ``formats`` is written beside it, else None (NetCDF and figures only).

    Examples
    --------
    >>> source_for_formats(None, ("netcdf", "png")) is None
    True
    """
    return source if any(name in formats and find(source) is not None
                         for name, (find, _, _) in SOURCE_FORMATS.items()) else None


def write_volume_sources(volume: Reconstruction, out_dir, sources, formats, *,
                         stem: str = "reconstruction") -> dict[str, Path]:
    """Write a volume in the formats that need its sources: a DICOM series per product, a FITS cube.

    Parameters
    ----------
    volume : Reconstruction
        ``(slice, channel, y, x)`` (:meth:`Reconstruction.stack`).
    out_dir : str or os.PathLike
        An existing folder.
    sources : sequence
        The source of each slice, in order (each from its slice's problem).
    formats : sequence of str
        ``dicom`` writes ``{stem}_mean/0001.dcm ...`` and ``{stem}_std/...``
        (:func:`reddiff.datasets.dicom.write_dicom_series`); ``fits`` writes ``{stem}.fits``
        (:func:`reddiff.datasets.fits.write_fits_cube`); other formats are not written here.
    stem : str

    Returns
    -------
    dict
        ``{"dicom_mean": folder, "dicom_std": folder, "fits": path}`` for what was written;
        a failure removes it all.

    Examples
    --------
    >>> import tempfile, torch
    >>> volume = Reconstruction.stack([Reconstruction.from_samples(torch.rand(2, 1, 4, 4))] * 2)
    >>> write_volume_sources(volume, tempfile.mkdtemp(), [None, None], ("netcdf", "png"))
    {}
    """
    out_dir = Path(out_dir)
    for source in sources:
        check_source_formats(source, formats, volume=True)
    written: dict[str, Path] = {}
    try:
        if "dicom" in formats:
            series = join_slices([dicom_reference(source) for source in sources])
            for name, folder in write_dicom_series(volume, series, out_dir, stem=stem).items():
                written[f"dicom_{name}"] = folder
        if "fits" in formats:
            written["fits"] = write_fits_cube(volume, out_dir / f"{stem}.fits", references=list(sources))
    except BaseException:
        for path in written.values():
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        raise
    return written


def write_result(reconstruction: Reconstruction, out_dir, *, source=None, stem: str = "reconstruction",
                 figure: bool = True, slice_index: int = 0, truth=None) -> dict[str, Path]:
    """Write ``{stem}.nc``, plus DICOM/FITS for such a source, plus ``{stem}.png``.

    Parameters
    ----------
    reconstruction : Reconstruction
    out_dir : str or os.PathLike
        An existing, writable folder.
    source : DicomVolume, SkyImage, MRIData or Sinogram, optional
        What the measurement was read from; a DICOM source (or a sinogram carrying its
        DICOM series) adds the derived series ``{stem}_mean.dcm``/``{stem}_std.dcm``, a
        FITS source ``{stem}.fits``.
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
        if dicom_reference(source) is not None:
            for name, path in write_dicom(reconstruction, dicom_reference(source), out_dir, slice_index=slice_index,
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
