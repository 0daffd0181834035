r"""Telescope imaging: point-spread functions, blur without wrap-around, CCD noise
in counts, and classical deconvolution (Wiener, Richardson-Lucy).

Units. Images are counts (electrons) per pixel with gain 1; PSFs are normalised
to unit sum so blurring conserves flux. Angles are arcseconds, lengths metres.

Measurement model.

.. math:: y = \mathrm{Poisson}(k * x + b) + \mathcal N(0, r^2)

with :math:`k` the PSF, :math:`b` the sky background (electrons per pixel) and
:math:`r` the read noise. The convolution pads the image with zeros (light from
outside the field is not modelled) so nothing wraps around the edges. The data
term is :class:`reddiff.likelihood.ShiftedPoissonLikelihood` (the
shifted-Poisson approximation, exact in mean and variance).
"""

from __future__ import annotations

import math

import deepinv as dinv
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from reddiff.errors import InputError
from reddiff.likelihood import ShiftedPoissonLikelihood

from .base import Measurement, check_finite, check_image, convolution, make_generator, normalise_kernel

__all__ = ["airy_psf", "moffat_psf", "gaussian_psf", "zernike_psf", "as_psf", "blur_physics",
           "tiled_blur_physics", "simulate", "wiener", "richardson_lucy"]

ARCSEC = math.pi / (180 * 3600)


def _positive(value, name: str) -> float:
    if not (isinstance(value, (int, float, np.floating, np.integer)) and value > 0 and math.isfinite(value)):
        raise InputError(f"must be a positive number, got {value!r}", field=name)
    return float(value)


#: Largest PSF side (pixels) a profile is drawn on.
MAX_PSF_SIZE = 4097


def _psf_size(size, extent_px: float) -> int:
    """An odd size: the given one, or one covering ``extent_px`` on each side of the centre."""
    if size is None:
        if not math.isfinite(extent_px) or 2 * extent_px + 1 > MAX_PSF_SIZE:
            raise InputError(f"the PSF would be {2 * extent_px + 1:.3g} pixels wide (at most {MAX_PSF_SIZE}); "
                             "is the width in pixels?", field="fwhm")
        return 2 * max(1, math.ceil(extent_px)) + 1
    if not isinstance(size, (int, np.integer)) or not 1 <= size <= MAX_PSF_SIZE:
        raise InputError(f"must be a positive integer up to {MAX_PSF_SIZE}, got {size!r}", field="size")
    return int(size)


def _radius_grid(size: int, oversample: int) -> Tensor:
    """Distances (pixels) from the centre of ``oversample**2`` sub-pixel points of each pixel, ``(size, size, o*o)``."""
    sub = (torch.arange(oversample, dtype=torch.float64) + 0.5) / oversample - 0.5
    centres = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    coords = (centres[:, None] + sub[None, :]).reshape(-1)
    y, x = coords[:, None], coords[None, :]
    r = torch.sqrt(y**2 + x**2).reshape(size, oversample, size, oversample)
    return r.permute(0, 2, 1, 3).reshape(size, size, -1)


def _pixel_integrated(profile, size: int, oversample: int) -> Tensor:
    """A radial profile averaged over each pixel and normalised to unit sum, ``(size, size)`` float32."""
    image = profile(_radius_grid(size, oversample)).mean(-1)
    return (image / image.sum()).to(torch.float32)


