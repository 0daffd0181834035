"""FITS: read sky images (with WCS, units, gain, read noise) and PSFs; write results.

Blank pixels (``BLANK`` in integer images, NaN in float ones) are reported in a
``valid`` mask and filled with the median of the valid pixels, so the image can go
straight into an optimiser; give the mask to the data term to ignore them.

Cubes (planes x H x W, e.g. a spectral cube) are read whole or one plane at a time
(``plane=``, only that plane is read), and results of their planes are written back as
a cube with the cube's 3-D WCS (:func:`write_fits_cube`).
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS, FITSFixedWarning

from reddiff import __version__
from reddiff.errors import InputError
from reddiff.result import Reconstruction

from ._io import image_stack, input_file, reading, real_float32, write_file

GAIN_KEYS = ("GAIN", "EGAIN", "CCDGAIN", "ATODGAIN")
READ_NOISE_KEYS = ("RDNOISE", "READNOIS", "READNOISE", "RON", "READ_NOISE")
ELECTRON_UNITS = ("electron", "electrons", "e", "e-")


@dataclass
class SkyImage:
    """An image from a FITS file.

    Attributes
    ----------
    array : numpy.ndarray
        ``(H, W)`` float32 pixel values (``(N, H, W)`` for a cube), blanks filled.
    valid : numpy.ndarray
        Boolean mask, False where the file had a blank or NaN pixel.
    header : astropy.io.fits.Header
        The image HDU's header (the primary header's cards merged in for an extension).
    wcs : astropy.wcs.WCS or None
        The celestial WCS, if the header has one.
    unit : str
        ``BUNIT`` as written (``"a.u."`` if absent).
    gain : float or None
        Electrons per ADU (``GAIN``, ``EGAIN``, ``CCDGAIN`` or ``ATODGAIN``).
    read_noise : float or None
        Read noise in electrons (``RDNOISE``, ``READNOIS``, ...).
    exposure : float or None
        ``EXPTIME`` in seconds.
    hdu : int
        Index of the HDU that was read.
    path : pathlib.Path
    plane : int or None
        The plane of a cube this image is (``read_fits(..., plane=k)``), None otherwise;
        ``header`` is then the cube's.
    n_planes : int
        Planes of the HDU (1 for a 2-D image).
    """

    array: np.ndarray
    valid: np.ndarray
    header: fits.Header = field(repr=False)
    wcs: WCS | None
    unit: str
    gain: float | None
    read_noise: float | None
    exposure: float | None
    hdu: int
    path: Path
    plane: int | None = None
    n_planes: int = 1

    @property
    def in_electrons(self) -> bool:
        """Whether ``BUNIT`` says electrons (``electron``, ``e-``, ...)."""
        return _is_electrons(self.unit)

    def electrons(self) -> np.ndarray:
        r"""The image in electrons: :math:`e = g \cdot \mathrm{ADU}`, or as-is if already electrons.

        Raises InputError when the unit is ADU-like and the file gives no gain.
        """
        if self.in_electrons:
            return self.array
        if self.gain is None:
            raise InputError(f"image is in {self.unit!r} and the header has no gain "
                             f"({'/'.join(GAIN_KEYS)})", path=self.path, field="GAIN")
        return self.array * np.float32(self.gain)

    def with_detector(self, *, gain: float | None = None, read_noise: float | None = None) -> "SkyImage":
        """A copy with the gain and/or read noise replaced, in its header too.

        Parameters
        ----------
        gain : float, optional
            Electrons per ADU, positive: written as ``GAIN``, other gain cards
            (``EGAIN``, ``CCDGAIN``, ...) removed.
        read_noise : float, optional
            Electrons, at least 0: written as ``RDNOISE``, other read-noise cards removed.

        Examples
        --------
        >>> from reddiff.datasets.samples import sample_path
        >>> sky = read_fits(sample_path("m13")).with_detector(gain=2.0)
        >>> sky.gain, sky.header["GAIN"]
        (2.0, 2.0)
        """
        header = self.header.copy()
        given = ((gain, "GAIN", GAIN_KEYS, "[electron/adu] gain, given to reddiff"),
                 (read_noise, "RDNOISE", READ_NOISE_KEYS, "[electron] read noise, given to reddiff"))
        for value, key, keys, comment in given:
            if value is not None:
                for old in keys:
                    header.remove(old, ignore_missing=True, remove_all=True)
                header[key] = (float(value), comment)
        return replace(self, header=header,
                       gain=self.gain if gain is None else _number(header, ("GAIN",), self.path, above=0.0),
                       read_noise=self.read_noise if read_noise is None else
                       _number(header, ("RDNOISE",), self.path, at_least=0.0))


def read_fits(path, *, hdu: int | str | None = None, plane: int | None = None) -> SkyImage:
    """Read the first image HDU (or a chosen one) of a FITS file.

    Parameters
    ----------
    path : str or os.PathLike
    hdu : int or str, optional
        HDU index or name (``"SCI"``); default: the first HDU with 2-D or 3-D data.
    plane : int, optional
        Read only this plane of a cube (0-based along its third axis; 0 for a 2-D image).

    Returns
    -------
    SkyImage

    Notes
    -----
    Values are the physical ones, :math:`v = \\mathrm{BZERO} + \\mathrm{BSCALE}\\,s`;
    pixels equal to ``BLANK`` or NaN are invalid. Gain and read noise are looked up
    in the image header, then the primary header. A gain that is not a positive
    finite number, or a read noise that is negative or not finite, is an
    :class:`~reddiff.errors.InputError` naming the card.

    Examples
    --------
    >>> from reddiff.datasets.samples import sample_path
    >>> sky = read_fits(sample_path("m13"))
    >>> sky.array.shape, sky.wcs.wcs.ctype[0]
    ((300, 300), 'RA---TAN')
    """
    path = input_file(path)
    with reading(path, "FITS file"), warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)
        with fits.open(path, mode="readonly", memmap=False) as hdul:
            index = _image_hdu(hdul, hdu, path)
            image = hdul[index]
            n_planes, view = _planes(image.shape, plane, path, index)
            raw = image.data if view is None else image.section[view]
            header = _merged_header(hdul[0].header, image.header) if index else image.header.copy()
            blank = image.header.get("BLANK") if raw.dtype.kind in "iu" else None
            array = real_float32(raw, path=path, field="data")
            valid = np.isfinite(array) & (raw != blank if blank is not None else True)
            wcs = _celestial_wcs(header)
    array = image_stack(np.array(array), path=path, field=f"HDU {index}")
    valid = np.broadcast_to(valid, raw.shape).reshape(array.shape)
    if not valid.any():
        raise InputError("every pixel is blank or NaN", path=path, field=f"HDU {index}")
    array = np.where(valid, array, np.median(array[valid])).astype(np.float32)
    with reading(path, "FITS file"):  # a damaged card fails when its value is parsed
        return SkyImage(array=array, valid=valid, header=header, wcs=wcs,
                        unit=str(header.get("BUNIT", "a.u.")).strip() or "a.u.",
                        gain=_number(header, GAIN_KEYS, path, above=0.0),
                        read_noise=_number(header, READ_NOISE_KEYS, path, at_least=0.0),
                        exposure=_number(header, ("EXPTIME",), path), hdu=index, path=path,
                        plane=plane if n_planes > 1 else None, n_planes=n_planes)


def count_planes(path, *, hdu: int | str | None = None) -> int:
    """How many planes the image HDU of a FITS file holds (1 for a 2-D image), from its header.

    Examples
    --------
    >>> from reddiff.datasets.samples import sample_path
    >>> count_planes(sample_path("m13"))
    1
    """
    path = input_file(path)
    with reading(path, "FITS file"), fits.open(path, mode="readonly", memmap=False) as hdul:
        index = _image_hdu(hdul, hdu, path)
        return _planes(hdul[index].shape, None, path, index)[0]


def _planes(shape, plane, path: Path, index: int):
    """``(planes, view)`` of an HDU of numpy ``shape``: the length of its one non-degenerate axis
    beyond the image's two (1 if none), and the index reading ``plane`` (None: read everything)."""
    extra = [axis for axis, n in enumerate(shape[:-2]) if n != 1]
    if len(extra) > 1:
        raise InputError(f"expected a 2-D image or a 3-D cube, got shape {tuple(shape)}", path=path,
                         field=f"HDU {index}")
    n_planes = shape[extra[0]] if extra else 1
    if plane is None:
        return n_planes, None
    if not (isinstance(plane, (int, np.integer)) and 0 <= plane < n_planes):
        raise InputError(f"plane {plane!r} is out of range: HDU {index} holds {n_planes} plane(s)", path=path,
                         field="slices")
    if not extra:
        return n_planes, None
    return n_planes, tuple(int(plane) if axis == extra[0] else 0 for axis in range(len(shape) - 2)) + (
        slice(None), slice(None))


