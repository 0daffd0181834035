"""Simulated measurement files, in the real layouts, from real images.

No package ships raw k-space, sinograms or a telescope's raw frames with its PSF,
so these writers make them: the physics comes from :mod:`reddiff.operators`
(``mri.simulate``, ``ct.simulate``, ``telescope.simulate``), the layout from the
readers here, and each file reads back with :func:`reddiff.datasets.read_measurement`.

Each writer takes an image as an array (``(H, W)``, or ``(N, H, W)`` slices for
MRI) or anything with ``.array`` (:class:`ImageData`, :class:`SampleImage`,
:class:`DicomVolume`, :class:`SkyImage`), whose ``unit`` and ``spacing`` are used
when given.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from reddiff.errors import InputError

from .fastmri import MRIData, MRIHeader, write_fastmri
from .sinogram import Sinogram, write_sinogram

#: Units a CT image given to :func:`simulate_sinogram` may be in.
CT_UNITS = ("HU", "1/mm")


def simulate_fastmri(image, path, *, acceleration: float | None = 4.0, center_fraction: float = 0.08,
                     coils: int = 8, sigma: float = 0.01, spacing_mm=None, seed: int = 0,
                     readout_oversampling: int = 2):
    r"""Write a fastMRI-style multi-coil HDF5 file simulated from an image.

    Parameters
    ----------
    image : array-like or image object
        ``(H, W)`` or ``(slices, H, W)`` real image (MR intensity, any scale).
    path : str or os.PathLike
        Output ``.h5`` file, written atomically.
    acceleration : float or None
        Undersampling factor (the file gets a ``mask``, like fastMRI test files); None
        writes a fully sampled file (like training files).
    center_fraction, coils, sigma
        Passed to :func:`reddiff.operators.mri.simulate` (``sigma`` relative to the
        image's maximum of 1).
    spacing_mm : (float, float), optional
        Pixel spacing ``(dy, dx)``; default the image's own, else 1 mm.
    seed : int
        Slice ``s`` uses the ``s``-th seed spawned from ``seed`` (its noise); all slices
        share the first slice's mask.
    readout_oversampling : int
        The k-space grid has this many times the image's rows (the readout), as fastMRI's
        brain and knee files do (2): the header's encoded matrix and field of view are that
        many times the recon matrix's, and ``reconstruction_rss`` is the image's size
        (:func:`reddiff.operators.mri.simulate`). 1 writes k-space on the image's own grid,
        where coil maps estimated from the file fit an object that fills the field of view
        poorly.

    Returns
    -------
    pathlib.Path

    Notes
    -----
    Each slice is scaled to maximum 1 (reddiff's MRI convention) and measured as
    :math:`y_c = M\,F(S_c x) + n_c` by the operator. Rows of the k-space are the
    readout (ISMRMRD ``x``), columns the phase encode (``y``), so the mask is one
    flag per column. The header's field of view is the image's size in mm;
    ``reconstruction_rss`` holds the true image (the simulation's ground truth). The
    header is valid ISMRMRD (:meth:`MRIHeader.to_xml`: every column within the encoding
    limits, the nominal 3 T :data:`~reddiff.datasets.fastmri.NOMINAL_H1_RESONANCE_HZ`),
    so fastMRI's ``SliceDataset`` and its transforms read the file.

    Examples
    --------
    >>> import tempfile, os
    >>> from reddiff.datasets import sample_image, read_fastmri
    >>> mr = sample_image("mr_small")
    >>> out = simulate_fastmri(mr, os.path.join(tempfile.mkdtemp(), "mr.h5"), coils=4)  # doctest: +SKIP
    >>> read_fastmri(out).kspace.shape, read_fastmri(out).image_shape  # doctest: +SKIP
    ((1, 4, 128, 64), (64, 64))
    """
    from reddiff.operators import mri

    stack, unit, spacing = _pixels(image, spacing_mm)
    if stack.ndim == 2:
        stack = stack[None]
    kspaces, truths, operator_mask = [], [], None
    for index, slice_seed in enumerate(_seeds(seed, len(stack))):
        scaled = stack[index] / max(float(np.abs(stack[index]).max()), np.finfo(np.float32).tiny)
        m = mri.simulate(torch.from_numpy(scaled)[None, None], acceleration=acceleration or 1.0,
                         center_fraction=center_fraction, mask=operator_mask, coils=coils, sigma=sigma,
                         seed=int(slice_seed), readout_oversampling=readout_oversampling)
        operator_mask = _operator_mask(m)  # one mask for every slice, as in fastMRI files
        kspaces.append(_coil_kspace(m.y))
        truths.append(np.abs(_complex_image(m.x_true)))
    mask = _column_mask(operator_mask, kspaces[0].shape[-2:]) if acceleration is not None else None
    h, w = stack.shape[-2:]
    fov = (h * spacing[0], w * spacing[1], spacing[0])
    encoded_fov = (readout_oversampling * fov[0], *fov[1:])
    header = MRIHeader((readout_oversampling * h, w, 1), encoded_fov, (h, w, 1), fov)
    target = np.stack(truths).astype(np.float32)
    data = MRIData(kspace=np.stack(kspaces), mask=mask, multicoil=True, target=target, header=header,
                   attrs={"acquisition": "simulated", "max": float(target.max()),
                          "norm": float(np.linalg.norm(target)), "patient_id": "simulated",
                          **({"acceleration": float(acceleration), "center_fraction": center_fraction}
                             if acceleration is not None else {}),
                          "sigma": sigma, "seed": seed, "source_unit": unit or "a.u."})
    return write_fastmri(data, path)


def simulate_sinogram(image, path, *, views: int = 90, geometry: str = "parallel", I0: float | None = 1e5,
                      sigma: float | None = None, pixel_spacing_mm: float | None = None, unit: str | None = None,
                      seed: int = 0):
    r"""Write a CT sinogram file (reddiff layout, see :mod:`reddiff.datasets.sinogram`).

    Parameters
    ----------
    image : array-like or image object
        ``(H, W)`` CT image, or ``(slices, H, W)`` stack, in HU (as read from DICOM) or
        linear attenuation ``1/mm``. A :class:`~reddiff.datasets.DicomVolume` (a series
        read with :func:`~reddiff.datasets.read_dicom`) also gives the file its series
        geometry.
    path : str or os.PathLike
        Output ``.h5``/``.nc``/``.npz`` file, written atomically.
    views : int
        Number of projection angles, uniform over :math:`[0, \pi)` (parallel) or
        :math:`[0, 2\pi)` (fan) unless the operator reports its own.
    geometry : {"parallel", "fan"}
    I0 : float or None
        Unattenuated counts per bin: the file holds Poisson counts
        :math:`\mathrm{Poisson}(I_0 e^{-\int \mu})`; None writes line integrals
        (with Gaussian noise ``sigma``).
    sigma : float, optional
        Noise standard deviation of line integrals.
    pixel_spacing_mm : float, optional
        Default: the image's own (square pixels), else 1 mm.
    unit : {"HU", "1/mm"}, optional
        Default: the image's ``unit`` (an image of another unit, such as ``"a.u."`` from a
        ``.npy`` or PNG file, is refused), else HU for a plain array.
    seed : int
        Slice ``s`` of a stack uses the ``s``-th seed spawned from ``seed``; one image uses ``seed``.

    Returns
    -------
    pathlib.Path

    Notes
    -----
    A stack gives one file with a slice axis, each slice measured alike. A DICOM series
    must be one volume: its slices evenly spaced along their normal
    (:func:`reddiff.datasets.dicom.check_slice_spacing`; :func:`read_dicom` has checked
    that they share one series, size, orientation and pixel spacing), and the file keeps
    each slice's position, the orientation, the slice spacing and the headers derived
    series need (``slice_position``, ``image_orientation``, ``dicom_header``). A stack of
    another kind keeps its slice spacing where the image gives one (NIfTI).

    Examples
    --------
    >>> import tempfile, os
    >>> from reddiff.datasets import sample_image, read_sinogram
    >>> ct = sample_image("ct_small")
    >>> out = simulate_sinogram(ct, os.path.join(tempfile.mkdtemp(), "ct.h5"), views=60)  # doctest: +SKIP
    >>> read_sinogram(out).sinogram.shape[0]  # doctest: +SKIP
    60
    """
    from reddiff.operators import ct
    from reddiff.operators.base import check_memory

    array, image_unit, spacing = _pixels(image, None if pixel_spacing_mm is None else (pixel_spacing_mm,) * 2)
    unit = unit or image_unit or "HU"
    if unit not in CT_UNITS:
        raise InputError(f"expected a CT image in 'HU' or '1/mm', got {unit!r}; say which with "
                         "unit='HU' or unit='1/mm' (reddiff simulate: --unit HU or --unit 1/mm)", field="unit")
    if not np.isclose(spacing[0], spacing[1], rtol=1e-3):
        raise InputError(f"CT needs square pixels, got spacing {spacing}", field="pixel_spacing_mm")
    series, slice_spacing = _stack_geometry(image, array)
    stack = array if array.ndim == 3 else array[None]
    slice_seeds = [seed] if array.ndim == 2 else [int(s) for s in _seeds(seed, len(stack))]
    sinograms = []
    for index, (image_slice, slice_seed) in enumerate(zip(stack, slice_seeds)):
        mu = image_slice if unit == "1/mm" else np.asarray(ct.hu_to_mu(image_slice), dtype=np.float32)
        m = ct.simulate(torch.from_numpy(np.ascontiguousarray(mu, dtype=np.float32))[None, None], views=views,
                        angles=None, geometry=geometry, pixel_spacing_mm=float(spacing[0]), I0=I0, sigma=sigma,
                        seed=slice_seed)
        info = dict(getattr(m, "info", None) or {})
        angles = np.asarray(info.get("angles", np.linspace(0, np.pi if geometry == "parallel" else 2 * np.pi,
                                                           views, endpoint=False)), dtype=np.float64)
        sinograms.append(_views_first(m.y, len(angles)))
        if index == 0 and len(stack) > 1:
            check_memory(len(stack) * sinograms[0].nbytes, f"{len(stack)} sinograms of {sinograms[0].shape}",
                         field="image")
    sinogram = Sinogram(np.stack(sinograms) if array.ndim == 3 else sinograms[0], angles, geometry,
                        "counts" if I0 is not None else "line_integral",
                        detector_spacing_mm=float(info.get("detector_spacing_mm", spacing[0])),
                        pixel_spacing_mm=float(spacing[0]), image_shape=array.shape[-2:], I0=I0, sigma=sigma,
                        source_distance_mm=info.get("source_distance_mm"),
                        detector_distance_mm=info.get("detector_distance_mm"), slice_spacing_mm=slice_spacing,
                        series=series)
    return write_sinogram(sinogram, path)


def _stack_geometry(image, array: np.ndarray):
    """``(series, slice spacing)`` a sinogram file keeps for ``image``: a DICOM source's series
    (without pixels, checked to be evenly spaced) and spacing; another stack's spacing where
    the image gives one; else ``(None, None)``."""
    import dataclasses

    from .dicom import DicomVolume, check_slice_spacing

    if isinstance(image, DicomVolume):
        if len(image.positions) != (len(array) if array.ndim == 3 else 1):
            raise InputError(f"holds {len(array)} frames at {len(image.positions)} position(s): the per-frame "
                             "geometry of a multi-frame file is not read; give single-frame files of one series",
                             path=image.path, field="ImagePositionPatient")
        spacing = check_slice_spacing(image) if len(image.positions) > 1 else image.slice_spacing
        return dataclasses.replace(image, array=None), spacing
    given = getattr(image, "spacing", None)
    if array.ndim == 3 and given is not None and len(tuple(given)) == 3:
        return None, float(tuple(given)[0])
    return None, None


def simulate_sky(image, path, psf_path, *, psf=None, background: float = 10.0, read_noise: float = 3.0,
                 peak_counts: float | None = None, seed: int = 0):
    r"""Write a blurred, noisy FITS image and its PSF file, as a telescope would give them.

    Parameters
    ----------
    image : array-like or image object
        ``(H, W)`` sky in counts (electrons), or any scale with ``peak_counts``.
    path, psf_path : str or os.PathLike
        Output FITS files for the image and the PSF, written atomically.
    psf : array-like, optional
        ``(h, w)`` kernel (normalised to unit sum); default
        :func:`reddiff.operators.telescope.moffat_psf` with its defaults.
    background : float
        Sky background, electrons per pixel.
    read_noise : float
        Read noise, electrons (the ``RDNOISE`` card).
    peak_counts : float, optional
        Scale the image so its maximum is this many electrons first.
    seed : int

    Returns
    -------
    pathlib.Path
        The image file.

    Notes
    -----
    :math:`y = \mathrm{Poisson}(k * x + b) + \mathcal{N}(0, r^2)` by
    :func:`reddiff.operators.telescope.simulate`. The image header has ``BUNIT =
    'electron'``, ``GAIN = 1``, ``RDNOISE``, ``SKYLEVEL``, ``PSFFILE`` (the PSF file's path
    relative to the image's folder) and, for a FITS source, its WCS and observation cards.

    Examples
    --------
    >>> import tempfile, os
    >>> from reddiff.datasets import read_fits, sample_path
    >>> d = tempfile.mkdtemp()
    >>> sky = read_fits(sample_path("m13"))
    >>> out = simulate_sky(sky, os.path.join(d, "obs.fits"), os.path.join(d, "psf.fits"))  # doctest: +SKIP
    >>> read_fits(out).unit  # doctest: +SKIP
    'electron'
    """
    from astropy.io import fits

    from reddiff.operators import telescope

    from ._io import write_file

    array, _, _ = _pixels(image, None)
    if array.ndim != 2:
        raise InputError(f"expected one (H, W) image, got shape {array.shape}", field="image")
    if peak_counts is not None:
        array = array * np.float32(peak_counts / max(float(array.max()), np.finfo(np.float32).tiny))
    kernel = telescope.moffat_psf() if psf is None else psf
    kernel = torch.as_tensor(np.asarray(kernel, dtype=np.float32))
    m = telescope.simulate(torch.from_numpy(np.ascontiguousarray(array))[None, None], psf=kernel,
                           background=background, read_noise=read_noise, seed=seed)
    header = fits.Header()
    source_header = getattr(image, "header", None)
    if source_header is not None:
        from .fits import STRUCTURAL

        for card in source_header.cards:
            if card.keyword not in STRUCTURAL:
                header.append(card)
    header.update({"BUNIT": "electron", "GAIN": 1.0, "RDNOISE": float(read_noise), "SKYLEVEL": float(background),
                   "PSFFILE": (os.path.relpath(Path(psf_path).resolve(), Path(path).resolve().parent),
                               "PSF file, relative to this one")})
    header.add_history(f"reddiff simulate_sky: Poisson(psf * x + {background}) + N(0, {read_noise}^2), seed {seed}")
    measured = np.asarray(m.y, dtype=np.float32).reshape(array.shape)
    kernel_np = kernel.numpy() / float(kernel.sum())
    psf_out = write_file(psf_path, lambda tmp: fits.PrimaryHDU(kernel_np).writeto(tmp))
    try:
        return write_file(path, lambda tmp: fits.PrimaryHDU(measured, header=header).writeto(tmp))
    except BaseException:
        psf_out.unlink(missing_ok=True)
        raise


def _pixels(image, spacing_mm):
    """``(array float32, unit or None, (dy, dx))`` from an array or an object with ``.array``."""
    array = getattr(image, "array", image)
    if isinstance(array, torch.Tensor):
        array = array.detach().cpu().numpy()
    try:
        array = np.asarray(array, dtype=np.float32)
    except (TypeError, ValueError) as err:
        raise InputError(f"expected a real image array, got {type(image).__name__}", field="image") from err
    while array.ndim > 2 and array.shape[0] == 1:
        array = array[0]
    if array.ndim not in (2, 3) or min(array.shape) < 2 or not np.isfinite(array).all():
        raise InputError(f"expected a finite (H, W) or (N, H, W) image, got shape {array.shape}", field="image")
    unit = getattr(image, "unit", None)
    spacing = spacing_mm if spacing_mm is not None else (getattr(image, "spacing", None) or
                                                         getattr(image, "pixel_spacing", None) or (1.0, 1.0))
    dy, dx = (float(v) for v in tuple(spacing)[-2:])
    if not (dy > 0 and dx > 0):
        raise InputError(f"spacing must be positive, got {spacing}", field="spacing_mm")
    return array, unit, (dy, dx)


def _seeds(seed: int, n: int) -> np.ndarray:
    return np.random.SeedSequence(seed).generate_state(n, dtype=np.uint32) & 0x7FFFFFFF


def _complex_image(x) -> np.ndarray:
    """``(H, W)`` complex from a ``(1, 2, H, W)`` (real, imag) or ``(1, 1, H, W)`` tensor."""
    x = np.asarray(torch.as_tensor(x).detach().cpu())[0]
    return x[0] + 1j * x[1] if x.shape[0] == 2 else x[0].astype(np.complex64)


def _coil_kspace(y) -> np.ndarray:
    """``(coils, H, W)`` complex64 from deepinv's multi-coil layout ``(1, 2, coils, H, W)``."""
    y = np.asarray(torch.as_tensor(y).detach().cpu())
    if y.ndim != 5 or y.shape[:2] != (1, 2):
        raise InputError(f"expected multi-coil k-space (1, 2, coils, H, W), got {y.shape}", field="y")
    return (y[0, 0] + 1j * y[0, 1]).astype(np.complex64)


def _operator_mask(measurement):
    info = getattr(measurement, "info", None) or {}
    mask = info.get("mask") if isinstance(info, dict) else None
    return mask if mask is not None else getattr(measurement.physics, "mask", None)


def _column_mask(mask, shape) -> np.ndarray:
    """The operator's ``(..., H, W)`` mask as one flag per k-space column (phase encode)."""
    if mask is None:
        return np.ones(shape[-1], bool)
    mask = np.asarray(torch.as_tensor(mask).detach().cpu(), dtype=bool)
    mask = np.broadcast_to(mask, (*mask.shape[:-2], *shape)).reshape(-1, *shape)[0]
    if not (mask == mask[:1]).all():
        raise InputError("the operator's mask is not a set of full phase-encode columns, which the fastMRI "
                         "layout needs", field="mask")
    return mask[0].copy()


def _views_first(y, n_views: int) -> np.ndarray:
    """A 2-D sinogram with views along the first axis (deepinv puts them last)."""
    y = np.asarray(torch.as_tensor(y).detach().cpu(), dtype=np.float32).squeeze()
    if y.ndim != 2 or n_views not in y.shape:
        raise InputError(f"expected a (views, detectors) sinogram with {n_views} views, got {y.shape}", field="y")
    return y if y.shape[0] == n_views else y.T