def airy_psf(*, diameter_m: float = 2.4, wavelength_m: float = 550e-9, pixel_scale_arcsec: float = 0.02,
             obscuration: float = 0.0, size: int | None = None, oversample: int = 5) -> Tensor:
    r"""Diffraction-limited PSF of a circular (optionally obscured) aperture.

    Parameters
    ----------
    diameter_m : float
        Aperture diameter :math:`D` in metres (default: Hubble's 2.4 m).
    wavelength_m : float
        Wavelength :math:`\lambda` in metres.
    pixel_scale_arcsec : float
        Angular size of a pixel in arcseconds.
    obscuration : float
        Central obscuration :math:`\epsilon` as a fraction of :math:`D` (Hubble: 0.33).
    size : int, optional
        Side in pixels; default covers 8 :math:`\lambda/D` on each side.
    oversample : int
        Sub-pixels per side averaged over each pixel (pixel integration).

    Returns
    -------
    torch.Tensor
        ``(size, size)`` float32, unit sum, centred on the middle pixel.

    Notes
    -----
    .. math:: I(\theta) \propto \left[\frac{2 J_1(v)}{v} - \epsilon^2 \frac{2 J_1(\epsilon v)}{\epsilon v}\right]^2,
              \qquad v = \pi D \theta / \lambda ,

    whose first dark ring (for :math:`\epsilon = 0`) is at :math:`1.22\,\lambda/D` and
    FWHM :math:`1.03\,\lambda/D`.

    Examples
    --------
    >>> psf = airy_psf()  # Hubble-like: 2.4 m at 550 nm on 0.02"/px (Nyquist sampled)
    >>> psf.shape, round(psf.sum().item(), 4)
    (torch.Size([39, 39]), 1.0)
    """
    from scipy.special import j1

    diameter = _positive(diameter_m, "diameter_m")
    wavelength = _positive(wavelength_m, "wavelength_m")
    scale = _positive(pixel_scale_arcsec, "pixel_scale_arcsec") * ARCSEC
    if not 0 <= obscuration < 1:
        raise InputError(f"must be in [0, 1), got {obscuration!r}", field="obscuration")
    lambda_over_d_px = wavelength / diameter / scale
    size = _psf_size(size, 8 * lambda_over_d_px)

    def jinc(v):
        v = np.asarray(v)
        safe = np.where(v == 0, 1.0, v)
        return np.where(v == 0, 1.0, 2 * j1(safe) / safe)

    def profile(r):
        v = (math.pi * r / lambda_over_d_px).numpy()
        amplitude = jinc(v) - obscuration**2 * jinc(obscuration * v)
        return torch.from_numpy(amplitude**2)

    return _pixel_integrated(profile, size, oversample)


def moffat_psf(fwhm: float = 3.0, *, beta: float = 4.765, pixel_scale: float = 1.0, size: int | None = None,
               oversample: int = 5) -> Tensor:
    r"""Moffat profile, the usual model of atmospheric seeing (Moffat 1969).

    Parameters
    ----------
    fwhm : float
        Full width at half maximum, in the units of ``pixel_scale`` (pixels by default,
        or arcseconds with ``pixel_scale`` in arcsec/pixel).
    beta : float
        Wing exponent :math:`\beta > 1`; 4.765 fits Kolmogorov turbulence (Trujillo et al. 2001).
    pixel_scale : float
        Size of a pixel in the units of ``fwhm``.
    size : int, optional
        Side in pixels; default covers 4 FWHM on each side.
    oversample : int
        Sub-pixels per side averaged over each pixel.

    Returns
    -------
    torch.Tensor
        ``(size, size)`` float32, unit sum.

    Notes
    -----
    .. math:: I(r) \propto \left[1 + (r/\alpha)^2\right]^{-\beta}, \qquad
              \mathrm{FWHM} = 2\alpha\sqrt{2^{1/\beta} - 1}.

    Examples
    --------
    >>> psf = moffat_psf(fwhm=0.8, pixel_scale=0.2)  # 0.8" seeing on 0.2"/px
    >>> psf.shape, int(psf.argmax()) == psf.numel() // 2
    (torch.Size([33, 33]), True)
    """
    fwhm_px = _positive(fwhm, "fwhm") / _positive(pixel_scale, "pixel_scale")
    if not (beta > 1 and math.isfinite(beta)):
        raise InputError(f"must be > 1, got {beta!r}", field="beta")
    alpha = fwhm_px / (2 * math.sqrt(2 ** (1 / beta) - 1))
    size = _psf_size(size, 4 * fwhm_px)
    return _pixel_integrated(lambda r: (1 + (r / alpha) ** 2) ** (-beta), size, oversample)


def gaussian_psf(fwhm: float = 3.0, *, pixel_scale: float = 1.0, size: int | None = None,
                 oversample: int = 5) -> Tensor:
    r"""Gaussian PSF, :math:`I(r) \propto e^{-r^2/2\sigma^2}` with :math:`\mathrm{FWHM} = 2\sqrt{2\ln 2}\,\sigma`.

    Parameters as :func:`moffat_psf`; the default size covers 3 FWHM on each side.

    Examples
    --------
    >>> psf = gaussian_psf(fwhm=2.0)
    >>> psf.shape, round(psf.sum().item(), 4)
    (torch.Size([13, 13]), 1.0)
    """
    fwhm_px = _positive(fwhm, "fwhm") / _positive(pixel_scale, "pixel_scale")
    sigma = fwhm_px / (2 * math.sqrt(2 * math.log(2)))
    size = _psf_size(size, 3 * fwhm_px)
    return _pixel_integrated(lambda r: torch.exp(-0.5 * (r / sigma) ** 2), size, oversample)