def read_psf(path, *, hdu: int | str | None = None, plane: int | None = None) -> np.ndarray:
    r"""Read a point-spread function from a FITS file, normalised to unit sum.

    Parameters
    ----------
    path : str or os.PathLike
    hdu : int or str, optional
        Default: the first image HDU.
    plane : int, optional
        The plane of a PSF cube (one PSF per plane of a frame cube); a 2-D PSF ignores it.

    Returns
    -------
    numpy.ndarray
        ``(h, w)`` float32 kernel :math:`k / \sum k` (odd sizes are centred on the
        middle pixel).

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> from astropy.io import fits
    >>> p = os.path.join(tempfile.mkdtemp(), "psf.fits")
    >>> fits.PrimaryHDU(np.ones((3, 3))).writeto(p)
    >>> float(read_psf(p).sum())
    1.0
    """
    planes = count_planes(path, hdu=hdu)
    sky = read_fits(path, hdu=hdu, plane=plane if planes > 1 else None)
    if sky.array.ndim != 2 or not sky.valid.all():
        raise InputError("a PSF must be one 2-D image without blank pixels", path=sky.path,
                         field=f"HDU {sky.hdu}")
    total = float(sky.array.sum(dtype=np.float64))
    if not (np.isfinite(total) and total > 0) or sky.array.min() < -1e-3 * sky.array.max():
        raise InputError("a PSF must be non-negative with a positive sum", path=sky.path,
                         field=f"HDU {sky.hdu}")
    return (sky.array / total).astype(np.float32)


