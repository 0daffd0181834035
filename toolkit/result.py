"""The result of a reconstruction: an :class:`xarray.Dataset` with provenance.

Layout (all float32, physical units of the image)::

    mean      (channel, y, x)            posterior mean over samples
    std       (channel, y, x)            standard deviation over samples (ddof=0)
    quantiles (quantile, channel, y, x)  per-pixel quantiles over samples
    samples   (sample, channel, y, x)    the samples themselves (optional)

Coordinates ``y`` and ``x`` are pixel centres, in pixels unless a reader gave
physical ones with :func:`with_coords` (mm for medical images) or a sky image's
WCS with :func:`with_wcs` (header in ``attrs["wcs_header"]``, plus ``ra``/``dec``
coordinates in degrees). ``channel`` is ``["intensity"]`` for real images and
``["real", "imag"]`` for complex ones. Image variables carry their ``units``.
``attrs`` hold ``config`` (JSON), ``seeds`` (JSON list), timings and versions, so
any result can be reproduced from its file; :meth:`Reconstruction.calibrated` adds
``std_calibrated``, ``lower``, ``upper`` and ``attrs["calibration"]``.

Reading a result file with xarray alone: ``xr.open_dataset("reconstruction.nc")["mean"]``
(``ds.mean`` is the Dataset's own method, not the variable). Medical images keep row 0 at
the top, so ``y`` grows down the image (as DICOM's patient axes do), while xarray draws
``y`` growing upwards: plot them with
``ds["mean"].isel(channel=0).plot(yincrease=False, cmap="gray")``. Sky images keep FITS's
row 0 at the bottom, which xarray's default draws right side up. The ``y`` coordinate's
``comment`` in the file says which (:data:`ROW_ORDER`). CF's ``positive`` attribute is
not used for this: CF defines it for vertical coordinates only, and xarray ignores it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import xarray as xr

from .errors import InputError
from .files import atomic_write

DEFAULT_QUANTILES = (0.05, 0.5, 0.95)


#: Variables holding spreads (scaled, never shifted, by a change of units).
SPREADS = ("std", "std_calibrated")


def channel_names(n_channels: int) -> list[str]:
    """``["intensity"]`` for one channel, ``["real", "imag"]`` for two, else ``c0, c1, ...``."""
    if n_channels == 1:
        return ["intensity"]
    if n_channels == 2:
        return ["real", "imag"]
    return [f"c{i}" for i in range(n_channels)]


@dataclass
class Reconstruction:
    """A reconstruction with its uncertainty, wrapping an :class:`xarray.Dataset`.

    Build one with :meth:`from_samples`; save with :meth:`to_netcdf` and load with
    :meth:`from_netcdf`.
    """

    dataset: xr.Dataset

    @classmethod
    def from_samples(cls, samples: torch.Tensor, *, quantiles=DEFAULT_QUANTILES,
                     keep_samples: bool = False, attrs: dict | None = None,
                     units: str | None = None) -> "Reconstruction":
        """Summarise samples of shape ``(n_samples, C, H, W)`` (physical units).

        ``units`` names the image's unit (default: the ``unit`` of the value
        transform in ``attrs["config"]``, if any).
        """
        if samples.ndim != 4:
            raise InputError(f"samples must be (n_samples, C, H, W), got {tuple(samples.shape)}")
        s = samples.detach().to("cpu", torch.float32)
        dims = ("channel", "y", "x")
        coords = {"channel": channel_names(s.shape[1]),
                  "y": np.arange(s.shape[2], dtype=np.float64),
                  "x": np.arange(s.shape[3], dtype=np.float64)}
        data = {"mean": (dims, s.mean(0).numpy()),
                "std": (dims, s.std(0, correction=0).numpy())}
        if quantiles:
            if not all(isinstance(v, (int, float)) and 0 < v < 1 for v in quantiles):
                raise InputError(f"quantiles must be numbers strictly between 0 and 1, got {quantiles!r}",
                                 field="quantiles")
            q = torch.tensor(quantiles, dtype=torch.float32)
            data["quantiles"] = (("quantile",) + dims, torch.quantile(s, q, dim=0).numpy())
            coords["quantile"] = np.asarray(quantiles, dtype=np.float64)
        if keep_samples:
            data["samples"] = (("sample",) + dims, s.numpy())
            coords["sample"] = np.arange(s.shape[0])
        ds = xr.Dataset(data, coords=coords, attrs=_jsonable_attrs(attrs or {}))
        ds["y"].attrs["units"] = ds["x"].attrs["units"] = "pixel"
        if units is None:
            config = (attrs or {}).get("config")
            units = config.get("transform", {}).get("unit", "") if isinstance(config, dict) else ""
        for name in data:
            ds[name].attrs["units"] = units
        ds.attrs["n_samples"] = int(s.shape[0])
        return cls(ds)

    # -- convenient views -------------------------------------------------
    @property
    def mean(self) -> xr.DataArray:
        return self.dataset["mean"]

    @property
    def std(self) -> xr.DataArray:
        return self.dataset["std"]

    @property
    def samples(self) -> xr.DataArray | None:
        return self.dataset.get("samples")

    @property
    def config(self) -> dict:
        return json.loads(self.dataset.attrs.get("config", "{}"))

    @property
    def seeds(self) -> list[int]:
        return json.loads(self.dataset.attrs.get("seeds", "[]"))

    @property
    def wcs(self):
        """The sky image's :class:`astropy.wcs.WCS` (from ``attrs["wcs_header"]``), or None."""
        header = self.dataset.attrs.get("wcs_header")
        if header is None:
            return None
        from astropy.io import fits
        from astropy.wcs import WCS

        return WCS(fits.Header.fromstring(header))

    @property
    def calibration(self):
        """The :class:`~reddiff.uncertainty.Calibration` applied to this result, or None."""
        from .uncertainty import Calibration

        text = self.dataset.attrs.get("calibration")
        return None if text is None else Calibration.from_dict(json.loads(text))

    def calibrated(self, calibration, *, check: bool = True) -> "Reconstruction":
        """A copy with calibrated ``std_calibrated``, ``lower`` and ``upper`` (see
        :func:`reddiff.uncertainty.calibrate`)."""
        from .uncertainty import calibrate

        return calibrate(self, calibration, check=check)

    def in_units(self, *, scale: float, offset: float = 0.0, units: str) -> "Reconstruction":
        r"""A copy in other units, :math:`v' = s\,v + o` (e.g. 1/mm to HU).

        Images (mean, quantiles, samples, interval bounds) are mapped affinely,
        spreads (``std``, ``std_calibrated``) scaled by :math:`|s|`.

        Examples
        --------
        >>> rec = Reconstruction.from_samples(torch.tensor([0.0, 2.0]).view(2, 1, 1, 1))
        >>> hu = rec.in_units(scale=10.0, offset=-5.0, units="HU")
        >>> hu.mean.item(), hu.std.item(), hu.mean.attrs["units"]
        (5.0, 10.0, 'HU')
        """
        ds = self.dataset.copy()
        for name in ds.data_vars:
            spread = name in SPREADS
            ds[name] = ds[name] * abs(scale) if spread else ds[name] * scale + offset
            ds[name].attrs = {**self.dataset[name].attrs, "units": units}
        return Reconstruction(ds)

    def tensor(self, name: str = "mean") -> torch.Tensor:
        """A variable as a torch tensor with a leading batch axis, ``(1, C, H, W)``."""
        return torch.from_numpy(np.ascontiguousarray(self.dataset[name].values))[None]

    def magnitude(self, name: str = "mean") -> xr.DataArray:
        """Pixel magnitude over channels (``|real + i imag|`` for complex images)."""
        return np.sqrt((self.dataset[name] ** 2).sum("channel"))

    @classmethod
    def stack(cls, results, *, dim: str = "slice", index=None, attrs: dict | None = None) -> "Reconstruction":
        """Results of the slices of one volume as one, with a leading ``dim`` axis.

        Parameters
        ----------
        results : sequence of Reconstruction
            Same grid size and variables; the stack keeps the first result's ``y``/``x``
            coordinates (slices of a sheared stack, e.g. a tilted CT gantry, differ in-plane
            by a shift that a 1-D grid cannot hold: their true positions are in the DICOM
            and NIfTI outputs).
        dim : str
        index : sequence of int, optional
            The slice numbers (the ``dim`` coordinate); default 0, 1, ...
        attrs : dict, optional
            Attributes of the stack (default the first result's).

        Examples
        --------
        >>> parts = [Reconstruction.from_samples(torch.full((2, 1, 3, 4), float(k))) for k in range(3)]
        >>> volume = Reconstruction.stack(parts, index=[5, 6, 7])
        >>> volume.mean.dims, float(volume.mean.sel(slice=6).max())
        (('slice', 'channel', 'y', 'x'), 1.0)
        """
        results = list(results)
        if not results:
            raise InputError("nothing to stack", field="results")
        index = list(range(len(results))) if index is None else [int(i) for i in index]
        stacked = xr.concat([r.dataset for r in results], dim=dim, join="override", combine_attrs="override")
        stacked = stacked.assign_coords({dim: np.asarray(index)})
        stacked.attrs = dict(results[0].dataset.attrs if attrs is None else attrs)
        return cls(stacked)

    # -- files --------------------------------------------------------------
    def to_netcdf(self, path) -> Path:
        """Write the dataset to NetCDF-4 atomically (temporary file, then rename), with CF-1.8
        metadata (:func:`cf_encoded`)."""
        ds = cf_encoded(self.dataset)
        encoding = {name: {"_FillValue": None} for name in ds.coords}
        return atomic_write(path, lambda tmp: ds.to_netcdf(tmp, engine="h5netcdf", encoding=encoding))

    @classmethod
    def from_netcdf(cls, path) -> "Reconstruction":
        """Read a result written by :meth:`to_netcdf`."""
        path = Path(path)
        if not path.is_file():
            raise InputError("no such file", path=path)
        try:
            with xr.open_dataset(path, engine="h5netcdf") as ds:
                return cls(cf_decoded(ds.load()))
        except (OSError, ValueError) as err:
            raise InputError(f"not a readable NetCDF result ({err})", path=path) from err