def zernike_psf(coefficients: dict, *, diameter_m: float = 2.4, wavelength_m: float = 550e-9,
                pixel_scale_arcsec: float = 0.02, size: int | None = None, pupil_size: int = 256) -> Tensor:
    r"""PSF of an aberrated circular pupil, from Zernike coefficients (deepinv's diffraction generator).

    Parameters
    ----------
    coefficients : dict
        ``{noll_index: amplitude}``, amplitudes in waves (deepinv's Zernike
        normalisation), e.g. ``{4: 0.1}`` for a tenth of a wave of defocus.
        ``{}`` gives the Airy pattern.
    diameter_m, wavelength_m, pixel_scale_arcsec : float
        As :func:`airy_psf`; they set the pupil cutoff
        :math:`f_c = D\,\Delta\theta / 2\lambda` (cycles per pixel), which must be at
        most 0.25 (Nyquist sampling).
    size : int, optional
        Side in pixels; default covers 8 :math:`\lambda/D` on each side.
    pupil_size : int
        Pupil grid used for the Fourier optics.

    Returns
    -------
    torch.Tensor
        ``(size, size)`` float32, unit sum.

    Notes
    -----
    :math:`h = \left|\mathcal F\left[\mathbb 1_{|\rho| \le 1}\, e^{-2i\pi \sum_k a_k Z_k(\rho)}\right]\right|^2`
    (:class:`deepinv.physics.generator.DiffractionBlurGenerator`), sampled at pixel
    centres (no pixel integration, unlike :func:`airy_psf`'s default).

    Examples
    --------
    >>> psf = zernike_psf({4: 0.2, 11: 0.05})
    >>> psf.shape, round(psf.sum().item(), 4)
    (torch.Size([39, 39]), 1.0)
    >>> airy = airy_psf(oversample=1)  # no aberration: the Airy pattern, to about 1 %
    >>> bool((zernike_psf({}) - airy).norm() < 0.02 * airy.norm())
    True
    """
    from deepinv.physics.generator import DiffractionBlurGenerator

    if not isinstance(coefficients, dict) or not all(isinstance(k, int) and k >= 1 for k in coefficients):
        raise InputError("expected a dict {noll_index (int >= 1): amplitude in waves}", field="coefficients")
    diameter = _positive(diameter_m, "diameter_m")
    wavelength = _positive(wavelength_m, "wavelength_m")
    scale = _positive(pixel_scale_arcsec, "pixel_scale_arcsec") * ARCSEC
    cutoff = diameter * scale / (2 * wavelength)
    if cutoff > 0.25:
        raise InputError(f"pixels of {pixel_scale_arcsec} arcsec undersample the PSF (cutoff {cutoff:.3f} > 0.25 "
                         f"cycles/pixel); use pixel_scale_arcsec <= {0.5 * wavelength / diameter / ARCSEC:.4g}",
                         field="pixel_scale_arcsec")
    size = _psf_size(size, 8 * wavelength / diameter / scale)
    indices = tuple(sorted(coefficients)) or (4,)
    amplitudes = torch.tensor([[float(coefficients.get(i, 0.0)) for i in indices]])
    generator = DiffractionBlurGenerator((size, size), zernike_index=indices, fc=cutoff,
                                         pupil_size=(max(pupil_size, size),) * 2)
    psf = generator.step(batch_size=1, coeff=amplitudes)["filter"][0, 0]
    return (psf / psf.sum()).to(torch.float32)


def as_psf(psf) -> Tensor:
    """A PSF given as data (array or tensor), checked and returned ``(h, w)`` float32 with unit sum.

    Small negative values (down to -0.1 % of the peak, as in empirical PSFs) are set
    to zero; anything more negative, NaN, or a zero sum is an error.

    Examples
    --------
    >>> as_psf(np.ones((3, 3))).sum().item()
    1.0
    >>> as_psf(-np.ones((3, 3)))
    Traceback (most recent call last):
    ...
    reddiff.errors.InputError: [psf] has values down to -1 (peak -1); expected a non-negative PSF
    """
    psf = torch.as_tensor(np.asarray(psf, dtype=np.float32) if not isinstance(psf, Tensor) else psf,
                          dtype=torch.float32)
    while psf.ndim > 2 and psf.shape[0] == 1:
        psf = psf[0]
    if psf.ndim != 2:
        raise InputError(f"has shape {tuple(psf.shape)}; expected a 2-D (h, w) PSF", field="psf")
    check_finite(psf, "psf")
    peak, low = float(psf.max()), float(psf.min())
    if low < -1e-3 * max(peak, 0.0) or not peak > 0:
        raise InputError(f"has values down to {low:g} (peak {peak:g}); expected a non-negative PSF", field="psf")
    return normalise_kernel(psf.clamp_min(0))[0, 0]