def _image_hdu(hdul, hdu, path: Path) -> int:
    if hdu is not None:
        try:
            index = hdul.index_of(hdu)
            if not 0 <= index < len(hdul):
                raise IndexError(index)
        except (KeyError, IndexError) as err:
            raise InputError(f"no HDU {hdu!r} (file has {len(hdul)})", path=path, field="hdu") from err
        if not _is_image(hdul[index]):
            raise InputError(f"HDU {hdu!r} holds no image data", path=path, field="hdu")
        return index
    for index, candidate in enumerate(hdul):
        if _is_image(candidate):
            return index
    raise InputError("no image HDU with 2-D or 3-D data", path=path, field="HDU")


def _is_image(hdu) -> bool:
    """An image HDU of two or more axes (from its header: its data are not read here)."""
    return (isinstance(hdu, (fits.PrimaryHDU, fits.ImageHDU, fits.CompImageHDU))
            and not isinstance(hdu, fits.GroupsHDU) and len(hdu.shape) >= 2)


def _merged_header(primary: fits.Header, image: fits.Header) -> fits.Header:
    """The extension's header, with primary cards it lacks (telescope, gain, ...) appended."""
    merged = image.copy()
    for card in primary.cards:
        if card.keyword and card.keyword not in merged and card.keyword not in STRUCTURAL:
            merged.append(card)
    return merged