#: Units reddiff uses that UDUNITS (and so CF) does not know: written as "1" with the
#: unit kept in ``reddiff_units`` and said in ``long_name``.
NON_UDUNITS = {"HU": "Hounsfield units", "a.u.": "arbitrary units", "electron": "electrons",
               "pixel": "pixels", "": "unitless"}
LONG_NAMES = {"mean": "posterior mean image", "std": "standard deviation over RED-Diff runs",
              "quantiles": "per-pixel quantiles over RED-Diff runs", "samples": "RED-Diff runs",
              "std_calibrated": "calibrated standard deviation", "lower": "lower interval bound",
              "upper": "upper interval bound"}


#: The ``comment`` files carry on ``y``: how rows run, and so how to draw the image right side up.
ROW_ORDER = {"image": "rows run top to bottom (y grows down the image): draw with "
                      "ds['mean'].isel(channel=0).plot(yincrease=False)",
             "sky": "rows run bottom to top (FITS): xarray's default plot is right side up"}


def cf_encoded(ds: xr.Dataset) -> xr.Dataset:
    """A copy with CF-1.8 metadata for files: ``Conventions``, ``title``, ``history``,
    ``long_name`` and UDUNITS ``units`` on every variable, ``axis`` on ``x``/``y``.

    Examples
    --------
    >>> rec = Reconstruction.from_samples(torch.zeros(2, 1, 3, 3), units="HU")
    >>> encoded = cf_encoded(rec.dataset)
    >>> encoded.attrs["Conventions"], encoded["mean"].attrs["units"], encoded["mean"].attrs["reddiff_units"]
    ('CF-1.8', '1', 'HU')
    >>> cf_decoded(encoded)["mean"].attrs["units"]
    'HU'
    """
    import datetime

    from . import __version__

    ds = ds.copy()
    ds.attrs.setdefault("Conventions", "CF-1.8")
    ds.attrs.setdefault("title", "RED-Diff reconstruction")
    ds.attrs.setdefault("source", f"reddiff {__version__}")
    if "history" not in ds.attrs:
        now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        ds.attrs["history"] = f"{now} reddiff {__version__}: RED-Diff reconstruction"
    for name in list(ds.variables):
        attrs = dict(ds[name].attrs)
        if name in LONG_NAMES:
            attrs.setdefault("long_name", LONG_NAMES[name])
        units = attrs.get("units")
        if units in NON_UDUNITS:
            attrs["reddiff_units"], attrs["units"] = units, "1"
            attrs["long_name"] = f"{attrs.get('long_name', name)} ({NON_UDUNITS[units]})"
        if name in ("x", "y"):
            attrs.update(axis=name.upper(), long_name=attrs.get("long_name", f"{name} position of pixel centres"))
        if name == "y":
            attrs.setdefault("comment", ROW_ORDER["sky" if "wcs_header" in ds.attrs else "image"])
        ds[name].attrs = attrs
    return ds