def blur_physics(psf, *, padding: str = "zeros") -> dinv.physics.Blur:
    r"""Convolution with a PSF, without wrap-around by default (see :func:`reddiff.operators.base.convolution`).

    Parameters
    ----------
    psf : array-like
        ``(h, w)`` PSF (normalised to unit sum here).
    padding : {"zeros", "reflect", "replicate", "circular", "valid"}
        ``"zeros"``: the sky outside the image is dark; ``"valid"``: the measurement
        covers only pixels whose whole PSF footprint lies in the image (smaller ``y``).

    Examples
    --------
    >>> physics = blur_physics(gaussian_psf(2.0))
    >>> x = torch.zeros(1, 1, 32, 32); x[..., 16, 16] = 100.0
    >>> round(physics.A(x).sum().item(), 3)  # flux is conserved
    100.0
    """
    return convolution(as_psf(psf), padding=padding)


def tiled_blur_physics(psfs, image_shape, *, padding: str = "zeros") -> dinv.physics.SpaceVaryingBlur:
    r"""A spatially varying blur from a grid of PSFs, by product convolution.

    Parameters
    ----------
    psfs : array-like
        ``(ny, nx, h, w)`` PSFs measured at the centres of an ``ny x nx`` grid of tiles.
    image_shape : (int, int)
        ``(H, W)`` of the image.
    padding : {"zeros", "reflect", "replicate", "circular"}
        Boundary model of every convolution.

    Returns
    -------
    deepinv.physics.SpaceVaryingBlur
        Linear, with exact adjoint.

    Notes
    -----
    :math:`y = \sum_k h_k * (w_k \odot x)` with :math:`w_k` the bilinear interpolation
    weights of tile centre :math:`k` (they sum to one at every pixel), so the PSF
    varies smoothly between tile centres and equals :math:`h_k` at centre :math:`k`
    (Denis et al., 2011).

    Examples
    --------
    >>> psfs = torch.stack([torch.stack([gaussian_psf(f, size=9) for f in (1.5, 3.0)])] * 2)
    >>> physics = tiled_blur_physics(psfs, (32, 32))
    >>> physics.A(torch.ones(1, 1, 32, 32)).shape
    torch.Size([1, 1, 32, 32])
    """
    psfs = torch.as_tensor(np.asarray(psfs, dtype=np.float32) if not isinstance(psfs, Tensor) else psfs)
    if psfs.ndim != 4:
        raise InputError(f"has shape {tuple(psfs.shape)}; expected (ny, nx, h, w)", field="psfs")
    height, width = (int(s) for s in image_shape)
    ny, nx = psfs.shape[:2]
    if padding not in ("zeros", "reflect", "replicate", "circular"):
        raise InputError(f"unknown padding {padding!r}; expected zeros, reflect, replicate or circular",
                         field="padding")
    if psfs.shape[-2] > height or psfs.shape[-1] > width:
        raise InputError(f"PSFs of {tuple(psfs.shape[-2:])} exceed the image {height}x{width}", field="psfs")
    kernels = torch.stack([as_psf(psfs[i, j]) for i in range(ny) for j in range(nx)])
    weights = _tent_weights(ny, height)[:, None, :, None] * _tent_weights(nx, width)[None, :, None, :]
    return dinv.physics.SpaceVaryingBlur(filters=kernels[None, None],
                                         multipliers=weights.reshape(1, 1, -1, height, width),
                                         padding="constant" if padding == "zeros" else padding,
                                         use_fft=max(kernels.shape[-2:]) > 15)


def _tent_weights(tiles: int, length: int) -> Tensor:
    """``(tiles, length)`` linear-interpolation weights of tile centres along one axis (a partition of unity)."""
    if tiles == 1:
        return torch.ones(1, length)
    centres = (torch.arange(tiles, dtype=torch.float64) + 0.5) * length / tiles - 0.5
    position = torch.arange(length, dtype=torch.float64).clamp(float(centres[0]), float(centres[-1]))
    step = float(centres[1] - centres[0])
    return (1 - (position[None, :] - centres[:, None]).abs() / step).clamp_min(0).to(torch.float32)