STRUCTURAL = ("SIMPLE", "XTENSION", "BITPIX", "NAXIS", "NAXIS1", "NAXIS2", "NAXIS3", "NAXIS4",
              "EXTEND", "PCOUNT", "GCOUNT", "BSCALE", "BZERO", "BLANK", "CHECKSUM", "DATASUM",
              "EXTNAME", "EXTVER", "COMMENT", "HISTORY", "")


def _celestial_wcs(header: fits.Header) -> WCS | None:
    try:
        wcs = WCS(header)
    except Exception:  # noqa: BLE001 - an unusable WCS is reported as no WCS
        return None
    return wcs.celestial if wcs.has_celestial else None


def _number(header: fits.Header, keys, path: Path, *, above: float | None = None,
            at_least: float | None = None) -> float | None:
    """The first of the ``keys`` cards in ``header`` as a number, or None.

    Without bounds a non-finite card is skipped (informational cards such as ``EXPTIME``);
    with ``above`` or ``at_least`` the card feeds the noise model, so a non-finite value or
    one out of range is an error naming the card.
    """
    for key in keys:
        if key in header:
            try:
                value = float(header[key])
            except (TypeError, ValueError) as err:
                raise InputError(f"expected a number, got {header[key]!r}", path=path, field=key) from err
            if above is None and at_least is None:
                if np.isfinite(value):
                    return value
                continue
            if not np.isfinite(value) or (above is not None and value <= above) or \
                    (at_least is not None and value < at_least):
                wanted = f"above {above:g}" if above is not None else f"at least {at_least:g}"
                raise InputError(f"{key} = {header[key]!r}; expected a finite number {wanted}", path=path, field=key)
            return value
    return None


def write_fits(reconstruction: Reconstruction, path, *, reference: SkyImage | None = None,
               variance: bool = False) -> Path:
    """Write a result as FITS: mean in the primary HDU, ``STD`` (or ``VAR``) extension, and
    ``LOWER``/``UPPER`` extensions when the result holds a calibrated interval.

    Parameters
    ----------
    reconstruction : Reconstruction
        A 2-D result (one channel; complex results store magnitudes).
    path : str or os.PathLike
        Output file, written atomically.
    reference : SkyImage, optional
        The image the measurement came from: its header cards (telescope, exposure, ...)
        are kept and its blank pixels are written as NaN. Must have the result's shape.
    variance : bool
        Write the variance :math:`\\sigma^2` as ``VAR`` instead of ``STD``.

    Returns
    -------
    pathlib.Path

    Notes
    -----
    The file is meant to pass ``fitsverify``:

    - The WCS is the result's own (``attrs["wcs_header"]``, set by
      :func:`reddiff.datasets.with_geometry`) or else the reference's, written in both
      HDUs as one block that starts with ``WCSAXES`` (FITS WCS paper I); the reference's
      own primary WCS cards are dropped, not mixed in.
    - Cards of the reference that describe the measured frame rather than the result
      are dropped (:data:`STALE`: value range, PSF file, sky level, checksums, ``ORIGIN``,
      ``DATE``), and so are those in its unit when the result is in another
      (:data:`UNIT_CARDS`, e.g. ``GAIN`` and ``SATURATE`` of a frame in ADU).
    - Cards describing the result: ``BUNIT`` (the result's unit, squared for ``VAR``),
      ``ORIGIN`` naming reddiff, ``DATE``, ``PRODUCT`` in each HDU (``MEAN``, ``STD`` or
      ``VAR``), ``UNCEXT`` in the primary naming the uncertainty extension, fresh
      ``CHECKSUM``/``DATASUM``, and ``HISTORY`` cards with the reddiff version, the number
      of samples, the seeds and every solver setting.

    Examples
    --------
    >>> import tempfile, os, torch
    >>> from astropy.io import fits
    >>> rec = Reconstruction.from_samples(torch.rand(3, 1, 8, 8), units="electron")
    >>> out = write_fits(rec, os.path.join(tempfile.mkdtemp(), "r.fits"))
    >>> [(h.name, h.header["PRODUCT"]) for h in fits.open(out)]
    [('PRIMARY', 'MEAN'), ('STD', 'STD')]
    """
    ds = reconstruction.dataset
    mean = np.sqrt((ds["mean"].values.astype(np.float32) ** 2).sum(0)) if ds.sizes["channel"] > 1 \
        else ds["mean"].values[0].astype(np.float32)
    std = np.sqrt((ds["std"].values.astype(np.float32) ** 2).sum(0))
    unit = ds["mean"].attrs.get("units", "") or (reference.unit if reference is not None else "")
    wcs = _output_wcs(reconstruction, reference)
    header = _output_header(reference, mean.shape, unit, wcs)
    if reference is not None:
        mean, std = np.where(reference.valid, mean, np.nan), np.where(reference.valid, std, np.nan)
    name = "VAR" if variance else "STD"
    primary = fits.PrimaryHDU(mean.astype(np.float32), header=header)
    extension = fits.ImageHDU((std ** 2 if variance else std).astype(np.float32), header=_wcs_block(wcs), name=name)
    _describe(primary.header, "MEAN", unit)
    primary.header["UNCEXT"] = (name, f"extension holding the {'variance' if variance else 'standard deviation'}")
    _describe(extension.header, name, f"({unit})**2" if variance and unit else unit)
    for card in _history(reconstruction, name):
        primary.header.add_history(card)
    hdul = fits.HDUList([primary, extension, *_interval_hdus(reconstruction, reference, wcs, unit)])
    return write_file(path, lambda tmp: hdul.writeto(tmp, output_verify="silentfix", overwrite=True, checksum=True))


