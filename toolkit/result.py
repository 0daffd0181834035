"""The result of a reconstruction: an :class:`xarray.Dataset` with provenance.

Layout (all float32, physical units of the image)::

    mean      (channel, y, x)            posterior mean over samples
    std       (channel, y, x)            standard deviation over samples (ddof=0)
    quantiles (quantile, channel, y, x)  per-pixel quantiles over samples
    samples   (sample, channel, y, x)    the samples themselves (optional)

Coordinates ``y`` and ``x`` are pixel centres, in pixels unless a reader gave
physical ones (mm for medical images; a WCS header in attrs for sky images).
``channel`` is ``["intensity"]`` for real images and ``["real", "imag"]`` for
complex ones. ``attrs`` hold ``config`` (JSON), ``seeds`` (JSON list), timings and
versions, so any result can be reproduced from its file.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import xarray as xr

from .errors import InputError

DEFAULT_QUANTILES = (0.05, 0.5, 0.95)


def channel_names(n_channels: int) -> list[str]:
    """``["intensity"]`` for one channel, ``["real", "imag"]`` for two, else ``c0, c1, ...``."""
    if n_channels == 1:
        return ["intensity"]
    if n_channels == 2:
        return ["real", "imag"]
    return [f"c{i}" for i in range(n_channels)]


def atomic_write(path, write) -> Path:
    """Call ``write(tmp_path)`` then rename the temporary file onto ``path``.

    Nothing is left at ``path`` (nor a stray temporary file) if ``write`` fails.
    """
    path = Path(path)
    if not path.parent.is_dir():
        raise InputError("output folder does not exist", path=path.parent)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


@dataclass
class Reconstruction:
    """A reconstruction with its uncertainty, wrapping an :class:`xarray.Dataset`.

    Build one with :meth:`from_samples`; save with :meth:`to_netcdf` and load with
    :meth:`from_netcdf`.
    """

    dataset: xr.Dataset

    @classmethod
    def from_samples(cls, samples: torch.Tensor, *, quantiles=DEFAULT_QUANTILES,
                     keep_samples: bool = False, attrs: dict | None = None) -> "Reconstruction":
        """Summarise samples of shape ``(n_samples, C, H, W)`` (physical units)."""
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
            q = torch.tensor(quantiles, dtype=torch.float32)
            data["quantiles"] = (("quantile",) + dims, torch.quantile(s, q, dim=0).numpy())
            coords["quantile"] = np.asarray(quantiles, dtype=np.float64)
        if keep_samples:
            data["samples"] = (("sample",) + dims, s.numpy())
            coords["sample"] = np.arange(s.shape[0])
        ds = xr.Dataset(data, coords=coords, attrs=_jsonable_attrs(attrs or {}))
        ds["y"].attrs["units"] = ds["x"].attrs["units"] = "pixel"
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

    def tensor(self, name: str = "mean") -> torch.Tensor:
        """A variable as a torch tensor with a leading batch axis, ``(1, C, H, W)``."""
        return torch.from_numpy(np.ascontiguousarray(self.dataset[name].values))[None]

    def magnitude(self, name: str = "mean") -> xr.DataArray:
        """Pixel magnitude over channels (``|real + i imag|`` for complex images)."""
        return np.sqrt((self.dataset[name] ** 2).sum("channel"))

    # -- files --------------------------------------------------------------
    def to_netcdf(self, path) -> Path:
        """Write the dataset to NetCDF-4 atomically (temporary file, then rename)."""
        return atomic_write(path, lambda tmp: self.dataset.to_netcdf(tmp, engine="h5netcdf"))

    @classmethod
    def from_netcdf(cls, path) -> "Reconstruction":
        """Read a result written by :meth:`to_netcdf`."""
        path = Path(path)
        if not path.is_file():
            raise InputError("no such file", path=path)
        try:
            with xr.open_dataset(path, engine="h5netcdf") as ds:
                return cls(ds.load())
        except (OSError, ValueError) as err:
            raise InputError(f"not a readable NetCDF result ({err})", path=path) from err


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