def _check_counts(image: Tensor, name: str) -> Tensor:
    image = check_image(image, name, channels=1)
    if float(image.min()) < 0:
        raise InputError(f"has negative values (down to {float(image.min()):.4g}); expected counts >= 0", field=name)
    return image


def _nonnegative(value, name: str) -> float:
    if not (isinstance(value, (int, float, np.floating, np.integer)) and value >= 0 and math.isfinite(value)):
        raise InputError(f"must be a finite number >= 0, got {value!r}", field=name)
    return float(value)


def simulate(image_counts: Tensor, *, psf, background: float = 10.0, read_noise: float = 3.0,
             padding: str = "zeros", seed: int | None = None) -> Measurement:
    r"""Simulate a CCD exposure: blur, sky, photon noise and read noise, in electrons.

    Parameters
    ----------
    image_counts : torch.Tensor
        ``(1, 1, H, W)`` expected source electrons per pixel, ``>= 0``.
    psf : array-like
        ``(h, w)`` PSF (e.g. :func:`moffat_psf`), normalised here.
    background : float
        Sky (plus dark) electrons per pixel :math:`b \ge 0`.
    read_noise : float
        Read-noise standard deviation :math:`r \ge 0`, electrons.
    padding : str
        Boundary model of the blur (:func:`blur_physics`).
    seed : int, optional
        Seeds the Poisson then the Gaussian draws.

    Returns
    -------
    Measurement
        ``y``: ``(1, 1, H, W)`` electrons (may be negative where the read noise wins);
        ``physics``: :func:`blur_physics` with ``data_term``
        :class:`reddiff.likelihood.ShiftedPoissonLikelihood` (``A`` excludes the background);
        ``info``: ``psf`` ``(h, w)``, ``background``, ``read_noise``, ``padding``, ``seed``.

    Notes
    -----
    :math:`y = \mathrm{Poisson}(k * x + b) + \mathcal N(0, r^2)`.

    Examples
    --------
    >>> m = simulate(torch.full((1, 1, 16, 16), 50.0), psf=gaussian_psf(2.0), seed=0)
    >>> m.y.shape, m.physics.data_term
    (torch.Size([1, 1, 16, 16]), ShiftedPoissonLikelihood(background=10, read_noise=3))
    """
    image = _check_counts(image_counts, "image_counts")
    if image.shape[0] != 1:
        raise InputError(f"has batch size {image.shape[0]}; expected one image (1, 1, H, W): simulate "
                         "images one at a time", field="image_counts")
    background = _nonnegative(background, "background")
    read_noise = _nonnegative(read_noise, "read_noise")
    kernel = as_psf(psf)
    physics = blur_physics(kernel, padding=padding)
    generator = make_generator(seed)
    with torch.no_grad():
        rate = physics.A(image).clamp_min(0) + background
    y = torch.poisson(rate, generator=generator) + read_noise * torch.randn(rate.shape, generator=generator)
    physics.data_term = ShiftedPoissonLikelihood(background, read_noise)
    info = {"psf": kernel, "background": background, "read_noise": read_noise, "padding": padding, "seed": seed}
    return Measurement(y=y, physics=physics, x_true=image, info=info)