def _interval_hdus(reconstruction: Reconstruction, reference, wcs, unit: str) -> list:
    """``LOWER`` and ``UPPER`` extensions with the calibrated interval, when the result has one
    (one real channel: a sky image), with its level in ``INTLEVEL``."""
    ds = reconstruction.dataset
    if not {"lower", "upper"} <= set(ds.data_vars) or ds.sizes["channel"] != 1:
        return []
    hdus = []
    for name in ("LOWER", "UPPER"):
        data = ds[name.lower()].values[0].astype(np.float32)
        if reference is not None:
            data = np.where(reference.valid, data, np.nan)
        hdu = fits.ImageHDU(data, header=_wcs_block(wcs), name=name)
        _describe(hdu.header, name, unit)
        hdu.header["INTLEVEL"] = (float(ds[name.lower()].attrs.get("level", float("nan"))),
                                  "central level of the calibrated interval")
        hdus.append(hdu)
    return hdus


def write_fits_cube(volume: Reconstruction, path, *, references, variance: bool = False) -> Path:
    """Write the results of a cube's planes as a FITS cube: mean in the primary HDU, ``STD`` (or ``VAR``) extension.

    Parameters
    ----------
    volume : Reconstruction
        ``(slice, channel, y, x)`` result, one slice per plane (:meth:`Reconstruction.stack`).
    path : str or os.PathLike
        Output file, written atomically.
    references : sequence of SkyImage
        The plane each slice reconstructs (``read_fits(..., plane=k)``), in order: consecutive
        planes of one cube.
    variance : bool
        Write the variance :math:`\\sigma^2` as ``VAR`` instead of ``STD``.

    Returns
    -------
    pathlib.Path

    Notes
    -----
    As :func:`write_fits` (the cube's cards that still describe the result, ``PRODUCT``,
    ``UNCEXT``, ``HISTORY``, blank pixels as NaN, checksums), with both HDUs
    ``(planes, H, W)`` and the cube's 3-D WCS: the celestial axes as they were and the
    third axis copied, its reference pixel moved for a sub-range of planes
    (:math:`\\mathrm{CRPIX3}' = \\mathrm{CRPIX3} - k_0` for planes :math:`k_0, k_0 + 1, \\ldots`).
    A cube whose WCS is not celestial axes 1-2 and one more keeps the celestial WCS only.

    Examples
    --------
    >>> import tempfile, os, torch
    >>> from astropy.io import fits
    >>> path = os.path.join(tempfile.mkdtemp(), "cube.fits")
    >>> fits.PrimaryHDU(np.ones((2, 4, 4), np.float32)).writeto(path)
    >>> planes = [read_fits(path, plane=k) for k in range(2)]
    >>> one = Reconstruction.from_samples(torch.rand(2, 1, 4, 4), units="electron")
    >>> out = write_fits_cube(Reconstruction.stack([one, one]), path.replace("cube", "out"), references=planes)
    >>> fits.getdata(out).shape
    (2, 4, 4)
    """
    ds = volume.dataset
    references = list(references)
    if "slice" not in ds.dims or ds.sizes["slice"] != len(references) or not references:
        raise InputError(f"expected a volume of {len(references)} planes (one per reference), got dimensions "
                         f"{dict(ds.sizes)}", field="slice")
    first = references[0]
    planes = [r.plane if r.plane is not None else k for k, r in enumerate(references)]
    if planes != list(range(planes[0], planes[0] + len(planes))):
        raise InputError(f"a FITS cube needs consecutive planes, got {planes}", path=first.path, field="slices")
    mean = np.sqrt((ds["mean"].values.astype(np.float32) ** 2).sum(1))
    std = np.sqrt((ds["std"].values.astype(np.float32) ** 2).sum(1))
    valid = np.stack([r.valid for r in references])
    mean, std = np.where(valid, mean, np.nan), np.where(valid, std, np.nan)
    unit = ds["mean"].attrs.get("units", "") or first.unit
    wcs = _cube_wcs(first, planes[0], len(planes)) or _output_wcs(Reconstruction(ds.isel(slice=0)), first)
    header = _output_header(first, mean.shape[1:], unit, wcs)
    name = "VAR" if variance else "STD"
    primary = fits.PrimaryHDU(mean.astype(np.float32), header=header)
    extension = fits.ImageHDU((std ** 2 if variance else std).astype(np.float32), header=_wcs_block(wcs), name=name)
    _describe(primary.header, "MEAN", unit)
    primary.header["UNCEXT"] = (name, f"extension holding the {'variance' if variance else 'standard deviation'}")
    _describe(extension.header, name, f"({unit})**2" if variance and unit else unit)
    for card in _history(volume, name):
        primary.header.add_history(card)
    primary.header.add_history(f"planes {planes[0]}-{planes[-1]} of HDU {first.hdu} of {Path(first.path).name}")
    hdul = fits.HDUList([primary, extension])
    return write_file(path, lambda tmp: hdul.writeto(tmp, output_verify="silentfix", overwrite=True, checksum=True))