def cf_decoded(ds: xr.Dataset) -> xr.Dataset:
    """The inverse of :func:`cf_encoded` for reddiff's own units (``reddiff_units`` back to ``units``)."""
    for name in list(ds.variables):
        attrs = ds[name].attrs
        if "reddiff_units" in attrs:
            attrs["units"] = attrs.pop("reddiff_units")
            attrs["long_name"] = attrs.get("long_name", "").rsplit(" (", 1)[0]
        defaults = {LONG_NAMES.get(name, name), f"{name} position of pixel centres"}
        if attrs.get("long_name") in defaults:
            attrs.pop("long_name")
        if name in ("x", "y") and attrs.get("axis") == name.upper():
            del attrs["axis"]
        if name == "y" and attrs.get("comment") in ROW_ORDER.values():
            del attrs["comment"]
    for key in ("Conventions", "title", "source", "history"):
        ds.attrs.pop(key, None)
    return ds


def with_coords(reconstruction: Reconstruction, *, spacing=(1.0, 1.0), origin=(0.0, 0.0),
                units: str = "mm") -> Reconstruction:
    r"""A copy whose ``y``/``x`` coordinates are physical pixel centres.

    .. math:: y_i = y_0 + i\,\Delta y, \qquad x_j = x_0 + j\,\Delta x

    Parameters
    ----------
    reconstruction : Reconstruction
    spacing : (float, float)
        Pixel spacing :math:`(\Delta y, \Delta x)` in ``units`` (e.g. DICOM PixelSpacing
        is row spacing then column spacing), non-zero.
    origin : (float, float)
        Centre of pixel ``(0, 0)``, :math:`(y_0, x_0)`.
    units : str
        Unit of the coordinates.

    Examples
    --------
    >>> import torch
    >>> rec = Reconstruction.from_samples(torch.zeros(2, 1, 3, 4))
    >>> with_coords(rec, spacing=(0.5, 0.7)).dataset["x"].values.round(2).tolist()
    [0.0, 0.7, 1.4, 2.1]
    """
    (dy, dx), (y0, x0) = _pair(spacing, "spacing"), _pair(origin, "origin")
    if dy == 0 or dx == 0:
        raise InputError(f"spacing must be non-zero, got {spacing!r}", field="spacing")
    ds = reconstruction.dataset
    ds = ds.assign_coords(y=y0 + dy * np.arange(ds.sizes["y"]), x=x0 + dx * np.arange(ds.sizes["x"]))
    ds["y"].attrs["units"] = ds["x"].attrs["units"] = units
    return Reconstruction(ds)


