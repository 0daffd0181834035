"""Figures of a reconstruction and its uncertainty (matplotlib, no pyplot state).

Figures are built on :class:`matplotlib.figure.Figure` directly, so they need no
GUI backend and leave pyplot's global figure list alone; save with ``path=`` or
``fig.savefig``.
"""

from __future__ import annotations

import numpy as np
import torch
import xarray as xr
from matplotlib.figure import Figure

from .errors import InputError
from .files import atomic_write
from .result import Reconstruction
from .uncertainty import normal_quantile, std_error_correlation

IMAGE_CMAP = "gray"
ERROR_CMAP = "magma"
MAX_SCATTER_POINTS = 20_000


def uncertainty_figure(reconstruction: Reconstruction, *, measurement_image=None, baseline=None,
                       truth=None, title: str | None = None, path=None,
                       level: float = 0.9, labels: dict | None = None) -> Figure:
    r"""One figure: measurement, baseline, truth, mean, std, \|error\| and std-vs-error.

    Panels appear only for what is given: the measurement image (e.g. a zero-filled
    MRI or an FBP), a baseline reconstruction, and — when the truth is known — the
    truth, the absolute error of the mean and a scatter of std against \|error\|.
    Complex images are shown as magnitudes (the std as
    :math:`\sqrt{s_\text{re}^2 + s_\text{im}^2}`); the calibrated std is shown when the
    result has one. Images share one colour scale, std and error another, so they
    can be compared; axes are the result's physical coordinates (mm, or RA/Dec from
    its WCS).

    Parameters
    ----------
    reconstruction : reddiff.Reconstruction
    measurement_image, baseline, truth : array-like, optional
        Images ``(H, W)``, ``(C, H, W)`` or ``(1, C, H, W)`` in the result's units.
    title : str, optional
        Figure title.
    path : str or Path, optional
        Also write the figure there as PNG (atomically).
    level : float
        Central level of the nominal half-width line in the scatter panel.
    labels : dict, optional
        Panel titles for ``"measurement"``, ``"baseline"`` and ``"truth"`` (e.g.
        ``{"baseline": "FBP (Hann)"}``); default their capitalised names.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import torch
    >>> from reddiff import Reconstruction
    >>> rec = Reconstruction.from_samples(torch.randn(4, 1, 8, 8, generator=torch.Generator().manual_seed(0)))
    >>> fig = uncertainty_figure(rec, truth=torch.zeros(1, 8, 8))
    >>> len(fig.axes) > 4   # image panels, colour bars and the scatter
    True
    """
    if not isinstance(getattr(reconstruction, "dataset", None), xr.Dataset):
        raise InputError(f"expected a Reconstruction, got {type(reconstruction).__name__}",
                         field="reconstruction")
    mean = _magnitude(reconstruction.dataset["mean"].values, "mean")
    std_name = "std_calibrated" if "std_calibrated" in reconstruction.dataset else "std"
    std = _magnitude(reconstruction.dataset[std_name].values, std_name)
    given = {"measurement": measurement_image, "baseline": baseline, "truth": truth}
    shown = {name: _magnitude(value, name) for name, value in given.items() if value is not None}
    error = None
    if truth is not None:
        error = np.abs(_magnitude(
            reconstruction.dataset["mean"].values - _channels(truth, reconstruction), "truth"))

    reference = shown.get("truth", mean)
    image_range = (float(reference.min()), float(reference.max()))
    spread_max = float(max(np.percentile(std, 99.5),
                           np.percentile(error, 99.5) if error is not None else 0.0)) or 1.0
    units = reconstruction.mean.attrs.get("units", "")
    labels = labels or {}
    panels = [(labels.get(n, n.capitalize()), v, IMAGE_CMAP, image_range) for n, v in shown.items()]
    panels.append(("Mean", mean, IMAGE_CMAP, image_range))
    std_label = "Std (calibrated)" if std_name == "std_calibrated" else "Std"
    panels.append((std_label, std, ERROR_CMAP, (0.0, spread_max)))
    if error is not None:
        panels.append(("|Error|", error, ERROR_CMAP, (0.0, spread_max)))

    n_panels = len(panels) + (error is not None)
    cols = min(4, n_panels)
    rows = -(-n_panels // cols)
    fig = Figure(figsize=(4.2 * cols, 3.8 * rows), layout="constrained")
    for i, (name, image, cmap, (vmin, vmax)) in enumerate(panels):
        ax = _image_axes(fig, rows, cols, i + 1, reconstruction, image.shape)
        artist = ax.imshow(image, cmap=cmap, vmin=vmin, vmax=vmax,
                           **_placement(reconstruction, image.shape))
        ax.set_title(name)
        fig.colorbar(artist, ax=ax, shrink=0.85, label=units)
    if error is not None:
        _scatter(fig.add_subplot(rows, cols, n_panels), std, error, level, std_label, units)
    if title:
        fig.suptitle(title)
    if path is not None:
        atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110))
    return fig