def _cube_wcs(reference: SkyImage, start: int, count: int) -> WCS | None:
    """The 3-D WCS of ``reference``'s cube over planes ``start`` to ``start + count - 1`` (degenerate
    axes dropped), or None where the cube has no WCS with celestial axes 1-2 and one more."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FITSFixedWarning)
            wcs = WCS(reference.header)
            for axis in reversed(range(2, wcs.naxis)):
                if int(reference.header.get(f"NAXIS{axis + 1}", 0)) == 1:
                    wcs = wcs.dropaxis(axis)
            if wcs.naxis != 3 or sorted((wcs.wcs.lng, wcs.wcs.lat)) != [0, 1]:
                return None
            return wcs.slice((slice(start, start + count),))
    except Exception:  # noqa: BLE001 - an unusable cube WCS: the celestial one is written
        return None


#: Cards of a measured frame that do not describe a result made from it: its value range,
#: its PSF (the result is deconvolved), its sky level (the result has none), the making of
#: its file (fresh ones are written), and ``INHERIT`` (an extension's card).
STALE = ("DATAMIN", "DATAMAX", "PSFFILE", "SKYLEVEL", "ORIGIN", "DATE", "FILENAME", "CHECKSUM", "DATASUM",
         "INHERIT")
#: Cards in the frame's unit, dropped when the result is in another (ADU -> electrons).
UNIT_CARDS = ("BUNIT", "SATURATE") + GAIN_KEYS
#: Cards of a primary (unlettered) WCS: papers I-IV, SIP and lookup-table distortions.
WCS_CARD = re.compile(r"WCSAXES|WCSNAME|(CTYPE|CRPIX|CRVAL|CDELT|CUNIT|CROTA|CRDER|CSYER|CNAME)\d+|"
                      r"(PC|CD|PV|PS)\d+_\d+|LONPOLE|LATPOLE|RADESYS|RADECSYS|EQUINOX|EPOCH|"
                      r"(A|B|AP|BP)_(ORDER|DMAX|\d+_\d+)|(CPDIS|CQDIS|DP|DQ|D2IMDIS|D2IMERR)\d+(\..*)?|D2IMEXT|NPOLEXT")


def _output_wcs(reconstruction: Reconstruction, reference: SkyImage | None) -> WCS | None:
    """The result's WCS, else the reference's celestial one, else any WCS its header describes."""
    if reconstruction.wcs is not None:
        return reconstruction.wcs
    if reference is None:
        return None
    if reference.wcs is not None:
        return reference.wcs
    if not any(WCS_CARD.fullmatch(key) for key in reference.header):
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FITSFixedWarning)
            return WCS(reference.header)
    except Exception:  # noqa: BLE001 - an unusable WCS: the result gets none
        return None


def _wcs_block(wcs: WCS | None) -> fits.Header:
    """The WCS as header cards, ``WCSAXES`` first (empty for no WCS)."""
    if wcs is None:
        return fits.Header()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)
        return wcs.to_header(relax=True)


def _output_header(reference: SkyImage | None, shape, unit: str, wcs: WCS | None) -> fits.Header:
    """The reference's cards that still describe the result, then the WCS block."""
    header = fits.Header()
    block = _wcs_block(wcs)
    if reference is not None:
        if reference.array.shape != shape:
            raise InputError(f"result shape {shape} differs from the reference image's "
                             f"{reference.array.shape}", path=reference.path, field="shape")
        dropped = set(STALE) | set(block) | (set(UNIT_CARDS) if not _same_unit(reference.unit, unit) else set())
        for card in reference.header.cards:
            key = card.keyword
            if key in ("COMMENT", "HISTORY") or not (key in STRUCTURAL or key in dropped or
                                                     (wcs is not None and WCS_CARD.fullmatch(key))):
                header.append(card)
    header.extend(block)
    return header