def with_wcs(reconstruction: Reconstruction, header) -> Reconstruction:
    """A copy carrying a sky image's world coordinate system.

    The header is stored as a string in ``attrs["wcs_header"]`` (read it back with
    :attr:`Reconstruction.wcs`); for a celestial WCS, 2-D coordinates ``ra`` and
    ``dec`` (degrees, ``(y, x)``) are added. ``y``/``x`` stay pixel indices, which
    is what the WCS maps from (0-based).

    Parameters
    ----------
    reconstruction : Reconstruction
    header : astropy.io.fits.Header, astropy.wcs.WCS or str
        The image's FITS header (or its WCS).
    """
    from astropy.io import fits
    from astropy.wcs import WCS

    try:
        if isinstance(header, WCS):
            wcs = header
        else:
            if isinstance(header, str):
                header = fits.Header.fromstring(header, sep="\n" if "\n" in header else "")
            wcs = WCS(header)
    except Exception as err:  # astropy raises many types for a bad header
        raise InputError(f"not a FITS WCS header ({err})", field="header") from err
    wcs = wcs.celestial if wcs.has_celestial else wcs
    if wcs.naxis != 2:
        raise InputError(f"need a 2-D WCS, got {wcs.naxis} axes", field="header")
    ds = reconstruction.dataset.copy()
    ds.attrs["wcs_header"] = wcs.to_header(relax=True).tostring()  # relax: SIP distortion kept
    if wcs.has_celestial:
        yy, xx = np.meshgrid(np.arange(ds.sizes["y"]), np.arange(ds.sizes["x"]), indexing="ij")
        ra, dec = wcs.pixel_to_world_values(xx, yy)
        ds = ds.assign_coords(ra=(("y", "x"), ra), dec=(("y", "x"), dec))
        ds["ra"].attrs["units"] = ds["dec"].attrs["units"] = "deg"
    return Reconstruction(ds)


def _pair(value, name: str) -> tuple[float, float]:
    try:
        a, b = (float(v) for v in value)
    except (TypeError, ValueError) as err:
        raise InputError(f"{name} must be two numbers (y, x), got {value!r}", field=name) from err
    if not (np.isfinite(a) and np.isfinite(b)):
        raise InputError(f"{name} must be finite, got {value!r}", field=name)
    return a, b


def _jsonable_attrs(attrs: dict) -> dict:
    """NetCDF attrs must be numbers, strings or arrays: encode dicts and lists as JSON."""
    out = {}
    for key, value in attrs.items():
        if isinstance(value, (dict, list, tuple)):
            out[key] = json.dumps(value, default=str)
        elif isinstance(value, bool):
            out[key] = int(value)
        elif value is None:
            continue
        else:
            out[key] = value
    return out
