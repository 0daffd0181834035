"""The result of a reconstruction: an :class:`xarray.Dataset` with provenance.

Layout in memory (all float32, physical units of the image; files differ, below)::

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

Files (:meth:`Reconstruction.to_netcdf`, CF-1.8: :func:`cf_encoded`) name the variables
``reconstruction_mean``, ``reconstruction_std``, ``reconstruction_quantiles``, ... (``ds.mean``
is the Dataset's own method), drop a real image's one-channel axis, write a complex image's
parts as ``*_real``/``*_imag`` with ``reconstruction_mean``/``reconstruction_std`` their
magnitudes, and store medical images bottom row first with ``y`` pointing up, so with xarray
alone ``xr.open_dataset("reconstruction.nc")["reconstruction_mean"].plot()`` draws any result
right side up (``.isel(slice=k)`` first for a volume). :meth:`Reconstruction.from_netcdf`
undoes all of it, and reads files written before the renaming (``mean``, ``std``, ...).
CF's ``positive`` attribute is not used for the row order: CF defines it for vertical
coordinates only, and xarray ignores it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
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

    # -- Jupyter ------------------------------------------------------------
    def _repr_html_(self) -> str:
        """A card for Jupyter: thumbnails of mean and std, units, key settings, then the Dataset.

        Examples
        --------
        >>> html = Reconstruction.from_samples(torch.rand(2, 1, 8, 8), units="HU")._repr_html_()
        >>> "<img" in html and "HU" in html
        True
        """
        import html

        ds, config = self.dataset, self.config
        units = html.escape(str(self.mean.attrs.get("units", "")) or "unitless")
        std_name = "std_calibrated" if "std_calibrated" in ds else "std"
        cells = "".join(_thumbnail_cell(self, name, title, cmap) for name, title, cmap in
                        (("mean", "mean", "gray"), (std_name, std_name.replace("_", " "), "magma")))
        settings = {"modality": ds.attrs.get("modality"), "prior": config.get("prior"),
                    "steps": config.get("steps"), "lr": config.get("lr"), "lam": config.get("lam"),
                    "weighting": config.get("weighting"), "n_samples": ds.attrs.get("n_samples"),
                    "PSNR (dB)": _rounded(ds.attrs.get("psnr_db")),
                    f"{ds.attrs.get('baseline', 'baseline')} PSNR (dB)": _rounded(ds.attrs.get("baseline_psnr_db")),
                    "calibration": ds.attrs.get("calibration_source") if "calibration" in ds.attrs else None}
        rows = "".join(f"<tr><th style='text-align:left'>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>"
                       for k, v in settings.items() if v is not None)
        grid = "&times;".join(str(ds.sizes[d]) for d in ("slice", "y", "x") if d in ds.sizes)
        channels = ", ".join(str(c) for c in ds["channel"].values) if "channel" in ds.coords else ""
        return (f"<div class='reddiff-reconstruction'><b>reddiff.Reconstruction</b> {grid} px"
                f" ({html.escape(channels)}), units <b>{units}</b>"
                f"<table><tr>{cells}<td style='vertical-align:top'><table>{rows}</table></td></tr></table>"
                f"<details><summary>xarray.Dataset</summary>{ds._repr_html_()}</details></div>")

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


#: Units reddiff uses that UDUNITS (and so CF) does not know, as ``unit: (file units, words)``:
#: the file carries the UDUNITS ``units``, the words in ``long_name`` and reddiff's own unit
#: in ``reddiff_units`` (so :func:`cf_decoded` gives it back).
NON_UDUNITS = {"HU": ("1", "Hounsfield units"), "a.u.": ("1", "arbitrary units"),
               "electron": ("count", "electrons"), "pixel": ("1", "pixels"), "": ("1", "unitless"),
               "deg": ("degree", "degrees")}
LONG_NAMES = {"mean": "posterior mean image", "std": "standard deviation over RED-Diff runs",
              "quantiles": "per-pixel quantiles over RED-Diff runs", "samples": "RED-Diff runs",
              "std_calibrated": "calibrated standard deviation", "lower": "lower interval bound",
              "upper": "upper interval bound", "quantile": "quantile level", "sample": "RED-Diff run",
              "slice": "slice number", "ra": "right ascension", "dec": "declination"}

#: In-memory variable name -> its name in files. ``ds.mean``, ``ds.std`` are xarray's own methods,
#: so files prefix every image variable (as fastMRI's ``reconstruction_rss`` does).
FILE_NAMES = {name: f"reconstruction_{name}" for name in
              ("mean", "std", "quantiles", "samples", "std_calibrated", "lower", "upper")}
#: Complex variables also written as one real image (mean: ``|mean|``; std: root sum of squares of
#: the real and imaginary parts' spreads, as the DICOM, FITS and NIfTI outputs show them).
MAGNITUDES = {"mean": "magnitude of the posterior mean image",
              "std": "standard deviation over RED-Diff runs (root sum of squares over real and imaginary parts)"}
COMPLEX_PARTS = ("real", "imag")

#: The ``comment`` files carry on ``y``: how rows run, and so how to draw the image right side up.
ROW_ORDER = {"image": "row 0 is the bottom of the image and y grows up it, so "
                      "ds['reconstruction_mean'].plot() draws it right side up; y is minus the "
                      "position along the image's row direction (DICOM column direction), and "
                      "reddiff.Reconstruction.from_netcdf gives rows back top to bottom",
             "sky": "rows run bottom to top (FITS): ds['reconstruction_mean'].plot() is right side up"}

#: Global attributes of every result file.
REFERENCES = ("Mardani, Song, Kautz & Vahdat, A Variational Perspective on Solving Inverse Problems "
              "with Diffusion Models, ICLR 2024, arXiv:2305.04391")


def cf_encoded(ds: xr.Dataset) -> xr.Dataset:
    """A copy laid out and described for files, CF-1.8 compliant.

    - variables named ``reconstruction_mean``, ``reconstruction_std``, ... (:data:`FILE_NAMES`);
    - a real image's one-channel axis dropped, so ``reconstruction_mean`` is ``(y, x)``
      (or ``(slice, y, x)``); a complex one written as ``{name}_real`` and ``{name}_imag``,
      with ``reconstruction_mean`` and ``reconstruction_std`` its magnitudes
      (:data:`MAGNITUDES`), so every file's ``reconstruction_mean`` plots as an image;
    - medical images (no ``wcs_header``) stored bottom row first with ``y`` negated
      (:data:`ROW_ORDER`), so xarray's default plot, and viewers that draw row 0 at the
      bottom, show them right side up; sky images keep FITS's order;
    - ``Conventions``, ``title``, ``history``, ``source``, ``references``; ``long_name``
      and UDUNITS ``units`` on every variable (:data:`NON_UDUNITS`); ``x``/``y`` in a
      length (mm) get ``axis`` ``X``/``Y`` and ``standard_name`` ``projection_x_coordinate``
      / ``projection_y_coordinate`` (CF's names for Cartesian coordinates on a plane;
      without them compliance-checker takes an ``axis: Y`` coordinate for a latitude, see
      ioos/compliance-checker#1064). Pixel indices (a sky image's grid, whose world
      coordinates are ``ra``/``dec`` and the WCS) have no such name, and with ``axis`` the
      checker asks for latitudes and longitudes: they get ``cartesian_axis`` instead, which
      cf-xarray reads as ``axis`` (``ds.cf["X"]``) and CF leaves alone.

    :func:`cf_decoded` is its inverse.

    Examples
    --------
    >>> rec = Reconstruction.from_samples(torch.zeros(2, 1, 3, 3), units="HU")
    >>> encoded = cf_encoded(rec.dataset)
    >>> encoded.attrs["Conventions"], encoded["reconstruction_mean"].dims
    ('CF-1.8', ('y', 'x'))
    >>> encoded["reconstruction_mean"].attrs["units"], encoded["reconstruction_mean"].attrs["reddiff_units"]
    ('1', 'HU')
    >>> decoded = cf_decoded(encoded)
    >>> decoded["mean"].dims, decoded["mean"].attrs["units"]
    (('channel', 'y', 'x'), 'HU')
    """
    ds = _global_attrs(ds.copy())
    sky = "wcs_header" in ds.attrs
    if not sky and "y" in ds.dims:
        ds = _flip_rows(ds)
    ds = _split_channels(ds.rename({k: v for k, v in FILE_NAMES.items() if k in ds.data_vars}))
    for name in list(ds.variables):
        ds[name].attrs = _cf_attrs(name, dict(ds[name].attrs), ds[name].dtype.kind)
    if "y" in ds.variables:
        ds["y"].attrs.setdefault("comment", ROW_ORDER["sky" if sky else "image"])
    return ds


def _global_attrs(ds: xr.Dataset) -> xr.Dataset:
    import datetime

    from . import __version__

    ds.attrs.setdefault("Conventions", "CF-1.8")
    ds.attrs.setdefault("title", "RED-Diff reconstruction")
    ds.attrs.setdefault("source", f"reddiff {__version__}")
    ds.attrs.setdefault("references", REFERENCES)
    if "history" not in ds.attrs:
        now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        ds.attrs["history"] = f"{now} reddiff {__version__}: RED-Diff reconstruction"
    return ds


def _flip_rows(ds: xr.Dataset) -> xr.Dataset:
    """Rows reversed and ``y`` negated (its own inverse): top-to-bottom <-> bottom-to-top."""
    attrs = dict(ds["y"].attrs)
    ds = ds.isel(y=slice(None, None, -1))
    ds = ds.assign_coords(y=-ds["y"])
    ds["y"].attrs = attrs
    if "reddiff_rows" in attrs:  # decoding: back to reddiff's top-to-bottom rows
        del ds["y"].attrs["reddiff_rows"]
    else:
        ds["y"].attrs["reddiff_rows"] = "bottom_to_top"
    return ds


def _split_channels(ds: xr.Dataset) -> xr.Dataset:
    """A real image's channel axis dropped; a complex image's written as ``_real``/``_imag`` parts."""
    if "channel" not in ds.dims:
        return ds
    labels = [str(v) for v in ds["channel"].values]
    if labels == ["intensity"]:
        return ds.squeeze("channel", drop=True)
    if labels != list(COMPLEX_PARTS):
        return ds  # other channel layouts are written as they are
    for name in [n for n in ds.data_vars if "channel" in ds[n].dims]:
        variable = ds[name]
        for part in COMPLEX_PARTS:
            ds[f"{name}_{part}"] = variable.sel(channel=part, drop=True)
            ds[f"{name}_{part}"].attrs = dict(variable.attrs)
        ds = ds.drop_vars(name)
        short = name.removeprefix("reconstruction_")
        if short in MAGNITUDES:
            ds[name] = np.sqrt((variable ** 2).sum("channel")).astype(variable.dtype)
            ds[name].attrs = {**variable.attrs, "long_name": MAGNITUDES[short]}
    return ds.drop_vars("channel")


def _cf_attrs(name: str, attrs: dict, kind: str) -> dict:
    short = name.removeprefix("reconstruction_")
    for part in COMPLEX_PARTS:
        if short.endswith(f"_{part}") and short.removesuffix(f"_{part}") in FILE_NAMES:
            base = short.removesuffix(f"_{part}")
            attrs.setdefault("long_name", f"{LONG_NAMES[base]}, {'imaginary' if part == 'imag' else part} part")
    if short in LONG_NAMES:
        attrs.setdefault("long_name", LONG_NAMES[short])
    if name in ("x", "y"):
        attrs.setdefault("long_name", f"{name} position of pixel centres")
        if _is_length(attrs.get("units")):
            attrs.update(axis=name.upper(), standard_name=f"projection_{name}_coordinate")
        else:  # pixel indices: see cf_encoded
            attrs["cartesian_axis"] = name.upper()
    units = attrs.get("units")
    if units in NON_UDUNITS:
        attrs["reddiff_units"], attrs["units"] = units, NON_UDUNITS[units][0]
        attrs["long_name"] = f"{attrs.get('long_name', name)} ({NON_UDUNITS[units][1]})"
    elif units is None and kind in "fiu" and name in ("quantile", "slice", "sample"):
        attrs["units"] = "1"
    return attrs


def _is_length(units) -> bool:
    return units in ("mm", "cm", "m", "um", "µm", "nm", "km")


def cf_decoded(ds: xr.Dataset) -> xr.Dataset:
    """The inverse of :func:`cf_encoded`: reddiff's names, channels, row order and units.

    Also reads files written before the variables were renamed (``mean``, ``std``, ... with
    a ``channel`` axis and rows top to bottom).
    """
    ds = _joined_channels(ds)
    ds = ds.rename({v: k for k, v in FILE_NAMES.items() if v in ds.data_vars})
    if "y" in ds.variables and ds["y"].attrs.get("reddiff_rows") == "bottom_to_top":
        ds = _flip_rows(ds)
    for name in list(ds.variables):
        attrs = ds[name].attrs
        if "reddiff_units" in attrs:
            attrs["units"] = attrs.pop("reddiff_units")
            if "long_name" in attrs:
                attrs["long_name"] = attrs["long_name"].rsplit(" (", 1)[0]
        defaults = {LONG_NAMES.get(name, name), f"{name} position of pixel centres"}
        if "long_name" in attrs and attrs["long_name"] in defaults:
            attrs.pop("long_name")
        if name in ("x", "y"):
            for key in ("axis", "cartesian_axis"):
                if attrs.get(key) == name.upper():
                    del attrs[key]
            if attrs.get("standard_name") == f"projection_{name}_coordinate":
                del attrs["standard_name"]
        if name in ("quantile", "slice", "sample") and attrs.get("units") == "1":
            del attrs["units"]
        if name == "y" and (attrs.get("comment") in ROW_ORDER.values() or _old_row_comment(attrs)):
            del attrs["comment"]
    for key in ("Conventions", "title", "source", "history", "references"):
        ds.attrs.pop(key, None)
    return ds


def _old_row_comment(attrs: dict) -> bool:
    """The ``y`` comment of files written before rows were stored bottom first."""
    return str(attrs.get("comment", "")).startswith(("rows run top to bottom", "rows run bottom to top (FITS): "
                                                                               "xarray's default"))


def _joined_channels(ds: xr.Dataset) -> xr.Dataset:
    """Inverse of :func:`_split_channels`: ``_real``/``_imag`` parts stacked as ``channel``, and a
    one-channel axis put back on images that have none."""
    if "channel" in ds.dims:
        return ds  # an older file, or channels written as they are
    for name, file_name in FILE_NAMES.items():
        parts = [f"{file_name}_{p}" for p in COMPLEX_PARTS]
        if all(p in ds.data_vars for p in parts):
            attrs = dict(ds[parts[0]].attrs)
            attrs.pop("long_name", None)
            joined = xr.concat([ds[p] for p in parts], dim=pd.Index(list(COMPLEX_PARTS), name="channel"))
            ds = ds.drop_vars(parts + ([file_name] if file_name in ds.data_vars else []))
            ds[file_name] = joined.transpose(*_channel_order(joined.dims))
            ds[file_name].attrs = attrs
    if "channel" not in ds.dims:
        images = [n for n in ds.data_vars if {"y", "x"} <= set(ds[n].dims)]
        for name in images:
            variable = ds[name]
            ds[name] = variable.expand_dims(channel=["intensity"], axis=variable.dims.index("y"))
            ds[name].attrs = variable.attrs
    return ds


def _channel_order(dims) -> tuple:
    """``channel`` just before ``y``, the layout of :meth:`Reconstruction.from_samples`."""
    rest = [d for d in dims if d != "channel"]
    at = rest.index("y")
    return tuple(rest[:at] + ["channel"] + rest[at:])


def _thumbnail_cell(reconstruction: Reconstruction, name: str, title: str, cmap: str, size: int = 128) -> str:
    """A table cell with a base64 PNG of a variable's magnitude (middle slice of a volume), at most ``size`` px."""
    import base64
    import html
    import io

    from matplotlib import image as mimage

    values = reconstruction.magnitude(name) if reconstruction.dataset.sizes.get("channel", 1) > 1 \
        else reconstruction.dataset[name].isel(channel=0)
    if "slice" in values.dims:
        values = values.isel(slice=values.sizes["slice"] // 2)
    array = np.asarray(values.values, dtype=np.float64)
    step = max(1, -(-max(array.shape) // size))
    array = array[::step, ::step]
    finite = array[np.isfinite(array)]
    low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    buffer = io.BytesIO()
    origin = "lower" if "wcs_header" in reconstruction.dataset.attrs else "upper"
    mimage.imsave(buffer, np.nan_to_num(array, nan=low), cmap=cmap, vmin=low, vmax=high if high > low else low + 1,
                  format="png", origin=origin)
    encoded = base64.b64encode(buffer.getvalue()).decode("ascii")
    return (f"<td style='text-align:center;vertical-align:top'>{html.escape(title)}<br>"
            f"<img src='data:image/png;base64,{encoded}' width='{size}' style='image-rendering:pixelated'"
            f" alt='{html.escape(title)}'><br><small>{low:.4g} to {high:.4g}</small></td>")


def _rounded(value, digits: int = 2):
    return None if value is None else round(float(value), digits)


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
