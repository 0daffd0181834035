"""FITS: read sky images (with WCS, units, gain, read noise) and PSFs; write results.

Blank pixels (``BLANK`` in integer images, NaN in float ones) are reported in a
``valid`` mask and filled with the median of the valid pixels, so the image can go
straight into an optimiser; give the mask to the data term to ignore them.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS, FITSFixedWarning

from reddiff.errors import InputError

from ._io import image_stack, input_file, reading, real_float32

GAIN_KEYS = ("GAIN", "EGAIN", "CCDGAIN", "ATODGAIN")
READ_NOISE_KEYS = ("RDNOISE", "READNOIS", "READNOISE", "RON", "READ_NOISE")
ELECTRON_UNITS = ("electron", "electrons", "e", "e-")
ADU_UNITS = ("adu", "dn", "count", "counts")


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

    def electrons(self) -> np.ndarray:
        r"""The image in electrons: :math:`e = g \cdot \mathrm{ADU}`, or as-is if already electrons.

        Raises InputError when the unit is ADU-like and the file gives no gain.
        """
        unit = self.unit.strip().lower()
        if unit in ELECTRON_UNITS:
            return self.array
        if self.gain is None:
            raise InputError(f"image is in {self.unit!r} and the header has no gain "
                             f"({'/'.join(GAIN_KEYS)})", path=self.path, field="GAIN")
        return self.array * np.float32(self.gain)


def read_fits(path, *, hdu: int | str | None = None) -> SkyImage:
    """Read the first image HDU (or a chosen one) of a FITS file.

    Parameters
    ----------
    path : str or os.PathLike
    hdu : int or str, optional
        HDU index or name (``"SCI"``); default: the first HDU with 2-D or 3-D data.

    Returns
    -------
    SkyImage

    Notes
    -----
    Values are the physical ones, :math:`v = \\mathrm{BZERO} + \\mathrm{BSCALE}\\,s`;
    pixels equal to ``BLANK`` or NaN are invalid. Gain and read noise are looked up
    in the image header, then the primary header.

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
            raw = image.data
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
    return SkyImage(array=array, valid=valid, header=header, wcs=wcs,
                    unit=str(header.get("BUNIT", "a.u.")).strip() or "a.u.",
                    gain=_number(header, GAIN_KEYS, path), read_noise=_number(header, READ_NOISE_KEYS, path),
                    exposure=_number(header, ("EXPTIME",), path), hdu=index, path=path)


def read_psf(path, *, hdu: int | str | None = None) -> np.ndarray:
    r"""Read a point-spread function from a FITS file, normalised to unit sum.

    Parameters
    ----------
    path : str or os.PathLike
    hdu : int or str, optional
        Default: the first image HDU.

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
    sky = read_fits(path, hdu=hdu)
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
    return (isinstance(hdu, (fits.PrimaryHDU, fits.ImageHDU, fits.CompImageHDU))
            and hdu.data is not None and hdu.data.ndim >= 2)


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


def _number(header: fits.Header, keys, path: Path) -> float | None:
    for key in keys:
        if key in header:
            try:
                value = float(header[key])
            except (TypeError, ValueError) as err:
                raise InputError(f"expected a number, got {header[key]!r}", path=path, field=key) from err
            if np.isfinite(value):
                return value
    return None