def _describe(header: fits.Header, product: str, unit: str) -> None:
    """Cards saying what an HDU holds, who made it and when."""
    import datetime

    if unit:
        header["BUNIT"] = (unit, "physical unit of the values")
    header["PRODUCT"] = (product, {"MEAN": "posterior mean over RED-Diff runs",
                                   "STD": "standard deviation over RED-Diff runs",
                                   "VAR": "variance over RED-Diff runs",
                                   "LOWER": "lower end of the calibrated interval",
                                   "UPPER": "upper end of the calibrated interval"}[product])
    header["ORIGIN"] = (f"reddiff {__version__}", "software that wrote this file")
    header["DATE"] = (datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S"),
                      "UTC date this HDU was written")


def _history(reconstruction: Reconstruction, name: str):
    """``HISTORY`` lines: what made the result, with its seeds and settings."""
    attrs = reconstruction.dataset.attrs
    yield (f"reddiff {attrs.get('reddiff_version', __version__)} RED-Diff reconstruction: "
           f"mean of {attrs.get('n_samples', '?')} samples; {name} extension")
    yield f"seeds = {reconstruction.seeds}"
    for key, value in _flatten(reconstruction.config):
        yield f"{key} = {value}"


def _same_unit(a: str, b: str) -> bool:
    """Whether two ``BUNIT`` values name the same unit (``electrons`` and ``e-`` do)."""
    return a.strip().lower() == b.strip().lower() or (_is_electrons(a) and _is_electrons(b))


def _is_electrons(unit: str) -> bool:
    return unit.strip().lower() in ELECTRON_UNITS


def _flatten(config: dict, prefix: str = ""):
    for key, value in config.items():
        if isinstance(value, dict):
            yield from _flatten(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value