def _optical_transfer(kernel: Tensor, shape) -> Tensor:
    """FFT of a ``(h, w)`` kernel zero-padded to ``shape`` with its centre at index (0, 0)."""
    h, w = kernel.shape
    padded = torch.zeros(shape, dtype=torch.float64)
    padded[:h, :w] = kernel
    padded = torch.roll(padded, (-(h // 2), -(w // 2)), dims=(0, 1))
    return torch.fft.rfft2(padded)


def wiener(y: Tensor, physics, *, background: float = 0.0, read_noise: float = 0.0,
           balance: float | None = None) -> Tensor:
    r"""Wiener deconvolution with a flat signal spectrum (a Tikhonov-regularised inverse filter).

    Parameters
    ----------
    y : torch.Tensor
        ``(B, C, H, W)`` image in electrons.
    physics : deepinv.physics.Blur
        The blur (its ``filter`` is the PSF), e.g. :func:`blur_physics`.
    background : float
        Sky level subtracted first.
    read_noise : float
        Read noise, used to estimate ``balance``.
    balance : float, optional
        Noise-to-signal power ratio :math:`\nu`; default
        :math:`\bar\sigma^2 / \max(\mathrm{var}(y) - \bar\sigma^2, \epsilon)` with
        :math:`\bar\sigma^2 = \overline{\max(y, 0)} + r^2` the mean noise variance.

    Returns
    -------
    torch.Tensor
        Deconvolved image, shape of ``y``.

    Notes
    -----
    :math:`\hat X = \overline{K}\, (Y - b) / (|K|^2 + \nu)` in the Fourier domain, on the
    image mirrored at its edges (reflect padding by the PSF size) to avoid edge ringing.

    Examples
    --------
    >>> physics = blur_physics(gaussian_psf(3.0))
    >>> x = torch.zeros(1, 1, 32, 32); x[..., 10, 12] = 1000.0
    >>> y = physics.A(x)
    >>> bool(wiener(y, physics, balance=1e-3).max() > 2 * y.max())  # sharper than the blurred star
    True
    """
    check_finite(y, "y")
    kernel = getattr(physics, "filter", None)
    if kernel is None or kernel.shape[:2] != (1, 1):
        raise InputError("expected a blur physics with a single (1, 1, h, w) filter, e.g. blur_physics(psf)",
                         field="physics")
    kernel = kernel[0, 0].double()
    data = y.double() - background
    if balance is None:
        noise = float(y.clamp_min(0).mean()) + read_noise**2
        balance = noise / max(float(data.var()) - noise, 1e-12)
    if not (balance >= 0 and math.isfinite(balance)):
        raise InputError(f"must be finite and >= 0, got {balance!r}", field="balance")
    ph, pw = kernel.shape
    padded = F.pad(data, (pw, pw, ph, ph), mode="reflect" if min(data.shape[-2:]) > max(ph, pw) else "replicate")
    otf = _optical_transfer(kernel, padded.shape[-2:])
    spectrum = torch.fft.rfft2(padded) * otf.conj() / (otf.abs() ** 2 + balance)
    restored = torch.fft.irfft2(spectrum, s=padded.shape[-2:])
    return restored[..., ph:ph + y.shape[-2], pw:pw + y.shape[-1]].to(y.dtype)


def richardson_lucy(y: Tensor, physics, *, background: float = 0.0, read_noise: float = 0.0,
                    iterations: int = 30, init: Tensor | None = None) -> Tensor:
    r"""Richardson-Lucy deconvolution (maximum-likelihood EM for Poisson data), with sky and read noise.

    Parameters
    ----------
    y : torch.Tensor
        ``(B, C, H, W)`` image in electrons.
    physics : deepinv.physics.LinearPhysics
        Non-negative blur with exact adjoint (:func:`blur_physics`, :func:`tiled_blur_physics`).
    background, read_noise : float
        Sky level :math:`b` and read noise :math:`r` (shifted-Poisson model).
    iterations : int
        EM iterations (early stopping regularises).
    init : torch.Tensor, optional
        Starting image; default flat at the mean source flux.

    Returns
    -------
    torch.Tensor
        Non-negative deconvolved image.

    Notes
    -----
    .. math:: x_{k+1} = \frac{x_k}{A^T \mathbf 1} \odot
              A^T\!\left[\frac{(y + r^2)_+}{A x_k + b + r^2}\right]

    The normalisation :math:`A^T\mathbf 1` handles the image edges (zero padding).

    Examples
    --------
    >>> physics = blur_physics(gaussian_psf(3.0))
    >>> x = torch.zeros(1, 1, 32, 32); x[..., 10, 12] = 1000.0
    >>> y = physics.A(x) + 1.0
    >>> bool(richardson_lucy(y, physics, background=1.0, iterations=50).max() > 3 * y.max())
    True
    """
    check_finite(y, "y")
    if iterations < 1:
        raise InputError(f"must be at least 1, got {iterations}", field="iterations")
    background = _nonnegative(background, "background")
    read_noise = _nonnegative(read_noise, "read_noise")
    shift = background + read_noise**2
    counts = (y + read_noise**2).clamp_min(0)
    with torch.no_grad():
        norm = physics.A_adjoint(torch.ones_like(y)).clamp_min(1e-12)
        x = torch.full_like(norm, max(float((y - background).mean()), 1e-3)) if init is None else init.clone()
        for _ in range(iterations):
            x = x * physics.A_adjoint(counts / (physics.A(x) + shift).clamp_min(1e-12)) / norm
    return x