def _scatter(ax, std, error, level, std_label, units) -> None:
    """Std against |error| per pixel, with the nominal half-width line |error| = z std."""
    s, e = std.ravel(), error.ravel()
    step = max(1, s.size // MAX_SCATTER_POINTS)
    ax.scatter(s[::step], e[::step], s=3, alpha=0.4, linewidths=0)
    top = float(max(s.max(), 1e-12))
    z = normal_quantile(level)
    ax.plot([0, top], [0, z * top], color="C3", label=f"|error| = {z:.2f} std ({level:.0%} interval)")
    ax.set_xlabel(f"{std_label.lower()} ({units})" if units else std_label.lower())
    ax.set_ylabel(f"|error| ({units})" if units else "|error|")
    ax.set_title(f"Std vs |error| (corr {std_error_correlation(s, e):.2f})")
    ax.legend(loc="upper left", fontsize="small")


def _image_axes(fig, rows, cols, index, reconstruction, shape):
    """A plain axes in physical units, or a WCS axes (RA/Dec) for a sky image of the result's size."""
    same_grid = shape == (reconstruction.dataset.sizes["y"], reconstruction.dataset.sizes["x"])
    wcs = reconstruction.wcs if same_grid else None
    if wcs is not None:
        ax = fig.add_subplot(rows, cols, index, projection=wcs)
        ax.set_xlabel("RA")
        ax.set_ylabel("Dec")
        return ax
    ax = fig.add_subplot(rows, cols, index)
    coords = reconstruction.dataset
    units = coords["x"].attrs.get("units", "pixel") if same_grid else "pixel"
    ax.set_xlabel(f"x ({units})")
    ax.set_ylabel(f"y ({units})")
    return ax


def _placement(reconstruction, shape) -> dict:
    """``imshow`` origin and extent: sky images row 0 at the bottom (FITS), others at the
    top (DICOM, NIfTI slices) with the extent from the pixel-centre coordinates."""
    ds = reconstruction.dataset
    if reconstruction.wcs is not None:
        return {"origin": "lower"}
    if shape != (ds.sizes["y"], ds.sizes["x"]):
        return {"origin": "upper"}
    (x0, x1), (y0, y1) = (_edges(ds[axis].values.astype(np.float64)) for axis in ("x", "y"))
    return {"origin": "upper", "extent": [x0, x1, y1, y0]}


def _edges(centres: np.ndarray) -> tuple[float, float]:
    half = (centres[1] - centres[0]) / 2 if centres.size > 1 else 0.5
    return float(centres[0] - half), float(centres[-1] + half)


def _numpy(value, name: str) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    elif isinstance(value, (xr.DataArray, xr.Variable)):
        value = value.values
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise InputError(f"{name} must be an image array or tensor ({err})", field=name) from err
    if array.ndim == 4 and array.shape[0] == 1:
        array = array[0]
    if array.ndim not in (2, 3):
        raise InputError(f"{name} must be (H, W), (C, H, W) or (1, C, H, W), got shape "
                         f"{array.shape}", field=name)
    return array


def _magnitude(value, name: str) -> np.ndarray:
    """``(H, W)`` magnitude over channels (the image itself for one channel)."""
    array = _numpy(value, name)
    if array.ndim == 2:
        return array
    return array[0] if array.shape[0] == 1 else np.sqrt((array**2).sum(axis=0))


def _channels(truth, reconstruction) -> np.ndarray:
    """The truth as ``(C, H, W)`` like the result's mean."""
    array = _numpy(truth, "truth")
    expected = reconstruction.mean.shape
    if array.ndim == 2 and expected[0] == 1:
        array = array[None]
    if array.shape != expected:
        raise InputError(f"truth has shape {array.shape}; expected {expected}", field="truth")
    return array
